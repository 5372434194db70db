//! What a server does with its default settings, as a new user meets them: a room whose
//! players have all gone away closes by itself, even with a timer of its own running.

mod support;

use std::sync::Arc;
use std::time::Duration;

use playhouse::{ActorCell, ErrorCode, Packet, PlayConfig, Stage, StageContext};
use support::destroys::Destroys;
use support::player::Player;
use support::serve::{in_memory, one_stage_type};
use tokio::time::Instant;

/// A room with a counter that a one-second repeating timer pushes to everyone, as a small
/// game would: the timer alone must not keep an abandoned room alive.
struct Counter {
    destroys: Arc<Destroys>,
    ticks: u64,
}

impl Stage for Counter {
    type Actor = Player;

    async fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        ctx.add_repeat_timer(
            Duration::from_secs(1),
            Duration::from_secs(1),
            |room, ctx| {
                room.ticks += 1;
                ctx.broadcast(Packet::new("Tick", room.ticks.to_string()));
            },
        );
        Ok(Packet::empty("Created"))
    }

    async fn on_dispatch(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        packet: Packet,
    ) {
        actor.link.reply(packet);
    }

    async fn on_destroy(&mut self, _: &mut StageContext<Self>) {
        self.destroys.stage_destroyed();
    }
}

#[tokio::test(start_paused = true)]
async fn a_room_closes_after_its_players_leave_and_the_ttl_passes() {
    let defaults = PlayConfig::default();
    let ttl = defaults
        .disconnected_actor_ttl
        .expect("a finite actor TTL by default");
    let idle = defaults
        .stage_idle_timeout
        .expect("a finite stage idle timeout by default");
    let destroys: Arc<Destroys> = Arc::default();
    let stage_destroys = Arc::clone(&destroys);
    let actor_destroys = Arc::clone(&destroys);
    let server = one_stage_type(
        "Counter",
        move |_| Counter {
            destroys: Arc::clone(&stage_destroys),
            ticks: 0,
        },
        move |_| Player::counted_by(&actor_destroys),
    )
    .build()
    .expect("build");

    let mut players = Vec::new();
    for name in ["ann", "bob", "cat"] {
        let mut player = in_memory(&server, 7);
        assert!(player.authenticate(name).await.is_success());
        players.push(player);
    }
    assert_eq!(server.stage_count(), 1);
    // Every player goes away; the room's timer keeps running.
    drop(players);
    let left = Instant::now();

    tokio::time::timeout(ttl + idle + Duration::from_secs(5), destroys.stage_gone())
        .await
        .expect("the abandoned room never closed");
    assert_eq!(destroys.actors(), 3, "every actor left when its TTL passed");
    assert_eq!(server.stage_count(), 0);
    let closed_after = left.elapsed();
    assert!(
        closed_after >= ttl + idle && closed_after <= ttl + idle + Duration::from_secs(2),
        "closed {closed_after:?} after the players left; expected about {:?}",
        ttl + idle
    );
    server.stop().await;
}
