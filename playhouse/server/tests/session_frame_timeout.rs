//! A frame that has started must finish within `frame_timeout`, before and after login, over
//! TCP, TLS and WebSocket: a client cannot hold half a frame (and the buffer it fills) until
//! the idle timeout. Silence between frames is the idle timeout's business, and a frame
//! split across reads that completes in time goes through.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use playhouse::testing::{EchoActor, EchoStage};
use playhouse::{PlayServer, PlayServerBuilder};
use support::serve::one_stage_type;
use support::{RawClient, client_frame_bytes, closed_within};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// The frame timeout under test; idle and auth timeouts are far longer.
const FRAME_TIMEOUT: Duration = Duration::from_millis(300);

fn builder() -> PlayServerBuilder {
    one_stage_type("Room", |_| EchoStage, |_| EchoActor).configure(|c| {
        c.frame_timeout = FRAME_TIMEOUT;
        c.idle_timeout = Duration::from_secs(60);
        c.auth_timeout = Duration::from_secs(60);
    })
}

/// The first 10 bytes of a 100-byte echo request: a length prefix and part of a body.
fn half_frame() -> Vec<u8> {
    client_frame_bytes("Echo", 9, 1, &[7; 100])[..10].to_vec()
}

/// Sends half a frame on `stream` and checks the server cuts the connection at the frame
/// timeout (not before, and long before the idle timeout), counting it.
async fn half_frame_is_cut<S: AsyncRead + AsyncWrite + Unpin>(server: &PlayServer, stream: &mut S) {
    stream.write_all(&half_frame()).await.unwrap();
    stream.flush().await.unwrap();
    let sent = Instant::now();
    let cut = closed_within(stream, Duration::from_secs(5)).await;
    assert!(cut - sent >= FRAME_TIMEOUT, "cut after {:?}", cut - sent);
    let metrics = server.metrics();
    assert!(metrics.contains("reason=\"frame_timeout\"} 1"), "{metrics}");
}

async fn tcp_server() -> (PlayServer, SocketAddr) {
    let server = builder().build().unwrap();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    (server, addr)
}

#[tokio::test]
async fn a_half_frame_after_login_is_cut_at_the_frame_timeout_over_tcp() {
    let (server, addr) = tcp_server().await;
    let mut client = RawClient::connect(addr, 1).await;
    assert!(client.authenticate("tcp").await.is_success());

    // Silence longer than the frame timeout, with no frame started: nothing happens.
    tokio::time::sleep(FRAME_TIMEOUT * 2).await;
    assert_eq!(&client.request("Echo", b"a").await.payload[..], b"a");
    // A frame in two parts, the second well within the timeout: it goes through.
    let frame = client_frame_bytes("Echo", 500, 1, b"in two parts");
    let (head, tail) = frame.split_at(7);
    client.stream_mut().write_all(head).await.unwrap();
    tokio::time::sleep(FRAME_TIMEOUT / 3).await;
    client.stream_mut().write_all(tail).await.unwrap();
    let reply = client.recv().await.expect("the reply");
    assert_eq!(
        (reply.msg_seq, &reply.payload[..]),
        (500, &b"in two parts"[..])
    );

    half_frame_is_cut(&server, client.stream_mut()).await;
}

#[tokio::test]
async fn a_half_frame_before_login_is_cut_at_the_frame_timeout() {
    let (server, addr) = tcp_server().await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    half_frame_is_cut(&server, &mut stream).await;
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn a_half_frame_after_login_is_cut_at_the_frame_timeout_over_tls() {
    use playhouse_transport::dial::{DialOptions, dial};
    use playhouse_transport::tls;

    let certs = tls::self_signed(&["localhost"]).unwrap();
    let server = builder().build().unwrap();
    let addr = server
        .listen_tls("127.0.0.1:0", certs.server.clone())
        .await
        .unwrap();
    let options = DialOptions {
        tls: Some(tls::client_config_trusting(certs.cert).unwrap()),
        ..DialOptions::default()
    };
    let stream = dial("localhost", addr.port(), &options).await.unwrap();
    let mut client = RawClient::over(stream, 1);
    assert!(client.authenticate("tls").await.is_success());
    half_frame_is_cut(&server, client.stream_mut()).await;
}

#[cfg(feature = "ws")]
#[tokio::test]
async fn a_half_frame_after_login_is_cut_at_the_frame_timeout_over_websocket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let server = builder().build().unwrap();
    let addr = server.listen_ws("127.0.0.1:0", "/ws").await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let auth = client_frame_bytes("AuthenticateRequest", 1, 1, b"ws");
    ws.send(Message::binary(auth)).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Binary(reply))) => {
            assert!(support::decode_server_frame(&reply).error_code.is_success());
        }
        other => panic!("no authenticate reply: {other:?}"),
    }
    // One whole WebSocket message holding half a frame.
    ws.send(Message::binary(half_frame())).await.unwrap();
    let sent = Instant::now();
    let closed = async {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the half frame was not cut");
    assert!(
        sent.elapsed() >= FRAME_TIMEOUT,
        "cut after {:?}",
        sent.elapsed()
    );
    assert!(server.metrics().contains("reason=\"frame_timeout\"} 1"));
}
