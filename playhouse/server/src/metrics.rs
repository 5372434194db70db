//! Server metrics through `prometheus-client`: one registry per server (every series carries
//! `server`), handles held here so the hot path is one relaxed atomic add per counter, and the
//! Prometheus text format (0.0.4) encoded by the crate on demand (see
//! [`crate::PlayServer::metrics`] and [`crate::PlayServer::listen_metrics`]).
//!
//! Labels have bounded values only: transport, rejection reason, limit, message kind, and the
//! peer server of a mesh round trip (servers of the directory). Never a stage id, an account
//! or a client-supplied message id.

use std::borrow::Cow;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::histogram::{self, Histogram};
use crate::metrics_registry::{Builder, PerPeer};
use crate::sharded::{ShardedCounter, ShardedGauge};

/// Transports with their own session gauges; anything else counts as `other`.
const TRANSPORTS: [&str; 5] = ["tcp", "tls", "ws", "wss", "other"];

/// Why a frame or connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    InvalidLength,
    TooLarge,
    BodyTooShort,
    EmptyMsgId,
    MsgIdOverrun,
    InvalidUtf8,
    Transport,
    BeforeAuth,
    RateLimited,
    ConnectionLimit,
    PerIpLimit,
    SlowConsumer,
    OversizedFrame,
    FrameTimeout,
}

/// Why a client's source address may not create another stage now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceRefusal {
    /// It holds `max_stages_per_source` live stages already.
    TooMany,
    /// It creates stages faster than `stage_creation_rate_per_source`.
    TooFast,
}

const REJECTIONS: [(Rejection, &str); 14] = [
    (Rejection::InvalidLength, "invalid_length"),
    (Rejection::TooLarge, "too_large"),
    (Rejection::BodyTooShort, "body_too_short"),
    (Rejection::EmptyMsgId, "empty_msg_id"),
    (Rejection::MsgIdOverrun, "msg_id_overrun"),
    (Rejection::InvalidUtf8, "invalid_utf8"),
    (Rejection::Transport, "transport_error"),
    (Rejection::BeforeAuth, "message_before_auth"),
    (Rejection::RateLimited, "rate_limited"),
    (Rejection::ConnectionLimit, "connection_limit"),
    (Rejection::PerIpLimit, "per_ip_limit"),
    (Rejection::SlowConsumer, "slow_consumer"),
    (Rejection::OversizedFrame, "oversized_outgoing_frame"),
    (Rejection::FrameTimeout, "frame_timeout"),
];

impl Rejection {
    pub(crate) fn of(error: &playhouse_protocol::DecodeError) -> Rejection {
        use playhouse_protocol::DecodeError as E;
        match error {
            E::InvalidLength(_) => Rejection::InvalidLength,
            E::TooLarge { .. } => Rejection::TooLarge,
            E::BodyTooShort { .. } => Rejection::BodyTooShort,
            E::EmptyMsgId => Rejection::EmptyMsgId,
            E::MsgIdOverrun { .. } => Rejection::MsgIdOverrun,
            E::InvalidUtf8 => Rejection::InvalidUtf8,
            _ => Rejection::Transport,
        }
    }

    fn index(self) -> usize {
        REJECTIONS.iter().position(|(r, _)| *r == self).unwrap_or(0)
    }
}

