//! `TallyRoom`: a room whose state changes with every message, and that can move live to
//! another Play server when its server drains (it is registered with
//! `PlayServerBuilder::movable_stage` in `play-node`).
//!
//! Every message a player sends adds one to the room's tally and one to the player's own:
//!
//! | from the client | the room answers |
//! | --- | --- |
//! | request `Add` | reply `Tally` |
//! | one-way `Bump` | push `Bumped` to that player |
//!
//! Both answers carry `"<room tally> <player tally>"` (decimal, one space), so a client can
//! check that nothing was lost or applied twice, across a move too. A message with a payload
//! (a tag, e.g. the client's sequence number) gets it back after one more space, so that each
//! answer names the message it answers. Another server's mesh
//! request `Tally` is answered with the room's tally (unchanged); anything else gets `Pong`.

use bytes::Bytes;
use playhouse::{
    Actor, ActorCell, ActorInit, ActorLink, ErrorCode, ErrorReply, MovableActor, MovableStage,
    Packet, Stage, StageContext, StageInit,
};

/// The room: how many messages its players have sent in all.
#[derive(Debug, Default)]
pub struct TallyRoom {
    tally: u64,
}

/// A player of [`TallyRoom`]: how many messages it has sent. The authenticate payload is its
/// account id.
#[derive(Debug, Default)]
pub struct TallyPlayer {
    tally: u64,
}

/// `"<room> <player>"`, what both answers carry, then `" <tag>"` when the message had a
/// payload.
fn tallies(room: u64, player: u64, tag: &[u8]) -> String {
    if tag.is_empty() {
        format!("{room} {player}")
    } else {
        format!("{room} {player} {}", String::from_utf8_lossy(tag))
    }
}

/// Reads a tally saved by [`TallyRoom`] or [`TallyPlayer`].
fn read_tally(state: &[u8]) -> Result<u64, ErrorCode> {
    let bytes: [u8; 8] = state.try_into().map_err(|_| ErrorCode::INVALID_MESSAGE)?;
    Ok(u64::from_le_bytes(bytes))
}

impl Stage for TallyRoom {
    type Actor = TallyPlayer;

    async fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::new("RoomCreated", ctx.stage_id().to_string()))
    }

    async fn on_dispatch(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<TallyPlayer>,
        packet: Packet,
    ) {
        self.tally += 1;
        actor.actor.tally += 1;
        let text = tallies(self.tally, actor.actor.tally, &packet.payload);
        if actor.link.is_request() {
            actor.link.reply(Packet::new("Tally", text));
        } else {
            actor.link.send_to_client(Packet::new("Bumped", text));
        }
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        if packet.msg_id == "Tally" {
            ctx.reply(Packet::new("Tally", self.tally.to_string()));
        } else {
            ctx.reply(Packet::new("Pong", packet.payload));
        }
    }
}

impl MovableStage for TallyRoom {
    fn save(&self) -> Bytes {
        Bytes::copy_from_slice(&self.tally.to_le_bytes())
    }

    fn restore(_: &StageInit<'_>, state: Bytes) -> Result<Self, ErrorCode> {
        Ok(TallyRoom {
            tally: read_tally(&state)?,
        })
    }
}

impl Actor for TallyPlayer {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let account = String::from_utf8_lossy(&packet.payload).into_owned();
        if account.is_empty() {
            return Err(ErrorCode::AUTHENTICATION_FAILED.into());
        }
        link.set_account_id(account);
        Ok(Packet::empty("Welcome"))
    }
}

impl MovableActor for TallyPlayer {
    fn save(&self) -> Bytes {
        Bytes::copy_from_slice(&self.tally.to_le_bytes())
    }

    fn restore(_: &ActorInit<'_>, state: Bytes) -> Result<Self, ErrorCode> {
        Ok(TallyPlayer {
            tally: read_tally(&state)?,
        })
    }
}
