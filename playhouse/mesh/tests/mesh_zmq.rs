//! Mesh nodes over real ZeroMQ links (ROUTER sockets on loopback) and one in-memory directory,
//! plus interop with libzmq (pyzmq) when Python can provide it. The scenarios every link
//! must pass are in `common`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Bind;
use playhouse_mesh::{LinkError, LinkEvent, MeshLink, ZmqLink, ZmqLinkConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

const ZMQ: Bind = |id| {
    let id = id.to_owned();
    Box::pin(async move {
        let link = ZmqLink::bind(&id, "tcp://127.0.0.1:0", None, ZmqLinkConfig::default())
            .await
            .unwrap();
        Arc::new(link) as Arc<dyn MeshLink>
    })
};

/// A bare link, started with a sink that forwards its events to a channel.
async fn link(id: &str) -> (ZmqLink, mpsc::UnboundedReceiver<LinkEvent>) {
    let link = ZmqLink::bind(id, "tcp://127.0.0.1:0", None, ZmqLinkConfig::default())
        .await
        .unwrap();
    let (events_tx, events) = mpsc::unbounded_channel();
    link.start(Arc::new(move |event| {
        let _ = events_tx.send(event);
    }));
    (link, events)
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
    common::request_reply_send_and_remote_errors(ZMQ).await;
}

#[tokio::test]
async fn a_server_can_send_to_itself() {
    common::a_server_can_send_to_itself(ZMQ).await;
}

#[tokio::test]
async fn timeouts_leave_the_cache_empty_and_late_replies_are_discarded() {
    common::timeouts_leave_the_cache_empty_and_late_replies_are_discarded(ZMQ).await;
}

#[tokio::test]
async fn unknown_or_dead_servers_fail_fast_and_recover() {
    common::unknown_or_dead_servers_fail_fast_and_recover(ZMQ).await;
}

#[tokio::test]
async fn a_listed_peer_still_connecting_is_waited_for() {
    common::a_listed_peer_still_connecting_is_waited_for(ZMQ).await;
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
    assert!(!a.is_connected("lb"));
    // The right address replaces the dead one.
    a.connect("lb", b.address());
    until_link_up(&a, "lb", b"h", b"p").await;
    assert!(a.is_connected("lb"));
    // The directory repeats the address on every refresh: the connection stays as it is.
    a.connect("lb", b.address());
    assert!(a.is_connected("lb"), "connecting again kept the connection");
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

/// A peer that takes connections but never speaks ZMTP: the first dial goes out at once, and
/// the next ones with a doubling backoff (200 ms, 400 ms, ...), not in a hot loop.
#[tokio::test]
async fn an_unreachable_peer_is_redialed_with_backoff() {
    let (a, _events) = link("ra").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let started = tokio::time::Instant::now();
    a.connect("rb", &format!("tcp://{}", listener.local_addr().unwrap()));
    let until = started + Duration::from_millis(1_500);
    let mut dials = Vec::new();
    while let Ok(Ok((stream, _))) = tokio::time::timeout_at(until, listener.accept()).await {
        dials.push(started.elapsed());
        // Not a ZMTP peer: the handshake fails.
        drop(stream);
    }
    // At about 0, 200, 600 and 1,400 ms.
    assert!((2..=5).contains(&dials.len()), "dials at {dials:?}");
    assert!(dials[0] < (dials[1] - dials[0]) / 2, "dials at {dials:?}");
    assert!(!a.is_connected("rb"));
}

/// An address now held by another server (a restart elsewhere took it over): the server
/// there answers with its own identity, and the link does not take it for the one dialed.
#[tokio::test]
async fn a_peer_answering_with_another_identity_is_not_taken_for_the_one_dialed() {
    let (a, _a_events) = link("ia").await;
    let (b, _b_events) = link("ib").await;
    a.connect("gone", b.address());
    for _ in 0..50 {
        assert!(!a.is_connected("gone"), "took {} for gone", b.address());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The same address under its own server id connects.
    a.connect("ib", b.address());
    until_link_up(&a, "ib", b"h", b"p").await;
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

/// The sink gets messages on the link's own task, and the link lets go of it when closed or
/// dropped (the sink may own the node that owns the link).
#[tokio::test]
async fn the_sink_gets_messages_and_is_let_go_on_close_or_drop() {
    for dropped in [false, true] {
        let a_id = format!("da-{dropped}");
        let (a, _a_events) = link(&a_id).await;
        let b_id = format!("db-{dropped}");
        let b = ZmqLink::bind(&b_id, "tcp://127.0.0.1:0", None, ZmqLinkConfig::default())
            .await
            .unwrap();
        let (tx, mut delivered) = mpsc::unbounded_channel();
        let sink: playhouse_mesh::EventSink = Arc::new(move |event| {
            let _ = tx.send(event);
        });
        b.start(Arc::clone(&sink));
        a.connect(&b_id, b.address());
        until_link_up(&a, &b_id, b"h", b"direct").await;
        let event = tokio::time::timeout(Duration::from_secs(5), delivered.recv())
            .await
            .expect("delivered within 5 s");
        assert!(
            matches!(&event, Some(LinkEvent::Message { from, payload, .. })
                if **from == *a_id && &payload[..] == b"direct"),
            "{event:?}"
        );
        if dropped {
            drop(b);
        } else {
            b.close();
        }
        for _ in 0..100 {
            if Arc::strong_count(&sink) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            Arc::strong_count(&sink),
            1,
            "the sink is let go (dropped: {dropped})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_partition_is_detected_within_the_heartbeat_timeout() {
    common::faults::silent_partition_is_detected_within_the_heartbeat_timeout(ZMQ).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_loss_is_detected_within_the_heartbeat_timeout() {
    common::faults::one_way_loss_is_detected_within_the_heartbeat_timeout(ZMQ).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_peer_is_detected_within_the_heartbeat_timeout() {
    common::faults::a_frozen_peer_is_detected_within_the_heartbeat_timeout(ZMQ).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_drops_the_connection_the_peer_dialed_too() {
    common::faults::a_reset_drops_the_connection_the_peer_dialed_too(ZMQ).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_fails_requests_at_once_and_reconnects() {
    common::faults::a_reset_fails_requests_at_once_and_reconnects(ZMQ).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_delay_is_not_mistaken_for_a_dead_peer() {
    common::faults::added_delay_is_not_mistaken_for_a_dead_peer(ZMQ).await;
}
