//! ApiToPlay: API servers create stages on Play servers — over api-1's HTTP front door and
//! through an API handler's sender (create, get-or-create new and existing, the callback
//! form). The client sees HTTP replies, relayed handler replies, and the created stage itself
//! (joining it, asking what its `on_create` got).

use playhouse::ErrorCode;
use serde_json::{Value, json};

use crate::check::TestResult;
use crate::client;
use crate::context::TestCtx;
use crate::proto::{
    StageStateReply, StageStateRequest, TriggerCreateStageReply, TriggerCreateStageRequest,
    TriggerGetOrCreateStageReply, TriggerGetOrCreateStageRequest,
};
use crate::runner::{Category, TestCase};
use crate::servers::{API_1, API_2, PLAY_2, TEST_STAGE};
use crate::{ensure, ensure_eq};

const USER: &str = "a2p_user";

/// The ApiToPlay category (stage ids 19000..).
pub(super) fn category() -> Category {
    Category {
        name: "ApiToPlay",
        base: 19_000,
        tests: vec![
            TestCase::new("Http_CreateStage", |t| Box::pin(http_create(t))),
            TestCase::new("Http_GetOrCreate_New", |t| {
                Box::pin(http_get_or_create_new(t))
            }),
            TestCase::new("Http_GetOrCreate_Existing", |t| {
                Box::pin(http_get_or_create_existing(t))
            }),
            TestCase::new("Http_Errors_AreNon200", |t| Box::pin(http_errors(t))),
            TestCase::new("ApiSender_CreateStage", |t| Box::pin(sender_create(t))),
            TestCase::new("ApiSender_GetOrCreate_CallbackForm", |t| {
                Box::pin(sender_get_or_create_callback(t))
            }),
        ],
    }
}

fn body(stage_id: i64) -> Value {
    json!({ "stage_type": TEST_STAGE, "stage_id": stage_id })
}

/// A stage's own report of how it was created, seen by a client that joins it.
async fn creation_of(
    t: &TestCtx,
    addr: std::net::SocketAddr,
    offset: i64,
    user: &str,
) -> Result<StageStateReply, String> {
    let (connector, _tap) = t.joined_at(addr, offset, user).await?;
    let state: StageStateReply = client::request(&connector, &StageStateRequest {}).await?;
    connector.disconnect().await;
    Ok(state)
}

async fn http_create(t: TestCtx) -> TestResult {
    let stage_id = t.stage_id(1);
    let (status, reply) =
        client::http_post_json(t.http_addr(), "/api/stages", &body(stage_id)).await?;
    ensure_eq!(status, 200, "status of POST /api/stages ({reply})");
    ensure_eq!(reply["stage_id"].as_i64(), Some(stage_id), "stage_id");
    ensure_eq!(
        reply["reply_msg_id"].as_str(),
        Some("StageCreatedReply"),
        "what on_create returned"
    );
    let state = creation_of(&t, t.addr(), 1, "a2p_http_joiner").await?;
    ensure_eq!(
        state.create_msg_id.as_str(),
        "CreateStagePayload",
        "the packet on_create got"
    );
    ensure_eq!(state.created_by.as_str(), "http", "creator");
    ensure_eq!(
        state.callbacks.first().map(String::as_str),
        Some("on_create"),
        "first callback"
    );
    Ok(())
}

async fn http_get_or_create_new(t: TestCtx) -> TestResult {
    let stage_id = t.stage_id(2);
    let (status, reply) =
        client::http_post_json(t.http_addr(), "/api/stages/get-or-create", &body(stage_id)).await?;
    ensure_eq!(status, 200, "status ({reply})");
    ensure_eq!(reply["stage_id"].as_i64(), Some(stage_id), "stage_id");
    ensure_eq!(reply["is_created"].as_bool(), Some(true), "is_created");
    Ok(())
}

