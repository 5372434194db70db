//! What a [`Mesh`](super::Mesh) handle shares with the node's tasks and its link's sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use bytes::Bytes;
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::cache::RequestCache;
use crate::config::MeshConfig;
use crate::directory::{Directory, ServerInfo, ServerInfoCenter, ServerState};
use crate::link::MeshLink;
use crate::liveness::{self, Liveness};
use crate::wire::RouteHeader;

pub(super) struct Shared {
    pub(super) config: MeshConfig,
    pub(super) link: Arc<dyn MeshLink>,
    pub(super) directory: Arc<dyn Directory>,
    pub(super) cache: RequestCache,
    pub(super) center: ServerInfoCenter,
    /// [`RUNNING`] or [`DISABLED`], published at the next refresh.
    state: AtomicU8,
    /// The last directory call failed: the next listing that succeeds restarts every known
    /// server's TTL (nobody could publish meanwhile).
    pub(super) directory_failed: AtomicBool,
    pub(super) liveness: Liveness,
    /// Encoded headers of this node's pings and pongs.
    pub(super) ping_header: Bytes,
    pub(super) pong_header: Bytes,
    /// A refresh asked for by a ping from an unknown peer is under way.
    pub(super) refresh_pending: AtomicBool,
    pub(super) shutdown: CancellationToken,
}

const RUNNING: u8 = 0;
const DISABLED: u8 = 1;
const DRAINING: u8 = 2;

impl Shared {
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
            config,
            link,
            directory,
            center,
            state: AtomicU8::new(RUNNING),
            directory_failed: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
        }
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
        }
    }
}
