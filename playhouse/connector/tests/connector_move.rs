//! A stage that moves to another Play server takes its players with it: the server sends
//! `@Move@` with the new endpoint and the connector resumes the same session there (same
//! token, same counts, same transport), as after a dropped connection. Scripted servers over
//! real loopback sockets (TCP, WebSocket, WebSocket over TLS) play the old and the new server;
//! a connection that cannot follow a move ends with `ConnectorError::Moved`.
//!
//! Every wait is on an event (a frame, a reply, a channel); `within` only bounds a test that
//! would otherwise hang when it fails.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use playhouse_connector::{
    Connector, ConnectorConfig, ConnectorError, ErrorCode, Packet, Pushes, SessionEvent, TlsTrust,
    Transport,
};
use playhouse_protocol::{
    Capabilities, ClientFrame, CodecConfig, Hello, MoveNotice, RESUME_MSG_ID, ResumeGrant,
    ResumeRequest, ResumeToken, ServerCodec, ServerFrame,
};
use playhouse_transport::{Listener, TlsListener, WsListener, tls};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

const STAGE: i64 = 42;

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn grant() -> ResumeGrant {
    ResumeGrant {
        token: ResumeToken([9; 16]),
        window: Duration::from_secs(30),
        // No acknowledgement during the test: the counts below stay exact.
        ack_every: 1000,
        max_unacked: 1024,
    }
}

/// One transport: its listeners and the connector settings that dial them.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Tcp,
    WebSocket,
    WebSocketTls,
}

/// A listener of `kind` on loopback, boxed behind one type, and its `localhost:port`.
struct Server {
    accept: mpsc::Receiver<Box<dyn Io>>,
    endpoint: String,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Conn = Framed<Box<dyn Io>, ServerCodec>;

fn serve<L: Listener>(mut listener: L) -> Server {
    let port = listener.local_addr().unwrap().port();
    let (tx, accept) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            if tx.send(Box::new(io) as Box<dyn Io>).await.is_err() {
                return;
            }
        }
    });
    Server {
        accept,
        endpoint: format!("localhost:{port}"),
    }
}

/// The listeners a test needs, sharing one certificate, and a connector that trusts it.
struct Setup {
    kind: Kind,
    certs: tls::SelfSigned,
}

impl Setup {
    fn new(kind: Kind) -> Self {
        let certs = tls::self_signed(&["localhost"]).unwrap();
        Setup { kind, certs }
    }

    async fn server(&self) -> Server {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        match self.kind {
            Kind::Tcp => serve(tcp),
            Kind::WebSocket => serve(WsListener::new(tcp, "/ws")),
            Kind::WebSocketTls => {
                let tls = TlsListener::new(tcp, self.certs.server.clone());
                serve(WsListener::new(tls, "/ws"))
            }
        }
    }

    fn config(&self) -> ConnectorConfig {
        let transport = match self.kind {
            Kind::Tcp => Transport::Tcp,
            Kind::WebSocket => Transport::websocket(),
            Kind::WebSocketTls => {
                let trust = tls::client_config_trusting(self.certs.cert.clone()).unwrap();
                Transport::websocket_tls().with_trust(TlsTrust::Config(trust))
            }
        };
        ConnectorConfig::default()
            .transport(transport)
            .heartbeat_interval(Duration::ZERO)
            .compression(false)
            .use_main_thread_callbacks(false)
            .resume(true)
    }
}

async fn accept(server: &mut Server) -> Conn {
    let io = within("a connection", server.accept.recv()).await.unwrap();
    Framed::new(io, ServerCodec::new(CodecConfig::default()))
}

/// The next client frame of any kind.
async fn next_raw(conn: &mut Conn) -> ClientFrame {
    within("a client frame", conn.next())
        .await
        .expect("client hung up")
        .expect("valid client frame")
}

/// The next data frame (hellos, heartbeats and acknowledgements skipped).
async fn next(conn: &mut Conn) -> ClientFrame {
    loop {
        let frame = next_raw(conn).await;
        if !frame.is_control() {
            return frame;
        }
    }
}

