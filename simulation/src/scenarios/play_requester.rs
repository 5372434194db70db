//! A Play server as the mesh requester: a stage asks other servers on its client's behalf.
//!
//! A client plays in a relay stage on `play-1` and asks it, over and over, to request an API
//! server (`api-1`) and a stage on another Play server (`play-2`); the stage runs each
//! request in an async block and answers the client with the outcome. Then the network
//! between `play-1` and one of the two targets (the seed picks) goes silent, both ways, with
//! requests held by the target in flight; later it is repaired. The mesh request timeout is
//! 30 s, far beyond the run, so only the heartbeats can end the held requests.
//!
//! Checked from the client: every ask is answered exactly once, with its own reply; before
//! the cut every ask succeeds; the held asks fail with `SERVER_NOT_FOUND` within the
//! heartbeat timeout of the cut (plus latencies); once the node has noticed, asks to the
//! target fail fast with `SERVER_NOT_FOUND`, and asks to the other target keep succeeding;
//! the stage answers pings promptly all along (its loop is never blocked by a pending
//! request); after the repair, asks to the target succeed again within a bound.

use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, ErrorCode, Packet};
use playhouse_connector::Connector;

use crate::app::STAGE_TYPE;
use crate::client::{SimClient, retire};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, sleep};
use crate::cluster::timing::{Network, Timing};
use crate::relay_room::RELAY;
use crate::trace::{Trace, now};

const PLAY: &str = "play-1";
const OTHER_PLAY: &str = "play-2";
const API: &str = "api-1";
const CLIENT: &str = "client-1";
/// The relay stage on `play-1` the client plays in.
const RELAY_STAGE: i64 = 1;
/// The stage on `play-2` the relay asks.
const TARGET_STAGE: i64 = 7;
/// Marks the stages created.
const READY: &str = "stages created";
/// Asks held by the target when the network goes silent.
const HELD: u64 = 2;
/// An ask to a peer known down must fail at least this fast (measured by the stage).
const FAST: Duration = Duration::from_millis(20);
/// How long after the repair asks must work again.
const RECOVERY: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Which target goes silent: `api-1` or `play-2`.
    target: &'static str,
    cut: Duration,
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
    let target = *rng.pick(&[API, OTHER_PLAY]);
    let cut = Duration::from_millis(1500) + rng.millis(0, 1000);
    let heal = cut + timing.mesh_heartbeat_timeout + rng.millis(200, 2000);
    let plan = Plan {
        target,
        cut,
        heal,
        end: heal + RECOVERY + Duration::from_millis(500),
        latency: network.max_latency,
    };
    cluster.play(PLAY);
    cluster.play(OTHER_PLAY);
    let workload: Workload = Rc::new(|api, env| Box::pin(setup(api, env)));
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    cluster.client(CLIENT, client_side(env.clone(), plan));
    cluster.client("director", async move {
        sleep(plan.cut.saturating_sub(now())).await;
        turmoil::partition(PLAY, plan.target);
        env.trace.record(
            "director",
            format_args!("silent {PLAY} <-> {}", plan.target),
        );
        sleep(plan.heal.saturating_sub(now())).await;
        turmoil::repair(PLAY, plan.target);
        env.trace.record(
            "director",
            format_args!("repair {PLAY} <-> {}", plan.target),
        );
        env.wait_finished(
            &[API.to_owned(), CLIENT.to_owned()],
            Duration::from_secs(60),
        )
        .await;
        env.stop_servers().await;
    });
    cluster.run()
}

/// Creates the relay stage and the stage it asks on `play-2`.
async fn setup(api: ApiServer, env: Env) {
    let trace = &env.trace;
    if !env
        .wait_mesh(&[PLAY, OTHER_PLAY, API], Duration::from_secs(5))
        .await
    {
        return;
    }
    let sender = api.sender();
    let relay = sender
        .create_stage(PLAY, RELAY, RELAY_STAGE, Packet::empty("Create"))
        .await;
    trace.check(API, relay.is_ok(), || {
        format!("relay stage not created: {:?}", relay.err())
    });
    let target = sender
        .create_stage(
            OTHER_PLAY,
            STAGE_TYPE,
            TARGET_STAGE,
            Packet::empty("Create"),
        )
        .await;
    trace.check(API, target.is_ok(), || {
        format!("target stage not created: {:?}", target.err())
    });
    env.finish(READY);
}

/// One ask's outcome as the client saw it.
struct Asked {
    code: ErrorCode,
    /// How long the stage's request took (measured by the stage).
    took: Duration,
    /// When the client sent the ask and got the answer.
    start: Duration,
    end: Duration,
}

