//! Black-box tests of a Play server over real TCP sockets: the authentication flow and its
//! error codes, heartbeats, pipelining, malformed frames, timeouts, re-attach, isolation.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use playhouse::{
    Actor, ActorCell, ActorLink, ErrorCode, ErrorReply, Packet, PlayServer, PlayServerBuilder,
    Stage, StageContext,
};
use playhouse_protocol::ClientFrame;
use support::RawClient;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// The game loop's step ("Loop").
const STEP: Duration = Duration::from_millis(100);

/// Counts destroys so graceful stop can be observed (and releases stalled stages).
#[derive(Default)]
struct Destroyed {
    stages: AtomicUsize,
    actors: AtomicUsize,
    /// Woken on every actor destroy.
    actor_gone: tokio::sync::Notify,
    /// A stage handling "Stall" waits for this, then closes.
    release: tokio::sync::Notify,
}

struct Room {
    destroyed: Arc<Destroyed>,
    /// Timer firings ("Timer" starts one, "Fired" reports the count).
    fired: u32,
}

struct Player {
    destroyed: Arc<Destroyed>,
}

impl Stage for Room {
    type Actor = Player;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_destroy(&mut self, _: &mut StageContext<Self>) {
        self.destroyed.stages.fetch_add(1, Ordering::SeqCst);
    }

    async fn on_join_stage(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
    ) -> bool {
        actor.link.account_id() != "nojoin"
    }

    /// A "closer" account closes the stage as soon as it has joined.
    async fn on_post_join_stage(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
    ) {
        if actor.link.account_id().starts_with("closer") {
            ctx.close_stage();
        }
    }

