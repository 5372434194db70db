//! Connector settings.

use std::sync::Arc;
use std::time::Duration;

use playhouse_protocol::DEFAULT_MAX_PACKET_SIZE;

/// How a [`Connector`](crate::Connector) connects, times out and delivers callbacks.
///
/// Start from [`ConnectorConfig::default`] and change what you need with the setters (each
/// documents its default); the fields stay readable, and writable on a `mut` value. New
/// settings may be added in a minor release, hence `#[non_exhaustive]`: build it with the
/// setters, not a struct literal.
///
/// ```
/// use std::time::Duration;
/// use playhouse_connector::{ConnectorConfig, Transport};
///
/// let config = ConnectorConfig::default()
///     .transport(Transport::websocket())
///     .request_timeout(Duration::from_secs(5))
///     .use_main_thread_callbacks(false);
/// assert_eq!(config.heartbeat_interval, Duration::from_secs(10));
/// assert!(matches!(config.transport, Transport::WebSocket { ref path } if path == "/ws"));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
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
    /// Upper bound for dialing (name lookup, TCP handshake and any TLS or WebSocket
    /// handshake), and for flushing queued messages on a client-initiated disconnect.
    /// [`Duration::ZERO`] means no bound. Default: 10 s.
    pub connect_timeout: Duration,
    /// The message id that may be sent before authentication (requests with it also mark the
    /// connection authenticated when they succeed). Default: `"AuthenticateRequest"`.
    pub authenticate_msg_id: String,
    /// `true`: every callback and event is queued until
    /// [`main_thread_action`](crate::Connector::main_thread_action) runs it on the caller's
    /// thread (a game loop calls it each frame). `false`: callbacks run directly on the
    /// connector's tokio task. Default: `true`, for engines with a main thread; an async
    /// client receives pushes with [`Connector::pushes`](crate::Connector::pushes) instead,
    /// which works in either mode without `main_thread_action`.
    pub use_main_thread_callbacks: bool,
    /// Most callbacks waiting in the queue; when it is full a new event is dropped with a
    /// warning. Default: 65 536.
    pub callback_queue_capacity: usize,
    /// Most pushes waiting in [`Connector::pushes`](crate::Connector::pushes)' receiver. When it
    /// is full nothing is dropped: the connection stops reading from the server until the
    /// application takes a push (heartbeats, timeouts and sends go on). Default: 4096.
    pub push_queue_capacity: usize,
    /// Largest frame body sent or accepted, in bytes (also caps a decompressed payload).
    /// Default: 2 MiB.
    pub max_packet_size: usize,
    /// What [`connect`](crate::Connector::connect) dials: TCP, TLS, WebSocket or WebSocket
    /// over TLS. Default: [`Transport::Tcp`].
    pub transport: Transport,
    /// Ask the server for LZ4-compressed large payloads: the connector opens every connection
    /// with the capability handshake (`@Hello@`, see `playhouse_protocol::Capabilities`), and
    /// decodes compressed and plain payloads alike. Turn it off for a server that does not know
    /// the handshake (the C# original). Default: `true`.
    pub compression: bool,
    /// Resumable sessions: ask the server (in the hello) to keep the session when the
    /// connection drops; the connector then reconnects by itself ([`reconnect`](Self::reconnect)),
    /// resumes, resends what the server did not receive, and delivers every reply and push once
    /// and in order. `on_session` reports reconnecting / resumed / lost / moved. Needs a
    /// connection the connector can dial again ([`Connector::connect`](crate::Connector::connect),
    /// [`Connector::connect_with_endpoint`](crate::Connector::connect_with_endpoint) or
    /// [`Connector::connect_with`](crate::Connector::connect_with)); the first two also follow a
    /// stage the server moves to another server ([`SessionEvent::Moved`](crate::SessionEvent::Moved)).
    /// Default: `false`.
    pub resume: bool,
    /// How a resumable session dials again after a drop. Default: [`ReconnectPolicy::default`].
    pub reconnect: ReconnectPolicy,
}

