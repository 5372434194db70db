//! The server directory: each server publishes its own [`ServerInfo`] with a TTL and reads
//! the full list every refresh; the difference drives connects and disconnects.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// What kind of server an entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerType {
    /// A stateful Play server (stages, actors, client connections).
    Play,
    /// A stateless API server.
    Api,
}

/// Whether a server takes new work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Up and routable.
    Running,
    /// Up but excluded from service routing.
    Disabled,
    /// Up, serving what it holds, and excluded from service routing and from placing new
    /// stages: it is handing its stages on before it stops.
    Draining,
}

/// One server's directory entry. Its JSON form is the Redis value other tools read:
/// `{"server_type":"play","service_id":1,"server_id":"play-1","address":"tcp://127.0.0.1:5000","state":"running","weight":100}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Play or API.
    pub server_type: ServerType,
    /// The service the server belongs to (servers of one service are interchangeable).
    pub service_id: u16,
    /// Unique id, e.g. `play-1`.
    pub server_id: String,
    /// Connectable mesh address, e.g. `tcp://10.0.0.5:5000` (never `0.0.0.0`).
    pub address: String,
    /// Running or disabled.
    pub state: ServerState,
    /// Share of weighted routing.
    pub weight: u32,
    /// Stages that moved here from other servers lately (most recent last, bounded), so a
    /// sender that still addresses one at its old server finds it after that server is gone.
    /// Omitted from the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved_in: Vec<MovedStage>,
}

/// A stage that moved to the server whose entry lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MovedStage {
    /// The server it moved from.
    pub from: String,
    /// Its id (unchanged by the move).
    pub stage_id: i64,
}

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The backing store failed (e.g. Redis unreachable).
    #[error("directory backend failed: {0}")]
    Backend(String),
    /// An entry could not be encoded or decoded.
    #[error("invalid directory entry: {0}")]
    Invalid(String),
}

/// Where servers publish themselves and read each other.
pub trait Directory: Send + Sync + 'static {
    /// Publishes (or refreshes) `info`, to expire after `ttl` unless refreshed.
    fn publish<'a>(
        &'a self,
        info: &'a ServerInfo,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), DirectoryError>>;

    /// Every live entry.
    fn list(&self) -> BoxFuture<'_, Result<Vec<ServerInfo>, DirectoryError>>;

    /// Removes a server's entry (graceful stop).
    fn remove<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>>;
}

/// An in-process directory, shared by cloning: the embedded default for servers in one
/// process. Entries expire on the tokio clock.
#[derive(Clone, Default)]
pub struct MemoryDirectory {
    entries: Arc<Mutex<HashMap<String, (ServerInfo, Instant)>>>,
}

impl fmt::Debug for MemoryDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("MemoryDirectory")
            .field("entries", &n)
            .finish()
    }
}

impl MemoryDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ServerInfo, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Directory for MemoryDirectory {
    fn publish<'a>(
        &'a self,
        info: &'a ServerInfo,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), DirectoryError>> {
        let expires = Instant::now() + ttl;
        self.lock()
            .insert(info.server_id.clone(), (info.clone(), expires));
        Box::pin(async { Ok(()) })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ServerInfo>, DirectoryError>> {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|_, (_, expires)| *expires > now);
        let mut list: Vec<ServerInfo> = entries.values().map(|(info, _)| info.clone()).collect();
        list.sort_by(|a, b| a.server_id.cmp(&b.server_id));
        Box::pin(async move { Ok(list) })
    }

    fn remove<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>> {
        self.lock().remove(server_id);
        Box::pin(async { Ok(()) })
    }
}

/// How to pick one server of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutingPolicy {
    /// Each running server in turn.
    RoundRobin,
    /// In proportion to each running server's weight.
    Weighted,
}

/// A server's live view of the directory (the original's server-info centre), refreshed by
/// the mesh; cheap to clone and query from any task.
///
/// A server missing from one listing is not taken for gone: an empty directory restart or a
/// lost key says nothing about the server itself. It stays in the view (routable) until its
/// entry would have expired on its own, its last sighting plus the entry TTL, unless its mesh
/// connection is down too (see [`Mesh::refresh`](crate::node::Mesh::refresh)).
#[derive(Clone, Default)]
pub struct ServerInfoCenter {
    servers: Arc<RwLock<Vec<Known>>>,
    cursor: Arc<AtomicUsize>,
}

