//! Resumable sessions end to end: a real Play server, the real Connector, real TCP sockets
//! cut under them.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use playhouse::testing::EchoActor;
use playhouse::{ActorCell, ErrorCode, Packet, PlayServer, ResumeConfig, Stage, StageContext};
use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, SessionEvent};
use playhouse_protocol::{
    Capabilities, ClientCodec, ClientFrame, ResumeGrant, ResumeRequest, SESSION_MSG_ID,
};
use support::{RawClient, WAIT};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// What the stage saw, for the assertions.
#[derive(Default)]
struct Seen {
    /// Payloads of every request the stage handled, in order.
    requests: Vec<u32>,
    /// `on_connection_changed` calls.
    connection_changes: Vec<bool>,
}

struct Room {
    seen: Arc<Mutex<Seen>>,
    next_push: u32,
}

impl Stage for Room {
    type Actor = EchoActor;
    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }
    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<EchoActor>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            // Counts a request, answers it after a while (so some are in flight at a cut).
            "Req" => {
                let n = u32::from_le_bytes(packet.payload[..4].try_into().unwrap());
                self.seen.lock().unwrap().requests.push(n);
                let mut target = actor.link.reply_target();
                ctx.add_count_timer(
                    Duration::from_millis(5),
                    Duration::from_millis(5),
                    1,
                    move |_, _| {
                        if let Some(target) = target.take() {
                            target.reply(Packet::new("Res", n.to_le_bytes().to_vec()));
                        }
                    },
                );
            }
            // Starts a stream of numbered pushes to this player, one every 2 ms.
            "Stream" => {
                let count = u32::from_le_bytes(packet.payload[..4].try_into().unwrap());
                let account = actor.link.account_id().to_owned();
                ctx.add_count_timer(
                    Duration::from_millis(2),
                    Duration::from_millis(2),
                    count,
                    move |room: &mut Room, ctx| {
                        room.next_push += 1;
                        let n = room.next_push.to_le_bytes().to_vec();
                        ctx.send_to_account(&account, Packet::new("Push", n));
                    },
                );
            }
            // Never answered: a request that is still pending whenever the test looks.
            "Hold" => {}
            _ => actor.link.reply(packet),
        }
    }
    async fn on_connection_changed(
        &mut self,
        _: &mut StageContext<Self>,
        _: &mut ActorCell<EchoActor>,
        connected: bool,
    ) {
        self.seen.lock().unwrap().connection_changes.push(connected);
    }
}

async fn server(resume: ResumeConfig) -> (PlayServer, SocketAddr, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let for_stage = Arc::clone(&seen);
    let server = PlayServer::builder()
        .stage(
            "Room",
            move |_| Room {
                seen: Arc::clone(&for_stage),
                next_push: 0,
            },
            |_| EchoActor,
        )
        .default_stage_type("Room")
        .configure(|config| config.resume = Some(resume))
        .build()
        .expect("build");
    let addr = server.listen_tcp("127.0.0.1:0").await.expect("listen");
    (server, addr, seen)
}

/// Dials `addr` and keeps a second handle on every socket, so a test can cut the live
/// connection from the client's side (`shutdown(Both)`: the server sees the end, the
/// connector's reads fail) while the connector holds it.
#[derive(Clone, Default)]
struct Cutter {
    sockets: Arc<Mutex<Vec<std::net::TcpStream>>>,
    /// While set, dialing fails (the network is down).
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Cutter {
    fn dialer(
        &self,
        addr: SocketAddr,
    ) -> impl Fn() -> std::pin::Pin<
        Box<dyn Future<Output = std::io::Result<tokio::net::TcpStream>> + Send>,
    > + Send
    + Sync
    + 'static {
        let this = self.clone();
        move || {
            let this = this.clone();
            Box::pin(async move {
                if this.down.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(std::io::ErrorKind::ConnectionRefused.into());
                }
                let stream = tokio::net::TcpStream::connect(addr).await?;
                let std = stream.into_std()?;
                this.sockets.lock().unwrap().push(std.try_clone()?);
                tokio::net::TcpStream::from_std(std)
            })
        }
    }

    fn cut(&self) {
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

fn resumable_config() -> ConnectorConfig {
    ConnectorConfig::default()
        .resume(true)
        .use_main_thread_callbacks(false)
        .request_timeout(Duration::from_secs(20))
        .reconnect(playhouse_connector::ReconnectPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            jitter_seed: Some(1),
        })
}

