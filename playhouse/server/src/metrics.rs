//! Server metrics: plain atomics on the hot path, rendered in the Prometheus text format on
//! demand (see [`crate::PlayServer::metrics`] and [`crate::PlayServer::listen_metrics`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::Histogram;

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

/// Counters and gauges of one server.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    sessions: [AtomicI64; TRANSPORTS.len()],
    sessions_total: [AtomicU64; TRANSPORTS.len()],
    stages_created: AtomicU64,
    /// Stages not created because the server hosts `max_stages` already, or the connection
    /// or its source address created stages too fast or holds too many.
    stages_refused: AtomicU64,
    /// Of `stages_refused`, the logins refused by their source's quota: `[live, rate]`.
    stages_refused_per_source: [AtomicU64; 2],
    /// Stages closed after `stage_idle_timeout` without actors.
    stages_idle_closed: AtomicU64,
    stages_drained: AtomicU64,
    /// Actors in every stage.
    actors: AtomicI64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    rejected: [AtomicU64; REJECTIONS.len()],
    auth_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    /// Resumable sessions taken over by a new connection.
    sessions_resumed: AtomicU64,
    /// Resumable sessions lost (window passed, replay buffer overflowed).
    sessions_lost: AtomicU64,
    /// Mesh messages a full stage mailbox refused: `[requests, one-way]`.
    stage_busy: [AtomicU64; 2],
    latency: Histogram,
    /// Stages moved away, moves that failed, and their players: moved with their stage,
    /// or closed (not resumable, they could not follow).
    stages_moved: AtomicU64,
    stage_moves_failed: AtomicU64,
    clients_moved: AtomicU64,
    clients_relayed: AtomicU64,
    /// How long each move held its stage frozen.
    move_pause: Histogram,
}

fn transport_index(transport: &str) -> usize {
    TRANSPORTS
        .iter()
        .position(|t| *t == transport)
        .unwrap_or(TRANSPORTS.len() - 1)
}

impl Metrics {
    /// A stage was created.
    pub(crate) fn stage_created(&self) {
        self.stages_created.fetch_add(1, Ordering::Relaxed);
    }

