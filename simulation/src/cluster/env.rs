//! What every host, client and the run loop of one simulation share: the trace, the seeded
//! random numbers, the directory, live servers, host faults, and helpers to wait in
//! simulated time.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use playhouse::{ApiServer, DrainReport, MeshJoin, PlayServer};
use playhouse_mesh::{MeshLink, TcpLink};

use super::ports::MESH_PORT;
use super::timing::Timing;
use crate::directory::SimDirectory;
use crate::net::{MeshListener, SimDialer};
use crate::rng::SimRng;
use crate::tap::link::TappedLink;
use crate::tap::mesh::MeshTap;
use crate::trace::Trace;

/// A host fault the run loop applies between two simulation steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostFault {
    /// Kill a host's software, as when its machine dies: its connections vanish without a
    /// FIN or RST (a crashed turmoil host does not even answer with RST); peers find out by
    /// their heartbeats.
    ///
    /// (Why no FIN: turmoil closes a crashed host's sockets in the order its tokio runtime
    /// drops tasks, which follows process-global task ids; the FINs would draw latencies from
    /// the seeded generator in that order and a seed would not replay within one process.
    /// The host is cut off for the instant of the crash, so they are dropped unsent.)
    Crash(String),
    /// Restart a host's software (after a crash, or killing it first).
    Bounce(String),
}

/// A live server handle, for checks from the scenario script.
#[derive(Clone, Debug)]
pub enum Server {
    /// A Play server.
    Play(PlayServer),
    /// An API server.
    Api(ApiServer),
}

impl Server {
    /// Requests in flight in the server's mesh node.
    pub fn pending_requests(&self) -> usize {
        let mesh = match self {
            Server::Play(server) => server.mesh(),
            Server::Api(server) => Some(server.mesh()),
        };
        mesh.map_or(0, |mesh| mesh.pending_requests())
    }

    /// Late replies the server's mesh node discarded.
    pub fn late_replies(&self) -> u64 {
        let mesh = match self {
            Server::Play(server) => server.mesh(),
            Server::Api(server) => Some(server.mesh()),
        };
        mesh.map_or(0, |mesh| mesh.late_replies())
    }
}

/// An API workload: runs on the API server's host with its server.
pub type Workload = Rc<dyn Fn(ApiServer, Env) -> Pin<Box<dyn Future<Output = ()>>>>;

#[derive(Default)]
struct State {
    faults: Vec<HostFault>,
    servers: BTreeMap<String, Server>,
    /// The runtime each live server runs on (its host's), for task counts mid-run.
    runtimes: BTreeMap<String, tokio::runtime::Handle>,
    boots: BTreeMap<String, u64>,
    stopped: BTreeSet<String>,
    finished: BTreeSet<String>,
    /// Drains asked for and not yet begun: the server, and its deadline.
    drains: BTreeMap<String, Duration>,
    /// Drains done: what each reported and how long it took.
    drained: BTreeMap<String, (DrainReport, Duration)>,
}

/// What every host, client and the run loop of one simulation share. Cheap to clone; lives
/// on the simulation's one thread.
#[derive(Clone)]
pub struct Env {
    /// The event trace.
    pub trace: Trace,
    /// The run's random numbers.
    pub rng: SimRng,
    /// The server directory.
    pub directory: SimDirectory,
    /// Timeouts.
    pub timing: Timing,
    /// The tap on every mesh link connection.
    pub mesh_tap: MeshTap,
    stop: Rc<Cell<bool>>,
    state: Rc<RefCell<State>>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

/// Sleeps `duration` of simulated time.
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Waits (in simulated time, checking every 5 ms) until `done()` or `limit` passes; returns
/// whether `done()` became true.
pub async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(5)).await;
    }
}

/// Tasks alive on the current host's runtime (connection tasks, server loops, ...).
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits until the current host runs no task, recording a violation when some outlive
/// `limit` (a leak).
pub async fn expect_no_tasks(env: &Env, who: &str, limit: Duration) {
    if !wait_until(limit, || alive_tasks() == 0).await {
        let alive = alive_tasks();
        env.trace.violation(
            who,
            format!("task leak: {alive} tasks alive {limit:?} after shutdown"),
        );
    }
}

impl Env {
    pub(super) fn new(seed: u64, timing: Timing) -> Env {
        let trace = Trace::new();
        Env {
            rng: SimRng::new(seed),
            directory: SimDirectory::new(),
            timing,
            mesh_tap: MeshTap::new(&trace),
            trace,
            stop: Rc::default(),
            state: Rc::default(),
        }
    }

