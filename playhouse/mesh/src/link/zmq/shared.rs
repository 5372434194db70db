//! What a [`ZmqLink`](super::ZmqLink) shares with its tasks.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use zeromq::util::PeerIdentity;
use zeromq::{MultiPeerBackend, RouterSocket};

use super::config::ZmqLinkConfig;
use super::outbox::Outbox;
use crate::link::peers::PeerTable;

pub(super) struct Shared {
    pub(super) server_id: Arc<str>,
    /// Every socket of this server carries it.
    pub(super) identity: PeerIdentity,
    pub(super) address: String,
    pub(super) config: ZmqLinkConfig,
    /// The bound ROUTER until [`MeshLink::start`](crate::link::MeshLink::start) hands it to
    /// its receive task.
    pub(super) receiver: Mutex<Option<RouterSocket>>,
    /// The bound ROUTER's connections, to drop a peer's incoming one on a reset.
    pub(super) backend: Arc<dyn MultiPeerBackend>,
    /// The dialing sockets, one per peer.
    pub(super) peers: PeerTable<Connection>,
}

/// The connection to one peer, as senders see it.
pub(super) struct Connection {
    /// The routing frame: the peer's id.
    pub(super) identity: Bytes,
    /// Frames for the peer's task to hand to its connection; open while it has one.
    pub(super) outbox: Arc<Outbox>,
}
