//! Live stages by id.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use playhouse_protocol::ErrorCode;

use tokio::sync::mpsc;

use super::handle::{StageHandle, StageMsg, StageStats};
use crate::limits::StagePermit;

struct Entry {
    incarnation: u64,
    handle: StageHandle,
    /// Stops the stage's task when a stop gives up on it.
    abort: tokio::task::AbortHandle,
    /// The stage's place in its creator's source quota, freed when the entry goes.
    _permit: Option<StagePermit>,
}

/// Live stages by id, and where the ones that moved away went.
pub(super) struct StageRegistry {
    stages: Mutex<HashMap<i64, Entry>>,
    /// Stages that moved to another server: its id, for the messages that still come here.
    moved: Mutex<HashMap<i64, Arc<str>>>,
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
            moved: Mutex::new(HashMap::new()),
            next_incarnation: AtomicU64::new(1),
            next_stage_id: AtomicI64::new(first_generated_id()),
        }
    }
}

/// Where this server's generated stage ids start: at 2^32 (above any id a game picks by hand)
/// plus a random multiple of 2^32, so ids that different servers generate do not collide
/// and a stage can move between them keeping its id.
fn first_generated_id() -> i64 {
    let mut bytes = [0u8; 4];
    let block = match getrandom::fill(&mut bytes) {
        Ok(()) => i64::from(u32::from_le_bytes(bytes) >> 8),
        Err(_) => 0,
    };
    (1 + block) << 32
}

