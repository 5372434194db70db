//! Live stages by id.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use playhouse_protocol::ErrorCode;

use super::env::StageEnv;
use super::kind::StageKind;
use super::mailbox::{CreateRequest, StageHandle};

struct Entry {
    incarnation: u64,
    handle: StageHandle,
    /// Stops the stage's task when a stop gives up on it.
    abort: tokio::task::AbortHandle,
}

/// Live stages by id.
pub(crate) struct StageRegistry {
    stages: Mutex<HashMap<i64, Entry>>,
    next_incarnation: AtomicU64,
    next_stage_id: AtomicI64,
}

impl fmt::Debug for StageRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageRegistry")
            .field("stages", &self.len())
            .finish()
    }
}

impl Default for StageRegistry {
    fn default() -> Self {
        StageRegistry {
            stages: Mutex::new(HashMap::new()),
            next_incarnation: AtomicU64::new(1),
            // Generated ids start high so they do not collide with small hand-picked ids.
            next_stage_id: AtomicI64::new(1 << 32),
        }
    }
}

impl StageRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        // A panic elsewhere never leaves the map half-updated (every update is one call).
        self.stages.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, stage_id: i64) -> Option<StageHandle> {
        self.lock().get(&stage_id).map(|e| e.handle.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every live stage, by id (a fixed order: a stop closes them the same way every run).
    pub(crate) fn all(&self) -> Vec<StageHandle> {
        let mut all: Vec<StageHandle> = self.lock().values().map(|e| e.handle.clone()).collect();
        all.sort_unstable_by_key(|stage| stage.stage_id);
        all
    }

    /// Messages waiting in every stage mailbox right now.
    pub(crate) fn queued(&self) -> usize {
        self.lock()
            .values()
            .map(|e| e.handle.tx.max_capacity() - e.handle.tx.capacity())
            .sum()
    }

    /// A fresh id for a stage requested with id 0.
    pub(crate) fn generate_id(&self) -> i64 {
        loop {
            let id = self.next_stage_id.fetch_add(1, Ordering::Relaxed);
            if !self.lock().contains_key(&id) {
                return id;
            }
        }
    }

    /// Returns the live stage `stage_id`, or spawns it from `kind` (the bool tells which);
    /// [`ErrorCode::STAGE_LIMIT_REACHED`] when it would be one stage more than `max_stages`.
    pub(crate) fn get_or_spawn(
        &self,
        env: &Arc<StageEnv>,
        stage_id: i64,
        kind: &dyn StageKind,
        create: impl FnOnce() -> CreateRequest,
    ) -> Result<(StageHandle, bool), ErrorCode> {
        let mut stages = self.lock();
        if let Some(entry) = stages.get(&stage_id) {
            return Ok((entry.handle.clone(), false));
        }
        if stages.len() >= env.max_stages {
            env.metrics.stages_refused.fetch_add(1, Ordering::Relaxed);
            return Err(ErrorCode::STAGE_LIMIT_REACHED);
        }
        let incarnation = self.next_incarnation.fetch_add(1, Ordering::Relaxed);
        env.metrics.stages_created.fetch_add(1, Ordering::Relaxed);
        let (tx, abort) = kind.spawn(env, stage_id, incarnation, create());
        let handle = StageHandle { stage_id, tx };
        stages.insert(
            stage_id,
            Entry {
                incarnation,
                handle: handle.clone(),
                abort,
            },
        );
        Ok((handle, true))
    }

    /// Aborts the tasks of every stage still registered (a stop that gave up waiting), and
    /// returns how many there were.
    pub(crate) fn abort_all(&self) -> usize {
        let mut stages = self.lock();
        let count = stages.len();
        for entry in stages.values() {
            entry.abort.abort();
        }
        stages.clear();
        count
    }

    /// Removes a stage when its loop ends, unless the id already belongs to a newer one.
    pub(crate) fn remove(&self, stage_id: i64, incarnation: u64) {
        let mut stages = self.lock();
        if stages
            .get(&stage_id)
            .is_some_and(|e| e.incarnation == incarnation)
        {
            stages.remove(&stage_id);
        }
    }
}
