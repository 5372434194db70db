//! What a [`Mesh`](super::Mesh) handle shares with the node's tasks and its link's sink.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use prost::Message;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache::RequestCache;
use crate::config::MeshConfig;
use crate::directory::{Directory, MovedStage, ServerInfo, ServerInfoCenter, ServerState};
use crate::link::MeshLink;
use crate::liveness::{self, Liveness};
use crate::locations::{LOCATION_TTL, StageLocations};
use crate::wire::RouteHeader;

pub(super) struct Shared {
    pub(super) config: MeshConfig,
    pub(super) link: Arc<dyn MeshLink>,
    pub(super) directory: Arc<dyn Directory>,
    pub(super) cache: RequestCache,
    pub(super) center: ServerInfoCenter,
    /// Where stages that moved live now (learned from `STAGE_MOVED` replies).
    pub(super) locations: StageLocations,
    /// Stages that moved here lately, published in this server's directory entry.
    moved_in: Mutex<VecDeque<(MovedStage, Instant)>>,
    /// [`RUNNING`] or [`DISABLED`], published at the next refresh.
    state: AtomicU8,
    /// The last directory call failed: the next listing that succeeds restarts every known
    /// server's TTL (nobody could publish meanwhile).
    pub(super) directory_failed: AtomicBool,
    pub(super) liveness: Liveness,
    /// Encoded headers of this node's pings and pongs.
    pub(super) ping_header: Bytes,
    pub(super) pong_header: Bytes,
    /// This server's id as every header it sends carries it (shared, not copied, per send).
    pub(super) from: Bytes,
    /// A refresh asked for by a ping from an unknown peer is under way.
    pub(super) refresh_pending: AtomicBool,
    /// Peers whose connection broke since the directory last gave their address: a request
    /// to one whose link is not up fails at once, while one to a peer being dialed for the
    /// first time waits for it (see `Mesh::connecting`).
    lost: Mutex<std::collections::HashSet<String>>,
    pub(super) shutdown: CancellationToken,
    /// Set as `shutdown` is cancelled: what every send and every received message reads
    /// (the token's own check takes a lock).
    closed: AtomicBool,
    /// Told of every answered request and pong (see [`super::Mesh::observe`]).
    pub(super) observer: std::sync::OnceLock<Arc<dyn crate::observer::MeshObserver>>,
}

/// Most moved-in stages a directory entry lists (the newest).
const MAX_MOVED_IN: usize = 1_000;

const RUNNING: u8 = 0;
const DISABLED: u8 = 1;
const DRAINING: u8 = 2;

impl Shared {
    /// The peers whose connection broke since the directory last gave their address.
    pub(super) fn lost(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.lost.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn new(
        config: MeshConfig,
        link: Arc<dyn MeshLink>,
        directory: Arc<dyn Directory>,
        center: ServerInfoCenter,
    ) -> Shared {
        // Pings and pongs carry only their kind: the link names the sender of everything it
        // delivers (the header's `from` is overwritten on receipt).
        let liveness_header = |liveness| {
            let header = RouteHeader {
                liveness,
                ..RouteHeader::default()
            };
            Bytes::from(header.encode_to_vec())
        };
        Shared {
            cache: RequestCache::new(config.max_pending_requests),
            liveness: Liveness::new(config.heartbeat_interval, config.heartbeat_timeout),
            ping_header: liveness_header(liveness::PING),
            pong_header: liveness_header(liveness::PONG),
            refresh_pending: AtomicBool::new(false),
            from: Bytes::copy_from_slice(config.server_id.as_bytes()),
            lost: Mutex::default(),
            config,
            link,
            directory,
            center,
            locations: StageLocations::default(),
            moved_in: Mutex::default(),
            state: AtomicU8::new(RUNNING),
            directory_failed: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            closed: AtomicBool::new(false),
            observer: std::sync::OnceLock::new(),
        }
    }

    /// Whether the node shut down.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Shuts the node down; `false` when it already was.
    pub(super) fn close(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        self.shutdown.cancel();
        first
    }

    pub(super) fn server_id(&self) -> &str {
        &self.config.server_id
    }

    pub(super) fn set_state(&self, state: ServerState) {
        let value = match state {
            ServerState::Running => RUNNING,
            ServerState::Disabled => DISABLED,
            ServerState::Draining => DRAINING,
        };
        self.state.store(value, Ordering::Relaxed);
    }

    /// Records that stage `stage_id` moved here from server `from`.
    pub(super) fn moved_here(&self, from: &str, stage_id: i64) {
        let mut moved = self.moved_in.lock().unwrap_or_else(PoisonError::into_inner);
        moved.retain(|(m, _)| m.stage_id != stage_id || m.from != from);
        if moved.len() >= MAX_MOVED_IN {
            moved.pop_front();
        }
        let stage = MovedStage {
            from: from.to_owned(),
            stage_id,
        };
        moved.push_back((stage, Instant::now()));
    }

    /// The stages that moved here within [`LOCATION_TTL`], oldest first.
    fn moved_in(&self) -> Vec<MovedStage> {
        let mut moved = self.moved_in.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        moved.retain(|(_, at)| now.duration_since(*at) < LOCATION_TTL);
        moved.iter().map(|(stage, _)| stage.clone()).collect()
    }

    /// This server's directory entry.
    pub(super) fn info(&self) -> ServerInfo {
        let config = &self.config;
        ServerInfo {
            server_type: config.server_type,
            service_id: config.service_id,
            server_id: config.server_id.clone(),
            address: self.link.address().to_owned(),
            state: match self.state.load(Ordering::Relaxed) {
                RUNNING => ServerState::Running,
                DRAINING => ServerState::Draining,
                _ => ServerState::Disabled,
            },
            weight: config.weight,
            moved_in: self.moved_in(),
        }
    }
}
