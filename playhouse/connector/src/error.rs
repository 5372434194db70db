//! Why a connector operation failed.

use std::sync::Arc;

use playhouse_protocol::{ErrorCode, Packet, PayloadError};

/// Why a connector operation failed. [`ConnectorError::code`] maps every variant to the wire
/// status code a game would show or log.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Not connected, or the connection dropped while the request was pending.
    /// Code [`ErrorCode::CONNECTOR_DISCONNECTED`] (60201).
    #[error("not connected")]
    Disconnected,
    /// No reply arrived within the request timeout; a late reply is discarded.
    /// Code [`ErrorCode::CONNECTOR_REQUEST_TIMEOUT`] (60202).
    #[error("request timed out")]
    RequestTimeout,
    /// A message other than the authenticate message was sent before authentication succeeded.
    /// Code [`ErrorCode::CONNECTOR_UNAUTHENTICATED`] (60203).
    #[error("not authenticated")]
    Unauthenticated,
    /// The server replied with a non-zero error code. For
    /// [`ErrorCode::NOT_AUTHENTICATED`] the message adds the likely cause (e.g. a login under
    /// another message id than the server's; a Play server then closes the connection).
    #[error("server replied with error {code}{hint}", hint = server_hint(*code))]
    Server {
        /// The server's error code.
        code: ErrorCode,
        /// The reply as the server sent it (often an empty payload).
        packet: Packet,
    },
    /// The server closed the connection on purpose and said why: `code`, e.g.
    /// [`ErrorCode::STAGE_DRAINED`] (the server drained before a deploy and the stage could
    /// not move). A resumable session ends with it (`SessionEvent::Lost`).
    #[error("the server closed the connection: {code}{hint}", hint = closed_hint(*code))]
    Closed {
        /// Why.
        code: ErrorCode,
    },
    /// Dialing failed: refused, unknown host, a failed TLS or WebSocket handshake, or timed out
    /// ([`std::io::ErrorKind::TimedOut`]).
    /// Code [`ErrorCode::CONNECTOR_DISCONNECTED`] (60201).
    #[error("connect failed: {0}")]
    Connect(#[source] std::io::Error),
    /// `connect` was called while connected or connecting. Code [`ErrorCode::SYSTEM_ERROR`].
    #[error("already connected")]
    AlreadyConnected,
    /// The operation or packet is not supported: TLS settings that cannot be built, a message id
    /// outside 1..=255 bytes, a packet over `max_packet_size`, a full command queue, or all
    /// 65 535 request sequence numbers in use. Code [`ErrorCode::SYSTEM_ERROR`].
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The server sent a frame that could not be decoded (e.g. bad LZ4 data); the connection was
    /// closed. Code [`ErrorCode::CONNECTOR_DISCONNECTED`] (60201).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered in HTTP where PlayHouse frames were expected: this is a WebSocket
    /// (or HTTP) port and the connector speaks plain TCP. Connect with
    /// [`Transport::websocket`](crate::Transport::websocket) there, or to the Play server's TCP
    /// port. Code [`ErrorCode::CONNECTOR_DISCONNECTED`] (60201).
    #[error(
        "the server answered in HTTP: this port speaks HTTP/WebSocket, not PlayHouse over TCP; \
         use Transport::websocket() for it, or the Play server's TCP port"
    )]
    HttpPort,
    /// The WebSocket handshake got no HTTP answer (the server closed the connection, or sent
    /// something else): this port does not speak WebSocket, e.g. it is a Play server's plain
    /// TCP port ([`Transport::Tcp`](crate::Transport::Tcp)). The source says what came back.
    /// Code [`ErrorCode::CONNECTOR_DISCONNECTED`] (60201).
    #[error(
        "connect failed: this port does not speak WebSocket (a plain TCP port? use Transport::Tcp \
         for it): {0}"
    )]
    NotWebSocket(#[source] std::io::Error),
    /// The server closed the connection before authentication succeeded. A Play server does
    /// so when the first message is not its authenticate message
    /// (`PlayConfig::authenticate_msg_id`, by default `"AuthenticateRequest"`; the connector's is
    /// [`ConnectorConfig::authenticate_msg_id`](crate::ConnectorConfig::authenticate_msg_id)),
    /// when no authentication arrives within its `auth_timeout`, or when the port is not one of
    /// its client ports. Code [`ErrorCode::CONNECTOR_DISCONNECTED`] (60201).
    #[error(
        "the server closed the connection before authentication: was the first request the \
         server's authenticate message (PlayConfig::authenticate_msg_id, by default \
         \"AuthenticateRequest\"), sent in time, to the Play server's client port?"
    )]
    ClosedBeforeAuthentication,
    /// A reply (or push) is not the message asked for: the error of
    /// [`Packet::decode`], so `?` works on it where the error type is `ConnectorError`.
    /// Code [`ErrorCode::INVALID_MESSAGE`].
    #[error("unexpected message: {0}")]
    Payload(#[from] PayloadError),
    /// The resumable session was lost (see [`SessionEvent::Lost`](crate::SessionEvent::Lost)):
    /// the request may or may not have run. Code [`ErrorCode::SESSION_LOST`] (23).
    #[error("session lost")]
    SessionLost,
    /// The server moved the stage to another server (`@Move@`, e.g. while draining before a
    /// deploy) and this connection could not follow it there: it had no resumable session
    /// ([`ConnectorConfig::resume`](crate::ConnectorConfig::resume) off, or no session
    /// granted yet), or it was opened with
    /// [`Connector::connect_with`](crate::Connector::connect_with) or
    /// [`Connector::connect_stream`](crate::Connector::connect_stream), which cannot dial a new
    /// address. A resumable session ends with it
    /// ([`SessionEvent::Lost`](crate::SessionEvent::Lost)): a pending request may or may not
    /// have run. Connect to `endpoint` (same transport) and authenticate again to play on.
    /// Code [`ErrorCode::CONNECTOR_DISCONNECTED`] (60201).
    #[error(
        "the stage moved to another server ({endpoint}) and this connection could not follow \
         it (no resumable session, or a dialer that cannot dial a new address); connect there \
         and authenticate again"
    )]
    Moved {
        /// Where the stage is now: `host:port` for the transport the client connected with.
        endpoint: String,
    },
}

