//! Mesh nodes over real ZeroMQ links (ROUTER sockets on loopback) and one in-memory directory,
//! plus interop with libzmq (pyzmq) when Python can provide it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use playhouse_mesh::proto::RouteHeader;
use playhouse_mesh::{
    InboundHandler, LinkError, LinkEvent, MemoryDirectory, Mesh, MeshConfig, MeshError, MeshLink,
    RoutePacket, ServerType, ZmqLink, ZmqLinkConfig,
};
use playhouse_protocol::{ErrorCode, Packet};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Echo replies; `Fail` replies 1234; `Slow` replies after 300 ms; `Note` is forwarded to a
/// channel; anything else is ignored.
struct Handler {
    notes: mpsc::UnboundedSender<RoutePacket>,
}

impl InboundHandler for Handler {
    fn handle(&self, mesh: &Mesh, packet: RoutePacket) {
        match packet.header.msg_id.as_str() {
            "Echo" => {
                let _ = mesh.reply(&packet.header, ErrorCode::SUCCESS, packet.packet());
            }
            "Fail" => {
                let _ = mesh.reply(&packet.header, ErrorCode(1234), Packet::empty("Failed"));
            }
            "Slow" => {
                let mesh = mesh.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let _ = mesh.reply(&packet.header, ErrorCode::SUCCESS, packet.packet());
                });
            }
            "Note" => {
                let _ = self.notes.send(packet);
            }
            _ => {}
        }
    }
}

struct Node {
    mesh: Mesh,
    /// The node's link, to simulate a crash (connections gone, directory entry still there).
    link: Arc<ZmqLink>,
    notes: mpsc::UnboundedReceiver<RoutePacket>,
}

async fn link(id: &str) -> (ZmqLink, mpsc::Receiver<LinkEvent>) {
    let (events_tx, events) = mpsc::channel(1024);
    let link = ZmqLink::bind(
        id,
        "tcp://127.0.0.1:0",
        None,
        events_tx,
        ZmqLinkConfig::default(),
    )
    .await
    .unwrap();
    (link, events)
}

async fn node(id: &str, directory: &MemoryDirectory) -> Node {
    let (link, events) = link(id).await;
    let link = Arc::new(link);
    let (notes_tx, notes) = mpsc::unbounded_channel();
    let mut config = MeshConfig::new(id, ServerType::Api);
    config.refresh_interval = Duration::from_millis(50);
    let mesh = Mesh::start(
        config,
        link.clone(),
        events,
        Arc::new(directory.clone()),
        Arc::new(Handler { notes: notes_tx }),
    )
    .await;
    Node { mesh, link, notes }
}

fn header(msg_id: &str) -> RouteHeader {
    RouteHeader {
        msg_id: msg_id.to_owned(),
        ..RouteHeader::default()
    }
}

