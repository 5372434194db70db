//! Play server crash and restart.
//!
//! The Play server's machine dies (turmoil `crash`: its stages are gone, its connections
//! vanish without a FIN) and comes back later (`bounce`). Meanwhile an API server keeps
//! requesting a stage there and a player keeps playing. Once the mesh link has noticed
//! (heartbeats unanswered for the heartbeat timeout), API requests must fail fast with
//! `ServerNotFound`, not wait for the request timeout; after the
//! restart the API recreates the stage and requests succeed again; the player's connector
//! reports the disconnect, its logins fail until the restart, then it joins a fresh stage
//! incarnation (a new actor: one join) and its new operations are all there.

use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, ErrorCode};

use crate::client::{SimClient, retire};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, HostFault, Workload, sleep};
use crate::cluster::timing::{Network, Timing};
use crate::mesh_client::MeshClient;
use crate::trace::now;

const PLAY: &str = "play-1";
const API: &str = "api-1";
const PLAYER: &str = "client-1";

/// A request while the server is down must fail at least this fast.
const FAST: Duration = Duration::from_millis(20);
/// How long after the restart requests must work again.
const RECOVERY: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug)]
struct Plan {
    crash: Duration,
    restart: Duration,
    end: Duration,
}

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let mut cluster = Cluster::new(seed, Network::default(), Timing::default());
    let rng = cluster.env.rng.fork();
    let crash = Duration::from_secs(1) + rng.millis(0, 1500);
    let restart = crash + rng.millis(300, 2500);
    let plan = Plan {
        crash,
        restart,
        end: restart + RECOVERY + Duration::from_secs(1),
    };
    cluster.play(PLAY);
    let workload: Workload = Rc::new(move |api, env| Box::pin(requests(api, env, plan)));
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    cluster.client(PLAYER, player(env.clone(), plan));
    cluster.client("director", async move {
        sleep(plan.crash.saturating_sub(now())).await;
        env.fault(HostFault::Crash(PLAY.to_owned())).await;
        sleep(plan.restart.saturating_sub(now())).await;
        env.fault(HostFault::Bounce(PLAY.to_owned())).await;
        env.wait_finished(
            &[API.to_owned(), PLAYER.to_owned()],
            Duration::from_secs(60),
        )
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
    let mut recovered_at = None;
    // A dead machine sends nothing: the link notices when its heartbeats go unanswered.
    let down = plan.crash + env.timing.mesh_heartbeat_timeout + Duration::from_millis(50);
    while now() < plan.end {
        let start = now();
        let answer = mesh.echo(PLAY, 1).await;
        let end = now();
        if start >= plan.crash && start < plan.restart {
            // However it ends, a request to the dead server must not outlast the heartbeats'
            // verdict (nor hang on until the restart resets the connection).
            let limit = down.max(start) + FAST;
            trace.check(API, end <= limit, || {
                format!(
                    "request to the dead server started at {}ms ended at {}ms, after the verdict",
                    start.as_millis(),
                    end.as_millis()
                )
            });
        }
        if end < plan.crash {
            trace.check(API, answer.is_ok(), || {
                format!("request before the crash failed: {}", answer.code)
            });
        } else if start >= plan.crash && start < down && end <= plan.restart {
            // Before the heartbeats noticed: the request waits for the verdict, which comes
            // before its timeout (three heartbeat timeouts).
            trace.check(API, answer.code == ErrorCode::SERVER_NOT_FOUND, || {
                format!("request to the crashing server ended with {}", answer.code)
            });
        } else if start >= down && end <= plan.restart {
            trace.check(
                API,
                answer.code == ErrorCode::SERVER_NOT_FOUND && answer.took <= FAST,
                || {
                    format!(
                        "request to the crashed server ended with {} after {:?}",
                        answer.code, answer.took
                    )
                },
            );
        } else if start >= plan.restart {
            if answer.code == ErrorCode::STAGE_NOT_FOUND {
                // The restarted server has no stages: make it again.
                let again = mesh.ensure_stage(PLAY, 1).await;
                trace.check(
                    API,
                    again.is_ok() || again.code == ErrorCode::SERVER_NOT_FOUND,
                    || format!("recreating the stage failed: {}", again.code),
                );
            } else if answer.is_ok() && recovered_at.is_none() {
                recovered_at = Some(end);
                trace.record(
                    API,
                    format_args!(
                        "recovered {}ms after the restart",
                        (end - plan.restart).as_millis()
                    ),
                );
            } else {
                let allowed = [
                    ErrorCode::SUCCESS,
                    ErrorCode::SERVER_NOT_FOUND,
                    ErrorCode::REQUEST_TIMEOUT,
                ];
                trace.check(API, allowed.contains(&answer.code), || {
                    format!("request after the restart ended with {}", answer.code)
                });
            }
        }
        sleep(rng.millis(10, 100)).await;
    }
    let recovery = recovered_at.map(|at| at - plan.restart);
    trace.check(API, recovery.is_some_and(|r| r <= RECOVERY), || {
        format!("not recovered within {RECOVERY:?} of the restart ({recovery:?})")
    });
    mesh.check_queues();
}

async fn player(env: Env, plan: Plan) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    let mut client = SimClient::new(&env, PLAYER, "erin", PLAY, 1);
    if !client
        .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
        .await
    {
        trace.violation(PLAYER, "could not log in");
        return env.finish(PLAYER);
    }
    let first = client
        .pushes("Joined")
        .last()
        .map(|(_, p)| p.clone())
        .unwrap_or_default();
    while now() < plan.end {
        if client.connector().is_connected() {
            let _ = client.op().await;
        } else if client.login().await {
            trace.check(PLAYER, now() >= plan.restart, || {
                "logged in while the server was down".into()
            });
        }
        sleep(rng.millis(50, 200)).await;
    }
    let joined: Vec<String> = client
        .pushes("Joined")
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let last = joined.last().cloned().unwrap_or_default();
    trace.check(
        PLAYER,
        joined.len() == 2 && last.starts_with("1 ") && last != first,
        || {
            format!(
                "after the restart the player joined {joined:?}, not once more into a new stage"
            )
        },
    );
    trace.check(PLAYER, client.inbox().disconnects >= 1, || {
        "the crash was not reported".into()
    });
    client.verify_ops().await;
    retire(&env, client).await;
}
