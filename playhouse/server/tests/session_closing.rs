//! Black-box tests of what is still owed when something closes under queued frames: a stage
//! that closes or panics answers every queued request once and sends a queued login to a
//! fresh stage; a connection a second login replaces gets its answers before it closes.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use playhouse::{ActorCell, ErrorCode, Packet, PlayServer, PlayServerBuilder, Stage, StageContext};
use support::RawClient;
use support::destroys::Destroys;
use support::player::Player;
use support::serve::{in_memory, one_stage_type};
use tokio::io::DuplexStream;
use tokio::sync::Notify;

/// What a test steers its stages with.
#[derive(Default)]
struct Controls {
    destroys: Arc<Destroys>,
    /// A stage handling "Hold" or "StallThenClose" waits for this.
    release: Notify,
    /// While set, a stage closes as soon as a player has joined it.
    close_on_join: AtomicBool,
}

/// A stage that answers "Echo", fails on "Panic", blocks on "Hold" until the test releases
/// it, and on "StallThenClose" does the same, then closes.
struct Latched {
    controls: Arc<Controls>,
}

impl Stage for Latched {
    type Actor = Player;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_destroy(&mut self, _: &mut StageContext<Self>) {
        self.controls.destroys.stage_destroyed();
    }

    async fn on_post_join_stage(
        &mut self,
        ctx: &mut StageContext<Self>,
        _: &mut ActorCell<Player>,
    ) {
        if self.controls.close_on_join.load(Ordering::SeqCst) {
            ctx.close_stage();
        }
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
            "Hold" => self.controls.release.notified().await,
            "StallThenClose" => {
                self.controls.release.notified().await;
                ctx.close_stage();
            }
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

fn latched(controls: &Arc<Controls>) -> PlayServerBuilder {
    let for_stage = Arc::clone(controls);
    let for_actor = Arc::clone(&controls.destroys);
    one_stage_type(
        "Latched",
        move |_| Latched {
            controls: Arc::clone(&for_stage),
        },
        move |_| Player::counted_by(&for_actor),
    )
}

/// Joins stage `stage_id` and stalls it (it closes once released); returns the staller's
/// connection, to keep open.
async fn stall(server: &PlayServer, stage_id: i64) -> RawClient<DuplexStream> {
    let mut staller = in_memory(server, stage_id);
    assert!(staller.authenticate("staller").await.is_success());
    staller.send("StallThenClose", b"").await;
    staller
}

/// Frames a stalled stage never takes: `fill` fills its mailbox (capacity 2), `blocked`
/// waits for room when the stage closes, `after` follows. Returns what the client received,
/// up to the reply to `after`, as (seq, code); one-way frames have seq 0.
async fn close_under_a_full_mailbox(
    server: &PlayServer,
    controls: &Controls,
    user: &str,
    blocked_is_request: bool,
) -> (Vec<u16>, u16, Vec<(u16, ErrorCode)>) {
    let mut client = in_memory(server, 23);
    assert!(client.authenticate(user).await.is_success());
    client.send("StallThenClose", b"").await;
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
    controls.release.notify_one();
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
    let controls: Arc<Controls> = Arc::default();
    let server = latched(&controls)
        .configure(|c| c.stage_mailbox_capacity = 2)
        .build()
        .expect("build");
    for blocked_is_request in [true, false] {
        let user = format!("stalled-{blocked_is_request}");
        let (requests, after, mut received) =
            close_under_a_full_mailbox(&server, &controls, &user, blocked_is_request).await;
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

#[tokio::test(start_paused = true)]
async fn a_login_queued_at_a_stage_that_closes_goes_to_a_fresh_stage() {
    let controls: Arc<Controls> = Arc::default();
    let server = latched(&controls).build().expect("build");
    let _staller = stall(&server, 24).await;
    let mut late = in_memory(&server, 24);
    let seq = late.request_nowait("AuthenticateRequest", b"late").await;
    // Paused clock: returns once the login waits in the stalled stage's mailbox.
    tokio::time::sleep(Duration::from_secs(1)).await;
    controls.release.notify_one();
    let reply = late.recv().await.expect("an answer");
    assert_eq!(
        (reply.msg_seq, reply.msg_id.as_ref(), reply.error_code),
        (seq, "AuthenticateReply", ErrorCode::SUCCESS)
    );
    let echo = late.request("Echo", b"fresh").await;
    assert_eq!(echo.payload, Bytes::from_static(b"fresh"));
    assert_eq!(controls.destroys.stages(), 1, "the stalled stage closed");
}

#[tokio::test(start_paused = true)]
async fn a_login_whose_stage_closes_under_it_twice_gets_stage_not_found() {
    let controls: Arc<Controls> = Arc::default();
    let server = latched(&controls).build().expect("build");
    let _staller = stall(&server, 27).await;
    controls.close_on_join.store(true, Ordering::SeqCst);
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
    controls.release.notify_one();
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

// One thread, in-memory stream: both frames are queued before the stage runs.
#[tokio::test(flavor = "current_thread")]
async fn a_request_queued_behind_a_panic_is_answered_stage_not_found() {
    let server = latched(&Arc::default()).build().expect("build");
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
async fn a_connection_replaced_by_a_second_login_gets_what_was_queued_for_it() {
    let controls: Arc<Controls> = Arc::default();
    let server = latched(&controls).build().expect("build");
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
    controls.release.notify_one();
    let reply = first.recv().await.expect("the answer before the close");
    assert_eq!(
        (reply.msg_seq, &reply.payload[..]),
        (seq, &b"last words"[..])
    );
    first.expect_closed().await;
    let reply = second.recv().await.expect("the second login's answer");
    assert_eq!(reply.error_code, ErrorCode::SUCCESS);
}
