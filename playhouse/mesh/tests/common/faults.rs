//! The link scenarios under real network faults: two nodes, each reached through its own
//! [`FaultProxy`], with requests flowing all along. Every link runs the same suite.
//!
//! Each fault asserts what a requester sees: a silent fault (partition, one-way loss, frozen
//! peer) is detected by the node's heartbeats within `heartbeat_timeout` of its start, and the
//! request in flight fails then with `SERVER_NOT_FOUND` (not after its 30 s timeout); a reset
//! is noticed by the link at once; a delay shorter than the timeout is no fault at all; after
//! the fault heals requests succeed again; and no request is ever handled twice or answered
//! with another request's reply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use playhouse_mesh::{
    Directory, DirectoryError, MemoryDirectory, Mesh, MeshConfig, MeshError, ServerInfo,
};
use playhouse_protocol::ErrorCode;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::fault_proxy::{Fault, FaultProxy};
use super::{Bind, Node, header, node_with, until_connected};

/// How often the nodes ping each other.
const INTERVAL: Duration = Duration::from_millis(200);
/// How long a peer may stay silent.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Scheduling slack on a busy machine (the test threads share two cores).
const SLACK: Duration = Duration::from_millis(300);
/// How long after a fault heals requests must succeed again.
const RECOVERY: Duration = Duration::from_secs(5);

/// A directory that advertises a proxy instead of a server's own address.
#[derive(Clone, Default)]
struct Proxied {
    entries: MemoryDirectory,
    via: Arc<Mutex<HashMap<String, String>>>,
}

impl Proxied {
    fn route(&self, server_id: &str, proxy: &FaultProxy) {
        let mut via = self.via.lock().unwrap();
        via.insert(server_id.to_owned(), proxy.address());
    }
}

impl Directory for Proxied {
    fn publish<'a>(
        &'a self,
        info: &'a ServerInfo,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), DirectoryError>> {
        self.entries.publish(info, ttl)
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ServerInfo>, DirectoryError>> {
        Box::pin(async move {
            let mut list = self.entries.list().await?;
            let via = self.via.lock().unwrap();
            for info in &mut list {
                if let Some(proxy) = via.get(&info.server_id) {
                    info.address.clone_from(proxy);
                }
            }
            Ok(list)
        })
    }

    fn remove<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>> {
        self.entries.remove(server_id)
    }
}

/// Nodes `fa` and `fb`, each reached through its own proxy, connected both ways.
struct Pair {
    a: Node,
    b: Node,
    /// Carries what is sent to `fa` (by `fb`).
    to_a: FaultProxy,
    /// Carries what is sent to `fb` (by `fa`).
    to_b: FaultProxy,
}

impl Pair {
    async fn start(bind: Bind) -> Pair {
        Pair::start_with(bind, |_| {}).await
    }

    /// [`Pair::start`] with `fb`'s settings changed by `tune_b`.
    async fn start_with(bind: Bind, tune_b: impl FnOnce(&mut MeshConfig)) -> Pair {
        let directory = Proxied::default();
        let tune = |config: &mut MeshConfig| {
            config.heartbeat_interval = INTERVAL;
            config.heartbeat_timeout = TIMEOUT;
        };
        let a = node_with(bind, "fa", Arc::new(directory.clone()), tune).await;
        let to_a = FaultProxy::start(a.mesh.address()).await;
        directory.route("fa", &to_a);
        let tune_b = |config: &mut MeshConfig| {
            tune(config);
            tune_b(config);
        };
        let b = node_with(bind, "fb", Arc::new(directory.clone()), tune_b).await;
        let to_b = FaultProxy::start(b.mesh.address()).await;
        directory.route("fb", &to_b);
        a.mesh.refresh().await.unwrap();
        b.mesh.refresh().await.unwrap();
        until_connected(&a.mesh, "fb").await;
        until_connected(&b.mesh, "fa").await;
        Pair { a, b, to_a, to_b }
    }

    fn set(&self, fault: Fault) {
        self.to_a.set(fault);
        self.to_b.set(fault);
    }