impl ConnectorConfig {
    /// Sets [`request_timeout`](Self::request_timeout). Default: 30 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use playhouse_connector::ConnectorConfig;
    /// let config = ConnectorConfig::default().request_timeout(Duration::from_secs(5));
    /// assert_eq!(config.request_timeout, Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`heartbeat_interval`](Self::heartbeat_interval); zero turns heartbeats and the
    /// silence check off. Default: 10 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use playhouse_connector::ConnectorConfig;
    /// let quiet = ConnectorConfig::default().heartbeat_interval(Duration::ZERO);
    /// assert!(quiet.heartbeat_interval.is_zero());
    /// ```
    #[must_use]
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Sets [`heartbeat_timeout`](Self::heartbeat_timeout). Default: 30 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use playhouse_connector::ConnectorConfig;
    /// let config = ConnectorConfig::default().heartbeat_timeout(Duration::from_secs(5));
    /// assert_eq!(config.heartbeat_timeout, Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout); zero means no bound. Default: 10 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use playhouse_connector::ConnectorConfig;
    /// let config = ConnectorConfig::default().connect_timeout(Duration::from_secs(2));
    /// assert_eq!(config.connect_timeout, Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`authenticate_msg_id`](Self::authenticate_msg_id). Default:
    /// `"AuthenticateRequest"`.
    ///
    /// ```
    /// # use playhouse_connector::ConnectorConfig;
    /// let config = ConnectorConfig::default().authenticate_msg_id("LoginRequest");
    /// assert_eq!(config.authenticate_msg_id, "LoginRequest");
    /// ```
    #[must_use]
    pub fn authenticate_msg_id(mut self, msg_id: impl Into<String>) -> Self {
        self.authenticate_msg_id = msg_id.into();
        self
    }

    /// Sets [`use_main_thread_callbacks`](Self::use_main_thread_callbacks). Default: `true`.
    ///
    /// ```
    /// # use playhouse_connector::ConnectorConfig;
    /// let direct = ConnectorConfig::default().use_main_thread_callbacks(false);
    /// assert!(!direct.use_main_thread_callbacks);
    /// ```
    #[must_use]
    pub fn use_main_thread_callbacks(mut self, queued: bool) -> Self {
        self.use_main_thread_callbacks = queued;
        self
    }

    /// Sets [`callback_queue_capacity`](Self::callback_queue_capacity). Default: 65 536.
    ///
    /// ```
    /// # use playhouse_connector::ConnectorConfig;
    /// let config = ConnectorConfig::default().callback_queue_capacity(1024);
    /// assert_eq!(config.callback_queue_capacity, 1024);
    /// ```
    #[must_use]
    pub fn callback_queue_capacity(mut self, capacity: usize) -> Self {
        self.callback_queue_capacity = capacity;
        self
    }

    /// Sets [`push_queue_capacity`](Self::push_queue_capacity) (at least 1). Default: 4096.
    ///
    /// ```
    /// # use playhouse_connector::ConnectorConfig;
    /// let config = ConnectorConfig::default().push_queue_capacity(256);
    /// assert_eq!(config.push_queue_capacity, 256);
    /// ```
    #[must_use]
    pub fn push_queue_capacity(mut self, capacity: usize) -> Self {
        self.push_queue_capacity = capacity;
        self
    }

    /// Sets [`max_packet_size`](Self::max_packet_size). Default: 2 MiB.
    ///
    /// ```
    /// # use playhouse_connector::ConnectorConfig;
    /// let config = ConnectorConfig::default().max_packet_size(64 * 1024);
    /// assert_eq!(config.max_packet_size, 65_536);
    /// ```
    #[must_use]
    pub fn max_packet_size(mut self, bytes: usize) -> Self {
        self.max_packet_size = bytes;
        self
    }

    /// Sets [`transport`](Self::transport). Default: [`Transport::Tcp`].
    ///
    /// ```
    /// # use playhouse_connector::{ConnectorConfig, Transport};
    /// let config = ConnectorConfig::default().transport(Transport::websocket_tls());
    /// assert!(config.transport.is_tls());
    /// ```
    #[must_use]
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets [`compression`](Self::compression). Default: `true`.
    ///
    /// ```
    /// # use playhouse_connector::ConnectorConfig;
    /// let plain = ConnectorConfig::default().compression(false);
    /// assert!(!plain.compression);
    /// ```
    #[must_use]
    pub fn compression(mut self, on: bool) -> Self {
        self.compression = on;
        self
    }