impl StageRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        // A panic elsewhere never leaves the map half-updated (every update is one call).
        self.stages.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that stage `stage_id` moved to server `target`.
    pub(super) fn moved_away(&self, stage_id: i64, target: &str) {
        let mut moved = self.moved.lock().unwrap_or_else(|e| e.into_inner());
        moved.insert(stage_id, Arc::from(target));
    }

    /// Where stage `stage_id` went, if it moved away (and no stage of that id lives here).
    pub(super) fn moved_to(&self, stage_id: i64) -> Option<Arc<str>> {
        let moved = self.moved.lock().unwrap_or_else(|e| e.into_inner());
        moved.get(&stage_id).cloned()
    }

    pub(super) fn get(&self, stage_id: i64) -> Option<StageHandle> {
        self.lock().get(&stage_id).map(|e| e.handle.clone())
    }

    /// The stats the loop of stage `stage_id`'s `incarnation` publishes, if it is registered.
    pub(super) fn stats(&self, stage_id: i64, incarnation: u64) -> Option<Arc<StageStats>> {
        let stages = self.lock();
        let entry = stages.get(&stage_id)?;
        (entry.incarnation == incarnation).then(|| entry.handle.shared_stats())
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every live stage, by id (a fixed order: a stop closes them the same way every run).
    pub(super) fn all(&self) -> Vec<StageHandle> {
        let mut all: Vec<StageHandle> = self.lock().values().map(|e| e.handle.clone()).collect();
        all.sort_unstable_by_key(StageHandle::stage_id);
        all
    }

    /// Messages waiting in every stage mailbox right now.
    pub(super) fn queued(&self) -> usize {
        self.lock().values().map(|e| e.handle.queued()).sum()
    }

    /// A fresh id for a stage requested with id 0.
    pub(super) fn generate_id(&self) -> i64 {
        loop {
            let id = self.next_stage_id.fetch_add(1, Ordering::Relaxed);
            if !self.lock().contains_key(&id) {
                return id;
            }
        }
    }

    /// Returns the live stage `stage_id`, or reserves the id for a new stage started by
    /// `spawn` (the bool tells which); [`ErrorCode::STAGE_LIMIT_REACHED`] when it would be one
    /// stage more than `max_stages`. A new stage keeps `permit` until it is removed.
    ///
    /// The reservation is the new stage's mailbox, registered before the lock is released: a
    /// concurrent call for the same id gets that mailbox (its messages queue behind the
    /// creation) and never creates a second stage. `spawn` is given the new incarnation and
    /// must run no user code (it runs under the lock): the user's factory runs afterwards on
    /// the stage's own task, so a slow factory holds up no other stage; a stage whose factory
    /// or `on_create` fails frees its id ([`StageRegistry::remove`]).
    pub(super) fn get_or_spawn(
        &self,
        stage_id: i64,
        stage_type: &Arc<str>,
        max_stages: usize,
        permit: Option<StagePermit>,
        spawn: impl FnOnce(u64) -> (mpsc::Sender<StageMsg>, tokio::task::AbortHandle),
    ) -> Result<(StageHandle, bool), ErrorCode> {
        let mut stages = self.lock();
        if let Some(entry) = stages.get(&stage_id) {
            return Ok((entry.handle.clone(), false));
        }
        if stages.len() >= max_stages {
            return Err(ErrorCode::STAGE_LIMIT_REACHED);
        }
        let incarnation = self.next_incarnation.fetch_add(1, Ordering::Relaxed);
        let (tx, abort) = spawn(incarnation);
        let handle = StageHandle::new(stage_id, Arc::clone(stage_type), tx);
        stages.insert(
            stage_id,
            Entry {
                incarnation,
                handle: handle.clone(),
                abort,
                _permit: permit,
            },
        );
        // A stage of this id lives here again (it moved back, or a new one).
        let mut moved = self.moved.lock().unwrap_or_else(|e| e.into_inner());
        moved.remove(&stage_id);
        Ok((handle, true))
    }

    /// Aborts the tasks of every stage still registered (a stop that gave up waiting), and
    /// returns how many there were.
    pub(super) fn abort_all(&self) -> usize {
        let mut stages = self.lock();
        let count = stages.len();
        for entry in stages.values() {
            entry.abort.abort();
        }
        stages.clear();
        count
    }

    /// Removes a stage when its loop ends, unless the id already belongs to a newer one.
    pub(super) fn remove(&self, stage_id: i64, incarnation: u64) {
        let mut stages = self.lock();
        if stages
            .get(&stage_id)
            .is_some_and(|e| e.incarnation == incarnation)
        {
            stages.remove(&stage_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Barrier, mpsc as std_mpsc};
    use std::time::Duration;

    use playhouse_protocol::Packet;
    use tokio::sync::oneshot;

    use std::sync::Arc;

    use super::*;
    use crate::stage::context::StageInit;
    use crate::stage::env::StageEnv;
    use crate::stage::handle::CreateRequest;
    use crate::stage::spawner::{StageSpawner as StageKind, TypedSpawner};
    use crate::testing::{EchoActor, EchoStage};

    fn kind(
        factory: impl Fn(&StageInit<'_>) -> EchoStage + Send + Sync + 'static,
    ) -> TypedSpawner<EchoStage> {
        TypedSpawner::new("Room", factory, |_| EchoActor)
    }

    type Created = oneshot::Receiver<Result<Packet, ErrorCode>>;

    /// Gets or creates `stage_id`; the handle, whether it was created, and where `on_create`
    /// answers.
    fn get_or_create(
        env: &Arc<StageEnv>,
        kind: &dyn StageKind,
        stage_id: i64,
    ) -> (StageHandle, bool, Created) {
        let (done, created) = oneshot::channel();
        let create = CreateRequest {
            packet: Packet::empty("Create"),
            done: Some(done),
        };
        let spawn = |incarnation| kind.spawn(env, stage_id, incarnation, create);
        let (handle, new) = env
            .registry
            .get_or_spawn(stage_id, kind.name(), usize::MAX, None, spawn)
            .unwrap();
        (handle, new, created)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_get_or_create_runs_the_factory_once() {
        const CALLERS: usize = 8;
        let env = Arc::new(StageEnv::standalone("test"));
        let built = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&built);
        let kind: Arc<dyn StageKind> = Arc::new(kind(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            // A slow factory: the window for a second creation of the same id is wide open.
            std::thread::sleep(Duration::from_millis(50));
            EchoStage
        }));
        // Real threads, released at once: as concurrent as the machine allows.
        let start = Arc::new(Barrier::new(CALLERS));
        let runtime = tokio::runtime::Handle::current();
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (env, kind, start) = (Arc::clone(&env), Arc::clone(&kind), Arc::clone(&start));
                let runtime = runtime.clone();
                std::thread::spawn(move || {
                    let _runtime = runtime.enter();
                    start.wait();
                    get_or_create(&env, kind.as_ref(), 7)
                })
            })
            .collect();
        let results: Vec<_> = callers.into_iter().map(|t| t.join().unwrap()).collect();

        let creators: Vec<_> = results.iter().filter(|(_, new, _)| *new).collect();
        assert_eq!(creators.len(), 1, "exactly one caller creates the stage");
        let first = &results[0].0;
        assert!(
            results
                .iter()
                .all(|(handle, _, _)| handle.same_stage(first))
        );
        for (_, new, created) in results {
            if new {
                assert!(created.await.unwrap().is_ok());
            }
        }
        assert_eq!(built.load(Ordering::SeqCst), 1, "the factory ran once");
        assert_eq!(env.registry.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn a_slow_factory_does_not_hold_up_creating_another_stage() {
        let env = Arc::new(StageEnv::standalone("test"));
        let (entered_tx, entered) = std_mpsc::channel::<()>();
        let (release, released) = std_mpsc::channel::<()>();
        let gate = std::sync::Mutex::new((entered_tx, released));
        let kind: Arc<dyn StageKind> = Arc::new(kind(move |init| {
            if init.stage_id == 1 {
                let gate = gate.lock().unwrap();
                let _ = gate.0.send(());
                // Blocks until the test lets it go (or gives up and drops `release`).
                let _ = gate.1.recv();
            }
            EchoStage
        }));

        // On a blocking thread: were the factory run by the caller, it would block there.
        let (first_env, first_kind) = (Arc::clone(&env), Arc::clone(&kind));
        let first =
            tokio::task::spawn_blocking(move || get_or_create(&first_env, first_kind.as_ref(), 1));
        tokio::task::spawn_blocking(move || entered.recv_timeout(Duration::from_secs(5)))
            .await
            .unwrap()
            .expect("the first stage's factory started");

        // Stage 1's factory is stuck; stage 2 is created and answers all the same.
        let (second_env, second_kind) = (Arc::clone(&env), Arc::clone(&kind));
        let second = async move {
            let (_, new, created) = tokio::task::spawn_blocking(move || {
                get_or_create(&second_env, second_kind.as_ref(), 2)
            })
            .await
            .unwrap();
            (new, created.await)
        };
        let second = tokio::time::timeout(Duration::from_secs(2), second).await;
        drop(release);
        let (new, created) = second.expect("stage 2 was created while stage 1's factory ran");
        assert!(new);
        assert!(created.unwrap().is_ok());

        let (_, new, created) = first.await.unwrap();
        assert!(new);
        assert!(created.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_failed_factory_leaves_the_id_free() {
        let env = Arc::new(StageEnv::standalone("test"));
        let attempts = AtomicUsize::new(0);
        let kind = kind(move |_| {
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the first stage factory call fails");
            }
            EchoStage
        });

        let (_, new, created) = get_or_create(&env, &kind, 5);
        assert!(new);
        assert_eq!(
            created.await.unwrap().unwrap_err(),
            ErrorCode::STAGE_CREATION_FAILED
        );
        assert!(env.registry.get(5).is_none(), "the reservation is released");
        assert_eq!(env.registry.len(), 0);

        let (_, new, created) = get_or_create(&env, &kind, 5);
        assert!(new, "the id is free for a new stage");
        assert!(created.await.unwrap().is_ok());
        assert!(env.registry.get(5).is_some());
    }
}
