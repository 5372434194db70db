//! Black-box tests of a login for an account its stage already holds: after a drop it
//! re-attaches to the same actor; over a live connection it takes that connection's place,
//! and the replaced connection still gets what was queued for it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use playhouse::{ActorCell, ErrorCode, Packet, PlayServerBuilder, Stage, StageContext};
use support::RawClient;
use support::destroys::Destroys;
use support::player::Player;
use support::serve::{in_memory, one_stage_type, start};
use tokio::sync::Notify;

/// A stage that tells everyone "ConnectionChanged" (`account:connected`) when a player's
/// connection drops or comes back, answers "Echo", and on "Hold" blocks until `release`.
struct Reunion {
    release: Arc<Notify>,
}

impl Stage for Reunion {
    type Actor = Player;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
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
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "Echo" => actor.link.reply(packet),
            "Hold" => self.release.notified().await,
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

fn reunions(destroys: &Arc<Destroys>, release: &Arc<Notify>) -> PlayServerBuilder {
    let release = Arc::clone(release);
    let destroys = Arc::clone(destroys);
    one_stage_type(
        "Reunion",
        move |_| Reunion {
            release: Arc::clone(&release),
        },
        move |_| Player::counted_by(&destroys),
    )
}

#[tokio::test]
async fn re_authentication_re_attaches_the_same_actor() {
    let destroys: Arc<Destroys> = Arc::default();
    let (_server, addr) = start(reunions(&destroys, &Arc::default())).await;
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
    assert_eq!(destroys.actors(), 1);
    let echo = second.request("Echo", b"back").await;
    assert!(echo.error_code.is_success());
}

#[tokio::test(start_paused = true)]
async fn a_connection_replaced_by_a_second_login_gets_what_was_queued_for_it() {
    let release: Arc<Notify> = Arc::default();
    let server = reunions(&Arc::default(), &release).build().expect("build");
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
    release.notify_one();
    let reply = first.recv().await.expect("the answer before the close");
    assert_eq!(
        (reply.msg_seq, &reply.payload[..]),
        (seq, &b"last words"[..])
    );
    first.expect_closed().await;
    let reply = second.recv().await.expect("the second login's answer");
    assert_eq!(reply.error_code, ErrorCode::SUCCESS);
}