/// Counters, gauges and histograms of one server.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    sessions: [Gauge; TRANSPORTS.len()],
    sessions_total: [Counter; TRANSPORTS.len()],
    stages: Gauge,
    stages_created: Counter,
    /// Stages not created because the server hosts `max_stages` already, or the connection
    /// or its source address created stages too fast or holds too many.
    stages_refused: Counter,
    /// Of `stages_refused`, the logins refused by their source's quota: `[live, rate]`.
    stages_refused_per_source: [Counter; 2],
    /// Stages closed after `stage_idle_timeout` without actors.
    stages_idle_closed: Counter,
    stages_drained: Counter,
    /// Stages moved away, moves that failed, and their players: moved with their stage,
    /// or closed (not resumable, they could not follow).
    stages_moved: Counter,
    stage_moves_failed: Counter,
    clients_moved: Counter,
    clients_relayed: Counter,
    /// Actors in every stage.
    actors: Gauge,
    queued: Gauge,
    messages_in: ShardedCounter,
    messages_out: ShardedCounter,
    bytes_in: ShardedCounter,
    bytes_out: ShardedCounter,
    /// Bytes waiting in every session's outbound queue.
    outbound_bytes: ShardedGauge,
    /// Resumable sessions taken over by a new connection.
    sessions_resumed: Counter,
    /// Resumable sessions lost (window passed, replay buffer overflowed).
    sessions_lost: Counter,
    auth_timeouts: Counter,
    idle_timeouts: Counter,
    rejected: [Counter; REJECTIONS.len()],
    /// Mesh messages a full stage mailbox refused: `[requests, one-way]`.
    stage_busy: [Counter; 2],
    tick_overruns: Counter,
    latency: Histogram,
    /// How long each move held its stage frozen.
    move_pause: Histogram,
    mailbox_wait: Histogram,
    handler: Histogram,
    tick: Histogram,
    resume_gap: Histogram,
    session_duration: Histogram,
    mesh_request: PerPeer,
    liveness: PerPeer,
    /// Per-message metrics are kept ([`crate::PlayConfig::collect_metrics`]).
    collect: bool,
    /// The last liveness round trip of each peer (the admin page's cluster view).
    last_liveness: std::sync::Mutex<std::collections::HashMap<String, Duration>>,
}

fn transport_index(transport: &str) -> usize {
    TRANSPORTS
        .iter()
        .position(|t| *t == transport)
        .unwrap_or(TRANSPORTS.len() - 1)
}

