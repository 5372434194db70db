//! Why a connector operation failed.

use playhouse_protocol::{ErrorCode, Packet};

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
    /// The server replied with a non-zero error code.
    #[error("server replied with error {code}")]
    Server {
        /// The server's error code.
        code: ErrorCode,
        /// The reply as the server sent it (often an empty payload).
        packet: Packet,
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
    /// The resumable session was lost (see [`SessionEvent::Lost`](crate::SessionEvent::Lost)):
    /// the request may or may not have run. Code [`ErrorCode::SESSION_LOST`] (23).
    #[error("session lost")]
    SessionLost,
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
            ConnectorError::Server { code, .. } => *code,
            ConnectorError::Disconnected
            | ConnectorError::Connect(_)
            | ConnectorError::Protocol(_) => ErrorCode::CONNECTOR_DISCONNECTED,
            ConnectorError::RequestTimeout => ErrorCode::CONNECTOR_REQUEST_TIMEOUT,
            ConnectorError::Unauthenticated => ErrorCode::CONNECTOR_UNAUTHENTICATED,
            ConnectorError::SessionLost => ErrorCode::SESSION_LOST,
            ConnectorError::AlreadyConnected | ConnectorError::Unsupported(_) => {
                ErrorCode::SYSTEM_ERROR
            }
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
        assert_eq!(
            ConnectorError::AlreadyConnected.code(),
            ErrorCode::SYSTEM_ERROR
        );
        assert_eq!(
            ConnectorError::Unsupported("ws").code(),
            ErrorCode::SYSTEM_ERROR
        );
    }
}
