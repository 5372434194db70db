//! A late reply arriving while a newer request is pending.
//!
//! A relay stage answers each `Slow` request after a stage-timer delay. Request A's delay
//! outlasts its timeout, so A fails with `RequestTimeout`; requests B (one, or several at
//! once) go out right after, with delays that put their replies after A's late one. A's
//! late reply must be discarded and counted while B is pending (`late_replies` has grown by
//! the time B ends), B must get B's own reply, and the request cache ends empty. The same on
//! a client connection: the connector's request A times out (`request_with_timeout`), B
//! pending on the same connection gets its own reply, A's reply surfaces nowhere (no push),
//! nothing stays pending, the connection carries on.

use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, ErrorCode, MeshError, Packet};
use playhouse_connector::ConnectorError;

use crate::client::{SimClient, retire};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, sleep};
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
/// Marks the client's stage created (the client must not create a default stage first).
const READY: &str = "relay stages created";
/// How late a timeout may fire.
const SLACK: Duration = Duration::from_millis(20);

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let timing = Timing {
        mesh_request_timeout: Duration::from_secs(1),
        ..Timing::default()
    };
    let mut cluster = Cluster::new(seed, Network::default(), timing);
    cluster.play(PLAY);
    let workload: Workload = Rc::new(|api, env| Box::pin(mesh_side(api, env)));
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    cluster.client(CLIENT, client_side(env.clone()));
    cluster.client("director", async move {
        env.wait_finished(
            &[API.to_owned(), CLIENT.to_owned()],
            Duration::from_secs(60),
        )
        .await;
        env.stop_servers().await;
    });
    cluster.run()
}

fn slow(n: u64, delay: Duration) -> Packet {
    Packet::new("Slow", format!("{n} {}", delay.as_millis()))
}

fn words(packet: &Packet) -> Vec<String> {
    String::from_utf8_lossy(&packet.payload)
        .split(' ')
        .map(str::to_owned)
        .collect()
}

async fn mesh_side(api: ApiServer, env: Env) {
    let trace = &env.trace;
    let rng = env.rng.fork();
    if !env.wait_mesh(&[PLAY, API], Duration::from_secs(5)).await {
        return;
    }
    let sender = api.sender();
    for stage in [MESH_STAGE, CLIENT_STAGE] {
        let created = sender
            .create_stage(PLAY, RELAY, stage, Packet::empty("Create"))
            .await;
        trace.check(API, created.is_ok(), || {
            format!("relay stage {stage} not created: {:?}", created.err())
        });
    }
    env.finish(READY);
    let node = api.mesh().clone();
    let timeout = node.request_timeout();
    let mut n = 0;
    let mut timed_out = 0;
    for round in 0..rng.range(2..5) {
        // A: answered `over` after its timeout.
        n += 1;
        let a = n;
        let over = rng.millis(50, 300);
        let start = now();
        let result = sender
            .request_to_stage(PLAY, MESH_STAGE, slow(a, timeout + over))
            .await;
        let took = now() - start;
        let code = result
            .as_ref()
            .err()
            .map_or(ErrorCode::SUCCESS, MeshError::code);
        trace.record(
            API,
            format_args!("A {a} -> {code} in {}ms", took.as_millis()),
        );
        trace.check(API, code == ErrorCode::REQUEST_TIMEOUT, || {
            format!("request {a} answered after its timeout ended with {code}")
        });
        trace.check(API, took >= timeout && took < timeout + SLACK, || {
            format!("request {a} timed out after {took:?}, not {timeout:?}")
        });
        timed_out += 1;
        // B: pending when A's reply comes back, answered after it.
        let count = if rng.chance(50) { 1 } else { rng.range(2..4) };
        let mut numbers = Vec::new();
        let mut requests = Vec::new();
        for _ in 0..count {
            n += 1;
            numbers.push(n);
            let delay = over + rng.millis(100, 400);
            requests.push(sender.request_to_stage(PLAY, MESH_STAGE, slow(n, delay)));
        }
        let results = futures_util::future::join_all(requests).await;
        let late = node.late_replies();
        for (b, result) in numbers.into_iter().zip(results) {
            match result {
                Ok(reply) => {
                    let w = words(&reply);
                    trace.record(API, format_args!("B {b} -> {}", w.join(" ")));
                    trace.check(API, w.first() == Some(&b.to_string()), || {
                        format!("request {b} completed by another request's reply: {w:?}")
                    });
                }
                Err(error) => trace.violation(
                    API,
                    format_args!("request {b} (pending under a late reply) failed: {error}"),
                ),
            }
        }
        trace.check(API, late == timed_out, || {
            format!(
                "round {round}: {late} late replies counted while the newer requests were \
                 pending, {timed_out} expected"
            )
        });
        sleep(rng.millis(0, 200)).await;
    }
    // Nothing else arrives late; the cache ends empty.
    sleep(timeout).await;
    let late = node.late_replies();
    trace.check(API, late == timed_out, || {
        format!("{late} late replies for {timed_out} timed-out requests")
    });
    trace.check(API, node.pending_requests() == 0, || {
        format!("{} mesh requests still pending", node.pending_requests())
    });
    trace.record(API, format_args!("late replies {late}"));
}

async fn client_side(env: Env) {
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
    let timeout = Duration::from_millis(400);
    let mut n = 0;
    for round in 0..rng.range(2..5) {
        n += 1;
        let a = n;
        let over = rng.millis(50, 250);
        let start = now();
        let result = connector
            .request_with_timeout(slow(a, timeout + over), timeout)
            .await;
        let took = now() - start;
        trace.record(CLIENT, format_args!("A {a} -> {result:?}"));
        trace.check(
            CLIENT,
            matches!(result, Err(ConnectorError::RequestTimeout)),
            || format!("request {a} answered after its timeout ended with {result:?}"),
        );
        trace.check(CLIENT, took >= timeout && took < timeout + SLACK, || {
            format!("request {a} timed out after {took:?}, not {timeout:?}")
        });
        let count = if rng.chance(50) { 1 } else { rng.range(2..4) };
        let mut numbers = Vec::new();
        let mut requests = Vec::new();
        for _ in 0..count {
            n += 1;
            numbers.push(n);
            let delay = over + rng.millis(100, 300);
            requests.push(connector.request(slow(n, delay)));
        }
        let results = futures_util::future::join_all(requests).await;
        for (b, result) in numbers.into_iter().zip(results) {
            match result {
                Ok(reply) => {
                    let w = words(&reply);
                    trace.record(CLIENT, format_args!("B {b} -> {}", w.join(" ")));
                    trace.check(CLIENT, w.first() == Some(&b.to_string()), || {
                        format!("request {b} completed by another request's reply: {w:?}")
                    });
                }
                Err(error) => trace.violation(
                    CLIENT,
                    format_args!(
                        "round {round}: request {b} (pending under a late reply) failed: {error}"
                    ),
                ),
            }
        }
        sleep(rng.millis(0, 200)).await;
    }
    sleep(timeout).await;
    trace.check(CLIENT, connector.pending_requests() == 0, || {
        format!(
            "{} requests pending after the late replies",
            connector.pending_requests()
        )
    });
    trace.check(CLIENT, connector.is_connected(), || {
        "connection lost to late replies".into()
    });
    let surfaced = client.pushes("SlowReply");
    trace.check(CLIENT, surfaced.is_empty(), || {
        format!("late replies surfaced as pushes: {surfaced:?}")
    });
    let pong = connector.request(Packet::new("Ping", "0")).await;
    trace.check(CLIENT, pong.is_ok(), || {
        format!("request after the late replies failed: {pong:?}")
    });
    retire(&env, client).await;
}
