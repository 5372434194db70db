//! What every stage loop of one server shares with it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use super::registry::StageRegistry;
use crate::metrics::Metrics;
use crate::sender::MeshSlot;
use crate::{ServerControl, Services};

/// What every stage loop shares with its server.
#[derive(Debug)]
pub(crate) struct StageEnv {
    pub(crate) services: Services,
    pub(crate) control: ServerControl,
    pub(crate) tracker: TaskTracker,
    pub(crate) mailbox_capacity: usize,
    pub(crate) registry: StageRegistry,
    pub(crate) metrics: Arc<Metrics>,
    /// The server's mesh node, once it joins one.
    pub(crate) mesh: MeshSlot,
    /// How long a disconnected actor stays (None: until it leaves).
    pub(crate) actor_ttl: Option<Duration>,
    /// How long a stage with no actors lives on (None: until closed).
    pub(crate) idle_timeout: Option<Duration>,
    /// Most live stages; creating another fails with `STAGE_LIMIT_REACHED`.
    pub(crate) max_stages: usize,
}