/// `n` as a counter increment.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// `n` as a gauge value.
fn level(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    /// The metrics of server `server_id` (the `server` label of every series).
    pub(crate) fn new(server_id: &str) -> Self {
        let labels = [(Cow::Borrowed("server"), Cow::Owned(server_id.to_owned()))];
        let mut b = Builder(Registry::with_labels(labels.into_iter()));
        let reasons = REJECTIONS.map(|(_, reason)| reason);
        Metrics {
            sessions: b.labelled("playhouse_sessions", "Open client connections", "transport", TRANSPORTS),
            sessions_total: b.labelled("playhouse_sessions", "Accepted client connections", "transport", TRANSPORTS),
            stages: b.gauge("playhouse_stages", "Live stages"),
            stages_created: b.counter("playhouse_stages_created", "Stages created"),
            stages_refused: b.counter(
                "playhouse_stages_refused",
                "Stages not created: max_stages reached, or a connection's or a source address's \
                 stage quota exceeded",
            ),
            stages_idle_closed: b.counter(
                "playhouse_stages_idle_closed",
                "Stages closed after stage_idle_timeout without actors",
            ),
            stages_drained: b.counter(
                "playhouse_stages_drained",
                "Stages closed at a drain's deadline; their clients got STAGE_DRAINED",
            ),
            stages_moved: b.counter(
                "playhouse_stages_moved",
                "Stages moved, live and with their players, to another Play server",
            ),
            stage_moves_failed: b.counter(
                "playhouse_stage_moves_failed",
                "Stage moves a target refused or did not answer; the stage stayed",
            ),
            clients_moved: b.counter(
                "playhouse_clients_moved",
                "Players whose resumable session followed their stage to another server",
            ),
            clients_relayed: b.counter(
                "playhouse_clients_relayed",
                "Players not resumable when their stage moved: kept connected here, relayed to it",
            ),
            actors: b.gauge("playhouse_actors", "Actors in every stage"),
            queued: b.gauge("playhouse_stage_queued_messages", "Messages waiting in stage mailboxes"),
            messages_in: b.sharded("playhouse_messages_in", "Frames received from clients"),
            messages_out: b.sharded("playhouse_messages_out", "Frames sent to clients"),
            bytes_in: b.sharded("playhouse_bytes_in", "Frame bytes received"),
            bytes_out: b.sharded("playhouse_bytes_out", "Frame payload bytes sent (before compression)"),
            outbound_bytes: b.sharded(
                "playhouse_outbound_queued_bytes",
                "Frame bytes waiting in the sessions' outbound queues",
            ),
            sessions_resumed: b.counter(
                "playhouse_sessions_resumed",
                "Resumable sessions taken over by a new connection after a drop",
            ),
            sessions_lost: b.counter(
                "playhouse_sessions_lost",
                "Resumable sessions lost: resume window passed or replay buffer overflowed",
            ),
            auth_timeouts: b.counter(
                "playhouse_auth_timeouts",
                "Connections closed for not authenticating in time",
            ),
            idle_timeouts: b.counter("playhouse_idle_timeouts", "Connections closed for silence"),
            stages_refused_per_source: b.labelled(
                "playhouse_stages_refused_per_source",
                "Logins whose stage was not created because their source address holds \
                 max_stages_per_source stages (limit=live) or creates them faster than \
                 stage_creation_rate_per_source (limit=rate)",
                "limit",
                ["live", "rate"],
            ),
            stage_busy: b.labelled(
                "playhouse_stage_busy",
                "Mesh messages refused because the stage mailbox was full: requests answered \
                 STAGE_BUSY, one-way messages dropped",
                "kind",
                ["request", "send"],
            ),
            rejected: b.labelled(
                "playhouse_rejected",
                "Frames or connections refused, by reason",
                "reason",
                reasons,
            ),
            tick_overruns: b.counter(
                "playhouse_stage_tick_overruns",
                "Game-loop wake-ups that fell behind: steps dropped, or a step that took longer \
                 than the timestep",
            ),
            latency: b.histogram(
                "playhouse_request_latency_seconds",
                "Time from a client request's arrival (frame read) to its reply written",
                histogram::LATENCY,
            ),
            move_pause: b.histogram(
                "playhouse_stage_move_pause_seconds",
                "How long a stage moving to another server was frozen (snapshot to accepted)",
                histogram::LATENCY,
            ),
            mailbox_wait: b.histogram(
                "playhouse_stage_mailbox_wait_seconds",
                "Time a client message waited in its stage's mailbox",
                histogram::FAST,
            ),
            handler: b.histogram(
                "playhouse_stage_handler_seconds",
                "Time stage code took to handle one client message (on_dispatch, its awaits included)",
                histogram::FAST,
            ),
            tick: b.histogram(
                "playhouse_stage_tick_seconds",
                "Time one game-loop step took",
                histogram::FAST,
            ),
            resume_gap: b.histogram(
                "playhouse_session_resume_gap_seconds",
                "Time a resumable session was without a connection before a new one took over",
                histogram::GAP,
            ),
            session_duration: b.histogram(
                "playhouse_session_duration_seconds",
                "Life of a client session, from its connection to its end",
                histogram::LIFETIME,
            ),
            mesh_request: b.per_peer(
                "playhouse_mesh_request_seconds",
                "Round trip of a mesh request this server sent, by peer server",
            ),
            liveness: b.per_peer(
                "playhouse_mesh_liveness_rtt_seconds",
                "Round trip of a liveness ping, by peer server",
            ),
            last_liveness: std::sync::Mutex::default(),
            collect: true,
            registry: b.0,
        }
    }

    /// Keeps the per-message metrics (`true`) or skips them.
    pub(crate) fn collecting(mut self, collect: bool) -> Self {
        self.collect = collect;
        self
    }

    /// Whether per-message metrics are kept (callers skip taking timestamps otherwise).
    pub(crate) fn collects(&self) -> bool {
        self.collect
    }

    /// A stage was created.
    pub(crate) fn stage_created(&self) {
        self.stages_created.inc();
    }

    /// A stage was not created (`max_stages`, or the requester's creation quota).
    pub(crate) fn stage_refused(&self) {
        self.stages_refused.inc();
    }

    /// Stages closed at a drain's deadline (they could not move).
    pub(crate) fn stages_drained(&self, n: usize) {
        self.stages_drained.inc_by(count(n));
    }

    /// A login's stage was not created: its source address holds too many stages or
    /// creates them too fast (counted in `stage_refused` too, by the host).
    pub(crate) fn source_refused(&self, why: SourceRefusal) {
        self.stages_refused_per_source[usize::from(why == SourceRefusal::TooFast)].inc();
    }

    /// A stage closed after `stage_idle_timeout` without actors.
    pub(crate) fn stage_idle_closed(&self) {
        self.stages_idle_closed.inc();
    }

    /// A client frame of `bytes` bytes on the wire arrived.
    pub(crate) fn message_in(&self, bytes: usize) {
        if !self.collect {
            return;
        }
        self.messages_in.add(1);
        self.bytes_in.add(level(bytes));
    }

    /// A frame with a payload of `payload` bytes went to a client.
    pub(crate) fn message_out(&self, payload: usize) {
        if !self.collect {
            return;
        }
        self.messages_out.add(1);
        self.bytes_out.add(level(payload));
    }

    /// Frames received from clients so far.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn messages_in_total(&self) -> u64 {
        u64::try_from(self.messages_in.get()).unwrap_or(0)
    }

    /// Bytes entered (`delta > 0`) or left (`delta < 0`) a session's outbound queue.
    pub(crate) fn outbound_queued(&self, delta: i64) {
        if !self.collect {
            return;
        }
        self.outbound_bytes.add(delta);
    }

    /// A connection did not authenticate within `auth_timeout`.
    pub(crate) fn auth_timed_out(&self) {
        self.auth_timeouts.inc();
    }

    /// A connection was silent for `idle_timeout`.
    pub(crate) fn idle_timed_out(&self) {
        self.idle_timeouts.inc();
    }

    /// A resumable session was taken over by a new connection after `gap` without one.
    pub(crate) fn session_resumed(&self) {
        self.sessions_resumed.inc();
    }

    /// How long a resumed session was without a connection.
    pub(crate) fn resume_gap(&self, gap: Duration) {
        self.resume_gap.observe(gap);
    }

    /// A resumable session was lost (window passed, replay buffer overflowed, bad count).
    pub(crate) fn session_lost(&self) {
        self.sessions_lost.inc();
    }

    pub(crate) fn session_opened(&self, transport: &str) {
        let i = transport_index(transport);
        self.sessions[i].inc();
        self.sessions_total[i].inc();
    }

    pub(crate) fn session_closed(&self, transport: &str) {
        self.sessions[transport_index(transport)].dec();
    }

    /// A session ended after `lived`.
    pub(crate) fn session_ended(&self, lived: Duration) {
        self.session_duration.observe(lived);
    }

    /// Live sessions over every transport.
    pub(crate) fn sessions_now(&self) -> i64 {
        self.sessions.iter().map(Gauge::get).sum()
    }

    pub(crate) fn actors_joined(&self) {
        self.actors.inc();
    }

    pub(crate) fn actors_left(&self, n: usize) {
        self.actors.dec_by(level(n));
    }

    /// Actors in every stage right now.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn actors_now(&self) -> i64 {
        self.actors.get()
    }

    pub(crate) fn reject(&self, why: Rejection) {
        self.rejected[why.index()].inc();
    }

    /// A mesh message refused by a full stage mailbox: a request (answered with
    /// `STAGE_BUSY`) or a one-way message (dropped).
    pub(crate) fn stage_busy(&self, request: bool) {
        self.stage_busy[usize::from(!request)].inc();
    }

    pub(crate) fn observe_latency(&self, latency: Duration) {
        if !self.collect {
            return;
        }
        self.latency.observe(latency);
    }

    /// The request latency histogram (for the admin page's p99).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// The last liveness round trip to `peer`, if it ever answered a ping.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn last_liveness(&self, peer: &str) -> Option<Duration> {
        let last = self.last_liveness.lock().unwrap_or_else(|e| e.into_inner());
        last.get(peer).copied()
    }

    /// A client message waited `waited` in a stage mailbox, then stage code took `took`.
    pub(crate) fn handled(&self, waited: Duration, took: Duration) {
        if !self.collect {
            return;
        }
        self.mailbox_wait.observe(waited);
        self.handler.observe(took);
    }

    /// One game-loop step took `took`.
    pub(crate) fn tick(&self, took: Duration) {
        if !self.collect {
            return;
        }
        self.tick.observe(took);
    }

    /// A game loop fell behind (steps dropped, or a step longer than its timestep).
    pub(crate) fn tick_overrun(&self) {
        self.tick_overruns.inc();
    }

    /// A stage moved to another server after `paused` frozen: `moved` of its players went
    /// with it, `relayed` stayed connected here and are relayed to it.
    pub(crate) fn stage_moved(&self, paused: Duration, moved: usize, relayed: usize) {
        self.stages_moved.inc();
        self.move_pause.observe(paused);
        self.clients_moved.inc_by(count(moved));
        self.clients_relayed.inc_by(count(relayed));
    }

    /// A stage could not move (the target refused or was unreachable); it stayed.
    pub(crate) fn stage_move_failed(&self) {
        self.stage_moves_failed.inc();
    }

    /// The Prometheus text exposition; `stages` and `queued` are sampled by the caller.
    pub(crate) fn render(&self, stages: usize, queued: usize) -> String {
        self.stages.set(level(stages));
        self.queued.set(level(queued));
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

impl playhouse_mesh::MeshObserver for Metrics {
    fn request_round_trip(&self, peer: &str, took: Duration) {
        if !self.collect {
            return;
        }
        self.mesh_request.observe(peer, took);
    }

    fn liveness_round_trip(&self, peer: &str, took: Duration) {
        self.liveness.observe(peer, took);
        let mut last = self.last_liveness.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rtt) = last.get_mut(peer) {
            *rtt = took;
        } else {
            last.insert(peer.to_owned(), took);
        }
    }
}

