//! The arena room: a server-authoritative stage stepping its [`World`] 20 times a second and
//! pushing every connected player a [`Snapshot`]. Players log in with their name (the
//! authenticate payload), steer with one-way [`Steer`] messages, and may ask `Hello` for the
//! field's size. A player whose connection drops stays (stopped, shown offline) until
//! `disconnected_actor_ttl` passes or it logs in again; one that leaves is removed.
//!
//! The room is movable: when its Play server drains, the world moves with its players to
//! another Play server and the game goes on (the tick count too).

use std::time::Duration;

use bytes::Bytes;
use playhouse::{
    Actor, ActorCell, ActorInit, ActorLink, ErrorCode, ErrorReply, GameTick, MovableActor,
    MovableStage, Packet, Stage, StageContext, StageInit,
};
use prost::Message;

use super::messages::{Avatar, Coin, Snapshot, Steer, Welcome};
use super::world::{HEIGHT, RADIUS, WIDTH, World};

/// The fixed step: 20 Hz.
pub const STEP: Duration = Duration::from_millis(50);
/// Longest player name, in bytes.
pub const MAX_NAME: usize = 24;

/// The arena room.
#[derive(Debug)]
pub struct ArenaRoom {
    world: World,
}

impl ArenaRoom {
    /// A fresh room; its world is seeded with the stage id.
    pub fn new(stage_id: i64) -> ArenaRoom {
        ArenaRoom {
            world: World::new(stage_id.unsigned_abs()),
        }
    }

    fn start(ctx: &mut StageContext<Self>) {
        ctx.start_game_loop(STEP, |room, ctx, tick: GameTick| {
            room.world.step(tick.delta.as_secs_f32());
            ctx.broadcast(Packet::from_message(&room.snapshot(ctx)));
        });
    }

    /// The world as the clients see it.
    fn snapshot(&self, ctx: &StageContext<Self>) -> Snapshot {
        Snapshot {
            tick: self.world.tick,
            avatars: self
                .world
                .bodies
                .values()
                .map(|body| Avatar {
                    name: body.name.clone(),
                    x: body.x,
                    y: body.y,
                    score: body.score,
                    online: body.online,
                })
                .collect(),
            coins: self
                .world
                .coins
                .iter()
                .map(|coin| Coin {
                    id: coin.id,
                    x: coin.x,
                    y: coin.y,
                })
                .collect(),
            server: ctx.control().server_id().to_owned(),
            sent_at_us: unix_micros(),
        }
    }
}

/// Now, in microseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A player: its name is its account.
#[derive(Debug, Default)]
pub struct ArenaPlayer;

impl Stage for ArenaRoom {
    type Actor = ArenaPlayer;

    async fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Self::start(ctx);
        Ok(Packet::new("ArenaCreated", ctx.stage_id().to_string()))
    }

    async fn on_post_join_stage(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<ArenaPlayer>,
    ) {
        self.world.join(actor.link.account_id());
    }

    async fn on_connection_changed(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<ArenaPlayer>,
        connected: bool,
    ) {
        self.world.set_online(actor.link.account_id(), connected);
    }

    async fn on_dispatch(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<ArenaPlayer>,
        packet: Packet,
    ) {
        let name = actor.link.account_id().to_owned();
        match &*packet.msg_id {
            "Steer" => {
                if let Ok(steer) = Steer::decode(packet.payload) {
                    self.world.steer(&name, steer.dx, steer.dy);
                }
            }
            "Hello" => actor.link.reply(Packet::from_message(&Welcome {
                name,
                width: WIDTH,
                height: HEIGHT,
                radius: RADIUS,
            })),
            "Leave" => {
                self.world.leave(&name);
                actor.link.leave_stage();
            }
            _ if actor.link.is_request() => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
            _ => {}
        }
    }
}

impl Actor for ArenaPlayer {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let name = String::from_utf8_lossy(&packet.payload).trim().to_owned();
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(ErrorCode::AUTHENTICATION_FAILED.into());
        }
        link.set_account_id(name.clone());
        Ok(Packet::new("Joined", name))
    }

    async fn on_destroy(&mut self, _: &mut ActorLink) {}
}

impl MovableStage for ArenaRoom {
    fn save(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(&self.world).unwrap_or_default())
    }

    fn restore(_: &StageInit<'_>, state: Bytes) -> Result<Self, ErrorCode> {
        let world = serde_json::from_slice(&state).map_err(|_| ErrorCode::INVALID_MESSAGE)?;
        Ok(ArenaRoom { world })
    }

    async fn on_moved(&mut self, ctx: &mut StageContext<Self>) {
        Self::start(ctx);
    }
}

impl MovableActor for ArenaPlayer {
    fn save(&self) -> Bytes {
        Bytes::new()
    }

    fn restore(_: &ActorInit<'_>, _: Bytes) -> Result<Self, ErrorCode> {
        Ok(ArenaPlayer)
    }
}
