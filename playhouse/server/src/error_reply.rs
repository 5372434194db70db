//! An error code with an optional packet: what a refusal sends back.

use playhouse_mesh::MeshError;
use playhouse_protocol::{ErrorCode, Packet, PayloadError};

/// An error code and, optionally, a packet that travels with it to the requester: e.g. a
/// refused authentication that still tells the client why (the C# original's
/// `OnAuthenticate` returning `(false, reply)`).
///
/// `?` and `.into()` turn a bare [`ErrorCode`] or a [`PayloadError`] into one without a
/// packet, and a [`MeshError`] into its code with, for a remote error, the remote reply.
///
/// ```
/// use playhouse::{ErrorCode, ErrorReply, Packet};
///
/// let bare: ErrorReply = ErrorCode::AUTHENTICATION_FAILED.into();
/// assert!(bare.packet.is_none());
/// let detailed = ErrorReply::new(ErrorCode::AUTHENTICATION_FAILED)
///     .with_packet(Packet::new("AuthenticateReply", "token expired"));
/// assert_eq!(detailed.code, ErrorCode::AUTHENTICATION_FAILED);
/// assert_eq!(detailed.packet.unwrap().msg_id, "AuthenticateReply");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    /// The wire error code (never [`ErrorCode::SUCCESS`] in practice).
    pub code: ErrorCode,
    /// What the client receives with the code: its message id and payload replace the
    /// default (the reply id and an empty payload).
    pub packet: Option<Packet>,
}

impl ErrorReply {
    /// An error reply with no packet.
    pub fn new(code: ErrorCode) -> Self {
        ErrorReply { code, packet: None }
    }

    /// Sends `packet` along with the code.
    #[must_use]
    pub fn with_packet(mut self, packet: Packet) -> Self {
        self.packet = Some(packet);
        self
    }
}

impl From<ErrorCode> for ErrorReply {
    fn from(code: ErrorCode) -> Self {
        ErrorReply::new(code)
    }
}

impl From<PayloadError> for ErrorReply {
    fn from(error: PayloadError) -> Self {
        ErrorReply::new(error.into())
    }
}

impl From<MeshError> for ErrorReply {
    fn from(error: MeshError) -> Self {
        match error {
            MeshError::Remote { code, packet } => ErrorReply::new(code).with_packet(packet),
            other => ErrorReply::new(other.code()),
        }
    }
}
