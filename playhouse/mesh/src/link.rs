//! Links move `[header][payload]` frames between servers. [`TcpLink`] is the length-delimited
//! implementation (any byte stream: production TCP or a simulated network).
//!
//! Each connection carries frames one way (dialer → acceptor) plus heartbeats: the dialer
//! sends an empty frame (no header, no payload) every `heartbeat_interval`, the acceptor
//! answers each with an empty frame. A dialer that hears nothing back for
//! `heartbeat_timeout` drops the connection (its requests fail at once) and reconnects; an
//! acceptor that hears nothing drops its side. Without this, a connection that dies without
//! a FIN or RST (a partition, a peer that lost power, a NAT that forgot it) would swallow
//! every message until the socket buffer filled.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use playhouse_transport::Listener;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{Encoder, FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Something a link reports to its mesh node.
#[derive(Debug)]
pub enum LinkEvent {
    /// A message from server `from`.
    Message {
        /// The sending server's id (as the connection identified itself).
        from: Arc<str>,
        /// Encoded `RouteHeader`.
        header: Bytes,
        /// Message body.
        payload: Bytes,
    },
    /// A message accepted by [`MeshLink::send`] could not be delivered: its request (if it
    /// was one) must fail now rather than time out.
    SendFailed {
        /// The server it was for.
        target: Arc<str>,
        /// Its encoded `RouteHeader`.
        header: Bytes,
    },
    /// The connection to `target` broke: messages already written to it may be lost, so
    /// requests in flight to it fail now.
    PeerDown {
        /// The server whose connection broke.
        target: Arc<str>,
    },
}

/// Why a link refused a message at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// No connection to that server was ever requested (not in the directory).
    #[error("server `{0}` is unknown")]
    Unknown(String),
    /// The server is known but its connection is down.
    #[error("server `{0}` is not connected")]
    NotConnected(String),
    /// The send queue to that server is full (it does not keep up).
    #[error("send queue to `{0}` is full")]
    Busy(String),
    /// The link is shut down.
    #[error("link closed")]
    Closed,
}

/// Moves frames between servers. Implementations own their sockets in tasks; every method
/// returns at once (no method ever blocks a stage on a slow peer).
pub trait MeshLink: Send + Sync + 'static {
    /// This server's connectable address, e.g. `tcp://127.0.0.1:5000`.
    fn address(&self) -> &str;
    /// Keeps a connection to `server_id` at `address` (reconnecting as needed); a changed
    /// address replaces the old connection.
    fn connect(&self, server_id: &str, address: &str);
    /// Drops the connection to `server_id`.
    fn disconnect(&self, server_id: &str);
    /// Queues a frame for `target`. Fails at once when the peer is unknown or down.
    fn send(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), LinkError>;
    /// Whether the connection to `server_id` is up right now. The mesh asks before it keeps a
    /// server that went missing from the directory: missing *and* unreachable means gone.
    /// A link that cannot tell answers `true` (the default): such a server is then kept until
    /// its directory entry's TTL would have run out.
    fn is_connected(&self, server_id: &str) -> bool {
        let _ = server_id;
        true
    }
    /// Stops every task of the link.
    fn close(&self);
    /// Asks the link to hand its events to `deliver`, called on the link's own tasks, instead
    /// of sending them through the events channel: one task hop less per message. `deliver`
    /// never blocks. A link that cannot returns false and keeps using the channel (the
    /// default). [`close`](MeshLink::close) drops `deliver`.
    fn deliver_directly(&self, deliver: EventHandler) -> bool {
        let _ = deliver;
        false
    }
}

/// Handles a link event where it happens (see [`MeshLink::deliver_directly`]).
pub type EventHandler = Arc<dyn Fn(LinkEvent) + Send + Sync>;

/// Opens byte streams to peers (real TCP, or a simulated network).
pub trait Dialer: Send + Sync + 'static {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// Connects to `host:port`.
    fn dial(&self, host: &str, port: u16) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// Dials with tokio's TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpDialer;

impl Dialer for TcpDialer {
    type Io = tokio::net::TcpStream;

