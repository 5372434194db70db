//! The API's handle on one connection task: its command queue, its published status, and
//! how to close it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::command::Command;
use super::event_loop::run;
use super::task::{Setup, TaskStatus};
use crate::resume::BoxIo;

/// Commands the API may queue before the task catches up.
const COMMAND_CAPACITY: usize = 4096;

/// The API's handle on one connection task.
#[derive(Debug)]
pub(crate) struct ConnectionHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) status: Arc<TaskStatus>,
    close: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ConnectionHandle {
    /// Starts the task that owns `stream`.
    pub(crate) fn spawn(stream: BoxIo, setup: Setup, runtime: &Handle) -> ConnectionHandle {
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (close, close_rx) = oneshot::channel();
        let status = Arc::new(TaskStatus::default());
        status.alive.store(true, Ordering::SeqCst);
        *status
            .endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = setup.endpoint.clone();
        let task = runtime.spawn(run(
            stream,
            setup,
            Arc::clone(&status),
            command_rx,
            close_rx,
        ));
        ConnectionHandle {
            commands,
            status,
            close: Mutex::new(Some(close)),
            task: Mutex::new(Some(task)),
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.status.alive.load(Ordering::SeqCst)
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
