//! A live stage's mailbox, and the handle everyone outside the stage loop uses to reach it:
//! sessions (joins, client messages, disconnects), the mesh (server messages) and the host
//! (closing). What goes into the mailbox ([`StageMsg`]) is the stage's own business.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use playhouse_mesh::RoutePacket;
use playhouse_protocol::{ErrorCode, MsgId, Packet};
use tokio::sync::{mpsc, oneshot};

use crate::session::handle::{SessionHandle, SessionId};

/// A message to a stage's mailbox.
#[derive(Debug)]
pub(super) enum StageMsg {
    /// A client authenticates into the stage.
    Join {
        session: SessionHandle,
        /// The authenticate reply id, e.g. `AuthenticateReply`.
        reply_id: MsgId,
        seq: u16,
        packet: Packet,
        done: oneshot::Sender<JoinOutcome>,
    },
    /// A message from a joined client.
    Client {
        actor: u64,
        session: SessionId,
        seq: u16,
        packet: Packet,
        /// When it entered the mailbox (for `playhouse_stage_mailbox_wait_seconds`).
        queued: tokio::time::Instant,
        /// A relayed client's message: its number from the home (`RelayToStage.order`),
        /// the order the stage takes them in. 0: a client connected here.
        order: u64,
    },
    /// A joined client's connection ended.
    Disconnected { actor: u64, session: SessionId },
    /// A message from another server (`Stage::on_dispatch_server`).
    Server { packet: RoutePacket },
    /// The server is stopping, or another server asked the stage to close. With a
    /// `farewell`, each actor's connection is closed with that code (`@Close@`) instead of
    /// staying open for another login.
    Close { farewell: Option<ErrorCode> },
    /// Move to Play server `target` (see `runner::moving`); answered once the stage runs
    /// there, or with why it could not move (it then goes on here).
    Move {
        target: String,
        done: oneshot::Sender<Result<(), ErrorCode>>,
    },
}

/// The result of a join, for the session's state machine.
#[derive(Debug)]
pub(crate) enum JoinOutcome {
    /// The client is actor `actor` of the stage now.
    Joined { actor: u64 },
    /// The stage or the actor refused the client (it was answered already).
    Rejected,
    /// The stage closed before it handled the join: the session may try again (a default
    /// stage type then creates a fresh stage under the same id).
    StageGone { packet: Packet },
}

/// How a stage is created: the creating packet and, for creators that wait, a channel for
/// `on_create`'s answer.
#[derive(Debug)]
pub(crate) struct CreateRequest {
    pub(crate) packet: Packet,
    pub(crate) done: Option<oneshot::Sender<Result<Packet, ErrorCode>>>,
}

/// A message the stage did not take, handed back: the stage has closed.
#[derive(Debug)]
pub(crate) struct Undelivered(pub(crate) Packet);

/// Why a mesh message was not queued, with the message handed back (boxed: refusals are
/// rare, and the `Ok` path stays small).
#[derive(Debug)]
pub(crate) enum NotQueued {
    /// The mailbox is full.
    Busy(Box<RoutePacket>),
    /// The stage has closed.
    Gone(Box<RoutePacket>),
}

/// A live stage's mailbox.
#[derive(Clone, Debug)]
pub(crate) struct StageHandle {
    stage_id: i64,
    stage_type: Arc<str>,
    tx: mpsc::Sender<StageMsg>,
    /// When the stage was registered here (the admin page shows its age).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    created: tokio::time::Instant,
    /// What the stage's loop publishes about itself.
    stats: Arc<StageStats>,
}

/// What a stage's loop publishes for the admin page: its actors and its game loop's
/// overruns. Written where they change (a join, a leave, an overrun), never per message.
#[derive(Debug, Default)]
pub(crate) struct StageStats {
    actors: AtomicI64,
    tick_overruns: AtomicU64,
}

impl StageStats {
    /// Actors in the stage.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn actors(&self) -> u64 {
        u64::try_from(self.actors.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Game-loop ticks that took longer than the timestep, or were skipped after a stall.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn tick_overruns(&self) -> u64 {
        self.tick_overruns.load(Ordering::Relaxed)
    }

    pub(super) fn actors_joined(&self) {
        self.actors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn actors_left(&self, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.actors.fetch_sub(n, Ordering::Relaxed);
    }

    pub(super) fn tick_overrun(&self) {
        self.tick_overruns.fetch_add(1, Ordering::Relaxed);
    }
}

impl StageHandle {
    pub(super) fn new(stage_id: i64, stage_type: Arc<str>, tx: mpsc::Sender<StageMsg>) -> Self {
        StageHandle {
            stage_id,
            stage_type,
            tx,
            created: tokio::time::Instant::now(),
            stats: Arc::default(),
        }
    }

    /// What the stage's loop publishes about itself.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn stats(&self) -> &StageStats {
        &self.stats
    }

    /// The same, for the stage's loop to write to.
    pub(super) fn shared_stats(&self) -> Arc<StageStats> {
        Arc::clone(&self.stats)
    }

    /// When the stage was registered here.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn created(&self) -> tokio::time::Instant {
        self.created
    }

