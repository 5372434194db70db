//! [`ZmqLink`]: the mesh over ZeroMQ ROUTER sockets (ZMTP 3, the pure-Rust `zeromq` crate), so
//! any ZMTP 3 peer (libzmq, NetMQ) can be a mesh server.
//!
//! ```text
//!  server `a`                                              server `b`
//!  ┌──────────────────────────────┐                       ┌──────────────────────────────┐
//!  │ send task: ROUTER id="a"     │ ──[b][header][body]─▶ │ receive task: ROUTER id="b"  │
//!  │ (dials every peer, sends)    │   (ROUTER eats [b])   │ (bound, receives only)       │
//!  │                              │                       │ recv → [a][header][body]     │
//!  │ receive task: ROUTER id="a"  │ ◀─[a][header][body]── │ send task: ROUTER id="b"     │
//!  └──────────────────────────────┘                       └──────────────────────────────┘
//! ```
//!
//! Both sockets of a server carry its server id as their ZMTP `Identity`, so the bound ROUTER
//! of `b` names frames from `a` by `a`'s id, and `a`'s dialing ROUTER routes to `b` by `b`'s
//! id (learned from the READY handshake of the connection it dialed).
//!
//! # What the `zeromq` crate lacks, and what this link does about it
//!
//! * **No ROUTER reconnect, no heartbeats.** The send task keeps the wanted peers (from
//!   [`MeshLink::connect`]) and re-dials a lost one with exponential backoff. A lost peer is
//!   seen through the socket monitor's `Disconnected` event, which the crate raises when the
//!   connection's read side ends (the send task keeps polling `recv` on its socket for exactly
//!   that) or its writer fails, and through failed sends. A peer that vanishes without
//!   closing its TCP connection (power loss, partition) is not noticed until TCP gives up:
//!   without ZMTP heartbeats, requests to it end by their own timeout.
//! * **`connect` blocks its socket until the handshake ends.** Dialing happens in one task per
//!   peer with a plain TCP probe first; only a reachable peer is handed to the send task,
//!   whose ZMTP connect is bounded by [`ZmqLinkConfig::handshake_timeout`]. A dead peer in
//!   the directory therefore never stalls sends to the others (the probe connection is closed
//!   at once; the peer sees a connection that ends before its greeting).
//! * **`send` waits when a peer's queue inside the crate is full** (100,000 messages): every
//!   socket send is bounded by [`ZmqLinkConfig::send_timeout`]; a send that fails or times out
//!   fails its frame ([`LinkEvent::SendFailed`]), drops the connection and reports
//!   [`LinkEvent::PeerDown`]. The crate's writer task of a stalled connection cannot be
//!   aborted from outside; it ends when TCP does.
//! * **No way to drop one connection.** The crate's public (if undocumented as such)
//!   `MultiPeerBackend::peer_disconnected` removes a peer by identity; the link uses it for
//!   `disconnect`, address changes, stalled peers and wrong identities.
//! * **Connections are keyed by identity only.** Every peer must set its identity to its
//!   server id (a peer without one gets a random id and cannot be routed to: the link drops
//!   such a connection and retries). A late failure of a replaced connection can remove its
//!   successor; that shows up as a `Disconnected` event and is healed by a re-dial.
//! * No maximum message size can be set on the crate's decoder.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeromq::util::PeerIdentity;
use zeromq::{
    Endpoint, Host, MultiPeerBackend, RouterSocket, Socket, SocketEvent, SocketOptions, SocketRecv,
    SocketSend, ZmqError, ZmqMessage,
};

use crate::link::{LinkError, LinkEvent, MeshLink, parse_address};

