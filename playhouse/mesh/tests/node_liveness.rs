//! The mesh node's liveness on a paused clock, over a scripted link: exact deadlines, what
//! counts as hearing from a peer (only pongs), what a verdict does (requests fail, the link
//! is reset, sends fail at once) and what undoes it (a pong to a ping sent after it). Also
//! what the node refuses before a message reaches the link: a payload over its limit, and
//! anything once the link is closed; and what it does when the link reports a frame it could
//! not write.

mod scripted;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use playhouse_mesh::{
    Directory, InboundHandler, LinkEvent, MemoryDirectory, Mesh, MeshConfig, MeshError, MeshLink,
    Route, RoutePacket, ServerInfo, ServerState, ServerType,
};
use prost::Message;
use scripted::{ScriptedLink, WireHeader};
use tokio::time::{Instant, sleep};

const INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(450);
const PING: u32 = 1;
const PONG: u32 = 2;

struct Ignore;

impl InboundHandler for Ignore {
    fn handle(&self, _mesh: &Mesh, _packet: RoutePacket) {}
}

/// Node `a` with peer `b` listed and connected.
async fn node() -> (Mesh, Arc<ScriptedLink>) {
    node_with(&["b"]).await
}

/// Node `a` (service 7) with `peers` listed and connected.
async fn node_with(peers: &[&str]) -> (Mesh, Arc<ScriptedLink>) {
    node_handling(peers, Arc::new(Ignore)).await
}

/// Node `a` (service 7) with `peers` listed and connected, its messages to `handler`.
async fn node_handling(
    peers: &[&str],
    handler: Arc<dyn InboundHandler>,
) -> (Mesh, Arc<ScriptedLink>) {
    let directory = MemoryDirectory::new();
    for (n, peer) in peers.iter().enumerate() {
        let info = ServerInfo {
            server_type: ServerType::Play,
            service_id: 1,
            server_id: (*peer).to_owned(),
            address: format!("tcp://10.0.0.{}:5000", n + 2),
            state: ServerState::Running,
            weight: 100,
            moved_in: Vec::new(),
        };
        directory
            .publish(&info, Duration::from_secs(3600))
            .await
            .unwrap();
    }
    let link = Arc::new(ScriptedLink::default());
    let mut config = MeshConfig::new("a", ServerType::Api);
    config.service_id = 7;
    config.request_timeout = Duration::from_secs(30);
    config.heartbeat_interval = INTERVAL;
    config.heartbeat_timeout = TIMEOUT;
    config.refresh_interval = Duration::from_secs(60);
    config.directory_ttl = Duration::from_secs(3600);
    let mesh = Mesh::start(
        config,
        Arc::clone(&link) as Arc<dyn MeshLink>,
        Arc::new(directory),
        handler,
    )
    .await;
    (mesh, link)
}

/// `b` answers every ping sent so far; returns when the last answered one was sent.
fn answer_pings(link: &ScriptedLink) -> Option<Instant> {
    answer_pings_of(link, "b")
}

/// `peer` answers every ping sent to it so far (others are dropped); returns when the last
/// answered one was sent.
fn answer_pings_of(link: &ScriptedLink, peer: &str) -> Option<Instant> {
    let mut last = None;
    for sent in link.take_sent() {
        if sent.target == peer && sent.header.liveness == PING {
            let pong = WireHeader {
                liveness: PONG,
                ..WireHeader::default()
            };
            link.receive(peer, pong, sent.payload);
            last = Some(sent.at);
        }
    }
    last
}

fn header(msg_id: &str) -> Route {
    Route::new(msg_id)
}

