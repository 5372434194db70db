//! Moving a live stage to another Play server: what a stage type that opted in
//! ([`MovableStage`]) can do, with its concrete types erased, and the snapshot that travels.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use playhouse_mesh::proto::{HeldMessage, MovedSession};
use playhouse_mesh::{Route, RoutePacket};
use playhouse_protocol::{Capabilities, ErrorCode, MsgId, Packet, ResumeToken};
use tokio::sync::oneshot;

use super::actor::ActorInit;
use super::context::{StageContext, StageInit};
use super::model::{MovableActor, MovableStage, Stage};
use crate::session::handle::SessionHandle;
use crate::session::moved_state::SessionState;
use crate::session::relay::{frame_from_wire, frame_to_wire};

type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What moving a stage type needs, as plain functions: present only for the types registered
/// as movable.
pub(crate) struct MoveOps<S: Stage> {
    pub(crate) save_stage: fn(&S) -> Bytes,
    pub(crate) save_actor: fn(&S::Actor) -> Bytes,
    pub(crate) restore_stage: fn(&StageInit<'_>, Bytes) -> Result<S, ErrorCode>,
    pub(crate) restore_actor: fn(&ActorInit<'_>, Bytes) -> Result<S::Actor, ErrorCode>,
    pub(crate) on_moved: for<'a> fn(&'a mut S, &'a mut StageContext<S>) -> BoxFuture<'a>,
}

impl<S: Stage> Clone for MoveOps<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: Stage> Copy for MoveOps<S> {}

impl<S: MovableStage> MoveOps<S> {
    /// The operations of movable stage type `S`.
    pub(crate) fn of() -> MoveOps<S> {
        MoveOps {
            save_stage: |stage| stage.save(),
            save_actor: |actor| actor.save(),
            restore_stage: |init, state| S::restore(init, state),
            restore_actor: |init, state| <S::Actor as MovableActor>::restore(init, state),
            on_moved: |stage, ctx| Box::pin(stage.on_moved(ctx)),
        }
    }
}

/// A stage as it travels: its state, its actors, and what reached it after the snapshot.
#[derive(Debug, Default)]
pub(crate) struct StageSnapshot {
    pub(crate) state: Bytes,
    pub(crate) actors: Vec<ActorSnapshot>,
    pub(crate) held: Vec<Held>,
}

/// One actor as it travels. On the target, `session` is the adopted session (if the player
/// was connected resumably).
#[derive(Debug)]
pub(crate) struct ActorSnapshot {
    pub(crate) key: u64,
    pub(crate) account_id: String,
    pub(crate) state: Bytes,
    pub(crate) session: Option<SessionHandle>,
    /// A relayed player's: the number of its next message from its home (0: not relayed).
    pub(crate) relay_next: u64,
}

/// A message that reached a moving stage after its snapshot, handled on the target in order.
#[derive(Debug)]
pub(crate) enum Held {
    /// From actor `actor`'s client.
    Client {
        actor: u64,
        seq: u16,
        packet: Packet,
        /// A relayed client's: its number from the home (0: connected at the stage's server).
        order: u64,
    },
    /// From another server (answered from the target).
    Server(RoutePacket),
}

/// What the target runs a moved stage from.
#[derive(Debug)]
pub(crate) struct RestoreRequest {
    pub(crate) snapshot: StageSnapshot,
    /// Answered once the stage runs (its actors rebuilt, `on_moved` done), or refused.
    pub(crate) done: oneshot::Sender<Result<(), ErrorCode>>,
}

impl Held {
    pub(crate) fn to_wire(&self) -> HeldMessage {
        match self {
            Held::Client {
                actor,
                seq,
                packet,
                order,
            } => HeldMessage {
                actor: *actor,
                msg_seq: u32::from(*seq),
                msg_id: packet.msg_id.to_string(),
                payload: packet.payload.clone(),
                route: None,
                order: *order,
            },
            Held::Server(packet) => HeldMessage {
                actor: 0,
                msg_seq: 0,
                msg_id: String::new(),
                payload: packet.payload.clone(),
                route: Some(packet.route.to_header()),
                order: 0,
            },
        }
    }

    pub(crate) fn from_wire(held: HeldMessage) -> Held {
        match held.route {
            Some(header) => Held::Server(RoutePacket {
                route: Route::from_header(header),
                payload: held.payload,
            }),
            None => Held::Client {
                actor: held.actor,
                seq: u16::try_from(held.msg_seq).unwrap_or(0),
                packet: Packet::new(MsgId::from(held.msg_id.as_str()), held.payload),
                order: held.order,
            },
        }
    }
}

/// A session's moving state on the mesh.
pub(crate) fn session_to_wire(state: &SessionState) -> MovedSession {
    MovedSession {
        token: Bytes::copy_from_slice(&state.token.0),
        sent: state.sent,
        unacked: state.unacked.iter().map(frame_to_wire).collect(),
        received: state.received,
        acked: state.acked,
        capabilities: state.capabilities.0,
    }
}

/// A session's moving state from the mesh; `None` when it is malformed.
pub(crate) fn session_from_wire(moved: MovedSession) -> Option<SessionState> {
    let token = ResumeToken(moved.token.as_ref().try_into().ok()?);
    let unacked = moved
        .unacked
        .into_iter()
        .map(frame_from_wire)
        .collect::<Option<Vec<_>>>()?;
    Some(SessionState {
        token,
        sent: moved.sent,
        unacked,
        received: moved.received,
        acked: moved.acked,
        capabilities: Capabilities(moved.capabilities),
    })
}
