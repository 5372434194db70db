//! A silently dead peer, noticed by the mesh node's heartbeats: the liveness every link runs,
//! ZeroMQ included, exercised here on the simulated network.
//!
//! An API server has requests held by a stage on a Play server (the stage never answers
//! them) while it keeps echoing; then the network between them goes silent: both ways, or
//! one way only (the seed picks), without a FIN or RST. The mesh request timeout is 30 s,
//! far beyond the run, so only the heartbeats can end the held requests: each must fail with
//! `ServerNotFound` within `heartbeat_timeout` of the cut (plus two network latencies). Once
//! noticed, new requests fail fast; after the repair, requests succeed again within a bound;
//! no reply ever completes another request; the cache ends empty.

use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, ErrorCode, Packet};

use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, sleep};
use crate::cluster::timing::{Network, Timing};
use crate::mesh_client::MeshClient;
use crate::trace::now;

const PLAY: &str = "play-1";
const API: &str = "api-1";

/// Requests held by the stage when the network goes silent.
const HELD: usize = 3;
/// A request to a peer known down must fail at least this fast.
const FAST: Duration = Duration::from_millis(20);
/// How long after the repair requests must work again.
const RECOVERY: Duration = Duration::from_secs(3);

/// Which way the network goes silent.
#[derive(Clone, Copy, Debug)]
enum Cut {
    Both,
    ApiToPlay,
    PlayToApi,
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    cut: Duration,
    how: Cut,
    heal: Duration,
    end: Duration,
    /// The network's slowest delivery.
    latency: Duration,
}

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let network = Network::default();
    let timing = Timing::long_mesh_requests();
    let mut cluster = Cluster::new(seed, network, timing);
    let rng = cluster.env.rng.fork();
    let cut = Duration::from_secs(1) + rng.millis(0, 1000);
    let how = *rng.pick(&[Cut::Both, Cut::ApiToPlay, Cut::PlayToApi]);
    let heal = cut + timing.mesh_heartbeat_timeout + rng.millis(200, 2000);
    let plan = Plan {
        cut,
        how,
        heal,
        end: heal + RECOVERY + Duration::from_secs(1),
        latency: network.max_latency,
    };
    cluster.play(PLAY);
    let workload: Workload = Rc::new(move |api, env| Box::pin(requests(api, env, plan)));
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    cluster.client("director", async move {
        sleep(plan.cut.saturating_sub(now())).await;
        match plan.how {
            Cut::Both => turmoil::partition(API, PLAY),
            Cut::ApiToPlay => turmoil::partition_oneway(API, PLAY),
            Cut::PlayToApi => turmoil::partition_oneway(PLAY, API),
        }
        env.trace.record(
            "director",
            format_args!("silent {:?} api-1 / play-1", plan.how),
        );
        sleep(plan.heal.saturating_sub(now())).await;
        turmoil::repair(API, PLAY);
        env.trace.record("director", "repair api-1 <-> play-1");
        env.wait_finished(&[API.to_owned()], Duration::from_secs(60))
            .await;
        env.stop_servers().await;
    });
    cluster.run()
}

async fn requests(api: ApiServer, env: Env, plan: Plan) {
    let trace = &env.trace;
    if !env.wait_mesh(&[PLAY, API], Duration::from_secs(5)).await {
        return;
    }
    let mut mesh = MeshClient::for_env(&api, &env);
    let created = mesh.ensure_stage(PLAY, 1).await;
    trace.check(API, created.is_ok(), || {
        format!("stage not created: {}", created.code)
    });
    // Latest moment the node may notice: the last ping answered before the cut was sent
    // before it, and the pong of a later one cannot arrive.
    let noticed_by = plan.cut + env.timing.mesh_heartbeat_timeout + plan.latency * 2;
    let held = async {
        sleep(plan.cut.saturating_sub(now() + Duration::from_millis(200))).await;
        let sender = api.sender();
        let requests = (0..HELD).map(|n| {
            let packet = Packet::new("Hold", n.to_string());
            sender.request_to_stage(PLAY, 1, packet)
        });
        let results = futures_util::future::join_all(requests).await;
        let ended = now();
        for result in results {
            let code = result.err().map_or(ErrorCode::SUCCESS, |e| e.code());
            trace.record(API, format_args!("held request ended with {code}"));
            trace.check(API, code == ErrorCode::SERVER_NOT_FOUND, || {
                format!("a held request ended with {code}, not SERVER_NOT_FOUND")
            });
        }
        trace.check(API, ended >= plan.cut && ended <= noticed_by, || {
            format!(
                "held requests ended {}ms after the cut (limit {}ms)",
                ended.as_millis() as i128 - plan.cut.as_millis() as i128,
                (noticed_by - plan.cut).as_millis()
            )
        });
    };
    let echoes = async {
        let rng = env.rng.fork();
        let mut recovered_at = None;
        while now() < plan.end {
            let start = now();
            let answer = mesh.echo(PLAY, 1).await;
            let end = now();
            if end < plan.cut {
                trace.check(API, answer.is_ok(), || {
                    format!("request before the cut failed: {}", answer.code)
                });
            } else if start >= noticed_by && end <= plan.heal {
                trace.check(
                    API,
                    answer.code == ErrorCode::SERVER_NOT_FOUND && answer.took <= FAST,
                    || {
                        format!(
                            "request to a peer known down ended with {} in {}ms",
                            answer.code,
                            answer.took.as_millis()
                        )
                    },
                );
            } else if start >= plan.cut && end <= plan.heal {
                // Around the verdict: failed by it, never timed out (30 s).
                trace.check(API, answer.code == ErrorCode::SERVER_NOT_FOUND, || {
                    format!("request during the cut ended with {}", answer.code)
                });
            } else if start >= plan.heal && answer.is_ok() && recovered_at.is_none() {
                recovered_at = Some(end);
                trace.record(
                    API,
                    format_args!(
                        "recovered {}ms after the repair",
                        (end - plan.heal).as_millis()
                    ),
                );
            }
            sleep(rng.millis(10, 100)).await;
        }
        let recovery = recovered_at.map(|at| at - plan.heal);
        trace.check(API, recovery.is_some_and(|r| r <= RECOVERY), || {
            format!("not recovered within {RECOVERY:?} of the repair ({recovery:?})")
        });
        mesh
    };
    let ((), mesh) = tokio::join!(held, echoes);
    mesh.check_queues();
}
