//! Registered stage types, with their concrete types erased: what spawns a stage.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::actor::{ActorFactory, ActorInit};
use super::context::StageInit;
use super::env::StageEnv;
use super::handle::{CreateRequest, StageMsg};
use super::model::Stage;
use super::runner::{StageRunner, refuse_stillborn};
use crate::limits::throttled;

/// A registered stage type, with its concrete types erased.
pub(super) trait StageSpawner: Send + Sync {
    /// Starts stage `stage_id`'s task and returns its mailbox. Runs no user code: the
    /// registry calls it under its lock; the stage factory runs later, on the new task.
    fn spawn(
        &self,
        env: &Arc<StageEnv>,
        stage_id: i64,
        incarnation: u64,
        create: CreateRequest,
    ) -> (mpsc::Sender<StageMsg>, tokio::task::AbortHandle);

    /// The name the type was registered under.
    fn name(&self) -> &Arc<str>;
}

type StageFactory<S> = dyn Fn(&StageInit<'_>) -> S + Send + Sync;

/// A stage type as registered: its name and the user's factories.
pub(super) struct TypedSpawner<S: Stage>(Arc<Factories<S>>);

struct Factories<S: Stage> {
    name: Arc<str>,
    make_stage: Box<StageFactory<S>>,
    make_actor: Arc<ActorFactory<S::Actor>>,
}

impl<S: Stage> TypedSpawner<S> {
    pub(super) fn new(
        name: &str,
        make_stage: impl Fn(&StageInit<'_>) -> S + Send + Sync + 'static,
        make_actor: impl Fn(&ActorInit<'_>) -> S::Actor + Send + Sync + 'static,
    ) -> Self {
        TypedSpawner(Arc::new(Factories {
            name: Arc::from(name),
            make_stage: Box::new(make_stage),
            make_actor: Arc::new(make_actor),
        }))
    }
}

impl<S: Stage> StageSpawner for TypedSpawner<S> {
    fn spawn(
        &self,
        env: &Arc<StageEnv>,
        stage_id: i64,
        incarnation: u64,
        create: CreateRequest,
    ) -> (mpsc::Sender<StageMsg>, tokio::task::AbortHandle) {
        let (tx, rx) = mpsc::channel(env.mailbox_capacity);
        let factories = Arc::clone(&self.0);
        let task = env.tracker.spawn(build_and_run(
            factories,
            Arc::clone(env),
            stage_id,
            incarnation,
            rx,
            create,
        ));
        (tx, task.abort_handle())
    }

    fn name(&self) -> &Arc<str> {
        &self.0.name
    }
}

/// The stage's task: builds the stage with the user's factory, then runs it until it closes.
/// A factory that panics creates no stage: the id is freed and whatever was queued for the
/// stage is refused, as if `on_create` had failed.
async fn build_and_run<S: Stage>(
    factories: Arc<Factories<S>>,
    env: Arc<StageEnv>,
    stage_id: i64,
    incarnation: u64,
    rx: mpsc::Receiver<StageMsg>,
    create: CreateRequest,
) {
    let init = StageInit {
        stage_id,
        stage_type: &factories.name,
        services: &env.services,
        control: &env.control,
    };
    let built = std::panic::catch_unwind(AssertUnwindSafe(|| (factories.make_stage)(&init)));
    match built {
        Ok(stage) => {
            let name = Arc::clone(&factories.name);
            let make_actor = Arc::clone(&factories.make_actor);
            let runner = StageRunner::new(stage, stage_id, incarnation, name, make_actor, env, rx);
            runner.run(create).await;
        }
        Err(_) => {
            throttled!(error, stage_id, kind = %factories.name, "stage factory panicked; stage not created");
            refuse_stillborn(&env, stage_id, incarnation, rx, create);
        }
    }
}
