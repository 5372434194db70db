//! Play server settings, each with a documented default.

use std::time::Duration;

use playhouse_protocol::CodecConfig;

use crate::limits::RateLimit;

#[cfg(feature = "http")]
use crate::http_server::HttpLimits;

/// Settings of a Play server. Every field has a default suited to an internet-facing server.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PlayConfig {
    /// Message id that authenticates a connection. Default: `AuthenticateRequest`; the reply id
    /// replaces `Request` with `Reply` (`AuthenticateReply`).
    pub authenticate_msg_id: String,
    /// A connection that has not authenticated within this time is closed. Default: 10 s.
    pub auth_timeout: Duration,
    /// A connection silent for this long is closed (clients heartbeat every 10 s).
    /// Default: 90 s.
    pub idle_timeout: Duration,
    /// A frame whose first bytes have arrived must be complete within this time, before and
    /// after authentication, or the connection is closed: a client cannot hold a half frame
    /// (and the buffer it fills) until the idle timeout. It counts from the first byte of
    /// the frame as the transport delivers it (over TLS, a whole record; over WebSocket, a
    /// message's payload). Default: 10 s (a 2 MiB frame needs about 1.7 Mbit/s).
    pub frame_timeout: Duration,
    /// Frame limits and compression. Default: 2 MiB bodies; LZ4 from 512 bytes, but only
    /// towards clients that ask for it in the capability handshake
    /// (`playhouse_protocol::Capabilities`): the original's connectors never do, and never
    /// receive a compressed payload. `compression_threshold: None` grants it to no one.
    pub codec: CodecConfig,
    /// Messages queued for one stage. Beyond it, client sessions wait for room; a message
    /// from another server is refused instead (a request is answered `STAGE_BUSY`, a one-way
    /// message dropped and counted in `playhouse_stage_busy_total`). Default: 4096.
    pub stage_mailbox_capacity: usize,
    /// The largest frame body a connection may send before it has authenticated, in bytes
    /// (the full [`CodecConfig::max_packet_size`] applies afterwards), so an unauthenticated
    /// connection never makes the server buffer a large frame. Default: 16 KiB.
    pub max_unauthenticated_packet_size: usize,
    /// Frames queued for one client before it counts as a slow consumer and is disconnected.
    /// Default: 1024.
    pub session_outbound_capacity: usize,
    /// Bytes (payloads plus headers) queued for one client before it counts as a slow consumer
    /// and is disconnected; a single frame larger than this still goes out alone.
    /// Default: 8 MiB.
    pub session_outbound_bytes: usize,
    /// A write to a client that takes longer than this (it does not read) closes the
    /// connection. Default: 10 s.
    pub write_timeout: Duration,
    /// An actor whose client stays disconnected this long leaves its stage (`on_destroy`), so
    /// players who never come back do not hold memory forever, and a room whose players have
    /// all gone empties and then closes after `stage_idle_timeout`. A client that comes back
    /// in time (authenticating again as the same account) finds its actor as it left it; a
    /// resumable session's drop counts only once its resume window has passed.
    ///
    /// Default: 60 s: longer than a phone switching networks or an app restarting, short
    /// enough that abandoned rooms do not pile up (with the default `stage_idle_timeout` an
    /// abandoned room closes about two minutes after its last player left). `None` keeps
    /// actors until they leave or the stage closes (the C# original's behaviour): opt in only
    /// if your stages remove actors themselves, or every room stays open for good.
    pub disconnected_actor_ttl: Option<Duration>,
    /// A stage that has had no actors for this long closes by itself (`on_destroy` runs),
    /// so stages created and abandoned by clients or API calls do not accumulate; a stage can
    /// opt out with `StageContext::set_auto_dispose(false)`. `None`: stages live until closed.
    /// Default: 60 s.
    pub stage_idle_timeout: Option<Duration>,
    /// Most stages live at once; creating another (by a login with a default stage type, or
    /// over the mesh) fails with `STAGE_LIMIT_REACHED` (21). Default: 10,000.
    pub max_stages: usize,
    /// How fast one connection may create stages by logging into new stage ids (with a
    /// default stage type); over it, the login fails with `STAGE_CREATION_RATE_EXCEEDED`
    /// (22). `None`: no limit. Default: 2 per second, bursts of 10.
    pub stage_creation_rate: Option<RateLimit>,
    /// Most live stages that clients from one source address may have created (by logging
    /// into new stage ids), however many connections they use; one more login that would
    /// create a stage fails with `STAGE_LIMIT_REACHED` (21). A stage counts until it closes.
    /// A source is an IPv4 address or an IPv6 /64. Stages created over the mesh (an API
    /// server) do not count. `None`: no limit. Default: 1,000 (a tenth of `max_stages`: one
    /// address cannot fill the server). Behind a proxy that hides client addresses every
    /// client is one source: raise it or set `None`.
    pub max_stages_per_source: Option<usize>,
    /// How fast clients from one source address may create stages, however many
    /// connections they use; over it, the login fails with `STAGE_CREATION_RATE_EXCEEDED`
    /// (22). `None`: no limit. Default: 20 per second, bursts of 200.
    pub stage_creation_rate_per_source: Option<RateLimit>,
    /// How long a graceful stop may take in all: stages are closed in parallel, then
    /// connections flushed; whatever is still running at the deadline is abandoned (stage
    /// tasks aborted), so `stop()` returns within this plus a small margin. Default: 10 s.
    pub shutdown_timeout: Duration,
    /// How long a drain (`PlayServer::drain`, `POST /drain`, `play-node` on SIGTERM) lets the
    /// stages it holds play on before closing them; keep it below your orchestrator's grace
    /// period (Kubernetes' `terminationGracePeriodSeconds`) minus `shutdown_timeout`.
    /// Default: 60 s.
    pub drain_timeout: Duration,
    /// After a drain moved stages away, how long the server stays up (within the drain's
    /// deadline) to answer messages still addressed to them here: requests are redirected
    /// (the sender's mesh retries at the new server and remembers it), one-way messages
    /// passed on. Once it is gone, senders find moved stages through the new server's
    /// directory entry. Default: 2 s.
    pub drain_forwarding: Duration,
    /// Open connections allowed in all; further ones are closed at once. Lowered when the
    /// server is built, with one warning, to fit the process's file-descriptor limit (raised
    /// to the hard limit first, see [`crate::raise_fd_limit`]) less `fd_reserve`, so the cap
    /// can always be reached and excess clients are refused instead of waiting in the
    /// kernel's queue. Default: 20,000.
    pub max_connections: usize,
    /// File descriptors left to the rest of the process when `max_connections` is fitted
    /// under the file-descriptor limit. Default: 2,304: two HTTP servers at their default
    /// cap of 1,024 (the metrics endpoint and an API or WebSocket front door, see
    /// [`HttpLimits::max_connections`]) and 256 for mesh links, Redis, files and logs. Raise
    /// it if the process runs more HTTP servers or larger caps.
    pub fd_reserve: usize,
    /// Whether the per-message metrics are kept: frame and byte counters, the latency,
    /// mailbox-wait, handler and tick histograms, outbound queued bytes, mesh round trips.
    /// Off, they read zero (gauges of sessions, stages and actors, and the refusal counters
    /// are always kept). For measuring what metrics cost (`benches/observe_cost.sh`); leave it
    /// on. Default: `true`.
    pub collect_metrics: bool,
    /// Limits of the HTTP server [`crate::PlayServer::listen_metrics`] runs.
    /// Default: [`HttpLimits::default`].
    #[cfg(feature = "http")]
    pub metrics_http: HttpLimits,
    /// The bearer token of the admin listener ([`crate::PlayServer::listen_metrics`]):
    /// actions always need it, and every request does when the listener is bound to a
    /// non-loopback address. Default: `None`: one is generated when the listener starts and
    /// logged once ([`crate::PlayServer::admin_token`]).
    #[cfg(feature = "http")]
    pub admin_token: Option<String>,
    /// Open connections allowed from one IP address. Default: `None` (no limit; load tests
    /// and NATed players share addresses).
    pub max_connections_per_ip: Option<usize>,
    /// Frames one connection may send (heartbeats included); a connection over the limit
    /// is closed. It makes a client that floods a stage pay instead of the stage's other
    /// players: a message the stage broadcasts lands in every player's outbound queue, and a
    /// flooder cut after its burst has put at most `burst` frames there, fewer than
    /// `session_outbound_capacity`. `None`: no limit. Default: 200 a second, bursts of 500
    /// (a client sending 60 inputs a second uses under a third of it).
    pub rate_limit: Option<RateLimit>,
    /// Resumable sessions, granted to clients that ask in the capability handshake
    /// (`playhouse_protocol::Capabilities::RESUME`); clients that do not ask are unaffected.
    /// `None`: not offered. Default: [`ResumeConfig::default`].
    pub resume: Option<ResumeConfig>,
}

