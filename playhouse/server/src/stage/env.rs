//! What every stage loop of one server shares with it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use super::registry::StageRegistry;
use crate::metrics::Metrics;
use crate::sender::MeshHandle;
use crate::services::{ServerControl, Services};

/// What every stage loop shares with its server.
#[derive(Debug)]
pub(super) struct StageEnv {
    pub(super) services: Services,
    pub(super) control: ServerControl,
    pub(super) tracker: TaskTracker,
    pub(super) mailbox_capacity: usize,
    pub(super) registry: StageRegistry,
    pub(super) metrics: Arc<Metrics>,
    /// The server's mesh node, once it joins one.
    pub(super) mesh: MeshHandle,
    /// How long a disconnected actor stays (None: until it leaves).
    pub(super) actor_ttl: Option<Duration>,
    /// How long a stage with no actors lives on (None: until closed).
    pub(super) idle_timeout: Option<Duration>,
    /// Most live stages; creating another fails with `STAGE_LIMIT_REACHED`.
    pub(super) max_stages: usize,
}

impl StageEnv {
    /// An environment outside any server, for the stage harness and tests: no mesh, no
    /// limits, actors and stages stay until they leave or close.
    pub(super) fn standalone(server_id: &str) -> StageEnv {
        StageEnv {
            services: Services::default(),
            control: ServerControl::new(Arc::from(server_id)),
            tracker: TaskTracker::new(),
            mailbox_capacity: 65_536,
            registry: StageRegistry::default(),
            metrics: Arc::default(),
            mesh: Arc::default(),
            actor_ttl: None,
            idle_timeout: None,
            max_stages: usize::MAX,
        }
    }
}
