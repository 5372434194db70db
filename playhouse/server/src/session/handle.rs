//! The stage's view of a client connection: a bounded outbound queue that never blocks the
//! stage, plus a kill switch for slow consumers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use playhouse_protocol::{ErrorCode, ServerFrame, SharedFrame};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::moved_state::SessionState;
use crate::limits::throttled;
use crate::metrics::{Metrics, Rejection};

/// A connection id, unique within one server.
pub(crate) type SessionId = u64;

/// What a stage can ask of a connection.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Write a frame.
    Frame(ServerFrame),
    /// Write a frame that other connections write too (a broadcast): encoded once per kind
    /// of connection (see [`SharedFrame`]).
    Shared(Arc<SharedFrame>),
    /// The actor left the stage (or the stage closed): requests now get `code`.
    Detached(ErrorCode),
    /// The server closes the connection on purpose: say why (`@Close@` with `code`, to a
    /// client that sent a hello), flush, close. A resumable session ends with it.
    Close(ErrorCode),
    /// The stage is moving to another server: stop reading, hand over the resumable state
    /// (`None`: not resumable), and wait for [`Outbound::Moved`] or [`Outbound::Thaw`].
    Freeze(oneshot::Sender<Option<SessionState>>),
    /// The stage moved: tell the client where to resume (the target's endpoints, by
    /// transport name), and end here.
    Moved(Arc<BTreeMap<String, String>>),
    /// The move failed: read again.
    Thaw,
    /// The stage moved to Play server `.0` and this connection, not resumable, stays here:
    /// its messages are relayed there over the mesh from now (see `session::relay`).
    Relay(Arc<str>),
}

/// The bytes a queued frame accounts for: what it takes on the wire, uncompressed.
pub(crate) fn frame_cost(frame: &ServerFrame) -> usize {
    frame.wire_len()
}

/// Bytes queued for one connection and not yet handed to its writer, shared by the session
/// (which subtracts what it takes) and its handles (which add what they queue).
#[derive(Debug)]
pub(crate) struct QueuedBytes {
    queued: AtomicUsize,
    limit: usize,
    /// Where the server's `playhouse_outbound_queued_bytes` is kept (none in unit tests).
    metrics: Option<Arc<Metrics>>,
}

impl QueuedBytes {
    pub(crate) fn new(limit: usize) -> Self {
        QueuedBytes {
            queued: AtomicUsize::new(0),
            limit,
            metrics: None,
        }
    }

    /// Counts the queue in the server's `playhouse_outbound_queued_bytes` too.
    pub(crate) fn counted(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn account(&self, delta: i64) {
        if let Some(metrics) = &self.metrics {
            metrics.outbound_queued(delta);
        }
    }

    /// Reserves `cost` bytes; `false` when that would pass the limit (a lone frame larger
    /// than the limit still fits into an empty queue).
    fn reserve(&self, cost: usize) -> bool {
        let before = self.queued.fetch_add(cost, Ordering::AcqRel);
        if before > 0 && before + cost > self.limit {
            self.queued.fetch_sub(cost, Ordering::AcqRel);
            return false;
        }
        self.account(i64::try_from(cost).unwrap_or(i64::MAX));
        true
    }

    /// Gives back what a dequeued frame reserved.
    pub(crate) fn release(&self, frame: &ServerFrame) {
        let cost = frame_cost(frame);
        self.queued.fetch_sub(cost, Ordering::AcqRel);
        self.account(-i64::try_from(cost).unwrap_or(i64::MAX));
    }
}

impl Drop for QueuedBytes {
    /// Frames still queued when the session ends are dropped with it: uncount them.
    fn drop(&mut self) {
        let left = *self.queued.get_mut();
        self.account(-i64::try_from(left).unwrap_or(i64::MAX));
    }
}

/// A cheap handle to one client connection's outbound queue.
#[derive(Clone, Debug)]
pub(crate) struct SessionHandle {
    pub(crate) id: SessionId,
    tx: mpsc::Sender<Outbound>,
    kill: CancellationToken,
    metrics: Arc<Metrics>,
    queued: Arc<QueuedBytes>,
    /// Set on a relayed player's stand-in at the stage's server: the id of the server that
    /// holds the connection (the session's id there is `id` without [`RELAYED`]).
    home: Option<Arc<str>>,
}

/// The bit set in the id of a relayed session's stand-in: ids of local sessions never have
/// it, so a stand-in's id is its session's id at home with this bit, at every server.
pub(crate) const RELAYED: SessionId = 1 << 63;

impl SessionHandle {
    pub(crate) fn new(
        id: SessionId,
        tx: mpsc::Sender<Outbound>,
        kill: CancellationToken,
        metrics: Arc<Metrics>,
        queued: Arc<QueuedBytes>,
    ) -> Self {
        SessionHandle {
            id,
            tx,
            kill,
            metrics,
            queued,
            home: None,
        }
    }

    /// Marks a handle as the stand-in for session `self.id` of server `home`.
    pub(crate) fn relayed_from(mut self, home: Arc<str>) -> Self {
        self.home = Some(home);
        self
    }

    /// For a relayed player's stand-in: the server holding the connection, and the session's
    /// id there.
    pub(crate) fn home(&self) -> Option<(&Arc<str>, SessionId)> {
        Some((self.home.as_ref()?, self.id & !RELAYED))
    }

    /// Queues a frame without waiting. A full queue (in frames or in bytes) means the client
    /// does not read fast enough: the connection is closed rather than letting memory or the
    /// stage suffer.
    pub(crate) fn send(&self, frame: ServerFrame) {
        self.queue(frame_cost(&frame), Outbound::Frame(frame));
    }

    /// Queues a frame other connections are sent too (a broadcast).
    pub(crate) fn send_shared(&self, shared: Arc<SharedFrame>) {
        self.queue(frame_cost(shared.frame()), Outbound::Shared(shared));
    }

    /// Queues a frame of `cost` bytes, unless the queue is over its limits (then the client
    /// is a slow consumer, closed).
    fn queue(&self, cost: usize, outbound: Outbound) {
        if !self.queued.reserve(cost) {
            self.slow_consumer("outbound bytes over the limit");
            return;
        }
        if let Err(error) = self.tx.try_send(outbound) {
            self.queued.queued.fetch_sub(cost, Ordering::AcqRel);
            if matches!(error, mpsc::error::TrySendError::Full(_)) {
                self.slow_consumer("outbound queue full");
            }
        }
    }

    pub(crate) fn push(&self, outbound: Outbound) {
        match outbound {
            Outbound::Frame(frame) => return self.send(frame),
            Outbound::Shared(shared) => return self.send_shared(shared),
            _ => {}
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(outbound) {
            self.slow_consumer("outbound queue full");
        }
    }

    fn slow_consumer(&self, why: &'static str) {
        if !self.kill.is_cancelled() {
            throttled!(warn, session = self.id, why, "slow consumer, closing");
            self.metrics.reject(Rejection::SlowConsumer);
            self.kill.cancel();
        }
    }

    /// Freezes the session for a move of its stage: where its resumable state arrives
    /// (`None`, or a dropped sender: not resumable, or gone).
    pub(crate) fn freeze(&self) -> oneshot::Receiver<Option<SessionState>> {
        let (tx, rx) = oneshot::channel();
        self.push(Outbound::Freeze(tx));
        rx
    }

    /// Closes the connection (e.g. the account logged in again elsewhere).
    pub(crate) fn close(&self) {
        self.kill.cancel();
    }
}
