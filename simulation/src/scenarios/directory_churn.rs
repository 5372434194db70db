//! Directory churn: a server disabled, removed, re-added.
//!
//! `api-1` and `api-2` serve service 7; `api-0` keeps sending service requests (round
//! robin) and direct requests to `api-2`. When `api-2` is disabled, service routing must
//! stop choosing it (direct requests still work). When its directory entry disappears while
//! it lives on (what an empty directory restart does), it stays reachable for the entry's
//! TTL: direct requests still succeed. Once its entry has been missing for longer, direct
//! requests must fail fast with `ServerNotFound` and service requests go to `api-1`; when it
//! is back, both kinds reach it again. Each phase is checked once the directory refresh has
//! had time to spread the change. Requests alternate between the two kinds, and every phase
//! must have held at least one of each (a phase with none would pass unchecked).

use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, ErrorCode, ServerState};

use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, sleep};
use crate::cluster::timing::{Network, Timing};
use crate::mesh_client::MeshClient;
use crate::trace::now;

const CALLER: &str = "api-0";
const STEADY: &str = "api-1";
const CHURNING: &str = "api-2";
const SERVICE: u16 = 7;

#[derive(Clone, Copy, Debug)]
struct Plan {
    disable: Duration,
    remove: Duration,
    readd: Duration,
    end: Duration,
    /// Time for a directory change to reach every view and connection.
    settle: Duration,
    /// Until then after `remove`, the missing entry is tolerated: its TTL since it was last
    /// listed (at most a refresh interval before `remove`) has not run out.
    grace: Duration,
    /// From then after `remove`, every view has dropped the server: its TTL ran out and a
    /// refresh noticed.
    gone: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Disabled,
    /// Missing from the directory, still within its TTL: reachable.
    Missing,
    Removed,
    Back,
    Moving,
}

impl Plan {
    fn phase(&self, start: Duration, end: Duration) -> Phase {
        let within = |from: Duration, to: Duration| start >= from && end <= to;
        if end <= self.disable {
            Phase::Running
        } else if within(self.disable + self.settle, self.remove) {
            Phase::Disabled
        } else if within(self.remove, self.remove + self.grace) {
            Phase::Missing
        } else if within(self.remove + self.gone, self.readd) {
            Phase::Removed
        } else if within(self.readd + self.settle, self.end) {
            Phase::Back
        } else {
            Phase::Moving
        }
    }
}

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    // A short entry TTL (four refresh intervals, like 10 s against 3 s in production), so
    // the removal takes effect within the scenario.
    let timing = Timing {
        directory_ttl: Duration::from_secs(1),
        ..Timing::default()
    };
    let mut cluster = Cluster::new(seed, Network::default(), timing);
    let rng = cluster.env.rng.fork();
    let settle = timing.refresh_interval * 2 + Duration::from_millis(100);
    let margin = Duration::from_millis(100);
    let grace = timing.directory_ttl - timing.refresh_interval - margin;
    let gone = timing.directory_ttl + timing.refresh_interval + margin;
    let disable = Duration::from_millis(1500) + rng.millis(0, 1000);
    let remove = disable + settle + rng.millis(300, 1500);
    let readd = remove + gone + rng.millis(300, 1500);
    let plan = Plan {
        disable,
        remove,
        readd,
        end: readd + settle + Duration::from_secs(1),
        settle,
        grace,
        gone,
    };
    let workload: Workload = Rc::new(move |api, env| Box::pin(requests(api, env, plan)));
    cluster.api(CALLER, None, Some(workload));
    cluster.api(STEADY, Some(SERVICE), None);
    cluster.api(CHURNING, Some(SERVICE), None);
    let env = cluster.env.clone();
    cluster.client("director", async move {
        sleep(plan.disable.saturating_sub(now())).await;
        if let Some(api) = env.api(CHURNING) {
            api.mesh().set_state(ServerState::Disabled);
        }
        env.trace.record("director", "api-2 disabled");
        sleep(plan.remove.saturating_sub(now())).await;
        env.directory.suppress(CHURNING);
        env.trace
            .record("director", "api-2 removed from the directory");
        sleep(plan.readd.saturating_sub(now())).await;
        if let Some(api) = env.api(CHURNING) {
            api.mesh().set_state(ServerState::Running);
        }
        env.directory.restore(CHURNING);
        env.trace.record("director", "api-2 back");
        env.wait_finished(&[CALLER.to_owned()], Duration::from_secs(60))
            .await;
        env.stop_servers().await;
    });
    cluster.run()
}