fn note() -> WireHeader {
    WireHeader {
        msg_id: "Note".to_owned(),
        ..WireHeader::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_answers_pings_stays_up() {
    let (a, link) = node().await;
    for _ in 0..100 {
        sleep(INTERVAL / 2).await;
        answer_pings(&link);
    }
    assert_eq!(a.peers_declared_down(), 0);
    assert!(link.resets().is_empty());
    a.send("b", header("Note"), Bytes::new()).expect("b is up");
}

/// Messages from `b` other than pongs do not keep it alive (its messages still arriving
/// says nothing about ours reaching it): declared down exactly a timeout after the last
/// answered ping was sent; its request in flight fails at that instant with
/// SERVER_NOT_FOUND, the link is reset, and sends fail at once.
#[tokio::test(start_paused = true)]
async fn only_pongs_count_and_a_verdict_fails_requests_and_resets_the_link() {
    let (a, link) = node().await;
    let mut last_answered = None;
    for _ in 0..10 {
        sleep(INTERVAL / 2).await;
        last_answered = answer_pings(&link).or(last_answered);
    }
    let last_answered = last_answered.expect("pings were sent");
    let in_flight = {
        let a = a.clone();
        tokio::spawn(async move {
            let result = a.request("b", header("Work"), Bytes::new()).await;
            (result, Instant::now())
        })
    };
    // b keeps talking, but answers no ping.
    for _ in 0..20 {
        sleep(INTERVAL / 2).await;
        link.receive("b", note(), Bytes::from_static(b"still here"));
        link.take_sent();
    }
    let (result, failed_at) = in_flight.await.unwrap();
    assert!(
        matches!(result, Err(MeshError::ServerNotFound(ref peer)) if peer == "b"),
        "{result:?}"
    );
    assert_eq!(failed_at, last_answered + TIMEOUT, "failed at the deadline");
    assert!(a.peers_declared_down() >= 1);
    let resets = link.resets();
    assert_eq!(
        resets.first(),
        Some(&("b".to_owned(), last_answered + TIMEOUT))
    );
    assert!(matches!(
        a.send("b", header("Note"), Bytes::new()),
        Err(MeshError::ServerNotFound(_))
    ));
}

/// After a verdict, a pong to a ping sent before it proves nothing; a pong to a ping sent
/// after it brings the peer back. While silent, it is reset again every timeout.
#[tokio::test(start_paused = true)]
async fn a_down_peer_is_back_once_it_answers_a_later_ping() {
    let (a, link) = node().await;
    sleep(INTERVAL / 2).await;
    let early = link.take_sent();
    let early_ping = early
        .iter()
        .find(|sent| sent.header.liveness == PING)
        .expect("a ping at once")
        .clone();
    sleep(TIMEOUT * 2 + INTERVAL / 2).await;
    assert_eq!(a.peers_declared_down(), 2, "reset again while silent");
    assert_eq!(link.resets().len(), 2);
    let pong = WireHeader {
        liveness: PONG,
        ..WireHeader::default()
    };
    link.receive("b", pong, early_ping.payload);
    assert!(
        a.send("b", header("Note"), Bytes::new()).is_err(),
        "a stale pong"
    );
    sleep(INTERVAL).await;
    assert!(answer_pings(&link).is_some());
    a.send("b", header("Note"), Bytes::new()).expect("back");
}

/// A ping is answered with a pong carrying the same payload, and never reaches the handler.
#[tokio::test(start_paused = true)]
async fn pings_are_answered_with_their_payload() {
    let (_a, link) = node().await;
    link.take_sent();
    let ping = WireHeader {
        liveness: PING,
        ..WireHeader::default()
    };
    link.receive("b", ping, Bytes::from_static(b"12345678"));
    let pongs: Vec<_> = link
        .take_sent()
        .into_iter()
        .filter(|sent| sent.header.liveness == PONG)
        .collect();
    assert_eq!(pongs.len(), 1);
    assert_eq!(pongs[0].target, "b");
    assert_eq!(&pongs[0].payload[..], b"12345678");
}

/// A verdict is about one peer: while `c` is down, `b` (answering) keeps working, and its
/// request in flight is counted until it ends. The node's identity reads back as configured.
#[tokio::test(start_paused = true)]
async fn one_peer_down_leaves_the_others_up() {
    let (a, link) = node_with(&["b", "c"]).await;
    assert_eq!(a.service_id(), 7);
    assert_eq!(a.request_timeout(), Duration::from_secs(30));
    let held = {
        let a = a.clone();
        tokio::spawn(async move { a.request("b", header("Work"), Bytes::new()).await })
    };
    for _ in 0..20 {
        sleep(INTERVAL / 2).await;
        answer_pings_of(&link, "b");
    }
    assert!(a.peers_declared_down() >= 1, "c, silent, is down");
    assert!(matches!(
        a.send("c", header("Note"), Bytes::new()),
        Err(MeshError::ServerNotFound(_))
    ));
    a.send("b", header("Note"), Bytes::new())
        .expect("b answers its pings: up");
    assert_eq!(
        a.pending_requests(),
        1,
        "the request to b is still in flight"
    );
    assert!(!held.is_finished());
    held.abort();
}

/// A payload over `max_payload` is refused with `TooLarge` and never reaches the link; one of
/// exactly `max_payload` bytes is sent.
#[tokio::test(start_paused = true)]
async fn a_payload_over_the_limit_is_refused_before_the_link() {
    let (a, link) = node().await;
    let max = MeshConfig::new("a", ServerType::Api).max_payload;
    link.take_sent();
    let over = a.send("b", header("Big"), Bytes::from(vec![0; max + 1]));
    assert!(
        matches!(over, Err(MeshError::TooLarge { len, max: m }) if len == max + 1 && m == max),
        "{over:?}"
    );
    let request = a
        .request("b", header("Big"), Bytes::from(vec![0; max + 1]))
        .await;
    assert!(
        matches!(request, Err(MeshError::TooLarge { .. })),
        "{request:?}"
    );
    assert!(
        link.take_sent()
            .iter()
            .all(|sent| sent.header.msg_id != "Big")
    );
    a.send("b", header("Full"), Bytes::from(vec![0; max]))
        .expect("exactly the limit is allowed");
    assert!(
        link.take_sent()
            .iter()
            .any(|sent| sent.header.msg_id == "Full")
    );
}

/// A link that reports itself closed makes sends fail with `Closed`, not `ServerNotFound`:
/// the caller learns the node is going away, not that its peer is.
#[tokio::test(start_paused = true)]
async fn a_closed_link_fails_sends_as_closed() {
    let (a, link) = node().await;
    link.close();
    let sent = a.send("b", header("Note"), Bytes::new());
    assert!(matches!(sent, Err(MeshError::Closed)), "{sent:?}");
}

/// A request the link took but then could not write (the connection broke with it queued)
/// fails at once with `ServerNotFound`, not at its timeout; a reply the link could not write
/// completes nothing, even where its sequence matches a request of this node's in flight.
#[tokio::test(start_paused = true)]
async fn a_request_the_link_could_not_write_fails_at_once() {
    let (a, link) = node().await;
    link.take_sent();
    let mesh = a.clone();
    let held = tokio::spawn(async move { mesh.request("b", header("Ask"), Bytes::new()).await });
    sleep(Duration::from_millis(1)).await;
    let sent = link.take_sent();
    let request = sent
        .iter()
        .find(|sent| sent.header.msg_id == "Ask")
        .expect("the request reached the link");
    let seq = request.header.msg_seq;
    assert_ne!(seq, 0);

    let reply = WireHeader {
        msg_seq: seq,
        is_reply: true,
        ..WireHeader::default()
    };
    link.deliver(LinkEvent::SendFailed {
        target: Arc::from("b"),
        header: Bytes::from(reply.encode_to_vec()),
    });
    sleep(Duration::from_millis(1)).await;
    assert!(!held.is_finished(), "a failed reply completed a request");

    let failed_at = Instant::now();
    link.deliver(LinkEvent::SendFailed {
        target: Arc::from("b"),
        header: Bytes::from(request.header.encode_to_vec()),
    });
    let result = held.await.unwrap();
    assert!(
        matches!(&result, Err(MeshError::ServerNotFound(peer)) if peer == "b"),
        "{result:?}"
    );
    assert_eq!(Instant::now(), failed_at, "failed only at its timeout");
    assert_eq!(a.pending_requests(), 0);
}

/// Answers every request with a payload of `len` bytes.
struct ReplyOf {
    len: usize,
}

impl InboundHandler for ReplyOf {
    fn handle(&self, mesh: &Mesh, packet: RoutePacket) {
        let reply = playhouse_protocol::Packet::new("Reply", vec![0; self.len]);
        let _ = mesh.reply(&packet.route, playhouse_protocol::ErrorCode::SUCCESS, reply);
    }
}

/// The code and payload length of the reply `a` sends to a request from `b`.
async fn reply_of(len: usize) -> (u32, usize) {
    let (_a, link) = node_handling(&["b"], Arc::new(ReplyOf { len })).await;
    link.take_sent();
    let request = WireHeader {
        msg_seq: 9,
        msg_id: "Ask".to_owned(),
        ..WireHeader::default()
    };
    link.receive("b", request, Bytes::new());
    let sent = link.take_sent();
    let reply = sent
        .iter()
        .find(|sent| sent.header.is_reply && sent.header.msg_seq == 9)
        .expect("a reply to the request");
    (reply.header.error_code, reply.payload.len())
}

/// A reply over `max_payload` reaches the requester as PACKET_TOO_LARGE with no payload (the
/// request still ends); one of exactly `max_payload` bytes goes as it is.
#[tokio::test(start_paused = true)]
async fn a_reply_over_the_limit_becomes_packet_too_large() {
    let max = MeshConfig::new("a", ServerType::Api).max_payload;
    let too_large = u32::from(playhouse_protocol::ErrorCode::PACKET_TOO_LARGE.0);
    assert_eq!(reply_of(max + 1).await, (too_large, 0));
    assert_eq!(reply_of(max).await, (0, max));
}
