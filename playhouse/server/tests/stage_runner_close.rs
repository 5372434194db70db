//! Black-box tests of how stages end: one that panics, one that closes itself, and all of
//! them when the server stops. Destroy callbacks are counted.

mod support;

use std::sync::Arc;

use playhouse::{ActorCell, ErrorCode, Packet, PlayServerBuilder, Stage, StageContext};
use support::RawClient;
use support::destroys::Destroys;
use support::player::Player;
use support::serve::{one_stage_type, start};

/// A stage that answers "Echo", fails on "Panic", and on "Close" answers "Closing" and
/// closes itself.
struct Finite {
    destroys: Arc<Destroys>,
}

impl Stage for Finite {
    type Actor = Player;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_destroy(&mut self, _: &mut StageContext<Self>) {
        self.destroys.stage_destroyed();
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
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

fn finite(destroys: &Arc<Destroys>) -> PlayServerBuilder {
    let for_stage = Arc::clone(destroys);
    let for_actor = Arc::clone(destroys);
    one_stage_type(
        "Finite",
        move |_| Finite {
            destroys: Arc::clone(&for_stage),
        },
        move |_| Player::counted_by(&for_actor),
    )
}

#[tokio::test]
async fn a_panicking_stage_closes_alone() {
    let (_server, addr) = start(finite(&Arc::default())).await;
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
    let destroys: Arc<Destroys> = Arc::default();
    let (_server, addr) = start(finite(&destroys)).await;
    let mut a = RawClient::connect(addr, 21).await;
    let mut b = RawClient::connect(addr, 21).await;
    assert!(a.authenticate("a").await.is_success());
    assert!(b.authenticate("b").await.is_success());
    assert_eq!(a.request("Close", b"").await.msg_id, "Closing");
    assert_eq!(
        b.request("Echo", b"").await.error_code,
        ErrorCode::STAGE_NOT_FOUND
    );
    assert_eq!(destroys.actors(), 2);
    assert_eq!(destroys.stages(), 1);
}

#[tokio::test]
async fn graceful_stop_destroys_stages_and_closes_clients() {
    let destroys: Arc<Destroys> = Arc::default();
    let (server, addr) = start(finite(&destroys)).await;
    let mut clients = Vec::new();
    for (i, stage) in [31, 32, 33].into_iter().enumerate() {
        let mut client = RawClient::connect(addr, stage).await;
        assert!(client.authenticate(&format!("u{i}")).await.is_success());
        clients.push(client);
    }
    server.stop().await;
    assert_eq!(destroys.stages(), 3);
    assert_eq!(destroys.actors(), 3);
    assert_eq!(server.stage_count(), 0);
    for client in &mut clients {
        client.expect_closed().await;
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}