    /// Asks the run loop to apply `fault` after the current step, and waits until it has.
    pub async fn fault(&self, fault: HostFault) {
        let name = match &fault {
            HostFault::Crash(name) | HostFault::Bounce(name) => name.clone(),
        };
        self.trace.record("director", format_args!("{fault:?}"));
        if matches!(fault, HostFault::Crash(_)) {
            let mut state = self.state.borrow_mut();
            state.servers.remove(&name);
            state.runtimes.remove(&name);
        }
        self.state.borrow_mut().faults.push(fault);
        let state = Rc::clone(&self.state);
        wait_until(Duration::from_secs(1), || state.borrow().faults.is_empty()).await;
    }

    /// The live server `name`, if it is up.
    pub fn server(&self, name: &str) -> Option<Server> {
        self.state.borrow().servers.get(name).cloned()
    }

    /// Tasks alive on live server `name`'s host runtime (`None` while it is down).
    pub fn tasks_on(&self, name: &str) -> Option<usize> {
        let state = self.state.borrow();
        let runtime = state.runtimes.get(name)?;
        Some(runtime.metrics().num_alive_tasks())
    }

    /// The live Play server `name`.
    pub fn play(&self, name: &str) -> Option<PlayServer> {
        match self.server(name) {
            Some(Server::Play(server)) => Some(server),
            _ => None,
        }
    }

    /// The live API server `name`.
    pub fn api(&self, name: &str) -> Option<ApiServer> {
        match self.server(name) {
            Some(Server::Api(server)) => Some(server),
            _ => None,
        }
    }

    /// Waits until every server in `names` is up (registered in the mesh).
    pub async fn wait_up(&self, names: &[&str], limit: Duration) -> bool {
        let state = Rc::clone(&self.state);
        let up = wait_until(limit, || {
            let state = state.borrow();
            names.iter().all(|n| state.servers.contains_key(*n))
        })
        .await;
        self.trace.check("director", up, || {
            format!("servers {names:?} not up in {limit:?}")
        });
        up
    }

    /// Waits until every server's directory view lists every server in `names`.
    pub async fn wait_mesh(&self, names: &[&str], limit: Duration) -> bool {
        let state = Rc::clone(&self.state);
        let meshed = wait_until(limit, || {
            let state = state.borrow();
            names.iter().all(|name| {
                let view = match state.servers.get(*name) {
                    Some(Server::Play(s)) => s.mesh().map(|m| m.servers().all()),
                    Some(Server::Api(s)) => Some(s.mesh().servers().all()),
                    None => None,
                };
                view.is_some_and(|view| {
                    names
                        .iter()
                        .all(|n| view.iter().any(|info| info.server_id == *n))
                })
            })
        })
        .await;
        self.trace.check("director", meshed, || {
            format!("mesh {names:?} not formed in {limit:?}")
        });
        meshed
    }

    /// Marks `name`'s workload or script finished.
    pub fn finish(&self, name: &str) {
        self.state.borrow_mut().finished.insert(name.to_owned());
    }

    /// Whether `name` has finished.
    pub fn is_finished(&self, name: &str) -> bool {
        self.state.borrow().finished.contains(name)
    }

    /// Waits until every name in `names` has finished.
    pub async fn wait_finished(&self, names: &[String], limit: Duration) -> bool {
        let state = Rc::clone(&self.state);
        let done = wait_until(limit, || {
            let state = state.borrow();
            names.iter().all(|n| state.finished.contains(n))
        })
        .await;
        self.trace.check("director", done, || {
            format!("{names:?} did not finish in {limit:?}")
        });
        done
    }

    /// Checks every live server is idle (call it once every client has left): no client
    /// session still open (a half-open one must have timed out), no mesh request pending, no
    /// node holding more than one connection from a peer (every fault has healed by now).
    pub async fn check_idle(&self) {
        let servers: Vec<(String, Server)> = self
            .state
            .borrow()
            .servers
            .iter()
            .map(|(name, server)| (name.clone(), server.clone()))
            .collect();
        let limit = self.timing.idle_timeout + Duration::from_secs(1);
        for (name, server) in servers {
            if let Server::Play(play) = &server {
                let closed = wait_until(limit, || play.session_count() == 0).await;
                self.trace.check(&name, closed, || {
                    format!(
                        "{} client sessions still open after every client left",
                        play.session_count()
                    )
                });
            }
            let settled = wait_until(self.timing.mesh_request_timeout, || {
                server.pending_requests() == 0
            })
            .await;
            self.trace.check(&name, settled, || {
                format!(
                    "{} mesh requests still pending at the end",
                    server.pending_requests()
                )
            });
        }
        let tap = self.mesh_tap.accepting();
        let single = wait_until(Duration::from_secs(1), || tap.crowded().is_empty()).await;
        self.trace.check("director", single, || {
            let crowded: Vec<String> = tap
                .crowded()
                .into_iter()
                .map(|(local, peer, n)| format!("{local} holds {n} from {peer}"))
                .collect();
            format!(
                "mesh connections doubled at the end: {}",
                crowded.join(", ")
            )
        });
    }

