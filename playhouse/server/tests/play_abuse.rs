//! Bad and abusive clients (SPEC §9) against a real server: each is cut within its timeout,
//! and a healthy client beside it keeps getting its replies.

mod support;

use std::time::Duration;

#[cfg(feature = "ws")]
use futures_util::{SinkExt, StreamExt};
#[cfg(feature = "ws")]
use playhouse::ErrorCode;
use playhouse::testing::{EchoActor, EchoStage};
use playhouse::{PlayConfig, PlayServer, RateLimit};
#[cfg(feature = "tls")]
use playhouse_transport::dial::{DialOptions, dial};
#[cfg(feature = "tls")]
use playhouse_transport::tls;
#[cfg(any(feature = "ws", feature = "http"))]
use support::WAIT;
use support::{RawClient, closed};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
#[cfg(feature = "ws")]
use tokio_tungstenite::tungstenite::Message;

async fn server(change: impl FnOnce(&mut PlayConfig)) -> (PlayServer, std::net::SocketAddr) {
    let server = PlayServer::builder()
        .stage("Room", |_| EchoStage, |_| EchoActor)
        .default_stage_type("Room")
        .configure(change)
        .build()
        .unwrap();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    (server, addr)
}

async fn healthy(addr: std::net::SocketAddr, user: &str) -> RawClient {
    let mut client = RawClient::connect(addr, 1).await;
    assert!(client.authenticate(user).await.is_success());
    client
}

async fn still_healthy(client: &mut RawClient) {
    let echo = client.request("Echo", b"ping").await;
    assert_eq!(&echo.payload[..], b"ping");
}