/// Settings of a [`ZmqLink`].
#[derive(Clone, Copy, Debug)]
pub struct ZmqLinkConfig {
    /// Frames queued for the send task (all peers together) before sends fail with `Busy`.
    /// Default: 8192.
    pub send_queue: usize,
    /// Longest wait for one socket send (a full queue to a stalled peer); the frame then
    /// fails and the connection is dropped. Default: 5 s.
    pub send_timeout: Duration,
    /// Longest wait for the TCP probe that precedes every dial. Default: 3 s.
    pub connect_timeout: Duration,
    /// Longest ZMTP connect (TCP connect, greeting, READY) on the sending socket; the send
    /// task waits for it, so keep it short. Default: 2 s.
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
            send_queue: 8192,
            send_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
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

/// A frame for the send task.
struct Outgoing {
    target: Arc<str>,
    header: Bytes,
    payload: Bytes,
}

/// A connection the node asked for (the send task's desired state).
struct Wanted {
    /// The peer's id, shared by every frame to it.
    id: Arc<str>,
    address: String,
    /// Changes whenever the address changes, so the send task can tell a replaced peer.
    generation: u64,
    /// Set by the send task while a connection with the right identity is up.
    up: Arc<AtomicBool>,
}

struct Shared {
    server_id: Arc<str>,
    address: String,
    config: ZmqLinkConfig,
    events: mpsc::Sender<LinkEvent>,
    peers: Mutex<HashMap<String, Wanted>>,
    next_generation: Mutex<u64>,
    frames: mpsc::Sender<Outgoing>,
    /// Wakes the send task after `peers` changed (a stored permit is never lost).
    wake: Notify,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    fn peers(&self) -> MutexGuard<'_, HashMap<String, Wanted>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands an event to the node, unless the link is closing.
    async fn emit(&self, event: LinkEvent) {
        // Fast path: room in the queue (the usual case) needs no cancellable wait.
        let event = match self.events.try_send(event) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(event)) => event,
        };
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = self.events.send(event) => {}
        }
    }
}

/// The mesh link over ZeroMQ: a bound ROUTER receives, a second ROUTER with the same
/// identity dials the peers and sends. Each socket is owned by one task; the
/// [`MeshLink`] methods only update shared state or queue frames, and return at once.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use playhouse_mesh::{MeshLink, ZmqLink, ZmqLinkConfig};
///
/// let (events_tx, mut events) = tokio::sync::mpsc::channel(1024);
/// let link = ZmqLink::bind("play-1", "tcp://127.0.0.1:0", None, events_tx, ZmqLinkConfig::default())
///     .await?;
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
    /// optional, port 0 picks a free port) and starts both socket tasks; everything received
    /// goes to `events`. The advertised [`address`](MeshLink::address) is
    /// `tcp://{advertise_host or the bound IP}:{bound port}`.
    pub async fn bind(
        server_id: &str,
        endpoint: &str,
        advertise_host: Option<&str>,
        events: mpsc::Sender<LinkEvent>,
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

        let mut send_options = SocketOptions::default();
        send_options.peer_identity(identity);
        send_options.connect_timeout(config.handshake_timeout);
        let mut sender = RouterSocket::with_options(send_options);
        let monitor = sender.monitor().boxed();
        let backend = sender.backend();

        let (frames_tx, frames) = mpsc::channel(config.send_queue.max(1));
        let (dialed_tx, dialed) = mpsc::channel(256);
        let shared = Arc::new(Shared {
            server_id: Arc::from(server_id),
            address,
            config,
            events,
            peers: Mutex::new(HashMap::new()),
            next_generation: Mutex::new(0),
            frames: frames_tx,
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared.tasks.spawn(receive(Arc::clone(&shared), receiver));
        let task = SendTask {
            shared: Arc::clone(&shared),
            socket: sender,
            backend,
            monitor,
            conns: HashMap::new(),
            dialed_tx,
        };
        shared.tasks.spawn(task.run(frames, dialed));
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

    fn connect(&self, server_id: &str, address: &str) {
        if self.shared.shutdown.is_cancelled() {
            return;
        }
        {
            let mut peers = self.shared.peers();
            if peers.get(server_id).is_some_and(|p| p.address == address) {
                return;
            }
            let generation = {
                let mut next = self
                    .shared
                    .next_generation
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                *next += 1;
                *next
            };
            let wanted = Wanted {
                id: Arc::from(server_id),
                address: address.to_owned(),
                generation,
                up: Arc::new(AtomicBool::new(false)),
            };
            if let Some(old) = peers.insert(server_id.to_owned(), wanted) {
                old.up.store(false, Ordering::Release);
            }
        }
        self.shared.wake.notify_one();
    }

    fn disconnect(&self, server_id: &str) {
        let removed = self.shared.peers().remove(server_id);
        if let Some(old) = removed {
            old.up.store(false, Ordering::Release);
            self.shared.wake.notify_one();
        }
    }

    fn send(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), LinkError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(LinkError::Closed);
        }
        let target = {
            let peers = self.shared.peers();
            let peer = peers
                .get(target)
                .ok_or_else(|| LinkError::Unknown(target.to_owned()))?;
            if !peer.up.load(Ordering::Acquire) {
                return Err(LinkError::NotConnected(target.to_owned()));
            }
            Arc::clone(&peer.id)
        };
        let frame = Outgoing {
            target,
            header,
            payload,
        };
        self.shared.frames.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(frame) => LinkError::Busy(frame.target.to_string()),
            mpsc::error::TrySendError::Closed(_) => LinkError::Closed,
        })
    }

    fn close(&self) {
        self.shared.shutdown.cancel();
        for (_, peer) in self.shared.peers().drain() {
            peer.up.store(false, Ordering::Release);
        }
        self.shared.tasks.close();
    }
}

