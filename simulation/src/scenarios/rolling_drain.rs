//! A rolling deploy: every Play server drained and restarted in turn while the game goes on.
//!
//! Three Play servers each hold one movable stage ([`crate::move_room`]: its state is the log
//! of every operation it applied, and a repeat timer, re-armed after each move, applies a
//! tick). Two players per stage play with resumable connectors that follow moves
//! (`connect_with_endpoint` over the simulated network): one-way messages and requests, while
//! the stage pushes every applied operation to them. An API server sends mesh requests and
//! one-way messages to each stage, always addressed at the server the stage was created on.
//! Meanwhile each Play server in turn is drained (its stages move, with their players, to the
//! other running servers), then restarted; the network has seeded latency, and on two seeds
//! in three a drain begins with a short cut between the draining server and a player or
//! another Play server (a move notice or a move's transfer held until the heal). Checked:
//!
//! * each drain moves every stage it held (none closed at the deadline) and ends within its
//!   deadline;
//! * no session is lost (`SessionEvent::Lost`), and each player follows its stage at least
//!   once (`SessionEvent::Moved`), each time told on its live connection (the client tap
//!   sees every `@Move@`), never only by coming back to the old server;
//! * every request, from a player or over the mesh, is answered exactly once, successfully
//!   (a mesh request to a moved stage is never `SERVER_NOT_FOUND`), with the number its
//!   operation has in the stage's final log;
//! * pushes are consecutive for each player (the `Applied` numbers never skip or repeat) and
//!   each names the operation the final log has at that number;
//! * the stage's state is continuous: every operation sent (requests and one-way messages,
//!   from players and over the mesh) is in the final log exactly once;
//! * the stage's timer runs again after a move (the log has ticks from several servers);
//! * a player without resume is relayed across its stage's move, and a stage of a type that
//!   cannot move closes at the deadline with `StageDrained` (see [`super::drain_strays`]).

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use playhouse::{ApiServer, Packet as ServerPacket};
use playhouse_connector::{Connector, ConnectorConfig, Packet, ReconnectPolicy, SessionEvent};
use turmoil::net::TcpStream;

use super::drain_strays::{
    FIRST_DRAIN, FIXED_STAGE, GRACE, HEIDI, RelayedOps, check_relayed, fixed_player, relayed_player,
};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, HostFault, Workload, sleep, wait_until};
use crate::cluster::hosts::SHUTDOWN_TIMEOUT;
use crate::cluster::ports::CLIENT_PORT;
use crate::cluster::timing::{Network, Timing};
use crate::move_room::{FIXED, MOVER};
use crate::net::dial;
use crate::tap::client::ClientTap;
use crate::tap::stream::Tapped;
use crate::trace::Trace;

const PLAYS: [&str; 3] = ["play-1", "play-2", "play-3"];
const API: &str = "api-1";
/// Players: name, account, the stage (1-based, created on `PLAYS[stage - 1]`).
const PLAYERS: [(&str, &str, i64); 6] = [
    ("client-1", "alice", 1),
    ("client-2", "bob", 1),
    ("client-3", "carol", 2),
    ("client-4", "dave", 2),
    ("client-5", "erin", 3),
    ("client-6", "frank", 3),
];
/// Each drain's deadline.
const DRAIN_WITHIN: Duration = Duration::from_secs(5);
/// The API's stages are created (players may log in).
const STAGES: &str = "stages";
/// Every drain and restart is done (players and the API stop).
const DRAINS: &str = "drains";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the players and the API report to the director.
#[derive(Default)]
struct Shared {
    /// Each stage's final log (from its players' `Dump`).
    logs: BTreeMap<i64, Vec<String>>,
    /// The API's operations: stage, operation, and for a request the number it was answered.
    api_ops: Vec<(i64, String, Option<usize>)>,
}

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let network = Network {
        max_latency: Duration::from_millis(25),
        ..Network::default()
    };
    let mut cluster = Cluster::new(seed, network, Timing::default());
    for play in PLAYS {
        cluster.play(play);
    }
    let shared = Arc::new(Mutex::new(Shared::default()));
    let workload: Workload = {
        let shared = Arc::clone(&shared);
        Rc::new(move |api, env| Box::pin(api_ops(api, env, Arc::clone(&shared))))
    };
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    for (name, account, stage) in PLAYERS {
        let script = player(env.clone(), name, account, stage, Arc::clone(&shared));
        cluster.client(name, script);
    }
    let relayed = RelayedOps::default();
    let stray = relayed_player(env.clone(), PLAYS[0], STAGES, Arc::clone(&relayed));
    cluster.client(GRACE.0, stray);
    cluster.client(HEIDI.0, fixed_player(env.clone(), PLAYS[0], STAGES, DRAINS));
    cluster.client("director", director(env, shared, relayed));
    cluster.run()
}

