//! The PlayHouse client wire protocol, as pure bytes: no sockets, no clocks.
//!
//! Every frame, over TCP and inside every WebSocket binary message, is a little-endian
//! length prefix followed by a body:
//!
//! ```text
//! [len: i32] [body: len bytes]
//!
//! client -> server body (at least 11 bytes):
//! +------------+----------------+-----------+-------------+-----------+
//! | id_len: u8 | msg_id: UTF-8  | seq: u16  | stage: i64  | payload   |
//! +------------+----------------+-----------+-------------+-----------+
//!
//! server -> client body (at least 17 bytes):
//! +------------+--------+----------+------------+-----------+--------------------+---------+
//! | id_len: u8 | msg_id | seq: u16 | stage: i64 | error: u16| original_size: i32 | payload |
//! +------------+--------+----------+------------+-----------+--------------------+---------+
//! ```
//!
//! `seq` 0 marks a one-way message; requests use 1..=65535 and the reply repeats the request's
//! `seq`. A server payload with `original_size > 0` is an LZ4 block that decompresses to
//! `original_size` bytes; a server sends one only to a client that asked for it with the
//! capability handshake ([`Capabilities`], [`HELLO_MSG_ID`]), so the original's connectors,
//! which never ask, never receive one.
//!
//! Modules:
//! * [`ErrorCode`]: the wire status codes shared by server and client.
//! * [`Capabilities`]: the opt-in handshake for protocol extensions (LZ4 compression,
//!   resumable sessions, a stage type named by the client), and [`Hello`], its payload.
//! * [`ResumeGrant`], [`ResumeRequest`]: resumable sessions, whose frames are numbered and
//!   replayed after a reconnect (see [`RESUME_MSG_ID`] and the module docs there).
//! * [`Packet`]: a message id and a payload, with helpers for prost messages
//!   ([`Packet::from_message`], [`Packet::decode`] and its [`PayloadError`]).
//! * [`ClientFrame`] / [`ServerFrame`]: one frame in each direction, and how many bytes each
//!   takes on the wire ([`ClientFrame::wire_len`], [`max_frame_len`]).
//! * `control`: the reserved message ids of the framework's control frames
//!   ([`HEARTBEAT_MSG_ID`], [`is_control_msg_id`]).
//! * [`ServerCodec`] / [`ClientCodec`]: the tokio-util `Decoder`/`Encoder` for each side;
//!   [`DecodeError`] / [`EncodeError`]: why a frame could not be read or written.
//!
//! ```
//! use bytes::BytesMut;
//! use playhouse_protocol::{ClientCodec, ClientFrame, CodecConfig, ServerCodec};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let frame = ClientFrame::new("EchoRequest", 7, 42, &b"hi"[..]);
//! let mut wire = BytesMut::new();
//! ClientCodec::new(CodecConfig::default()).encode(frame.clone(), &mut wire).unwrap();
//! let decoded = ServerCodec::new(CodecConfig::default()).decode(&mut wire).unwrap();
//! assert_eq!(decoded, Some(frame));
//! ```

mod capabilities;
mod codec;
mod control;
mod error;
mod error_code;
mod frame;
mod hello;
mod packet;
mod resume;

pub use capabilities::Capabilities;
pub use codec::client::ClientCodec;
pub use codec::config::{CodecConfig, DEFAULT_MAX_PACKET_SIZE};
pub use codec::server::ServerCodec;
pub use codec::shared::SharedFrame;
pub use control::{
    ACK_MSG_ID, CLOSE_MSG_ID, END_MSG_ID, HEARTBEAT_MSG_ID, HELLO_MSG_ID, INVALID_MSG_ID,
    MOVE_MSG_ID, RESUME_MSG_ID, SESSION_MSG_ID, is_control_msg_id,
};
pub use error::{DecodeError, EncodeError};
pub use error_code::ErrorCode;
pub use frame::{
    CLIENT_HEADER_MIN, ClientFrame, LENGTH_PREFIX, MAX_MSG_ID_LEN, SERVER_HEADER_MIN, ServerFrame,
    max_frame_len,
};
pub use hello::{Hello, MAX_STAGE_TYPE_LEN};
pub use packet::{MsgId, Packet, PayloadError};
pub use resume::{
    MoveNotice, ResumeGrant, ResumeRequest, ResumeStreams, ResumeToken, count_payload, read_count,
};

/// Re-exported so users can name the codec traits without depending on tokio-util themselves.
pub use tokio_util::codec::{Decoder, Encoder};
