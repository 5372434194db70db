//! A mixed chaos run: random partitions, holds and restarts over a workload of many
//! clients and stages.
//!
//! Two Play servers host three stages; six players and an API server work them while the
//! director, for several simulated seconds, partitions and holds random links (player ↔
//! Play server, API ↔ Play server) and crashes and restarts `play-2`. Then everything heals
//! and every invariant is checked: each player logs in again and its stage holds every
//! operation acknowledged in that stage's incarnation exactly once, the stage's pushes were
//! consecutive and in order on every connection, no request hung or was answered by another
//! request's reply, request caches and connectors end empty, and no task outlives shutdown.
//!
//! Mid-run, a census of each Play server (sessions, tasks, TCP streams) taken once everyone
//! is in and before the first fault is compared with one taken after the chaos, once the same
//! players are back: whatever the faults left behind is a leak.

use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, ErrorCode};

use crate::census;
use crate::client::{SimClient, retire};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, HostFault, Workload, sleep, wait_until};
use crate::cluster::timing::{Network, Timing};
use crate::mesh_client::MeshClient;
use crate::trace::now;

const PLAYS: [&str; 2] = ["play-1", "play-2"];
const API: &str = "api-1";
/// (client host, account, play server, stage).
const PLAYERS: [(&str, &str, &str, i64); 6] = [
    ("client-1", "p1", "play-1", 1),
    ("client-2", "p2", "play-1", 1),
    ("client-3", "p3", "play-1", 2),
    ("client-4", "p4", "play-1", 2),
    ("client-5", "p5", "play-2", 3),
    ("client-6", "p6", "play-2", 3),
];
/// Set once the faults are over and every link healed.
const CALM: &str = "calm";
/// Set once the census before the faults is taken (the workload starts then).
const BASELINE: &str = "baseline";
/// Set once the census after the chaos is taken (players then check and leave).
const CENSUS: &str = "census";
/// How long the director injects faults.
const CHAOS: Duration = Duration::from_secs(8);

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
    let workload: Workload = Rc::new(|api, env| Box::pin(api_traffic(api, env)));
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    for (name, account, play, stage) in PLAYERS {
        cluster.client(name, player(env.clone(), name, account, play, stage));
    }
    cluster.client("director", director(env));
    cluster.run()
}

/// The name a player marks when it is logged in (`in`: before the chaos, `back`: after).
fn mark(name: &str, when: &str) -> String {
    format!("{name}:{when}")
}

/// Marks of every player for `when`.
fn marks(when: &str) -> Vec<String> {
    PLAYERS.iter().map(|p| mark(p.0, when)).collect()
}

async fn director(env: Env) {
    let rng = env.rng.fork();
    let trace = &env.trace;
    env.wait_finished(&marks("in"), Duration::from_secs(10))
        .await;
    // Steady: every player in, the mesh formed and its connections dialed.
    env.wait_mesh(&[PLAYS[0], PLAYS[1], API], Duration::from_secs(5))
        .await;
    sleep(Duration::from_secs(1)).await;
    let before = census::baseline(&env, &PLAYS);
    env.finish(BASELINE);
    sleep(Duration::from_millis(600)).await;
    let until = now() + CHAOS;
    while now() < until {
        let play = *rng.pick(&PLAYS);
        let client = rng.pick(&PLAYERS).0;
        let (a, b) = if rng.chance(50) {
            (client, play)
        } else {
            (API, play)
        };
        let lasting = rng.millis(200, 2500);
        match rng.range(0..10) {
            0..=3 => {
                trace.record(
                    "director",
                    format_args!("partition {a} <-> {b} for {}ms", lasting.as_millis()),
                );
                crate::network::cut(a, b);
                sleep(lasting).await;
                crate::network::heal(a, b);
            }
            4..=6 => {
                let lasting = lasting / 3;
                trace.record(
                    "director",
                    format_args!("hold {a} <-> {b} for {}ms", lasting.as_millis()),
                );
                turmoil::hold(a, b);
                sleep(lasting).await;
                turmoil::release(a, b);
            }
            _ => {
                env.fault(HostFault::Crash("play-2".to_owned())).await;
                sleep(lasting).await;
                env.fault(HostFault::Bounce("play-2".to_owned())).await;
            }
        }
        trace.record("director", "healed");
        sleep(rng.millis(100, 800)).await;
    }
    env.finish(CALM);
    trace.record("director", "calm");
    let mut back = marks("back");
    back.push(API.to_owned());
    env.wait_finished(&back, Duration::from_secs(60)).await;
    let limit = env.timing.idle_timeout + Duration::from_secs(2);
    census::expect_back(&env, &PLAYS, &before, limit).await;
    env.finish(CENSUS);
    let mut names: Vec<String> = PLAYERS.iter().map(|p| p.0.to_owned()).collect();
    names.push(API.to_owned());
    env.wait_finished(&names, Duration::from_secs(60)).await;
    env.stop_servers().await;
}

