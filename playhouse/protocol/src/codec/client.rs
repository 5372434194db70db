//! The client's side of the wire: encodes [`ClientFrame`]s, decodes [`ServerFrame`]s
//! (decompressing their payloads).

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::config::CodecConfig;
use super::framing::{check_body, check_msg_id, split_body, split_msg_id};
use super::lz4;
use crate::error::{DecodeError, EncodeError};
use crate::error_code::ErrorCode;
use crate::frame::{ClientFrame, LENGTH_PREFIX, SERVER_HEADER_MIN, ServerFrame};

/// Client side: decodes [`ServerFrame`]s (decompressing them), encodes [`ClientFrame`]s.
#[derive(Clone, Debug, Default)]
pub struct ClientCodec {
    config: CodecConfig,
}

impl ClientCodec {
    /// A codec with the given limits (`compression_threshold` is unused on this side).
    pub fn new(config: CodecConfig) -> Self {
        ClientCodec { config }
    }
}

impl Encoder<ClientFrame> for ClientCodec {
    type Error = EncodeError;

    fn encode(&mut self, frame: ClientFrame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        check_msg_id(&frame.msg_id)?;
        let body = frame.body_len();
        check_body(body, self.config.max_packet_size)?;
        dst.reserve(LENGTH_PREFIX + body);
        dst.put_i32_le(body as i32);
        dst.put_u8(frame.msg_id.len() as u8);
        dst.put_slice(frame.msg_id.as_bytes());
        dst.put_u16_le(frame.msg_seq);
        dst.put_i64_le(frame.stage_id);
        dst.put_slice(&frame.payload);
        Ok(())
    }
}

impl Decoder for ClientCodec {
    type Item = ServerFrame;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ServerFrame>, DecodeError> {
        let max = self.config.max_packet_size;
        let Some(mut body) = split_body(src, max, SERVER_HEADER_MIN)? else {
            return Ok(None);
        };
        let msg_id = split_msg_id(&mut body, 2 + 8 + 2 + 4, false)?;
        let msg_seq = body.get_u16_le();
        let stage_id = body.get_i64_le();
        let error_code = ErrorCode(body.get_u16_le());
        let original_size = body.get_i32_le();
        let payload = match original_size {
            0 => body,
            n if n < 0 => return Err(DecodeError::InvalidOriginalSize(n)),
            n => lz4::decompress(&body, n as usize, max)?,
        };
        Ok(Some(ServerFrame {
            msg_id,
            msg_seq,
            stage_id,
            error_code,
            payload,
        }))
    }
}