impl ConnectorError {
    /// The wire status code for this error.
    ///
    /// ```
    /// use playhouse_connector::{ConnectorError, ErrorCode};
    /// assert_eq!(ConnectorError::RequestTimeout.code(), ErrorCode::CONNECTOR_REQUEST_TIMEOUT);
    /// assert_eq!(ConnectorError::Disconnected.code().0, 60201);
    /// ```
    pub fn code(&self) -> ErrorCode {
        match self {
            ConnectorError::Server { code, .. } | ConnectorError::Closed { code } => *code,
            ConnectorError::Disconnected
            | ConnectorError::Connect(_)
            | ConnectorError::Protocol(_)
            | ConnectorError::HttpPort
            | ConnectorError::NotWebSocket(_)
            | ConnectorError::ClosedBeforeAuthentication
            | ConnectorError::Moved { .. } => ErrorCode::CONNECTOR_DISCONNECTED,
            ConnectorError::Payload(_) => ErrorCode::INVALID_MESSAGE,
            ConnectorError::RequestTimeout => ErrorCode::CONNECTOR_REQUEST_TIMEOUT,
            ConnectorError::Unauthenticated => ErrorCode::CONNECTOR_UNAUTHENTICATED,
            ConnectorError::SessionLost => ErrorCode::SESSION_LOST,
            ConnectorError::AlreadyConnected | ConnectorError::Unsupported(_) => {
                ErrorCode::SYSTEM_ERROR
            }
        }
    }
}

/// What a close code means for the player.
fn closed_hint(code: ErrorCode) -> &'static str {
    if code == ErrorCode::STAGE_DRAINED {
        ": its server was drained (a deploy) and the stage could not move, or this client could not follow it (no resumable session); join a stage again"
    } else {
        ""
    }
}

