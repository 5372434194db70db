use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{CLIENT_HEADER_MIN, LENGTH_PREFIX, MAX_MSG_ID_LEN, SERVER_HEADER_MIN};
use crate::{ClientFrame, DecodeError, EncodeError, ErrorCode, MsgId, ServerFrame};

/// Limits and compression settings shared by both codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecConfig {
    /// Largest frame body accepted or produced, in bytes; also caps a decompressed payload.
    /// Default: 2 MiB.
    pub max_packet_size: usize,
    /// Server side, towards a client that opted in ([`ServerCodec::set_compression`]):
    /// payloads of at least this many bytes are LZ4-compressed when that saves at least 10%.
    /// `None` turns compression off for every client. Default: `Some(512)`.
    pub compression_threshold: Option<usize>,
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig {
            max_packet_size: 2 * 1024 * 1024,
            compression_threshold: Some(512),
        }
    }
}

/// Server side: decodes [`ClientFrame`]s, encodes [`ServerFrame`]s.
///
/// It never compresses until [`ServerCodec::set_compression`] turns compression on, which a
/// server does only for a client that asked for [`Capabilities::LZ4`](crate::Capabilities::LZ4):
/// the original's connectors cannot decompress.
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

/// Splits one whole body off `src`, or asks for more bytes (`Ok(None)`), following the
/// tokio-util contract: on `None`, capacity for the rest of the frame is reserved.
fn split_body(src: &mut BytesMut, max: usize, min: usize) -> Result<Option<Bytes>, DecodeError> {
    if src.len() < LENGTH_PREFIX {
        src.reserve(LENGTH_PREFIX - src.len());
        return Ok(None);
    }
    let announced = i32::from_le_bytes([src[0], src[1], src[2], src[3]]);
    if announced <= 0 {
        return Err(DecodeError::InvalidLength(announced));
    }
    let len = announced as usize;
    if len > max {
        return Err(DecodeError::TooLarge { len, max });
    }
    if len < min {
        return Err(DecodeError::BodyTooShort { len, min });
    }
    let total = LENGTH_PREFIX + len;
    if src.len() < total {
        src.reserve(total - src.len());
        return Ok(None);
    }
    src.advance(LENGTH_PREFIX);
    Ok(Some(src.split_to(len).freeze()))
}

/// Reads `[id_len][msg_id]` from the front of `body`; `fixed` is the header size after the id.
fn split_msg_id(body: &mut Bytes, fixed: usize) -> Result<MsgId, DecodeError> {
    let len = body.len();
    let id_len = body[0] as usize;
    if id_len == 0 {
        return Err(DecodeError::EmptyMsgId);
    }
    if 1 + id_len + fixed > len {
        return Err(DecodeError::MsgIdOverrun { id_len, len });
    }
    body.advance(1);
    MsgId::try_from(body.split_to(id_len)).map_err(|_| DecodeError::InvalidUtf8)
}

fn check_msg_id(msg_id: &MsgId) -> Result<(), EncodeError> {
    let len = msg_id.len();
    if len == 0 || len > MAX_MSG_ID_LEN {
        return Err(EncodeError::MsgIdLength(len));
    }
    Ok(())
}

fn check_body(len: usize, max: usize) -> Result<(), EncodeError> {
    if len > max {
        return Err(EncodeError::TooLarge { len, max });
    }
    Ok(())
}

