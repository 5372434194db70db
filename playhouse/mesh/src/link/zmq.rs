//! [`ZmqLink`]: the mesh over ZeroMQ ROUTER sockets (ZMTP 3, the pure-Rust `zeromq` crate), so
//! any ZMTP 3 peer (libzmq, NetMQ) can be a mesh server.
//!
//! ```text
//!  server `a`                                              server `b`
//!  ┌──────────────────────────────┐                       ┌──────────────────────────────┐
//!  │ peer task `b`: ROUTER id="a" │ ──[b][header][body]─▶ │ receive task: ROUTER id="b"  │
//!  │ (dials b; senders write to   │   (ROUTER eats [b])   │ (bound, receives only)       │
//!  │  its send half directly)     │                       │ recv → [a][header][body]     │
//!  │ receive task: ROUTER id="a"  │ ◀─[a][header][body]── │ peer task `a`: ROUTER id="b" │
//!  └──────────────────────────────┘                       └──────────────────────────────┘
//! ```
//!
//! Every socket of a server carries its server id as its ZMTP `Identity`, so the bound ROUTER
//! of `b` names frames from `a` by `a`'s id, and `a`'s dialing ROUTER routes to `b` by `b`'s
//! id (learned from the READY handshake of the connection it dialed).
//!
//! Each wanted peer gets its own dialing ROUTER, owned by one task that connects, checks the
//! peer's identity, publishes the socket's send half and then watches the connection. A
//! [`MeshLink::send`] writes straight into that send half (the crate queues the frame for the
//! connection's writer task), so a frame crosses no task of ours on its way out.
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
//!   it is full. The link never waits: a frame that does not fit is refused with
//!   [`LinkError::Busy`], so the request fails at once instead of blocking a stage.
//! * **Connections are keyed by identity only.** Every peer must set its identity to its
//!   server id (a peer without one gets a random id and cannot be routed to: the link drops
//!   such a connection and retries).
//! * No maximum message size can be set on the crate's decoder.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeromq::util::PeerIdentity;
use zeromq::{
    Endpoint, Host, MultiPeerBackend, RouterRecvHalf, RouterSendHalf, RouterSocket, Socket,
    SocketEvent, SocketOptions, SocketRecv, SocketSend, ZmqError, ZmqMessage,
};

use super::{EventSink, LinkError, LinkEvent, MeshLink};

/// Settings of a [`ZmqLink`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ZmqLinkConfig {
    /// Longest ZMTP connect (TCP connect, greeting, READY) to one peer. Default: 2 s.
    pub handshake_timeout: Duration,
    /// First wait before re-dialing a lost or unreachable peer; doubles per failure.
    /// Default: 200 ms.
    pub reconnect_backoff: Duration,
    /// Longest wait between dials. Default: 5 s.
    pub max_reconnect_backoff: Duration,
}

impl Default for ZmqLinkConfig {
    fn default() -> Self {
        ZmqLinkConfig {
            handshake_timeout: Duration::from_secs(2),
            reconnect_backoff: Duration::from_millis(200),
            max_reconnect_backoff: Duration::from_secs(5),
        }
    }
}

impl ZmqLinkConfig {
    /// The wait before dial attempt `failures + 1`.
    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.reconnect_backoff
            .saturating_mul(factor)
            .min(self.max_reconnect_backoff)
    }
}

/// Why [`ZmqLink::bind`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ZmqLinkError {
    /// A server id must be 1 to 255 bytes and must not start with a zero byte (ZeroMQ
    /// reserves those identities).
    #[error("`{0}` cannot be a ZeroMQ identity")]
    InvalidServerId(String),
    /// The bind endpoint is malformed or could not be bound.
    #[error("binding the ZeroMQ socket failed: {0}")]
    Bind(#[source] ZmqError),
    /// Only `tcp://` endpoints are supported.
    #[error("`{0}` is not a tcp endpoint")]
    NotTcp(String),
    /// The socket is bound to an unspecified address (`0.0.0.0`, `::`), which peers cannot
    /// connect to: pass an advertised host.
    #[error("binding an unspecified address needs an advertised host")]
    UnspecifiedHost,
}

