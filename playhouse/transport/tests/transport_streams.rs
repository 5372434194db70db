//! Every transport carries the same byte stream; handshakes never block accept.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use playhouse_transport::dial::{DialOptions, dial};
use playhouse_transport::{Listener, TlsListener, WsListener, tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Accepts connections and echoes their bytes back.
fn spawn_echo<L: Listener>(mut listener: L) {
    tokio::spawn(async move {
        loop {
            let Ok((mut io, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if io.write_all(&buf[..n]).await.is_err() || io.flush().await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

async fn tcp() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

async fn round_trip(port: u16, options: DialOptions) {
    let mut io = dial("localhost", port, &options).await.expect("dial");
    let mut sent = frame(b"first");
    sent.extend(frame(&[7u8; 3000]));
    io.write_all(&sent).await.unwrap();
    io.flush().await.unwrap();
    let mut back = vec![0u8; sent.len()];
    tokio::time::timeout(WAIT, io.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, sent);
}

fn certs() -> tls::SelfSigned {
    tls::self_signed(&["localhost", "127.0.0.1"]).unwrap()
}

#[tokio::test]
async fn tcp_round_trip() {
    let listener = tcp().await;
    let port = listener.local_addr().unwrap().port();
    assert_eq!(Listener::transport_name(&listener), "tcp");
    spawn_echo(listener);
    round_trip(port, DialOptions::default()).await;
}

#[tokio::test]
async fn tls_round_trip_with_a_trusted_self_signed_certificate() {
    let certs = certs();
    let listener = TlsListener::new(tcp().await, certs.server.clone());
    let port = listener.local_addr().unwrap().port();
    assert_eq!(listener.transport_name(), "tls");
    spawn_echo(listener);
    let trusted = DialOptions {
        tls: Some(tls::client_config_trusting(certs.cert.clone()).unwrap()),
        ..DialOptions::default()
    };
    round_trip(port, trusted).await;
    let insecure = DialOptions {
        tls: Some(tls::insecure_client_config().unwrap()),
        ..DialOptions::default()
    };
    round_trip(port, insecure).await;
}

#[tokio::test]
async fn tls_rejects_an_untrusted_certificate() {
    let listener = TlsListener::new(tcp().await, certs().server);
    let port = listener.local_addr().unwrap().port();
    spawn_echo(listener);
    let other = certs(); // a different self-signed certificate
    let options = DialOptions {
        tls: Some(tls::client_config_trusting(other.cert).unwrap()),
        ..DialOptions::default()
    };
    assert!(dial("localhost", port, &options).await.is_err());
}

#[tokio::test]
async fn ws_and_wss_round_trip() {
    let ws = WsListener::new(tcp().await, "/ws");
    let ws_port = ws.local_addr().unwrap().port();
    assert_eq!(ws.transport_name(), "ws");
    spawn_echo(ws);
    let path = Some("/ws".to_owned());
    let plain = DialOptions {
        websocket_path: path.clone(),
        ..DialOptions::default()
    };
    round_trip(ws_port, plain).await;

    let certs = certs();
    let wss = WsListener::new(TlsListener::new(tcp().await, certs.server), "/ws");
    let wss_port = wss.local_addr().unwrap().port();
    assert_eq!(wss.transport_name(), "wss");
    spawn_echo(wss);
    let secure = DialOptions {
        websocket_path: path,
        tls: Some(tls::client_config_trusting(certs.cert).unwrap()),
        ..DialOptions::default()
    };
    round_trip(wss_port, secure).await;
}

#[tokio::test]
async fn each_websocket_message_holds_exactly_one_frame() {
    let ws = WsListener::new(tcp().await, "/ws");
    let port = ws.local_addr().unwrap().port();
    spawn_echo(ws);
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .unwrap();
    // Two frames in one message in, two messages out: the server cuts at frame boundaries.
    let mut two = frame(b"one");
    two.extend(frame(b"two!"));
    client.send(Message::Binary(two.into())).await.unwrap();
    for expected in [frame(b"one"), frame(b"two!")] {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(message, Message::Binary(expected.into()));
    }
}

#[tokio::test]
async fn websocket_text_messages_end_the_stream_with_an_error() {
    let mut ws = WsListener::new(tcp().await, "/ws");
    let port = ws.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut io, _) = ws.accept().await.unwrap();
        let mut buf = [0u8; 16];
        io.read(&mut buf).await
    });
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .unwrap();
    client.send(Message::text("hello")).await.unwrap();
    let read = tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
    assert_eq!(read.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn websocket_upgrades_only_at_the_configured_path() {
    let ws = WsListener::new(tcp().await, "/ws");
    let port = ws.local_addr().unwrap().port();
    spawn_echo(ws);
    let wrong = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/other")).await;
    assert!(wrong.is_err());
}

#[tokio::test]
async fn a_stalled_handshake_does_not_block_other_clients() {
    let certs = certs();
    let listener = TlsListener::new(tcp().await, certs.server.clone());
    let port = listener.local_addr().unwrap().port();
    spawn_echo(listener);
    // Connects and never says hello.
    let _stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut garbage = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let options = DialOptions {
        tls: Some(tls::client_config_trusting(certs.cert).unwrap()),
        ..DialOptions::default()
    };
    tokio::time::timeout(WAIT, round_trip(port, options))
        .await
        .unwrap();
    // The garbage connection is closed by the failed handshake.
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, garbage.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(n == 0 || buf[0] == 0x15, "closed or a TLS alert");
}

/// A server-side shutdown of a WebSocket over TLS ends with the WebSocket Close frame *and*
/// TLS `close_notify`: the client reads a clean end of stream, not a truncation error.
#[tokio::test]
async fn wss_shutdown_sends_close_notify() {
    let certs = tls::self_signed(&["localhost"]).unwrap();
    let mut listener = WsListener::new(TlsListener::new(tcp().await, certs.server), "/ws");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut io, _) = listener.accept().await.unwrap();
        // Finish the handshakes (the first read drives them), then close from the server.
        let mut byte = [0u8; 1];
        let _ = io.read(&mut byte).await;
        io.shutdown().await.unwrap();
    });

    let client_tls = tls::insecure_client_config().unwrap();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(client_tls)
        .connect(name, stream)
        .await
        .unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            n, 1,
            "the server hung up during the handshake: {response:?}"
        );
        response.push(byte[0]);
    }
    // One binary frame (masked, as from a client) so the server's first read returns.
    stream
        .write_all(&[0x82, 0x81, 1, 2, 3, 4, 5 ^ 1])
        .await
        .unwrap();
    let mut received = response;
    let end = tokio::time::timeout(WAIT, stream.read_to_end(&mut received))
        .await
        .expect("the server never closed");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text} / {end:?}");
    assert!(
        end.is_ok(),
        "the stream ended without TLS close_notify: {end:?}"
    );
    // The WebSocket Close frame (opcode 8, unmasked from the server) came before the end.
    assert!(received.contains(&0x88), "no WebSocket Close frame");
}
