//! Registered stage types, with their concrete types erased: what spawns a stage.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use playhouse_protocol::ErrorCode;
use tokio::sync::mpsc;

use super::actor::{ActorFactory, ActorInit};
use super::context::StageInit;
use super::env::StageEnv;
use super::handle::{CreateRequest, StageMsg};
use super::model::{MovableStage, Stage};
use super::moving::{MoveOps, RestoreRequest};
use super::runner::{StageRunner, refuse_stillborn, stage_init};
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

    /// Whether stages of this type can move to another server.
    fn is_movable(&self) -> bool;

    /// Starts the task of stage `stage_id` moved here from another server (see
    /// `runner::moving`); like [`StageSpawner::spawn`], it runs no user code. For a type
    /// that is not movable, `request.done` hears `INVALID_STAGE_TYPE` and no task starts
    /// (check [`StageSpawner::is_movable`] first).
    fn restore(
        &self,
        env: &Arc<StageEnv>,
        stage_id: i64,
        incarnation: u64,
        request: RestoreRequest,
    ) -> (mpsc::Sender<StageMsg>, tokio::task::AbortHandle);
}

type StageFactory<S> = dyn Fn(&StageInit<'_>) -> S + Send + Sync;

/// A stage type as registered: its name and the user's factories.
pub(super) struct TypedSpawner<S: Stage>(Arc<Factories<S>>);

struct Factories<S: Stage> {
    name: Arc<str>,
    make_stage: Box<StageFactory<S>>,
    make_actor: Arc<ActorFactory<S::Actor>>,
    moves: Option<MoveOps<S>>,
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
            moves: None,
        }))
    }
}

impl<S: MovableStage> TypedSpawner<S> {
    /// A stage type whose stages can move to another server.
    pub(super) fn movable(
        name: &str,
        make_stage: impl Fn(&StageInit<'_>) -> S + Send + Sync + 'static,
        make_actor: impl Fn(&ActorInit<'_>) -> S::Actor + Send + Sync + 'static,
    ) -> Self {
        TypedSpawner(Arc::new(Factories {
            name: Arc::from(name),
            make_stage: Box::new(make_stage),
            make_actor: Arc::new(make_actor),
            moves: Some(MoveOps::of()),
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
        let factories = Arc::clone(&self.0);
        let env_for_task = Arc::clone(env);
        start_task(env, move |rx| {
            build_and_run(factories, env_for_task, stage_id, incarnation, rx, create)
        })
    }

    fn name(&self) -> &Arc<str> {
        &self.0.name
    }

    fn is_movable(&self) -> bool {
        self.0.moves.is_some()
    }

    fn restore(
        &self,
        env: &Arc<StageEnv>,
        stage_id: i64,
        incarnation: u64,
        request: RestoreRequest,
    ) -> (mpsc::Sender<StageMsg>, tokio::task::AbortHandle) {
        let factories = Arc::clone(&self.0);
        let env_for_task = Arc::clone(env);
        start_task(env, move |rx| {
            restore_and_run(factories, env_for_task, stage_id, incarnation, rx, request)
        })
    }
}

/// Starts a stage's task on `env`'s tracker with a fresh mailbox; the mailbox's sender and
/// the task's abort handle.
fn start_task<F>(
    env: &StageEnv,
    run: impl FnOnce(mpsc::Receiver<StageMsg>) -> F,
) -> (mpsc::Sender<StageMsg>, tokio::task::AbortHandle)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(env.mailbox_capacity);
    let task = env.tracker.spawn(run(rx));
    (tx, task.abort_handle())
}

/// The task of a stage that moved here: rebuilt from its snapshot by the type's restore
/// hooks, then run. A refused or panicking restore frees the id and refuses the move.
async fn restore_and_run<S: Stage>(
    factories: Arc<Factories<S>>,
    env: Arc<StageEnv>,
    stage_id: i64,
    incarnation: u64,
    rx: mpsc::Receiver<StageMsg>,
    mut request: RestoreRequest,
) {
    let refused = |env: &StageEnv, rx, request: RestoreRequest, code| {
        let _ = request.done.send(Err(code));
        let create = CreateRequest {
            packet: playhouse_protocol::Packet::empty("Move"),
            done: None,
        };
        refuse_stillborn(env, stage_id, incarnation, rx, create);
    };
    let Some(ops) = factories.moves else {
        return refused(&env, rx, request, ErrorCode::INVALID_STAGE_TYPE);
    };
    let state = std::mem::take(&mut request.snapshot.state);
    let init = stage_init(stage_id, &factories.name, &env);
    let built = std::panic::catch_unwind(AssertUnwindSafe(|| (ops.restore_stage)(&init, state)));
    let stage = match built {
        Ok(Ok(stage)) => stage,
        Ok(Err(code)) => return refused(&env, rx, request, code),
        Err(_) => {
            tracing::error!(stage_id, kind = %factories.name, "stage restore panicked; move refused");
            return refused(&env, rx, request, ErrorCode::STAGE_CREATION_FAILED);
        }
    };
    let name = Arc::clone(&factories.name);
    let make_actor = Arc::clone(&factories.make_actor);
    let mut runner = StageRunner::new(stage, stage_id, incarnation, name, make_actor, env, rx)
        .movable(Some(ops));
    let restored =
        std::panic::catch_unwind(AssertUnwindSafe(|| runner.restore_actors(&mut request)));
    match restored {
        Ok(Ok(())) => runner.run_moved(request).await,
        Ok(Err(code)) => {
            let _ = request.done.send(Err(code));
            runner.abandon();
        }
        Err(_) => {
            tracing::error!(stage_id, "actor restore panicked; move refused");
            let _ = request.done.send(Err(ErrorCode::STAGE_CREATION_FAILED));
            runner.abandon();
        }
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
            let moves = factories.moves;
            let runner = StageRunner::new(stage, stage_id, incarnation, name, make_actor, env, rx)
                .movable(moves);
            runner.run(create).await;
        }
        Err(_) => {
            throttled!(error, stage_id, kind = %factories.name, "stage factory panicked; stage not created");
            refuse_stillborn(&env, stage_id, incarnation, rx, create);
        }
    }
}