/// A connection the node asked for, and its live socket if it is up.
struct Peer {
    address: String,
    /// Changes whenever the address changes, so a replaced peer task can tell.
    generation: u64,
    /// The routing frame: the peer's id.
    identity: Bytes,
    /// The send half of the connected socket; `None` while dialing.
    socket: Option<RouterSendHalf>,
    /// Stops this peer's task.
    cancel: CancellationToken,
}

struct Shared {
    server_id: Arc<str>,
    identity: PeerIdentity,
    address: String,
    config: ZmqLinkConfig,
    /// Set by [`MeshLink::start`]; taken by [`MeshLink::close`] (the sink may own the node
    /// that owns this link).
    sink: Mutex<Option<EventSink>>,
    /// The bound ROUTER until [`MeshLink::start`] hands it to its receive task.
    receiver: Mutex<Option<RouterSocket>>,
    /// The bound ROUTER's connections, to drop a peer's incoming one on a reset.
    backend: Arc<dyn MultiPeerBackend>,
    peers: Mutex<HashMap<String, Peer>>,
    next_generation: AtomicU64,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    fn peers(&self) -> MutexGuard<'_, HashMap<String, Peer>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reports a rare event (a peer down) to the node, unless the link is closed.
    fn emit(&self, event: LinkEvent) {
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(sink) = sink {
            sink(event);
        }
    }

    /// Starts (or restarts, with a new generation) the peer task for `server_id`.
    fn spawn_peer(self: &Arc<Self>, server_id: &str, address: &str) {
        let cancel = self.shutdown.child_token();
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let peer = Peer {
            address: address.to_owned(),
            generation,
            identity: Bytes::copy_from_slice(server_id.as_bytes()),
            socket: None,
            cancel: cancel.clone(),
        };
        if let Some(old) = self.peers().insert(server_id.to_owned(), peer) {
            old.cancel.cancel();
        }
        let task = PeerTask {
            shared: Arc::clone(self),
            id: Arc::from(server_id),
            address: address.to_owned(),
            generation,
            cancel,
        };
        self.tasks.spawn(task.run());
    }