fn frame(msg_id: &str, seq: u16, payload: &str) -> ServerFrame {
    ServerFrame::new(
        msg_id.to_owned(),
        seq,
        STAGE,
        ErrorCode::SUCCESS,
        payload.to_owned(),
    )
}

fn push(payload: &str) -> ServerFrame {
    frame("Tick", 0, payload)
}

fn move_to(endpoint: &str) -> ServerFrame {
    let notice = MoveNotice {
        endpoint: endpoint.to_owned(),
    };
    ServerFrame::move_notice(STAGE, &notice)
}

/// The resume handshake as a server sees it: a hello asking for `RESUME`, then `@Resume@`
/// with the session's token and `client_received` (the server frames the client has); the
/// answer says the server has `server_received` of the client's.
async fn expect_resume(conn: &mut Conn, client_received: u64, server_received: u64) {
    let hello = next_raw(conn).await;
    assert!(hello.is_hello(), "{hello:?}");
    let asked = Hello::from_payload(&hello.payload).expect("a hello payload");
    assert!(asked.requested.contains(Capabilities::RESUME), "{asked:?}");
    let resume = next_raw(conn).await;
    assert_eq!(resume.msg_id, RESUME_MSG_ID, "{resume:?}");
    let request = ResumeRequest::from_payload(&resume.payload).expect("a resume payload");
    assert_eq!(request.token, grant().token, "the same session");
    assert_eq!(request.received, client_received, "the client's count");
    let answer = ServerFrame::resumed(resume.msg_seq, server_received);
    conn.send(answer).await.unwrap();
}

/// A connector with a pushes receiver and a record of its session events.
fn connector(config: ConnectorConfig) -> (Connector, Pushes, Arc<Mutex<Vec<SessionEvent>>>) {
    let connector = Connector::new(config);
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    connector.on_session(move |event| seen.lock().unwrap().push(event));
    let pushes = connector.pushes();
    (connector, pushes, events)
}

/// Connects to `server` and authenticates, the server granting a resumable session (if
/// `grant`): server data frame #1 is the login reply.
async fn logged_in(connector: &Connector, server: &mut Server, grant: Option<ResumeGrant>) -> Conn {
    let endpoint = server.endpoint.clone();
    let (host, port) = endpoint.rsplit_once(':').unwrap();
    let port: u16 = port.parse().unwrap();
    // The server reads while the client connects: a WebSocket upgrade happens as it reads.
    let (login, conn) = tokio::join!(
        async {
            connector.connect(host, port, STAGE, "Room").await?;
            connector
                .authenticate(Packet::new("AuthenticateRequest", "u"))
                .await
        },
        async {
            let mut conn = accept(server).await;
            let request = next(&mut conn).await;
            if let Some(grant) = &grant {
                conn.send(ServerFrame::session_grant(grant)).await.unwrap();
            }
            let reply = frame("AuthenticateReply", request.msg_seq, "ok");
            conn.send(reply).await.unwrap();
            conn
        }
    );
    login.expect("authenticated");
    conn
}

fn ask(
    connector: &Connector,
    what: &str,
) -> tokio::task::JoinHandle<Result<Packet, ConnectorError>> {
    let (asking, packet) = (connector.clone(), Packet::new("Ask", what.to_owned()));
    tokio::spawn(async move { asking.request(packet).await })
}

async fn answer(
    request: tokio::task::JoinHandle<Result<Packet, ConnectorError>>,
) -> Result<Packet, ConnectorError> {
    within("a reply", request).await.unwrap()
}

async fn next_push(pushes: &mut Pushes) -> String {
    let push = within("a push", pushes.recv()).await.expect("pushes open");
    String::from_utf8(push.packet.payload.to_vec()).unwrap()
}