    /// The stage's id.
    pub(crate) fn stage_id(&self) -> i64 {
        self.stage_id
    }

    /// The stage's type, as registered.
    pub(crate) fn stage_type(&self) -> &str {
        &self.stage_type
    }

    /// Queues a client's authentication as a join, waiting while the mailbox is full; where
    /// the stage answers, or `None` when it has closed.
    pub(crate) async fn join(
        &self,
        session: SessionHandle,
        reply_id: MsgId,
        seq: u16,
        packet: Packet,
    ) -> Option<oneshot::Receiver<JoinOutcome>> {
        let (done, outcome) = oneshot::channel();
        let join = StageMsg::Join {
            session,
            reply_id,
            seq,
            packet,
            done,
        };
        self.tx.send(join).await.ok().map(|()| outcome)
    }

    /// Queues a message from actor `actor`'s client, waiting while the mailbox is full.
    pub(crate) async fn client(
        &self,
        actor: u64,
        session: SessionId,
        seq: u16,
        packet: Packet,
    ) -> Result<(), Undelivered> {
        let Ok(permit) = self.tx.reserve().await else {
            return Err(Undelivered(packet));
        };
        permit.send(StageMsg::Client {
            actor,
            session,
            seq,
            packet,
            queued: tokio::time::Instant::now(),
            order: 0,
        });
        Ok(())
    }

    /// Queues a message from actor `actor`'s relayed client without waiting (the mesh never
    /// parks on a stage): `STAGE_BUSY` when the mailbox is full, `STAGE_NOT_FOUND` when the
    /// stage has closed. `order` is the message's number from the home.
    pub(crate) fn try_client(
        &self,
        actor: u64,
        session: SessionId,
        seq: u16,
        packet: Packet,
        order: u64,
    ) -> Result<(), ErrorCode> {
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(StageMsg::Client {
                    actor,
                    session,
                    seq,
                    packet,
                    queued: tokio::time::Instant::now(),
                    order,
                });
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(ErrorCode::STAGE_BUSY),
            Err(mpsc::error::TrySendError::Closed(())) => Err(ErrorCode::STAGE_NOT_FOUND),
        }
    }

    /// Tells the stage that actor `actor`'s connection ended (nothing, if it has closed).
    pub(crate) async fn disconnected(&self, actor: u64, session: SessionId) {
        let _ = self
            .tx
            .send(StageMsg::Disconnected { actor, session })
            .await;
    }

    /// Queues a message from another server without waiting: the mesh never parks on a stage.
    pub(crate) fn try_server(&self, packet: RoutePacket) -> Result<(), NotQueued> {
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(StageMsg::Server { packet });
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(NotQueued::Busy(Box::new(packet))),
            Err(mpsc::error::TrySendError::Closed(())) => Err(NotQueued::Gone(Box::new(packet))),
        }
    }

    /// Asks the stage to close without waiting: `Ok(false)` when it has closed already;
    /// [`ErrorCode::STAGE_BUSY`] when its mailbox is full.
    pub(crate) fn try_close(&self) -> Result<bool, ErrorCode> {
        match self.tx.try_send(StageMsg::Close { farewell: None }) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(_)) => Err(ErrorCode::STAGE_BUSY),
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(false),
        }
    }

    /// Asks the stage to close, waiting while the mailbox is full; with a `farewell`, its
    /// clients' connections are closed with that code.
    pub(super) async fn close(&self, farewell: Option<ErrorCode>) {
        let _ = self.tx.send(StageMsg::Close { farewell }).await;
    }

    /// Asks the stage to move to Play server `target`, waiting while the mailbox is full; how
    /// it went (`Err(STAGE_NOT_FOUND)`: the stage closed first).
    pub(crate) async fn move_to(&self, target: &str) -> Result<(), ErrorCode> {
        let (done, outcome) = oneshot::channel();
        let msg = StageMsg::Move {
            target: target.to_owned(),
            done,
        };
        if self.tx.send(msg).await.is_err() {
            return Err(ErrorCode::STAGE_NOT_FOUND);
        }
        outcome.await.unwrap_or(Err(ErrorCode::STAGE_NOT_FOUND))
    }

    /// Messages waiting in the mailbox right now.
    pub(crate) fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Whether both handles reach the same stage incarnation.
    #[cfg(test)]
    pub(crate) fn same_stage(&self, other: &StageHandle) -> bool {
        self.tx.same_channel(&other.tx)
    }
}