    /// Sets [`resume`](Self::resume). Default: `false`.
    ///
    /// ```
    /// # use playhouse_connector::ConnectorConfig;
    /// let resumable = ConnectorConfig::default().resume(true);
    /// assert!(resumable.resume);
    /// ```
    #[must_use]
    pub fn resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }

    /// Sets [`reconnect`](Self::reconnect). Default: [`ReconnectPolicy::default`].
    ///
    /// ```
    /// # use playhouse_connector::{ConnectorConfig, ReconnectPolicy};
    /// let config = ConnectorConfig::default().reconnect(ReconnectPolicy {
    ///     jitter_seed: Some(7),
    ///     ..ReconnectPolicy::default()
    /// });
    /// assert_eq!(config.reconnect.jitter_seed, Some(7));
    /// ```
    #[must_use]
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }
}

/// What a connector dials. Every variant carries the frames of SPEC §4 unchanged; WebSocket
/// puts one frame in each binary message.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Transport {
    /// Plain TCP. The default.
    #[default]
    Tcp,
    /// TLS over TCP.
    Tls {
        /// Which server certificates to accept.
        trust: TlsTrust,
    },
    /// WebSocket (`ws://host:port{path}`).
    WebSocket {
        /// HTTP path of the WebSocket endpoint; a Play server's is `/ws`.
        path: String,
    },
    /// WebSocket over TLS (`wss://host:port{path}`).
    WebSocketTls {
        /// HTTP path of the WebSocket endpoint; a Play server's is `/ws`.
        path: String,
        /// Which server certificates to accept.
        trust: TlsTrust,
    },
}

impl Transport {
    /// TLS over TCP, trusting the public roots.
    pub fn tls() -> Self {
        Transport::Tls {
            trust: TlsTrust::PublicRoots,
        }
    }

    /// WebSocket at `/ws`.
    pub fn websocket() -> Self {
        Transport::WebSocket {
            path: DEFAULT_WS_PATH.to_owned(),
        }
    }

    /// WebSocket over TLS at `/ws`, trusting the public roots.
    pub fn websocket_tls() -> Self {
        Transport::WebSocketTls {
            path: DEFAULT_WS_PATH.to_owned(),
            trust: TlsTrust::PublicRoots,
        }
    }

    /// The same transport with `trust` deciding which certificates to accept; a transport
    /// without TLS is returned unchanged.
    ///
    /// ```
    /// # use playhouse_connector::{TlsTrust, Transport};
    /// let dev = Transport::websocket_tls().with_trust(TlsTrust::SkipVerification);
    /// assert!(matches!(dev, Transport::WebSocketTls { trust: TlsTrust::SkipVerification, .. }));
    /// ```
    #[must_use]
    pub fn with_trust(self, trust: TlsTrust) -> Self {
        match self {
            Transport::Tls { .. } => Transport::Tls { trust },
            Transport::WebSocketTls { path, .. } => Transport::WebSocketTls { path, trust },
            other => other,
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls { .. } | Transport::WebSocketTls { .. })
    }

    /// The WebSocket path, for the WebSocket transports.
    pub fn websocket_path(&self) -> Option<&str> {
        match self {
            Transport::WebSocket { path } | Transport::WebSocketTls { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// The WebSocket path of a Play server.
const DEFAULT_WS_PATH: &str = "/ws";

/// Which server certificates a TLS transport accepts.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum TlsTrust {
    /// Certificates that chain to the Mozilla root store (`webpki-roots`). The default.
    #[default]
    PublicRoots,
    /// A rustls client configuration of your own, e.g. one trusting a private CA
    /// (`playhouse_transport::tls::client_config_trusting`).
    Config(Arc<rustls::ClientConfig>),
    /// Any certificate at all: for development against self-signed servers only.
    SkipVerification,
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
            push_queue_capacity: 4096,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            transport: Transport::Tcp,
            compression: true,
            resume: false,
            reconnect: ReconnectPolicy::default(),
        }
    }
}