/// The whole move, over one transport:
///
/// ```text
/// A: login (#1), reads requests 1 and 2, pushes 1..3 (#2..#4), @Move@ to B (and stays open)
/// B: @Resume@ (client has 4; B has 1 of the client's), replays reply 1 (#5);
///    client resends request 2 only; B answers it (#6), pushes 4 (#7), serves request 3 (#8)
/// B drops the connection: the session resumes at B again, not at A
/// ```
async fn a_moved_session_resumes_at_the_new_server(kind: Kind) {
    let setup = Setup::new(kind);
    let (mut a, mut b) = (setup.server().await, setup.server().await);
    let (connector, mut pushes, events) = connector(setup.config());
    let mut on_a = logged_in(&connector, &mut a, Some(grant())).await;
    assert_eq!(connector.endpoint().as_deref(), Some(a.endpoint.as_str()));

    let (first, second) = (ask(&connector, "1"), ask(&connector, "2"));
    let (one, two) = (next(&mut on_a).await, next(&mut on_a).await);
    assert_eq!((&*one.msg_id, &one.payload[..]), ("Ask", &b"1"[..]));
    assert_eq!(two.payload, "2");
    for n in ["1", "2", "3"] {
        on_a.send(push(n)).await.unwrap();
    }
    on_a.send(move_to(&b.endpoint)).await.unwrap();
    // A keeps its end open: the notice alone sends the client on.

    let mut on_b = accept(&mut b).await;
    expect_resume(&mut on_b, 4, 1).await;
    on_b.send(frame("Ask", one.msg_seq, "reply 1"))
        .await
        .unwrap();
    let resent = next(&mut on_b).await;
    assert_eq!(
        (resent.msg_seq, &resent.payload[..]),
        (two.msg_seq, &b"2"[..]),
        "only what B did not have is resent"
    );
    on_b.send(frame("Ask", two.msg_seq, "reply 2"))
        .await
        .unwrap();
    on_b.send(push("4")).await.unwrap();
    assert_eq!(answer(first).await.expect("answered").payload, "reply 1");
    assert_eq!(answer(second).await.expect("answered").payload, "reply 2");
    for n in ["1", "2", "3", "4"] {
        assert_eq!(next_push(&mut pushes).await, n, "each push once, in order");
    }
    assert_eq!(
        *events.lock().unwrap(),
        [
            SessionEvent::Reconnecting,
            SessionEvent::Resumed,
            SessionEvent::Moved
        ]
    );
    assert_eq!(connector.endpoint().as_deref(), Some(b.endpoint.as_str()));

    // Served at B; then a plain drop there resumes at B, where the stage lives now.
    let third = ask(&connector, "3");
    let three = next(&mut on_b).await;
    assert_eq!(three.payload, "3");
    on_b.send(frame("Ask", three.msg_seq, "reply 3"))
        .await
        .unwrap();
    assert_eq!(answer(third).await.expect("answered").payload, "reply 3");
    drop(on_b);
    let mut again = tokio::select! {
        _ = a.accept.recv() => panic!("a later reconnect went back to the old server"),
        conn = accept(&mut b) => conn,
    };
    expect_resume(&mut again, 8, 3).await;
    let fourth = ask(&connector, "4");
    let four = next(&mut again).await;
    assert_eq!(four.payload, "4");
    again
        .send(frame("Ask", four.msg_seq, "reply 4"))
        .await
        .unwrap();
    assert_eq!(answer(fourth).await.expect("answered").payload, "reply 4");
    let seen = events.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(
        seen[3..],
        [SessionEvent::Reconnecting, SessionEvent::Resumed],
        "a plain drop after the move is no move"
    );
    assert_eq!(connector.pending_requests(), 0);
    assert!(pushes.try_recv().is_none(), "no push twice");
    drop(on_a);
    connector.disconnect().await;
}

#[tokio::test]
async fn over_tcp_a_moved_session_resumes_at_the_new_server() {
    a_moved_session_resumes_at_the_new_server(Kind::Tcp).await;
}

#[tokio::test]
async fn over_websocket_a_moved_session_resumes_at_the_new_server() {
    a_moved_session_resumes_at_the_new_server(Kind::WebSocket).await;
}

#[tokio::test]
async fn over_websocket_tls_a_moved_session_resumes_at_the_new_server_trusting_the_same() {
    a_moved_session_resumes_at_the_new_server(Kind::WebSocketTls).await;
}

