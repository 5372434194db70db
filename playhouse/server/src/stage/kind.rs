//! Registered stage types, with their concrete types erased: what spawns a stage.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::context::StageInit;
use super::env::StageEnv;
use super::mailbox::{CreateRequest, StageMsg};
use super::runner::StageRunner;
use super::{ActorInit, Stage};

/// A registered stage type, with its concrete types erased.
pub(crate) trait StageKind: Send + Sync {
    fn spawn(
        &self,
        env: &Arc<StageEnv>,
        stage_id: i64,
        incarnation: u64,
        create: CreateRequest,
    ) -> (mpsc::Sender<StageMsg>, tokio::task::AbortHandle);
}

type StageFactory<S> = dyn Fn(&StageInit<'_>) -> S + Send + Sync;
pub(crate) type ActorFactory<A> = dyn Fn(&ActorInit<'_>) -> A + Send + Sync;

pub(crate) struct TypedKind<S: Stage> {
    pub(crate) name: Arc<str>,
    pub(crate) make_stage: Box<StageFactory<S>>,
    pub(crate) make_actor: Arc<ActorFactory<S::Actor>>,
}

impl<S: Stage> StageKind for TypedKind<S> {
    fn spawn(
        &self,
        env: &Arc<StageEnv>,
        stage_id: i64,
        incarnation: u64,
        create: CreateRequest,
    ) -> (mpsc::Sender<StageMsg>, tokio::task::AbortHandle) {
        let stage = (self.make_stage)(&StageInit {
            stage_id,
            stage_type: &self.name,
            services: &env.services,
            control: &env.control,
        });
        let (tx, rx) = mpsc::channel(env.mailbox_capacity);
        let runner = StageRunner::new(
            stage,
            stage_id,
            incarnation,
            Arc::clone(&self.name),
            Arc::clone(&self.make_actor),
            Arc::clone(env),
            rx,
        );
        let task = env.tracker.spawn(runner.run(create));
        (tx, task.abort_handle())
    }
}
