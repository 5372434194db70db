//! A simulated cluster: turmoil configured from the seed, Play and API server hosts running
//! the real servers, the shared directory and trace, host faults (crash, bounce) requested
//! from inside the simulation, and the run loop.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use playhouse::{ApiServer, MeshJoin, PlayServer};
use playhouse_mesh::{MeshLink, TcpLink, TcpLinkConfig};

use crate::app::{Boot, STAGE_TYPE, SimPlayer, SimRoom, api_handlers};
use crate::directory::SimDirectory;
use crate::net::{SimDialer, SimListener};
use crate::rng::SimRng;
use crate::trace::{Trace, now};

/// The port Play servers serve clients on.
pub const CLIENT_PORT: u16 = 7001;
/// The port every server's mesh link listens on.
pub const MESH_PORT: u16 = 7100;

/// Every timeout of the cluster, scaled down so a scenario covers many of them in a few
/// simulated seconds.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Connector heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Connector: a silent connection is dropped after this.
    pub heartbeat_timeout: Duration,
    /// Connector request timeout.
    pub client_request_timeout: Duration,
    /// Connector dial timeout.
    pub connect_timeout: Duration,
    /// Play server idle timeout.
    pub idle_timeout: Duration,
    /// Play server authentication timeout.
    pub auth_timeout: Duration,
    /// Mesh request timeout.
    pub mesh_request_timeout: Duration,
    /// Directory refresh interval.
    pub refresh_interval: Duration,
    /// Directory entry TTL, and how long a server missing from the directory stays routable.
    pub directory_ttl: Duration,
    /// Mesh link settings.
    pub link: TcpLinkConfig,
    /// Mesh node liveness: how often each peer is pinged.
    pub mesh_heartbeat_interval: Duration,
    /// Mesh node liveness: a peer answering no ping sent within this is declared down.
    pub mesh_heartbeat_timeout: Duration,
    /// Play server: how long a dropped resumable session waits for its client.
    pub resume_window: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_timeout: Duration::from_millis(1500),
            client_request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(4),
            auth_timeout: Duration::from_secs(2),
            mesh_request_timeout: Duration::from_secs(1),
            refresh_interval: Duration::from_millis(250),
            directory_ttl: Duration::from_secs(10),
            link: {
                let mut link = TcpLinkConfig::default();
                link.send_timeout = Duration::from_secs(1);
                link.connect_timeout = Duration::from_millis(500);
                link.reconnect_backoff = Duration::from_millis(100);
                link
            },
            mesh_heartbeat_interval: Duration::from_millis(250),
            mesh_heartbeat_timeout: Duration::from_secs(1),
            resume_window: Duration::from_secs(3),
        }
    }
}

