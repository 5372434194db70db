//! Two and three mesh nodes over real TCP links and one in-memory directory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use playhouse_mesh::proto::RouteHeader;
use playhouse_mesh::{
    InboundHandler, MemoryDirectory, Mesh, MeshConfig, MeshError, RoutePacket, ServerType, TcpLink,
};
use playhouse_protocol::{ErrorCode, Packet};
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
    notes: mpsc::UnboundedReceiver<RoutePacket>,
}

async fn node(id: &str, directory: &MemoryDirectory) -> Node {
    let (events_tx, events) = mpsc::channel(1024);
    let link = TcpLink::bind(id, "127.0.0.1:0", None, events_tx)
        .await
        .unwrap();
    let (notes_tx, notes) = mpsc::unbounded_channel();
    let mut config = MeshConfig::new(id, ServerType::Api);
    config.refresh_interval = Duration::from_millis(50);
    let mesh = Mesh::start(
        config,
        Arc::new(link),
        events,
        Arc::new(directory.clone()),
        Arc::new(Handler { notes: notes_tx }),
    )
    .await;
    Node { mesh, notes }
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
    assert_eq!(a.mesh.pending_requests(), 0);
}

#[tokio::test]
async fn a_server_can_send_to_itself() {
    let directory = MemoryDirectory::new();
    let a = node("solo", &directory).await;
    until_connected(&a.mesh, "solo").await;
    let reply = a
        .mesh
        .request("solo", header("Echo"), Bytes::from_static(b"me"))
        .await
        .unwrap();
    assert_eq!(&reply.payload[..], b"me");
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
    a.mesh.refresh().await.unwrap();
    until_connected(&a.mesh, "db").await;
    b.mesh.shutdown().await;
    drop(b);
    // Down: fails quickly with ServerNotFound (never waits for the 30 s timeout).
    let mut failed_fast = false;
    for _ in 0..100 {
        match a.mesh.request("db", header("Echo"), Bytes::new()).await {
            Err(MeshError::ServerNotFound(_)) => {
                failed_fast = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(failed_fast);
    assert!(started.elapsed() < Duration::from_secs(10));
    // Back (same id, new address): the directory refresh reconnects.
    let _b2 = node("db", &directory).await;
    a.mesh.refresh().await.unwrap();
    until_connected(&a.mesh, "db").await;
    assert_eq!(a.mesh.pending_requests(), 0);
}
