//! [`TcpLink`]: length-delimited frames over any byte stream (production TCP or a simulated
//! network).
//!
//! Each connection carries frames one way: a server dials each peer once and sends on that
//! connection only; the peer's frames arrive on the connection it dialed. The acceptor never
//! writes, so the dialer reads its connection only to notice it ending. Liveness is the mesh
//! node's: it pings every peer and [`reset`](MeshLink::reset)s one that falls silent, which
//! drops both connections with it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use playhouse_transport::Listener;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dialer::{Dialer, TcpDialer};
use super::frame::{Frame, FrameEncoder, codec, parse_address, split_frame};
use super::{EventSink, LinkError, LinkEvent, MeshLink};

/// Settings of a [`TcpLink`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
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
}

impl Default for TcpLinkConfig {
    fn default() -> Self {
        TcpLinkConfig {
            send_queue: 8192,
            send_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            reconnect_backoff: Duration::from_millis(200),
            max_frame: 16 * 1024 * 1024,
        }
    }
}

/// The outgoing connection to one peer.
struct Peer {
    address: String,
    tx: mpsc::Sender<Frame>,
    up: Arc<AtomicBool>,
    cancel: CancellationToken,
}

/// An incoming connection from one peer (the newest per peer id wins).
struct Incoming {
    generation: u64,
    cancel: CancellationToken,
}