/// Moved twice in a row (A to B, then B to C): the session follows each time, and the
/// server closing its end (rather than the client ending on the notice) works as well.
#[tokio::test]
async fn a_session_follows_a_second_move() {
    let setup = Setup::new(Kind::Tcp);
    let (mut a, mut b, mut c) = (
        setup.server().await,
        setup.server().await,
        setup.server().await,
    );
    let (connector, mut pushes, events) = connector(setup.config());
    let mut on_a = logged_in(&connector, &mut a, Some(grant())).await;
    let first = ask(&connector, "1");
    let one = next(&mut on_a).await;
    on_a.send(push("1")).await.unwrap();
    on_a.send(move_to(&b.endpoint)).await.unwrap();
    drop(on_a);
    let mut on_b = accept(&mut b).await;
    expect_resume(&mut on_b, 2, 1).await;
    on_b.send(push("2")).await.unwrap();
    on_b.send(move_to(&c.endpoint)).await.unwrap();
    drop(on_b);
    let mut on_c = tokio::select! {
        _ = a.accept.recv() => panic!("went back to A"),
        _ = b.accept.recv() => panic!("went back to B"),
        conn = accept(&mut c) => conn,
    };
    expect_resume(&mut on_c, 3, 1).await;
    on_c.send(frame("Ask", one.msg_seq, "reply 1"))
        .await
        .unwrap();
    assert_eq!(answer(first).await.expect("answered").payload, "reply 1");
    assert_eq!(next_push(&mut pushes).await, "1");
    assert_eq!(next_push(&mut pushes).await, "2");
    let moved =
        |events: &[SessionEvent]| events.iter().filter(|e| **e == SessionEvent::Moved).count();
    let seen = events.lock().unwrap().clone();
    assert_eq!(moved(&seen), 2, "{seen:?}");
    assert!(!seen.contains(&SessionEvent::Lost), "{seen:?}");
    assert_eq!(connector.endpoint().as_deref(), Some(c.endpoint.as_str()));
    connector.disconnect().await;
}

/// A connection without a resumable session cannot follow a move: it ends at once (the
/// server need not close it), the pending request fails with `ConnectorError::Moved` naming
/// the endpoint, and so does what comes after.
#[tokio::test]
async fn without_a_session_a_move_ends_the_connection_saying_where_the_stage_went() {
    let setup = Setup::new(Kind::Tcp);
    let mut a = setup.server().await;
    let config = setup.config().resume(false);
    let (connector, _pushes, events) = connector(config);
    let (tx, mut disconnected) = mpsc::unbounded_channel();
    connector.on_disconnect(move || {
        let _ = tx.send(());
    });
    let mut on_a = logged_in(&connector, &mut a, None).await;
    let pending = ask(&connector, "1");
    next(&mut on_a).await;
    on_a.send(move_to("10.0.0.7:7777")).await.unwrap();
    let result = answer(pending).await;
    let Err(ConnectorError::Moved { endpoint }) = &result else {
        panic!("expected Moved, got {result:?}");
    };
    assert_eq!(endpoint, "10.0.0.7:7777");
    assert_eq!(
        result.unwrap_err().code(),
        ErrorCode::CONNECTOR_DISCONNECTED
    );
    within("on_disconnect", disconnected.recv()).await;
    assert!(!connector.is_connected());
    let after = connector.request(Packet::new("Ask", "2")).await;
    assert!(
        matches!(after, Err(ConnectorError::Moved { .. })),
        "{after:?}"
    );
    assert!(
        events.lock().unwrap().is_empty(),
        "no session, no session event"
    );
    drop(on_a);
}

