//! One-way messages are delivered exactly once unless their connection drops.
//!
//! Segments take 1–60 ms (exponentially distributed), so messages of different senders race.
//! Three players and an API server interleave one-way operations (client `Op` sends, mesh
//! `MOp` sends) with requests at one stage, and ask the stage now and then what it holds
//! (`Dump`, `MDump`): every one-way operation sent on a connection that has not dropped
//! must be there exactly once, in the incarnation the connection is attached to, and every
//! reply on the wire must answer exactly one request (the taps). Meanwhile one player's link
//! is partitioned until its connector gives up: what it sent on that connection may be
//! missing, but nothing twice, and everything it sends after logging in again must arrive.

use std::rc::Rc;
use std::time::Duration;

use playhouse::ApiServer;

use crate::client::{SimClient, retire};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, sleep, wait_until};
use crate::cluster::timing::{Network, Timing};
use crate::mesh_client::MeshClient;
use crate::rng::SimRng;
use crate::trace::Trace;

const PLAY: &str = "play-1";
const API: &str = "api-1";
const PLAYERS: [&str; 3] = ["client-1", "client-2", "client-3"];
/// The player whose connection drops.
const DROPPED: &str = "client-1";
const ROUNDS: u64 = 8;

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let network = Network {
        max_latency: Duration::from_millis(60),
        ..Network::default()
    };
    let mut cluster = Cluster::new(seed, network, Timing::default());
    cluster.play(PLAY);
    let workload: Workload = Rc::new(|api, env| Box::pin(server_traffic(api, env)));
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    for (i, name) in PLAYERS.into_iter().enumerate() {
        cluster.client(name, player(env.clone(), name, i));
    }
    cluster.client("director", async move {
        let mut names: Vec<String> = PLAYERS.iter().map(|n| (*n).to_owned()).collect();
        names.push(API.to_owned());
        env.wait_finished(&names, Duration::from_secs(60)).await;
        env.stop_servers().await;
    });
    cluster.run()
}

/// A round of play: mostly one-way operations, some requests.
async fn play_round(client: &mut SimClient, rng: &SimRng, trace: &Trace) {
    for _ in 0..rng.range(2..6) {
        client.note();
        if rng.chance(20) {
            sleep(rng.millis(0, 10)).await;
        }
    }
    match rng.range(0..3) {
        0 => {
            let op = client.op().await;
            trace.check(&client.name, op.is_ok(), || format!("op failed: {op:?}"));
        }
        1 => client.ops_pipelined(rng.range(2..4) as usize).await,
        _ => {}
    }
    sleep(rng.millis(0, 40)).await;
}

async fn player(env: Env, name: &'static str, index: usize) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    let account = format!("player{index}");
    let mut client = SimClient::new(&env, name, &account, PLAY, 1);
    if !client
        .login_retrying(Duration::from_millis(50), Duration::from_secs(5))
        .await
    {
        trace.violation(name, "could not log in");
        return env.finish(name);
    }
    for round in 0..ROUNDS {
        play_round(&mut client, &rng, &trace).await;
        if round == ROUNDS / 2 {
            client.verify_ops().await;
        }
    }
    if name == DROPPED {
        // Send into a link about to go dead, and into the dead link: all may be missing.
        for _ in 0..rng.range(1..5) {
            client.note();
        }
        sleep(rng.millis(0, 30)).await;
        turmoil::partition(name, PLAY);
        trace.record(name, format_args!("partition {name} <-> {PLAY}"));
        for _ in 0..rng.range(1..4) {
            client.note();
            sleep(rng.millis(0, 200)).await;
        }
        let connector = client.connector().clone();
        let noticed = wait_until(env.timing.heartbeat_timeout * 2, || {
            !connector.is_connected()
        })
        .await;
        trace.check(name, noticed, || "the dead link was never noticed".into());
        turmoil::repair(name, PLAY);
        trace.record(name, format_args!("repair {name} <-> {PLAY}"));
        if !client
            .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
            .await
        {
            trace.violation(name, "could not log in after the partition healed");
            return retire(&env, client).await;
        }
        // A new connection: everything sent on it must arrive.
        for _ in 0..ROUNDS / 2 {
            play_round(&mut client, &rng, &trace).await;
        }
    }
    // The last one-way operations arrive before this request's reply.
    client.verify_ops().await;
    retire(&env, client).await;
}

async fn server_traffic(api: ApiServer, env: Env) {
    let trace = &env.trace;
    let rng = env.rng.fork();
    if !env.wait_mesh(&[PLAY, API], Duration::from_secs(5)).await {
        return;
    }
    let mut mesh = MeshClient::for_env(&api, &env);
    let created = mesh.ensure_stage(PLAY, 1).await;
    trace.check(API, created.is_ok(), || {
        format!("stage not created: {}", created.code)
    });
    for round in 0..ROUNDS * 2 {
        for _ in 0..rng.range(1..5) {
            let sent = mesh.mop(PLAY, 1);
            trace.check(API, sent.is_ok(), || {
                format!("one-way op refused: {sent:?}")
            });
        }
        if rng.chance(50) {
            let answers = mesh.echo_pipelined(PLAY, 1, rng.range(1..3) as usize).await;
            trace.check(API, answers.iter().all(|a| a.is_ok()), || {
                "echo failed".into()
            });
        }
        if round % 5 == 4 {
            mesh.verify_mops(PLAY, 1).await;
        }
        sleep(rng.millis(0, 40)).await;
    }
    mesh.verify_mops(PLAY, 1).await;
    mesh.check_queues();
}
