//! What handlers answer with, one convention for stage and API handlers alike: a handler's
//! value is [`IntoReply`] (`Ok` a reply, `Err` an [`ErrorReply`]: a code with an optional
//! packet); and the frame that answers a client's request with a bare error code.

use bytes::Bytes;
use playhouse_mesh::MeshError;
use playhouse_protocol::{ErrorCode, MsgId, Packet, PayloadError, ServerFrame};

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

impl From<prost::DecodeError> for ErrorReply {
    /// A payload that does not decode ([`Packet::parse`]) answers `INVALID_MESSAGE`.
    fn from(_: prost::DecodeError) -> Self {
        ErrorReply::new(ErrorCode::INVALID_MESSAGE)
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

/// The reply to client request `seq` (message `msg_id`, stage `stage_id`) that carries only
/// `code`.
pub(crate) fn error_frame(msg_id: MsgId, seq: u16, stage_id: i64, code: ErrorCode) -> ServerFrame {
    ServerFrame::new(msg_id, seq, stage_id, code, Bytes::new())
}

/// What a typed handler's return value tells the framework to answer.
///
/// * `()`: nothing; the handler answered itself (or the message needs no answer), e.g. with
///   `actor.link.reply(..)`, a [`ReplyTarget`](crate::ReplyTarget) kept for later, or a push.
/// * `Result<R, E>`: `Ok(message)` is the reply; `Err(e)` fails the request with `e`'s code
///   (and packet, for an [`ErrorReply`]). `E` is usually [`ErrorCode`]; `?` converts a
///   [`MeshError`](crate::MeshError) or a [`PayloadError`] into it.
///
/// The answer goes only to a request that is still unanswered; for a one-way message the
/// value is dropped without being encoded. A handler that keeps a [`ReplyTarget`](crate::ReplyTarget) to answer
/// later returns `()`: a returned message would answer the request at once.
pub trait IntoReply {
    /// The reply to send: `None` to send nothing.
    fn into_reply(self) -> Option<Result<Packet, ErrorReply>>;
}

impl IntoReply for () {
    fn into_reply(self) -> Option<Result<Packet, ErrorReply>> {
        None
    }
}

impl<R, E> IntoReply for Result<R, E>
where
    R: prost::Message + prost::Name,
    E: Into<ErrorReply>,
{
    fn into_reply(self) -> Option<Result<Packet, ErrorReply>> {
        Some(match self {
            Ok(message) => Ok(Packet::from_message(&message)),
            Err(error) => Err(error.into()),
        })
    }
}
