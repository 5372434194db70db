//! The hand-framed server side of WebSocket, byte by byte against RFC 6455: handshake,
//! fragmentation, control frames, masking, limits, and split reads.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use playhouse_transport::ws_server::{accept, upgrade_key};
use playhouse_transport::{WsListener, WsServerStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(5);
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const MAX: usize = 1 << 20;

/// A client frame: `first` is FIN/RSV/opcode; masked with `MASK` unless `masked` is false.
fn client_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    if payload.len() < 126 {
        out.push(mask_bit | payload.len() as u8);
    } else if payload.len() <= 0xFFFF {
        out.push(mask_bit | 126);
        out.extend((payload.len() as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend((payload.len() as u64).to_be_bytes());
    }
    if masked {
        out.extend(MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend(payload);
    }
    out
}

/// A PlayHouse frame: 4-byte little-endian length, then the body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A server stream over an in-memory pipe whose reads return at most `chunk` bytes.
fn pair(chunk: usize) -> (WsServerStream<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(chunk);
    (WsServerStream::new(server, MAX), client)
}

/// Reads exactly `n` bytes the server wrote.
async fn read_n(client: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    tokio::time::timeout(WAIT, client.read_exact(&mut out))
        .await
        .expect("in time")
        .expect("read");
    out
}

/// Reads what the server stream yields until `n` bytes.
async fn server_read(server: &mut WsServerStream<DuplexStream>, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    tokio::time::timeout(WAIT, server.read_exact(&mut out))
        .await
        .expect("in time")
        .expect("read");
    out
}

#[tokio::test]
async fn fragments_are_joined_and_pings_answered_even_one_byte_at_a_time() {
    let (mut server, client) = pair(1);
    let body = frame(&[9u8; 300]); // a 16-bit length
    let (head, tail) = body.split_at(100);
    let mut bytes = client_frame(0x02, head, true); // binary, not final
    bytes.extend(client_frame(0x89, b"hi", true)); // a ping between the fragments
    bytes.extend(client_frame(0x80, tail, true)); // final continuation
    let (mut from_server, mut to_server) = tokio::io::split(client);
    let expected = body.clone();
    // The server only reads: the pong must still go out, one byte at a time.
    let reader = tokio::spawn(async move {
        assert_eq!(server_read(&mut server, expected.len()).await, expected);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.map(|_| rest)
    });
    to_server.write_all(&bytes).await.unwrap();
    let mut pong = [0; 4];
    tokio::time::timeout(WAIT, from_server.read_exact(&mut pong))
        .await
        .expect("pong in time")
        .unwrap();
    assert_eq!(pong, [0x8A, 2, b'h', b'i']);
    drop(to_server);
    drop(from_server);
    let rest = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    assert!(rest.is_ok_and(|rest| rest.is_empty()));
}

#[tokio::test]
async fn a_64_bit_length_message_arrives_whole() {
    let (mut server, client) = pair(64 * 1024);
    let body = frame(&[3u8; 70_000]);
    let bytes = client_frame(0x82, &body, true);
    let mut client = client;
    let writer = tokio::spawn(async move { client.write_all(&bytes).await });
    assert_eq!(server_read(&mut server, body.len()).await, body);
    writer.await.unwrap().unwrap();
}

#[tokio::test]
async fn each_written_frame_is_one_binary_message_with_the_right_header() {
    let (mut server, mut client) = pair(1 << 20);
    let small = frame(b"abc");
    let medium = frame(&[1u8; 200]);
    let large = frame(&[2u8; 70_000]);
    let mut stream = small.clone();
    stream.extend(&medium);
    stream.extend(&large);
    // Written in uneven pieces: frames are cut at their length prefixes, not at writes.
    for piece in stream.chunks(777) {
        server.write_all(piece).await.unwrap();
    }
    server.flush().await.unwrap();
    let mut expected = vec![0x82, small.len() as u8];
    expected.extend(&small);
    expected.extend([0x82, 126]);
    expected.extend((medium.len() as u16).to_be_bytes());
    expected.extend(&medium);
    expected.extend([0x82, 127]);
    expected.extend((large.len() as u64).to_be_bytes());
    expected.extend(&large);
    assert_eq!(read_n(&mut client, expected.len()).await, expected);
}

#[tokio::test]
async fn a_close_is_answered_with_its_code_and_ends_the_stream() {
    let (mut server, mut client) = pair(1024);
    client
        .write_all(&client_frame(0x88, &1001u16.to_be_bytes(), true))
        .await
        .unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, server.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "end of stream");
    assert_eq!(read_n(&mut client, 4).await, [0x88, 2, 0x03, 0xE9]);
    // Shutting down afterwards sends no second close.
    server.shutdown().await.unwrap();
    let mut after = Vec::new();
    client.read_to_end(&mut after).await.unwrap();
    assert!(after.is_empty(), "{after:?}");
}

#[tokio::test]
async fn shutdown_sends_a_normal_close() {
    let (mut server, mut client) = pair(1024);
    server.shutdown().await.unwrap();
    let mut all = Vec::new();
    client.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, [0x88, 2, 0x03, 0xE8]);
}

/// The error a bad frame from the client gives (payload before it is read as usual).
async fn rejected(name: &str, bytes: Vec<u8>, max: usize) -> std::io::Error {
    let (server, mut client) = duplex(1 << 20);
    let mut server = WsServerStream::new(server, max);
    client.write_all(&bytes).await.unwrap();
    let mut buf = vec![0; 1 << 20];
    loop {
        match tokio::time::timeout(WAIT, server.read(&mut buf)).await {
            Ok(Ok(n)) => assert!(n > 0, "{name}: ended without an error"),
            Ok(Err(error)) => return error,
            Err(_) => panic!("{name}: no error"),
        }
    }
}

#[tokio::test]
async fn frames_outside_the_protocol_are_errors() {
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("unmasked", client_frame(0x82, b"x", false), MAX),
        ("text", client_frame(0x81, b"x", true), MAX),
        ("reserved bit", client_frame(0xC2, b"x", true), MAX),
        ("unknown opcode", client_frame(0x83, b"x", true), MAX),
        ("lone continuation", client_frame(0x80, b"x", true), MAX),
        ("fragmented ping", client_frame(0x09, b"x", true), MAX),
        ("long ping", client_frame(0x89, &[0; 126], true), MAX),
        (
            "message over the limit",
            client_frame(0x82, &[0; 101], true),
            100,
        ),
        ("one-byte close", client_frame(0x88, &[1], true), MAX),
        (
            "new message inside a fragmented one",
            [
                client_frame(0x02, b"a", true),
                client_frame(0x82, b"b", true),
            ]
            .concat(),
            MAX,
        ),
        (
            "fragments over the limit together",
            [
                client_frame(0x02, &[0; 60], true),
                client_frame(0x80, &[0; 60], true),
            ]
            .concat(),
            100,
        ),
    ];
    for (name, bytes, max) in cases {
        let error = rejected(name, bytes, max).await;
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{name}");
    }
}