/// `connect_with` dials one place of the application's choosing and cannot be told another:
/// a granted session that is moved ends (`Lost`, `ConnectorError::Moved`) instead of dialing
/// the old server again. `connect_with_endpoint` is told the new endpoint and follows.
#[tokio::test]
async fn a_custom_dialer_follows_a_move_only_when_it_is_given_the_endpoint() {
    let setup = Setup::new(Kind::Tcp);
    for told in [false, true] {
        let (mut a, mut b) = (setup.server().await, setup.server().await);
        let (connector, _pushes, events) = connector(setup.config());
        let dialed = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&dialed);
        let dial = move |endpoint: &str| {
            log.lock().unwrap().push(endpoint.to_owned());
            tokio::net::TcpStream::connect(endpoint.replace("localhost", "127.0.0.1"))
        };
        let connected = if told {
            connector
                .connect_with_endpoint(&a.endpoint, dial, STAGE, "Room")
                .await
        } else {
            let home = a.endpoint.clone();
            connector
                .connect_with(move || dial(&home), STAGE, "Room")
                .await
        };
        connected.expect("connected");
        let mut on_a = accept(&mut a).await;
        let (login, ()) = tokio::join!(
            connector.authenticate(Packet::new("AuthenticateRequest", "u")),
            async {
                let request = next(&mut on_a).await;
                on_a.send(ServerFrame::session_grant(&grant()))
                    .await
                    .unwrap();
                let reply = frame("AuthenticateReply", request.msg_seq, "ok");
                on_a.send(reply).await.unwrap();
            }
        );
        login.expect("authenticated");
        let pending = ask(&connector, "1");
        let one = next(&mut on_a).await;
        on_a.send(move_to(&b.endpoint)).await.unwrap();
        if told {
            let mut on_b = accept(&mut b).await;
            expect_resume(&mut on_b, 1, 1).await;
            on_b.send(frame("Ask", one.msg_seq, "reply 1"))
                .await
                .unwrap();
            assert_eq!(answer(pending).await.expect("answered").payload, "reply 1");
            assert_eq!(
                *dialed.lock().unwrap(),
                [a.endpoint.clone(), b.endpoint.clone()]
            );
            assert_eq!(events.lock().unwrap().last(), Some(&SessionEvent::Moved));
        } else {
            let result = answer(pending).await;
            assert!(
                matches!(result, Err(ConnectorError::Moved { .. })),
                "{result:?}"
            );
            assert_eq!(*events.lock().unwrap(), [SessionEvent::Lost]);
            assert_eq!(
                dialed.lock().unwrap().len(),
                1,
                "no redial of the old server"
            );
            assert_eq!(connector.endpoint(), None);
        }
        connector.disconnect().await;
    }
}

/// A notice that does not name a `host:port` is ignored (logged): the session carries on.
#[tokio::test]
async fn an_unreadable_move_notice_is_ignored() {
    let setup = Setup::new(Kind::Tcp);
    let mut a = setup.server().await;
    let (connector, _pushes, events) = connector(setup.config());
    let mut on_a = logged_in(&connector, &mut a, Some(grant())).await;
    let bad = ServerFrame::new("@Move@", 0, STAGE, ErrorCode::SUCCESS, "no port");
    on_a.send(bad).await.unwrap();
    let pending = ask(&connector, "1");
    let one = next(&mut on_a).await;
    on_a.send(frame("Ask", one.msg_seq, "reply 1"))
        .await
        .unwrap();
    assert_eq!(answer(pending).await.expect("answered").payload, "reply 1");
    assert!(events.lock().unwrap().is_empty());
    connector.disconnect().await;
}

/// A stream that, once `armed`, fails every write and reads nothing until one failed: the
/// client's write fails before it has read the server's last frame (the race of a server
/// that sent its notice and closed while the client was writing).
struct FailingWrites {
    inner: tokio::io::DuplexStream,
    armed: Arc<AtomicBool>,
    failed: bool,
}