/// Requests until the peer answers (connections come up asynchronously after a refresh).
async fn until_connected(from: &Mesh, to: &str) {
    for _ in 0..200 {
        let reply = from
            .request_with_timeout(to, header("Echo"), Bytes::new(), Duration::from_millis(500))
            .await;
        if reply.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never reached {to}", from.server_id());
}

/// Sends on a bare link until the connection to `to` is up.
async fn until_link_up(link: &ZmqLink, to: &str, header: &[u8], payload: &[u8]) {
    for _ in 0..500 {
        let sent = link.send(
            to,
            Bytes::copy_from_slice(header),
            Bytes::copy_from_slice(payload),
        );
        match sent {
            Ok(()) => return,
            Err(LinkError::NotConnected(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(other) => panic!("unexpected send error: {other}"),
        }
    }
    panic!("{} never connected to {to}", link.address());
}

#[tokio::test]
async fn request_reply_send_and_remote_errors() {
    let directory = MemoryDirectory::new();
    let a = node("a", &directory).await;
    let mut b = node("b", &directory).await;
    a.mesh.refresh().await.unwrap();
    until_connected(&a.mesh, "b").await;

    let reply = a
        .mesh
        .request("b", header("Echo"), Bytes::from_static(b"hi"))
        .await
        .unwrap();
    assert_eq!(
        (reply.header.msg_id.as_str(), &reply.payload[..]),
        ("Echo", &b"hi"[..])
    );
    assert_eq!(reply.header.from, "b");

    match a.mesh.request("b", header("Fail"), Bytes::new()).await {
        Err(MeshError::Remote { code, packet }) => {
            assert_eq!(code, ErrorCode(1234));
            assert_eq!(packet.msg_id, "Failed");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }

    a.mesh
        .send("b", header("Note"), Bytes::from_static(b"one-way"))
        .unwrap();
    let note = tokio::time::timeout(Duration::from_secs(5), b.notes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (note.header.from.as_str(), &note.payload[..]),
        ("a", &b"one-way"[..])
    );
    assert_eq!(note.header.msg_seq, 0);

    // Many requests in flight at once, all answered, in any order.
    let requests = (0..200u32).map(|i| {
        let mesh = a.mesh.clone();
        async move {
            let payload = Bytes::from(i.to_le_bytes().to_vec());
            let reply = mesh.request("b", header("Echo"), payload.clone()).await;
            (payload, reply)
        }
    });
    for (payload, reply) in futures_util::future::join_all(requests).await {
        assert_eq!(reply.unwrap().payload, payload);
    }
    assert_eq!(a.mesh.pending_requests(), 0);
}

#[tokio::test]
async fn a_server_can_send_to_itself() {
    let directory = MemoryDirectory::new();
    let mut a = node("solo", &directory).await;
    until_connected(&a.mesh, "solo").await;
    let reply = a
        .mesh
        .request("solo", header("Echo"), Bytes::from_static(b"me"))
        .await
        .unwrap();
    assert_eq!(&reply.payload[..], b"me");
    assert_eq!(reply.header.from, "solo");
    a.mesh
        .send("solo", header("Note"), Bytes::from_static(b"note to self"))
        .unwrap();
    let note = tokio::time::timeout(Duration::from_secs(5), a.notes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&note.payload[..], b"note to self");
}

#[tokio::test]
async fn timeouts_leave_the_cache_empty_and_late_replies_are_discarded() {
    let directory = MemoryDirectory::new();
    let a = node("ta", &directory).await;
    let _b = node("tb", &directory).await;
    a.mesh.refresh().await.unwrap();
    until_connected(&a.mesh, "tb").await;
    let late_before = a.mesh.late_replies();
    let result = a
        .mesh
        .request_with_timeout(
            "tb",
            header("Slow"),
            Bytes::new(),
            Duration::from_millis(100),
        )
        .await;
    assert!(matches!(result, Err(MeshError::Timeout)));
    assert_eq!(a.mesh.pending_requests(), 0);
    // The late reply arrives and is discarded; the next request gets its own reply.
    let fresh = a
        .mesh
        .request("tb", header("Echo"), Bytes::from_static(b"new"))
        .await
        .unwrap();
    assert_eq!(&fresh.payload[..], b"new");
    for _ in 0..100 {
        if a.mesh.late_replies() > late_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.mesh.late_replies(), late_before + 1);
    assert_eq!(a.mesh.pending_requests(), 0);
}

#[tokio::test]
async fn unknown_or_dead_servers_fail_fast_and_recover() {
    let directory = MemoryDirectory::new();
    let a = node("da", &directory).await;
    let started = tokio::time::Instant::now();
    let unknown = a.mesh.request("nobody", header("Echo"), Bytes::new()).await;
    assert!(matches!(unknown, Err(MeshError::ServerNotFound(_))));
    assert_eq!(unknown.unwrap_err().code(), ErrorCode::SERVER_NOT_FOUND);

    let b = node("db", &directory).await;
    let old_address = b.mesh.address().to_owned();
    a.mesh.refresh().await.unwrap();
    until_connected(&a.mesh, "db").await;
    // The peer crashes: its connections go away but its directory entry stays (its node keeps
    // publishing), so only the link can tell. A request in flight fails at once, not after 30 s.
    let in_flight = {
        let mesh = a.mesh.clone();
        tokio::spawn(async move { mesh.request("db", header("Slow"), Bytes::new()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let crashed = tokio::time::Instant::now();
    b.link.close();
    let in_flight = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the request in flight must fail fast")
        .unwrap();
    assert!(
        matches!(in_flight, Err(MeshError::ServerNotFound(_))),
        "{in_flight:?}"
    );
    // Down: new requests fail at once with ServerNotFound (never wait for the 30 s timeout).
    let down = tokio::time::timeout(
        Duration::from_secs(1),
        a.mesh.request("db", header("Echo"), Bytes::new()),
    )
    .await
    .expect("a request to a down peer must fail at once");
    assert!(
        matches!(down, Err(MeshError::ServerNotFound(_))),
        "{down:?}"
    );
    assert!(crashed.elapsed() < Duration::from_secs(5));
    assert_eq!(
        a.mesh.servers().get("db").map(|info| info.address),
        Some(old_address.clone()),
        "the crashed server is still in the directory"
    );
    b.mesh.shutdown().await;
    drop(b);
    assert!(started.elapsed() < Duration::from_secs(10));
    // Back (same id, new address): the directory refresh reconnects.
    let b2 = node("db", &directory).await;
    assert_ne!(b2.mesh.address(), old_address);
    a.mesh.refresh().await.unwrap();
    until_connected(&a.mesh, "db").await;
    let reply = a
        .mesh
        .request("db", header("Echo"), Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!(&reply.payload[..], b"again");
    assert_eq!(a.mesh.pending_requests(), 0);
}

#[tokio::test]
async fn link_reports_unknown_down_and_lost_peers() {
    let (a, mut a_events) = link("la").await;
    let (b, mut b_events) = link("lb").await;
    assert_eq!(
        a.send("lb", Bytes::new(), Bytes::new()),
        Err(LinkError::Unknown("lb".into()))
    );
    // Known but nothing listens there: not connected.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_address = format!("tcp://{}", dead.local_addr().unwrap());
    drop(dead);
    a.connect("lb", &dead_address);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        a.send("lb", Bytes::new(), Bytes::new()),
        Err(LinkError::NotConnected("lb".into()))
    );
    // The right address replaces the dead one.
    a.connect("lb", b.address());
    until_link_up(&a, "lb", b"h", b"p").await;
    let Some(LinkEvent::Message {
        from,
        header,
        payload,
    }) = tokio::time::timeout(Duration::from_secs(5), b_events.recv())
        .await
        .unwrap()
    else {
        panic!("expected a message");
    };
    assert_eq!(
        (&*from, &header[..], &payload[..]),
        ("la", &b"h"[..], &b"p"[..])
    );
    // Empty header and payload frames survive too.
    a.send("lb", Bytes::new(), Bytes::new()).unwrap();
    let Some(LinkEvent::Message {
        header, payload, ..
    }) = tokio::time::timeout(Duration::from_secs(5), b_events.recv())
        .await
        .unwrap()
    else {
        panic!("expected a message");
    };
    assert!(header.is_empty() && payload.is_empty());

    // The peer closes: its connection is reported down at once and sends are refused.
    b.close();
    let lost = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match a_events.recv().await {
                Some(LinkEvent::PeerDown { target }) => return target,
                Some(_) => continue,
                None => panic!("events closed"),
            }
        }
    })
    .await
    .expect("PeerDown within 5 s");
    assert_eq!(&*lost, "lb");
    assert_eq!(
        a.send("lb", Bytes::new(), Bytes::new()),
        Err(LinkError::NotConnected("lb".into()))
    );
    a.disconnect("lb");
    assert_eq!(
        a.send("lb", Bytes::new(), Bytes::new()),
        Err(LinkError::Unknown("lb".into()))
    );
    a.close();
    assert_eq!(
        a.send("la", Bytes::new(), Bytes::new()),
        Err(LinkError::Closed)
    );
}

/// A libzmq peer with the same socket discipline: a bound ROUTER receives, a second ROUTER
/// with the same identity dials and sends. It answers one message and prints what it saw.
const PY_PEER: &str = r#"
import json, sys, time, zmq
ctx = zmq.Context()
rx = ctx.socket(zmq.ROUTER)
rx.setsockopt(zmq.IDENTITY, b"py-1")
rx.setsockopt(zmq.RCVTIMEO, 20000)
port = rx.bind_to_random_port("tcp://127.0.0.1")
tx = ctx.socket(zmq.ROUTER)
tx.setsockopt(zmq.IDENTITY, b"py-1")
tx.setsockopt(zmq.ROUTER_MANDATORY, 1)
tx.setsockopt(zmq.LINGER, 5000)
tx.connect(sys.argv[1])
print("tcp://127.0.0.1:%d" % port, flush=True)
sender, header, payload = rx.recv_multipart()
deadline = time.time() + 20
while True:
    try:
        tx.send_multipart([sender, b"re:" + header, b"py:" + payload])
        break
    except zmq.ZMQError as e:
        if e.errno != zmq.EHOSTUNREACH or time.time() > deadline:
            raise
        time.sleep(0.01)
print(json.dumps({"sender": sender.decode(), "header": header.hex(), "payload": payload.hex()}), flush=True)
tx.close()
rx.close()
ctx.term()
"#;

/// `python3` with pyzmq importable, installing it with pip if needed; `None` to skip.
fn python_with_pyzmq() -> Option<&'static str> {
    let importable = || {
        std::process::Command::new("python3")
            .args(["-c", "import zmq"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if importable() {
        return Some("python3");
    }
    eprintln!("pyzmq missing; trying `python3 -m pip install pyzmq`");
    let _ = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "pyzmq",
        ])
        .status();
    importable().then_some("python3")
}

#[tokio::test]
async fn interoperates_with_libzmq() {
    let Some(python) = python_with_pyzmq() else {
        eprintln!(
            "SKIPPED interoperates_with_libzmq: python3 with pyzmq is not available (pip install failed)"
        );
        return;
    };
    let (link, mut events) = link("zl-1").await;
    let mut child = tokio::process::Command::new(python)
        .args(["-c", PY_PEER, link.address()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start python");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let py_address = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("python peer started")
        .unwrap()
        .expect("python peer printed its address");

    link.connect("py-1", &py_address);
    let header = b"\x08\x2a\x12\x04Ping";
    until_link_up(&link, "py-1", header, b"hello").await;

    // What libzmq received: [our id][header][payload].
    let seen = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("python peer answered")
        .unwrap()
        .expect("python peer reported");
    let seen: serde_json::Value = serde_json::from_str(&seen).unwrap();
    assert_eq!(seen["sender"], "zl-1");
    assert_eq!(seen["header"], hex(header));
    assert_eq!(seen["payload"], hex(b"hello"));

    // What we received from libzmq: [py-1][re:header][py:payload].
    let Some(LinkEvent::Message {
        from,
        header: got_header,
        payload,
    }) = tokio::time::timeout(Duration::from_secs(20), events.recv())
        .await
        .expect("reply from python")
    else {
        panic!("expected a message");
    };
    assert_eq!(&*from, "py-1");
    assert_eq!(&got_header[..], &[&b"re:"[..], &header[..]].concat()[..]);
    assert_eq!(&payload[..], b"py:hello");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("python peer exits")
        .unwrap();
    assert!(status.success());
    link.close();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A link that delivers directly hands messages to the handler on its own task, not to the
/// channel, and lets go of the handler when closed.
#[tokio::test]
async fn direct_delivery_bypasses_the_channel_and_ends_with_the_link() {
    let (a, _a_events) = link("da").await;
    let (b, mut b_events) = link("db").await;
    let (tx, mut delivered) = mpsc::unbounded_channel();
    let deliver: playhouse_mesh::EventHandler = Arc::new(move |event| {
        let _ = tx.send(event);
    });
    assert!(b.deliver_directly(Arc::clone(&deliver)));
    a.connect("db", b.address());
    until_link_up(&a, "db", b"h", b"direct").await;
    let event = tokio::time::timeout(Duration::from_secs(5), delivered.recv())
        .await
        .expect("delivered within 5 s");
    assert!(
        matches!(&event, Some(LinkEvent::Message { from, payload, .. })
            if &**from == "da" && &payload[..] == b"direct"),
        "{event:?}"
    );
    assert!(
        b_events.try_recv().is_err(),
        "nothing went through the channel"
    );
    b.close();
    assert_eq!(Arc::strong_count(&deliver), 1, "close drops the handler");
    assert!(!b.deliver_directly(deliver), "a closed link refuses");
}