async fn director(env: Env, shared: Arc<Mutex<Shared>>, relayed: RelayedOps) {
    let mut all: Vec<&str> = PLAYS.to_vec();
    all.push(API);
    env.wait_up(&all, Duration::from_secs(10)).await;
    env.wait_mesh(&all, Duration::from_secs(10)).await;
    let joined: Vec<String> = PLAYERS
        .iter()
        .map(|(n, ..)| *n)
        .chain([GRACE.0, HEIDI.0])
        .map(|n| format!("{n} joined"))
        .collect();
    env.wait_finished(&joined, Duration::from_secs(20)).await;
    for (k, play) in PLAYS.into_iter().enumerate() {
        sleep(env.rng.millis(300, 1500)).await;
        if k == 0 {
            env.finish(FIRST_DRAIN);
        }
        let drain = env.drain(play, DRAIN_WITHIN, Duration::from_secs(20));
        let (drained, ()) = tokio::join!(drain, cut_during_move(&env, play));
        // The first server drained holds the stage that cannot move: it closes at the
        // deadline, and the server then stops (within its shutdown timeout).
        let (fixed, limit) = match k {
            0 => (1, DRAIN_WITHIN + SHUTDOWN_TIMEOUT),
            _ => (0, DRAIN_WITHIN),
        };
        if let Some((report, took)) = drained {
            env.trace.check(
                play,
                report.stages > fixed
                    && report.moved == report.stages - fixed
                    && report.closed_at_deadline == fixed,
                || format!("a drain left stages behind: {report:?}"),
            );
            env.trace.check(play, took <= limit, || {
                format!("the drain took {took:?}, past its deadline {DRAIN_WITHIN:?}")
            });
        }
        env.fault(HostFault::Bounce(play.to_owned())).await;
        env.wait_up(&all, Duration::from_secs(10)).await;
        env.wait_mesh(&all, Duration::from_secs(10)).await;
    }
    sleep(env.rng.millis(300, 1000)).await;
    env.finish(DRAINS);
    let mut names: Vec<String> = PLAYERS.iter().map(|(n, ..)| (*n).to_owned()).collect();
    names.extend([API, GRACE.0, HEIDI.0].map(str::to_owned));
    env.wait_finished(&names, Duration::from_secs(30)).await;
    {
        let shared = lock(&shared);
        check_api(&env, &shared);
        let log = shared.logs.get(&GRACE.2).map_or(&[][..], Vec::as_slice);
        check_relayed(&env, &relayed, log);
    }
    env.stop_servers().await;
}

/// A cut while `play` drains, on some seeds: between it and a player (whose stage may be
/// the one moving: its move notice waits for the heal) or another Play server (a move's
/// transfer waits for the heal); shorter than the heartbeat timeouts, so nobody gives up.
async fn cut_during_move(env: &Env, play: &str) {
    let others: Vec<&str> = PLAYS.iter().copied().filter(|p| *p != play).collect();
    let other = match env.rng.range(0..3) {
        0 => return,
        1 => env.rng.pick(&PLAYERS).0,
        _ => *env.rng.pick(&others),
    };
    sleep(env.rng.millis(0, 20)).await;
    env.trace
        .record("director", format_args!("cut {play} <-> {other}"));
    crate::network::cut(play, other);
    sleep(env.rng.millis(50, 600)).await;
    crate::network::heal(play, other);
    env.trace
        .record("director", format_args!("healed {play} <-> {other}"));
}