    /// Checks the servers are idle ([`Env::check_idle`]), stops every server gracefully and
    /// waits until each has checked for leaked tasks.
    pub async fn stop_servers(&self) {
        self.check_idle().await;
        let names: Vec<String> = self.state.borrow().servers.keys().cloned().collect();
        self.stop.set(true);
        let state = Rc::clone(&self.state);
        let stopped = wait_until(Duration::from_secs(20), || {
            let state = state.borrow();
            names.iter().all(|n| state.stopped.contains(n))
        })
        .await;
        self.trace.check("director", stopped, || {
            format!("servers {names:?} did not stop")
        });
    }

    /// Drains Play server `name` within `within` (on its own host, which then ends its
    /// software: bounce it to restart); what the drain reported and how long it took, or
    /// `None` if it did not end within `limit`.
    pub async fn drain(
        &self,
        name: &str,
        within: Duration,
        limit: Duration,
    ) -> Option<(DrainReport, Duration)> {
        self.trace
            .record("director", format_args!("drain {name} within {within:?}"));
        {
            let mut state = self.state.borrow_mut();
            state.drained.remove(name);
            state.drains.insert(name.to_owned(), within);
        }
        let state = Rc::clone(&self.state);
        wait_until(limit, || state.borrow().drained.contains_key(name)).await;
        let done = self.state.borrow_mut().drained.remove(name);
        self.trace.check("director", done.is_some(), || {
            format!("the drain of {name} did not end in {limit:?}")
        });
        done
    }

    /// Waits until the cluster stops (`None`) or a drain of `name` is asked for (its
    /// deadline).
    pub(super) async fn wait_stop_or_drain(&self, name: &str) -> Option<Duration> {
        loop {
            if self.stop.get() {
                return None;
            }
            if let Some(within) = self.state.borrow_mut().drains.remove(name) {
                return Some(within);
            }
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// Records that `name`'s drain ended.
    pub(super) fn drained(&self, name: &str, report: DrainReport, took: Duration) {
        let mut state = self.state.borrow_mut();
        state.servers.remove(name);
        state.runtimes.remove(name);
        state.drained.insert(name.to_owned(), (report, took));
    }

    /// Host faults asked for since the last call (the run loop applies them).
    pub(super) fn take_faults(&self) -> Vec<HostFault> {
        std::mem::take(&mut self.state.borrow_mut().faults)
    }

    pub(super) fn next_boot(&self, name: &str) -> u64 {
        let mut state = self.state.borrow_mut();
        let boot = state.boots.entry(name.to_owned()).or_default();
        *boot += 1;
        *boot
    }

    /// Registers live server `name`; called on its host, whose runtime it remembers.
    pub(super) fn register(&self, name: &str, server: Server) {
        let mut state = self.state.borrow_mut();
        state.servers.insert(name.to_owned(), server);
        let runtime = tokio::runtime::Handle::current();
        state.runtimes.insert(name.to_owned(), runtime);
    }

    pub(super) async fn wait_stop(&self) {
        while !self.stop.get() {
            sleep(Duration::from_millis(10)).await;
        }
    }

    pub(super) fn stopped(&self, name: &str) {
        let mut state = self.state.borrow_mut();
        state.servers.remove(name);
        state.runtimes.remove(name);
        state.stopped.insert(name.to_owned());
    }

    /// A mesh link on this host, advertised under the host's name, tapped on both sides and
    /// told of its node's verdicts.
    pub(super) async fn link(&self, name: &str) -> std::io::Result<Arc<dyn MeshLink>> {
        let accepting = self.mesh_tap.accepting();
        let listener = MeshListener::bind(MESH_PORT, accepting, name).await?;
        let address = format!("tcp://{name}:{MESH_PORT}");
        self.mesh_tap.booted(name);
        let dialer = SimDialer::tapped(&self.mesh_tap, name);
        let link = TcpLink::new(name, listener, address, dialer, self.timing.link);
        Ok(Arc::new(TappedLink::new(link, accepting, name)))
    }

    pub(super) fn join(&self, link: Arc<dyn MeshLink>) -> MeshJoin {
        let timing = &self.timing;
        MeshJoin::link(link, Arc::new(self.directory.clone()))
            .refresh_interval(timing.refresh_interval)
            .directory_ttl(timing.directory_ttl)
            .request_timeout(timing.mesh_request_timeout)
            .heartbeat(
                timing.mesh_heartbeat_interval,
                timing.mesh_heartbeat_timeout,
            )
    }
}
