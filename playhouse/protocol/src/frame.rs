use bytes::Bytes;

use crate::{
    ACK_MSG_ID, Capabilities, END_MSG_ID, ErrorCode, HELLO_MSG_ID, MsgId, Packet, RESUME_MSG_ID,
    ResumeGrant, ResumeRequest, SESSION_MSG_ID, count_payload, is_control_msg_id,
};

/// Bytes in the length prefix of every frame.
pub const LENGTH_PREFIX: usize = 4;
/// Longest message id, in bytes (its length travels in one byte).
pub const MAX_MSG_ID_LEN: usize = u8::MAX as usize;
/// Smallest client body: a one-byte id plus `id_len`, `seq` and `stage_id`.
pub const CLIENT_HEADER_MIN: usize = 1 + 1 + 2 + 8;
/// Smallest server body: a one-byte id plus `id_len`, `seq`, `stage_id`, `error_code`,
/// `original_size`.
pub const SERVER_HEADER_MIN: usize = 1 + 1 + 2 + 8 + 2 + 4;
/// The heartbeat message id; sent with `seq` 0, stage 0 and an empty payload, echoed by the server.
pub const HEARTBEAT_MSG_ID: &str = "@Heart@Beat@";

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

    /// A heartbeat frame.
    pub fn heartbeat() -> Self {
        ClientFrame::new(MsgId::from_static(HEARTBEAT_MSG_ID), 0, 0, Bytes::new())
    }

    /// Whether this is a heartbeat.
    pub fn is_heartbeat(&self) -> bool {
        self.msg_id == HEARTBEAT_MSG_ID
    }

    /// The capability handshake's request (see [`Capabilities`]): asks for `requested`;
    /// `msg_seq` 0 asks for no reply.
    pub fn hello(msg_seq: u16, requested: Capabilities) -> Self {
        ClientFrame::new(
            MsgId::from_static(HELLO_MSG_ID),
            msg_seq,
            0,
            requested.to_payload(),
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