/// The simulated network.
#[derive(Clone, Copy, Debug)]
pub struct Network {
    /// Fastest delivery of a segment.
    pub min_latency: Duration,
    /// Slowest delivery of a segment (turmoil draws from an exponential distribution).
    pub max_latency: Duration,
    /// Simulated time after which the run fails as stuck.
    pub limit: Duration,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            min_latency: Duration::from_millis(1),
            max_latency: Duration::from_millis(10),
            limit: Duration::from_secs(120),
        }
    }
}

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
    boots: BTreeMap<String, u64>,
    stopped: BTreeSet<String>,
    finished: BTreeSet<String>,
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
    fn new(seed: u64, timing: Timing) -> Env {
        Env {
            trace: Trace::new(),
            rng: SimRng::new(seed),
            directory: SimDirectory::new(),
            timing,
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
            self.state.borrow_mut().servers.remove(&name);
        }
        self.state.borrow_mut().faults.push(fault);
        let state = Rc::clone(&self.state);
        wait_until(Duration::from_secs(1), || state.borrow().faults.is_empty()).await;
    }

    /// The live server `name`, if it is up.
    pub fn server(&self, name: &str) -> Option<Server> {
        self.state.borrow().servers.get(name).cloned()
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
    /// session still open (a half-open one must have timed out), no mesh request pending.
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

    fn next_boot(&self, name: &str) -> u64 {
        let mut state = self.state.borrow_mut();
        let boot = state.boots.entry(name.to_owned()).or_default();
        *boot += 1;
        *boot
    }

    fn register(&self, name: &str, server: Server) {
        self.state
            .borrow_mut()
            .servers
            .insert(name.to_owned(), server);
    }

    async fn wait_stop(&self) {
        while !self.stop.get() {
            sleep(Duration::from_millis(10)).await;
        }
    }

    fn stopped(&self, name: &str) {
        let mut state = self.state.borrow_mut();
        state.servers.remove(name);
        state.stopped.insert(name.to_owned());
    }

    /// A mesh link on this host, advertised under the host's name.
    async fn link(&self, name: &str) -> std::io::Result<Arc<dyn MeshLink>> {
        let listener = SimListener::bind(MESH_PORT).await?;
        let address = format!("tcp://{name}:{MESH_PORT}");
        let link = TcpLink::new(name, listener, address, SimDialer, self.timing.link);
        Ok(Arc::new(link))
    }

    fn join(&self, link: Arc<dyn MeshLink>) -> MeshJoin {
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

type Software = Pin<Box<dyn Future<Output = turmoil::Result>>>;

/// The software of Play server host `name`: serve clients, join the mesh, run until the
/// cluster stops, stop gracefully, check for leaked tasks. Restartable (bounce).
pub fn play_host(env: &Env, name: &'static str) -> impl Fn() -> Software + use<> {
    let env = env.clone();
    move || {
        let env = env.clone();
        Box::pin(async move {
            let boot = Boot::new(name, env.next_boot(name));
            let timing = env.timing;
            let server = PlayServer::builder()
                .server_id(name)
                .stage(
                    STAGE_TYPE,
                    move |init| SimRoom::new(init, &boot),
                    |_| SimPlayer::default(),
                )
                .default_stage_type(STAGE_TYPE)
                .configure(|c| {
                    c.idle_timeout = timing.idle_timeout;
                    c.auth_timeout = timing.auth_timeout;
                    c.shutdown_timeout = Duration::from_secs(2);
                    let mut resume = playhouse::ResumeConfig::default();
                    resume.window = timing.resume_window;
                    c.resume = Some(resume);
                })
                .build()?;
            server.serve(SimListener::bind(CLIENT_PORT).await?)?;
            let link = env.link(name).await?;
            server.join_mesh(env.join(link)).await?;
            env.trace.record(name, "up");
            env.register(name, Server::Play(server.clone()));
            env.wait_stop().await;
            server.stop().await;
            drop(server);
            expect_no_tasks(&env, name, Duration::from_secs(3)).await;
            env.trace.record(name, "stopped");
            env.stopped(name);
            Ok(())
        })
    }
}

/// The software of API server host `name` (in service `service_id`, default 2): join the
/// mesh, run `workload` (if any) with the server, run until the cluster stops, stop, check
/// for leaked tasks.
pub fn api_host(
    env: &Env,
    name: &'static str,
    service_id: Option<u16>,
    workload: Option<Workload>,
) -> impl Fn() -> Software + use<> {
    let env = env.clone();
    move || {
        let env = env.clone();
        let workload = workload.clone();
        Box::pin(async move {
            let link = env.link(name).await?;
            let mut join = env.join(link);
            if let Some(service_id) = service_id {
                join = join.service_id(service_id);
            }
            let server = ApiServer::builder()
                .server_id(name)
                .handlers(api_handlers(name))
                .start(join)
                .await?;
            env.trace.record(name, "up");
            env.register(name, Server::Api(server.clone()));
            if let Some(workload) = workload {
                workload(server.clone(), env.clone()).await;
                env.finish(name);
            }
            env.wait_stop().await;
            server.stop().await;
            drop(server);
            expect_no_tasks(&env, name, Duration::from_secs(3)).await;
            env.trace.record(name, "stopped");
            env.stopped(name);
            Ok(())
        })
    }
}

/// How one run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The trace hash.
    pub hash: u64,
    /// `Ok`, or why the run failed (violations, a stuck or crashed simulation).
    pub result: Result<(), String>,
    /// Every line of the trace.
    pub lines: Vec<String>,
    /// Lines in the trace.
    pub events: usize,
    /// Simulated time the run took.
    pub simulated: Duration,
}

/// One simulation: the turmoil [`turmoil::Sim`] plus the shared [`Env`].
pub struct Cluster {
    /// The simulation (register hosts and clients on it).
    pub sim: turmoil::Sim<'static>,
    /// What hosts and clients share.
    pub env: Env,
    /// Every host and client registered, by name.
    names: Vec<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Cluster {
    /// A cluster for `seed`: turmoil's generator and the scenario's are both seeded with it.
    pub fn new(seed: u64, network: Network, timing: Timing) -> Cluster {
        let sim = turmoil::Builder::new()
            .rng_seed(seed)
            .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .simulation_duration(network.limit)
            .tick_duration(Duration::from_millis(1))
            .min_message_latency(network.min_latency)
            .max_message_latency(network.max_latency)
            .tcp_capacity(256)
            .build();
        Cluster {
            sim,
            env: Env::new(seed, timing),
            names: Vec::new(),
        }
    }

    /// Registers Play server host `name`.
    pub fn play(&mut self, name: &'static str) {
        let software = play_host(&self.env, name);
        self.sim.host(name, software);
        self.names.push(name.to_owned());
    }

    /// Registers API server host `name`.
    pub fn api(&mut self, name: &'static str, service_id: Option<u16>, workload: Option<Workload>) {
        let software = api_host(&self.env, name, service_id, workload);
        self.sim.host(name, software);
        self.names.push(name.to_owned());
    }

    /// Registers client host `name` running `script` (the run ends when every client has).
    pub fn client<F>(&mut self, name: &str, script: F)
    where
        F: Future<Output = ()> + 'static,
    {
        self.names.push(name.to_owned());
        self.sim.client(name, async move {
            script.await;
            Ok(())
        });
    }

    /// Crashes `name` with its links cut for the instant (see [`HostFault::Crash`]).
    fn crash(&mut self, name: &str) {
        let others: Vec<&str> = self
            .names
            .iter()
            .map(String::as_str)
            .filter(|other| *other != name)
            .collect();
        for other in &others {
            self.sim.partition(name, *other);
        }
        self.sim.crash(name);
        for other in &others {
            self.sim.repair(name, *other);
        }
    }

    /// Runs until every client script has finished, applying host faults as they are asked
    /// for; then collects the verdict.
    pub fn run(mut self) -> Outcome {
        let env = self.env.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            loop {
                match self.sim.step() {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(error) => return Err(error.to_string()),
                }
                let faults = std::mem::take(&mut env.state.borrow_mut().faults);
                for fault in faults {
                    match fault {
                        HostFault::Crash(name) => self.crash(&name),
                        HostFault::Bounce(name) => self.sim.bounce(name.as_str()),
                    }
                }
            }
        }));
        let simulated = self.sim.elapsed();
        // Tear the simulation down before reading the verdict: dropping hosts runs no code
        // that records anything.
        drop(self);
        let result = match result {
            Ok(Ok(())) => {
                let violations = env.trace.violations();
                if violations.is_empty() {
                    Ok(())
                } else {
                    Err(violations.join("\n"))
                }
            }
            Ok(Err(error)) => Err(format!("simulation failed: {error}")),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panic".to_owned());
                Err(format!("panicked: {message}"))
            }
        };
        Outcome {
            hash: env.trace.hash(),
            result,
            lines: env.trace.lines(),
            events: env.trace.len(),
            simulated,
        }
    }
}

impl Outcome {
    /// The last `n` lines of the trace.
    pub fn tail(&self, n: usize) -> &[String] {
        &self.lines[self.lines.len().saturating_sub(n)..]
    }
}

/// The current simulated time (for scripts that measure how long something took).
pub fn elapsed() -> Duration {
    now()
}
