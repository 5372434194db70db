use bytes::Bytes;

use crate::capabilities::Capabilities;
use crate::control::{
    ACK_MSG_ID, CLOSE_MSG_ID, END_MSG_ID, HEARTBEAT_MSG_ID, HELLO_MSG_ID, MOVE_MSG_ID,
    RESUME_MSG_ID, SESSION_MSG_ID, is_control_msg_id,
};
use crate::error_code::ErrorCode;
use crate::hello::Hello;
use crate::packet::{MsgId, Packet};
use crate::resume::{MoveNotice, ResumeGrant, ResumeRequest, count_payload};

/// Bytes in the length prefix of every frame.
pub const LENGTH_PREFIX: usize = 4;
/// Longest message id, in bytes (its length travels in one byte).
pub const MAX_MSG_ID_LEN: usize = u8::MAX as usize;
/// Smallest client body: `id_len`, `seq` and `stage_id`. The id may be empty (the original
/// server accepts that; the session answers such a request with `INVALID_MESSAGE`).
pub const CLIENT_HEADER_MIN: usize = 1 + 2 + 8;
/// Smallest server body: a one-byte id plus `id_len`, `seq`, `stage_id`, `error_code`,
/// `original_size`.
pub const SERVER_HEADER_MIN: usize = 1 + 1 + 2 + 8 + 2 + 4;

/// The longest frame on the wire, length prefix included, for bodies of at most
/// `max_packet_size` bytes: what a WebSocket message (one whole frame) or a read buffer must
/// hold.
///
/// ```text
/// |<------------------ max_frame_len ------------------>|
/// +------------+----------------------------------------+
/// | len: i32   | body: len <= max_packet_size bytes     |
/// +------------+----------------------------------------+
/// |<- 4 B ---->|
/// ```
///
/// ```
/// assert_eq!(playhouse_protocol::max_frame_len(2 * 1024 * 1024), 2 * 1024 * 1024 + 4);
/// ```
pub const fn max_frame_len(max_packet_size: usize) -> usize {
    max_packet_size.saturating_add(LENGTH_PREFIX)
}

/// A frame from a client to a server.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClientFrame {
    /// Message id, 1..=255 bytes of UTF-8.
    pub msg_id: MsgId,
    /// 0 for one-way messages; the request sequence otherwise.
    pub msg_seq: u16,
    /// The stage the connection is bound to.
    pub stage_id: i64,
    /// Message body.
    pub payload: Bytes,
}

impl ClientFrame {
    /// A frame from its parts.
    pub fn new(
        msg_id: impl Into<MsgId>,
        msg_seq: u16,
        stage_id: i64,
        payload: impl Into<Bytes>,
    ) -> Self {
        ClientFrame {
            msg_id: msg_id.into(),
            msg_seq,
            stage_id,
            payload: payload.into(),
        }
    }

    /// The body length a client frame with a `msg_id_len`-byte id and a `payload_len`-byte
    /// payload announces in its length prefix (what [`CodecConfig::max_packet_size`] caps).
    ///
    /// [`CodecConfig::max_packet_size`]: crate::codec::config::CodecConfig::max_packet_size
    pub const fn body_len_for(msg_id_len: usize, payload_len: usize) -> usize {
        CLIENT_HEADER_MIN + msg_id_len + payload_len
    }

    /// The length this frame's prefix announces: its body, `id_len` through payload.
    pub fn body_len(&self) -> usize {
        Self::body_len_for(self.msg_id.len(), self.payload.len())
    }

    /// The bytes this frame occupies on the wire, length prefix included.
    pub fn wire_len(&self) -> usize {
        LENGTH_PREFIX + self.body_len()
    }

    /// A heartbeat frame.
    pub fn heartbeat() -> Self {
        ClientFrame::new(MsgId::from_static(HEARTBEAT_MSG_ID), 0, 0, Bytes::new())
    }

    /// Whether this is a heartbeat.
    pub fn is_heartbeat(&self) -> bool {
        self.msg_id == HEARTBEAT_MSG_ID
    }

    /// The capability handshake's request (see [`Capabilities`]): asks for what `hello`
    /// requests (a [`Capabilities`] or a [`Hello`] with parameters); `msg_seq` 0 asks for no
    /// reply.
    pub fn hello(msg_seq: u16, hello: impl Into<Hello>) -> Self {
        ClientFrame::new(
            MsgId::from_static(HELLO_MSG_ID),
            msg_seq,
            0,
            hello.into().to_payload(),
        )
    }

    /// Whether this is a capability handshake request.
    pub fn is_hello(&self) -> bool {
        self.msg_id == HELLO_MSG_ID
    }

    /// Whether this is a framework control frame (never counted in a resumable session).
    pub fn is_control(&self) -> bool {
        is_control_msg_id(&self.msg_id)
    }

    /// A request to resume a session on this new connection.
    pub fn resume(msg_seq: u16, request: ResumeRequest) -> Self {
        ClientFrame::new(
            MsgId::from_static(RESUME_MSG_ID),
            msg_seq,
            0,
            request.to_payload(),
        )
    }

    /// Acknowledges `received` server data frames.
    pub fn ack(received: u64) -> Self {
        ClientFrame::new(
            MsgId::from_static(ACK_MSG_ID),
            0,
            0,
            count_payload(received),
        )
    }

