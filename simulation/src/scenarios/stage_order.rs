//! Per-stage message order under latency jitter.
//!
//! Segments take 1–60 ms (exponentially distributed), so messages of different clients and
//! servers race. Four players and an API server fire one-way operations, requests and
//! pipelined bursts at one stage. Every client must see the stage's broadcasts with
//! consecutive sequence numbers, the stage must see each sender's operations in the order
//! they were sent, pipelined replies must come back in the order they were applied, and
//! every acknowledged operation must be held exactly once.

use std::rc::Rc;
use std::time::Duration;

use playhouse::ApiServer;

use crate::client::{SimClient, retire};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, sleep};
use crate::cluster::timing::{Network, Timing};
use crate::mesh_client::MeshClient;

const PLAY: &str = "play-1";
const API: &str = "api-1";
const PLAYERS: [&str; 4] = ["client-1", "client-2", "client-3", "client-4"];
const ROUNDS: u64 = 12;

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
    for _ in 0..ROUNDS {
        match rng.range(0..3) {
            0 => {
                for _ in 0..rng.range(1..4) {
                    client.note();
                }
            }
            1 => {
                let op = client.op().await;
                trace.check(name, op.is_ok(), || format!("op failed: {op:?}"));
            }
            _ => client.ops_pipelined(rng.range(2..5) as usize).await,
        }
        sleep(rng.millis(0, 40)).await;
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
    for _ in 0..ROUNDS {
        for _ in 0..rng.range(1..4) {
            let sent = mesh.mop(PLAY, 1);
            trace.check(API, sent.is_ok(), || {
                format!("one-way op refused: {sent:?}")
            });
        }
        let answers = mesh.echo_pipelined(PLAY, 1, rng.range(1..4) as usize).await;
        trace.check(API, answers.iter().all(|a| a.is_ok()), || {
            "echo failed".into()
        });
        sleep(rng.millis(0, 40)).await;
    }
    // The last one-way operations arrive before this request's reply.
    mesh.verify_mops(PLAY, 1).await;
    mesh.check_queues();
}