    /// A stage was not created (`max_stages`, or the requester's creation quota).
    pub(crate) fn stage_refused(&self) {
        self.stages_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Stages closed at a drain's deadline (they could not move).
    pub(crate) fn stages_drained(&self, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        self.stages_drained.fetch_add(count, Ordering::Relaxed);
    }

    /// A login's stage was not created: its source address holds too many stages or
    /// creates them too fast (counted in `stage_refused` too, by the host).
    pub(crate) fn source_refused(&self, why: SourceRefusal) {
        let i = usize::from(why == SourceRefusal::TooFast);
        self.stages_refused_per_source[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A stage closed after `stage_idle_timeout` without actors.
    pub(crate) fn stage_idle_closed(&self) {
        self.stages_idle_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// A client frame of `bytes` bytes on the wire arrived.
    pub(crate) fn message_in(&self, bytes: usize) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A frame with a payload of `payload` bytes went to a client.
    pub(crate) fn message_out(&self, payload: usize) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(payload as u64, Ordering::Relaxed);
    }

    /// A connection did not authenticate within `auth_timeout`.
    pub(crate) fn auth_timed_out(&self) {
        self.auth_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was silent for `idle_timeout`.
    pub(crate) fn idle_timed_out(&self) {
        self.idle_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// A resumable session was taken over by a new connection.
    pub(crate) fn session_resumed(&self) {
        self.sessions_resumed.fetch_add(1, Ordering::Relaxed);
    }

    /// A resumable session was lost (window passed, replay buffer overflowed, bad count).
    pub(crate) fn session_lost(&self) {
        self.sessions_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session_opened(&self, transport: &str) {
        let i = transport_index(transport);
        self.sessions[i].fetch_add(1, Ordering::Relaxed);
        self.sessions_total[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session_closed(&self, transport: &str) {
        self.sessions[transport_index(transport)].fetch_sub(1, Ordering::Relaxed);
    }

    /// Live sessions over every transport.
    pub(crate) fn sessions_now(&self) -> i64 {
        self.sessions
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn actors_joined(&self) {
        self.actors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn actors_left(&self, count: usize) {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.actors.fetch_sub(count, Ordering::Relaxed);
    }

    /// Actors in every stage right now.
    pub(crate) fn actors_now(&self) -> i64 {
        self.actors.load(Ordering::Relaxed)
    }

    pub(crate) fn reject(&self, why: Rejection) {
        self.rejected[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A mesh message refused by a full stage mailbox: a request (answered with
    /// `STAGE_BUSY`) or a one-way message (dropped).
    pub(crate) fn stage_busy(&self, request: bool) {
        let i = usize::from(!request);
        self.stage_busy[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn observe_latency(&self, latency: Duration) {
        self.latency.observe(latency);
    }

    /// A stage moved to another server after `paused` frozen: `moved` of its players went
    /// with it, `relayed` stayed connected here and are relayed to it.
    pub(crate) fn stage_moved(&self, paused: Duration, moved: usize, relayed: usize) {
        self.stages_moved.fetch_add(1, Ordering::Relaxed);
        self.move_pause.observe(paused);
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        self.clients_moved
            .fetch_add(count(moved), Ordering::Relaxed);
        self.clients_relayed
            .fetch_add(count(relayed), Ordering::Relaxed);
    }

    /// A stage could not move (the target refused or was unreachable); it stayed.
    pub(crate) fn stage_move_failed(&self) {
        self.stage_moves_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition; `stages` and `queued` are sampled by the caller.
    pub(crate) fn render(&self, server_id: &str, stages: usize, queued: usize) -> String {
        let mut out = String::with_capacity(4096);
        let label = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        label(
            &mut out,
            "playhouse_sessions",
            "gauge",
            "Open client connections.",
        );
        for (i, transport) in TRANSPORTS.iter().enumerate() {
            let n = self.sessions[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "playhouse_sessions{{server=\"{server_id}\",transport=\"{transport}\"}} {n}"
            );
        }
        label(
            &mut out,
            "playhouse_sessions_total",
            "counter",
            "Accepted client connections.",
        );
        for (i, transport) in TRANSPORTS.iter().enumerate() {
            let n = load(&self.sessions_total[i]);
            let _ = writeln!(
                out,
                "playhouse_sessions_total{{server=\"{server_id}\",transport=\"{transport}\"}} {n}"
            );
        }
        let simple: [(&str, &str, &str, u64); 18] = [
            ("playhouse_stages", "gauge", "Live stages.", stages as u64),
            (
                "playhouse_stages_created_total",
                "counter",
                "Stages created.",
                load(&self.stages_created),
            ),
            (
                "playhouse_stages_refused_total",
                "counter",
                "Stages not created: max_stages reached, or a connection's or a source address's \
                 stage quota exceeded.",
                load(&self.stages_refused),
            ),
            (
                "playhouse_stages_idle_closed_total",
                "counter",
                "Stages closed after stage_idle_timeout without actors.",
                load(&self.stages_idle_closed),
            ),
            (
                "playhouse_stages_drained_total",
                "counter",
                "Stages closed at a drain's deadline; their clients got STAGE_DRAINED.",
                load(&self.stages_drained),
            ),
            (
                "playhouse_stages_moved_total",
                "counter",
                "Stages moved, live and with their players, to another Play server.",
                load(&self.stages_moved),
            ),
            (
                "playhouse_stage_moves_failed_total",
                "counter",
                "Stage moves a target refused or did not answer; the stage stayed.",
                load(&self.stage_moves_failed),
            ),
            (
                "playhouse_clients_moved_total",
                "counter",
                "Players whose resumable session followed their stage to another server.",
                load(&self.clients_moved),
            ),
            (
                "playhouse_clients_relayed_total",
                "counter",
                "Players not resumable when their stage moved: kept connected here, relayed to it.",
                load(&self.clients_relayed),
            ),
            (
                "playhouse_actors",
                "gauge",
                "Actors in every stage.",
                u64::try_from(self.actors_now()).unwrap_or(0),
            ),
            (
                "playhouse_stage_queued_messages",
                "gauge",
                "Messages waiting in stage mailboxes.",
                queued as u64,
            ),
            (
                "playhouse_messages_in_total",
                "counter",
                "Frames received from clients.",
                load(&self.messages_in),
            ),
            (
                "playhouse_messages_out_total",
                "counter",
                "Frames sent to clients.",
                load(&self.messages_out),
            ),
            (
                "playhouse_bytes_in_total",
                "counter",
                "Frame bytes received.",
                load(&self.bytes_in),
            ),
            (
                "playhouse_bytes_out_total",
                "counter",
                "Frame payload bytes sent (before compression).",
                load(&self.bytes_out),
            ),
            (
                "playhouse_sessions_resumed_total",
                "counter",
                "Resumable sessions taken over by a new connection after a drop.",
                load(&self.sessions_resumed),
            ),
            (
                "playhouse_sessions_lost_total",
                "counter",
                "Resumable sessions lost: resume window passed or replay buffer overflowed.",
                load(&self.sessions_lost),
            ),
            (
                "playhouse_auth_timeouts_total",
                "counter",
                "Connections closed for not authenticating in time.",
                load(&self.auth_timeouts),
            ),
        ];
        for (name, kind, help, value) in simple {
            label(&mut out, name, kind, help);
            let _ = writeln!(out, "{name}{{server=\"{server_id}\"}} {value}");
        }
        label(
            &mut out,
            "playhouse_idle_timeouts_total",
            "counter",
            "Connections closed for silence.",
        );
        let _ = writeln!(
            out,
            "playhouse_idle_timeouts_total{{server=\"{server_id}\"}} {}",
            load(&self.idle_timeouts)
        );
        label(
            &mut out,
            "playhouse_stages_refused_per_source_total",
            "counter",
            "Logins whose stage was not created because their source address holds \
             max_stages_per_source stages (limit=live) or creates them faster than \
             stage_creation_rate_per_source (limit=rate).",
        );
        for (i, limit) in ["live", "rate"].iter().enumerate() {
            let _ = writeln!(
                out,
                "playhouse_stages_refused_per_source_total{{server=\"{server_id}\",limit=\"{limit}\"}} {}",
                load(&self.stages_refused_per_source[i])
            );
        }
        label(
            &mut out,
            "playhouse_stage_busy_total",
            "counter",
            "Mesh messages refused because the stage mailbox was full: requests answered \
             STAGE_BUSY, one-way messages dropped.",
        );
        for (i, kind) in ["request", "send"].iter().enumerate() {
            let _ = writeln!(
                out,
                "playhouse_stage_busy_total{{server=\"{server_id}\",kind=\"{kind}\"}} {}",
                load(&self.stage_busy[i])
            );
        }
        label(
            &mut out,
            "playhouse_rejected_total",
            "counter",
            "Frames or connections refused, by reason.",
        );
        for (i, (_, reason)) in REJECTIONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "playhouse_rejected_total{{server=\"{server_id}\",reason=\"{reason}\"}} {}",
                load(&self.rejected[i])
            );
        }
        self.latency.render(
            &mut out,
            "playhouse_request_latency_seconds",
            "Time from a client request's arrival to its reply leaving the server.",
            server_id,
        );
        self.move_pause.render(
            &mut out,
            "playhouse_stage_move_pause_seconds",
            "How long a stage moving to another server was frozen (snapshot to accepted).",
            server_id,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_series() {
        let metrics = Metrics::default();
        metrics.session_opened("ws");
        metrics.session_opened("quic");
        metrics.reject(Rejection::TooLarge);
        metrics.observe_latency(Duration::from_millis(3));
        metrics.stage_busy(true);
        metrics.stage_busy(false);
        metrics.stage_busy(false);
        metrics.observe_latency(Duration::from_secs(30));
        let text = metrics.render("play-1", 2, 5);
        assert!(text.contains("playhouse_sessions{server=\"play-1\",transport=\"ws\"} 1"));
        assert!(text.contains("playhouse_sessions{server=\"play-1\",transport=\"other\"} 1"));
        assert!(
            text.contains("playhouse_rejected_total{server=\"play-1\",reason=\"too_large\"} 1")
        );
        assert!(text.contains("playhouse_stages{server=\"play-1\"} 2"));
        assert!(text.contains("playhouse_stage_busy_total{server=\"play-1\",kind=\"request\"} 1"));
        assert!(text.contains("playhouse_stage_busy_total{server=\"play-1\",kind=\"send\"} 2"));
        assert!(text.contains("le=\"0.0025\"} 0"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert_eq!(metrics.sessions_now(), 2);
    }
}
