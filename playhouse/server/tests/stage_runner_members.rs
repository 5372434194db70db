//! Black-box tests of who is in a stage: a player leaving, broadcasts to every member, a
//! dropped player logging in again to the same actor, and how long the actor of a dropped
//! connection stays (`disconnected_actor_ttl`).

mod support;

use std::sync::Arc;
use std::time::Duration;

use playhouse::{ActorCell, ErrorCode, Packet, PlayServerBuilder, Stage, StageContext};
use support::RawClient;
use support::destroys::Destroys;
use support::player::Player;
use support::serve::{in_memory, one_stage_type, start};
use tokio::time::Instant;

/// A stage that tells everyone "ConnectionChanged" (`account:connected`) when a player's
/// connection drops or comes back, passes "Broadcast" on to everyone, lets a player go on
/// "Leave" (answering "Left"), answers "Echo", and on "StartTimer" starts a one-shot timer
/// 100 ms out that does nothing.
struct Club;

impl Stage for Club {
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
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "Echo" => actor.link.reply(packet),
            "Broadcast" => ctx.broadcast(packet),
            "Leave" => {
                actor.link.reply(Packet::empty("Left"));
                actor.link.leave_stage();
            }
            "StartTimer" => {
                ctx.add_count_timer(
                    Duration::from_millis(100),
                    Duration::from_millis(100),
                    1,
                    |_, _| {},
                );
            }
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

fn clubs(destroys: &Arc<Destroys>) -> PlayServerBuilder {
    let destroys = Arc::clone(destroys);
    one_stage_type("Club", |_| Club, move |_| Player::counted_by(&destroys))
}

#[tokio::test]
async fn leaving_the_stage_detaches_the_connection() {
    let (_server, addr) = start(clubs(&Arc::default())).await;
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
async fn broadcast_reaches_every_connected_client_in_order() {
    let (_server, addr) = start(clubs(&Arc::default())).await;
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

#[tokio::test]
async fn re_authentication_re_attaches_the_same_actor() {
    let destroys: Arc<Destroys> = Arc::default();
    let (_server, addr) = start(clubs(&destroys)).await;
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
async fn a_reconnected_actor_gets_a_fresh_ttl_and_earlier_timers_keep_it() {
    const TTL: Duration = Duration::from_secs(1);
    let destroys: Arc<Destroys> = Arc::default();
    let server = clubs(&destroys)
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
    watcher.send("StartTimer", b"").await;
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
        while destroys.actors() < 2 {
            destroys.actor_gone().await;
        }
    };
    tokio::time::timeout(TTL * 2, ghost_gone)
        .await
        .expect("the disconnected actor was never removed");
    assert_eq!(second_drop.elapsed(), TTL, "removed at its second TTL");
}

#[tokio::test]
async fn actors_disconnected_longer_than_the_ttl_leave_the_stage() {
    let destroys: Arc<Destroys> = Arc::default();
    let builder =
        clubs(&destroys).configure(|c| c.disconnected_actor_ttl = Some(Duration::from_millis(200)));
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
    tokio::time::timeout(support::WAIT, destroys.actor_gone())
        .await
        .expect("the disconnected actor was never removed");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "removed before its TTL"
    );
    assert_eq!(destroys.actors(), 1);

    // Coming back after the TTL is a fresh join, not a re-attach: no "connected" event, and
    // no throwaway actor destroyed.
    let mut back = RawClient::connect(addr, 50).await;
    assert!(back.authenticate("ghost").await.is_success());
    watcher.send("Broadcast", b"marker").await;
    assert_eq!(watcher.recv().await.unwrap().payload, "marker");
    assert_eq!(destroys.actors(), 1);
}