    /// Publishes (or withdraws) the connected socket of peer `id`, if `generation` is still
    /// the wanted one. False when the peer was replaced or removed meanwhile.
    fn set_socket(&self, id: &str, generation: u64, socket: Option<RouterSendHalf>) -> bool {
        match self.peers().get_mut(id) {
            Some(peer) if peer.generation == generation => {
                peer.socket = socket;
                true
            }
            _ => false,
        }
    }
}

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
        let endpoint = if endpoint.contains("://") {
            endpoint.to_owned()
        } else {
            format!("tcp://{endpoint}")
        };
        let bound = receiver.bind(&endpoint).await.map_err(ZmqLinkError::Bind)?;
        let Endpoint::Tcp(host, port) = bound else {
            return Err(ZmqLinkError::NotTcp(endpoint));
        };
        let host = match advertise_host {
            Some(host) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            None => match host {
                Host::Ipv4(ip) if ip.is_unspecified() => return Err(ZmqLinkError::UnspecifiedHost),
                Host::Ipv6(ip) if ip.is_unspecified() => return Err(ZmqLinkError::UnspecifiedHost),
                host => host.to_string(),
            },
        };
        let address = if host.contains(':') {
            format!("tcp://[{host}]:{port}")
        } else {
            format!("tcp://{host}:{port}")
        };
        let shared = Arc::new(Shared {
            server_id: Arc::from(server_id),
            identity,
            address,
            config,
            sink: Mutex::new(None),
            backend: receiver.backend(),
            receiver: Mutex::new(Some(receiver)),
            peers: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
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
        let receiver = self
            .shared
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(receiver) = receiver else { return };
        if self.shared.shutdown.is_cancelled() {
            return;
        }
        *self.shared.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&sink));
        self.shared
            .tasks
            .spawn(receive(Arc::clone(&self.shared), receiver, sink));
    }

    fn connect(&self, server_id: &str, address: &str) {
        if self.shared.shutdown.is_cancelled()
            || self
                .shared
                .peers()
                .get(server_id)
                .is_some_and(|p| p.address == address)
        {
            return;
        }
        self.shared.spawn_peer(server_id, address);
    }

    fn reset(&self, server_id: &str) {
        if self.shared.shutdown.is_cancelled() {
            return;
        }
        if let Ok(identity) = PeerIdentity::try_from(server_id.as_bytes()) {
            self.shared.backend.peer_disconnected(&identity);
        }
        let address = self
            .shared
            .peers()
            .get(server_id)
            .map(|peer| peer.address.clone());
        if let Some(address) = address {
            self.shared.spawn_peer(server_id, &address);
        }
    }

    fn disconnect(&self, server_id: &str) {
        if let Some(old) = self.shared.peers().remove(server_id) {
            old.cancel.cancel();
        }
    }

    fn send(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), LinkError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(LinkError::Closed);
        }
        let (mut socket, identity, generation) = {
            let peers = self.shared.peers();
            let peer = peers
                .get(target)
                .ok_or_else(|| LinkError::Unknown(target.to_owned()))?;
            let socket = peer
                .socket
                .clone()
                .ok_or_else(|| LinkError::NotConnected(target.to_owned()))?;
            (socket, peer.identity.clone(), peer.generation)
        };
        let message = ZmqMessage::try_from(vec![identity, header, payload])
            .expect("three frames are never empty");
        // The crate's send only waits when the connection's queue (100,000 frames) is full;
        // this link never waits: such a frame is refused.
        match socket.send(message).now_or_never() {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => {
                // The crate dropped the connection; the peer task sees it and re-dials.
                tracing::warn!(peer = %target, %error, "mesh send failed");
                self.shared.set_socket(target, generation, None);
                Err(LinkError::NotConnected(target.to_owned()))
            }
            None => Err(LinkError::Busy(target.to_owned())),
        }
    }

    fn close(&self) {
        self.shared.shutdown.cancel();
        self.shared.peers().clear();
        // The sink may own the node that owns this link: break the cycle.
        *self.shared.sink.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.shared
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.shared.tasks.close();
    }

    fn is_connected(&self, server_id: &str) -> bool {
        self.shared
            .peers()
            .get(server_id)
            .is_some_and(|peer| peer.socket.is_some())
    }
}

impl Drop for ZmqLink {
    fn drop(&mut self) {
        self.close();
    }
}

