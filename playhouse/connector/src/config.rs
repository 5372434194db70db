//! Connector settings.

use std::time::Duration;

/// How a [`Connector`](crate::Connector) connects, times out and delivers callbacks.
///
/// Every field is public; start from [`ConnectorConfig::default`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// use playhouse_connector::ConnectorConfig;
///
/// let config = ConnectorConfig {
///     request_timeout: Duration::from_secs(5),
///     use_main_thread_callbacks: false,
///     ..ConnectorConfig::default()
/// };
/// assert_eq!(config.heartbeat_interval, Duration::from_secs(10));
/// ```
#[derive(Clone, Debug)]
pub struct ConnectorConfig {
    /// How long a request waits for its reply before failing with
    /// [`RequestTimeout`](crate::ConnectorError::RequestTimeout). Default: 30 s.
    pub request_timeout: Duration,
    /// How often the connection task sends a heartbeat. [`Duration::ZERO`] disables heartbeats
    /// and the silence check below. Default: 10 s.
    pub heartbeat_interval: Duration,
    /// A connection on which nothing at all (not even a heartbeat echo) arrives for this long is
    /// dropped. Only checked while heartbeats are enabled; [`Duration::ZERO`] disables the check.
    /// Default: 30 s.
    pub heartbeat_timeout: Duration,
    /// Upper bound for dialing (name lookup plus TCP handshake), and for flushing queued
    /// messages on a client-initiated disconnect. [`Duration::ZERO`] means no bound.
    /// Default: 10 s.
    pub connect_timeout: Duration,
    /// The message id that may be sent before authentication (requests with it also mark the
    /// connection authenticated when they succeed). Default: `"AuthenticateRequest"`.
    pub authenticate_msg_id: String,
    /// `true`: every callback and event is queued until
    /// [`main_thread_action`](crate::Connector::main_thread_action) runs it on the caller's
    /// thread (a game loop calls it each frame). `false`: callbacks run directly on the
    /// connector's tokio task. Default: `true`.
    pub use_main_thread_callbacks: bool,
    /// Most callbacks waiting in the queue; when it is full a new event is dropped with a
    /// warning. Default: 65 536.
    pub callback_queue_capacity: usize,
    /// Largest frame body sent or accepted, in bytes (also caps a decompressed payload).
    /// Default: 2 MiB.
    pub max_packet_size: usize,
    /// Connect over WebSocket (binary messages, one frame each) at [`ws_path`](Self::ws_path)
    /// instead of raw TCP. Default: `false`.
    pub use_websocket: bool,
    /// Wrap the connection (TCP or WebSocket) in TLS. Default: `false`.
    pub use_tls: bool,
    /// TLS settings, e.g. trusting a private CA
    /// (`playhouse_transport::tls::client_config_trusting`). `None`: the Mozilla roots.
    /// Default: `None`.
    pub tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Accept any server certificate: for development against self-signed servers only.
    /// Default: `false`.
    pub tls_skip_verification: bool,
    /// HTTP path of the WebSocket endpoint. Default: `"/ws"`.
    pub ws_path: String,
    /// Ask the server for LZ4-compressed large payloads: the connector opens every connection
    /// with the capability handshake (`@Hello@`, see `playhouse_protocol::Capabilities`), and
    /// decodes compressed and plain payloads alike. Turn it off for a server that does not know
    /// the handshake (the C# original). Default: `true`.
    pub compression: bool,
    /// Resumable sessions: ask the server (in the hello) to keep the session when the
    /// connection drops; the connector then reconnects by itself ([`reconnect`](Self::reconnect)),
    /// resumes, resends what the server did not receive, and delivers every reply and push once
    /// and in order. `on_session` reports reconnecting / resumed / lost. Needs a connection
    /// the connector can dial again ([`Connector::connect`](crate::Connector::connect) or
    /// [`Connector::connect_with`](crate::Connector::connect_with)). Default: `false`.
    pub resume: bool,
    /// How a resumable session dials again after a drop. Default: [`ReconnectPolicy::default`].
    pub reconnect: ReconnectPolicy,
}

/// Backoff between reconnect attempts of a resumable session: the first attempt at once, then
/// `initial_delay`, doubling up to `max_delay`, each with up to half of it added at random so
/// that many clients cut off together do not come back in lockstep. Attempts stop when the
/// server's resume window has passed (the session is lost then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Delay after the first failed attempt. Default: 100 ms.
    pub initial_delay: Duration,
    /// Longest delay between attempts. Default: 2 s.
    pub max_delay: Duration,
    /// Seed of the jitter; `None`: taken from the session's token (different per session).
    /// Set it for reproducible runs (the simulation does). Default: `None`.
    pub jitter_seed: Option<u64>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            jitter_seed: None,
        }
    }
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        ConnectorConfig {
            request_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            authenticate_msg_id: "AuthenticateRequest".to_owned(),
            use_main_thread_callbacks: true,
            callback_queue_capacity: 65_536,
            max_packet_size: 2 * 1024 * 1024,
            use_websocket: false,
            use_tls: false,
            tls_config: None,
            tls_skip_verification: false,
            ws_path: "/ws".to_owned(),
            compression: true,
            resume: false,
            reconnect: ReconnectPolicy::default(),
        }
    }
}
