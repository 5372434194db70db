//! Requests in flight when their Play server crashes.
//!
//! A relay stage holds requests (it answers `Slow` ones seconds later): from an API server
//! (several at once) and from a client, all in flight when the Play server's machine dies
//! (no FIN, no RST). The mesh request timeout is 30 s, far beyond the run, so only the
//! heartbeats can end the API's requests: each must fail with `SERVER_NOT_FOUND` within the
//! heartbeat timeout of the crash (plus latencies), and requests while the server is known
//! down fail fast. The client's request ends by its connector's heartbeat timeout
//! (`Disconnected`), not later. After the restart the API recreates the stages: a new stage
//! incarnation answers, the client logs in again and plays in it.

use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, ErrorCode, MeshError, Packet};
use playhouse_connector::ConnectorError;

use crate::client::{SimClient, retire};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, HostFault, Workload, sleep};
use crate::cluster::timing::{Network, Timing};
use crate::relay_room::RELAY;
use crate::trace::now;

const PLAY: &str = "play-1";
const API: &str = "api-1";
const CLIENT: &str = "client-1";
/// The relay stage the API server asks.
const MESH_STAGE: i64 = 1;
/// The relay stage the client plays in.
const CLIENT_STAGE: i64 = 2;
/// Marks the stages created, before the crash and after the restart.
const READY: &str = "relay stages created";
const RECREATED: &str = "relay stages recreated";
/// A request to a server known down must fail at least this fast.
const FAST: Duration = Duration::from_millis(20);
/// How long after the restart requests must work again.
const RECOVERY: Duration = Duration::from_secs(3);
/// Requests the stage holds: answered long after the crash would have come.
const HOLD_MS: u64 = 20_000;

#[derive(Clone, Copy, Debug)]
struct Plan {
    crash: Duration,
    restart: Duration,
    /// The network's slowest delivery.
    latency: Duration,
}

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let network = Network::default();
    let timing = Timing::long_mesh_requests();
    let mut cluster = Cluster::new(seed, network, timing);
    let rng = cluster.env.rng.fork();
    let crash = Duration::from_millis(1500) + rng.millis(0, 1000);
    let restart = crash + timing.mesh_heartbeat_timeout + rng.millis(300, 2000);
    let plan = Plan {
        crash,
        restart,
        latency: network.max_latency,
    };
    cluster.play(PLAY);
    let workload: Workload = Rc::new(move |api, env| Box::pin(mesh_side(api, env, plan)));
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    cluster.client(CLIENT, client_side(env.clone(), plan));
    cluster.client("director", async move {
        sleep(plan.crash.saturating_sub(now())).await;
        env.fault(HostFault::Crash(PLAY.to_owned())).await;
        sleep(plan.restart.saturating_sub(now())).await;
        env.fault(HostFault::Bounce(PLAY.to_owned())).await;
        env.wait_finished(
            &[API.to_owned(), CLIENT.to_owned()],
            Duration::from_secs(60),
        )
        .await;
        env.stop_servers().await;
    });
    cluster.run()
}