    /// Ends the resumable session on purpose.
    pub fn end_session() -> Self {
        ClientFrame::new(MsgId::from_static(END_MSG_ID), 0, 0, Bytes::new())
    }

    /// The frame's message, without the routing fields.
    pub fn into_packet(self) -> Packet {
        Packet {
            msg_id: self.msg_id,
            payload: self.payload,
        }
    }
}

/// A frame from a server to a client. The payload is always uncompressed here; the codec
/// compresses and decompresses on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ServerFrame {
    /// Message id, 1..=255 bytes of UTF-8.
    pub msg_id: MsgId,
    /// The request's sequence for a reply; 0 for a push.
    pub msg_seq: u16,
    /// The stage the message comes from.
    pub stage_id: i64,
    /// [`ErrorCode::SUCCESS`] or the reason the request failed.
    pub error_code: ErrorCode,
    /// Message body, uncompressed.
    pub payload: Bytes,
}

impl ServerFrame {
    /// A frame from its parts.
    pub fn new(
        msg_id: impl Into<MsgId>,
        msg_seq: u16,
        stage_id: i64,
        error_code: ErrorCode,
        payload: impl Into<Bytes>,
    ) -> Self {
        ServerFrame {
            msg_id: msg_id.into(),
            msg_seq,
            stage_id,
            error_code,
            payload: payload.into(),
        }
    }

    /// A successful reply or push carrying `packet`.
    pub fn from_packet(packet: Packet, msg_seq: u16, stage_id: i64) -> Self {
        ServerFrame {
            msg_id: packet.msg_id,
            msg_seq,
            stage_id,
            error_code: ErrorCode::SUCCESS,
            payload: packet.payload,
        }
    }

    /// The length this frame's prefix announces when sent uncompressed: its body, `id_len`
    /// through payload (what [`CodecConfig::max_packet_size`] caps, compressed or not).
    ///
    /// [`CodecConfig::max_packet_size`]: crate::codec::config::CodecConfig::max_packet_size
    pub fn body_len(&self) -> usize {
        SERVER_HEADER_MIN - 1 + self.msg_id.len() + self.payload.len()
    }

    /// The bytes this frame occupies on the wire uncompressed, length prefix included.
    pub fn wire_len(&self) -> usize {
        LENGTH_PREFIX + self.body_len()
    }

    /// The echo of a heartbeat.
    pub fn heartbeat() -> Self {
        ServerFrame::new(
            MsgId::from_static(HEARTBEAT_MSG_ID),
            0,
            0,
            ErrorCode::SUCCESS,
            Bytes::new(),
        )
    }

    /// Whether this is a heartbeat.
    pub fn is_heartbeat(&self) -> bool {
        self.msg_id == HEARTBEAT_MSG_ID
    }

    /// The notice sent right before the server closes a connection on purpose: `code` says why
    /// (see [`CLOSE_MSG_ID`]).
    pub fn close(stage_id: i64, code: ErrorCode) -> Self {
        ServerFrame::new(
            MsgId::from_static(CLOSE_MSG_ID),
            0,
            stage_id,
            code,
            Bytes::new(),
        )
    }

    /// The notice that a resumable session's stage moved: resume at `notice.endpoint` (see
    /// [`MOVE_MSG_ID`]).
    pub fn move_notice(stage_id: i64, notice: &MoveNotice) -> Self {
        ServerFrame::new(
            MsgId::from_static(MOVE_MSG_ID),
            0,
            stage_id,
            ErrorCode::SUCCESS,
            notice.to_payload(),
        )
    }

    /// Whether this is a close notice ([`ServerFrame::close`]).
    pub fn is_close(&self) -> bool {
        self.msg_id == CLOSE_MSG_ID
    }

    /// The capability handshake's answer: the extensions `granted` to the client.
    pub fn hello(msg_seq: u16, granted: Capabilities) -> Self {
        ServerFrame::new(
            MsgId::from_static(HELLO_MSG_ID),
            msg_seq,
            0,
            ErrorCode::SUCCESS,
            granted.to_payload(),
        )
    }

    /// Whether this is the capability handshake's answer.
    pub fn is_hello(&self) -> bool {
        self.msg_id == HELLO_MSG_ID
    }

    /// Whether this is a framework control frame (never counted in a resumable session).
    pub fn is_control(&self) -> bool {
        is_control_msg_id(&self.msg_id)
    }

    /// The grant of a resumable session, sent right before the authentication reply.
    pub fn session_grant(grant: &ResumeGrant) -> Self {
        ServerFrame::new(
            MsgId::from_static(SESSION_MSG_ID),
            0,
            0,
            ErrorCode::SUCCESS,
            grant.to_payload(),
        )
    }

    /// The answer to a resume request: the session goes on; the server received `received`
    /// client data frames.
    pub fn resumed(msg_seq: u16, received: u64) -> Self {
        ServerFrame::new(
            MsgId::from_static(RESUME_MSG_ID),
            msg_seq,
            0,
            ErrorCode::SUCCESS,
            count_payload(received),
        )
    }

    /// Acknowledges `received` client data frames.
    pub fn ack(received: u64) -> Self {
        ServerFrame::new(
            MsgId::from_static(ACK_MSG_ID),
            0,
            0,
            ErrorCode::SUCCESS,
            count_payload(received),
        )
    }

    /// The frame's message, without the routing fields.
    pub fn into_packet(self) -> Packet {
        Packet {
            msg_id: self.msg_id,
            payload: self.payload,
        }
    }
}