async fn http_get_or_create_existing(t: TestCtx) -> TestResult {
    // Created by HTTP first, then asked for again.
    let stage_id = t.stage_id(3);
    let (status, _) = client::http_post_json(t.http_addr(), "/api/stages", &body(stage_id)).await?;
    ensure_eq!(status, 200, "status of the first POST");
    let (status, reply) =
        client::http_post_json(t.http_addr(), "/api/stages/get-or-create", &body(stage_id)).await?;
    ensure_eq!(status, 200, "status ({reply})");
    ensure_eq!(reply["stage_id"].as_i64(), Some(stage_id), "stage_id");
    ensure_eq!(reply["is_created"].as_bool(), Some(false), "is_created");
    // A stage a client's authentication created counts as existing too.
    let (joined, _tap) = t.joined(4, "a2p_existing").await?;
    let (status, reply) = client::http_post_json(
        t.http_addr(),
        "/api/stages/get-or-create",
        &body(t.stage_id(4)),
    )
    .await?;
    joined.disconnect().await;
    ensure_eq!(status, 200, "status ({reply})");
    ensure_eq!(
        reply["is_created"].as_bool(),
        Some(false),
        "is_created (client-created)"
    );
    Ok(())
}

async fn http_errors(t: TestCtx) -> TestResult {
    let stage_id = t.stage_id(5);
    let (status, _) = client::http_post_json(t.http_addr(), "/api/stages", &body(stage_id)).await?;
    ensure_eq!(status, 200, "status of the first POST");
    let (status, reply) =
        client::http_post_json(t.http_addr(), "/api/stages", &body(stage_id)).await?;
    ensure_eq!(status, 409, "status of a second create ({reply})");
    ensure_eq!(
        reply["error_code"].as_u64(),
        Some(u64::from(ErrorCode::STAGE_ALREADY_EXISTS.0)),
        "error_code"
    );
    let bad_type = json!({ "stage_type": "NoSuchStage", "stage_id": t.stage_id(6) });
    let (status, reply) = client::http_post_json(t.http_addr(), "/api/stages", &bad_type).await?;
    ensure_eq!(status, 400, "status for an unknown stage type ({reply})");
    ensure_eq!(
        reply["error_code"].as_u64(),
        Some(u64::from(ErrorCode::INVALID_STAGE_TYPE.0)),
        "error_code"
    );
    let (status, _) = client::http_post(t.http_addr(), "/api/stages", r#"{"stage": 1}"#).await?;
    ensure!(
        (400..500).contains(&status),
        "a body without stage_type got status {status}"
    );
    Ok(())
}

async fn sender_create(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let request = TriggerCreateStageRequest {
        via_api_id: API_2.into(),
        play_id: PLAY_2.into(),
        stage_type: TEST_STAGE.into(),
        stage_id: t.stage_id(7),
    };
    let reply: TriggerCreateStageReply = client::request(&connector, &request).await?;
    ensure!(reply.success, "TriggerCreateStageReply.success is false");
    ensure_eq!(reply.stage_id, t.stage_id(7), "stage_id");
    ensure_eq!(
        reply.reply_msg_id.as_str(),
        "StageCreatedReply",
        "on_create's reply"
    );
    client::request_fails(&connector, &request, ErrorCode::STAGE_ALREADY_EXISTS).await?;
    let state = creation_of(&t, t.play2_addr(), 7, "a2p_sender_joiner").await?;
    ensure_eq!(state.created_by.as_str(), API_2, "creator");
    ensure_eq!(
        state.create_msg_id.as_str(),
        "CreateStagePayload",
        "create packet"
    );
    Ok(())
}

async fn sender_get_or_create_callback(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let request = |use_callback| TriggerGetOrCreateStageRequest {
        via_api_id: API_1.into(),
        play_id: PLAY_2.into(),
        stage_type: TEST_STAGE.into(),
        stage_id: t.stage_id(8),
        use_callback,
    };
    let first: TriggerGetOrCreateStageReply = client::request(&connector, &request(true)).await?;
    ensure!(first.is_created, "the first get-or-create did not create");
    ensure!(
        first.answered_from_callback,
        "not answered from a callback on the stage loop"
    );
    ensure_eq!(first.stage_id, t.stage_id(8), "stage_id");
    let again: TriggerGetOrCreateStageReply = client::request(&connector, &request(true)).await?;
    ensure!(!again.is_created, "the second get-or-create created again");
    ensure!(
        again.answered_from_callback,
        "second: not answered from a callback"
    );
    let awaited: TriggerGetOrCreateStageReply =
        client::request(&connector, &request(false)).await?;
    ensure!(
        !awaited.is_created,
        "the awaited get-or-create created again"
    );
    ensure!(
        !awaited.answered_from_callback,
        "the awaited form claims a callback"
    );
    Ok(())
}