/// Sends `request` to a server accepting at `/ws`: its result, and what the client got.
async fn handshake(request: &str) -> (std::io::Result<WsServerStream<DuplexStream>>, String) {
    let (server, mut client) = duplex(1 << 16);
    client.write_all(request.as_bytes()).await.unwrap();
    let accepted = accept(server, "/ws", MAX).await;
    let mut response = vec![0; 1024];
    let n = client.read(&mut response).await.unwrap();
    (
        accepted,
        String::from_utf8_lossy(&response[..n]).into_owned(),
    )
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

#[tokio::test]
async fn the_handshake_answers_rfc_6455s_example() {
    let (accepted, response) =
        handshake(&format!("GET /ws?room=1 HTTP/1.1\r\nHost: x\r\n{UPGRADE}")).await;
    accepted.expect("accepted");
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    assert!(
        response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{response}"
    );
}

#[tokio::test]
async fn the_handshake_refuses_other_paths_and_non_upgrades() {
    let (accepted, response) = handshake(&format!("GET /other HTTP/1.1\r\n{UPGRADE}")).await;
    assert!(accepted.is_err());
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
    let (accepted, response) = handshake("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(accepted.is_err());
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    let (accepted, response) = handshake(&format!("POST /ws HTTP/1.1\r\n{UPGRADE}")).await;
    assert!(accepted.is_err());
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    let (accepted, response) = handshake("NOT HTTP\r\n\r\n").await;
    assert!(accepted.is_err());
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
}

#[tokio::test]
async fn an_endless_handshake_request_is_refused() {
    let (server, mut client) = duplex(1 << 16);
    let flood = format!("GET /ws HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
    client.write_all(flood.as_bytes()).await.unwrap();
    let accepted = tokio::time::timeout(WAIT, accept(server, "/ws", MAX))
        .await
        .unwrap();
    assert!(accepted.is_err());
}

#[tokio::test]
async fn frames_sent_right_behind_the_handshake_are_read() {
    let body = frame(b"early");
    let mut request = format!("GET /ws HTTP/1.1\r\n{UPGRADE}").into_bytes();
    request.extend(client_frame(0x82, &body, true));
    let (server, mut client) = duplex(1 << 16);
    client.write_all(&request).await.unwrap();
    let mut ws = accept(server, "/ws", MAX).await.unwrap();
    let mut got = vec![0; body.len()];
    ws.read_exact(&mut got).await.unwrap();
    assert_eq!(got, body);
}

#[test]
fn upgrade_key_needs_every_header() {
    let good = [
        ("Upgrade", &b"websocket"[..]),
        ("Connection", b"keep-alive, Upgrade"),
        ("Sec-WebSocket-Version", b"13"),
        ("Sec-WebSocket-Key", b"abc"),
    ];
    assert_eq!(upgrade_key(good), Some(&b"abc"[..]));
    for skip in 0..good.len() {
        let partial = good
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, pair)| *pair);
        assert_eq!(upgrade_key(partial), None, "without {skip}");
    }
}

/// A real WebSocket client library against the listener: binary echo, ping, close.
#[tokio::test]
async fn tungstenite_client_round_trip_ping_and_close() {
    let mut listener = WsListener::new(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        "/ws",
    );
    use playhouse_transport::Listener;
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut io, _) = listener.accept().await.unwrap();
        let mut buf = vec![0; 4096];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    io.write_all(&buf[..n]).await.unwrap();
                    io.flush().await.unwrap();
                }
            }
        }
    });
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .expect("connect");
    let body = frame(b"hello");
    client
        .send(Message::Binary(body.clone().into()))
        .await
        .unwrap();
    client
        .send(Message::Ping(b"p".to_vec().into()))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        match tokio::time::timeout(WAIT, client.next()).await.unwrap() {
            Some(Ok(message)) => got.push(message),
            other => panic!("{other:?}"),
        }
    }
    assert!(got.contains(&Message::Binary(body.into())), "{got:?}");
    assert!(
        got.contains(&Message::Pong(b"p".to_vec().into())),
        "{got:?}"
    );
    client.close(None).await.unwrap();
    match tokio::time::timeout(WAIT, client.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(close)))) => assert_eq!(close.code, CloseCode::Normal),
        other => panic!("{other:?}"),
    }
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
}