impl Drop for ZmqLink {
    fn drop(&mut self) {
        self.close();
    }
}

/// Owns the bound ROUTER: every `[sender id][header][payload]` becomes a
/// [`LinkEvent::Message`].
async fn receive(shared: Arc<Shared>, mut socket: RouterSocket) {
    let backend = socket.backend();
    // Interned sender ids: one allocation per peer, not per message.
    let mut names: HashMap<Bytes, Arc<str>> = HashMap::new();
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
        let from = match names.get(&id) {
            Some(from) => Arc::clone(from),
            None => {
                let Ok(name) = std::str::from_utf8(&id) else {
                    tracing::warn!(peer = ?id, "mesh peer without a server id; dropping the connection");
                    if let Ok(peer) = PeerIdentity::try_from(id) {
                        backend.peer_disconnected(&peer);
                    }
                    continue;
                };
                if names.len() >= 4096 {
                    names.clear();
                }
                let name: Arc<str> = Arc::from(name);
                names.insert(id, Arc::clone(&name));
                name
            }
        };
        shared
            .emit(LinkEvent::Message {
                from,
                header,
                payload,
            })
            .await;
    }
}

/// A probe reached this peer (of this generation): time for the ZMTP connect.
struct Dialed {
    id: Arc<str>,
    generation: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A dial task is probing (or waiting to).
    Dialing,
    /// Connected with the right identity; frames flow.
    Up,
}

/// The send task's view of one peer.
struct Conn {
    address: String,
    generation: u64,
    /// The peer's routing id (= its server id).
    identity: Bytes,
    up: Arc<AtomicBool>,
    state: State,
    /// Failed connects since the last success.
    failures: u32,
    /// Stops this peer's dial task.
    dial: CancellationToken,
}

/// Owns the sending ROUTER: dials peers, sends frames, watches connections.
struct SendTask {
    shared: Arc<Shared>,
    socket: RouterSocket,
    /// The socket's peer table, to drop one connection.
    backend: Arc<dyn MultiPeerBackend>,
    monitor: BoxStream<'static, SocketEvent>,
    conns: HashMap<Arc<str>, Conn>,
    dialed_tx: mpsc::Sender<Dialed>,
}

