//! Frames on their way to one peer's connection. Senders queue a frame and return; the peer's
//! task hands what is queued to the crate's writer a batch at a time, one scheduler turn after
//! the first frame arrived.
//!
//! Why not write into the crate's queue directly: its writer task wakes on the first frame
//! and, scheduled right after the task that sent it, writes that one frame with a system call
//! of its own. Under load that made a `sendto` per frame, most of a mesh request's cost (the
//! raw ping-pong writes dozens of frames per call). Waiting one turn lets every task that is
//! ready queue its frame first, so the crate's writer finds a batch and writes it at once;
//! when the mesh is idle, the turn costs one yield.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use zeromq::ZmqMessage;

use crate::link::LinkError;
use crate::link::peers::lock;

/// Most frames queued for one peer; past it a send is refused (the crate's own queue per
/// connection, behind this one, holds 100,000 more).
pub(super) const OUTBOX_CAPACITY: usize = 100_000;

/// A peer's frames not yet handed to its connection, and whether it has one.
#[derive(Default)]
pub(super) struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<ZmqMessage>,
    /// A connection takes the frames: senders may queue.
    open: bool,
}

impl Outbox {
    /// Queues `message` for `target`: [`LinkError::NotConnected`] while no connection takes
    /// frames, [`LinkError::Busy`] when [`OUTBOX_CAPACITY`] are waiting.
    pub(super) fn push(&self, target: &str, message: ZmqMessage) -> Result<(), LinkError> {
        let first = {
            let mut queue = lock(&self.queue);
            if !queue.open {
                return Err(LinkError::NotConnected(target.to_owned()));
            }
            if queue.frames.len() >= OUTBOX_CAPACITY {
                return Err(LinkError::Busy(target.to_owned()));
            }
            queue.frames.push_back(message);
            queue.frames.len() == 1
        };
        if first {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Whether a connection takes frames.
    pub(super) fn is_open(&self) -> bool {
        lock(&self.queue).open
    }

    /// A connection is up: senders may queue.
    pub(super) fn open(&self) {
        lock(&self.queue).open = true;
    }

    /// The connection is gone: senders are refused from now on; returns the frames it did
    /// not take.
    pub(super) fn close(&self) -> VecDeque<ZmqMessage> {
        let mut queue = lock(&self.queue);
        queue.open = false;
        std::mem::take(&mut queue.frames)
    }

    /// Returns one scheduler turn after a frame was queued (at once if one is waiting).
    pub(super) async fn ready(&self) {
        self.ready.notified().await;
        tokio::task::yield_now().await;
    }

    /// Swaps what is queued (oldest first) into `batch`, which must be empty: the two buffers
    /// trade places, so neither is allocated again.
    pub(super) fn take(&self, batch: &mut VecDeque<ZmqMessage>) {
        debug_assert!(batch.is_empty());
        std::mem::swap(&mut lock(&self.queue).frames, batch);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    fn frame(n: u8) -> ZmqMessage {
        ZmqMessage::from(Bytes::from(vec![n]))
    }

    #[tokio::test]
    async fn frames_queue_in_order_only_while_open_and_up_to_the_bound() {
        let outbox = Outbox::default();
        assert!(matches!(
            outbox.push("p", frame(0)),
            Err(LinkError::NotConnected(_))
        ));
        outbox.open();
        assert!(outbox.is_open());
        for n in 1..=3 {
            outbox.push("p", frame(n)).unwrap();
        }
        // The first frame woke the writer: `ready` returns without another push.
        tokio::time::timeout(std::time::Duration::from_secs(5), outbox.ready())
            .await
            .expect("ready after a push");
        let mut batch = VecDeque::new();
        outbox.take(&mut batch);
        let got: Vec<u8> = batch.iter().map(|m| m.get(0).unwrap()[0]).collect();
        assert_eq!(got, [1, 2, 3]);

        batch.clear();
        for n in 0..OUTBOX_CAPACITY {
            outbox.push("p", frame(n as u8)).unwrap();
        }
        assert!(matches!(
            outbox.push("p", frame(9)),
            Err(LinkError::Busy(_))
        ));
        let left = outbox.close();
        assert_eq!(left.len(), OUTBOX_CAPACITY);
        assert!(!outbox.is_open());
        assert!(matches!(
            outbox.push("p", frame(0)),
            Err(LinkError::NotConnected(_))
        ));
    }

    /// The point of the outbox: frames queued by tasks that are ready together leave as one
    /// batch. On one worker, the writer woken by the first frame would run right after that
    /// frame's task (tokio runs a task woken by the running one next); the turn it waits lets
    /// the other nine queue theirs first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn frames_from_tasks_ready_together_leave_as_one_batch() {
        let outbox = Arc::new(Outbox::default());
        outbox.open();
        let batch = tokio::spawn({
            let outbox = Arc::clone(&outbox);
            async move {
                let writer = tokio::spawn({
                    let outbox = Arc::clone(&outbox);
                    async move {
                        outbox.ready().await;
                        let mut batch = VecDeque::new();
                        outbox.take(&mut batch);
                        batch.len()
                    }
                });
                for n in 0..10 {
                    let outbox = Arc::clone(&outbox);
                    tokio::spawn(async move { outbox.push("p", frame(n)).unwrap() });
                }
                writer.await.unwrap()
            }
        });
        assert_eq!(batch.await.unwrap(), 10);
    }
}
