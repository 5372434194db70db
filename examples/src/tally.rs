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
//! request `Tally` is answered with the room's tally (unchanged), `Peek` with
//! `"<tally> <stage id>"`; anything else gets `Pong`.
//!
//! A request `Ask` with payload `"<play id> <stage id> <tag>"` does not count: the room asks
//! that other room over the mesh (`Peek`, a stage-to-stage request) and replies `Peeked` with
//! its answer and the tag, `"<tally> <stage id> <tag>"`, or fails with the mesh's error code.

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
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<TallyPlayer>,
        packet: Packet,
    ) {
        if packet.msg_id == "Ask" {
            return ask(ctx, actor, &packet.payload);
        }
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
        } else if packet.msg_id == "Peek" {
            let text = format!("{} {}", self.tally, ctx.stage_id());
            ctx.reply(Packet::new("Peek", text));
        } else {
            ctx.reply(Packet::new("Pong", packet.payload));
        }
    }
}

/// `Ask`: a stage-to-stage `Peek` of the room named in `payload`, answered to the player
/// when the mesh answers (the stage loop goes on meanwhile).
fn ask(ctx: &mut StageContext<TallyRoom>, actor: &mut ActorCell<TallyPlayer>, payload: &[u8]) {
    let Some(target) = actor.link.reply_target() else {
        return;
    };
    let text = String::from_utf8_lossy(payload);
    let mut parts = text.splitn(3, ' ');
    let (Some(play), Some(Ok(stage)), tag) = (
        parts.next(),
        parts.next().map(str::parse::<i64>),
        parts.next().unwrap_or("").to_owned(),
    ) else {
        return target.reply_error(ErrorCode::INVALID_MESSAGE);
    };
    let peek = ctx
        .sender()
        .request_to_stage(play, stage, Packet::empty("Peek"));
    ctx.request_with_callback(peek, move |_, _, answer| match answer {
        Ok(answer) => {
            let text = format!("{} {tag}", String::from_utf8_lossy(&answer.payload));
            target.reply(Packet::new("Peeked", text));
        }
        Err(error) => target.reply_error(error.code()),
    });
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