impl SendTask {
    async fn run(
        mut self,
        mut frames: mpsc::Receiver<Outgoing>,
        mut dialed: mpsc::Receiver<Dialed>,
    ) {
        self.reconcile().await;
        loop {
            tokio::select! {
                biased;
                _ = self.shared.shutdown.cancelled() => break,
                _ = self.shared.wake.notified() => self.reconcile().await,
                Some(event) = self.monitor.next() => self.on_monitor(event).await,
                Some(dialed) = dialed.recv() => self.on_dialed(dialed).await,
                // Peers never send on this socket, but polling it is what notices a connection
                // whose read side ended (the crate then reports `Disconnected`).
                received = self.socket.recv() => {
                    if let Err(error) = received {
                        tracing::warn!(%error, "mesh send socket receive failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Some(frame) = frames.recv() => {
                    self.on_frame(frame).await;
                    // Drain a batch before polling everything else again.
                    for _ in 1..128 {
                        match frames.try_recv() {
                            Ok(frame) => self.on_frame(frame).await,
                            Err(_) => break,
                        }
                    }
                }
            }
        }
        for conn in self.conns.values() {
            conn.dial.cancel();
            conn.up.store(false, Ordering::Release);
        }
        // Dropping the socket closes every connection it dialed.
    }

    /// Brings the connections in line with the wanted peers.
    async fn reconcile(&mut self) {
        let wanted: HashMap<Arc<str>, (String, u64, Arc<AtomicBool>)> = self
            .shared
            .peers()
            .values()
            .map(|w| {
                (
                    Arc::clone(&w.id),
                    (w.address.clone(), w.generation, Arc::clone(&w.up)),
                )
            })
            .collect();
        let stale: Vec<Arc<str>> = self
            .conns
            .iter()
            .filter(|(id, conn)| {
                wanted
                    .get(*id)
                    .is_none_or(|(_, generation, _)| *generation != conn.generation)
            })
            .map(|(id, _)| Arc::clone(id))
            .collect();
        for id in stale {
            let Some(conn) = self.conns.remove(&id) else {
                continue;
            };
            conn.dial.cancel();
            conn.up.store(false, Ordering::Release);
            if conn.state == State::Up {
                tracing::debug!(peer = %id, address = %conn.address, "mesh peer dropped");
                self.drop_connection(&conn.identity);
                // Whatever was written to the old connection may be lost.
                self.shared.emit(LinkEvent::PeerDown { target: id }).await;
            }
        }
        for (id, (address, generation, up)) in wanted {
            if self.conns.contains_key(&id) {
                continue;
            }
            let conn = Conn {
                address,
                generation,
                identity: Bytes::copy_from_slice(id.as_bytes()),
                up,
                state: State::Dialing,
                failures: 0,
                dial: self.shared.shutdown.child_token(),
            };
            self.spawn_dial(&id, &conn, Duration::ZERO);
            self.conns.insert(id, conn);
        }
    }

    fn spawn_dial(&self, id: &Arc<str>, conn: &Conn, delay: Duration) {
        self.shared.tasks.spawn(dial(
            self.shared.config,
            Arc::clone(id),
            conn.address.clone(),
            conn.generation,
            delay,
            conn.dial.clone(),
            self.dialed_tx.clone(),
        ));
    }

    /// Removes the connection with `identity` from the socket (no-op if there is none).
    fn drop_connection(&self, identity: &Bytes) {
        if let Ok(peer) = PeerIdentity::try_from(identity.clone()) {
            self.backend.peer_disconnected(&peer);
        }
    }

    /// The connection to an up peer is gone (or useless): report it and re-dial.
    async fn lost(&mut self, id: &str) {
        let Some((id, _)) = self.conns.get_key_value(id) else {
            return;
        };
        let id = Arc::clone(id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.state != State::Up {
            return;
        }
        conn.state = State::Dialing;
        conn.up.store(false, Ordering::Release);
        conn.failures = 1;
        // The crate removed it already when it reported the loss; not when a send failed.
        let identity = conn.identity.clone();
        let delay = self.shared.config.backoff(1);
        self.drop_connection(&identity);
        if let Some(conn) = self.conns.get(&id) {
            self.spawn_dial(&id, conn, delay);
        }
        tracing::info!(peer = %id, "mesh peer connection lost; reconnecting");
        self.shared.emit(LinkEvent::PeerDown { target: id }).await;
    }

    async fn on_monitor(&mut self, event: SocketEvent) {
        if let SocketEvent::Disconnected(peer) = event {
            // The crate reports a removal only when a connection with that identity existed,
            // so for an up peer this is its current connection.
            if let Ok(id) = std::str::from_utf8(&peer) {
                self.lost(id).await;
            }
        }
    }

    async fn on_dialed(&mut self, dialed: Dialed) {
        let Some(conn) = self.conns.get(&dialed.id) else {
            return;
        };
        if conn.generation != dialed.generation || conn.state != State::Dialing {
            return;
        }
        let endpoint = if conn.address.contains("://") {
            conn.address.clone()
        } else {
            format!("tcp://{}", conn.address)
        };
        let connected = self.socket.connect(&endpoint).await;
        let identity = match connected {
            Ok(()) => self.connected_identity().await,
            Err(error) => {
                tracing::debug!(peer = %dialed.id, %endpoint, %error, "mesh connect failed");
                self.retry(&dialed.id);
                return;
            }
        };
        let Some(conn) = self.conns.get_mut(&dialed.id) else {
            // Unreachable: the task owns `conns` and did not reconcile meanwhile.
            return;
        };
        match identity {
            Some(identity) if identity[..] != conn.identity[..] => {
                tracing::warn!(
                    peer = %dialed.id,
                    %endpoint,
                    identity = %String::from_utf8_lossy(&identity),
                    "mesh peer answered with another identity; retrying"
                );
                // Unless it is the live connection of another wanted peer, drop it.
                let other_is_up = std::str::from_utf8(&identity)
                    .ok()
                    .and_then(|other| self.conns.get(other))
                    .is_some_and(|other| other.state == State::Up);
                if !other_is_up {
                    self.drop_connection(&Bytes::from(identity));
                }
                self.retry(&dialed.id);
            }
            _ => {
                conn.state = State::Up;
                conn.failures = 0;
                conn.up.store(true, Ordering::Release);
                tracing::debug!(peer = %dialed.id, %endpoint, "mesh peer connected");
            }
        }
    }

    /// The identity of the connection `connect` just made, from the monitor's `Connected`
    /// event (other events found on the way are handled). `None` if the event was lost.
    async fn connected_identity(&mut self) -> Option<PeerIdentity> {
        while let Some(Some(event)) = self.monitor.next().now_or_never() {
            match event {
                SocketEvent::Connected(_, identity) => return Some(identity),
                event => self.on_monitor(event).await,
            }
        }
        tracing::warn!("mesh connect reported no identity; assuming the expected one");
        None
    }

    /// A connect to `id` failed: dial again after a backoff.
    fn retry(&mut self, id: &Arc<str>) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.failures = conn.failures.saturating_add(1);
        let delay = self.shared.config.backoff(conn.failures);
        if let Some(conn) = self.conns.get(id) {
            self.spawn_dial(id, conn, delay);
        }
    }

    async fn on_frame(&mut self, frame: Outgoing) {
        let Outgoing {
            target,
            header,
            payload,
        } = frame;
        let identity = match self.conns.get(&target) {
            Some(conn) if conn.state == State::Up => conn.identity.clone(),
            // Went down (or away) after the frame was queued.
            _ => {
                self.shared
                    .emit(LinkEvent::SendFailed { target, header })
                    .await;
                return;
            }
        };
        let message = ZmqMessage::try_from(vec![identity, header.clone(), payload])
            .expect("three frames are never empty");
        // Most sends complete at once (the peer's queue has room): only a send that would wait
        // gets a timer.
        let timeout = self.shared.config.send_timeout;
        let sent = {
            let mut send = std::pin::pin!(self.socket.send(message));
            let first =
                std::future::poll_fn(|cx| std::task::Poll::Ready(send.as_mut().poll(cx))).await;
            match first {
                std::task::Poll::Ready(result) => Ok(result),
                std::task::Poll::Pending => tokio::time::timeout(timeout, send).await,
            }
        };
        let failure = match sent {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(_) => "send timed out (peer not reading)".to_owned(),
        };
        tracing::warn!(peer = %target, %failure, "mesh send failed");
        self.shared
            .emit(LinkEvent::SendFailed {
                target: Arc::clone(&target),
                header,
            })
            .await;
        self.lost(&target).await;
    }
}

/// Waits `delay`, then probes `address` with TCP until it answers (backing off), then hands
/// the peer to the send task for the ZMTP connect.
async fn dial(
    config: ZmqLinkConfig,
    id: Arc<str>,
    address: String,
    generation: u64,
    mut delay: Duration,
    cancel: CancellationToken,
    dialed: mpsc::Sender<Dialed>,
) {
    let Some((host, port)) = parse_address(&address) else {
        tracing::error!(peer = %id, %address, "bad mesh address");
        return;
    };
    loop {
        if !delay.is_zero() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        let probe = tokio::select! {
            _ = cancel.cancelled() => return,
            probe = tokio::time::timeout(
                config.connect_timeout,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            ) => probe,
        };
        if let Ok(Ok(stream)) = probe {
            drop(stream);
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = dialed.send(Dialed { id, generation }) => {}
            }
            return;
        }
        delay = if delay.is_zero() {
            config.reconnect_backoff
        } else {
            delay.saturating_mul(2).min(config.max_reconnect_backoff)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (tx, _rx) = mpsc::channel(8);
        let link = ZmqLink::bind(
            "z",
            "127.0.0.1:0",
            None,
            tx.clone(),
            ZmqLinkConfig::default(),
        )
        .await
        .unwrap();
        let (host, port) = parse_address(link.address()).unwrap();
        assert_eq!(host, "127.0.0.1");
        assert_ne!(port, 0);
        assert!(link.address().starts_with("tcp://127.0.0.1:"));

        let unspecified = ZmqLink::bind(
            "z",
            "tcp://0.0.0.0:0",
            None,
            tx.clone(),
            ZmqLinkConfig::default(),
        )
        .await;
        assert!(matches!(unspecified, Err(ZmqLinkError::UnspecifiedHost)));
        let advertised = ZmqLink::bind(
            "z",
            "tcp://0.0.0.0:0",
            Some("10.1.2.3"),
            tx,
            ZmqLinkConfig::default(),
        )
        .await
        .unwrap();
        assert!(advertised.address().starts_with("tcp://10.1.2.3:"));
    }
}
