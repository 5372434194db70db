//! The `Counter` room and its player.

use std::sync::LazyLock;
use std::time::Duration;

use playhouse::{
    Actor, ActorCell, ActorLink, ErrorCode, ErrorReply, Packet, Stage, StageContext, StageRoutes,
};

use super::messages::{Click, Clicked, Login, Tick};

/// The stage type name clients log into.
pub const ROOM: &str = "Counter";

/// A room with a counter and a one-second timer.
#[derive(Debug, Default)]
pub struct Counter {
    count: u64,
    seconds: u64,
}

/// A player of a `Counter` room.
#[derive(Debug, Default)]
pub struct CounterPlayer;

impl Counter {
    /// `Click` → `Clicked`: counts, tells the room, answers the clicker.
    fn click(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<CounterPlayer>,
        _: Click,
    ) -> Result<Clicked, ErrorCode> {
        self.count += 1;
        let clicked = Clicked {
            count: self.count,
            by: actor.link.account_id().to_owned(),
        };
        ctx.broadcast(Packet::from_message(&clicked));
        Ok(clicked)
    }
}

static ROUTES: LazyLock<StageRoutes<Counter>> =
    LazyLock::new(|| StageRoutes::new().client(Counter::click));

impl Stage for Counter {
    type Actor = CounterPlayer;

    async fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        let second = Duration::from_secs(1);
        ctx.add_repeat_timer(second, second, |room, ctx| {
            room.seconds += 1;
            let tick = Tick {
                count: room.count,
                seconds: room.seconds,
            };
            ctx.broadcast(Packet::from_message(&tick));
        });
        Ok(Packet::empty("CounterCreated"))
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<CounterPlayer>,
        packet: Packet,
    ) {
        let Some(packet) = ROUTES.dispatch(self, ctx, actor, packet).await else {
            return;
        };
        match &*packet.msg_id {
            // Gone for good: the actor leaves now. A player who only drops keeps its actor for
            // `disconnected_actor_ttl` to come back to.
            "Leave" => {
                actor.link.reply(Packet::empty("Bye"));
                actor.link.leave_stage();
            }
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

impl Actor for CounterPlayer {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let login: Login = packet.parse()?;
        if login.name.is_empty() {
            return Err(ErrorCode::AUTHENTICATION_FAILED.into());
        }
        link.set_account_id(login.name);
        Ok(Packet::empty("Welcome"))
    }
}
