//! What the mesh tests over each link share: a test handler, nodes, and the scenarios every
//! link must pass (request/reply, sending to oneself, timeouts, dead peers; and in `faults`,
//! real network faults through a proxy).

pub(crate) mod fault_proxy;
pub(crate) mod faults;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use playhouse_mesh::{
    Directory, InboundHandler, MemoryDirectory, Mesh, MeshConfig, MeshError, MeshLink, Route,
    RoutePacket, ServerType,
};
use playhouse_protocol::{ErrorCode, Packet};
use tokio::sync::mpsc;

/// Binds a link for server `id` on loopback.
pub(crate) type Bind = fn(&str) -> Pin<Box<dyn Future<Output = Arc<dyn MeshLink>>>>;

/// How many times each request payload was handled (`Count` and `Hold`).
pub(crate) type Executed = Arc<Mutex<HashMap<Bytes, u32>>>;

/// Echo replies; `Fail` replies 1234; `Slow` replies after 300 ms; `Note` is forwarded to a
/// channel; `Count` is counted by payload and echoed; `Hold` is counted and never answered;
/// anything else is ignored.
struct Handler {
    notes: mpsc::UnboundedSender<RoutePacket>,
    executed: Executed,
}

impl InboundHandler for Handler {
    fn handle(&self, mesh: &Mesh, packet: RoutePacket) {
        let id = packet.route.msg_id();
        if id == "Count" || id == "Hold" {
            *self
                .executed
                .lock()
                .unwrap()
                .entry(packet.payload.clone())
                .or_default() += 1;
        }
        match id {
            "Count" => {
                let _ = mesh.reply(&packet.route, ErrorCode::SUCCESS, packet.packet());
            }
            "Echo" => {
                let _ = mesh.reply(&packet.route, ErrorCode::SUCCESS, packet.packet());
            }
            "Fail" => {
                let _ = mesh.reply(&packet.route, ErrorCode(1234), Packet::empty("Failed"));
            }
            "Slow" => {
                let mesh = mesh.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let _ = mesh.reply(&packet.route, ErrorCode::SUCCESS, packet.packet());
                });
            }
            "Note" => {
                let _ = self.notes.send(packet);
            }
            _ => {}
        }
    }
}

/// A mesh node with the test handler.
pub(crate) struct Node {
    pub(crate) mesh: Mesh,
    /// The node's link, to simulate a crash (connections gone, directory entry still there).
    pub(crate) link: Arc<dyn MeshLink>,
    pub(crate) notes: mpsc::UnboundedReceiver<RoutePacket>,
    pub(crate) executed: Executed,
}

/// Starts node `id` over a link from `bind`, refreshing the directory every 50 ms.
pub(crate) async fn node(bind: Bind, id: &str, directory: &MemoryDirectory) -> Node {
    node_with(bind, id, Arc::new(directory.clone()), |_| {}).await
}

/// [`node`] with any directory and settings changed by `tune`.
pub(crate) async fn node_with(
    bind: Bind,
    id: &str,
    directory: Arc<dyn Directory>,
    tune: impl FnOnce(&mut MeshConfig),
) -> Node {
    let link = bind(id).await;
    let (notes_tx, notes) = mpsc::unbounded_channel();
    let mut config = MeshConfig::new(id, ServerType::Api);
    config.refresh_interval = Duration::from_millis(50);
    tune(&mut config);
    let executed = Executed::default();
    let handler = Handler {
        notes: notes_tx,
        executed: Arc::clone(&executed),
    };
    let mesh = Mesh::start(config, Arc::clone(&link), directory, Arc::new(handler)).await;
    Node {
        mesh,
        link,
        notes,
        executed,
    }
}

pub(crate) fn header(msg_id: &str) -> Route {
    Route::new(msg_id)
}

/// Requests until the peer answers (connections come up asynchronously after a refresh).
pub(crate) async fn until_connected(from: &Mesh, to: &str) {
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

/// Replies, remote error codes, one-way sends, and 200 requests in flight at once.
pub(crate) async fn request_reply_send_and_remote_errors(bind: Bind) {
    let directory = MemoryDirectory::new();
    let a = node(bind, "a", &directory).await;
    let mut b = node(bind, "b", &directory).await;
    a.mesh.refresh().await.unwrap();
    until_connected(&a.mesh, "b").await;

    let reply = a
        .mesh
        .request("b", header("Echo"), Bytes::from_static(b"hi"))
        .await
        .unwrap();
    assert_eq!(
        (reply.route.msg_id(), &reply.payload[..]),
        ("Echo", &b"hi"[..])
    );
    assert_eq!(reply.route.from(), "b");

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
        (note.route.from(), &note.payload[..]),
        ("a", &b"one-way"[..])
    );
    assert!(!note.route.is_request());

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

/// A server requests and sends to itself through its own link.
pub(crate) async fn a_server_can_send_to_itself(bind: Bind) {
    let directory = MemoryDirectory::new();
    let mut a = node(bind, "solo", &directory).await;
    until_connected(&a.mesh, "solo").await;
    let reply = a
        .mesh
        .request("solo", header("Echo"), Bytes::from_static(b"me"))
        .await
        .unwrap();
    assert_eq!(&reply.payload[..], b"me");
    assert_eq!(reply.route.from(), "solo");
    a.mesh
        .send("solo", header("Note"), Bytes::from_static(b"note to self"))
        .unwrap();
    let note = tokio::time::timeout(Duration::from_secs(5), a.notes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&note.payload[..], b"note to self");
}

/// A timed-out request leaves no cache entry; its late reply is discarded and counted.
pub(crate) async fn timeouts_leave_the_cache_empty_and_late_replies_are_discarded(bind: Bind) {
    let directory = MemoryDirectory::new();
    let a = node(bind, "ta", &directory).await;
    let _b = node(bind, "tb", &directory).await;
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

/// Unknown servers fail at once; a crashed peer fails its requests in flight and new ones
/// fast (never after the 30 s timeout); a restart at a new address is reconnected.
pub(crate) async fn unknown_or_dead_servers_fail_fast_and_recover(bind: Bind) {
    let directory = MemoryDirectory::new();
    let a = node(bind, "da", &directory).await;
    let started = tokio::time::Instant::now();
    let unknown = a.mesh.request("nobody", header("Echo"), Bytes::new()).await;
    assert!(matches!(unknown, Err(MeshError::ServerNotFound(_))));
    assert_eq!(unknown.unwrap_err().code(), ErrorCode::SERVER_NOT_FOUND);

    let b = node(bind, "db", &directory).await;
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
    let b2 = node(bind, "db", &directory).await;
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

/// A request to a server the directory lists but whose link is still connecting (both just
/// started) waits for the link instead of failing with `ServerNotFound`.
pub(crate) async fn a_listed_peer_still_connecting_is_waited_for(bind: Bind) {
    let directory = MemoryDirectory::new();
    let a = node(bind, "wa", &directory).await;
    let b = node(bind, "wb", &directory).await;
    a.mesh.refresh().await.unwrap();
    // No wait for the connection: the request goes out as soon as `wb` is listed.
    let reply = a
        .mesh
        .request("wb", header("Echo"), Bytes::from_static(b"early"))
        .await
        .expect("a request to a listed peer waits for its link");
    assert_eq!(&reply.payload[..], b"early");
    b.mesh.shutdown().await;
    a.mesh.shutdown().await;
}
