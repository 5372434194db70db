//! The bookkeeping both links share: the peers the node wants connected, each at its address
//! with the task that keeps its connection; where rare events go; and shutting it all down.
//!
//! What a link keeps of a connection (`C`: a send queue, an outbox) it shares with
//! the connection's task, which marks it up or down; the table only replaces and drops whole
//! entries, so a replaced task writes to an entry nobody reads any more.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{EventSink, LinkError, LinkEvent};

/// Locks `mutex`, also after a panic on another task poisoned it: a link keeps working.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens a connection to a peer at an address: spawns the task that keeps it, which stops on
/// the token, and returns what the link keeps of it.
pub(super) trait Open<C>: FnOnce(&str, CancellationToken) -> C {}

impl<C, F: FnOnce(&str, CancellationToken) -> C> Open<C> for F {}

/// A connection the node asked for.
struct Peer<C> {
    address: String,
    /// Stops the connection's task.
    cancel: CancellationToken,
    connection: C,
}

/// The peers of a link by server id, its event sink, and its tasks.
pub(super) struct PeerTable<C> {
    /// Ordered, so closing the link stops its connections in a fixed order.
    peers: Mutex<BTreeMap<String, Peer<C>>>,
    /// Set by [`MeshLink::start`](super::MeshLink::start); taken by `close` (the sink may own
    /// the node that owns this link).
    sink: Mutex<Option<EventSink>>,
    shutdown: CancellationToken,
    /// Set as `shutdown` is cancelled: what every send reads (the token's own check takes a
    /// lock).
    closed: AtomicBool,
    tasks: TaskTracker,
}

impl<C> PeerTable<C> {
    pub(super) fn new() -> Self {
        PeerTable {
            peers: Mutex::new(BTreeMap::new()),
            sink: Mutex::new(None),
            shutdown: CancellationToken::new(),
            closed: AtomicBool::new(false),
            tasks: TaskTracker::new(),
        }
    }

    /// Cancelled when the link closes; every task of the link stops on it.
    pub(super) fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs a task of the link.
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    pub(super) fn set_sink(&self, sink: EventSink) {
        *lock(&self.sink) = Some(sink);
    }

    /// Reports a rare event (peer down, send failed) to the node, unless the link is closed.
    pub(super) fn emit(&self, event: LinkEvent) {
        let sink = lock(&self.sink).clone();
        if let Some(sink) = sink {
            sink(event);
        }
    }

    /// Keeps a connection to `server_id` at `address`. One to that address is left alone;
    /// otherwise `open` starts a new one, which replaces the old one, if any.
    pub(super) fn connect(&self, server_id: &str, address: &str, open: impl Open<C>) {
        let Some(mut peers) = self.peers() else {
            return;
        };
        if peers.get(server_id).is_some_and(|p| p.address == address) {
            return;
        }
        self.replace(&mut peers, server_id, address, open);
    }

    /// Replaces the connection to `server_id`, if one is kept, with a new one to the same
    /// address (the node reset the peer).
    pub(super) fn reconnect(&self, server_id: &str, open: impl Open<C>) {
        let Some(mut peers) = self.peers() else {
            return;
        };
        if let Some(address) = peers.get(server_id).map(|peer| peer.address.clone()) {
            self.replace(&mut peers, server_id, &address, open);
        }
    }

    /// The peers, unless the link is closed.
    fn peers(&self) -> Option<MutexGuard<'_, BTreeMap<String, Peer<C>>>> {
        (!self.is_closed()).then(|| lock(&self.peers))
    }

    /// Stops the old connection's task before the new one starts (holding `peers`, so no
    /// send reaches the old one meanwhile).
    fn replace(
        &self,
        peers: &mut BTreeMap<String, Peer<C>>,
        server_id: &str,
        address: &str,
        open: impl Open<C>,
    ) {
        if let Some(old) = peers.remove(server_id) {
            old.cancel.cancel();
        }
        let cancel = self.shutdown.child_token();
        let connection = open(address, cancel.clone());
        let peer = Peer {
            address: address.to_owned(),
            cancel,
            connection,
        };
        peers.insert(server_id.to_owned(), peer);
    }

    /// Drops the connection to `server_id`.
    pub(super) fn disconnect(&self, server_id: &str) {
        if let Some(peer) = lock(&self.peers).remove(server_id) {
            peer.cancel.cancel();
        }
    }

    /// `f` on the connection to `target`: [`LinkError::Closed`] once the link is closed,
    /// [`LinkError::Unknown`] when no connection to it is kept.
    pub(super) fn with<R>(
        &self,
        target: &str,
        f: impl FnOnce(&C) -> Result<R, LinkError>,
    ) -> Result<R, LinkError> {
        let peers = self.peers().ok_or(LinkError::Closed)?;
        let peer = peers
            .get(target)
            .ok_or_else(|| LinkError::Unknown(target.to_owned()))?;
        f(&peer.connection)
    }

    /// Whether a connection to `server_id` is kept and `up` says it is up.
    pub(super) fn is_connected(&self, server_id: &str, up: impl FnOnce(&C) -> bool) -> bool {
        lock(&self.peers)
            .get(server_id)
            .is_some_and(|peer| up(&peer.connection))
    }

    /// Stops every task of the link, drops every connection and lets the sink go.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.shutdown.cancel();
        lock(&self.peers).clear();
        *lock(&self.sink) = None;
        self.tasks.close();
    }
}
