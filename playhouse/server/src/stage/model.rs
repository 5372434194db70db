//! The programming model's two traits: a [`Stage`] (a room) and its [`Actor`]s (players).

use std::future::Future;

use playhouse_protocol::{ErrorCode, Packet};

use super::actor::{ActorCell, ActorInit, ActorLink};
use super::context::{StageContext, StageInit};
use crate::reply::ErrorReply;

/// A stage (room, match, lobby): one instance per stage id, driven by its own event loop so
/// its state needs no locks. Every method has a default except [`Stage::on_dispatch`] and
/// [`Stage::on_create`].
pub trait Stage: Sized + Send + 'static {
    /// The actor (player) type of this stage.
    type Actor: Actor;

    /// The stage is being created with `packet` (the creating request, or the authenticate
    /// request when a client's authentication creates it). `Err(code)` refuses creation;
    /// the creator sees `code` (typically [`ErrorCode::STAGE_CREATION_FAILED`]).
    ///
    /// The `Ok` packet is the reply to a creator that waits for one: another server's
    /// `create_stage` / `get_or_create_stage`. A stage created by a client's login has no one
    /// to read it (the client gets its authenticate reply); return `Packet::empty("...")`.
    fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        packet: Packet,
    ) -> impl Future<Output = Result<Packet, ErrorCode>> + Send;

    /// Runs once after a successful `on_create`.
    fn on_post_create(&mut self, ctx: &mut StageContext<Self>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// The stage is closing (after every actor's `on_destroy`).
    fn on_destroy(&mut self, ctx: &mut StageContext<Self>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// An authenticated actor asks to join; `false` refuses it
    /// ([`ErrorCode::JOIN_STAGE_FAILED`]).
    fn on_join_stage(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<Self::Actor>,
    ) -> impl Future<Output = bool> + Send {
        let _ = (ctx, actor);
        async { true }
    }

    /// The actor has joined (it is registered and reachable by broadcasts).
    fn on_post_join_stage(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<Self::Actor>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, actor);
        async {}
    }

    /// The actor's client connection dropped (`false`) or came back by re-authenticating as
    /// the same account (`true`). The actor stays in the stage either way. For a client with a
    /// resumable session (`PlayConfig::resume`) a drop is reported only once the session is
    /// lost (its resume window passed): a drop it resumes from is never seen here.
    fn on_connection_changed(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<Self::Actor>,
        connected: bool,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, actor, connected);
        async {}
    }

    /// A message from the actor's client. Reply with `actor.link.reply(..)` when it is a
    /// request ([`ActorLink::is_request`]).
    fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<Self::Actor>,
        packet: Packet,
    ) -> impl Future<Output = ()> + Send;

    /// A message from another server (mesh). The default answers requests with
    /// [`ErrorCode::HANDLER_NOT_FOUND`].
    fn on_dispatch_server(
        &mut self,
        ctx: &mut StageContext<Self>,
        packet: Packet,
    ) -> impl Future<Output = ()> + Send {
        let _ = packet;
        ctx.reply_error(ErrorCode::HANDLER_NOT_FOUND);
        async {}
    }
}

/// An actor: one player inside a stage.
pub trait Actor: Send + 'static {
    /// The actor was constructed for an authentication attempt.
    fn on_create(&mut self, link: &mut ActorLink) -> impl Future<Output = ()> + Send {
        let _ = link;
        async {}
    }

    /// The actor leaves the stage for good (leave, stage close), or its authentication failed.
    fn on_destroy(&mut self, link: &mut ActorLink) -> impl Future<Output = ()> + Send {
        let _ = link;
        async {}
    }

    /// Checks the client's authenticate request. On success set the account id
    /// ([`ActorLink::set_account_id`]) and return the reply packet: the client receives its
    /// payload under the authenticate reply id (`AuthenticateReply` by default: the
    /// `authenticate_msg_id` with `Request` turned into `Reply`), whatever id it has here,
    /// so a client reads it with `Packet::parse`, not the id-checking `Packet::decode`. `Err(..)` refuses the
    /// client with a code (use [`ErrorCode::AUTHENTICATION_FAILED`]) and, if the
    /// [`ErrorReply`] carries one, a packet telling it why. A refused client stays connected
    /// and may try again (until the server's `auth_timeout`).
    fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> impl Future<Output = Result<Packet, ErrorReply>> + Send;

    /// Runs after a successful authentication, before the stage's `on_join_stage`.
    fn on_post_authenticate(&mut self, link: &mut ActorLink) -> impl Future<Output = ()> + Send {
        let _ = link;
        async {}
    }
}

/// A stage type that can move, live and with its players, to another Play server when its
/// server drains (register it with `PlayServerBuilder::movable_stage`). Its state is saved
/// at a quiet point of its loop (between two messages) and rebuilt on the target, where
/// [`MovableStage::on_moved`] runs instead of `on_create`.
///
/// What does not move: timers and the game loop (re-arm them in `on_moved`), async blocks
/// still running (their results are dropped), and anything the stage holds outside its saved
/// state.
pub trait MovableStage: Stage<Actor: MovableActor> {
    /// The stage's state, to rebuild it elsewhere (any encoding; a prost message's bytes is
    /// typical).
    fn save(&self) -> bytes::Bytes;

    /// The stage rebuilt on the target from what [`MovableStage::save`] returned. `Err`
    /// refuses the move (the stage stays where it was).
    fn restore(init: &StageInit<'_>, state: bytes::Bytes) -> Result<Self, ErrorCode>;

    /// Runs on the target once the stage and its actors are rebuilt, before any message:
    /// re-arm timers and the game loop here.
    fn on_moved(&mut self, ctx: &mut StageContext<Self>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }
}

/// The actor of a [`MovableStage`]: saved and rebuilt with its stage. Its account id moves
/// with it; `on_create` and `on_authenticate` do not run again.
pub trait MovableActor: Actor {
    /// The actor's state.
    fn save(&self) -> bytes::Bytes;

    /// The actor rebuilt on the target from what [`MovableActor::save`] returned.
    fn restore(init: &ActorInit<'_>, state: bytes::Bytes) -> Result<Self, ErrorCode>
    where
        Self: Sized;
}