impl AsyncRead for FailingWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.armed.load(Ordering::SeqCst) && !self.failed {
            // Woken by the command that is about to fail, not by the data.
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FailingWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.armed.load(Ordering::SeqCst) {
            self.failed = true;
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The move notice arrives, but the client's next write fails before it reads it: the
/// connector reads what was already received before deciding, finds the notice, and resumes
/// at the new endpoint, where the request whose write failed is sent again and answered once.
#[tokio::test(start_paused = true)]
async fn a_move_notice_that_races_a_failed_write_is_followed() {
    let armed = Arc::new(AtomicBool::new(false));
    let (far_tx, mut far_rx) = mpsc::unbounded_channel();
    let dialed = Arc::new(Mutex::new(Vec::new()));
    let (log, gate) = (Arc::clone(&dialed), Arc::clone(&armed));
    let dial = move |endpoint: &str| {
        let first = log.lock().unwrap().is_empty();
        log.lock().unwrap().push(endpoint.to_owned());
        let (near, far) = tokio::io::duplex(64 * 1024);
        let _ = far_tx.send(Box::new(far) as Box<dyn Io>);
        let armed = if first {
            Arc::clone(&gate)
        } else {
            Arc::new(AtomicBool::new(false))
        };
        async move {
            Ok(FailingWrites {
                inner: near,
                armed,
                failed: false,
            })
        }
    };
    let (connector, _pushes, events) = connector(Setup::new(Kind::Tcp).config());
    let (connected, far) = tokio::join!(
        connector.connect_with_endpoint("old:1", dial, STAGE, "Room"),
        far_rx.recv()
    );
    connected.expect("connected");
    let mut old = Framed::new(far.unwrap(), ServerCodec::default());
    let (login, ()) = tokio::join!(
        connector.authenticate(Packet::new("AuthenticateRequest", "u")),
        async {
            let request = next(&mut old).await;
            old.send(ServerFrame::session_grant(&grant()))
                .await
                .unwrap();
            let reply = frame("AuthenticateReply", request.msg_seq, "ok");
            old.send(reply).await.unwrap();
        }
    );
    login.expect("authenticated");

    armed.store(true, Ordering::SeqCst);
    old.send(move_to("new:2")).await.unwrap();
    let pending = ask(&connector, "1");
    let mut new = Framed::new(
        within("a dial", far_rx.recv()).await.unwrap(),
        ServerCodec::default(),
    );
    expect_resume(&mut new, 1, 0).await;
    let resent = next(&mut new).await;
    assert_eq!(resent.payload, "1");
    new.send(frame("Ask", resent.msg_seq, "reply 1"))
        .await
        .unwrap();
    assert_eq!(answer(pending).await.expect("answered").payload, "reply 1");
    assert_eq!(*dialed.lock().unwrap(), ["old:1", "new:2"]);
    assert_eq!(events.lock().unwrap().last(), Some(&SessionEvent::Moved));
    assert_eq!(connector.endpoint().as_deref(), Some("new:2"));
    drop(old);
    connector.disconnect().await;
}

/// A client away when its stage moved comes back to the old server, which answers its resume
/// with where the session went (`@Move@` instead of the resume answer): it resumes there at
/// once, and the session goes on.
#[tokio::test]
async fn a_session_away_during_its_move_follows_the_answer_to_its_resume() {
    let setup = Setup::new(Kind::Tcp);
    let (mut a, mut b) = (setup.server().await, setup.server().await);
    let (connector, mut pushes, events) = connector(setup.config());
    let on_a = logged_in(&connector, &mut a, Some(grant())).await;
    // The connection drops without a word.
    drop(on_a);
    let mut again_on_a = accept(&mut a).await;
    let hello = next_raw(&mut again_on_a).await;
    assert!(hello.is_hello(), "{hello:?}");
    let resume = next_raw(&mut again_on_a).await;
    assert_eq!(resume.msg_id, RESUME_MSG_ID, "{resume:?}");
    again_on_a.send(move_to(&b.endpoint)).await.unwrap();
    drop(again_on_a);
    let mut on_b = tokio::select! {
        _ = a.accept.recv() => panic!("went back to A"),
        conn = accept(&mut b) => conn,
    };
    expect_resume(&mut on_b, 1, 0).await;
    on_b.send(push("after the move")).await.unwrap();
    assert_eq!(next_push(&mut pushes).await, "after the move");
    let seen = events.lock().unwrap().clone();
    assert!(seen.contains(&SessionEvent::Moved), "{seen:?}");
    assert!(!seen.contains(&SessionEvent::Lost), "{seen:?}");
    assert_eq!(connector.endpoint().as_deref(), Some(b.endpoint.as_str()));
    connector.disconnect().await;
}