/// What the application saw: pushes in order, and session events.
struct Observed {
    pushes: mpsc::UnboundedReceiver<u32>,
    events: mpsc::UnboundedReceiver<SessionEvent>,
}

fn observe(connector: &Connector) -> Observed {
    let (push_tx, pushes) = mpsc::unbounded_channel();
    connector.on_receive(move |_, _, packet| {
        if packet.msg_id == "Push" {
            let n = u32::from_le_bytes(packet.payload[..4].try_into().unwrap());
            let _ = push_tx.send(n);
        }
    });
    let (event_tx, events) = mpsc::unbounded_channel();
    connector.on_session(move |event| {
        let _ = event_tx.send(event);
    });
    Observed { pushes, events }
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

fn req(n: u32) -> Packet {
    Packet::new("Req", n.to_le_bytes().to_vec())
}

/// A resumable connector dialing `addr` through `cutter`, authenticated as `user`.
async fn resumable_client(addr: SocketAddr, cutter: &Cutter, user: &str) -> Connector {
    let connector = Connector::new(resumable_config());
    connector
        .connect_with(cutter.dialer(addr), 1, "Room")
        .await
        .expect("connect");
    connector
        .authenticate(Packet::new("AuthenticateRequest", user.as_bytes().to_vec()))
        .await
        .expect("auth");
    connector
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_lose_no_push_and_run_no_request_twice() {
    let (server, addr, seen) = server(ResumeConfig::default()).await;
    let cutter = Cutter::default();
    let connector = resumable_client(addr, &cutter, "alice").await;
    let mut observed = observe(&connector);

    const PUSHES: u32 = 300;
    const REQUESTS: u32 = 60;
    connector
        .send(Packet::new("Stream", PUSHES.to_le_bytes().to_vec()))
        .expect("stream");
    let mut replies = Vec::new();
    for n in 1..=REQUESTS {
        let connector = connector.clone();
        replies.push(tokio::spawn(async move { connector.request(req(n)).await }));
        if n % 20 == 0 {
            // Cut with requests in flight and pushes streaming; the connector comes back.
            cutter.cut();
            assert_eq!(next(&mut observed.events).await, SessionEvent::Reconnecting);
            assert_eq!(next(&mut observed.events).await, SessionEvent::Resumed);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    for (n, reply) in (1..=REQUESTS).zip(replies) {
        let reply = reply.await.unwrap().expect("every request answered");
        assert_eq!(reply.payload, Bytes::from(n.to_le_bytes().to_vec()));
    }
    for expected in 1..=PUSHES {
        assert_eq!(
            next(&mut observed.pushes).await,
            expected,
            "pushes once and in order"
        );
    }

    let (mut handled, changes) = {
        let seen = seen.lock().unwrap();
        (seen.requests.clone(), seen.connection_changes.clone())
    };
    handled.sort_unstable();
    assert_eq!(
        handled,
        (1..=REQUESTS).collect::<Vec<_>>(),
        "each request ran exactly once"
    );
    assert!(changes.is_empty(), "the stage saw no drop: {changes:?}");
    assert!(observed.pushes.try_recv().is_err(), "no push twice");
    connector.disconnect().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_window_the_session_is_lost_on_both_sides() {
    let mut resume = ResumeConfig::default();
    resume.window = Duration::from_millis(300);
    let (server, addr, seen) = server(resume).await;
    let cutter = Cutter::default();
    let connector = resumable_client(addr, &cutter, "bob").await;
    let mut observed = observe(&connector);

    cutter.set_down(true);
    cutter.cut();
    assert_eq!(next(&mut observed.events).await, SessionEvent::Reconnecting);
    assert_eq!(next(&mut observed.events).await, SessionEvent::Lost);
    let error = connector
        .request(req(1))
        .await
        .expect_err("the connection is gone");
    assert!(matches!(error, ConnectorError::Disconnected), "{error:?}");

    // The stage hears of it once the window has passed, not before.
    stage_hears_the_drop(&seen, "on_connection_changed(false) after the window").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_request_fails_with_session_lost() {
    let mut resume = ResumeConfig::default();
    resume.window = Duration::from_millis(300);
    let (server, addr, _seen) = server(resume).await;
    let cutter = Cutter::default();
    let connector = resumable_client(addr, &cutter, "carol").await;
    cutter.set_down(true);
    let pending = {
        let connector = connector.clone();
        tokio::spawn(async move { connector.request(Packet::empty("Hold")).await })
    };
    // Pending whether or not it was written before the cut: either way it fails with the
    // session.
    cutter.cut();
    let error = pending.await.unwrap().expect_err("lost");
    assert!(matches!(error, ConnectorError::SessionLost), "{error:?}");
    assert_eq!(error.code(), ErrorCode::SESSION_LOST);
    server.stop().await;
}

/// A raw client that asks for resume, takes the grant, and never acknowledges.
async fn raw_resumable(addr: SocketAddr, user: &str) -> (RawClient, ResumeGrant) {
    let mut client = RawClient::connect(addr, 1).await;
    client
        .send_frame(ClientFrame::hello(0, Capabilities::RESUME))
        .await;
    let seq = client
        .request_nowait("AuthenticateRequest", user.as_bytes())
        .await;
    let grant = client.recv().await.expect("grant");
    assert_eq!(grant.msg_id, SESSION_MSG_ID);
    let grant = ResumeGrant::from_payload(&grant.payload).expect("a grant");
    let reply = client.recv().await.expect("auth reply");
    assert_eq!((reply.msg_seq, &*reply.msg_id), (seq, "AuthenticateReply"));
    (client, grant)
}

/// A new connection asks to resume `grant`'s session, having received `received` frames;
/// returns it and the server's answer to the request (sequence `seq`).
async fn ask_to_resume(
    addr: SocketAddr,
    grant: &ResumeGrant,
    received: u64,
    seq: u16,
) -> (RawClient, playhouse_protocol::ServerFrame) {
    let mut again = RawClient::connect(addr, 1).await;
    again
        .send_frame(ClientFrame::hello(0, Capabilities::RESUME))
        .await;
    let request = ResumeRequest {
        token: grant.token,
        received,
    };
    again.send_frame(ClientFrame::resume(seq, request)).await;
    let answer = again.recv().await.expect("an answer");
    (again, answer)
}

/// Waits until the stage has heard of exactly one disconnect (`why` if it never does).
async fn stage_hears_the_drop(seen: &Mutex<Seen>, why: &str) {
    tokio::time::timeout(WAIT, async {
        while seen.lock().unwrap().connection_changes != [false] {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect(why);
}

#[tokio::test]
async fn a_client_that_never_acknowledges_loses_its_session() {
    let mut resume = ResumeConfig::default();
    resume.max_unacked_frames = 8;
    let (server, addr, seen) = server(resume).await;
    let (mut client, grant) = raw_resumable(addr, "dave").await;
    assert_eq!(grant.max_unacked, 8);
    // The auth reply is frame 1; 7 more fit; the 8th echo overflows the buffer.
    for _ in 0..8 {
        client.request_nowait("Echo", b"x").await;
    }
    client.expect_closed().await;
    // The token is gone: a resume is refused with SESSION_LOST.
    let (_, answer) = ask_to_resume(addr, &grant, 9, 1).await;
    assert_eq!(answer.error_code, ErrorCode::SESSION_LOST);
    stage_hears_the_drop(&seen, "the stage hears of the loss").await;
    server.stop().await;
}

#[tokio::test]
async fn acknowledged_frames_leave_the_buffer_and_an_impossible_ack_closes() {
    let mut resume = ResumeConfig::default();
    resume.max_unacked_frames = 8;
    let (server, addr, _seen) = server(resume).await;
    let (mut client, _grant) = raw_resumable(addr, "gwen").await;
    // Twice the buffer's worth of echoes, each acknowledged (the auth reply is frame 1):
    // nothing overflows.
    for echoed in 1..=16u64 {
        let reply = client.request("Echo", b"x").await;
        assert_eq!(reply.error_code, ErrorCode::SUCCESS, "echo {echoed}");
        client.send_frame(ClientFrame::ack(1 + echoed)).await;
    }
    // Acknowledging frames never sent is a protocol error.
    client.send_frame(ClientFrame::ack(1000)).await;
    client.expect_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn an_ended_session_is_not_kept_when_its_connection_drops() {
    let (server, addr, seen) = server(ResumeConfig::default()).await;
    let (mut client, grant) = raw_resumable(addr, "hank").await;
    client.send_frame(ClientFrame::end_session()).await;
    // The connection goes on as an ordinary one.
    let reply = client.request("Echo", b"y").await;
    assert_eq!(reply.payload, Bytes::from_static(b"y"));
    drop(client);
    // Not kept for the 30 s window: the stage hears of the drop at once ...
    stage_hears_the_drop(&seen, "the stage hears of the drop at once").await;
    // ... and the token is gone.
    let (_, answer) = ask_to_resume(addr, &grant, 2, 1).await;
    assert_eq!(answer.error_code, ErrorCode::SESSION_LOST);
    server.stop().await;
}

#[tokio::test]
async fn a_raw_resume_replays_what_the_client_did_not_receive() {
    let (server, addr, _seen) = server(ResumeConfig::default()).await;
    let (mut client, grant) = raw_resumable(addr, "erin").await;
    // Frames 2..=4: three echoes; the client claims it saw only up to 2 when it resumes.
    for payload in [b"a", b"b", b"c"] {
        client.request("Echo", payload).await;
    }
    let (mut again, answer) = ask_to_resume(addr, &grant, 2, 9).await;
    assert_eq!((answer.msg_seq, answer.error_code), (9, ErrorCode::SUCCESS));
    // The server received 3 data frames from us (the authentication is not counted).
    assert_eq!(playhouse_protocol::read_count(&answer.payload), Some(3));
    let replayed: Vec<Bytes> = [again.recv().await.unwrap(), again.recv().await.unwrap()]
        .into_iter()
        .map(|frame| frame.payload)
        .collect();
    assert_eq!(
        replayed,
        [Bytes::from_static(b"b"), Bytes::from_static(b"c")]
    );
    // The old connection was replaced.
    client.expect_closed().await;
    // And the session goes on, counted once: one session, one connection.
    let reply = again.request("Echo", b"d").await;
    assert_eq!(reply.payload, Bytes::from_static(b"d"));
    assert_eq!(server.session_count(), 1);
    server.stop().await;
}

/// Clients that do not ask see the wire exactly as before: byte for byte the frames the
/// original protocol defines, with no grant, no acknowledgement.
#[tokio::test]
async fn clients_that_do_not_opt_in_see_the_original_bytes() {
    let (server, addr, _seen) = server(ResumeConfig::default()).await;
    for hello in [None, Some(Capabilities::LZ4)] {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut framed = Framed::new(stream, ClientCodec::default());
        use futures_util::SinkExt;
        if let Some(caps) = hello {
            framed.send(ClientFrame::hello(0, caps)).await.unwrap();
        }
        framed
            .send(ClientFrame::new("AuthenticateRequest", 1, 1, &b"frank"[..]))
            .await
            .unwrap();
        for seq in 2..40u16 {
            framed
                .send(ClientFrame::new("Echo", seq, 1, &b"0123456789"[..]))
                .await
                .unwrap();
        }
        let stream = framed.into_inner();
        let mut raw = tokio_util::codec::FramedRead::new(
            stream,
            tokio_util::codec::LengthDelimitedCodec::builder()
                .little_endian()
                .length_field_length(4)
                .new_codec(),
        );
        let expected_auth = frame_bytes("AuthenticateReply", 1, b"");
        let first = tokio::time::timeout(WAIT, raw.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first.to_vec(), expected_auth);
        for seq in 2..40u16 {
            let frame = tokio::time::timeout(WAIT, raw.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(
                frame.to_vec(),
                frame_bytes("Echo", seq, b"0123456789"),
                "seq {seq}"
            );
        }
    }
    server.stop().await;
}

/// A server frame body as SPEC §4 lays it out (stage 1, no error, uncompressed).
fn frame_bytes(msg_id: &str, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![msg_id.len() as u8];
    body.extend_from_slice(msg_id.as_bytes());
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&1i64.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&0i32.to_le_bytes());
    body.extend_from_slice(payload);
    body
}
