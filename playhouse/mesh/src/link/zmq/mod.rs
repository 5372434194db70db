//! [`ZmqLink`]: the mesh over ZeroMQ ROUTER sockets (ZMTP 3, the pure-Rust `zeromq` crate), so
//! any ZMTP 3 peer (libzmq, NetMQ) can be a mesh server.
//!
//! ```text
//!  server `a`                                              server `b`
//!  ┌──────────────────────────────┐                       ┌──────────────────────────────┐
//!  │ peer task `b`: ROUTER id="a" │ ──[b][header][body]─▶ │ receive task: ROUTER id="b"  │
//!  │ (dials b; writes what        │   (ROUTER eats [b])   │ (bound, receives only)       │
//!  │  senders queued, in batches) │                       │ recv → [a][header][body]     │
//!  │ receive task: ROUTER id="a"  │ ◀─[a][header][body]── │ peer task `a`: ROUTER id="b" │
//!  └──────────────────────────────┘                       └──────────────────────────────┘
//! ```
//!
//! Every socket of a server carries its server id as its ZMTP `Identity`, so the bound ROUTER
//! of `b` names frames from `a` by `a`'s id, and `a`'s dialing ROUTER routes to `b` by `b`'s
//! id (learned from the READY handshake of the connection it dialed).
//!
//! Each wanted peer gets its own dialing ROUTER, owned by one task that connects, checks the
//! peer's identity, then watches the connection and writes to it. A [`MeshLink::send`] queues
//! the frame in the peer's outbox and returns; the peer's task hands what is queued to the
//! crate's writer a batch at a time, one scheduler turn after the first frame, so frames sent
//! by many tasks at once leave in one system call rather than one each (see `outbox`).
//!
//! # What the `zeromq` crate lacks, and what this link does about it
//!
//! * **No ROUTER reconnect, no heartbeats.** The peer task re-dials a lost peer with
//!   exponential backoff. A loss is seen through the socket monitor's `Disconnected` event,
//!   which the crate raises when the connection's read side ends (the peer task keeps polling
//!   the receive half for exactly that) or its writer fails. A peer that vanishes without
//!   closing its TCP connection (power loss, partition) is noticed by the mesh node's own
//!   heartbeats, which then [`reset`](MeshLink::reset) it: the dialing socket is dropped and
//!   re-dialed, and the peer's incoming connection is dropped from the bound ROUTER.
//! * **A peer that connects again replaces its old connection** in the bound ROUTER (the
//!   crate keys connections by identity and the newest wins), so a peer that was cut off
//!   silently and comes back is not refused.
//! * **`connect` blocks its socket until the handshake ends**, bounded by
//!   [`ZmqLinkConfig::handshake_timeout`]; with one socket per peer a dead peer in the
//!   directory stalls only its own task.
//! * **The crate's queue per connection holds 100,000 frames**, and its `send` waits when
//!   it is full. The link never waits: a frame that does not fit in the outbox (as many
//!   again) is refused with [`LinkError::Busy`], and one the crate's full queue refuses is
//!   reported as [`LinkEvent::SendFailed`](super::LinkEvent::SendFailed), so its request fails
//!   at once instead of blocking a stage.
//! * **Connections are keyed by identity only.** Every peer must set its identity to its
//!   server id (a peer without one gets a random id and cannot be routed to: the link drops
//!   such a connection and retries).
//! * No maximum message size can be set on the crate's decoder.

pub(crate) mod config;
mod dial;
pub(crate) mod error;
mod outbox;
mod receive;
mod shared;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use zeromq::util::PeerIdentity;
use zeromq::{Endpoint, RouterSocket, Socket, SocketOptions, ZmqMessage};

use self::config::ZmqLinkConfig;
use self::error::ZmqLinkError;
use self::receive::receive;
use self::shared::Shared;
use super::address::{self, advertised_address};
use super::peers::{PeerTable, lock};
use super::{EventSink, LinkError, MeshLink};

/// The mesh link over ZeroMQ: a bound ROUTER receives; one dialing ROUTER per peer, with the
/// same identity, sends. Every socket is owned by a task; the [`MeshLink`] methods update
/// shared state or hand a frame to the crate's writer, and return at once.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use playhouse_mesh::{MeshLink, ZmqLink, ZmqLinkConfig};
///
/// let link = ZmqLink::bind("play-1", "tcp://127.0.0.1:0", None, ZmqLinkConfig::default()).await?;
/// // The mesh node starts a link with its sink; here, a channel.
/// let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
/// link.start(std::sync::Arc::new(move |event| {
///     let _ = events_tx.send(event);
/// }));
/// link.connect("api-1", "tcp://10.0.0.7:5000");
/// // ... once `api-1` is up:
/// link.send("api-1", bytes::Bytes::new(), bytes::Bytes::from_static(b"hello"))?;
/// # Ok(()) }
/// ```
pub struct ZmqLink {
    shared: Arc<Shared>,
}