struct Inner<D> {
    server_id: Arc<str>,
    address: String,
    dialer: Arc<D>,
    config: TcpLinkConfig,
    /// Set by [`MeshLink::start`]; taken by [`MeshLink::close`] (the sink may own the node
    /// that owns this link).
    sink: Mutex<Option<EventSink>>,
    /// Hands the sink to the accept loop, which waits for it.
    start: Mutex<Option<oneshot::Sender<EventSink>>>,
    /// By server id; ordered, so closing the link stops its connections in a fixed order.
    peers: Mutex<BTreeMap<String, Peer>>,
    incoming: Mutex<HashMap<Arc<str>, Incoming>>,
    next_incoming: AtomicU64,
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

impl TcpLink<TcpDialer> {
    /// Binds `bind` (e.g. `127.0.0.1:0`) with real TCP; the advertised address uses the bound
    /// port and `advertise_host` (default: the bound IP, which must not be unspecified).
    pub async fn bind(
        server_id: &str,
        bind: &str,
        advertise_host: Option<&str>,
        config: TcpLinkConfig,
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
        Ok(TcpLink::new(
            server_id, listener, address, TcpDialer, config,
        ))
    }
}

impl<D: Dialer> TcpLink<D> {
    /// A link receiving on `listener` (advertised as `address`) and dialing peers with
    /// `dialer`. It accepts connections once [`started`](MeshLink::start).
    pub fn new<L: Listener>(
        server_id: &str,
        listener: L,
        address: String,
        dialer: D,
        config: TcpLinkConfig,
    ) -> TcpLink<D> {
        let (start, started) = oneshot::channel();
        let inner = Arc::new(Inner {
            server_id: Arc::from(server_id),
            address,
            dialer: Arc::new(dialer),
            config,
            sink: Mutex::new(None),
            start: Mutex::new(Some(start)),
            peers: Mutex::new(BTreeMap::new()),
            incoming: Mutex::new(HashMap::new()),
            next_incoming: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        inner
            .tasks
            .spawn(accept_loop(listener, started, Arc::clone(&inner)));
        TcpLink { inner }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<D: Dialer> Inner<D> {
    fn peers(&self) -> MutexGuard<'_, BTreeMap<String, Peer>> {
        lock(&self.peers)
    }

    /// Reports a rare event (peer down, send failed) to the node, unless the link is closed.
    fn emit(&self, event: LinkEvent) {
        let sink = lock(&self.sink).clone();
        if let Some(sink) = sink {
            sink(event);
        }
    }

    /// Starts (or restarts) the outgoing connection to `server_id`; the caller holds `peers`.
    fn spawn_peer(
        self: &Arc<Self>,
        peers: &mut BTreeMap<String, Peer>,
        server_id: &str,
        address: &str,
    ) {
        if let Some(old) = peers.remove(server_id) {
            old.cancel.cancel();
        }
        let (tx, rx) = mpsc::channel(self.config.send_queue);
        let peer = Peer {
            address: address.to_owned(),
            tx,
            up: Arc::new(AtomicBool::new(false)),
            cancel: self.shutdown.child_token(),
        };
        let task = run_peer(
            Arc::clone(self),
            Arc::from(server_id),
            address.to_owned(),
            rx,
            Arc::clone(&peer.up),
            peer.cancel.clone(),
        );
        self.tasks.spawn(task);
        peers.insert(server_id.to_owned(), peer);
    }
}

impl<D: Dialer> MeshLink for TcpLink<D> {
    fn address(&self) -> &str {
        &self.inner.address
    }

    fn start(&self, sink: EventSink) {
        *lock(&self.inner.sink) = Some(Arc::clone(&sink));
        if let Some(start) = lock(&self.inner.start).take() {
            let _ = start.send(sink);
        }
    }

    fn connect(&self, server_id: &str, address: &str) {
        let inner = &self.inner;
        let mut peers = inner.peers();
        if peers.get(server_id).is_some_and(|p| p.address == address) {
            return;
        }
        inner.spawn_peer(&mut peers, server_id, address);
    }

    fn disconnect(&self, server_id: &str) {
        if let Some(peer) = self.inner.peers().remove(server_id) {
            peer.cancel.cancel();
        }
    }

    fn reset(&self, server_id: &str) {
        let inner = &self.inner;
        if let Some(incoming) = lock(&inner.incoming).remove(server_id) {
            incoming.cancel.cancel();
        }
        let mut peers = inner.peers();
        if let Some(address) = peers.get(server_id).map(|peer| peer.address.clone()) {
            inner.spawn_peer(&mut peers, server_id, &address);
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
        lock(&self.inner.incoming).clear();
        *lock(&self.inner.sink) = None;
        lock(&self.inner.start).take();
        self.inner.tasks.close();
    }
}

impl<D: Dialer> Drop for TcpLink<D> {
    fn drop(&mut self) {
        self.close();
    }
}

async fn accept_loop<L: Listener, D: Dialer>(
    mut listener: L,
    started: oneshot::Receiver<EventSink>,
    inner: Arc<Inner<D>>,
) {
    let sink = tokio::select! {
        biased;
        _ = inner.shutdown.cancelled() => return,
        sink = started => match sink {
            Ok(sink) => sink,
            Err(_) => return,
        },
    };
    loop {
        tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((io, _)) => {
                    inner.tasks.spawn(receive(io, Arc::clone(&inner), Arc::clone(&sink)));
                }
                Err(error) => {
                    tracing::warn!(%error, "mesh accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Reads one incoming connection: a hello frame with the peer's id, then messages, until it
/// ends, the peer connects again (the newer connection wins) or the node resets the peer.
async fn receive<Io, D>(io: Io, inner: Arc<Inner<D>>, sink: EventSink)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    D: Dialer,
{
    let config = inner.config;
    let mut frames = FramedRead::new(io, codec(config.max_frame));
    // The first frame is a hello whose header is the peer's server id.
    let hello = tokio::select! {
        biased;
        _ = inner.shutdown.cancelled() => return,
        hello = tokio::time::timeout(config.connect_timeout, frames.next()) => hello,
    };
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
    let generation = inner.next_incoming.fetch_add(1, Ordering::Relaxed);
    let cancel = inner.shutdown.child_token();
    let replaced = lock(&inner.incoming).insert(
        Arc::clone(&from),
        Incoming {
            generation,
            cancel: cancel.clone(),
        },
    );
    if let Some(old) = replaced {
        old.cancel.cancel();
    }
    loop {
        let frame = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            frame = frames.next() => frame,
        };
        let Some(Ok(frame)) = frame else {
            break;
        };
        let Some((header, payload)) = split_frame(frame.freeze()) else {
            tracing::warn!(%from, "malformed mesh frame; dropping the connection");
            break;
        };
        sink(LinkEvent::Message {
            from: Arc::clone(&from),
            header,
            payload,
        });
    }
    let mut incoming = lock(&inner.incoming);
    if incoming
        .get(&from)
        .is_some_and(|current| current.generation == generation)
    {
        incoming.remove(&from);
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
            let (mut read, write) = tokio::io::split(io);
            let mut write = FramedWrite::new(write, FrameEncoder);
            let hello = (
                Bytes::copy_from_slice(inner.server_id.as_bytes()),
                Bytes::new(),
            );
            let greeted = tokio::time::timeout(config.send_timeout, write.send(hello)).await;
            if matches!(greeted, Ok(Ok(()))) {
                up.store(true, Ordering::Release);
                tracing::debug!(%target, %address, "mesh peer connected");
                let mut batch = Vec::new();
                // The acceptor never writes: a read returning is the connection ending.
                let mut ended = [0u8; 1];
                loop {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => {
                            up.store(false, Ordering::Release);
                            return;
                        }
                        _ = read.read(&mut ended) => {
                            up.store(false, Ordering::Release);
                            tracing::debug!(%target, "mesh peer went away; reconnecting");
                            inner.emit(LinkEvent::PeerDown { target: Arc::clone(&target) });
                            break;
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
                                fail(&inner, &target, batch.drain(..).map(|(h, _)| h));
                                inner.emit(LinkEvent::PeerDown { target: Arc::clone(&target) });
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
        fail(&inner, &target, queued.into_iter());
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

fn fail<D: Dialer>(inner: &Inner<D>, target: &Arc<str>, headers: impl Iterator<Item = Bytes>) {
    for header in headers {
        inner.emit(LinkEvent::SendFailed {
            target: Arc::clone(target),
            header,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn link(id: &str) -> (TcpLink, mpsc::UnboundedReceiver<LinkEvent>) {
        let link = TcpLink::bind(id, "127.0.0.1:0", None, TcpLinkConfig::default())
            .await
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        link.start(Arc::new(move |event| {
            let _ = tx.send(event);
        }));
        (link, rx)
    }

    async fn message(events: &mut mpsc::UnboundedReceiver<LinkEvent>) -> (Arc<str>, Bytes) {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .expect("an event")
                .expect("the link is open");
            if let LinkEvent::Message { from, payload, .. } = event {
                return (from, payload);
            }
        }
    }

    async fn until_up<D: Dialer>(link: &TcpLink<D>, to: &str) {
        let up = tokio::time::timeout(Duration::from_secs(5), async {
            while !link.is_connected(to) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        up.await.expect("the connection comes up within 5 s");
    }

    /// A reset drops both connections with the peer at once: the incoming one stops
    /// delivering, the outgoing one is dialed again and carries frames.
    #[tokio::test]
    async fn a_reset_drops_both_connections_and_redials() {
        let (a, mut a_events) = link("a").await;
        let (b, mut b_events) = link("b").await;
        a.connect("b", b.address());
        b.connect("a", a.address());
        until_up(&a, "b").await;
        until_up(&b, "a").await;
        a.send("b", Bytes::from_static(b"h"), Bytes::from_static(b"one"))
            .unwrap();
        assert_eq!(&message(&mut b_events).await.1[..], b"one");
        b.send("a", Bytes::from_static(b"h"), Bytes::from_static(b"two"))
            .unwrap();
        assert_eq!(&message(&mut a_events).await.1[..], b"two");

        a.reset("b");
        assert!(
            !lock(&a.inner.incoming).contains_key("b"),
            "incoming dropped"
        );
        // b sees its outgoing connection to a end (a dropped the incoming side) and a's
        // connection to b replaced by a new one, which carries frames.
        let down = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let event = b_events.recv().await.expect("the link is open");
                if let LinkEvent::PeerDown { target } = event {
                    return target;
                }
            }
        })
        .await
        .expect("b notices its connection to a ending");
        assert_eq!(&*down, "a");
        until_up(&a, "b").await;
        a.send("b", Bytes::from_static(b"h"), Bytes::from_static(b"three"))
            .unwrap();
        assert_eq!(
            message(&mut b_events).await,
            (Arc::from("a"), Bytes::from_static(b"three"))
        );
    }

    /// Before `start` nothing is accepted into the node; after it the events flow.
    #[tokio::test]
    async fn events_flow_only_once_started() {
        let a = TcpLink::bind("a", "127.0.0.1:0", None, TcpLinkConfig::default())
            .await
            .unwrap();
        let (b, mut b_events) = link("b").await;
        a.connect("b", b.address());
        until_up(&a, "b").await;
        a.send("b", Bytes::new(), Bytes::from_static(b"x")).unwrap();
        assert_eq!(&message(&mut b_events).await.1[..], b"x");
        // `a` was never started: b's connection to a is accepted by the OS, but a delivers
        // nothing; once started, it does.
        b.connect("a", a.address());
        until_up(&b, "a").await;
        b.send("a", Bytes::new(), Bytes::from_static(b"y")).unwrap();
        let (tx, mut a_events) = mpsc::unbounded_channel();
        a.start(Arc::new(move |event| {
            let _ = tx.send(event);
        }));
        assert_eq!(&message(&mut a_events).await.1[..], b"y");
    }

    /// A link bound to an unspecified address cannot advertise it (peers could not dial
    /// `0.0.0.0`): it needs an advertised host, which it then publishes with the bound port.
    #[tokio::test]
    async fn binding_an_unspecified_address_needs_an_advertised_host() {
        let config = TcpLinkConfig::default();
        let refused = TcpLink::bind("a", "0.0.0.0:0", None, config).await;
        let error = refused.expect_err("0.0.0.0 with no advertised host");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);

        let link = TcpLink::bind("a", "0.0.0.0:0", Some("127.0.0.1"), config)
            .await
            .unwrap();
        let (host, port) = parse_address(link.address()).expect("a dialable address");
        assert_eq!(host, "127.0.0.1");
        assert_ne!(port, 0);
        let loopback = TcpLink::bind("b", "127.0.0.1:0", None, config)
            .await
            .unwrap();
        assert!(loopback.address().starts_with("tcp://127.0.0.1:"));
    }

    /// Dropping a link stops its tasks and lets its sink go (the sink may own the node that
    /// owns the link).
    #[tokio::test]
    async fn a_dropped_link_lets_its_sink_go() {
        let a = TcpLink::bind("a", "127.0.0.1:0", None, TcpLinkConfig::default())
            .await
            .unwrap();
        let held = Arc::new(());
        let in_sink = Arc::clone(&held);
        a.start(Arc::new(move |_event| {
            let _ = &in_sink;
        }));
        tokio::task::yield_now().await;
        assert!(Arc::strong_count(&held) > 1);
        drop(a);
        let released = tokio::time::timeout(Duration::from_secs(5), async {
            while Arc::strong_count(&held) > 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        released
            .await
            .expect("the dropped link still holds its sink");
    }

    /// Dials in memory: each connection's far end goes to the test, which never reads it.
    struct StalledPeer {
        far_ends: mpsc::UnboundedSender<tokio::io::DuplexStream>,
    }

    impl Dialer for StalledPeer {
        type Io = tokio::io::DuplexStream;

        async fn dial(&self, _host: &str, _port: u16) -> io::Result<Self::Io> {
            // Room for the hello, not for a 1 KiB frame.
            let (near, far) = tokio::io::duplex(64);
            let _ = self.far_ends.send(far);
            Ok(near)
        }
    }

    /// A peer that stops reading: the write stuck on it times out, and every frame the link
    /// had taken for it (the one being written and those queued behind it) is reported
    /// failed, in order, so the node fails those requests at once instead of at their
    /// timeout.
    #[tokio::test(start_paused = true)]
    async fn frames_for_a_peer_that_stops_reading_are_reported_failed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (far_ends, mut dialed) = mpsc::unbounded_channel();
        let config = TcpLinkConfig {
            send_timeout: Duration::from_millis(100),
            reconnect_backoff: Duration::from_secs(60),
            ..TcpLinkConfig::default()
        };
        let address = "tcp://127.0.0.1:1".to_owned();
        let a = TcpLink::new("a", listener, address, StalledPeer { far_ends }, config);
        let (tx, mut events) = mpsc::unbounded_channel();
        a.start(Arc::new(move |event| {
            let _ = tx.send(event);
        }));
        a.connect("b", "tcp://peer.test:7000");
        until_up(&a, "b").await;
        let _far = dialed.recv().await.expect("b was dialed");

        let header = |n: u8| Bytes::from(vec![n]);
        a.send("b", header(1), Bytes::from(vec![0; 1024])).unwrap();
        // The peer task takes the first frame and blocks writing it; the others queue.
        tokio::time::sleep(Duration::from_millis(1)).await;
        a.send("b", header(2), Bytes::from_static(b"x")).unwrap();
        a.send("b", header(3), Bytes::from_static(b"y")).unwrap();

        let mut failed = Vec::new();
        let mut down = false;
        while failed.len() < 3 || !down {
            let event = tokio::time::timeout(Duration::from_secs(1), events.recv())
                .await
                .expect("every frame reported within a second")
                .expect("the link is open");
            match event {
                LinkEvent::SendFailed { target, header } => {
                    assert_eq!(&*target, "b");
                    failed.push(header[0]);
                }
                LinkEvent::PeerDown { target } => {
                    assert_eq!(&*target, "b");
                    down = true;
                }
                LinkEvent::Message { .. } => panic!("nothing was sent to a"),
            }
        }
        assert_eq!(failed, [1, 2, 3]);
        assert!(!a.is_connected("b"));
    }
}