async fn requests(api: ApiServer, env: Env, plan: Plan) {
    let trace = &env.trace;
    let rng = env.rng.fork();
    if !env
        .wait_mesh(&[CALLER, STEADY, CHURNING], Duration::from_secs(5))
        .await
    {
        return;
    }
    let mut mesh = MeshClient::for_env(&api, &env);
    // Listed in the directory is not yet connected: wait until both peers answer.
    for target in [STEADY, CHURNING] {
        let mut up = false;
        for _ in 0..50 {
            if mesh.api_echo(target).await.is_ok() {
                up = true;
                break;
            }
            sleep(Duration::from_millis(20)).await;
        }
        trace.check(CALLER, up, || format!("{target} never answered"));
    }
    let mut back_via_service = false;
    // Requests that fell wholly inside each phase, by kind (direct, service): every phase
    // must have seen both, or it passed unchecked.
    let mut seen: Vec<(Phase, bool)> = Vec::new();
    let mut service = rng.chance(50);
    while now() < plan.end {
        let start = now();
        // Alternating: each phase window holds several requests of each kind.
        service = !service;
        let answer = if service {
            mesh.service_echo(SERVICE).await
        } else {
            mesh.api_echo(CHURNING).await
        };
        let phase = plan.phase(start, now());
        let server = answer.words.first().cloned().unwrap_or_default();
        if phase != Phase::Moving && !seen.contains(&(phase, service)) {
            seen.push((phase, service));
        }
        match (&phase, service) {
            (Phase::Moving, _) => {
                let allowed = [ErrorCode::SUCCESS, ErrorCode::SERVER_NOT_FOUND];
                trace.check(CALLER, allowed.contains(&answer.code), || {
                    format!(
                        "request while the directory changed ended with {}",
                        answer.code
                    )
                });
            }
            (Phase::Removed, false) => {
                trace.check(
                    CALLER,
                    answer.code == ErrorCode::SERVER_NOT_FOUND
                        && answer.took <= Duration::from_millis(5),
                    || {
                        format!(
                            "request to the removed server ended with {} after {:?}",
                            answer.code, answer.took
                        )
                    },
                );
            }
            (Phase::Missing, false) => {
                trace.check(CALLER, answer.is_ok(), || {
                    format!(
                        "request to a live server within its entry's TTL ended with {}",
                        answer.code
                    )
                });
            }
            (Phase::Disabled | Phase::Missing | Phase::Removed, true) => {
                trace.check(CALLER, answer.is_ok() && server == STEADY, || {
                    format!(
                        "{phase:?}: service request went to {server:?} ({})",
                        answer.code
                    )
                });
            }
            (_, _) => {
                trace.check(CALLER, answer.is_ok(), || {
                    format!("{phase:?}: request failed with {}", answer.code)
                });
                if phase == Phase::Back && service && server == CHURNING {
                    back_via_service = true;
                }
            }
        }
        sleep(rng.millis(20, 80)).await;
    }
    for phase in [
        Phase::Running,
        Phase::Disabled,
        Phase::Missing,
        Phase::Removed,
        Phase::Back,
    ] {
        for service in [false, true] {
            trace.check(CALLER, seen.contains(&(phase, service)), || {
                let kind = if service { "service" } else { "direct" };
                format!("no {kind} request fell inside the {phase:?} phase: it went unchecked")
            });
        }
    }
    trace.check(CALLER, back_via_service, || {
        "service routing never chose api-2 again".into()
    });
    mesh.check_queues();
}