/// The likely cause behind a server's code, where one stands out.
fn server_hint(code: ErrorCode) -> &'static str {
    if code == ErrorCode::NOT_AUTHENTICATED {
        ": authenticate first, under the server's authenticate message id \
         (PlayConfig::authenticate_msg_id, by default \"AuthenticateRequest\"), or again if \
         the server let the player go"
    } else if code == ErrorCode::INVALID_STAGE_TYPE {
        ": the stage type named at connect is not registered on the server, or the stage \
         exists with another type"
    } else if code == ErrorCode::STAGE_NOT_FOUND {
        ": the stage does not exist and this login may not create it (the server has no default \
         stage type, or clients may not create the type named at connect)"
    } else {
        ""
    }
}

/// Why a connection the server ended is worth more than "not connected"; kept by the
/// connection for the requests that come after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CloseCause {
    /// See [`ConnectorError::HttpPort`].
    HttpPort,
    /// See [`ConnectorError::ClosedBeforeAuthentication`].
    BeforeAuthentication,
    /// See [`ConnectorError::Closed`].
    Closed(ErrorCode),
    /// See [`ConnectorError::Moved`]: the endpoint.
    Moved(Arc<str>),
}

impl CloseCause {
    pub(crate) fn error(self) -> ConnectorError {
        match self {
            CloseCause::HttpPort => ConnectorError::HttpPort,
            CloseCause::BeforeAuthentication => ConnectorError::ClosedBeforeAuthentication,
            CloseCause::Closed(code) => ConnectorError::Closed { code },
            CloseCause::Moved(endpoint) => ConnectorError::Moved {
                endpoint: endpoint.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_spec() {
        let server = ConnectorError::Server {
            code: ErrorCode(1234),
            packet: Packet::empty("R"),
        };
        assert_eq!(server.code(), ErrorCode(1234));
        assert_eq!(server.to_string(), "server replied with error 1234");
        let refused = ConnectorError::Server {
            code: ErrorCode::NOT_AUTHENTICATED,
            packet: Packet::empty("Login"),
        };
        assert!(
            refused.to_string().contains("authenticate_msg_id"),
            "{refused}"
        );
        assert_eq!(ConnectorError::Disconnected.code().0, 60201);
        assert_eq!(
            ConnectorError::Connect(std::io::ErrorKind::ConnectionRefused.into())
                .code()
                .0,
            60201
        );
        assert_eq!(ConnectorError::Protocol("x".into()).code().0, 60201);
        assert_eq!(ConnectorError::RequestTimeout.code().0, 60202);
        assert_eq!(ConnectorError::Unauthenticated.code().0, 60203);
        assert_eq!(ConnectorError::HttpPort.code().0, 60201);
        assert_eq!(ConnectorError::ClosedBeforeAuthentication.code().0, 60201);
        let moved = ConnectorError::Moved {
            endpoint: "10.0.0.7:7777".into(),
        };
        assert_eq!(moved.code().0, 60201);
        assert!(moved.to_string().contains("10.0.0.7:7777"), "{moved}");
        let eof = std::io::ErrorKind::UnexpectedEof.into();
        assert_eq!(ConnectorError::NotWebSocket(eof).code().0, 60201);
        assert_eq!(
            ConnectorError::AlreadyConnected.code(),
            ErrorCode::SYSTEM_ERROR
        );
        assert_eq!(
            ConnectorError::Unsupported("ws").code(),
            ErrorCode::SYSTEM_ERROR
        );
    }

    /// `?` on `Packet::decode` in a function returning `Result<_, ConnectorError>`.
    #[test]
    fn a_payload_error_converts_with_its_code() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct Ping {}
        impl prost::Name for Ping {
            const NAME: &'static str = "Ping";
            const PACKAGE: &'static str = "test";
        }
        fn decode(packet: &Packet) -> Result<Ping, ConnectorError> {
            Ok(packet.decode::<Ping>()?)
        }
        let error = decode(&Packet::empty("Pong")).unwrap_err();
        assert!(matches!(error, ConnectorError::Payload(_)), "{error:?}");
        assert_eq!(error.code(), ErrorCode::INVALID_MESSAGE);
        assert_eq!(
            error.to_string(),
            "unexpected message: expected a `Ping`, got a `Pong`"
        );
        assert!(decode(&Packet::empty("Ping")).is_ok());
    }
}
