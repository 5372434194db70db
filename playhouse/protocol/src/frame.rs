use bytes::Bytes;

use crate::{Capabilities, ErrorCode, HELLO_MSG_ID, MsgId, Packet};

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

    /// The frame's message, without the routing fields.
    pub fn into_packet(self) -> Packet {
        Packet {
            msg_id: self.msg_id,
            payload: self.payload,
        }
    }
}
