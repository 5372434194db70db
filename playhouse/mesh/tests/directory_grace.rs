//! A mesh node's directory view on a paused clock, with a scripted link and directory: a
//! peer missing from the directory stays routable until its entry's TTL would have run out
//! (unless its connection is down), a node re-publishes itself as soon as its directory
//! answers again, and a peer that joined since the last refresh is learned when the node must
//! answer it (a reply, a pong), with one directory read, not one per retry.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use playhouse_mesh::{
    DIRECTORY_RETRY_MAX, Directory, DirectoryError, InboundHandler, MemoryDirectory, Mesh,
    MeshConfig, MeshError, MeshLink, REPLY_RETRY, Route, RoutePacket, ServerInfo, ServerState,
    ServerType,
};
use playhouse_protocol::{ErrorCode, Packet};
use tokio::time::{Instant, sleep, sleep_until};

mod scripted;

use scripted::{ScriptedLink, WireHeader};

const TTL: Duration = Duration::from_secs(10);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A shared in-memory directory that can fail (down) and lose every entry (an empty
/// restart), recording when each server published successfully and counting reads.
#[derive(Clone, Default)]
struct FlakyDirectory {
    entries: MemoryDirectory,
    down: Arc<AtomicBool>,
    published: Arc<Mutex<Vec<(String, Instant)>>>,
    lists: Arc<AtomicUsize>,
}

impl FlakyDirectory {
    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every entry gone, as after a restart of a store without persistence.
    async fn wipe(&self) {
        for entry in self.entries.list().await.unwrap() {
            self.entries.remove(&entry.server_id).await.unwrap();
        }
    }

    async fn ids(&self) -> Vec<String> {
        let list = self.entries.list().await.unwrap();
        list.into_iter().map(|entry| entry.server_id).collect()
    }

    /// The first successful publish by `server_id` at or after `since`.
    fn published_since(&self, server_id: &str, since: Instant) -> Option<Instant> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(id, at)| id == server_id && *at >= since)
            .map(|(_, at)| *at)
    }

    fn failure<T>() -> Result<T, DirectoryError> {
        Err(DirectoryError::Backend("the directory is down".to_owned()))
    }
}

impl Directory for FlakyDirectory {
    fn publish<'a>(
        &'a self,
        info: &'a ServerInfo,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), DirectoryError>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Self::failure();
            }
            self.entries.publish(info, ttl).await?;
            self.published
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((info.server_id.clone(), Instant::now()));
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ServerInfo>, DirectoryError>> {
        Box::pin(async move {
            self.lists.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Self::failure();
            }
            self.entries.list().await
        })
    }

    fn remove<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>> {
        Box::pin(async move { self.entries.remove(server_id).await })
    }
}

struct Ignore;

impl InboundHandler for Ignore {
    fn handle(&self, _mesh: &Mesh, _packet: RoutePacket) {}
}

/// Node `a` over the scripted link, refreshing every `refresh`. The scripted peers never
/// answer pings, so liveness is off: these tests are about the directory.
async fn node(directory: &FlakyDirectory, refresh: Duration) -> (Mesh, Arc<ScriptedLink>) {
    node_handling(directory, refresh, Arc::new(Ignore)).await
}

/// [`node`], its messages to `handler`.
async fn node_handling(
    directory: &FlakyDirectory,
    refresh: Duration,
    handler: Arc<dyn InboundHandler>,
) -> (Mesh, Arc<ScriptedLink>) {
    let link = Arc::new(ScriptedLink::default());
    let mut config = MeshConfig::new("a", ServerType::Api);
    config.refresh_interval = refresh;
    config.directory_ttl = TTL;
    config.heartbeat_interval = Duration::ZERO;
    let mesh = Mesh::start(
        config,
        Arc::clone(&link) as Arc<dyn MeshLink>,
        Arc::new(directory.clone()),
        handler,
    )
    .await;
    (mesh, link)
}

/// Another server's entry, published by the test as that server would.
fn peer(id: &str) -> ServerInfo {
    ServerInfo {
        server_type: ServerType::Play,
        service_id: 1,
        server_id: id.to_owned(),
        address: format!("tcp://10.0.0.2:{}", 5000 + id.len()),
        state: ServerState::Running,
        weight: 100,
        moved_in: Vec::new(),
    }
}

