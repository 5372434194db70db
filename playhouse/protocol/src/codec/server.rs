//! The server's side of the wire: decodes [`ClientFrame`]s, encodes [`ServerFrame`]s
//! (compressing large payloads for a client that opted in).

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::config::CodecConfig;
use super::framing::{check_body, check_msg_id, split_body, split_msg_id};
use super::lz4;
use crate::error::{DecodeError, EncodeError};
use crate::frame::{CLIENT_HEADER_MIN, ClientFrame, LENGTH_PREFIX, ServerFrame};

/// Server side: decodes [`ClientFrame`]s, encodes [`ServerFrame`]s.
///
/// It never compresses until [`ServerCodec::set_compression`] turns compression on, which a
/// server does only for a client that asked for
/// [`Capabilities::LZ4`](crate::capabilities::Capabilities::LZ4): the original's connectors
/// cannot decompress.
#[derive(Clone, Debug)]
pub struct ServerCodec {
    config: CodecConfig,
    compress: bool,
    /// The largest client body decoded now (at most `config.max_packet_size`).
    max_incoming: usize,
}

impl Default for ServerCodec {
    fn default() -> Self {
        ServerCodec::new(CodecConfig::default())
    }
}

impl ServerCodec {
    /// A codec with the given limits; compression off.
    pub fn new(config: CodecConfig) -> Self {
        ServerCodec {
            config,
            compress: false,
            max_incoming: config.max_packet_size,
        }
    }

    /// Lowers (or restores) the largest client body this codec accepts, capped at
    /// [`CodecConfig::max_packet_size`]: a server keeps it small until the client has
    /// authenticated, so an unauthenticated connection cannot make it buffer a full frame.
    pub fn set_max_incoming(&mut self, max: usize) {
        self.max_incoming = max.min(self.config.max_packet_size);
    }

    /// Turns LZ4 compression of large payloads on or off for this connection (still subject
    /// to [`CodecConfig::compression_threshold`]).
    pub fn set_compression(&mut self, on: bool) {
        self.compress = on;
    }

    /// Whether this codec would compress a payload of `len` bytes (if that saved 10%).
    pub fn compresses(&self, len: usize) -> bool {
        self.compress
            && self
                .config
                .compression_threshold
                .is_some_and(|threshold| len >= threshold && len > 0)
    }
}

impl Decoder for ServerCodec {
    type Item = ClientFrame;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ClientFrame>, DecodeError> {
        let Some(mut body) = split_body(src, self.max_incoming, CLIENT_HEADER_MIN)? else {
            return Ok(None);
        };
        // A client's empty id is no framing error: the session answers it.
        let msg_id = split_msg_id(&mut body, 2 + 8, true)?;
        let msg_seq = body.get_u16_le();
        let stage_id = body.get_i64_le();
        Ok(Some(ClientFrame {
            msg_id,
            msg_seq,
            stage_id,
            payload: body,
        }))
    }
}

impl Encoder<ServerFrame> for ServerCodec {
    type Error = EncodeError;

    fn encode(&mut self, frame: ServerFrame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        check_msg_id(&frame.msg_id)?;
        let original = frame.payload.len();
        let plain = frame.body_len();
        let header = plain - original;
        // The client caps the *decompressed* payload at the same limit: never send more.
        check_body(plain, self.config.max_packet_size)?;
        let start = dst.len();
        if self.compresses(original) {
            // Compress straight into the output buffer, then keep it only if it saves >= 10%.
            let payload_at = start + LENGTH_PREFIX + header;
            if let Some(compressed) = lz4::compress_into(&frame.payload, dst, payload_at) {
                let body = header + compressed;
                if body <= self.config.max_packet_size {
                    dst.truncate(payload_at + compressed);
                    let mut head = &mut dst[start..payload_at];
                    put_header(&mut head, &frame, body, original as i32);
                    return Ok(());
                }
            }
            dst.truncate(start);
        }

        dst.reserve(LENGTH_PREFIX + plain);
        put_header(dst, &frame, plain, 0);
        dst.put_slice(&frame.payload);
        Ok(())
    }
}

/// Writes a server frame's length prefix and header (everything before the payload).
fn put_header(dst: &mut impl BufMut, frame: &ServerFrame, body: usize, original_size: i32) {
    dst.put_i32_le(body as i32);
    dst.put_u8(frame.msg_id.len() as u8);
    dst.put_slice(frame.msg_id.as_bytes());
    dst.put_u16_le(frame.msg_seq);
    dst.put_i64_le(frame.stage_id);
    dst.put_u16_le(frame.error_code.0);
    dst.put_i32_le(original_size);
}
