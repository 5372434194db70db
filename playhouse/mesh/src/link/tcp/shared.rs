//! What a [`TcpLink`](super::TcpLink) shares with its tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::config::TcpLinkConfig;
use crate::link::EventSink;
use crate::link::frame::Frame;
use crate::link::peers::PeerTable;

pub(super) struct Shared<D> {
    pub(super) server_id: Arc<str>,
    pub(super) address: String,
    pub(super) dialer: D,
    pub(super) config: TcpLinkConfig,
    /// Hands the sink to the accept loop, which waits for it.
    pub(super) start: Mutex<Option<oneshot::Sender<EventSink>>>,
    /// The outgoing connections, one per peer.
    pub(super) peers: PeerTable<Outgoing>,
    /// The incoming connections, by the peer id each greeted with.
    pub(super) incoming: Mutex<HashMap<Arc<str>, Incoming>>,
    pub(super) next_incoming: AtomicU64,
}

/// The outgoing connection to one peer, as senders see it: its queue, and whether its task
/// has it connected.
pub(super) struct Outgoing {
    pub(super) tx: mpsc::Sender<Frame>,
    pub(super) up: Arc<AtomicBool>,
}

/// An incoming connection from one peer (the newest per peer id wins).
pub(super) struct Incoming {
    pub(super) generation: u64,
    pub(super) cancel: CancellationToken,
}
