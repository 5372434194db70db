//! API↔Play partition → timeouts → repair → recovery.
//!
//! An API server keeps requesting a stage on a Play server while the link between them is
//! cut for a while (segments held, as a real network's retransmissions would deliver them
//! after the heal). Requests started during the cut must fail with `ServerNotFound` (the mesh
//! heartbeats declare the peer down long before the request timeout) and nothing else; after
//! the repair requests succeed again within a bounded time, and every request after the first
//! success succeeds; no reply ever completes a request it does not answer (each echo carries
//! its own number), and the request cache ends empty with late replies at most the failures.

use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, ErrorCode};

use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, sleep};
use crate::cluster::timing::{Network, Timing};
use crate::mesh_client::MeshClient;
use crate::trace::now;

const PLAY: &str = "play-1";
const API: &str = "api-1";

/// How long after a repair requests must work again.
const RECOVERY: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug)]
struct Plan {
    cut: Duration,
    heal: Duration,
    end: Duration,
}

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let mut cluster = Cluster::new(seed, Network::default(), Timing::default());
    let rng = cluster.env.rng.fork();
    let cut = Duration::from_secs(1) + rng.millis(0, 1000);
    let heal = cut + rng.millis(500, 4000);
    let plan = Plan {
        cut,
        heal,
        end: heal + RECOVERY + Duration::from_secs(1),
    };
    cluster.play(PLAY);
    let workload: Workload = Rc::new(move |api, env| Box::pin(requests(api, env, plan)));
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    cluster.client("director", async move {
        sleep(plan.cut.saturating_sub(now())).await;
        crate::network::cut(API, PLAY);
        env.trace.record("director", "partition api-1 <-> play-1");
        sleep(plan.heal.saturating_sub(now())).await;
        crate::network::heal(API, PLAY);
        env.trace.record("director", "repair api-1 <-> play-1");
        env.wait_finished(&[API.to_owned()], Duration::from_secs(60))
            .await;
        env.stop_servers().await;
    });
    cluster.run()
}

async fn requests(api: ApiServer, env: Env, plan: Plan) {
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
    let mut recovered_at: Option<Duration> = None;
    while now() < plan.end {
        let start = now();
        let answers = if rng.chance(25) {
            mesh.echo_pipelined(PLAY, 1, rng.range(2..4) as usize).await
        } else {
            vec![mesh.echo(PLAY, 1).await]
        };
        let end = now();
        for answer in answers {
            if end < plan.cut {
                trace.check(API, answer.is_ok(), || {
                    format!("request before the partition failed: {}", answer.code)
                });
            } else if start >= plan.cut && end <= plan.heal {
                // The request timeout is three heartbeat timeouts: the heartbeats end it.
                trace.check(API, answer.code == ErrorCode::SERVER_NOT_FOUND, || {
                    format!("request during the partition ended with {}", answer.code)
                });
            } else if let Some(at) = recovered_at.filter(|at| start >= *at) {
                // Recovered means recovered: no request after the first success may fail.
                trace.check(API, answer.is_ok(), || {
                    format!(
                        "request after the recovery ({}ms) failed: {}",
                        at.as_millis(),
                        answer.code
                    )
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
        }
        sleep(rng.millis(10, 150)).await;
    }
    let recovery = recovered_at.map(|at| at - plan.heal);
    trace.check(API, recovery.is_some_and(|r| r <= RECOVERY), || {
        format!("not recovered within {RECOVERY:?} of the repair ({recovery:?})")
    });
    mesh.check_queues();
}