    async fn dial(&self, host: &str, port: u16) -> io::Result<Self::Io> {
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Settings of a [`TcpLink`].
#[derive(Clone, Copy, Debug)]
pub struct TcpLinkConfig {
    /// Frames queued per peer before sends fail with `Busy`. Default: 8192.
    pub send_queue: usize,
    /// A write that takes longer drops the connection (and fails its frames). Default: 5 s.
    pub send_timeout: Duration,
    /// Default: 3 s.
    pub connect_timeout: Duration,
    /// Wait before reconnecting. Default: 200 ms.
    pub reconnect_backoff: Duration,
    /// Largest frame accepted. Default: 16 MiB.
    pub max_frame: usize,
    /// How often a connection's dialer sends a heartbeat. [`Duration::ZERO`] turns
    /// heartbeats and the silence check off. Default: 1 s.
    pub heartbeat_interval: Duration,
    /// A connection on which nothing is heard for this long is dropped (and redialed).
    /// Default: 5 s.
    pub heartbeat_timeout: Duration,
}

impl Default for TcpLinkConfig {
    fn default() -> Self {
        TcpLinkConfig {
            send_queue: 8192,
            send_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            reconnect_backoff: Duration::from_millis(200),
            max_frame: 16 * 1024 * 1024,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
        }
    }
}

type Frame = (Bytes, Bytes);

/// A heartbeat (and its answer): a frame with no header and no payload. Real frames always
/// have a header (the hello's is the server id; a message's names its sender).
const HEARTBEAT: [u8; 8] = [4, 0, 0, 0, 0, 0, 0, 0];

impl TcpLinkConfig {
    fn heartbeats(&self) -> bool {
        !self.heartbeat_interval.is_zero() && !self.heartbeat_timeout.is_zero()
    }
}

struct Peer {
    address: String,
    tx: mpsc::Sender<Frame>,
    up: Arc<AtomicBool>,
    cancel: CancellationToken,
}

struct Inner<D> {
    server_id: Arc<str>,
    address: String,
    dialer: Arc<D>,
    config: TcpLinkConfig,
    events: mpsc::Sender<LinkEvent>,
    /// By server id; ordered, so closing the link stops its connections in a fixed order.
    peers: Mutex<BTreeMap<String, Peer>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Length-delimited frames over byte streams: one outgoing connection per peer (sending
/// only), incoming connections receiving only — the same discipline as the ZeroMQ link.
pub struct TcpLink<D: Dialer = TcpDialer> {
    inner: Arc<Inner<D>>,
}

impl<D: Dialer> fmt::Debug for TcpLink<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpLink")
            .field("server_id", &self.inner.server_id)
            .field("address", &self.inner.address)
            .finish_non_exhaustive()
    }
}

/// Writes `[len: u32 LE][header_len: u32 LE][header][payload]` straight into the socket
/// buffer; frames are read back with a little-endian [`LengthDelimitedCodec`].
#[derive(Debug)]
struct FrameEncoder;

impl Encoder<Frame> for FrameEncoder {
    type Error = io::Error;

    fn encode(&mut self, (header, payload): Frame, dst: &mut BytesMut) -> io::Result<()> {
        let len = 4 + header.len() + payload.len();
        let len = u32::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mesh frame too large"))?;
        dst.reserve(4 + len as usize);
        dst.put_u32_le(len);
        dst.put_u32_le(header.len() as u32);
        dst.put_slice(&header);
        dst.put_slice(&payload);
        Ok(())
    }
}

/// Splits a received frame into `(header, payload)`.
fn split_frame(mut frame: Bytes) -> Option<Frame> {
    if frame.len() < 4 {
        return None;
    }
    let header_len = frame.get_u32_le() as usize;
    if header_len > frame.len() {
        return None;
    }
    let header = frame.split_to(header_len);
    Some((header, frame))
}

fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_type::<u32>()
        .max_frame_length(max_frame)
        .new_codec()
}

/// `tcp://host:port` → (host, port).
pub(crate) fn parse_address(address: &str) -> Option<(String, u16)> {
    let rest = address.strip_prefix("tcp://").unwrap_or(address);
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port.parse().ok()?))
}