/// One server in the view.
#[derive(Clone, Debug)]
struct Known {
    info: ServerInfo,
    /// When a listing last showed it (or the directory came back after failing).
    seen: Instant,
    /// Whether the last listing showed it; `false` while it is kept on trust.
    listed: bool,
}

impl fmt::Debug for ServerInfoCenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerInfoCenter")
            .field("servers", &self.all().len())
            .finish()
    }
}

impl ServerInfoCenter {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Known>> {
        self.servers.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Known>> {
        self.servers.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a listing taken at `now`; returns (added or changed, removed) entries.
    ///
    /// A known server missing from `fresh` stays while `now < seen + ttl` and `reachable`
    /// says its connection is up; otherwise it is removed.
    pub(crate) fn update(
        &self,
        mut fresh: Vec<ServerInfo>,
        now: Instant,
        ttl: Duration,
        reachable: impl Fn(&str) -> bool,
    ) -> (Vec<ServerInfo>, Vec<ServerInfo>) {
        fresh.sort_by(|a, b| a.server_id.cmp(&b.server_id));
        fresh.dedup_by(|a, b| a.server_id == b.server_id);
        let mut servers = self.write();
        let changed = fresh
            .iter()
            .filter(|f| !servers.iter().any(|s| s.info == **f))
            .cloned()
            .collect();
        let mut removed = Vec::new();
        let mut next: Vec<Known> = Vec::with_capacity(fresh.len().max(servers.len()));
        for known in servers.drain(..) {
            if fresh.iter().any(|f| f.server_id == known.info.server_id) {
                continue;
            }
            if now < known.seen + ttl && reachable(&known.info.server_id) {
                next.push(Known {
                    listed: false,
                    ..known
                });
            } else {
                removed.push(known.info);
            }
        }
        next.extend(fresh.into_iter().map(|info| Known {
            info,
            seen: now,
            listed: true,
        }));
        next.sort_by(|a, b| a.info.server_id.cmp(&b.info.server_id));
        *servers = next;
        (changed, removed)
    }

    /// The directory answers again after failing: nobody could publish meanwhile, so every
    /// known server gets a whole TTL from `now` to show up again.
    pub(crate) fn directory_back(&self, now: Instant) {
        for known in self.write().iter_mut() {
            known.seen = known.seen.max(now);
        }
    }

    /// Removes `server_id` if the last listing did not show it (its connection just went
    /// down: nothing vouches for it any more).
    pub(crate) fn forget_unlisted(&self, server_id: &str) -> Option<ServerInfo> {
        let mut servers = self.write();
        let i = servers
            .iter()
            .position(|s| s.info.server_id == server_id && !s.listed)?;
        Some(servers.remove(i).info)
    }

    /// Known servers that the last directory listing did not show: kept, routable, until
    /// their entry's TTL would have run out or their connection goes down.
    pub fn unlisted(&self) -> Vec<ServerInfo> {
        self.read()
            .iter()
            .filter(|s| !s.listed)
            .map(|s| s.info.clone())
            .collect()
    }

    /// Every known server.
    pub fn all(&self) -> Vec<ServerInfo> {
        self.read().iter().map(|s| s.info.clone()).collect()
    }

    /// The server that stage `stage_id` of server `from` moved to, if a listed server says
    /// so (the newest claim wins when it moved more than once).
    pub fn moved_to(&self, from: &str, stage_id: i64) -> Option<String> {
        self.read()
            .iter()
            .filter_map(|s| {
                let place = s
                    .info
                    .moved_in
                    .iter()
                    .position(|m| m.stage_id == stage_id && m.from == from)?;
                Some((place, s.info.server_id.clone()))
            })
            .max_by_key(|(place, _)| *place)
            .map(|(_, server)| server)
    }

    /// Whether server `server_id` is known (what [`get`](Self::get) says without a copy).
    pub fn contains(&self, server_id: &str) -> bool {
        self.read().iter().any(|s| s.info.server_id == server_id)
    }

    /// One server by id.
    pub fn get(&self, server_id: &str) -> Option<ServerInfo> {
        self.read()
            .iter()
            .find(|s| s.info.server_id == server_id)
            .map(|s| s.info.clone())
    }

    /// Picks a running server of `service_id` (and `server_type`, when given).
    pub fn pick(
        &self,
        server_type: Option<ServerType>,
        service_id: u16,
        policy: RoutingPolicy,
    ) -> Option<ServerInfo> {
        let servers = self.read();
        let candidates: Vec<&ServerInfo> = servers
            .iter()
            .map(|s| &s.info)
            .filter(|s| {
                s.service_id == service_id
                    && s.state == ServerState::Running
                    && server_type.is_none_or(|t| t == s.server_type)
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
        match policy {
            RoutingPolicy::RoundRobin => Some(candidates[turn % candidates.len()].clone()),
            RoutingPolicy::Weighted => {
                // Deterministic smooth spread: position `turn` on the weight line.
                let total: u64 = candidates.iter().map(|s| u64::from(s.weight.max(1))).sum();
                let mut point = (turn as u64).wrapping_mul(2_654_435_761) % total;
                for server in &candidates {
                    let weight = u64::from(server.weight.max(1));
                    if point < weight {
                        return Some((*server).clone());
                    }
                    point -= weight;
                }
                candidates.last().map(|s| (*s).clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, service_id: u16, weight: u32, state: ServerState) -> ServerInfo {
        ServerInfo {
            server_type: ServerType::Api,
            service_id,
            server_id: id.to_owned(),
            address: format!("tcp://127.0.0.1:{}", 5000 + weight),
            state,
            weight,
            moved_in: Vec::new(),
        }
    }

    #[test]
    fn json_form_is_the_documented_schema() {
        let json = serde_json::to_string(&ServerInfo {
            server_type: ServerType::Play,
            ..info("play-1", 1, 100, ServerState::Running)
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"server_type":"play","service_id":1,"server_id":"play-1","address":"tcp://127.0.0.1:5100","state":"running","weight":100}"#
        );
    }

    #[tokio::test(start_paused = true)]
    async fn memory_entries_expire_unless_refreshed() {
        let directory = MemoryDirectory::new();
        let a = info("a", 1, 1, ServerState::Running);
        directory
            .publish(&a, Duration::from_secs(10))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(directory.list().await.unwrap(), vec![a.clone()]);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(directory.list().await.unwrap().is_empty());
    }

    #[test]
    fn round_robin_and_weighted_skip_disabled_servers() {
        let center = ServerInfoCenter::default();
        at_once(
            &center,
            vec![
                info("a", 2, 1, ServerState::Running),
                info("b", 2, 3, ServerState::Running),
                info("c", 2, 100, ServerState::Disabled),
                info("d", 9, 1, ServerState::Running),
            ],
        );
        let rr: Vec<_> = (0..4)
            .map(|_| {
                center
                    .pick(None, 2, RoutingPolicy::RoundRobin)
                    .unwrap()
                    .server_id
            })
            .collect();
        assert_eq!(rr, ["a", "b", "a", "b"]);
        let mut counts = HashMap::new();
        for _ in 0..4000 {
            let picked = center.pick(None, 2, RoutingPolicy::Weighted).unwrap();
            *counts.entry(picked.server_id).or_insert(0) += 1;
        }
        let (a, b) = (counts["a"], counts["b"]);
        assert!(!counts.contains_key("c"));
        assert!(
            (2.5..3.5).contains(&(f64::from(b) / f64::from(a))),
            "a={a} b={b}"
        );
        assert!(center.pick(None, 7, RoutingPolicy::RoundRobin).is_none());
    }

    #[test]
    fn update_reports_changes_and_removals() {
        let center = ServerInfoCenter::default();
        let a = info("a", 1, 1, ServerState::Running);
        let b = info("b", 1, 1, ServerState::Running);
        let (added, removed) = at_once(&center, vec![a.clone(), b.clone()]);
        assert_eq!((added.len(), removed.len()), (2, 0));
        let disabled = ServerInfo {
            state: ServerState::Disabled,
            ..a.clone()
        };
        let (changed, removed) = at_once(&center, vec![disabled.clone()]);
        assert_eq!(changed, vec![disabled]);
        assert_eq!(removed, vec![b]);
    }

    /// A listing with no grace: missing servers go at once.
    fn at_once(
        center: &ServerInfoCenter,
        fresh: Vec<ServerInfo>,
    ) -> (Vec<ServerInfo>, Vec<ServerInfo>) {
        center.update(fresh, Instant::now(), Duration::ZERO, |_| true)
    }

    #[test]
    fn a_missing_server_stays_until_its_ttl_unless_unreachable() {
        const TTL: Duration = Duration::from_secs(10);
        let center = ServerInfoCenter::default();
        let a = info("a", 1, 1, ServerState::Running);
        let b = info("b", 1, 2, ServerState::Running);
        let c = info("c", 1, 3, ServerState::Running);
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        center.update(vec![a.clone(), b.clone(), c.clone()], t0, TTL, |_| true);

        // b and c vanish from the listing (an empty directory restart); c's connection is
        // down as well, so nothing vouches for it.
        let (changed, removed) = center.update(vec![a.clone()], t0 + secs(1), TTL, |id| id != "c");
        assert!(changed.is_empty());
        assert_eq!(removed, vec![c.clone()]);
        assert_eq!(center.all(), vec![a.clone(), b.clone()]);
        assert_eq!(center.unlisted(), vec![b.clone()]);
        assert_eq!(center.get("b"), Some(b.clone()));
        assert_eq!(
            center
                .pick(None, 1, RoutingPolicy::RoundRobin)
                .map(|s| s.server_id),
            Some("a".to_owned())
        );

        // Still missing just before its TTL (from its last sighting) runs out: kept.
        let (_, removed) = center.update(vec![a.clone()], t0 + secs(9), TTL, |_| true);
        assert!(removed.is_empty());
        // Listed again: back to normal, not reported as a change (its connection never went).
        let (changed, removed) =
            center.update(vec![a.clone(), b.clone()], t0 + secs(9), TTL, |_| true);
        assert!(changed.is_empty() && removed.is_empty());
        assert!(center.unlisted().is_empty());

        // Missing again: the TTL counts from the last sighting (t0 + 9 s).
        let (_, removed) = center.update(vec![a.clone()], t0 + secs(18), TTL, |_| true);
        assert!(removed.is_empty());
        let (_, removed) = center.update(vec![a.clone()], t0 + secs(19), TTL, |_| true);
        assert_eq!(removed, vec![b.clone()]);
        assert_eq!(center.all(), vec![a.clone()]);
    }

    #[test]
    fn after_a_directory_outage_every_server_gets_a_fresh_ttl() {
        const TTL: Duration = Duration::from_secs(10);
        let center = ServerInfoCenter::default();
        let a = info("a", 1, 1, ServerState::Running);
        let b = info("b", 1, 2, ServerState::Running);
        let t0 = Instant::now();
        center.update(vec![a.clone(), b.clone()], t0, TTL, |_| true);
        // The directory failed for 30 s, then answers without b (it has not re-published yet).
        let back = t0 + Duration::from_secs(30);
        center.directory_back(back);
        let (_, removed) = center.update(vec![a.clone()], back, TTL, |_| true);
        assert!(removed.is_empty());
        assert_eq!(center.get("b"), Some(b.clone()));
        let (_, removed) = center.update(vec![a.clone()], back + TTL, TTL, |_| true);
        assert_eq!(removed, vec![b]);
    }

    #[test]
    fn a_missing_server_whose_connection_drops_is_forgotten() {
        let center = ServerInfoCenter::default();
        let a = info("a", 1, 1, ServerState::Running);
        let b = info("b", 1, 2, ServerState::Running);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        center.update(vec![a.clone(), b.clone()], t0, ttl, |_| true);
        // Listed servers are not forgotten on a connection loss (the link reconnects).
        assert_eq!(center.forget_unlisted("a"), None);
        center.update(vec![a.clone()], t0, ttl, |_| true);
        assert_eq!(center.forget_unlisted("b"), Some(b));
        assert_eq!(center.all(), vec![a]);
    }
}
