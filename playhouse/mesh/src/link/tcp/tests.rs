//! Tests of the TCP link with its internals in view.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::TcpLink;
use super::config::TcpLinkConfig;
use crate::link::address::parse_address;
use crate::link::dialer::Dialer;
use crate::link::peers::lock;
use crate::link::{LinkEvent, MeshLink};

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
        !lock(&a.shared.incoming).contains_key("b"),
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

/// Dials in memory and counts the writes made on each connection.
struct CountingPeer {
    far_ends: mpsc::UnboundedSender<tokio::io::DuplexStream>,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

/// A connection's near end that counts its writes.
struct Counted {
    io: tokio::io::DuplexStream,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Dialer for CountingPeer {
    type Io = Counted;

    async fn dial(&self, _host: &str, _port: u16) -> io::Result<Self::Io> {
        let (near, far) = tokio::io::duplex(1 << 16);
        let _ = self.far_ends.send(far);
        Ok(Counted {
            io: near,
            writes: Arc::clone(&self.writes),
        })
    }
}

/// Frames sent by tasks that are ready together leave in one write. On one worker, the
/// connection's task woken by the first frame would run right after that frame's task
/// (tokio runs a task woken by the running one next) and write it alone; the turn it waits
/// lets the other nine queue theirs first.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn frames_from_tasks_ready_together_leave_in_one_write() {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncReadExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (far_ends, mut dialed) = mpsc::unbounded_channel();
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let dialer = CountingPeer {
        far_ends,
        writes: Arc::clone(&writes),
    };
    let address = "tcp://127.0.0.1:1".to_owned();
    let a = Arc::new(TcpLink::new(
        "a",
        listener,
        address,
        dialer,
        TcpLinkConfig::default(),
    ));
    a.start(Arc::new(|_| {}));
    a.connect("b", "tcp://peer.test:7000");
    until_up(&*a, "b").await;
    let mut far = dialed.recv().await.expect("b was dialed");
    let greeted = writes.load(Ordering::Relaxed);

    let sent = tokio::spawn({
        let a = Arc::clone(&a);
        async move {
            let mut senders = Vec::new();
            for n in 0..10u8 {
                let a = Arc::clone(&a);
                senders.push(tokio::spawn(async move {
                    a.send("b", Bytes::from(vec![n]), Bytes::from_static(b"x"))
                }));
            }
            for sender in senders {
                sender.await.unwrap().unwrap();
            }
        }
    });
    sent.await.unwrap();
    // The hello and ten frames of [len][id len][header][payload] each reach the far end.
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let arrived = tokio::time::timeout(Duration::from_secs(5), async {
        while received.iter().filter(|&&b| b == b'x').count() < 10 {
            let n = far.read(&mut chunk).await.unwrap();
            assert_ne!(n, 0, "the link closed the connection");
            received.extend_from_slice(&chunk[..n]);
        }
    });
    arrived.await.expect("the ten frames arrive");
    assert_eq!(
        writes.load(Ordering::Relaxed) - greeted,
        1,
        "one write for the ten frames"
    );
}
