//! Separate OS processes (a Play node and an API node) that find each other through a real
//! Redis: an HTTP call creates a stage, a client joins it and echoes; a killed Play node fails
//! API calls fast, and a restarted one serves again without restarting the API node.
//!
//! Needs a Redis server: `bash ci/redis.sh` starts one (the test command runs it).

use std::time::{Duration, Instant};

mod common;

use common::nodes::{WAIT, fresh_prefix, start, start_with};
use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, ErrorCode, Packet};
use serde_json::Value;

/// `POST path` with a JSON body; returns the status code and the parsed body.
async fn post(http: &str, path: &str, body: &Value) -> (u16, Value) {
    common::http(http, "POST", path, Some(body)).await
}

/// Creates an `EchoRoom` over HTTP, retrying while the mesh is still connecting.
async fn create_stage(http: &str, stage_id: i64) -> Value {
    common::nodes::create_stage(http, "EchoRoom", stage_id).await
}

/// A connector logged in as `user` to `stage_id` on the Play node at `tcp`.
async fn joined(tcp: &str, stage_id: i64, user: &str) -> Connector {
    let (host, port) = tcp.rsplit_once(':').unwrap();
    let connector = Connector::new(ConnectorConfig::default());
    connector
        .connect(host, port.parse().unwrap(), stage_id, "EchoRoom")
        .await
        .unwrap();
    connector
        .authenticate(Packet::new("AuthenticateRequest", user.to_owned()))
        .await
        .unwrap();
    connector
}

async fn echo_through(tcp: &str, stage_id: i64, user: &str) {
    let connector = joined(tcp, stage_id, user).await;
    let echo = connector
        .request(Packet::new("Echo", "across processes"))
        .await
        .unwrap();
    assert_eq!(echo.payload, "across processes");
    connector.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_meet_through_redis_and_survive_a_play_restart() {
    let prefix = fresh_prefix();
    let play_bin = env!("CARGO_BIN_EXE_play-node");
    let api_bin = env!("CARGO_BIN_EXE_api-node");

    let mut play = start(play_bin, "play-1", &prefix);
    let api = start(api_bin, "api-1", &prefix);
    let http = api.endpoints["http"].as_str().unwrap().to_owned();
    let created = create_stage(&http, 7).await;
    assert_eq!(created["stage_id"], 7);
    echo_through(play.endpoints["tcp"].as_str().unwrap(), 7, "alice").await;

    // Kill the Play node: API calls fail fast with ServerNotFound (2), not a 30 s timeout.
    let _ = play.child.kill();
    let _ = play.child.wait();
    let body = serde_json::json!({"stage_type": "EchoRoom", "stage_id": 8});
    let started = Instant::now();
    let mut failed_fast = false;
    while started.elapsed() < Duration::from_secs(5) {
        let call = Instant::now();
        let (status, reply) = post(&http, "/api/stages", &body).await;
        assert_ne!(status, 200, "created a stage on a dead server");
        if reply["error_code"] == 2 && call.elapsed() < Duration::from_secs(2) {
            failed_fast = true;
            break;
        }
    }
    assert!(
        failed_fast,
        "API calls to the dead Play node did not fail fast with code 2"
    );
    drop(play);

    // Restart it (new ports, same id): the API node reconnects by itself.
    let play = start(play_bin, "play-1", &prefix);
    let created = create_stage(&http, 8).await;
    assert_eq!(created["stage_id"], 8);
    echo_through(play.endpoints["tcp"].as_str().unwrap(), 8, "bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_play_node_drains_on_sigterm_and_tells_its_clients() {
    let prefix = fresh_prefix();
    let drain = [("PLAYHOUSE_DRAIN_SECS", "3")];
    let mut play = start_with(env!("CARGO_BIN_EXE_play-node"), "play-1", &prefix, &drain);
    let api = start(env!("CARGO_BIN_EXE_api-node"), "api-1", &prefix);
    let http = api.endpoints["http"].as_str().unwrap().to_owned();
    create_stage(&http, 7).await;
    let tcp = play.endpoints["tcp"].as_str().unwrap().to_owned();
    let player = joined(&tcp, 7, "carol").await;

    play.terminate();
    // Draining: a new stage there is refused with SERVER_DRAINING (24)... (a fresh id each
    // time: a stage created before the signal arrived would just exist)
    let started = Instant::now();
    for stage_id in 8.. {
        let body = serde_json::json!({"stage_type": "EchoRoom", "stage_id": stage_id});
        let (_, reply) = post(&http, "/api/stages", &body).await;
        if reply["error_code"] == 24 {
            break;
        }
        assert!(started.elapsed() < WAIT, "no SERVER_DRAINING: {reply}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...while the stage it holds plays on.
    let echo = player
        .request(Packet::new("Echo", "mid-drain"))
        .await
        .unwrap();
    assert_eq!(echo.payload, "mid-drain");

    // At the deadline the stage closes; the player is told why, and the process exits.
    let status = play.exits(WAIT).await;
    assert!(status.success(), "{status}");
    let after = player.request(Packet::new("Echo", "too late")).await;
    match after {
        Err(ConnectorError::Closed { code }) => assert_eq!(code, ErrorCode::STAGE_DRAINED),
        other => panic!("expected Closed(STAGE_DRAINED), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_play_node_drains_on_post_drain() {
    let prefix = fresh_prefix();
    let token = [("PLAYHOUSE_ADMIN_TOKEN", "admin-test-token")];
    let mut play = start_with(env!("CARGO_BIN_EXE_play-node"), "play-1", &prefix, &token);
    let admin = play.endpoints["admin"].as_str().unwrap().to_owned();
    // An action without the token is refused, even on loopback.
    let (status, _) = common::http(&admin, "POST", "/drain?within_secs=5", None).await;
    assert_eq!(status, 401);
    let token = Some("admin-test-token");
    let drain = |path| common::http_as(&admin, "POST", path, None, token);
    let (status, _) = drain("/drain?within_secs=soon").await;
    assert_eq!(status, 400);
    let (status, reply) = drain("/drain?within_secs=5").await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply, serde_json::json!({"draining": true, "stages": 0}));
    // Nothing to wait for: it stops at once.
    let status = play.exits(WAIT).await;
    assert!(status.success(), "{status}");
}