fn words(packet: &Packet) -> Vec<String> {
    String::from_utf8_lossy(&packet.payload)
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// Creates both relay stages; the first one's incarnation.
async fn create_stages(api: &ApiServer, env: &Env) -> Option<String> {
    let sender = api.sender();
    let mut incarnation = None;
    for stage in [MESH_STAGE, CLIENT_STAGE] {
        let created = sender
            .create_stage(PLAY, RELAY, stage, Packet::empty("Create"))
            .await;
        env.trace.record(
            API,
            format_args!("create {PLAY}/{stage} -> {:?}", created.as_ref().err()),
        );
        match created {
            Ok(created) if incarnation.is_none() => {
                incarnation = Some(String::from_utf8_lossy(&created.reply.payload).into_owned());
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    incarnation
}

async fn mesh_side(api: ApiServer, env: Env, plan: Plan) {
    let trace = &env.trace;
    let rng = env.rng.fork();
    if !env.wait_mesh(&[PLAY, API], Duration::from_secs(5)).await {
        return;
    }
    let Some(first) = create_stages(&api, &env).await else {
        trace.violation(API, "relay stages not created");
        return;
    };
    env.finish(READY);
    let sender = api.sender();
    let noticed_by = plan.crash + env.timing.mesh_heartbeat_timeout + plan.latency * 2;
    // In flight at the crash: several held requests at once.
    sleep(plan.crash.saturating_sub(now() + rng.millis(50, 400))).await;
    let held = rng.range(1..4);
    let requests = (0..held).map(|n| {
        let packet = Packet::new("Slow", format!("{n} {HOLD_MS}"));
        sender.request_to_stage(PLAY, MESH_STAGE, packet)
    });
    let results = futures_util::future::join_all(requests).await;
    let ended = now();
    for result in results {
        let code = result.err().map_or(ErrorCode::SUCCESS, |e| e.code());
        trace.record(API, format_args!("held request ended with {code}"));
        trace.check(API, code == ErrorCode::SERVER_NOT_FOUND, || {
            format!("a request in flight at the crash ended with {code}, not SERVER_NOT_FOUND")
        });
    }
    trace.check(API, ended >= plan.crash && ended <= noticed_by, || {
        format!(
            "requests in flight ended {}ms after the crash (limit {}ms)",
            ended.as_millis() as i128 - plan.crash.as_millis() as i128,
            (noticed_by - plan.crash).as_millis()
        )
    });
    // Known down: fail fast.
    let mut n = 100;
    while now() + Duration::from_millis(100) < plan.restart {
        n += 1;
        let start = now();
        let result = sender
            .request_to_stage(PLAY, MESH_STAGE, Packet::new("Echo", n.to_string()))
            .await;
        let took = now() - start;
        let code = result.err().map_or(ErrorCode::SUCCESS, |e| e.code());
        if now() <= plan.restart {
            trace.check(
                API,
                code == ErrorCode::SERVER_NOT_FOUND && took <= FAST,
                || {
                    format!(
                        "request to the crashed server ended with {code} in {}ms",
                        took.as_millis()
                    )
                },
            );
        }
        sleep(rng.millis(20, 150)).await;
    }
    // After the restart: recreate the stages (retrying until the server is back).
    sleep(plan.restart.saturating_sub(now())).await;
    let deadline = now() + RECOVERY;
    let mut second = None;
    while second.is_none() && now() < deadline {
        second = create_stages(&api, &env).await;
        if second.is_none() {
            sleep(Duration::from_millis(100)).await;
        }
    }
    let recreated = second.is_some();
    if !trace.check(API, recreated, || {
        format!("stages not recreated within {RECOVERY:?} of the restart")
    }) {
        env.finish(RECREATED);
        return;
    }
    let second = second.unwrap_or_default();
    trace.check(API, second != first, || {
        format!("the restarted server answered as the old incarnation {first}")
    });
    env.finish(RECREATED);
    for _ in 0..rng.range(1..4) {
        n += 1;
        let result = sender
            .request_to_stage(PLAY, MESH_STAGE, Packet::new("Echo", n.to_string()))
            .await;
        let ok = result
            .as_ref()
            .is_ok_and(|reply| words(reply) == [n.to_string(), second.clone()]);
        trace.check(API, ok, || {
            format!(
                "echo {n} after the restart: {:?}",
                result.as_ref().map(words).map_err(MeshError::code)
            )
        });
    }
    let node = api.mesh();
    trace.check(API, node.pending_requests() == 0, || {
        format!("{} mesh requests still pending", node.pending_requests())
    });
}

async fn client_side(env: Env, plan: Plan) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    let mut client = SimClient::new(&env, CLIENT, "alice", PLAY, CLIENT_STAGE).of_type(RELAY);
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
    let pong = connector.request(Packet::new("Ping", "1")).await;
    let first = pong.as_ref().map(words).unwrap_or_default();
    trace.check(CLIENT, first.len() == 2 && first[0] == "1", || {
        format!("ping before the crash: {pong:?}")
    });
    // In flight at the crash: ends when the connector notices the silence.
    sleep(plan.crash.saturating_sub(now() + rng.millis(50, 400))).await;
    let timeout = Duration::from_secs(10);
    let held = connector
        .request_with_timeout(Packet::new("Slow", format!("2 {HOLD_MS}")), timeout)
        .await;
    let ended = now();
    trace.record(CLIENT, format_args!("held request ended with {held:?}"));
    trace.check(
        CLIENT,
        matches!(held, Err(ConnectorError::Disconnected)),
        || format!("a request in flight at the crash ended with {held:?}, not Disconnected"),
    );
    let limit = plan.crash + env.timing.heartbeat_timeout + plan.latency * 2;
    trace.check(CLIENT, ended <= limit, || {
        format!(
            "the request in flight ended {}ms after the crash (limit {}ms)",
            ended.as_millis() as i128 - plan.crash.as_millis() as i128,
            (limit - plan.crash).as_millis()
        )
    });
    // After the restart, in the new incarnation.
    if !client
        .join_when_ready(
            &env,
            RECREATED,
            plan.restart + RECOVERY * 2,
            "could not log in after the restart",
        )
        .await
    {
        return;
    }
    let pong = connector.request(Packet::new("Ping", "3")).await;
    let second = pong.as_ref().map(words).unwrap_or_default();
    trace.check(
        CLIENT,
        second.len() == 2 && second[0] == "3" && second.get(1) != first.get(1),
        || format!("ping after the restart: {pong:?}, before: {first:?}"),
    );
    retire(&env, client).await;
}