    async fn on_connection_changed(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        connected: bool,
    ) {
        let text = format!("{}:{connected}", actor.link.account_id());
        ctx.broadcast(Packet::new("ConnectionChanged", text));
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "Echo" => actor.link.reply(packet),
            "Panic" => panic!("stage code failed"),
            "Close" => {
                actor.link.reply(Packet::empty("Closing"));
                ctx.close_stage();
            }
            "Leave" => {
                actor.link.reply(Packet::empty("Left"));
                actor.link.leave_stage();
            }
            "Broadcast" => ctx.broadcast(packet),
            // Blocks the stage's loop until the test releases it, then closes the stage.
            "Stall" => {
                self.destroyed.release.notified().await;
                ctx.close_stage();
            }
            // Blocks the stage's loop until the test releases it.
            "Hold" => self.destroyed.release.notified().await,
            // A one-shot timer 100 ms out that counts its firing.
            "Timer" => {
                ctx.add_count_timer(
                    Duration::from_millis(100),
                    Duration::from_millis(100),
                    1,
                    |room: &mut Room, _| room.fired += 1,
                );
            }
            // A game loop of 100 ms steps that broadcasts each tick's number.
            "Loop" => ctx.start_game_loop(STEP, |_, ctx, tick| {
                ctx.broadcast(Packet::new("Tick", tick.tick.to_string()));
            }),
            "Fired" => actor
                .link
                .reply(Packet::new("Fired", self.fired.to_string())),
            // As many one-byte-id pushes as the payload's first byte says, then the reply.
            "Burst" => {
                for _ in 0..packet.payload[0] {
                    actor.link.send_to_client(Packet::empty("T"));
                }
                actor.link.reply(Packet::empty("Burst"));
            }
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

impl Actor for Player {
    async fn on_destroy(&mut self, _: &mut ActorLink) {
        self.destroyed.actors.fetch_add(1, Ordering::SeqCst);
        self.destroyed.actor_gone.notify_one();
    }

    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let user = String::from_utf8_lossy(&packet.payload).into_owned();
        if user.starts_with("fail") {
            return Err(ErrorCode::AUTHENTICATION_FAILED.into());
        }
        let reply = Packet::new("Ignored", user.clone());
        link.set_account_id(user); // empty stays empty: InvalidAccountId
        Ok(reply)
    }
}

fn builder(destroyed: &Arc<Destroyed>) -> PlayServerBuilder {
    let for_stage = Arc::clone(destroyed);
    let for_actor = Arc::clone(destroyed);
    PlayServer::builder()
        .stage(
            "Room",
            move |_| Room {
                destroyed: Arc::clone(&for_stage),
                fired: 0,
            },
            move |_| Player {
                destroyed: Arc::clone(&for_actor),
            },
        )
        .default_stage_type("Room")
}

async fn start(builder: PlayServerBuilder) -> (PlayServer, std::net::SocketAddr) {
    let server = builder.build().expect("build");
    let addr = server.listen_tcp("127.0.0.1:0").await.expect("listen");
    (server, addr)
}

async fn default_server() -> (PlayServer, std::net::SocketAddr) {
    start(builder(&Arc::default())).await
}

#[tokio::test]
async fn authenticate_then_echo_and_heartbeat() {
    let (_server, addr) = default_server().await;
    let mut client = RawClient::connect(addr, 7).await;
    // Heartbeats may precede authentication.
    client.send_frame(ClientFrame::heartbeat()).await;
    assert!(client.recv().await.unwrap().is_heartbeat());

    let reply = client.request("AuthenticateRequest", b"alice").await;
    assert_eq!(reply.error_code, ErrorCode::SUCCESS);
    assert_eq!(reply.msg_id, "AuthenticateReply");
    assert_eq!(reply.payload, Bytes::from_static(b"alice"));
    assert_eq!(reply.stage_id, 7);

    let echo = client.request("Echo", b"hello").await;
    assert_eq!(
        (echo.msg_id.as_ref(), &echo.payload[..]),
        ("Echo", &b"hello"[..])
    );
    assert_eq!(echo.error_code, ErrorCode::SUCCESS);

    client.send_frame(ClientFrame::heartbeat()).await;
    let beat = client.recv().await.unwrap();
    assert!(beat.is_heartbeat());
    assert_eq!((beat.msg_seq, beat.stage_id), (0, 0));
}

#[tokio::test]
async fn authentication_errors_carry_their_codes_and_keep_the_connection() {
    let (_server, addr) = default_server().await;
    let mut client = RawClient::connect(addr, 11).await;
    assert_eq!(
        client.authenticate("fail-me").await,
        ErrorCode::AUTHENTICATION_FAILED
    );
    assert_eq!(client.authenticate("").await, ErrorCode::INVALID_ACCOUNT_ID);
    assert_eq!(
        client.authenticate("nojoin").await,
        ErrorCode::JOIN_STAGE_FAILED
    );
    assert_eq!(client.authenticate("bob").await, ErrorCode::SUCCESS);
    assert_eq!(
        client.authenticate("bob").await,
        ErrorCode::ALREADY_AUTHENTICATED
    );
    let unknown = client.request("Nope", b"").await;
    assert_eq!(unknown.error_code, ErrorCode::HANDLER_NOT_FOUND);
}

#[tokio::test]
async fn missing_stage_without_default_type_is_stage_not_found() {
    let destroyed = Arc::default();
    let for_stage = Arc::clone(&destroyed);
    let for_actor = Arc::clone(&destroyed);
    let builder = PlayServer::builder().stage(
        "Room",
        move |_| Room {
            destroyed: Arc::clone(&for_stage),
            fired: 0,
        },
        move |_| Player {
            destroyed: Arc::clone(&for_actor),
        },
    );
    let (_server, addr) = start(builder).await;
    let mut client = RawClient::connect(addr, 99).await;
    assert_eq!(
        client.authenticate("carol").await,
        ErrorCode::STAGE_NOT_FOUND
    );
}

#[tokio::test]
async fn stage_zero_gets_a_fresh_generated_id() {
    let (_server, addr) = default_server().await;
    let mut a = RawClient::connect(addr, 0).await;
    let mut b = RawClient::connect(addr, 0).await;
    let ra = a.request("AuthenticateRequest", b"a").await;
    let rb = b.request("AuthenticateRequest", b"b").await;
    assert!(ra.error_code.is_success() && rb.error_code.is_success());
    assert_ne!(ra.stage_id, 0);
    assert_ne!(
        ra.stage_id, rb.stage_id,
        "each stage-0 login creates its own stage"
    );
}

#[tokio::test]
async fn a_hundred_pipelined_requests_match_by_sequence() {
    let (_server, addr) = default_server().await;
    let mut client = RawClient::connect(addr, 12).await;
    assert!(client.authenticate("dave").await.is_success());
    let mut sent = Vec::new();
    for i in 0..100u32 {
        let payload = format!("msg-{i}");
        let seq = client.request_nowait("Echo", payload.as_bytes()).await;
        sent.push((seq, payload));
    }
    for (seq, payload) in sent {
        let reply = client.recv().await.expect("reply");
        assert_eq!(reply.msg_seq, seq, "replies of one stage come in order");
        assert_eq!(reply.payload, payload.as_bytes());
    }
}

#[tokio::test]
async fn a_message_before_authentication_closes_the_connection() {
    let (_server, addr) = default_server().await;
    let mut client = RawClient::connect(addr, 13).await;
    client.request_nowait("Echo", b"too early").await;
    client.expect_closed().await;
}

#[tokio::test]
async fn malformed_frames_close_only_their_own_connection() {
    let (_server, addr) = default_server().await;
    let mut healthy = RawClient::connect(addr, 14).await;
    assert!(healthy.authenticate("healthy").await.is_success());

    let bad_inputs: Vec<Vec<u8>> = vec![
        (-1i32).to_le_bytes().to_vec(),
        0i32.to_le_bytes().to_vec(),
        i32::MAX.to_le_bytes().to_vec(),
        // msg id length 0
        [&12i32.to_le_bytes()[..], &[0u8; 12]].concat(),
        // msg id past the body
        [&12i32.to_le_bytes()[..], &[200u8], &[b'x'; 11]].concat(),
        // invalid UTF-8 id
        [&12i32.to_le_bytes()[..], &[1u8, 0xFF], &[0u8; 10]].concat(),
    ];
    for bad in bad_inputs {
        let mut attacker = RawClient::connect(addr, 14).await;
        assert!(
            attacker
                .authenticate(&format!("attacker{}", bad.len()))
                .await
                .is_success()
        );
        attacker.stream_mut().write_all(&bad).await.unwrap();
        attacker.expect_closed().await;
        let echo = healthy.request("Echo", b"still here").await;
        assert_eq!(echo.payload, Bytes::from_static(b"still here"));
    }
}

#[tokio::test]
async fn unauthenticated_connections_are_closed_after_the_auth_timeout() {
    let builder =
        builder(&Arc::default()).configure(|c| c.auth_timeout = Duration::from_millis(200));
    let (_server, addr) = start(builder).await;
    let mut client = RawClient::connect(addr, 15).await;
    // Heartbeats do not count as authentication.
    client.send_frame(ClientFrame::heartbeat()).await;
    assert!(client.recv().await.unwrap().is_heartbeat());
    client.expect_closed().await;
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_idle_timeout() {
    let builder =
        builder(&Arc::default()).configure(|c| c.idle_timeout = Duration::from_millis(300));
    let (_server, addr) = start(builder).await;
    let mut client = RawClient::connect(addr, 16).await;
    assert!(client.authenticate("quiet").await.is_success());
    client.expect_closed().await;
}

#[tokio::test]
async fn re_authentication_re_attaches_the_same_actor() {
    let destroyed: Arc<Destroyed> = Arc::default();
    let (_server, addr) = start(builder(&destroyed)).await;
    let mut watcher = RawClient::connect(addr, 17).await;
    assert!(watcher.authenticate("watcher").await.is_success());

    let mut first = RawClient::connect(addr, 17).await;
    assert!(first.authenticate("eve").await.is_success());
    drop(first);
    assert_eq!(watcher.push("ConnectionChanged").await.payload, "eve:false");

    let mut second = RawClient::connect(addr, 17).await;
    // on_connection_changed runs before the reply, so its broadcast comes first.
    second.request_nowait("AuthenticateRequest", b"eve").await;
    assert_eq!(second.push("ConnectionChanged").await.payload, "eve:true");
    let reply = second.recv().await.unwrap();
    assert_eq!(
        (reply.msg_id.as_ref(), reply.error_code),
        ("AuthenticateReply", ErrorCode::SUCCESS)
    );
    assert_eq!(watcher.push("ConnectionChanged").await.payload, "eve:true");
    // Only the actor built to check the second login was destroyed, not eve's actor.
    assert_eq!(destroyed.actors.load(Ordering::SeqCst), 1);
    let echo = second.request("Echo", b"back").await;
    assert!(echo.error_code.is_success());
}

#[tokio::test]
async fn leaving_the_stage_detaches_the_connection() {
    let (_server, addr) = default_server().await;
    let mut client = RawClient::connect(addr, 18).await;
    assert!(client.authenticate("frank").await.is_success());
    assert_eq!(client.request("Leave", b"").await.msg_id, "Left");
    let after = client.request("Echo", b"x").await;
    assert_eq!(after.error_code, ErrorCode::NOT_AUTHENTICATED);
    assert!(
        client.authenticate("frank").await.is_success(),
        "may join again"
    );
}

#[tokio::test]
async fn a_detached_connection_has_the_auth_timeout_from_detaching_to_join_again() {
    const AUTH_TIMEOUT: Duration = Duration::from_millis(300);
    let builder = builder(&Arc::default()).configure(|c| {
        c.auth_timeout = AUTH_TIMEOUT;
        // Longer than the support's wait: an idle close would fail the test.
        c.idle_timeout = Duration::from_secs(60);
    });
    let (_server, addr) = start(builder).await;
    let mut client = RawClient::connect(addr, 21).await;
    assert!(client.authenticate("grace").await.is_success());
    // The connection is now older than the auth timeout: what counts is when it detaches.
    tokio::time::sleep(AUTH_TIMEOUT * 2).await;
    assert_eq!(client.request("Leave", b"").await.msg_id, "Left");
    let after = client.request("Echo", b"x").await;
    assert_eq!(after.error_code, ErrorCode::NOT_AUTHENTICATED);
    assert!(
        client.authenticate("grace").await.is_success(),
        "may join again"
    );

    assert_eq!(client.request("Leave", b"").await.msg_id, "Left");
    let detached = Instant::now();
    client.expect_closed().await;
    assert!(
        detached.elapsed() >= AUTH_TIMEOUT - Duration::from_millis(50),
        "closed {:?} after detaching, before the auth timeout",
        detached.elapsed()
    );
}

/// A byte stream that counts the writes the server makes to it.
struct CountingWrites {
    inner: tokio::io::DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl tokio::io::AsyncRead for CountingWrites {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountingWrites {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(written, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// One thread: the stage queues the whole burst before the session runs.
#[tokio::test(flavor = "current_thread")]
async fn frames_queued_together_go_out_in_one_write() {
    const PUSHES: u8 = 30;
    let server = builder(&Arc::default()).build().expect("build");
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let writes = Arc::new(AtomicUsize::new(0));
    let io = CountingWrites {
        inner: server_end,
        writes: Arc::clone(&writes),
    };
    server.serve_connection(io, "127.0.0.1:9".parse().unwrap(), "test");
    let mut client = RawClient::over(client_end, 22);
    assert!(client.authenticate("bursty").await.is_success());

    let before = writes.load(Ordering::SeqCst);
    let seq = client.request_nowait("Burst", &[PUSHES]).await;
    for n in 0..PUSHES {
        let push = client.recv().await.expect("a push");
        assert_eq!((push.msg_id.as_ref(), push.msg_seq), ("T", 0), "push {n}");
    }
    let reply = client.recv().await.expect("the reply");
    assert_eq!((reply.msg_id.as_ref(), reply.msg_seq), ("Burst", seq));
    // 31 frames of 22–26 bytes: under the 1 KiB write buffer, so one write.
    assert_eq!(writes.load(Ordering::SeqCst) - before, 1);
}

/// Frames a stalled stage never takes: `fill` fills its mailbox (capacity 2), `blocked`
/// waits for room when the stage closes, `after` follows. Returns what the client received,
/// up to the reply to `after`, as (seq, code); one-way frames have seq 0.
async fn close_under_a_full_mailbox(
    server: &PlayServer,
    destroyed: &Destroyed,
    user: &str,
    blocked_is_request: bool,
) -> (Vec<u16>, u16, Vec<(u16, ErrorCode)>) {
    let mut client = in_memory(server, 23);
    assert!(client.authenticate(user).await.is_success());
    client.send("Stall", b"").await;
    let mut requests = vec![client.request_nowait("Echo", b"a").await];
    client.send("Echo", b"one-way").await;
    if blocked_is_request {
        requests.push(client.request_nowait("Echo", b"blocked").await);
    } else {
        client.send("Echo", b"blocked").await;
    }
    let after = client.request_nowait("Echo", b"after").await;
    // The clock is paused: this returns once every task waits (the stage on its release,
    // the session for room in the mailbox).
    tokio::time::sleep(Duration::from_secs(1)).await;
    destroyed.release.notify_one();
    let mut received = Vec::new();
    loop {
        let frame = client.recv().await.expect("the connection stays open");
        received.push((frame.msg_seq, frame.error_code));
        if frame.msg_seq == after {
            return (requests, after, received);
        }
    }
}

// Paused clock, in-memory connections: the mailbox fills before the stage is released.
#[tokio::test(start_paused = true)]
async fn every_request_queued_for_a_closing_stage_is_answered_once() {
    let destroyed: Arc<Destroyed> = Arc::default();
    let server = builder(&destroyed)
        .configure(|c| c.stage_mailbox_capacity = 2)
        .build()
        .expect("build");
    for blocked_is_request in [true, false] {
        let user = format!("stalled-{blocked_is_request}");
        let (requests, after, mut received) =
            close_under_a_full_mailbox(&server, &destroyed, &user, blocked_is_request).await;
        // Queued requests are refused by the closing stage, the one waiting for room by the
        // session; one-way messages get nothing.
        received.sort_unstable_by_key(|(seq, _)| *seq);
        let mut expected: Vec<(u16, ErrorCode)> = requests
            .iter()
            .chain([&after])
            .map(|seq| (*seq, ErrorCode::STAGE_NOT_FOUND))
            .collect();
        expected.sort_unstable_by_key(|(seq, _)| *seq);
        assert_eq!(
            received, expected,
            "blocked frame a request: {blocked_is_request}"
        );
    }
}

/// A connection to `server` over an in-memory stream.
fn in_memory(server: &PlayServer, stage_id: i64) -> RawClient<tokio::io::DuplexStream> {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    server.serve_connection(server_end, "127.0.0.1:9".parse().unwrap(), "test");
    RawClient::over(client_end, stage_id)
}

/// Joins stage `stage_id` and stalls it ("Stall": it closes once released); returns the
/// staller's connection, to keep open.
async fn stall(server: &PlayServer, stage_id: i64) -> RawClient<tokio::io::DuplexStream> {
    let mut staller = in_memory(server, stage_id);
    assert!(staller.authenticate("staller").await.is_success());
    staller.send("Stall", b"").await;
    staller
}

#[tokio::test(start_paused = true)]
async fn a_login_queued_at_a_stage_that_closes_goes_to_a_fresh_stage() {
    let destroyed: Arc<Destroyed> = Arc::default();
    let server = builder(&destroyed).build().expect("build");
    let _staller = stall(&server, 24).await;
    let mut late = in_memory(&server, 24);
    let seq = late.request_nowait("AuthenticateRequest", b"late").await;
    // Paused clock: returns once the login waits in the stalled stage's mailbox.
    tokio::time::sleep(Duration::from_secs(1)).await;
    destroyed.release.notify_one();
    let reply = late.recv().await.expect("an answer");
    assert_eq!(
        (reply.msg_seq, reply.msg_id.as_ref(), reply.error_code),
        (seq, "AuthenticateReply", ErrorCode::SUCCESS)
    );
    let echo = late.request("Echo", b"fresh").await;
    assert_eq!(echo.payload, Bytes::from_static(b"fresh"));
    assert_eq!(
        destroyed.stages.load(Ordering::SeqCst),
        1,
        "the stalled stage closed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_login_whose_stage_closes_under_it_twice_gets_stage_not_found() {
    let destroyed: Arc<Destroyed> = Arc::default();
    let server = builder(&destroyed).build().expect("build");
    let _staller = stall(&server, 27).await;
    // Two logins wait at the stalled stage. When it closes, both retry at a fresh stage;
    // the first to join it closes it too, so the other's login finds its stage gone twice.
    let mut logins = [in_memory(&server, 27), in_memory(&server, 27)];
    for (n, login) in logins.iter_mut().enumerate() {
        let user = format!("closer-{n}");
        login
            .request_nowait("AuthenticateRequest", user.as_bytes())
            .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    destroyed.release.notify_one();
    let mut codes = Vec::new();
    for login in &mut logins {
        let reply = login.recv().await.expect("an answer");
        assert_eq!(reply.msg_id, "AuthenticateReply");
        codes.push(reply.error_code);
    }
    codes.sort_unstable();
    // One retry, not more: the second closing is answered.
    assert_eq!(codes, [ErrorCode::SUCCESS, ErrorCode::STAGE_NOT_FOUND]);
}

#[tokio::test(start_paused = true)]
async fn a_connection_replaced_by_a_second_login_gets_what_was_queued_for_it() {
    let destroyed: Arc<Destroyed> = Arc::default();
    let server = builder(&destroyed).build().expect("build");
    let mut holder = in_memory(&server, 28);
    assert!(holder.authenticate("holder").await.is_success());
    let mut first = in_memory(&server, 28);
    assert!(first.authenticate("twice").await.is_success());
    holder.send("Hold", b"").await;
    // Paused clock: each sleep returns once the frame waits in the held stage's mailbox.
    let seq = first.request_nowait("Echo", b"last words").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut second = in_memory(&server, 28);
    second.request_nowait("AuthenticateRequest", b"twice").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Released, the stage answers the echo, then takes the second login, which closes the
    // first connection before its session has written the answer.
    destroyed.release.notify_one();
    let reply = first.recv().await.expect("the answer before the close");
    assert_eq!(
        (reply.msg_seq, &reply.payload[..]),
        (seq, &b"last words"[..])
    );
    first.expect_closed().await;
    let reply = second.recv().await.expect("the second login's answer");
    assert_eq!(reply.error_code, ErrorCode::SUCCESS);
}

// One thread, in-memory stream: both frames are queued before the stage runs.
#[tokio::test(flavor = "current_thread")]
async fn a_request_queued_behind_a_panic_is_answered_stage_not_found() {
    let server = builder(&Arc::default()).build().expect("build");
    let mut victim = in_memory(&server, 29);
    assert!(victim.authenticate("victim").await.is_success());
    victim.send("Panic", b"").await;
    let seq = victim.request_nowait("Echo", b"queued").await;
    let reply = victim.recv().await.expect("an answer");
    assert_eq!(
        (reply.msg_seq, reply.error_code),
        (seq, ErrorCode::STAGE_NOT_FOUND)
    );
}

#[tokio::test(start_paused = true)]
async fn due_timers_run_before_the_rest_of_a_mailbox_batch() {
    let destroyed: Arc<Destroyed> = Arc::default();
    let server = builder(&destroyed).build().expect("build");
    let mut client = in_memory(&server, 30);
    assert!(client.authenticate("timed").await.is_success());
    // A one-shot timer 100 ms out, then the stage held past it with requests queued behind.
    client.send("Timer", b"").await;
    client.send("Hold", b"").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(client.request_nowait("Fired", b"").await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    destroyed.release.notify_one();
    for seq in seqs {
        let reply = client.recv().await.expect("an answer");
        assert_eq!(reply.msg_seq, seq);
        assert_eq!(&reply.payload[..], b"1", "the due timer ran first");
    }
}

#[tokio::test(start_paused = true)]
async fn after_a_late_wake_the_game_loop_keeps_to_its_step_grid() {
    /// The next frame, a game-loop tick: its number and when it arrived.
    async fn tick(client: &mut RawClient<tokio::io::DuplexStream>) -> (String, Instant) {
        let frame = client.recv().await.expect("a tick");
        assert_eq!(frame.msg_id, "Tick");
        let number = String::from_utf8(frame.payload.to_vec()).unwrap();
        (number, Instant::now())
    }
    let destroyed: Arc<Destroyed> = Arc::default();
    let server = builder(&destroyed).build().expect("build");
    let mut client = in_memory(&server, 31);
    assert!(client.authenticate("looper").await.is_success());
    let started = Instant::now();
    client.send("Loop", b"").await;
    let (first, first_at) = tick(&mut client).await;
    assert_eq!((first.as_str(), first_at - started), ("1", STEP));
    // The stage is held past its next step: that wake comes half a step late.
    client.send("Hold", b"").await;
    tokio::time::sleep(STEP * 3 / 2).await;
    destroyed.release.notify_one();
    let (second, second_at) = tick(&mut client).await;
    assert_eq!((second.as_str(), second_at - first_at), ("2", STEP * 3 / 2));
    // The step after a late one comes on time, not a step after the late wake.
    let (third, third_at) = tick(&mut client).await;
    assert_eq!((third.as_str(), third_at - first_at), ("3", STEP * 2));
    let (fourth, fourth_at) = tick(&mut client).await;
    assert_eq!((fourth.as_str(), fourth_at - first_at), ("4", STEP * 3));
}

#[tokio::test(start_paused = true)]
async fn a_slow_login_still_ends_at_the_auth_deadline_counted_from_the_connect() {
    const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
    let destroyed: Arc<Destroyed> = Arc::default();
    let server = builder(&destroyed)
        .configure(|c| c.auth_timeout = AUTH_TIMEOUT)
        .build()
        .expect("build");
    let _staller = stall(&server, 25).await;
    let connected = Instant::now();
    let mut slow = in_memory(&server, 25);
    tokio::time::sleep(AUTH_TIMEOUT * 6 / 10).await;
    // The login waits in the stalled stage's mailbox past the connection's deadline.
    slow.request_nowait("AuthenticateRequest", b"slow").await;
    slow.expect_closed().await;
    assert_eq!(connected.elapsed(), AUTH_TIMEOUT);
}

#[tokio::test(flavor = "current_thread")]
async fn pipelined_requests_each_count_in_the_latency_histogram() {
    fn latency_count(server: &PlayServer) -> u64 {
        let metrics = server.metrics();
        let line = metrics
            .lines()
            .find(|line| line.starts_with("playhouse_request_latency_seconds_count"))
            .expect("a latency count");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }
    let server = builder(&Arc::default()).build().expect("build");
    let mut client = in_memory(&server, 26);
    assert!(client.authenticate("piper").await.is_success());
    let before = latency_count(&server);
    // All five are read before the first reply goes out (one thread, in-memory stream).
    for _ in 0..5 {
        client.request_nowait("Echo", b"p").await;
    }
    for _ in 0..5 {
        assert!(
            client
                .recv()
                .await
                .expect("a reply")
                .error_code
                .is_success()
        );
    }
    assert_eq!(latency_count(&server) - before, 5);
}

#[tokio::test]
async fn a_panicking_stage_closes_alone() {
    let (_server, addr) = default_server().await;
    let mut other = RawClient::connect(addr, 19).await;
    assert!(other.authenticate("bystander").await.is_success());
    let mut victim = RawClient::connect(addr, 20).await;
    assert!(victim.authenticate("victim").await.is_success());

    victim.send("Panic", b"").await;
    // The connection survives; its stage is gone.
    let after = victim.request("Echo", b"x").await;
    assert_eq!(after.error_code, ErrorCode::STAGE_NOT_FOUND);
    let echo = other.request("Echo", b"fine").await;
    assert!(echo.error_code.is_success());
    // The stage id can be used again: authentication creates a fresh stage.
    let mut again = RawClient::connect(addr, 20).await;
    assert!(again.authenticate("victim2").await.is_success());
}

#[tokio::test]
async fn close_stage_destroys_actors_then_the_stage() {
    let destroyed: Arc<Destroyed> = Arc::default();
    let (_server, addr) = start(builder(&destroyed)).await;
    let mut a = RawClient::connect(addr, 21).await;
    let mut b = RawClient::connect(addr, 21).await;
    assert!(a.authenticate("a").await.is_success());
    assert!(b.authenticate("b").await.is_success());
    assert_eq!(a.request("Close", b"").await.msg_id, "Closing");
    assert_eq!(
        b.request("Echo", b"").await.error_code,
        ErrorCode::STAGE_NOT_FOUND
    );
    assert_eq!(destroyed.actors.load(Ordering::SeqCst), 2);
    assert_eq!(destroyed.stages.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn graceful_stop_destroys_stages_and_closes_clients() {
    let destroyed: Arc<Destroyed> = Arc::default();
    let (server, addr) = start(builder(&destroyed)).await;
    let mut clients = Vec::new();
    for (i, stage) in [31, 32, 33].into_iter().enumerate() {
        let mut client = RawClient::connect(addr, stage).await;
        assert!(client.authenticate(&format!("u{i}")).await.is_success());
        clients.push(client);
    }
    server.stop().await;
    assert_eq!(destroyed.stages.load(Ordering::SeqCst), 3);
    assert_eq!(destroyed.actors.load(Ordering::SeqCst), 3);
    assert_eq!(server.stage_count(), 0);
    for client in &mut clients {
        client.expect_closed().await;
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn broadcast_reaches_every_connected_client_in_order() {
    let (_server, addr) = default_server().await;
    let mut a = RawClient::connect(addr, 40).await;
    let mut b = RawClient::connect(addr, 40).await;
    assert!(a.authenticate("a").await.is_success());
    assert!(b.authenticate("b").await.is_success());
    for i in 0..20 {
        a.send("Broadcast", format!("{i}").as_bytes()).await;
    }
    for client in [&mut a, &mut b] {
        for i in 0..20 {
            assert_eq!(client.push("Broadcast").await.payload, format!("{i}"));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_reconnected_actor_gets_a_fresh_ttl_and_earlier_timers_keep_it() {
    const TTL: Duration = Duration::from_secs(1);
    let destroyed: Arc<Destroyed> = Arc::default();
    let server = builder(&destroyed)
        .configure(|c| c.disconnected_actor_ttl = Some(TTL))
        .build()
        .expect("build");
    let mut watcher = in_memory(&server, 51);
    assert!(watcher.authenticate("watcher").await.is_success());
    let mut ghost = in_memory(&server, 51);
    assert!(ghost.authenticate("ghost").await.is_success());
    drop(ghost);
    assert_eq!(
        watcher.push("ConnectionChanged").await.payload,
        "ghost:false"
    );
    // A stage timer due 100 ms later, long before the TTL.
    watcher.send("Timer", b"").await;
    tokio::time::sleep(TTL * 6 / 10).await;
    // Back, and gone again: the first disconnect's TTL no longer counts.
    let mut ghost = in_memory(&server, 51);
    assert!(ghost.authenticate("ghost").await.is_success());
    assert_eq!(
        watcher.push("ConnectionChanged").await.payload,
        "ghost:true"
    );
    drop(ghost);
    assert_eq!(
        watcher.push("ConnectionChanged").await.payload,
        "ghost:false"
    );
    let second_drop = Instant::now();
    // The actor built to check the second login was destroyed at once; ghost's is next.
    let ghost_gone = async {
        while destroyed.actors.load(Ordering::SeqCst) < 2 {
            destroyed.actor_gone.notified().await;
        }
    };
    tokio::time::timeout(TTL * 2, ghost_gone)
        .await
        .expect("the disconnected actor was never removed");
    assert_eq!(second_drop.elapsed(), TTL, "removed at its second TTL");
}

#[tokio::test]
async fn actors_disconnected_longer_than_the_ttl_leave_the_stage() {
    let destroyed: Arc<Destroyed> = Arc::default();
    let builder = builder(&destroyed)
        .configure(|c| c.disconnected_actor_ttl = Some(Duration::from_millis(200)));
    let (_server, addr) = start(builder).await;
    let mut watcher = RawClient::connect(addr, 50).await;
    assert!(watcher.authenticate("watcher").await.is_success());
    let mut gone = RawClient::connect(addr, 50).await;
    assert!(gone.authenticate("ghost").await.is_success());
    drop(gone);
    assert_eq!(
        watcher.push("ConnectionChanged").await.payload,
        "ghost:false"
    );

    let started = Instant::now();
    tokio::time::timeout(support::WAIT, destroyed.actor_gone.notified())
        .await
        .expect("the disconnected actor was never removed");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "removed before its TTL"
    );
    assert_eq!(destroyed.actors.load(Ordering::SeqCst), 1);

    // Coming back after the TTL is a fresh join, not a re-attach: no "connected" event, and
    // no throwaway actor destroyed.
    let mut back = RawClient::connect(addr, 50).await;
    assert!(back.authenticate("ghost").await.is_success());
    watcher.send("Broadcast", b"marker").await;
    assert_eq!(watcher.recv().await.unwrap().payload, "marker");
    assert_eq!(destroyed.actors.load(Ordering::SeqCst), 1);
}