async fn player(
    env: Env,
    name: &'static str,
    account: &'static str,
    play: &'static str,
    stage: i64,
) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    let mut client = SimClient::new(&env, name, account, play, stage);
    let joined = client
        .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
        .await;
    trace.check(name, joined, || {
        "could not log in before the chaos".to_owned()
    });
    env.finish(&mark(name, "in"));
    wait_until(Duration::from_secs(15), || env.is_finished(BASELINE)).await;
    while !env.is_finished(CALM) {
        if !client.connector().is_connected() {
            client.login().await;
        } else {
            match rng.range(0..4) {
                0 => client.note(),
                1 => client.ops_pipelined(rng.range(2..4) as usize).await,
                _ => {
                    let _ = client.op().await;
                }
            }
        }
        sleep(rng.millis(20, 250)).await;
    }
    // Everything healed: the player must get back in and find its operations.
    if !client.connector().is_authenticated()
        && !client
            .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
            .await
    {
        trace.violation(name, "could not log in after the chaos");
        env.finish(&mark(name, "back"));
    } else {
        env.finish(&mark(name, "back"));
        wait_until(Duration::from_secs(60), || env.is_finished(CENSUS)).await;
        let op = client.op().await;
        trace.check(name, op.is_ok(), || {
            format!("op after the chaos failed: {op:?}")
        });
        client.verify_ops().await;
    }
    retire(&env, client).await;
}

async fn api_traffic(api: ApiServer, env: Env) {
    let trace = &env.trace;
    let rng = env.rng.fork();
    if !env
        .wait_mesh(&[PLAYS[0], PLAYS[1], API], Duration::from_secs(5))
        .await
    {
        return;
    }
    wait_until(Duration::from_secs(15), || env.is_finished(BASELINE)).await;
    let mut mesh = MeshClient::for_env(&api, &env);
    // A cut or a crash is detected by the mesh heartbeats (1 s) long before a request times
    // out (3 s): the only failure is SERVER_NOT_FOUND. Only play-2 ever crashes, so only its
    // stages can be missing (a new incarnation before anyone recreated them).
    let allowed = |play: &str, code: ErrorCode| {
        code == ErrorCode::SUCCESS
            || code == ErrorCode::SERVER_NOT_FOUND
            || (play == "play-2" && code == ErrorCode::STAGE_NOT_FOUND)
    };
    while !env.is_finished(CALM) {
        let (_, _, play, stage) = *rng.pick(&PLAYERS);
        let answer = if rng.chance(20) {
            mesh.ensure_stage(play, stage).await
        } else {
            mesh.echo(play, stage).await
        };
        trace.check(API, allowed(play, answer.code), || {
            format!(
                "request to {play} during the chaos ended with {}",
                answer.code
            )
        });
        if answer.code == ErrorCode::STAGE_NOT_FOUND {
            mesh.ensure_stage(play, stage).await;
        }
        sleep(rng.millis(20, 200)).await;
    }
    // Healed: every stage must answer again within a few seconds.
    for (_, _, play, stage) in PLAYERS.iter().step_by(2) {
        let deadline = now() + Duration::from_secs(4);
        let mut ok = false;
        while now() < deadline {
            let answer = mesh.ensure_stage(play, *stage).await;
            if answer.is_ok() && mesh.echo(play, *stage).await.is_ok() {
                ok = true;
                break;
            }
            sleep(Duration::from_millis(100)).await;
        }
        trace.check(API, ok, || {
            format!("{play}/{stage} unreachable after the chaos")
        });
    }
    mesh.check_queues();
}