impl TcpLink<TcpDialer> {
    /// Binds `bind` (e.g. `127.0.0.1:0`) with real TCP; the advertised address uses the bound
    /// port and `advertise_host` (default: the bound IP, which must not be unspecified).
    pub async fn bind(
        server_id: &str,
        bind: &str,
        advertise_host: Option<&str>,
        events: mpsc::Sender<LinkEvent>,
    ) -> io::Result<TcpLink<TcpDialer>> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let local = listener.local_addr()?;
        let host = match advertise_host {
            Some(host) => host.to_owned(),
            None if local.ip().is_unspecified() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "binding 0.0.0.0 needs an advertised host",
                ));
            }
            None => local.ip().to_string(),
        };
        let address = format!("tcp://{host}:{}", local.port());
        Ok(TcpLink::start(
            server_id,
            listener,
            address,
            TcpDialer,
            events,
            TcpLinkConfig::default(),
        ))
    }
}

impl<D: Dialer> TcpLink<D> {
    /// Starts a link receiving on `listener` (advertised as `address`) and dialing peers
    /// with `dialer`; everything received goes to `events`.
    pub fn start<L: Listener>(
        server_id: &str,
        listener: L,
        address: String,
        dialer: D,
        events: mpsc::Sender<LinkEvent>,
        config: TcpLinkConfig,
    ) -> TcpLink<D> {
        let inner = Arc::new(Inner {
            server_id: Arc::from(server_id),
            address,
            dialer: Arc::new(dialer),
            config,
            events,
            peers: Mutex::new(BTreeMap::new()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        inner.tasks.spawn(accept_loop(listener, Arc::clone(&inner)));
        TcpLink { inner }
    }
}

impl<D: Dialer> Inner<D> {
    fn peers(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Peer>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<D: Dialer> MeshLink for TcpLink<D> {
    fn address(&self) -> &str {
        &self.inner.address
    }

    fn connect(&self, server_id: &str, address: &str) {
        let inner = &self.inner;
        let mut peers = inner.peers();
        if peers.get(server_id).is_some_and(|p| p.address == address) {
            return;
        }
        if let Some(old) = peers.remove(server_id) {
            old.cancel.cancel();
        }
        let (tx, rx) = mpsc::channel(inner.config.send_queue);
        let peer = Peer {
            address: address.to_owned(),
            tx,
            up: Arc::new(AtomicBool::new(false)),
            cancel: inner.shutdown.child_token(),
        };
        let task = run_peer(
            Arc::clone(inner),
            Arc::from(server_id),
            address.to_owned(),
            rx,
            Arc::clone(&peer.up),
            peer.cancel.clone(),
        );
        inner.tasks.spawn(task);
        peers.insert(server_id.to_owned(), peer);
    }

    fn disconnect(&self, server_id: &str) {
        if let Some(peer) = self.inner.peers().remove(server_id) {
            peer.cancel.cancel();
        }
    }

    fn send(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), LinkError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(LinkError::Closed);
        }
        let peers = self.inner.peers();
        let peer = peers
            .get(target)
            .ok_or_else(|| LinkError::Unknown(target.to_owned()))?;
        if !peer.up.load(Ordering::Acquire) {
            return Err(LinkError::NotConnected(target.to_owned()));
        }
        peer.tx.try_send((header, payload)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LinkError::Busy(target.to_owned()),
            mpsc::error::TrySendError::Closed(_) => LinkError::NotConnected(target.to_owned()),
        })
    }

    fn is_connected(&self, server_id: &str) -> bool {
        self.inner
            .peers()
            .get(server_id)
            .is_some_and(|peer| peer.up.load(Ordering::Acquire))
    }

    fn close(&self) {
        self.inner.shutdown.cancel();
        self.inner.peers().clear();
        self.inner.tasks.close();
    }
}

impl<D: Dialer> Drop for TcpLink<D> {
    fn drop(&mut self) {
        self.close();
    }
}

async fn accept_loop<L: Listener, D: Dialer>(mut listener: L, inner: Arc<Inner<D>>) {
    loop {
        tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((io, _)) => {
                    inner.tasks.spawn(receive(io, Arc::clone(&inner)));
                }
                Err(error) => {
                    tracing::warn!(%error, "mesh accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Reads one incoming connection: a hello frame with the peer's id, then messages; answers
/// heartbeats, and drops the connection when the dialer falls silent.
async fn receive<Io, D>(io: Io, inner: Arc<Inner<D>>)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    D: Dialer,
{
    let config = inner.config;
    let (read, mut write) = tokio::io::split(io);
    let mut frames = FramedRead::new(read, codec(config.max_frame));
    // The first frame is a hello whose header is the peer's server id.
    let hello = tokio::time::timeout(config.connect_timeout, frames.next()).await;
    let Ok(Some(Ok(hello))) = hello else {
        return;
    };
    let Some((id, _)) = split_frame(hello.freeze()) else {
        return;
    };
    let Ok(from) = std::str::from_utf8(&id) else {
        return;
    };
    let from: Arc<str> = Arc::from(from);
    let silence = config.heartbeat_timeout;
    let mut heard = tokio::time::Instant::now();
    loop {
        let deadline = heard + silence;
        let frame = tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return,
            frame = frames.next() => frame,
            _ = tokio::time::sleep_until(deadline), if config.heartbeats() => {
                tracing::warn!(%from, "mesh peer silent; dropping its connection");
                return;
            }
        };
        let Some(Ok(frame)) = frame else {
            return;
        };
        heard = tokio::time::Instant::now();
        let Some((header, payload)) = split_frame(frame.freeze()) else {
            tracing::warn!(%from, "malformed mesh frame; dropping the connection");
            return;
        };
        if header.is_empty() {
            let answer = tokio::time::timeout(config.send_timeout, write.write_all(&HEARTBEAT));
            if !matches!(answer.await, Ok(Ok(()))) {
                return;
            }
            continue;
        }
        let event = LinkEvent::Message {
            from: Arc::clone(&from),
            header,
            payload,
        };
        if inner.events.send(event).await.is_err() {
            return;
        }
    }
}

/// Owns the outgoing connection to one peer: dial, hello, write batches, reconnect.
async fn run_peer<D: Dialer>(
    inner: Arc<Inner<D>>,
    target: Arc<str>,
    address: String,
    mut rx: mpsc::Receiver<Frame>,
    up: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let config = inner.config;
    let Some((host, port)) = parse_address(&address) else {
        tracing::error!(%target, %address, "bad mesh address");
        return;
    };
    loop {
        let dialed = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            dialed = tokio::time::timeout(config.connect_timeout, inner.dialer.dial(&host, port)) => dialed,
        };
        if let Ok(Ok(io)) = dialed {
            let (read, write) = tokio::io::split(io);
            let mut write = FramedWrite::new(write, FrameEncoder);
            // The acceptor only ever answers heartbeats on this connection.
            let mut answers = FramedRead::new(read, codec(HEARTBEAT.len()));
            let hello = (
                Bytes::copy_from_slice(inner.server_id.as_bytes()),
                Bytes::new(),
            );
            let greeted = tokio::time::timeout(config.send_timeout, write.send(hello)).await;
            if matches!(greeted, Ok(Ok(()))) {
                up.store(true, Ordering::Release);
                tracing::debug!(%target, %address, "mesh peer connected");
                let mut batch = Vec::new();
                let mut heard = tokio::time::Instant::now();
                let mut next_beat = heard;
                loop {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => {
                            up.store(false, Ordering::Release);
                            return;
                        }
                        answer = answers.next() => {
                            if let Some(Ok(_)) = answer {
                                heard = tokio::time::Instant::now();
                                continue;
                            }
                            // EOF or error: the peer is gone.
                            up.store(false, Ordering::Release);
                            tracing::debug!(%target, "mesh peer went away; reconnecting");
                            peer_down(&inner, &target).await;
                            break;
                        }
                        _ = tokio::time::sleep_until(heard + config.heartbeat_timeout),
                            if config.heartbeats() =>
                        {
                            up.store(false, Ordering::Release);
                            tracing::warn!(%target, "mesh peer silent; reconnecting");
                            peer_down(&inner, &target).await;
                            break;
                        }
                        _ = tokio::time::sleep_until(next_beat), if config.heartbeats() => {
                            let beat = (Bytes::new(), Bytes::new());
                            if !write_batch(&mut write, &[beat], config.send_timeout).await {
                                up.store(false, Ordering::Release);
                                tracing::warn!(%target, "mesh heartbeat not sent; reconnecting");
                                peer_down(&inner, &target).await;
                                break;
                            }
                            next_beat = tokio::time::Instant::now() + config.heartbeat_interval;
                        }
                        frame = rx.recv() => {
                            let Some(frame) = frame else { return };
                            batch.clear();
                            batch.push(frame);
                            while batch.len() < 256 {
                                match rx.try_recv() {
                                    Ok(frame) => batch.push(frame),
                                    Err(_) => break,
                                }
                            }
                            if !write_batch(&mut write, &batch, config.send_timeout).await {
                                up.store(false, Ordering::Release);
                                tracing::warn!(%target, "mesh send failed; reconnecting");
                                fail(&inner, &target, batch.drain(..).map(|(h, _)| h)).await;
                                peer_down(&inner, &target).await;
                                break;
                            }
                        }
                    }
                }
            }
        }
        up.store(false, Ordering::Release);
        // Whatever was queued for the dead connection fails now.
        let mut queued = Vec::new();
        while let Ok((header, _)) = rx.try_recv() {
            queued.push(header);
        }
        fail(&inner, &target, queued.into_iter()).await;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(config.reconnect_backoff) => {}
        }
    }
}

async fn write_batch<W: AsyncWrite + Unpin>(
    write: &mut FramedWrite<W, FrameEncoder>,
    batch: &[Frame],
    timeout: Duration,
) -> bool {
    let send = async {
        for frame in batch {
            write.feed(frame.clone()).await?;
        }
        write.flush().await
    };
    matches!(tokio::time::timeout(timeout, send).await, Ok(Ok(())))
}

async fn peer_down<D: Dialer>(inner: &Inner<D>, target: &Arc<str>) {
    let event = LinkEvent::PeerDown {
        target: Arc::clone(target),
    };
    let _ = inner.events.send(event).await;
}

async fn fail<D: Dialer>(
    inner: &Inner<D>,
    target: &Arc<str>,
    headers: impl Iterator<Item = Bytes>,
) {
    for header in headers {
        let event = LinkEvent::SendFailed {
            target: Arc::clone(target),
            header,
        };
        if inner.events.send(event).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            parse_address("tcp://127.0.0.1:5000"),
            Some(("127.0.0.1".into(), 5000))
        );
        assert_eq!(parse_address("tcp://[::1]:7"), Some(("::1".into(), 7)));
        assert_eq!(parse_address("tcp://nohost"), None);
    }

    fn quick() -> TcpLinkConfig {
        TcpLinkConfig {
            heartbeat_interval: Duration::from_millis(50),
            heartbeat_timeout: Duration::from_millis(300),
            ..TcpLinkConfig::default()
        }
    }

    async fn link(id: &str) -> (TcpLink, String, mpsc::Receiver<LinkEvent>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("tcp://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel(64);
        let link = TcpLink::start(id, listener, address.clone(), TcpDialer, tx, quick());
        (link, address, rx)
    }

    /// A peer that accepts and reads but never answers (it vanished behind a NAT, say) is
    /// declared down after the heartbeat timeout, not left to swallow messages.
    #[tokio::test]
    async fn a_peer_that_never_answers_is_dropped_after_the_heartbeat_timeout() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("tcp://{}", silent.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = silent.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            while tokio::io::AsyncReadExt::read(&mut socket, &mut buf)
                .await
                .is_ok_and(|n| n > 0)
            {}
        });
        let (a, _, mut events) = link("a").await;
        let start = tokio::time::Instant::now();
        a.connect("b", &address);
        let event = tokio::time::timeout(Duration::from_secs(3), events.recv())
            .await
            .expect("the silent peer is noticed");
        assert!(
            matches!(&event, Some(LinkEvent::PeerDown { target }) if &**target == "b"),
            "{event:?}"
        );
        assert!(start.elapsed() >= quick().heartbeat_timeout);
    }

    /// Two links with no traffic stay connected: heartbeats keep the connection alive.
    #[tokio::test]
    async fn an_idle_connection_outlives_the_heartbeat_timeout() {
        let (a, _, mut a_events) = link("a").await;
        let (_b, b_address, mut b_events) = link("b").await;
        a.connect("b", &b_address);
        tokio::time::sleep(quick().heartbeat_timeout * 3).await;
        assert!(a_events.try_recv().is_err(), "no peer-down on an idle link");
        a.send(
            "b",
            Bytes::from_static(b"header"),
            Bytes::from_static(b"payload"),
        )
        .expect("still connected");
        let event = tokio::time::timeout(Duration::from_secs(2), b_events.recv())
            .await
            .unwrap();
        assert!(
            matches!(&event, Some(LinkEvent::Message { from, payload, .. })
                if &**from == "a" && &payload[..] == b"payload"),
            "{event:?}"
        );
    }
}