/// Every API operation is in its stage's final log exactly once, each request answered with
/// its number there.
fn check_api(env: &Env, shared: &Shared) {
    for (stage, op, answered) in &shared.api_ops {
        let Some(log) = shared.logs.get(stage) else {
            env.trace
                .violation("director", format_args!("no final log of stage {stage}"));
            return;
        };
        let found: Vec<usize> = (0..log.len()).filter(|i| log[*i] == *op).collect();
        env.trace.check(API, found.len() == 1, || {
            format!("stage {stage} applied {op} {} times", found.len())
        });
        if let Some(n) = answered {
            env.trace
                .check(API, log.get(n - 1).is_some_and(|o| o == op), || {
                    format!(
                        "{op} was answered {n}, but entry {n} of stage {stage} is {:?}",
                        log.get(n - 1)
                    )
                });
        }
    }
}

/// The API server: creates one stage on each Play server, then sends each one-way messages
/// and requests, addressed at the server it was created on, until the drains are done.
async fn api_ops(api: ApiServer, env: Env, shared: Arc<Mutex<Shared>>) {
    let sender = api.sender();
    let mut all: Vec<&str> = PLAYS.to_vec();
    all.push(API);
    env.wait_mesh(&all, Duration::from_secs(10)).await;
    let fixed = (PLAYS[0], FIXED, FIXED_STAGE);
    let stages = PLAYS
        .iter()
        .enumerate()
        .map(|(i, play)| (*play, MOVER, i as i64 + 1));
    for (play, kind, stage) in stages.chain([fixed]) {
        let created = sender
            .create_stage(play, kind, stage, ServerPacket::empty("Make"))
            .await;
        env.trace.check(API, created.is_ok(), || {
            format!("stage {stage} not created on {play}: {created:?}")
        });
    }
    env.finish(STAGES);
    let loops = PLAYS.iter().enumerate().map(|(k, play)| {
        let stage = k as i64 + 1;
        stage_ops(&env, &sender, &shared, play, stage)
    });
    futures_util::future::join_all(loops).await;
    // One-way messages still on their way arrive before the players read the logs.
    sleep(Duration::from_secs(1)).await;
}

/// The API's operations on `stage` (created on `play`), until the drains are done: two
/// one-way messages and a request at a time, a few milliseconds apart, so that some reach
/// the stage while it is frozen for a move (held, and moved with it).
async fn stage_ops(
    env: &Env,
    sender: &playhouse::ApiSender,
    shared: &Mutex<Shared>,
    play: &str,
    stage: i64,
) {
    let mut i = 0u64;
    while !env.is_finished(DRAINS) {
        for _ in 0..2 {
            i += 1;
            let op = format!("api:{stage}o{i}");
            match sender.send_to_stage(play, stage, ServerPacket::new("Op", op.clone())) {
                Ok(()) => lock(shared).api_ops.push((stage, op, None)),
                Err(error) => env.trace.violation(
                    API,
                    format_args!("one-way {op} to stage {stage} at {play} refused: {error}"),
                ),
            }
        }
        i += 1;
        let op = format!("api:{stage}r{i}");
        let reply = sender
            .request_to_stage(play, stage, ServerPacket::new("Op", op.clone()))
            .await;
        match reply.map(|p| String::from_utf8_lossy(&p.payload).parse::<usize>()) {
            Ok(Ok(n)) => lock(shared).api_ops.push((stage, op, Some(n))),
            outcome => env.trace.violation(
                API,
                format_args!("request {op} to stage {stage} at {play}: {outcome:?}"),
            ),
        }
        sleep(env.rng.millis(2, 20)).await;
    }
}

