use playhouse_protocol::{ErrorCode, Packet};

/// Why a mesh send or request failed. Every variant maps to a wire [`ErrorCode`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum MeshError {
    /// The target server is unknown, down, or the message could not be delivered.
    #[error("server `{0}` not found or unreachable")]
    ServerNotFound(String),
    /// No reply within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// The remote side answered with a non-zero error code.
    #[error("remote error {code}")]
    Remote {
        /// The remote error code.
        code: ErrorCode,
        /// The reply that carried it.
        packet: Packet,
    },
    /// This server's mesh is shut down.
    #[error("mesh is closed")]
    Closed,
    /// The message could not be encoded or decoded.
    #[error("invalid mesh message: {0}")]
    Invalid(String),
    /// The payload is larger than the mesh's `max_payload`; nothing was sent.
    #[error("mesh payload of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The payload's size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl MeshError {
    /// The wire error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            MeshError::ServerNotFound(_) => ErrorCode::SERVER_NOT_FOUND,
            MeshError::Timeout => ErrorCode::REQUEST_TIMEOUT,
            MeshError::Remote { code, .. } => *code,
            MeshError::Closed => ErrorCode::SYSTEM_ERROR,
            MeshError::Invalid(_) => ErrorCode::INVALID_MESSAGE,
            MeshError::TooLarge { .. } => ErrorCode::PACKET_TOO_LARGE,
        }
    }
}

/// `?` in a handler or stage returning `Result<_, ErrorCode>`: the failure's wire code
/// ([`MeshError::code`]); a remote error keeps the remote side's code.
impl From<MeshError> for ErrorCode {
    fn from(error: MeshError) -> Self {
        error.code()
    }
}
