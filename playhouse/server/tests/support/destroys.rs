//! Counts the destroy callbacks a test's stages and actors run, so a test can see when the
//! runner removed them.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Destroy counts, shared between a test and the stages and actors it builds.
#[derive(Debug, Default)]
pub struct Destroys {
    stages: AtomicUsize,
    actors: AtomicUsize,
    /// Woken on every actor destroy.
    actor_gone: Notify,
    /// Woken on every stage destroy.
    stage_gone: Notify,
}

impl Destroys {
    /// Call from `Stage::on_destroy`.
    pub fn stage_destroyed(&self) {
        self.stages.fetch_add(1, Ordering::SeqCst);
        self.stage_gone.notify_one();
    }

    /// Call from `Actor::on_destroy`.
    pub fn actor_destroyed(&self) {
        self.actors.fetch_add(1, Ordering::SeqCst);
        self.actor_gone.notify_one();
    }

    /// Stages destroyed so far.
    pub fn stages(&self) -> usize {
        self.stages.load(Ordering::SeqCst)
    }

    /// Actors destroyed so far.
    pub fn actors(&self) -> usize {
        self.actors.load(Ordering::SeqCst)
    }

    /// Waits for the next actor destroy (or returns at once for one nobody waited for yet).
    pub async fn actor_gone(&self) {
        self.actor_gone.notified().await;
    }

    /// Waits for the next stage destroy (or returns at once for one nobody waited for yet).
    pub async fn stage_gone(&self) {
        self.stage_gone.notified().await;
    }
}
