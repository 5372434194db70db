//! Request timeout on a held link.
//!
//! The API server's link to the Play server is held (segments wait in the network, the
//! connection stays up): mesh requests fail with `RequestTimeout` after the mesh timeout;
//! once released, each held request is answered late, and each late reply is discarded and
//! counted, never completing a newer request; the request cache ends empty. The same on a
//! client link: the connector's request times out, its late reply is dropped, the
//! connection carries on.

use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, ErrorCode};

use crate::client::SimClient;
use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, expect_no_tasks, sleep, wait_until};
use crate::cluster::timing::{Network, Timing};
use crate::mesh_client::MeshClient;
use crate::trace::now;

const PLAY: &str = "play-1";
const API: &str = "api-1";
const CLIENT: &str = "client-1";

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    // The hold outlasts several request timeouts but not the link's heartbeat timeout: the
    // connection is slow, not dead (past the heartbeat timeout see `api_partition`).
    let defaults = Timing::default();
    let timing = Timing {
        mesh_request_timeout: Duration::from_secs(1),
        mesh_heartbeat_timeout: Duration::from_secs(5),
        ..defaults
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

async fn mesh_side(api: ApiServer, env: Env) {
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
    for _ in 0..rng.range(1..4) {
        let answer = mesh.echo(PLAY, 1).await;
        trace.check(API, answer.is_ok(), || {
            format!("echo before the hold failed: {}", answer.code)
        });
    }

    sleep(rng.millis(0, 200)).await;
    turmoil::hold(API, PLAY);
    trace.record(API, "hold api-1 <-> play-1");
    let timeout = env.timing.mesh_request_timeout;
    let mut held = 0;
    for _ in 0..rng.range(1..4) {
        let answers = if rng.chance(50) {
            vec![mesh.echo(PLAY, 1).await]
        } else {
            mesh.echo_pipelined(PLAY, 1, rng.range(2..4) as usize).await
        };
        for answer in answers {
            held += 1;
            trace.check(API, answer.code == ErrorCode::REQUEST_TIMEOUT, || {
                format!(
                    "held request ended with {} instead of RequestTimeout",
                    answer.code
                )
            });
            trace.check(
                API,
                answer.took >= timeout && answer.took < timeout + Duration::from_millis(20),
                || {
                    format!(
                        "held request timed out after {:?}, not {timeout:?}",
                        answer.took
                    )
                },
            );
        }
    }
    sleep(rng.millis(0, 300)).await;
    turmoil::release(API, PLAY);
    trace.record(API, "release api-1 <-> play-1");

    let node = api.mesh().clone();
    let answered = wait_until(Duration::from_secs(2), || node.late_replies() >= held).await;
    let late = node.late_replies();
    trace.check(API, answered && late == held, || {
        format!("{late} late replies for {held} held requests")
    });
    trace.check(API, node.pending_requests() == 0, || {
        format!(
            "{} requests pending after the late replies",
            node.pending_requests()
        )
    });
    for _ in 0..rng.range(2..5) {
        let answer = mesh.echo(PLAY, 1).await;
        trace.check(API, answer.is_ok(), || {
            format!("echo after release failed: {}", answer.code)
        });
    }
    let answers = mesh.echo_pipelined(PLAY, 1, 3).await;
    trace.check(API, answers.iter().all(|a| a.is_ok()), || {
        "pipelined echo after release failed".into()
    });
    mesh.check_queues();
}

async fn client_side(env: Env) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    let mut client = SimClient::new(&env, CLIENT, "alice", PLAY, 1);
    if !client
        .login_retrying(Duration::from_millis(200), Duration::from_secs(5))
        .await
    {
        trace.violation(CLIENT, "could not log in");
        env.finish(CLIENT);
        return;
    }
    for _ in 0..rng.range(1..4) {
        let op = client.op().await;
        trace.check(CLIENT, op.is_ok(), || {
            format!("op before the hold failed: {op:?}")
        });
    }

    // Hold shorter than the heartbeat timeout: the connection must survive it.
    let timeout = Duration::from_millis(300);
    turmoil::hold(CLIENT, PLAY);
    trace.record(CLIENT, "hold client-1 <-> play-1");
    let start = now();
    let op = client.op_within(timeout).await;
    let took = now() - start;
    trace.check(
        CLIENT,
        matches!(op, Err(playhouse_connector::ConnectorError::RequestTimeout)),
        || format!("held op ended with {op:?} instead of a timeout"),
    );
    trace.check(
        CLIENT,
        took >= timeout && took < timeout + Duration::from_millis(20),
        || format!("held op timed out after {took:?}, not {timeout:?}"),
    );
    sleep(rng.millis(100, 700)).await;
    turmoil::release(CLIENT, PLAY);
    trace.record(CLIENT, "release client-1 <-> play-1");

    let connector = client.connector().clone();
    let settled = wait_until(Duration::from_secs(1), || connector.pending_requests() == 0).await;
    trace.check(CLIENT, settled, || {
        "late reply left a request pending".into()
    });
    trace.check(CLIENT, connector.is_connected(), || {
        "connection lost to a short hold".into()
    });
    for _ in 0..rng.range(1..4) {
        let op = client.op().await;
        trace.check(CLIENT, op.is_ok(), || {
            format!("op after release failed: {op:?}")
        });
    }
    client.ops_pipelined(3).await;
    client.verify_ops().await;
    client.close().await;
    drop(client);
    expect_no_tasks(&env, CLIENT, Duration::from_secs(1)).await;
    env.finish(CLIENT);
}
