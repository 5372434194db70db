//! Directory wipe: the directory loses every entry at once, a few times (what an empty Redis
//! restart does), while every server lives on.
//!
//! `api-0` keeps requesting a stage on `play-1`, `api-1` directly, and service 7 (served by
//! `api-1` alone). Every request must succeed, during the wipes and after: a server missing
//! from the directory stays routable until its entry's TTL would have run out, and every
//! server re-publishes itself at its next refresh, long before that. Some wipes come twice
//! within a refresh interval (a flapping restart). Between wipes the directory stays up for
//! at least two refresh intervals, long enough for every server to publish and every other
//! to list it: a server nobody has seen listed for a whole TTL is, by design, taken for gone.
//! At the end every server is listed again.

use std::rc::Rc;
use std::time::Duration;

use playhouse::ApiServer;

use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, sleep};
use crate::cluster::timing::{Network, Timing};
use crate::mesh_client::MeshClient;
use crate::trace::now;

const CALLER: &str = "api-0";
const SERVING: &str = "api-1";
const PLAY: &str = "play-1";
const SERVICE: u16 = 7;
const STAGE: i64 = 1;

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    // A short TTL (four refresh intervals, as 10 s to 3 s in production): were a missing
    // entry taken for a gone server, requests would fail within the scenario.
    let timing = Timing {
        directory_ttl: Duration::from_secs(1),
        ..Timing::default()
    };
    let mut cluster = Cluster::new(seed, Network::default(), timing);
    let rng = cluster.env.rng.fork();
    let calm = timing.refresh_interval * 2 + Duration::from_millis(100);
    let mut wipes = Vec::new();
    let mut at = Duration::from_millis(1500);
    for _ in 0..rng.range(3..6) {
        at += calm + rng.millis(0, 900);
        wipes.push(at);
        if rng.chance(30) {
            // Again before anyone has re-published.
            at += rng.millis(20, 200);
            wipes.push(at);
        }
    }
    let end = at + Duration::from_secs(2);
    cluster.play(PLAY);
    let workload: Workload = Rc::new(move |api, env| Box::pin(requests(api, env, end)));
    cluster.api(CALLER, None, Some(workload));
    cluster.api(SERVING, Some(SERVICE), None);
    let env = cluster.env.clone();
    cluster.client("director", async move {
        for wipe in wipes {
            sleep(wipe.saturating_sub(now())).await;
            env.directory.wipe();
            env.trace.record("director", "directory wiped");
        }
        env.wait_finished(&[CALLER.to_owned()], Duration::from_secs(60))
            .await;
        env.stop_servers().await;
    });
    cluster.run()
}

async fn requests(api: ApiServer, env: Env, end: Duration) {
    let trace = &env.trace;
    let rng = env.rng.fork();
    if !env
        .wait_mesh(&[CALLER, SERVING, PLAY], Duration::from_secs(5))
        .await
    {
        return;
    }
    let mut mesh = MeshClient::for_env(&api, &env);
    // Listed in the directory is not yet connected: wait until both answer.
    let mut up = false;
    for _ in 0..50 {
        if mesh.ensure_stage(PLAY, STAGE).await.is_ok() && mesh.api_echo(SERVING).await.is_ok() {
            up = true;
            break;
        }
        sleep(Duration::from_millis(20)).await;
    }
    trace.check(CALLER, up, || "the servers never answered".into());
    let mut sent = 0;
    while now() < end {
        let (what, answer) = match rng.range(0..3) {
            0 => ("stage", mesh.echo(PLAY, STAGE).await),
            1 => ("direct", mesh.api_echo(SERVING).await),
            _ => ("service", mesh.service_echo(SERVICE).await),
        };
        sent += 1;
        trace.check(CALLER, answer.is_ok(), || {
            format!(
                "{what} request around a directory wipe ended with {}",
                answer.code
            )
        });
        sleep(rng.millis(5, 40)).await;
    }
    trace.check(CALLER, sent > 50, || format!("only {sent} requests"));
    let listed = env.directory.ids();
    trace.check(CALLER, listed == [CALLER, SERVING, PLAY], || {
        format!("not every server re-published: {listed:?}")
    });
    mesh.check_queues();
}
