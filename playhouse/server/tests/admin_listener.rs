//! The admin listener's security over real sockets: on a loopback bind reads are open and
//! actions need the bearer token; on any other bind every request but the page's HTML needs
//! it; refusals get 401 and a log line. And the admin page's JSON (per stage its actors and
//! game-loop overruns) and the close action.

mod support;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use playhouse::testing::{EchoActor, EchoStage};
use playhouse::{ActorCell, ErrorCode, Packet, PlayServer, Stage, StageContext};
use support::RawClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Log output, captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn count(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains(text))
            .count()
    }
}

/// One HTTP/1.1 request to `addr` (connected over loopback whatever the bind): status, body.
async fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let target = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    let mut stream = TcpStream::connect(target).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

fn server(token: Option<&str>) -> PlayServer {
    let token = token.map(str::to_owned);
    PlayServer::builder()
        .server_id("play-1")
        .stage("Room", |_| EchoStage, |_| EchoActor)
        .default_stage_type("Room")
        .configure(move |c| c.admin_token = token)
        .build()
        .unwrap()
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (log, tracing::subscriber::set_default(subscriber))
}

const REFUSED: &str = "admin request refused";

#[tokio::test]
async fn on_loopback_reads_are_open_and_actions_need_the_token() {
    let (log, _guard) = capture();
    let server = server(Some("s3cret"));
    let admin = server.listen_metrics("127.0.0.1:0").await.unwrap();
    let (status, body) = http(admin, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("playhouse_sessions"), "{body}");
    assert_eq!(http(admin, "GET", "/admin/state", None).await.0, 200);

    assert_eq!(http(admin, "POST", "/drain", None).await.0, 401);
    assert_eq!(log.count(REFUSED), 1, "one log line for the refusal");
    assert_eq!(http(admin, "POST", "/drain", Some("wrong")).await.0, 401);
    assert_eq!(http(admin, "POST", "/stages/1/close", None).await.0, 401);
    assert!(
        !server.control().is_draining(),
        "a refused drain drains nothing"
    );

    let (status, body) = http(admin, "POST", "/drain?within_secs=5", Some("s3cret")).await;
    assert_eq!(
        (status, body.as_str()),
        (202, r#"{"draining":true,"stages":0}"#)
    );
    server.stopped().await;
}

#[tokio::test]
async fn elsewhere_every_request_needs_the_token() {
    let (log, _guard) = capture();
    let server = server(None);
    // Any address but loopback: here the wildcard (the test still connects over loopback).
    let admin = server.listen_metrics("0.0.0.0:0").await.unwrap();
    // No token configured: one was generated and logged once.
    let token = server.admin_token();
    assert_eq!(token.len(), 32);
    assert_eq!(log.count(&token), 1, "the generated token is logged once");

    assert_eq!(http(admin, "GET", "/metrics", None).await.0, 401);
    assert_eq!(
        http(admin, "GET", "/admin/state", Some("nope")).await.0,
        401
    );
    assert!(log.count(REFUSED) >= 1);
    let (status, body) = http(admin, "GET", "/metrics", Some(&token)).await;
    assert_eq!(status, 200);
    assert!(body.contains("playhouse_stages"), "{body}");
    // The page itself is static: it asks for the token before it reads anything.
    let (status, page) = http(admin, "GET", "/", None).await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>PlayHouse admin</title>"));
    assert_eq!(log.count(&token), 1, "and never logged again");
    server.stop().await;
}

#[tokio::test]
async fn the_page_state_lists_stages_and_the_close_action_closes_one() {
    let server = server(Some("t"));
    let tcp = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let admin = server.listen_metrics("127.0.0.1:0").await.unwrap();
    let mut client = RawClient::connect(tcp, 77).await;
    client.authenticate("alice").await;
    let (status, state) = http(admin, "GET", "/admin/state", None).await;
    assert_eq!(status, 200);
    assert!(
        state.starts_with(r#"{"server":"play-1","sessions":1,"actors":1,"#),
        "{state}"
    );
    assert!(
        state.contains(r#"{"id":77,"type":"Room","actors":1,"queued":0,"#),
        "{state}"
    );
    assert!(
        state.contains(r#""cluster":[{"id":"play-1","type":"play""#),
        "{state}"
    );

    assert_eq!(
        http(admin, "POST", "/stages/77/close", Some("t")).await.0,
        202
    );
    let deadline = tokio::time::Instant::now() + support::WAIT;
    while server.stage_count() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stage never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        http(admin, "POST", "/stages/77/close", Some("t")).await.0,
        404
    );
    server.stop().await;
}

/// A stage whose game loop runs two ticks, each longer than its 1 ms timestep, then stops and
/// says so.
struct Overrunning(Arc<Notify>);

impl Stage for Overrunning {
    type Actor = EchoActor;

    async fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        let stopped = Arc::clone(&self.0);
        ctx.start_game_loop(Duration::from_millis(1), move |_, ctx, tick| {
            // Blocks past the timestep: each of the two ticks is an overrun.
            std::thread::sleep(Duration::from_millis(3));
            if tick.tick == 2 {
                ctx.stop_game_loop();
                stopped.notify_one();
            }
        });
        Ok(Packet::empty("Created"))
    }

    async fn on_dispatch(
        &mut self,
        _: &mut StageContext<Self>,
        _: &mut ActorCell<EchoActor>,
        _: Packet,
    ) {
    }
}

#[tokio::test]
async fn the_page_state_counts_each_stages_actors_and_tick_overruns() {
    let stopped = Arc::new(Notify::new());
    let loops = Arc::clone(&stopped);
    let server = PlayServer::builder()
        .server_id("play-1")
        .stage(
            "Loop",
            move |_| Overrunning(Arc::clone(&loops)),
            |_| EchoActor,
        )
        .stage("Room", |_| EchoStage, |_| EchoActor)
        .default_stage_type("Loop")
        .build()
        .unwrap();
    let tcp = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let admin = server.listen_metrics("127.0.0.1:0").await.unwrap();
    let mut clients = Vec::new();
    for user in ["alice", "bob"] {
        let mut client = RawClient::connect(tcp, 5).await;
        assert!(client.authenticate(user).await.is_success());
        clients.push(client);
    }
    stopped.notified().await;

    let (status, state) = http(admin, "GET", "/admin/state", None).await;
    assert_eq!(status, 200);
    assert!(
        state.contains(r#"{"id":5,"type":"Loop","actors":2,"queued":0,"#),
        "{state}"
    );
    assert!(state.contains(r#""tick_overruns":2}"#), "{state}");

    drop(clients);
    server.stop().await;
}