/// Owns the bound ROUTER: every `[sender id][header][payload]` becomes a
/// [`LinkEvent::Message`].
async fn receive(shared: Arc<Shared>, mut socket: RouterSocket, sink: EventSink) {
    let backend = socket.backend();
    let mut names = SenderNames::default();
    loop {
        let received = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            received = socket.recv() => received,
        };
        let message = match received {
            Ok(message) => message,
            Err(error) => {
                // Only `NoMessage`, which a ROUTER with no peers never returns; do not spin.
                tracing::warn!(%error, "mesh receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let frames: Result<[Bytes; 3], _> = message.into_vec().try_into();
        let [id, header, payload] = match frames {
            Ok(frames) => frames,
            Err(frames) => {
                let Some(id) = frames.first() else { continue };
                tracing::warn!(
                    peer = %String::from_utf8_lossy(id),
                    frames = frames.len(),
                    "malformed mesh message (expected [id][header][payload]); dropping the connection"
                );
                if let Ok(peer) = PeerIdentity::try_from(id.clone()) {
                    backend.peer_disconnected(&peer);
                }
                continue;
            }
        };
        let from = match names.name(id) {
            Ok(from) => from,
            Err(id) => {
                tracing::warn!(peer = ?id, "mesh peer without a server id; dropping the connection");
                if let Ok(peer) = PeerIdentity::try_from(id) {
                    backend.peer_disconnected(&peer);
                }
                continue;
            }
        };
        sink(LinkEvent::Message {
            from,
            header,
            payload,
        });
    }
}

/// The most sender ids [`SenderNames`] keeps; past it, it starts afresh.
const MAX_SENDER_NAMES: usize = 4096;

/// Interned sender ids: one allocation per peer, not per message, and a bounded number of
/// them however many identities connect.
#[derive(Default)]
struct SenderNames {
    names: HashMap<Bytes, Arc<str>>,
}

impl SenderNames {
    /// The server id a ZMTP identity names; the identity back when it is not UTF-8.
    fn name(&mut self, id: Bytes) -> Result<Arc<str>, Bytes> {
        if let Some(name) = self.names.get(&id) {
            return Ok(Arc::clone(name));
        }
        let Ok(name) = std::str::from_utf8(&id) else {
            return Err(id);
        };
        let name: Arc<str> = Arc::from(name);
        if self.names.len() >= MAX_SENDER_NAMES {
            self.names.clear();
        }
        self.names.insert(id, Arc::clone(&name));
        Ok(name)
    }
}

/// Dials one peer on a socket of its own, publishes the connection's send half, watches the
/// connection, and re-dials it when lost, until cancelled (peer replaced, removed, or the
/// link closed).
struct PeerTask {
    shared: Arc<Shared>,
    id: Arc<str>,
    address: String,
    generation: u64,
    cancel: CancellationToken,
}

impl PeerTask {
    async fn run(self) {
        let endpoint = if self.address.contains("://") {
            self.address.clone()
        } else {
            format!("tcp://{}", self.address)
        };
        let mut failures = 0u32;
        loop {
            if failures > 0 {
                let delay = self.shared.config.backoff(failures);
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            let mut options = SocketOptions::default();
            options.peer_identity(self.shared.identity.clone());
            options.connect_timeout(self.shared.config.handshake_timeout);
            let mut socket = RouterSocket::with_options(options);
            let mut monitor = socket.monitor().boxed();
            let connected = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                connected = socket.connect(&endpoint) => connected,
            };
            if let Err(error) = connected {
                tracing::debug!(peer = %self.id, %endpoint, %error, "mesh connect failed");
                failures = failures.saturating_add(1);
                continue;
            }
            if let Some(identity) = connected_identity(&mut monitor)
                && identity[..] != *self.id.as_bytes()
            {
                tracing::warn!(
                    peer = %self.id,
                    %endpoint,
                    identity = %String::from_utf8_lossy(&identity),
                    "mesh peer answered with another identity; retrying"
                );
                failures = failures.saturating_add(1);
                continue;
            }
            let (send, mut receive) = socket.split();
            if !self
                .shared
                .set_socket(&self.id, self.generation, Some(send))
            {
                return;
            }
            tracing::debug!(peer = %self.id, %endpoint, "mesh peer connected");
            let cancelled = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => true,
                _ = until_lost(&mut monitor, &mut receive) => false,
            };
            self.shared.set_socket(&self.id, self.generation, None);
            // Dropping both halves (senders hold the send half only for a moment) closes it.
            drop(receive);
            if self.shared.shutdown.is_cancelled() {
                return;
            }
            if !cancelled {
                tracing::info!(peer = %self.id, "mesh peer connection lost; reconnecting");
            }
            // Whatever was written to the connection may be lost.
            let target = Arc::clone(&self.id);
            self.shared.emit(LinkEvent::PeerDown { target });
            if cancelled {
                return;
            }
            failures = 1;
        }
    }
}

/// The identity of the connection `connect` just made, from the monitor's `Connected` event
/// (which the crate raises before `connect` returns). `None` if it was lost.
fn connected_identity(monitor: &mut BoxStream<'static, SocketEvent>) -> Option<PeerIdentity> {
    while let Some(Some(event)) = monitor.next().now_or_never() {
        if let SocketEvent::Connected(_, identity) = event {
            return Some(identity);
        }
    }
    tracing::warn!("mesh connect reported no identity; assuming the expected one");
    None
}

/// Returns when the socket's one connection is gone.
async fn until_lost(monitor: &mut BoxStream<'static, SocketEvent>, receive: &mut RouterRecvHalf) {
    loop {
        tokio::select! {
            event = monitor.next() => match event {
                Some(SocketEvent::Disconnected(_)) | None => return,
                Some(_) => {}
            },
            // Peers never send on this connection, but polling it is what notices its read
            // side ending (the crate then reports `Disconnected`).
            received = receive.recv() => {
                if let Err(error) = received {
                    tracing::debug!(%error, "mesh send socket receive failed");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::frame::parse_address;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = ZmqLinkConfig::default();
        assert_eq!(config.backoff(1), Duration::from_millis(200));
        assert_eq!(config.backoff(2), Duration::from_millis(400));
        assert_eq!(config.backoff(3), Duration::from_millis(800));
        assert_eq!(config.backoff(10), Duration::from_secs(5));
        assert_eq!(config.backoff(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn server_ids_must_be_valid_identities() {
        assert!(identity("play-1").is_ok());
        assert!(identity("").is_err());
        assert!(identity("\0play").is_err());
        assert!(identity(&"x".repeat(256)).is_err());
        assert!(identity(&"x".repeat(255)).is_ok());
    }

    #[tokio::test]
    async fn binding_reports_a_connectable_address() {
        let link = ZmqLink::bind("z", "127.0.0.1:0", None, ZmqLinkConfig::default())
            .await
            .unwrap();
        let (host, port) = parse_address(link.address()).unwrap();
        assert_eq!(host, "127.0.0.1");
        assert_ne!(port, 0);
        assert!(link.address().starts_with("tcp://127.0.0.1:"));

        let unspecified =
            ZmqLink::bind("z", "tcp://0.0.0.0:0", None, ZmqLinkConfig::default()).await;
        assert!(matches!(unspecified, Err(ZmqLinkError::UnspecifiedHost)));
        let advertised = ZmqLink::bind(
            "z",
            "tcp://0.0.0.0:0",
            Some("10.1.2.3"),
            ZmqLinkConfig::default(),
        )
        .await
        .unwrap();
        assert!(advertised.address().starts_with("tcp://10.1.2.3:"));
    }

    #[test]
    fn sender_names_are_interned_and_bounded() {
        let mut names = SenderNames::default();
        let first = names.name(Bytes::from_static(b"play-1")).unwrap();
        assert_eq!(&*first, "play-1");
        names.name(Bytes::from_static(b"play-2")).unwrap();
        let again = names.name(Bytes::from_static(b"play-1")).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one allocation per sender");
        let not_utf8 = Bytes::from_static(&[0xff, 0xfe]);
        assert_eq!(names.name(not_utf8.clone()), Err(not_utf8));
        for n in 0..MAX_SENDER_NAMES * 2 {
            names.name(Bytes::from(format!("s-{n}"))).unwrap();
            assert!(names.names.len() <= MAX_SENDER_NAMES);
        }
    }

    #[tokio::test]
    async fn binding_over_ipv6_reports_a_bracketed_address() {
        if std::net::TcpListener::bind("[::1]:0").is_err() {
            eprintln!("no IPv6 loopback on this machine: skipped");
            return;
        }
        let link = ZmqLink::bind("z", "tcp://[::1]:0", None, ZmqLinkConfig::default())
            .await
            .unwrap();
        assert!(
            link.address().starts_with("tcp://[::1]:"),
            "{}",
            link.address()
        );
        let unspecified = ZmqLink::bind("z", "tcp://[::]:0", None, ZmqLinkConfig::default()).await;
        assert!(matches!(unspecified, Err(ZmqLinkError::UnspecifiedHost)));
    }
}