/// What one player's callbacks saw.
#[derive(Default)]
struct Seen {
    /// `Applied` pushes: number and operation.
    pushes: Vec<(usize, String)>,
    events: Vec<SessionEvent>,
}

fn connector(env: &Env, name: &str, seen: &Arc<Mutex<Seen>>) -> Connector {
    let timing = env.timing;
    let connector = Connector::new(
        ConnectorConfig::default()
            .request_timeout(Duration::from_secs(30))
            .heartbeat_interval(timing.heartbeat_interval)
            .heartbeat_timeout(timing.heartbeat_timeout)
            .connect_timeout(timing.connect_timeout)
            .use_main_thread_callbacks(false)
            .resume(true)
            .reconnect(ReconnectPolicy {
                initial_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
                jitter_seed: Some(env.rng.next_u64()),
            }),
    );
    let trace = env.trace.clone();
    {
        let (trace, seen, who) = (trace.clone(), Arc::clone(seen), name.to_owned());
        connector.on_receive(move |_, _, packet| on_push(&trace, &who, &seen, &packet));
    }
    {
        let (seen, who) = (Arc::clone(seen), name.to_owned());
        connector.on_session(move |event| {
            trace.record(&who, format_args!("session {event:?}"));
            if event == SessionEvent::Lost {
                trace.violation(&who, "session lost");
            }
            lock(&seen).events.push(event);
        });
    }
    connector
}

/// An `Applied` push: the next number after the last one seen.
fn on_push(trace: &Trace, who: &str, seen: &Mutex<Seen>, packet: &Packet) {
    if packet.msg_id != "Applied" {
        return;
    }
    let text = String::from_utf8_lossy(&packet.payload).into_owned();
    let parsed = text
        .split_once(' ')
        .and_then(|(n, op)| Some((n.parse::<usize>().ok()?, op.to_owned())));
    let Some((n, op)) = parsed else {
        trace.violation(who, format_args!("malformed push {text:?}"));
        return;
    };
    let mut seen = lock(seen);
    if let Some((last, _)) = seen.pushes.last() {
        let last = *last;
        trace.check(who, n == last + 1, || {
            format!("push {n} after {last}: not consecutive")
        });
    }
    seen.pushes.push((n, op));
}

/// Dials `host:port` on the simulated network (the endpoint the connector was given, or
/// the one a move named), through the client's wire tap.
fn dialer(
    timeout: Duration,
    tap: ClientTap,
) -> impl Fn(&str) -> Pin<Box<dyn Future<Output = io::Result<Tapped<TcpStream>>> + Send>>
+ Send
+ Sync
+ 'static {
    move |endpoint: &str| {
        let endpoint = endpoint.to_owned();
        let tap = tap.clone();
        Box::pin(async move {
            let (host, port) = endpoint
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or(io::ErrorKind::InvalidInput)?;
            Ok(tap.wrap(dial(&host, port, timeout).await?))
        })
    }
}

