//! The stage's state, and the names its handlers use for what they are given.

use std::collections::HashMap;
use std::sync::Arc;

use playhouse::{ActorCell, StageContext, StageInit, StageRoutes, TimerId};

use crate::servers::services::{GreetingService, SharedCounter, StageJournal};
use crate::servers::test_actor::TestActor;

/// A client of the stage, as its handlers see it.
pub(super) type Actor = ActorCell<TestActor>;
/// The stage's context, as its handlers see it.
pub(super) type Ctx = StageContext<TestStage>;
/// The stage's typed handlers.
pub(super) type Routes = StageRoutes<TestStage>;

/// The stage every verifier talks to.
#[derive(Debug)]
pub struct TestStage {
    /// Stage callbacks in the order they ran.
    pub(super) callbacks: Vec<String>,
    pub(super) greeting: Option<Arc<GreetingService>>,
    pub(super) counter: Option<Arc<SharedCounter>>,
    pub(super) journal: Option<Arc<StageJournal>>,
    /// The task running this stage's loop, to tell which code ran on it.
    pub(super) stage_task: Option<tokio::task::Id>,
    /// Async blocks whose `post` has run.
    pub(super) async_completed: i32,
    /// Live timers by the id the client knows.
    pub(super) timers: HashMap<u64, TimerId>,
    /// Ticks each timer has pushed, by timer id.
    pub(super) timer_ticks: HashMap<u64, i32>,
    /// The game loop's last step number.
    pub(super) game_loop_ticks: u64,
    /// The msg id of the packet `on_create` got, and the creator it named (API creations).
    pub(super) create_msg_id: String,
    pub(super) created_by: String,
    /// Ids of the `ResumeProbeRequest`s handled, in order.
    pub(super) probes_handled: Vec<i32>,
}

impl TestStage {
    /// The stage factory: fetches the shared services the stage uses.
    pub fn new(init: &StageInit<'_>) -> Self {
        TestStage {
            callbacks: Vec::new(),
            greeting: init.services.get::<GreetingService>(),
            counter: init.services.get::<SharedCounter>(),
            journal: init.services.get::<StageJournal>(),
            stage_task: None,
            async_completed: 0,
            timers: HashMap::new(),
            timer_ticks: HashMap::new(),
            game_loop_ticks: 0,
            create_msg_id: String::new(),
            created_by: String::new(),
            probes_handled: Vec::new(),
        }
    }

    pub(super) fn record(&mut self, callback: impl Into<String>) {
        self.callbacks.push(callback.into());
    }
}
