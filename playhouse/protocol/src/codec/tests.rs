//! Tests of both codecs against each other and against hand-written bytes.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::client::ClientCodec;
use super::config::CodecConfig;
use super::server::ServerCodec;
use crate::error::{DecodeError, EncodeError};
use crate::error_code::ErrorCode;
use crate::frame::{ClientFrame, LENGTH_PREFIX, SERVER_HEADER_MIN, ServerFrame, max_frame_len};

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
        Err(DecodeError::BodyTooShort { len: 10, min: 11 })
    ));
}

#[test]
fn a_client_frame_may_have_an_empty_id_a_server_frame_may_not() {
    // The smallest client body: no id, seq 7, stage 0, no payload.
    let mut frame = 11i32.to_le_bytes().to_vec();
    frame.extend_from_slice(&[0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let decoded = decode_client_bytes(&frame).unwrap().unwrap();
    assert!(decoded.msg_id.is_empty());
    assert_eq!((decoded.msg_seq, decoded.stage_id), (7, 0));
    assert!(decoded.payload.is_empty());

    let body = [0u8; SERVER_HEADER_MIN];
    let mut frame = i32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    assert!(matches!(
        client().decode(&mut BytesMut::from(&frame[..])),
        Err(DecodeError::EmptyMsgId)
    ));
}

#[test]
fn bad_msg_ids_are_rejected() {
    let mut body = vec![0u8; 12];

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

/// `wire_len` and `body_len` are what the encoders write (uncompressed), for ids and payloads
/// of several sizes, and the length prefix announces `body_len`.
#[test]
fn wire_len_is_the_encoded_length() {
    for id_len in [1, 12, 255] {
        for payload_len in [0, 1, 511, 512, 64 * 1024] {
            let msg_id = "i".repeat(id_len);
            let payload = vec![7u8; payload_len];

            let frame = ClientFrame::new(msg_id.as_str(), 3, 9, payload.clone());
            let mut wire = BytesMut::new();
            client().encode(frame.clone(), &mut wire).unwrap();
            assert_eq!(
                frame.wire_len(),
                wire.len(),
                "client {id_len}/{payload_len}"
            );
            assert_eq!(frame.body_len(), wire.len() - LENGTH_PREFIX);
            assert_eq!(
                frame.body_len(),
                ClientFrame::body_len_for(id_len, payload_len)
            );
            assert_eq!(announced(&wire), frame.body_len());

            let frame = ServerFrame::new(msg_id.as_str(), 3, 9, ErrorCode(5), payload);
            let mut wire = BytesMut::new();
            server().encode(frame.clone(), &mut wire).unwrap();
            assert_eq!(
                frame.wire_len(),
                wire.len(),
                "server {id_len}/{payload_len}"
            );
            assert_eq!(announced(&wire), frame.body_len());
        }
    }
    // The limit is the largest frame's wire length.
    let max = CodecConfig::default().max_packet_size;
    let biggest = ClientFrame::new("A", 0, 0, vec![0u8; max - ClientFrame::body_len_for(1, 0)]);
    let mut wire = BytesMut::new();
    client().encode(biggest, &mut wire).unwrap();
    assert_eq!(wire.len(), max_frame_len(max));
}

/// The body length a frame's prefix announces.
fn announced(wire: &[u8]) -> usize {
    i32::from_le_bytes(wire[..LENGTH_PREFIX].try_into().unwrap()) as usize
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

/// What `codec` writes for `frame` on its own.
fn encoded(mut codec: ServerCodec, frame: &ServerFrame) -> BytesMut {
    let mut wire = BytesMut::new();
    codec.encode(frame.clone(), &mut wire).unwrap();
    wire
}

#[test]
fn a_shared_frame_is_encoded_once_per_kind_of_connection_and_written_as_each_would() {
    use super::shared::SharedFrame;
    let big = ServerFrame::new("World", 0, 9, ErrorCode::SUCCESS, vec![b'a'; 4096]);
    let shared = SharedFrame::new(big.clone());
    for codec in [server(), lz4_server(), server(), lz4_server()] {
        let mut wire = BytesMut::from(&b"before"[..]);
        let want = encoded(codec.clone(), &big);
        let mut codec = codec;
        shared.encode_with(&mut codec, &mut wire).unwrap();
        assert_eq!(&wire[..6], b"before", "appended, not overwritten");
        assert_eq!(&wire[6..], &want[..]);
    }
    assert_eq!(shared.encodings(), 2, "one plain, one compressed");

    // Under the compression threshold both kinds write the plain encoding: made once.
    let small = SharedFrame::new(ServerFrame::new("Tick", 0, 9, ErrorCode::SUCCESS, "1"));
    for mut codec in [server(), lz4_server(), server()] {
        let mut wire = BytesMut::new();
        small.encode_with(&mut codec, &mut wire).unwrap();
        assert_eq!(
            client().decode(&mut wire).unwrap().as_ref(),
            Some(small.frame())
        );
    }
    assert_eq!(small.encodings(), 1);
}
