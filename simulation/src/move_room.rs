//! A stage that moves: the application of `rolling_drain`. Its state is the log of every
//! operation it applied, in order; each operation (a client request or one-way message, a
//! mesh request or one-way message, a run of its repeat timer) appends one entry and is
//! broadcast as a numbered push, so an update lost or applied twice across a move shows in
//! the log, in the numbers the replies echo and in the pushes.
//!
//! ```text
//! client -> Mover <any> "<op>"         apply <op>; a request is answered "<n>"
//!                 Dump ""              request: the whole log, one entry a line
//! mesh   -> Mover <any> "<op>"         apply <op>; a request is answered "<n>"
//! stage  -> client Applied "<n> <op>"  entry n (1-based) of the log is <op>
//! timer  (every TICK, re-armed after a move) applies "tick@<server>"
//! ```

use std::time::Duration;

use bytes::Bytes;
use playhouse::{
    ActorCell, ActorInit, ActorLink, ErrorCode, ErrorReply, MovableActor, MovableStage, Packet,
    PlayServerBuilder, Stage, StageContext, StageInit,
};

/// The stage type name.
pub const MOVER: &str = "Mover";
/// The same stage registered as a type that does not opt into moving.
pub const FIXED: &str = "Fixed";
/// The repeat timer's period.
pub const TICK: Duration = Duration::from_millis(100);

/// Registers the movable stage type, and the same stage as a type that cannot move, on a
/// Play server being built.
pub fn register(builder: PlayServerBuilder) -> PlayServerBuilder {
    builder
        .movable_stage(MOVER, |_| MoveRoom::default(), |_| MovePlayer)
        .stage(FIXED, |_| MoveRoom::default(), |_| MovePlayer)
}

/// The movable stage: its state is the log of applied operations.
#[derive(Debug, Default)]
pub struct MoveRoom {
    log: Vec<String>,
}

impl MoveRoom {
    /// Appends `op`, tells every player; its number.
    fn apply(&mut self, ctx: &StageContext<Self>, op: String) -> usize {
        self.log.push(op);
        let n = self.log.len();
        let text = format!("{n} {}", self.log[n - 1]);
        ctx.broadcast(Packet::new("Applied", text));
        n
    }

    fn arm(ctx: &mut StageContext<Self>) {
        ctx.add_repeat_timer(TICK, TICK, |room, ctx| {
            let op = format!("tick@{}", ctx.control().server_id());
            room.apply(ctx, op);
        });
    }
}

fn text(packet: &Packet) -> String {
    String::from_utf8_lossy(&packet.payload).into_owned()
}

impl Stage for MoveRoom {
    type Actor = MovePlayer;

    async fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Self::arm(ctx);
        Ok(Packet::empty("Created"))
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<MovePlayer>,
        packet: Packet,
    ) {
        if packet.msg_id == "Dump" {
            actor.link.reply(Packet::new("Log", self.log.join("\n")));
            return;
        }
        let n = self.apply(ctx, text(&packet));
        if actor.link.is_request() {
            actor.link.reply(Packet::new("Applied", n.to_string()));
        }
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        let n = self.apply(ctx, text(&packet));
        ctx.reply(Packet::new("Applied", n.to_string()));
    }
}

impl MovableStage for MoveRoom {
    fn save(&self) -> Bytes {
        Bytes::from(self.log.join("\n"))
    }

    fn restore(_: &StageInit<'_>, state: Bytes) -> Result<Self, ErrorCode> {
        let text = std::str::from_utf8(&state).map_err(|_| ErrorCode::INVALID_MESSAGE)?;
        let log = if text.is_empty() {
            Vec::new()
        } else {
            text.split('\n').map(str::to_owned).collect()
        };
        Ok(MoveRoom { log })
    }

    async fn on_moved(&mut self, ctx: &mut StageContext<Self>) {
        Self::arm(ctx);
    }
}

/// A player: authenticates as the account its login names (echoed back).
#[derive(Debug, Default)]
pub struct MovePlayer;

impl playhouse::Actor for MovePlayer {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let account = text(&packet);
        link.set_account_id(account.clone());
        Ok(Packet::new("Authenticated", account))
    }
}

impl MovableActor for MovePlayer {
    fn save(&self) -> Bytes {
        Bytes::new()
    }

    fn restore(_: &ActorInit<'_>, _: Bytes) -> Result<Self, ErrorCode> {
        Ok(MovePlayer)
    }
}