/// How long and how much a Play server keeps for a dropped resumable session.
///
/// Memory per resumable session is bounded by `max_unacked_bytes` (payloads are shared,
/// reference-counted buffers: a broadcast kept for many sessions is stored once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeConfig {
    /// How long a session waits for its client to come back after the connection drops. The
    /// stage sees nothing during it; when it passes, the session is lost and the stage gets
    /// `on_connection_changed(false)`. Default: 30 s.
    pub window: std::time::Duration,
    /// Most frames sent and not yet acknowledged by the client; one more loses the session.
    /// Default: 1024.
    pub max_unacked_frames: u32,
    /// Most bytes (payloads plus headers) sent and not yet acknowledged; more loses the
    /// session. Default: 1 MiB.
    pub max_unacked_bytes: usize,
    /// Each side acknowledges at least every this many frames received (and with heartbeats).
    /// Default: 32.
    pub ack_every: u32,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        ResumeConfig {
            window: std::time::Duration::from_secs(30),
            max_unacked_frames: 1024,
            max_unacked_bytes: 1024 * 1024,
            ack_every: 32,
        }
    }
}

impl Default for PlayConfig {
    fn default() -> Self {
        PlayConfig {
            authenticate_msg_id: "AuthenticateRequest".to_owned(),
            auth_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(60),
            drain_forwarding: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(90),
            frame_timeout: Duration::from_secs(10),
            codec: CodecConfig::default(),
            stage_mailbox_capacity: 4096,
            max_unauthenticated_packet_size: 16 * 1024,
            session_outbound_capacity: 1024,
            session_outbound_bytes: 8 * 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            disconnected_actor_ttl: Some(Duration::from_secs(60)),
            stage_idle_timeout: Some(Duration::from_secs(60)),
            max_stages: 10_000,
            stage_creation_rate: Some(RateLimit {
                per_second: 2,
                burst: 10,
            }),
            max_stages_per_source: Some(1_000),
            stage_creation_rate_per_source: Some(RateLimit {
                per_second: 20,
                burst: 200,
            }),
            shutdown_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            fd_reserve: 2 * 1_024 + 256,
            collect_metrics: true,
            #[cfg(feature = "http")]
            metrics_http: HttpLimits::default(),
            #[cfg(feature = "http")]
            admin_token: None,
            max_connections_per_ip: None,
            rate_limit: Some(RateLimit {
                per_second: 200,
                burst: 500,
            }),
            resume: Some(ResumeConfig::default()),
        }
    }
}

impl PlayConfig {
    /// The reply id for the authenticate message.
    pub(crate) fn authenticate_reply_id(&self) -> String {
        reply_id(&self.authenticate_msg_id)
    }
}

/// `FooRequest` → `FooReply`; any other id gets `Reply` appended.
pub(crate) fn reply_id(request_id: &str) -> String {
    match request_id.strip_suffix("Request") {
        Some(stem) => format!("{stem}Reply"),
        None => format!("{request_id}Reply"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reply_ids() {
        assert_eq!(super::reply_id("AuthenticateRequest"), "AuthenticateReply");
        assert_eq!(super::reply_id("Login"), "LoginReply");
    }
}
