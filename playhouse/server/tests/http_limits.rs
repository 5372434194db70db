//! The HTTP front door (`serve_http`, and the metrics endpoint built on it) against slow,
//! idle and too many clients over real sockets: each is cut within its configured timeout or
//! refused at the cap, and a healthy client keeps getting its replies.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use playhouse::testing::{EchoActor, EchoStage};
use playhouse::{HttpLimits, PlayServer, serve_http};
use playhouse_transport::dial::{DialOptions, dial};
use support::{RawClient, WAIT, closed_within};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Timeouts short enough for a test, far enough apart to tell which one fired.
const SHORT: Duration = Duration::from_millis(300);
/// Margin for a loaded machine: a timeout fires within this after its deadline.
const SLACK: Duration = Duration::from_millis(1_500);

fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
}

struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    done: JoinHandle<()>,
}

async fn start(app: Router, limits: HttpLimits) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let done = tokio::spawn(serve_http(
        listener,
        app,
        limits,
        stop.clone().cancelled_owned(),
    ));
    Running { addr, stop, done }
}

/// Reads one HTTP response (head and `Content-Length` body): status and body.
async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> (u16, String) {
    let read = async {
        let mut data = Vec::new();
        let mut buf = [0u8; 1024];
        let head_end = loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before a response: {data:?}");
            data.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
        let status = head[9..12].parse().expect("status");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while data.len() < head_end + length {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed inside a response body");
            data.extend_from_slice(&buf[..n]);
        }
        let body = String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned();
        (status, body)
    };
    tokio::time::timeout(WAIT, read).await.expect("no response")
}

/// `GET path` on a fresh connection.
async fn get_once(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(&mut stream).await
}

/// Asserts that `at - since` is at least `at_least` (the timeout did not fire early) and at
/// most `at_least + SLACK`.
fn fired_after(since: Instant, at: Instant, at_least: Duration) {
    let took = at - since;
    assert!(
        took >= at_least.mul_f32(0.9) && took <= at_least + SLACK,
        "closed after {took:?}, expected about {at_least:?}"
    );
}

fn limits(change: impl FnOnce(&mut HttpLimits)) -> HttpLimits {
    let mut limits = HttpLimits::default();
    change(&mut limits);
    limits
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let server = start(app(), limits(|l| l.header_timeout = SHORT)).await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let at = closed_within(&mut silent, SHORT + SLACK).await;
    fired_after(opened, at, SHORT);
    assert_eq!(get_once(server.addr, "/hello").await.0, 200);
}

#[tokio::test]
async fn headers_trickled_a_byte_at_a_time_are_cut_at_the_header_timeout() {
    let header = Duration::from_millis(600);
    let server = start(
        app(),
        limits(|l| {
            l.header_timeout = header;
            // Idle before the first byte may not be what cuts it.
            l.keep_alive_timeout = Duration::from_secs(30);
        }),
    )
    .await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        let request = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        for byte in request {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(header + SLACK, reader.read_to_end(&mut seen)).await;
    let at = Instant::now();
    trickle.abort();
    assert!(closed.is_ok(), "still open after {:?}", at - started);
    assert!(
        seen.is_empty(),
        "no response to a partial request: {seen:?}"
    );
    fired_after(started, at, header);
    assert_eq!(get_once(server.addr, "/hello").await.0, 200);
}

#[tokio::test]
async fn a_body_trickled_slowly_gets_408_at_the_request_timeout_and_the_connection_closes() {
    let request_timeout = Duration::from_millis(600);
    let server = start(app(), limits(|l| l.request_timeout = request_timeout)).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (status, _) = read_response(&mut reader).await;
    let answered = Instant::now();
    assert_eq!(status, 408);
    fired_after(started, answered, request_timeout);
    closed_within(&mut reader, SLACK).await;
    trickle.abort();
    assert_eq!(get_once(server.addr, "/hello").await.0, 200);
}

#[tokio::test]
async fn a_slow_handler_gets_503_at_the_request_timeout() {
    let server = start(app(), limits(|l| l.request_timeout = SHORT)).await;
    let started = Instant::now();
    let (status, _) = get_once(server.addr, "/slow").await;
    assert_eq!(status, 503);
    fired_after(started, Instant::now(), SHORT);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_keep_alive_timeout_not_before() {
    let keep_alive = Duration::from_millis(1_200);
    let server = start(
        app(),
        limits(|l| {
            l.header_timeout = SHORT;
            l.keep_alive_timeout = keep_alive;
        }),
    )
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    stream.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut stream).await, (200, "hello".into()));
    // Idle longer than the header timeout but within the keep-alive timeout: still usable.
    tokio::time::sleep(SHORT * 2).await;
    stream.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut stream).await, (200, "hello".into()));
    let idle_since = Instant::now();
    let at = closed_within(&mut stream, keep_alive + SLACK).await;
    fired_after(idle_since, at, keep_alive);
}

