//! The stage's view of a client connection: a bounded outbound queue that never blocks the
//! stage, plus a kill switch for slow consumers.

use std::sync::Arc;

use playhouse_protocol::{ErrorCode, ServerFrame};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, Rejection};

/// A connection id, unique within one server.
pub(crate) type SessionId = u64;

/// What a stage can ask of a connection.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Write a frame.
    Frame(ServerFrame),
    /// The actor left the stage (or the stage closed): requests now get `code`.
    Detached(ErrorCode),
}

/// A cheap handle to one client connection's outbound queue.
#[derive(Clone, Debug)]
pub(crate) struct SessionHandle {
    pub(crate) id: SessionId,
    tx: mpsc::Sender<Outbound>,
    kill: CancellationToken,
    metrics: Arc<Metrics>,
}

impl SessionHandle {
    pub(crate) fn new(
        id: SessionId,
        tx: mpsc::Sender<Outbound>,
        kill: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Self {
        SessionHandle {
            id,
            tx,
            kill,
            metrics,
        }
    }

    /// Queues a frame without waiting. A full queue means the client does not read fast
    /// enough: the connection is closed rather than letting memory or the stage suffer.
    pub(crate) fn send(&self, frame: ServerFrame) {
        self.push(Outbound::Frame(frame));
    }

    pub(crate) fn push(&self, outbound: Outbound) {
        match self.tx.try_send(outbound) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.kill.is_cancelled() {
                    tracing::warn!(
                        session = self.id,
                        "slow consumer: outbound queue full, closing"
                    );
                    self.metrics.reject(Rejection::SlowConsumer);
                    self.kill.cancel();
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Closes the connection (e.g. the account logged in again elsewhere).
    pub(crate) fn close(&self) {
        self.kill.cancel();
    }
}