impl Decoder for ServerCodec {
    type Item = ClientFrame;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ClientFrame>, DecodeError> {
        let Some(mut body) = split_body(src, self.max_incoming, CLIENT_HEADER_MIN)? else {
            return Ok(None);
        };
        let msg_id = split_msg_id(&mut body, 2 + 8)?;
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

impl Encoder<ClientFrame> for ClientCodec {
    type Error = EncodeError;

    fn encode(&mut self, frame: ClientFrame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        check_msg_id(&frame.msg_id)?;
        let body = 1 + frame.msg_id.len() + 2 + 8 + frame.payload.len();
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

impl Encoder<ServerFrame> for ServerCodec {
    type Error = EncodeError;

    fn encode(&mut self, frame: ServerFrame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        check_msg_id(&frame.msg_id)?;
        let header = 1 + frame.msg_id.len() + 2 + 8 + 2 + 4;
        let start = dst.len();
        let write_header = |dst: &mut BytesMut, body: usize, original_size: i32| {
            dst.put_i32_le(body as i32);
            dst.put_u8(frame.msg_id.len() as u8);
            dst.put_slice(frame.msg_id.as_bytes());
            dst.put_u16_le(frame.msg_seq);
            dst.put_i64_le(frame.stage_id);
            dst.put_u16_le(frame.error_code.0);
            dst.put_i32_le(original_size);
        };

        let original = frame.payload.len();
        // The client caps the *decompressed* payload at the same limit: never send more.
        check_body(header + original, self.config.max_packet_size)?;
        if self.compresses(original) {
            // Compress straight into the output buffer, then keep it only if it saves >= 10%.
            let bound = lz4_flex::block::get_maximum_output_size(original);
            let payload_at = start + LENGTH_PREFIX + header;
            dst.resize(payload_at + bound, 0);
            if let Ok(compressed) =
                lz4_flex::block::compress_into(&frame.payload, &mut dst[payload_at..])
                && compressed * 10 < original * 9
            {
                let body = header + compressed;
                if body <= self.config.max_packet_size {
                    dst.truncate(payload_at + compressed);
                    let mut head = &mut dst[start..payload_at];
                    write_header_into(&mut head, &frame, body, original as i32);
                    return Ok(());
                }
            }
            dst.truncate(start);
        }

        let body = header + original; // checked above
        dst.reserve(LENGTH_PREFIX + body);
        write_header(dst, body, 0);
        dst.put_slice(&frame.payload);
        Ok(())
    }
}

/// Writes a server frame header into an already sized slice.
fn write_header_into(dst: &mut &mut [u8], frame: &ServerFrame, body: usize, original_size: i32) {
    dst.put_i32_le(body as i32);
    dst.put_u8(frame.msg_id.len() as u8);
    dst.put_slice(frame.msg_id.as_bytes());
    dst.put_u16_le(frame.msg_seq);
    dst.put_i64_le(frame.stage_id);
    dst.put_u16_le(frame.error_code.0);
    dst.put_i32_le(original_size);
}

impl Decoder for ClientCodec {
    type Item = ServerFrame;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ServerFrame>, DecodeError> {
        let max = self.config.max_packet_size;
        let Some(mut body) = split_body(src, max, SERVER_HEADER_MIN)? else {
            return Ok(None);
        };
        let msg_id = split_msg_id(&mut body, 2 + 8 + 2 + 4)?;
        let msg_seq = body.get_u16_le();
        let stage_id = body.get_i64_le();
        let error_code = ErrorCode(body.get_u16_le());
        let original_size = body.get_i32_le();
        let payload = match original_size {
            0 => body,
            n if n < 0 => return Err(DecodeError::InvalidOriginalSize(n)),
            n => {
                let original_size = n as usize;
                if original_size > max {
                    return Err(DecodeError::TooLarge {
                        len: original_size,
                        max,
                    });
                }
                let mut out = vec![0u8; original_size];
                match lz4_flex::block::decompress_into(&body, &mut out) {
                    Ok(written) if written == original_size => Bytes::from(out),
                    _ => return Err(DecodeError::Decompress { original_size }),
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn server() -> ServerCodec {
        ServerCodec::default()
    }
    /// A server codec for a client that opted in to LZ4.
    fn lz4_server() -> ServerCodec {
        let mut codec = ServerCodec::default();
        codec.set_compression(true);
        codec
    }
    fn client() -> ClientCodec {
        ClientCodec::default()
    }

    #[test]
    fn client_frame_matches_hand_written_bytes() {
        // body = id_len(1) + "Echo"(4) + seq(2) + stage(8) + payload "hi"(2) = 17 = 0x11
        let expected: &[u8] = &[
            0x11, 0x00, 0x00, 0x00, // len
            0x04, b'E', b'c', b'h', b'o', // id_len, msg_id
            0x02, 0x01, // seq 0x0102, little-endian
            0x0A, 0, 0, 0, 0, 0, 0, 0, // stage id 10
            b'h', b'i', // payload
        ];
        let frame = ClientFrame::new("Echo", 0x0102, 10, &b"hi"[..]);
        let mut wire = BytesMut::new();
        client().encode(frame.clone(), &mut wire).unwrap();
        assert_eq!(&wire[..], expected);
        let mut src = BytesMut::from(expected);
        assert_eq!(server().decode(&mut src).unwrap(), Some(frame));
        assert!(src.is_empty());
    }

    #[test]
    fn server_frame_matches_hand_written_bytes() {
        // body = 1 + "Ok"(2) + seq(2) + stage(8) + error(2) + original_size(4) + "x"(1) = 20
        let expected: &[u8] = &[
            0x14, 0x00, 0x00, 0x00, // len
            0x02, b'O', b'k', // msg id
            0x05, 0x00, // seq 5
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // stage id -1
            0xE9, 0x03, // error 1001
            0x00, 0x00, 0x00, 0x00, // not compressed
            b'x',
        ];
        let frame = ServerFrame::new("Ok", 5, -1, ErrorCode(1001), &b"x"[..]);
        let mut wire = BytesMut::new();
        server().encode(frame.clone(), &mut wire).unwrap();
        assert_eq!(&wire[..], expected);
        let mut src = BytesMut::from(expected);
        assert_eq!(client().decode(&mut src).unwrap(), Some(frame));
    }

    #[test]
    fn heartbeat_is_exactly_its_header() {
        let mut wire = BytesMut::new();
        client()
            .encode(ClientFrame::heartbeat(), &mut wire)
            .unwrap();
        assert_eq!(wire.len(), 4 + 1 + 12 + 2 + 8);
        assert_eq!(&wire[5..17], b"@Heart@Beat@");
        let frame = server().decode(&mut wire).unwrap().unwrap();
        assert!(frame.is_heartbeat());
    }

    #[test]
    fn partial_input_asks_for_more_and_reserves() {
        let mut wire = BytesMut::new();
        client()
            .encode(ClientFrame::new("Echo", 1, 1, vec![7u8; 100]), &mut wire)
            .unwrap();
        let whole = wire.clone();
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(server().decode(&mut part).unwrap(), None, "cut at {cut}");
            assert!(part.capacity() >= whole.len().min(LENGTH_PREFIX.max(cut)));
        }
    }

    #[test]
    fn two_frames_in_one_buffer() {
        let mut wire = BytesMut::new();
        let a = ClientFrame::new("A", 1, 1, &b"1"[..]);
        let b = ClientFrame::new("B", 2, 1, &b"22"[..]);
        client().encode(a.clone(), &mut wire).unwrap();
        client().encode(b.clone(), &mut wire).unwrap();
        let mut codec = server();
        assert_eq!(codec.decode(&mut wire).unwrap(), Some(a));
        assert_eq!(codec.decode(&mut wire).unwrap(), Some(b));
        assert_eq!(codec.decode(&mut wire).unwrap(), None);
    }

    fn decode_client_bytes(bytes: &[u8]) -> Result<Option<ClientFrame>, DecodeError> {
        server().decode(&mut BytesMut::from(bytes))
    }

    #[test]
    fn bad_lengths_are_rejected() {
        assert!(matches!(
            decode_client_bytes(&0i32.to_le_bytes()),
            Err(DecodeError::InvalidLength(0))
        ));
        assert!(matches!(
            decode_client_bytes(&(-5i32).to_le_bytes()),
            Err(DecodeError::InvalidLength(-5))
        ));
        assert!(matches!(
            decode_client_bytes(&i32::MAX.to_le_bytes()),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_client_bytes(&10i32.to_le_bytes()),
            Err(DecodeError::BodyTooShort { len: 10, min: 12 })
        ));
    }

    #[test]
    fn bad_msg_ids_are_rejected() {
        let mut body = vec![0u8; 12];
        let mut frame = (12i32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        assert!(matches!(
            decode_client_bytes(&frame),
            Err(DecodeError::EmptyMsgId)
        ));

        body[0] = 2; // id of 2 bytes needs 13 bytes of body
        let mut frame = (12i32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        assert!(matches!(
            decode_client_bytes(&frame),
            Err(DecodeError::MsgIdOverrun { id_len: 2, len: 12 })
        ));

        let mut frame = (12i32).to_le_bytes().to_vec();
        frame.extend_from_slice(&[1, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            decode_client_bytes(&frame),
            Err(DecodeError::InvalidUtf8)
        ));
    }

    #[test]
    fn encoder_rejects_bad_ids_and_sizes() {
        let mut dst = BytesMut::new();
        assert!(matches!(
            client().encode(ClientFrame::new("", 0, 0, Bytes::new()), &mut dst),
            Err(EncodeError::MsgIdLength(0))
        ));
        let long = "x".repeat(256);
        assert!(matches!(
            client().encode(ClientFrame::new(long, 0, 0, Bytes::new()), &mut dst),
            Err(EncodeError::MsgIdLength(256))
        ));
        let mut small = ClientCodec::new(CodecConfig {
            max_packet_size: 20,
            compression_threshold: None,
        });
        assert!(matches!(
            small.encode(ClientFrame::new("A", 0, 0, vec![0u8; 20]), &mut dst),
            Err(EncodeError::TooLarge { len: 32, max: 20 })
        ));
        assert!(dst.is_empty());
    }

    #[test]
    fn compressible_payload_is_compressed_and_restored() {
        let payload = Bytes::from(vec![b'a'; 64 * 1024]);
        let frame = ServerFrame::new("EchoReply", 3, 9, ErrorCode::SUCCESS, payload.clone());
        let mut wire = BytesMut::new();
        lz4_server().encode(frame.clone(), &mut wire).unwrap();
        assert!(wire.len() < payload.len() / 10, "{} bytes", wire.len());
        let original_size_at = 4 + 1 + 9 + 2 + 8 + 2;
        let original_size = i32::from_le_bytes(
            wire[original_size_at..original_size_at + 4]
                .try_into()
                .unwrap(),
        );
        assert_eq!(original_size, 64 * 1024);
        assert_eq!(client().decode(&mut wire).unwrap(), Some(frame));
    }

    #[test]
    fn small_or_incompressible_payloads_stay_plain() {
        let small = ServerFrame::new("R", 1, 1, ErrorCode::SUCCESS, vec![b'a'; 511]);
        let mut wire = BytesMut::new();
        lz4_server().encode(small, &mut wire).unwrap();
        assert_eq!(&wire[wire.len() - 515..wire.len() - 511], &[0, 0, 0, 0]);

        // Pseudo-random bytes do not compress by 10%.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let frame = ServerFrame::new("R", 1, 1, ErrorCode::SUCCESS, noise);
        let mut wire = BytesMut::new();
        lz4_server().encode(frame.clone(), &mut wire).unwrap();
        assert_eq!(wire.len(), 4 + SERVER_HEADER_MIN + 4096);
        assert_eq!(client().decode(&mut wire).unwrap(), Some(frame));
    }

    #[test]
    fn the_incoming_limit_can_be_lowered_and_restored() {
        let frame = ClientFrame::new("Big", 1, 1, vec![7u8; 1000]);
        let mut wire = BytesMut::new();
        client().encode(frame.clone(), &mut wire).unwrap();
        let mut codec = server();
        codec.set_max_incoming(100);
        assert!(matches!(
            codec.decode(&mut wire.clone()),
            Err(DecodeError::TooLarge { max: 100, .. })
        ));
        codec.set_max_incoming(usize::MAX); // capped at max_packet_size
        assert_eq!(codec.decode(&mut wire).unwrap(), Some(frame));
    }

    #[test]
    fn compression_is_off_until_the_client_opts_in() {
        let frame = ServerFrame::new("R", 1, 1, ErrorCode::SUCCESS, vec![0u8; 10_000]);
        let mut codec = ServerCodec::new(CodecConfig::default());
        let mut wire = BytesMut::new();
        codec.encode(frame.clone(), &mut wire).unwrap();
        assert_eq!(
            wire.len(),
            4 + SERVER_HEADER_MIN + 10_000,
            "compressed unasked"
        );
        assert_eq!(
            &wire[wire.len() - 10_004..wire.len() - 10_000],
            &[0, 0, 0, 0]
        );

        codec.set_compression(true);
        let mut wire = BytesMut::new();
        codec.encode(frame.clone(), &mut wire).unwrap();
        assert!(wire.len() < 1_000, "{} bytes after opting in", wire.len());

        codec.set_compression(false);
        let mut wire = BytesMut::new();
        codec.encode(frame, &mut wire).unwrap();
        assert_eq!(wire.len(), 4 + SERVER_HEADER_MIN + 10_000);
    }

    #[test]
    fn compression_can_be_turned_off() {
        let mut codec = ServerCodec::new(CodecConfig {
            compression_threshold: None,
            ..CodecConfig::default()
        });
        codec.set_compression(true);
        let mut wire = BytesMut::new();
        codec
            .encode(
                ServerFrame::new("R", 1, 1, ErrorCode::SUCCESS, vec![0u8; 10_000]),
                &mut wire,
            )
            .unwrap();
        assert_eq!(wire.len(), 4 + SERVER_HEADER_MIN + 10_000);
    }

    fn server_bytes(original_size: i32, payload: &[u8]) -> BytesMut {
        let mut wire = BytesMut::new();
        wire.put_i32_le((SERVER_HEADER_MIN + payload.len()) as i32);
        wire.put_u8(1);
        wire.put_u8(b'R');
        wire.put_u16_le(1);
        wire.put_i64_le(1);
        wire.put_u16_le(0);
        wire.put_i32_le(original_size);
        wire.put_slice(payload);
        wire
    }

    #[test]
    fn bad_compressed_payloads_are_protocol_errors() {
        let good = lz4_flex::block::compress(&[b'z'; 1000]);
        assert!(client().decode(&mut server_bytes(1000, &good)).is_ok());
        assert!(matches!(
            client().decode(&mut server_bytes(999, &good)),
            Err(DecodeError::Decompress { .. })
        ));
        assert!(matches!(
            client().decode(&mut server_bytes(1001, &good)),
            Err(DecodeError::Decompress { .. })
        ));
        assert!(matches!(
            client().decode(&mut server_bytes(-1, &good)),
            Err(DecodeError::InvalidOriginalSize(-1))
        ));
        assert!(matches!(
            client().decode(&mut server_bytes(i32::MAX, &good)),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            client().decode(&mut server_bytes(100, &[0xFF; 20])),
            Err(DecodeError::Decompress { .. })
        ));
    }

    fn msg_id_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9@_.가-힣]{1,60}".prop_filter("fits in 255 bytes", |s| s.len() <= 255)
    }

    proptest! {
        #[test]
        fn client_frames_round_trip(
            msg_id in msg_id_strategy(),
            msg_seq in any::<u16>(),
            stage_id in any::<i64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let frame = ClientFrame::new(msg_id, msg_seq, stage_id, payload);
            let mut wire = BytesMut::new();
            client().encode(frame.clone(), &mut wire).unwrap();
            prop_assert_eq!(server().decode(&mut wire).unwrap(), Some(frame));
            prop_assert!(wire.is_empty());
        }

        #[test]
        fn server_frames_round_trip(
            msg_id in msg_id_strategy(),
            msg_seq in any::<u16>(),
            stage_id in any::<i64>(),
            error_code in any::<u16>(),
            payload in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..4096),
                (1usize..8192, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
            ],
            threshold in proptest::option::of(0usize..2048),
        ) {
            let frame = ServerFrame::new(msg_id, msg_seq, stage_id, ErrorCode(error_code), payload);
            let config = CodecConfig { compression_threshold: threshold, ..CodecConfig::default() };
            let mut wire = BytesMut::new();
            let mut codec = ServerCodec::new(config);
            codec.set_compression(true);
            codec.encode(frame.clone(), &mut wire).unwrap();
            prop_assert_eq!(ClientCodec::new(config).decode(&mut wire).unwrap(), Some(frame));
            prop_assert!(wire.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic_either_decoder(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            small_max in 12usize..600,
        ) {
            let config = CodecConfig { max_packet_size: small_max, compression_threshold: None };
            let mut src = BytesMut::from(&bytes[..]);
            let mut codec = ServerCodec::new(config);
            while let Ok(Some(_)) = codec.decode(&mut src) {}
            let mut src = BytesMut::from(&bytes[..]);
            let mut codec = ClientCodec::new(config);
            while let Ok(Some(_)) = codec.decode(&mut src) {}
        }

        #[test]
        fn length_prefixed_garbage_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut src = BytesMut::new();
            src.put_i32_le(body.len() as i32);
            src.put_slice(&body);
            let _ = server().decode(&mut src.clone());
            let _ = client().decode(&mut src);
        }
    }
}
