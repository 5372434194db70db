//! The API's handle on one connection task, and what the task starts from.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use playhouse_protocol::Capabilities;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::command::Command;
use super::event_loop::run;
use crate::callbacks::Callbacks;
use crate::resume::{BoxIo, ResumeSetup};

/// Commands the API may queue before the task catches up.
const COMMAND_CAPACITY: usize = 4096;

/// Connection state the API reads without asking the task.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    /// Cleared by the task as it ends.
    pub(crate) alive: AtomicBool,
    pub(crate) authenticated: AtomicBool,
    /// Requests written and awaiting a reply.
    pub(crate) pending: AtomicUsize,
}

/// What a connection task starts from.
#[derive(Debug)]
pub(crate) struct Setup {
    /// The stage every frame carries; shared with the connector, which reports it.
    pub(crate) stage_id: Arc<AtomicI64>,
    pub(crate) stage_type: Arc<str>,
    pub(crate) max_packet_size: usize,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    /// Bounds the flush of queued messages on a client-initiated close.
    pub(crate) close_timeout: Duration,
    /// Protocol extensions asked for in a hello sent before anything else (none: no hello).
    pub(crate) capabilities: Capabilities,
    pub(crate) callbacks: Arc<Callbacks>,
    /// How to dial again for a resumable session (`None`: sessions are not resumable).
    pub(crate) resume: Option<ResumeSetup>,
}

/// The API's handle on one connection task.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) state: Arc<LinkState>,
    close: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Link {
    /// Starts the task that owns `stream`.
    pub(crate) fn spawn(stream: BoxIo, setup: Setup, runtime: &Handle) -> Link {
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (close, close_rx) = oneshot::channel();
        let state = Arc::new(LinkState::default());
        state.alive.store(true, Ordering::SeqCst);
        let task = runtime.spawn(run(stream, setup, Arc::clone(&state), command_rx, close_rx));
        Link {
            commands,
            state,
            close: Mutex::new(Some(close)),
            task: Mutex::new(Some(task)),
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.state.alive.load(Ordering::SeqCst)
    }

    /// Asks the task to close the connection and waits until it has ended.
    pub(crate) async fn close(&self) {
        let close = self
            .close
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(close) = close {
            let _ = close.send(());
        }
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "connector connection task failed");
        }
    }
}