fn routable(mesh: &Mesh, id: &str) -> bool {
    let sent = mesh.send(id, Route::default(), Bytes::new());
    match sent {
        Ok(()) => true,
        Err(MeshError::ServerNotFound(_)) => false,
        Err(error) => panic!("unexpected {error}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_missing_from_the_directory_stays_routable_until_its_ttl() {
    let directory = FlakyDirectory::default();
    directory.publish(&peer("b"), TTL).await.unwrap();
    let (a, link) = node(&directory, secs(1)).await;
    let seen = Instant::now();
    assert!(a.servers().get("b").is_some());
    assert!(routable(&a, "b"));

    // b's entry is lost (an empty directory restart, a deleted key) while b lives on.
    sleep(millis(500)).await;
    directory.entries.remove("b").await.unwrap();
    // Refreshes that miss it keep it routable: its entry would not have expired yet.
    sleep_until(seen + millis(1500)).await;
    assert_eq!(a.servers().unlisted(), vec![peer("b")]);
    assert!(
        routable(&a, "b"),
        "dropped by the first refresh that missed it"
    );
    sleep_until(seen + TTL - millis(100)).await;
    assert!(routable(&a, "b"));
    assert!(link.disconnects().is_empty());

    // It never came back: dropped once its TTL (from its last listing) ran out, not before
    // the refresh after that.
    sleep_until(seen + TTL + secs(1) + millis(100)).await;
    assert!(a.servers().get("b").is_none());
    assert!(!routable(&a, "b"));
    assert_eq!(link.disconnects(), ["b"]);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_re_publishes_within_its_ttl_is_never_dropped() {
    let directory = FlakyDirectory::default();
    directory.publish(&peer("b"), TTL).await.unwrap();
    let (a, link) = node(&directory, secs(1)).await;
    let started = Instant::now();
    for round in 1..=4 {
        // Lost for 8 s of every 10 (it re-publishes, then the entry is lost again).
        sleep_until(started + secs(10 * round - 8)).await;
        directory.wipe().await;
        sleep_until(started + secs(10 * round)).await;
        assert!(routable(&a, "b"), "round {round}");
        directory.publish(&peer("b"), TTL).await.unwrap();
    }
    assert!(link.disconnects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_missing_peer_whose_connection_is_down_goes_at_once() {
    let directory = FlakyDirectory::default();
    directory.publish(&peer("b"), TTL).await.unwrap();
    directory.publish(&peer("cc"), TTL).await.unwrap();
    let (a, link) = node(&directory, secs(1)).await;
    assert!(routable(&a, "b") && routable(&a, "cc"));

    // b stops gracefully: its entry goes, and so does its connection. The next refresh
    // drops it (no TTL wait: service routing must not pick a server that left).
    directory.entries.remove("b").await.unwrap();
    link.set_down("b");
    sleep(millis(1100)).await;
    assert!(a.servers().get("b").is_none());
    assert_eq!(link.disconnects(), ["b"]);

    // cc's entry goes first (kept on trust), then its connection: dropped at once, without
    // waiting for a refresh.
    directory.entries.remove("cc").await.unwrap();
    sleep(millis(1000)).await;
    assert_eq!(a.servers().unlisted(), vec![peer("cc")]);
    link.set_down("cc");
    link.report_down("cc");
    sleep(millis(10)).await;
    assert!(a.servers().get("cc").is_none());
    assert_eq!(link.disconnects(), ["b", "cc"]);

    // A listed peer whose connection drops stays (the link reconnects).
    directory.publish(&peer("dd"), TTL).await.unwrap();
    sleep(millis(1000)).await;
    link.set_down("dd");
    link.report_down("dd");
    sleep(millis(10)).await;
    assert!(a.servers().get("dd").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_node_re_publishes_as_soon_as_the_directory_answers_again() {
    let directory = FlakyDirectory::default();
    directory.publish(&peer("b"), TTL).await.unwrap();
    // A long refresh interval: waiting for the next one would take seconds.
    let (a, link) = node(&directory, secs(5)).await;
    let started = Instant::now();

    // The directory goes down for longer than the TTL, and comes back empty.
    sleep(millis(500)).await;
    directory.set_down(true);
    // (Half-way between two refresh intervals, so the next one is 4.5 s away.)
    sleep_until(started + secs(20) + millis(500)).await;
    assert!(routable(&a, "b"), "a failing directory changes nothing");
    directory.wipe().await;
    directory.set_down(false);
    let back = Instant::now();

    // a is back in the directory within one retry step, not at its next interval.
    sleep(DIRECTORY_RETRY_MAX + millis(100)).await;
    let republished = directory
        .published_since("a", back)
        .expect("a did not re-publish itself");
    assert!(
        republished - back <= DIRECTORY_RETRY_MAX,
        "re-published {:?} after the directory came back",
        republished - back
    );
    assert_eq!(directory.ids().await, ["a"]);

    // b has not re-published yet; its last listing was 20 s ago, but nobody could publish
    // meanwhile, so it gets a whole TTL from the directory's return.
    assert!(routable(&a, "b"));
    directory.publish(&peer("b"), TTL).await.unwrap();
    sleep(secs(15)).await;
    assert!(routable(&a, "b"));
    assert!(link.disconnects().is_empty());
}

/// Answers every request at once.
struct Answer;

impl InboundHandler for Answer {
    fn handle(&self, mesh: &Mesh, packet: RoutePacket) {
        let reply = Packet::new("Answer", "yes");
        mesh.reply(&packet.route, ErrorCode::SUCCESS, reply)
            .expect("a reply is sent or retried");
    }
}

/// `from`'s request with sequence `seq`, as the link delivers it.
fn ask(link: &ScriptedLink, from: &str, seq: u32) {
    let request = WireHeader {
        msg_seq: seq,
        msg_id: "Ask".to_owned(),
        ..WireHeader::default()
    };
    link.receive(from, request, Bytes::new());
}

/// When `a`'s reply to request `seq` reached `to`, if it did.
fn replied(link: &ScriptedLink, to: &str, seq: u32) -> Option<Instant> {
    link.take_sent()
        .into_iter()
        .find(|sent| sent.target == to && sent.header.is_reply && sent.header.msg_seq == seq)
        .map(|sent| sent.at)
}

/// A requester that joined after `a`'s last refresh (its request reached `a` first) gets its
/// reply as soon as `a` has read the directory once, not at `a`'s next refresh interval.
#[tokio::test(start_paused = true)]
async fn a_reply_to_a_requester_not_known_yet_goes_once_the_directory_lists_it() {
    let directory = FlakyDirectory::default();
    let (a, link) = node_handling(&directory, secs(60), Arc::new(Answer)).await;
    directory.publish(&peer("c"), TTL).await.unwrap();
    assert!(a.servers().get("c").is_none());
    let asked = Instant::now();
    ask(&link, "c", 9);
    sleep(millis(100)).await;
    let at = replied(&link, "c", 9).expect("the reply to c was not delivered");
    assert!(at - asked <= millis(20), "delivered {:?} late", at - asked);
    assert!(a.servers().get("c").is_some());
}

/// A reply to a requester the directory never lists is given up after [`REPLY_RETRY`], having
/// read the directory once: a vanished requester must not turn every reply into a directory
/// read every retry step.
#[tokio::test(start_paused = true)]
async fn a_reply_to_an_unlisted_requester_reads_the_directory_once_then_gives_up() {
    let directory = FlakyDirectory::default();
    let (_a, link) = node_handling(&directory, secs(60), Arc::new(Answer)).await;
    let before = directory.lists.load(Ordering::SeqCst);
    ask(&link, "gone", 3);
    sleep(REPLY_RETRY + secs(1)).await;
    assert_eq!(replied(&link, "gone", 3), None);
    assert_eq!(directory.lists.load(Ordering::SeqCst) - before, 1);

    // It appears later: too late for that reply, which is not sent.
    directory.publish(&peer("gone"), TTL).await.unwrap();
    sleep(secs(1)).await;
    assert_eq!(replied(&link, "gone", 3), None);
}

/// A ping from a peer `a` does not know yet (it joined since `a`'s last refresh) makes `a`
/// read the directory at once: otherwise `a` cannot answer it, and the peer would declare `a`
/// down before `a`'s next refresh interval.
#[tokio::test(start_paused = true)]
async fn a_ping_from_a_peer_not_known_yet_makes_the_node_learn_it() {
    let directory = FlakyDirectory::default();
    let (a, link) = node(&directory, secs(60)).await;
    directory.publish(&peer("c"), TTL).await.unwrap();
    let ping = WireHeader {
        liveness: 1,
        ..WireHeader::default()
    };
    link.receive("c", ping.clone(), Bytes::from_static(b"t0"));
    sleep(millis(10)).await;
    assert!(
        a.servers().get("c").is_some(),
        "c not learned from its ping"
    );
    link.take_sent();
    link.receive("c", ping, Bytes::from_static(b"t1"));
    let pong = link.take_sent().into_iter().find(|sent| sent.target == "c");
    let pong = pong.expect("the next ping is answered");
    assert_eq!((pong.header.liveness, &pong.payload[..]), (2, &b"t1"[..]));
}