impl fmt::Debug for ZmqLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZmqLink")
            .field("server_id", &self.shared.server_id)
            .field("address", &self.shared.address)
            .finish_non_exhaustive()
    }
}

impl ZmqLink {
    /// Binds the receiving ROUTER at `endpoint` (`tcp://127.0.0.1:0`; the `tcp://` prefix is
    /// optional, port 0 picks a free port); what it receives is delivered once the link is
    /// [`start`](MeshLink::start)ed. The advertised [`address`](MeshLink::address) is
    /// `tcp://{advertise_host or the bound IP}:{bound port}`.
    pub async fn bind(
        server_id: &str,
        endpoint: &str,
        advertise_host: Option<&str>,
        config: ZmqLinkConfig,
    ) -> Result<ZmqLink, ZmqLinkError> {
        let identity = identity(server_id)?;
        let mut receive_options = SocketOptions::default();
        receive_options.peer_identity(identity.clone());
        let mut receiver = RouterSocket::with_options(receive_options);
        let endpoint = address::endpoint(endpoint);
        let bound = receiver.bind(&endpoint).await.map_err(ZmqLinkError::Bind)?;
        let Endpoint::Tcp(host, port) = bound else {
            return Err(ZmqLinkError::NotTcp(endpoint));
        };
        let bound = IpAddr::try_from(host).map_err(|_| ZmqLinkError::NotTcp(endpoint))?;
        let address =
            advertised_address(advertise_host, bound, port).ok_or(ZmqLinkError::UnspecifiedHost)?;
        let shared = Arc::new(Shared {
            server_id: Arc::from(server_id),
            identity,
            address,
            config,
            backend: receiver.backend(),
            receiver: Mutex::new(Some(receiver)),
            peers: PeerTable::new(),
        });
        Ok(ZmqLink { shared })
    }
}

/// The ZMTP identity for a server id.
fn identity(server_id: &str) -> Result<PeerIdentity, ZmqLinkError> {
    let invalid = || ZmqLinkError::InvalidServerId(server_id.to_owned());
    if server_id.is_empty() || server_id.as_bytes()[0] == 0 {
        return Err(invalid());
    }
    PeerIdentity::try_from(server_id.as_bytes()).map_err(|_| invalid())
}

impl MeshLink for ZmqLink {
    fn address(&self) -> &str {
        &self.shared.address
    }

    fn start(&self, sink: EventSink) {
        let shared = &self.shared;
        let Some(receiver) = lock(&shared.receiver).take() else {
            return;
        };
        if shared.peers.is_closed() {
            return;
        }
        shared.peers.set_sink(Arc::clone(&sink));
        let shutdown = shared.peers.shutdown().clone();
        shared.peers.spawn(receive(shutdown, receiver, sink));
    }

    fn connect(&self, server_id: &str, address: &str) {
        let shared = &self.shared;
        shared.peers.connect(server_id, address, |address, cancel| {
            dial::open(shared, server_id, address, cancel)
        });
    }

    fn reset(&self, server_id: &str) {
        let shared = &self.shared;
        if shared.peers.is_closed() {
            return;
        }
        if let Ok(identity) = PeerIdentity::try_from(server_id.as_bytes()) {
            shared.backend.peer_disconnected(&identity);
        }
        shared.peers.reconnect(server_id, |address, cancel| {
            dial::open(shared, server_id, address, cancel)
        });
    }

    fn disconnect(&self, server_id: &str) {
        self.shared.peers.disconnect(server_id);
    }

    fn send(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), LinkError> {
        self.shared.peers.with(target, |peer| {
            let message = ZmqMessage::try_from(vec![peer.identity.clone(), header, payload])
                .expect("three frames are never empty");
            peer.outbox.push(target, message)
        })
    }

    fn close(&self) {
        self.shared.peers.close();
        lock(&self.shared.receiver).take();
    }

    fn is_connected(&self, server_id: &str) -> bool {
        let up = |peer: &shared::Connection| peer.outbox.is_open();
        self.shared.peers.is_connected(server_id, up)
    }
}

impl Drop for ZmqLink {
    fn drop(&mut self) {
        self.close();
    }
}