#[tokio::test]
async fn the_connection_cap_refuses_at_once_and_frees_a_place_when_one_closes() {
    let server = start(app(), limits(|l| l.max_connections = 2)).await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    // Both are being served (not just queued in the kernel).
    for stream in [&mut first, &mut second] {
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(stream).await.0, 200);
    }
    // The third is closed at once, long before any timeout (default: 10 s).
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    closed_within(&mut third, Duration::from_secs(2)).await;
    // The first two are unaffected.
    second
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut second).await.0, 200);
    // One leaves: a newcomer gets in.
    first
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut first).await.0, 200);
    closed_within(&mut first, WAIT).await;
    let deadline = Instant::now() + WAIT;
    loop {
        // The server frees the place right after closing its side: retry briefly.
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut reply)).await;
        if reply.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no place freed");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn the_metrics_endpoint_has_the_same_limits() {
    let server = PlayServer::builder()
        .configure(|c| {
            c.metrics_http.max_connections = 1;
            c.metrics_http.header_timeout = SHORT;
        })
        .build()
        .unwrap();
    let addr = server.listen_metrics("127.0.0.1:0").await.unwrap();
    let opened = Instant::now();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    // Over the cap while `idle` holds the only place: refused at once.
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let at = closed_within(&mut refused, SHORT).await;
    assert!(at - opened < SHORT, "refused only after {:?}", at - opened);
    // The idle one is cut at the header timeout; then a healthy client gets its metrics.
    let at = closed_within(&mut idle, SHORT + SLACK).await;
    fired_after(opened, at, SHORT);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_string(&mut reply)).await;
        if reply.starts_with("HTTP/1.1 200") {
            assert!(reply.contains("playhouse_sessions"), "{reply}");
            break;
        }
        assert!(Instant::now() < deadline, "no place freed");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn handlers_see_the_client_address() {
    let server = start(app(), HttpLimits::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream
        .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut stream).await, (200, local.to_string()));
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let server = start(app(), HttpLimits::default()).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);
    server.stop.cancel();
    // Far below the default keep-alive timeout (60 s).
    tokio::time::timeout(WAIT, server.done)
        .await
        .expect("serve_http did not return")
        .unwrap();
    closed_within(&mut idle, WAIT).await;
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still listening"
    );
}

#[tokio::test]
async fn a_websocket_upgraded_through_serve_http_outlives_the_http_timeouts() {
    let play = PlayServer::builder()
        .stage("Room", |_| EchoStage, |_| EchoActor)
        .default_stage_type("Room")
        .build()
        .unwrap();
    let app = app().merge(play.websocket_router("/ws", false));
    let server = start(
        app,
        limits(|l| {
            l.header_timeout = SHORT;
            l.request_timeout = SHORT;
            l.keep_alive_timeout = SHORT;
            l.max_connections = 1;
        }),
    )
    .await;
    let options = DialOptions {
        websocket_path: Some("/ws".into()),
        ..DialOptions::default()
    };
    let stream = dial("127.0.0.1", server.addr.port(), &options)
        .await
        .unwrap();
    let mut client = RawClient::over(stream, 1);
    assert!(client.authenticate("ws-user").await.is_success());
    // The upgraded connection is no longer HTTP: it leaves the HTTP cap (1 here) ...
    assert_eq!(get_once(server.addr, "/hello").await.0, 200);
    // ... and no HTTP timeout cuts it, though it stays silent longer than all of them.
    tokio::time::sleep(SHORT * 4).await;
    let echo = client.request("Echo", b"still here").await;
    assert_eq!(&echo.payload[..], b"still here");
    assert_eq!(play.session_count(), 1);
}

#[test]
fn raise_fd_limit_lifts_the_soft_limit_to_the_hard_limit() {
    use rlimit::Resource;
    let (_, hard) = Resource::NOFILE.get().unwrap();
    // Start below the hard limit, as a default login shell would (1,024).
    let low = hard.min(1_024);
    Resource::NOFILE.set(low, hard).unwrap();
    let raised = playhouse::raise_fd_limit().unwrap();
    let (soft, hard_after) = Resource::NOFILE.get().unwrap();
    assert_eq!(hard_after, hard);
    assert_eq!(soft, hard, "soft limit not raised");
    assert_eq!(raised, soft);
}