impl Default for Metrics {
    /// Metrics of a server without an id (unit tests, test kits).
    fn default() -> Self {
        Metrics::new("")
    }
}

/// The content type of [`Metrics::render`].
#[cfg(feature = "http")]
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_series() {
        let metrics = Metrics::new("play-1");
        metrics.session_opened("ws");
        metrics.session_opened("quic");
        metrics.reject(Rejection::TooLarge);
        metrics.observe_latency(Duration::from_millis(3));
        metrics.stage_busy(true);
        metrics.stage_busy(false);
        metrics.stage_busy(false);
        metrics.observe_latency(Duration::from_secs(30));
        playhouse_mesh::MeshObserver::request_round_trip(
            &metrics,
            "api-1",
            Duration::from_millis(2),
        );
        let text = metrics.render(2, 5);
        assert!(text.contains("playhouse_sessions{server=\"play-1\",transport=\"ws\"} 1"));
        assert!(text.contains("playhouse_sessions{server=\"play-1\",transport=\"other\"} 1"));
        assert!(text.contains("playhouse_sessions_total{server=\"play-1\",transport=\"ws\"} 1"));
        assert!(
            text.contains("playhouse_rejected_total{server=\"play-1\",reason=\"too_large\"} 1")
        );
        assert!(text.contains("playhouse_stages{server=\"play-1\"} 2"));
        assert!(text.contains("playhouse_stage_queued_messages{server=\"play-1\"} 5"));
        assert!(text.contains("playhouse_stage_busy_total{server=\"play-1\",kind=\"request\"} 1"));
        assert!(text.contains("playhouse_stage_busy_total{server=\"play-1\",kind=\"send\"} 2"));
        assert!(text.contains("le=\"0.0025\"} 0"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(
            text.contains(
                "playhouse_mesh_request_seconds_count{server=\"play-1\",peer=\"api-1\"} 1"
            )
        );
        assert_eq!(metrics.sessions_now(), 2);
    }
}