/// One player: logs in to its stage, plays until the drains are done, then reads the stage's
/// log and checks it against everything it sent and saw.
async fn player(
    env: Env,
    name: &'static str,
    account: &str,
    stage: i64,
    shared: Arc<Mutex<Shared>>,
) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let connector = connector(&env, name, &seen);
    wait_until(Duration::from_secs(20), || env.is_finished(STAGES)).await;
    let home = PLAYS[usize::try_from(stage - 1).expect("a stage from 1")];
    let endpoint = format!("{home}:{CLIENT_PORT}");
    let tap = ClientTap::new(&env.trace, name);
    let dial = dialer(env.timing.connect_timeout, tap.clone());
    let connected = connector
        .connect_with_endpoint(&endpoint, dial, stage, MOVER)
        .await;
    let auth = match connected {
        Ok(()) => connector
            .authenticate(Packet::new("AuthenticateRequest", account.to_owned()))
            .await
            .map(|_| ()),
        Err(error) => Err(error),
    };
    if let Err(error) = auth {
        env.trace
            .violation(name, format_args!("could not log in: {error}"));
        env.finish(&format!("{name} joined"));
        env.finish(name);
        return;
    }
    env.trace.record(name, "authenticated");
    env.finish(&format!("{name} joined"));
    // Operations sent: the operation, and for a request the number it was answered.
    let mut sent: Vec<(String, Option<usize>)> = Vec::new();
    let mut i = 0u64;
    while !env.is_finished(DRAINS) {
        i += 1;
        let op = format!("{account}:o{i}");
        match connector.send(Packet::new("Op", op.clone())) {
            Ok(()) => sent.push((op, None)),
            Err(error) => env
                .trace
                .violation(name, format_args!("one-way {op} refused: {error}")),
        }
        i += 1;
        let op = format!("{account}:r{i}");
        let reply = connector.request(Packet::new("Op", op.clone())).await;
        match reply.map(|p| String::from_utf8_lossy(&p.payload).parse::<usize>()) {
            Ok(Ok(n)) => sent.push((op, Some(n))),
            outcome => env
                .trace
                .violation(name, format_args!("request {op}: {outcome:?}")),
        }
        sleep(env.rng.millis(10, 60)).await;
    }
    wait_until(Duration::from_secs(20), || env.is_finished(API)).await;
    let log = match connector.request(Packet::empty("Dump")).await {
        Ok(reply) => String::from_utf8_lossy(&reply.payload)
            .split('\n')
            .map(str::to_owned)
            .collect::<Vec<_>>(),
        Err(error) => {
            env.trace
                .violation(name, format_args!("Dump failed: {error}"));
            Vec::new()
        }
    };
    check_player(&env, name, &sent, &lock(&seen), &log);
    // Connected at every move, so told on the live connection each time (not only when it
    // came back to the old server).
    let (live, answered) = tap.moves();
    env.trace.record(
        name,
        format_args!("move notices: {live} live, {answered} in answer to a resume"),
    );
    env.trace.check(name, answered == 0, || {
        format!("{answered} move(s) learned only by coming back to the old server")
    });
    lock(&shared).logs.insert(stage, log);
    connector.disconnect().await;
    env.finish(name);
}

/// Everything `name` sent is in the log once, each reply and push names its entry there, it
/// followed its stage at least once, and the timer ran on more than one server.
fn check_player(
    env: &Env,
    name: &str,
    sent: &[(String, Option<usize>)],
    seen: &Seen,
    log: &[String],
) {
    let trace = &env.trace;
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for op in log {
        *count.entry(op.as_str()).or_default() += 1;
    }
    for (op, answered) in sent {
        let times = count.get(op.as_str()).copied().unwrap_or(0);
        trace.check(name, times == 1, || {
            format!("the stage applied {op} {times} times")
        });
        if let Some(n) = answered {
            trace.check(name, log.get(n - 1) == Some(op), || {
                format!(
                    "{op} was answered {n}, but entry {n} is {:?}",
                    log.get(n - 1)
                )
            });
        }
    }
    // (Pushes numbered past the log were applied after the `Dump`.)
    for (n, op) in seen.pushes.iter().filter(|(n, _)| *n <= log.len()) {
        trace.check(name, log.get(n - 1) == Some(op), || {
            format!("push {n} named {op}, but entry {n} is {:?}", log.get(n - 1))
        });
    }
    let moves = seen
        .events
        .iter()
        .filter(|e| **e == SessionEvent::Moved)
        .count();
    trace.record(
        name,
        format_args!(
            "{} ops sent, {} pushes, moved {moves} times",
            sent.len(),
            seen.pushes.len()
        ),
    );
    trace.check(name, moves >= 1, || "never followed its stage".to_owned());
    let tickers: std::collections::BTreeSet<&str> = log
        .iter()
        .filter_map(|op| op.strip_prefix("tick@"))
        .collect();
    trace.check(name, tickers.len() >= 2, || {
        format!("the stage's timer ran only on {tickers:?}: not re-armed after a move?")
    });
}