/// Asks the relay stage to request `server` (`-` stage: an API server); checks the answer is
/// the ask's own, and that a successful reply answers the request the stage made.
async fn ask(
    trace: &Trace,
    connector: &Connector,
    n: u64,
    server: &str,
    msg: &str,
) -> Option<Asked> {
    let body = if server == API {
        format!("{n} {server} - {msg}")
    } else {
        format!("{n} {server} {TARGET_STAGE} {msg}")
    };
    let start = now();
    let result = connector
        .request_with_timeout(Packet::new("Ask", body.clone()), Duration::from_secs(5))
        .await;
    let end = now();
    let reply = match result {
        Ok(reply) => reply,
        Err(error) => {
            trace.violation(CLIENT, format_args!("ask {body} failed: {error}"));
            return None;
        }
    };
    let text = String::from_utf8_lossy(&reply.payload).into_owned();
    trace.record(CLIENT, format_args!("ask {body} -> {text}"));
    let w: Vec<&str> = text.split(' ').collect();
    let own = w.first() == Some(&n.to_string().as_str());
    if !trace.check(CLIENT, own && w.len() >= 3, || {
        format!("ask {n} answered with another ask's reply: {text}")
    }) {
        return None;
    }
    let code = ErrorCode(w[1].parse().unwrap_or(u16::MAX));
    let took = Duration::from_millis(w[2].parse().unwrap_or(u64::MAX));
    if code.is_success() {
        // ApiEcho: "<server> <n>"; Echo: "<n> <incarnation>".
        let answered = if server == API {
            w.get(4) == Some(&n.to_string().as_str())
        } else {
            w.get(3) == Some(&n.to_string().as_str())
        };
        trace.check(CLIENT, answered, || {
            format!("ask {n}: the stage's request got another request's reply: {text}")
        });
    }
    Some(Asked {
        code,
        took,
        start,
        end,
    })
}

async fn client_side(env: Env, plan: Plan) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    let mut client = SimClient::new(&env, CLIENT, "alice", PLAY, RELAY_STAGE).of_type(RELAY);
    if !client
        .join_when_ready(
            &env,
            READY,
            Duration::from_secs(10),
            "could not log in to the relay stage",
        )
        .await
    {
        return;
    }
    let connector = client.connector().clone();
    let other = if plan.target == API { OTHER_PLAY } else { API };
    let echo = |server: &str| if server == API { "ApiEcho" } else { "Echo" };
    // Latest moment the node may notice (see `silent_peer`), and the answer reach the client.
    let noticed_by = plan.cut + env.timing.mesh_heartbeat_timeout + plan.latency * 2;
    let held = async {
        sleep(plan.cut.saturating_sub(now() + Duration::from_millis(200))).await;
        let msg = if plan.target == API {
            "ApiSlow 4000"
        } else {
            "Hold"
        };
        let asks = (0..HELD).map(|i| ask(&trace, &connector, 1000 + i, plan.target, msg));
        let results = futures_util::future::join_all(asks).await;
        for asked in results.into_iter().flatten() {
            trace.check(CLIENT, asked.code == ErrorCode::SERVER_NOT_FOUND, || {
                format!("a held ask ended with {}, not SERVER_NOT_FOUND", asked.code)
            });
            trace.check(
                CLIENT,
                asked.end >= plan.cut && asked.end <= noticed_by + plan.latency,
                || {
                    format!(
                        "a held ask ended {}ms after the cut (limit {}ms)",
                        asked.end.as_millis() as i128 - plan.cut.as_millis() as i128,
                        (noticed_by + plan.latency - plan.cut).as_millis()
                    )
                },
            );
        }
    };
    let asks = async {
        let mut n = 0;
        let mut recovered_at = None;
        while now() < plan.end {
            n += 1;
            if let Some(asked) = ask(&trace, &connector, n, plan.target, echo(plan.target)).await {
                let Asked {
                    code,
                    took,
                    start,
                    end,
                } = asked;
                if end < plan.cut {
                    trace.check(CLIENT, code.is_success(), || {
                        format!("ask {n} before the cut failed: {code}")
                    });
                } else if start >= noticed_by && end <= plan.heal {
                    trace.check(
                        CLIENT,
                        code == ErrorCode::SERVER_NOT_FOUND && took <= FAST,
                        || {
                            format!(
                                "ask {n} to a peer known down ended with {code} in {}ms",
                                took.as_millis()
                            )
                        },
                    );
                } else if start >= plan.cut && end <= plan.heal {
                    trace.check(CLIENT, code == ErrorCode::SERVER_NOT_FOUND, || {
                        format!("ask {n} during the cut ended with {code}")
                    });
                } else if start >= plan.heal && code.is_success() && recovered_at.is_none() {
                    recovered_at = Some(end);
                    trace.record(
                        CLIENT,
                        format_args!(
                            "recovered {}ms after the repair",
                            (end - plan.heal).as_millis()
                        ),
                    );
                }
            }
            n += 1;
            if let Some(asked) = ask(&trace, &connector, n, other, echo(other)).await {
                trace.check(CLIENT, asked.code.is_success(), || {
                    format!(
                        "ask {n} to {other}, still reachable, failed: {}",
                        asked.code
                    )
                });
            }
            sleep(rng.millis(50, 150)).await;
        }
        let recovery = recovered_at.map(|at| at - plan.heal);
        trace.check(CLIENT, recovery.is_some_and(|r| r <= RECOVERY), || {
            format!("not recovered within {RECOVERY:?} of the repair ({recovery:?})")
        });
    };
    // The stage answers at once while its own requests are pending.
    let pings = async {
        let rng = env.rng.fork();
        let mut n = 1_000_000;
        while now() < plan.end {
            n += 1;
            let start = now();
            let pong = connector.request(Packet::new("Ping", n.to_string())).await;
            let took = now() - start;
            let own = pong
                .as_ref()
                .is_ok_and(|p| p.payload.starts_with(format!("{n} ").as_bytes()));
            trace.check(CLIENT, own && took <= plan.latency * 2 + FAST, || {
                format!(
                    "ping {n} answered {pong:?} in {}ms: the stage loop was blocked",
                    took.as_millis()
                )
            });
            sleep(rng.millis(40, 120)).await;
        }
    };
    tokio::join!(held, asks, pings);
    retire(&env, client).await;
}