/// A small deterministic generator for the randomized test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A client frame masked with `mask`.
fn masked_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = client_frame(first, &[], false);
    out.truncate(1);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend((len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend((len as u64).to_be_bytes());
    }
    out.extend(mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Random messages cut into random fragments with random masks and pings between them, read
/// through pipes of random widths: the stream that comes out is the one that went in, and
/// every ping is answered in order.
#[tokio::test]
async fn random_fragments_masks_and_read_sizes_give_back_the_stream() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for case in 0..150 {
        let mut stream = Vec::new();
        let mut wire = Vec::new();
        let mut pings = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let len = match rng.below(4) {
                0 => rng.below(8),
                1 => rng.below(300),
                2 => 126 + rng.below(2000),
                _ => 65_536 + rng.below(500),
            };
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let message = frame(&body);
            // Cut into 1-4 fragments, a ping maybe between them.
            let cuts = rng.below(4);
            let mut at = 0;
            for i in 0..=cuts {
                let end = if i == cuts {
                    message.len()
                } else {
                    (at + rng.below(message.len() - at + 1)).min(message.len())
                };
                let opcode = if i == 0 { 0x2 } else { 0x0 };
                let fin = if i == cuts { 0x80 } else { 0 };
                let mask = (rng.next() as u32).to_be_bytes();
                wire.extend(masked_frame(fin | opcode, &message[at..end], mask));
                at = end;
                if rng.below(3) == 0 {
                    let ping: Vec<u8> = (0..rng.below(10)).map(|_| rng.next() as u8).collect();
                    wire.extend(masked_frame(0x89, &ping, (rng.next() as u32).to_be_bytes()));
                    pings.push(ping);
                }
            }
            stream.extend(message);
        }
        let width = 1 + rng.below(100);
        let (server, client) = duplex(width);
        let mut server = WsServerStream::new(server, MAX);
        let (mut from_server, mut to_server) = tokio::io::split(client);
        let expected_pongs: Vec<u8> = pings
            .iter()
            .flat_map(|ping| [vec![0x8A, ping.len() as u8], ping.clone()].concat())
            .collect();
        let pong_len = expected_pongs.len();
        let pongs = tokio::spawn(async move {
            let mut got = vec![0; pong_len];
            from_server.read_exact(&mut got).await.map(|_| got)
        });
        let writer = tokio::spawn(async move { to_server.write_all(&wire).await });
        let got = tokio::time::timeout(WAIT, async {
            let mut got = vec![0; stream.len()];
            server.read_exact(&mut got).await.map(|_| got)
        })
        .await
        .unwrap_or_else(|_| panic!("case {case}: stream in time"))
        .unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert!(got == stream, "case {case} (width {width}): stream differs");
        // Keep reading (pings may follow the last fragment) so the last pongs can go out.
        let reader = tokio::spawn(async move {
            let mut rest = [0; 16];
            let _ = server.read(&mut rest).await;
        });
        tokio::time::timeout(WAIT, writer)
            .await
            .unwrap_or_else(|_| panic!("case {case}: all written in time"))
            .unwrap()
            .unwrap();
        let pongs = tokio::time::timeout(WAIT, pongs)
            .await
            .unwrap_or_else(|_| panic!("case {case}: pongs in time"))
            .unwrap()
            .unwrap();
        assert_eq!(pongs, expected_pongs, "case {case}");
        reader.abort();
    }
}