    /// A request from `fa` that `fb` handles and never answers, once `fb` has it.
    async fn held_request(&self) -> JoinHandle<Result<(), MeshError>> {
        let mesh = self.a.mesh.clone();
        let held = tokio::spawn(async move {
            let payload = Bytes::from_static(b"held");
            mesh.request("fb", header("Hold"), payload).await.map(drop)
        });
        for _ in 0..400 {
            if self.b.executed.lock().unwrap().contains_key(&b"held"[..]) {
                return held;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("fb never got the held request");
    }

    /// Requests succeed again, both ways, within [`RECOVERY`] of now.
    async fn recovers(&self) {
        let healed = Instant::now();
        for (from, to) in [(&self.a.mesh, "fb"), (&self.b.mesh, "fa")] {
            loop {
                let ask = from.request_with_timeout(to, header("Echo"), Bytes::new(), SLACK);
                if ask.await.is_ok() {
                    break;
                }
                let took = healed.elapsed();
                assert!(
                    took <= RECOVERY,
                    "not recovered {took:?} after the fault healed"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Let the traffic run on the healed connections for a while.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Sequential `Count` requests from `fa` to `fb`, each with its own payload, until stopped:
/// what each ended with.
struct Traffic {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<(Bytes, Result<Bytes, MeshError>)>>,
}

impl Traffic {
    fn start(mesh: &Mesh) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let mesh = mesh.clone();
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for n in 0u64.. {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let payload = Bytes::from(n.to_le_bytes().to_vec());
                let timeout = Duration::from_secs(3);
                let reply = mesh
                    .request_with_timeout("fb", header("Count"), payload.clone(), timeout)
                    .await;
                outcomes.push((payload, reply.map(|reply| reply.payload)));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            outcomes
        });
        Traffic { stop, task }
    }

    /// Stops; every request was handled at most once, every reply was its own request's,
    /// every failure was a fault's. Returns (succeeded, sent).
    async fn check(self, executed: &super::Executed) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let outcomes = self.task.await.unwrap();
        let executed = executed.lock().unwrap();
        for (payload, count) in executed.iter() {
            assert!(*count <= 1, "request {payload:?} handled {count} times");
        }
        let mut ok = 0;
        for (payload, outcome) in &outcomes {
            match outcome {
                Ok(reply) => {
                    assert_eq!(reply, payload, "a reply to another request");
                    assert_eq!(executed.get(payload), Some(&1));
                    ok += 1;
                }
                Err(error) => assert!(
                    [ErrorCode::SERVER_NOT_FOUND, ErrorCode::REQUEST_TIMEOUT]
                        .contains(&error.code()),
                    "{error}"
                ),
            }
        }
        (ok, outcomes.len())
    }
}

/// Who may be the first to notice a silent fault.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Noticed {
    /// `fa`'s heartbeats: nothing at all reaches it from `fb`.
    ByA,
    /// Either node: with one way still open, `fb` declaring `fa` down resets its connections,
    /// and that reset reaches `fa` as a close, as it would on a real network.
    ByEither,
}

/// A fault that silences `fb` for `fa` (and `fa` for `fb`) without closing anything: both
/// nodes declare the other down within the heartbeat timeout, the request in flight fails
/// then with `SERVER_NOT_FOUND`, new requests fail at once, and the pair recovers once healed.
async fn silent_fault(bind: Bind, noticed: Noticed, apply: impl Fn(&Pair)) {
    let pair = Pair::start(bind).await;
    let traffic = Traffic::start(&pair.a.mesh);
    let held = pair.held_request().await;
    let fault = Instant::now();
    apply(&pair);

    let failed = tokio::time::timeout(TIMEOUT * 3, held)
        .await
        .expect("the request in flight fails, not waits for its timeout")
        .unwrap();
    let took = fault.elapsed();
    assert_eq!(
        failed.map_err(|error| error.code()),
        Err(ErrorCode::SERVER_NOT_FOUND)
    );
    assert!(took <= TIMEOUT + SLACK, "detected {took:?} after the fault");
    let by_a = pair.a.mesh.peers_declared_down() >= 1;
    let by_b = pair.b.mesh.peers_declared_down() >= 1;
    match noticed {
        Noticed::ByA => {
            assert!(by_a, "fa's heartbeats noticed");
            // Nothing reaches fb either: its own heartbeats must tell it.
            while pair.b.mesh.peers_declared_down() == 0 {
                assert!(fault.elapsed() <= TIMEOUT + SLACK, "fb never noticed fa");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Noticed::ByEither => assert!(by_a || by_b, "a node's heartbeats noticed"),
    }

    // Known down: a new request fails at once instead of vanishing into the fault.
    let asked = Instant::now();
    let down = pair
        .a
        .mesh
        .request_with_timeout("fb", header("Echo"), Bytes::new(), TIMEOUT * 5)
        .await;
    assert_eq!(
        down.map(drop).map_err(|error| error.code()),
        Err(ErrorCode::SERVER_NOT_FOUND)
    );
    assert!(asked.elapsed() < SLACK, "failed in {:?}", asked.elapsed());

    pair.set(Fault::Pass);
    pair.recovers().await;
    let (ok, sent) = traffic.check(&pair.b.executed).await;
    assert!(ok >= 5, "only {ok} of {sent} requests succeeded");
}

/// Both directions swallowed, no FIN, no RST.
pub(crate) async fn silent_partition_is_detected_within_the_heartbeat_timeout(bind: Bind) {
    silent_fault(bind, Noticed::ByA, |pair| pair.set(Fault::Partition)).await;
}

/// What `fa` sends is lost; what `fb` sends arrives (so `fa` still hears `fb`'s pings).
pub(crate) async fn one_way_loss_is_detected_within_the_heartbeat_timeout(bind: Bind) {
    silent_fault(bind, Noticed::ByEither, |pair| {
        pair.to_b.set(Fault::DropForward);
    })
    .await;
}

/// `fb` freezes: its connections stay open, nothing is read or written.
pub(crate) async fn a_frozen_peer_is_detected_within_the_heartbeat_timeout(bind: Bind) {
    silent_fault(bind, Noticed::ByA, |pair| pair.set(Fault::Freeze)).await;
}

/// `fa` declares `fb` down while `fb`, whose heartbeat timeout is far off, keeps the
/// connection it dialed to `fa` open: what `fa` sends is lost, what `fb` sends arrives. The
/// reset of `fa`'s link must drop that connection too, not only redial its own: only `fa`
/// can close it (`fb` declares nobody down, and the fault passes everything `fb` dialed).
/// Then `fb` dials again and, once healed, the pair recovers.
pub(crate) async fn a_reset_drops_the_connection_the_peer_dialed_too(bind: Bind) {
    let pair = Pair::start_with(bind, |config| {
        config.heartbeat_timeout = Duration::from_secs(3600);
    })
    .await;
    let closed = pair.to_a.closed_by_server();
    let fault = Instant::now();
    pair.to_b.set(Fault::Partition);
    while pair.a.mesh.peers_declared_down() == 0 {
        assert!(
            fault.elapsed() <= TIMEOUT + SLACK,
            "fa never declared fb down"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let verdict = Instant::now();
    while pair.to_a.closed_by_server() == closed {
        assert!(
            verdict.elapsed() <= TIMEOUT,
            "fa declared fb down {:?} ago and still holds the connection fb dialed",
            verdict.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pair.b.mesh.peers_declared_down(), 0, "only fa noticed");
    pair.set(Fault::Pass);
    pair.recovers().await;
}

/// Connections reset: the link notices at once (no heartbeat needed), the request in
/// flight fails with `SERVER_NOT_FOUND`, and the link reconnects.
pub(crate) async fn a_reset_fails_requests_at_once_and_reconnects(bind: Bind) {
    let pair = Pair::start(bind).await;
    let traffic = Traffic::start(&pair.a.mesh);
    let held = pair.held_request().await;
    let fault = Instant::now();
    pair.to_b.reset_all();
    let failed = tokio::time::timeout(TIMEOUT * 3, held)
        .await
        .expect("the request in flight fails")
        .unwrap();
    let took = fault.elapsed();
    assert_eq!(
        failed.map_err(|error| error.code()),
        Err(ErrorCode::SERVER_NOT_FOUND)
    );
    assert!(took < TIMEOUT / 2, "noticed {took:?} after the reset");
    assert_eq!(
        pair.a.mesh.peers_declared_down(),
        0,
        "the link told, not silence"
    );
    pair.recovers().await;
    let (ok, sent) = traffic.check(&pair.b.executed).await;
    assert!(ok >= 5, "only {ok} of {sent} requests succeeded");
}

/// Latency below the heartbeat timeout is slowness, not death: nobody is declared down and
/// every request is answered, just later.
pub(crate) async fn added_delay_is_not_mistaken_for_a_dead_peer(bind: Bind) {
    let pair = Pair::start(bind).await;
    let delay = Duration::from_millis(150);
    pair.set(Fault::Delay(delay));
    let traffic = Traffic::start(&pair.a.mesh);
    tokio::time::sleep(TIMEOUT * 3).await;
    let asked = Instant::now();
    let reply = pair
        .a
        .mesh
        .request("fb", header("Echo"), Bytes::from_static(b"slow"))
        .await
        .expect("answered despite the delay");
    assert_eq!(&reply.payload[..], b"slow");
    assert!(asked.elapsed() >= delay * 2, "the delay applied both ways");
    assert_eq!(pair.a.mesh.peers_declared_down(), 0);
    assert_eq!(pair.b.mesh.peers_declared_down(), 0);
    pair.set(Fault::Pass);
    let (ok, sent) = traffic.check(&pair.b.executed).await;
    assert_eq!(ok, sent, "every request answered");
    assert!(ok >= 5);
}