#[tokio::test]
async fn connections_over_the_total_cap_are_closed_at_once() {
    let (server, addr) = server(|c| c.max_connections = 2).await;
    let mut a = healthy(addr, "a").await;
    let _b = healthy(addr, "b").await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    closed(&mut third).await;
    still_healthy(&mut a).await;
    assert!(server.metrics().contains("reason=\"connection_limit\"} 1"));
    drop(a);
    // The freed place is reusable once the server has seen the close.
    let mut retried = None;
    for _ in 0..50 {
        let mut client = RawClient::connect(addr, 1).await;
        client.request_nowait("AuthenticateRequest", b"c").await;
        if let Some(reply) = client.recv().await {
            assert!(reply.error_code.is_success());
            retried = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(retried.is_some(), "a place never freed up");
}

#[tokio::test]
async fn connections_over_the_per_ip_cap_are_closed() {
    let (_server, addr) = server(|c| c.max_connections_per_ip = Some(1)).await;
    let mut a = healthy(addr, "a").await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    closed(&mut second).await;
    still_healthy(&mut a).await;
}

#[tokio::test]
async fn a_client_over_its_message_rate_is_cut() {
    let limit = RateLimit::new(1, 20);
    let (_server, addr) = server(|c| c.rate_limit = Some(limit)).await;
    let mut ok = healthy(addr, "ok").await;
    let mut flooder = healthy(addr, "flooder").await;
    for _ in 0..100 {
        flooder.send("Echo", b"spam").await;
    }
    flooder.expect_closed().await;
    still_healthy(&mut ok).await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_by_the_write_timeout() {
    let (_server, addr) = server(|c| {
        c.write_timeout = Duration::from_millis(300);
        // Only the write timeout may cut the flood below.
        c.rate_limit = None;
    })
    .await;
    let mut ok = healthy(addr, "ok").await;
    let mut flooder = healthy(addr, "reader-never").await;
    // Requests whose replies pile up: 64 KiB each of incompressible bytes, never read.
    let big = support::noise(64 * 1024);
    let stream = flooder.stream_mut();
    let mut sent = 0usize;
    let flood = async {
        for seq in 1..=2000u16 {
            let mut frame = Vec::new();
            let body = 1 + 4 + 2 + 8 + big.len();
            frame.extend((body as i32).to_le_bytes());
            frame.push(4);
            frame.extend(b"Echo");
            frame.extend(seq.to_le_bytes());
            frame.extend(1i64.to_le_bytes());
            frame.extend(&big);
            if stream.write_all(&frame).await.is_err() {
                return;
            }
            sent += 1;
        }
    };
    // Either the writes start failing (server closed) or they block on a full socket.
    let _ = tokio::time::timeout(Duration::from_secs(10), flood).await;
    assert!(
        sent < 2000,
        "the server kept accepting a client that never reads"
    );
    still_healthy(&mut ok).await;
}

#[tokio::test]
async fn half_a_frame_then_silence_is_cut_by_the_timeouts() {
    let (_server, addr) = server(|c| {
        c.auth_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_millis(600);
    })
    .await;
    // A healthy client keeps talking (and so stays within its idle timeout) throughout.
    let mut ok = RawClient::connect(addr, 1).await;
    assert!(ok.authenticate("ok").await.is_success());
    let chatter = tokio::spawn(async move {
        for _ in 0..15 {
            still_healthy(&mut ok).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ok
    });

    // Unauthenticated: the auth timeout.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(&[40, 0, 0, 0, 5, b'E']).await.unwrap();
    closed(&mut raw).await;

    // Authenticated: the idle timeout.
    let mut stalled = healthy(addr, "stalled").await;
    stalled
        .stream_mut()
        .write_all(&[40, 0, 0, 0, 4, b'E'])
        .await
        .unwrap();
    stalled.expect_closed().await;

    let mut ok = chatter.await.expect("the healthy client failed meanwhile");
    still_healthy(&mut ok).await;
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn garbage_instead_of_a_tls_handshake_closes_only_that_connection() {
    let certs = tls::self_signed(&["localhost"]).unwrap();
    let server = PlayServer::builder()
        .stage("Room", |_| EchoStage, |_| EchoActor)
        .default_stage_type("Room")
        .build()
        .unwrap();
    let addr = server
        .listen_tls("127.0.0.1:0", certs.server.clone())
        .await
        .unwrap();
    let options = DialOptions {
        tls: Some(tls::client_config_trusting(certs.cert).unwrap()),
        ..DialOptions::default()
    };
    let mut ok = dial("localhost", addr.port(), &options).await.unwrap();

    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage.write_all(&[0xde; 512]).await.unwrap();
    closed(&mut garbage).await;

    // The TLS client authenticates and echoes over its stream.
    let mut client = support::RawClient::over(&mut ok, 3);
    assert!(client.authenticate("tls-user").await.is_success());
    let echo = client.request("Echo", b"over tls").await;
    assert_eq!(&echo.payload[..], b"over tls");
}

#[cfg(feature = "ws")]
#[tokio::test]
async fn a_websocket_text_message_closes_only_that_connection() {
    let server = PlayServer::builder()
        .stage("Room", |_| EchoStage, |_| EchoActor)
        .default_stage_type("Room")
        .build()
        .unwrap();
    let addr = server.listen_ws("127.0.0.1:0", "/ws").await.unwrap();
    let url = format!("ws://{addr}/ws");
    let (mut ok, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut bad, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    bad.send(Message::text("hello")).await.unwrap();
    let end = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = bad.next().await {
            if message.is_close() {
                break;
            }
        }
    });
    end.await
        .expect("text message did not close the connection");

    // A binary message holding one whole authenticate frame works on the other connection.
    let frame = support::client_frame_bytes("AuthenticateRequest", 1, 5, b"ws-user");
    ok.send(Message::binary(frame)).await.unwrap();
    let reply = tokio::time::timeout(WAIT, ok.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Binary(bytes) = reply else {
        panic!("expected a binary reply")
    };
    let reply = support::decode_server_frame(&bytes);
    assert_eq!(
        (reply.msg_id.as_ref(), reply.error_code),
        ("AuthenticateReply", ErrorCode::SUCCESS)
    );
}

#[cfg(feature = "http")]
#[tokio::test]
async fn metrics_are_served_over_http() {
    use tokio::io::AsyncReadExt;
    let (server, addr) = server(|_| {}).await;
    let mut client = healthy(addr, "m").await;
    still_healthy(&mut client).await;
    let metrics_addr = server.listen_metrics("127.0.0.1:0").await.unwrap();
    let mut http = TcpStream::connect(metrics_addr).await.unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(WAIT, http.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("playhouse_sessions{server=\"play-1\",transport=\"tcp\"} 1"),
        "{body}"
    );
    assert!(body.contains("playhouse_stages{server=\"play-1\"} 1"));
    assert!(
        body.contains("playhouse_request_latency_seconds_count{server=\"play-1\"} 1"),
        "{body}"
    );
}
