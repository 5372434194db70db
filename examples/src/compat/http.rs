//! The original test server's HTTP API (camelCase JSON), served next to the Play server's
//! WebSocket endpoint on the same port:
//!
//! * `GET /api/health` → `{"status":"healthy","serverId":"play-1"}`
//! * `POST /api/stages` `{"stageType","stageId"}` → `{"success","stageId","replyPayloadId"}`;
//!   an existing stage (or a refused creation) is `success: false`, status 200.
//! * `POST /api/stages/get-or-create` → `{"success","isCreated","stageId","replyPayloadId"}`
//! * `POST /api/shutdown[/play|/api]` → `{"success":true,"target","signaled"}`, then the
//!   process stops.
//!
//! Mesh failures (server not found, timeout) are `500 {"error": ".."}`, as the original's
//! exceptions are.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use playhouse::{ApiSender, ErrorCode, MeshError, Packet};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::proto::{CreateStagePayload, CreateStageReply};

/// What the handlers share.
#[derive(Clone, Debug)]
pub(super) struct App {
    pub(super) api: ApiSender,
    /// The Play server stages are created on, and whose id `/api/health` reports.
    pub(super) play_id: &'static str,
    pub(super) shutdown: CancellationToken,
}

/// The JSON body of both stage endpoints. `stageId` is a `ushort` in the original.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StageRequest {
    stage_type: String,
    stage_id: u16,
}

/// The API routes, with `App` as state.
pub(super) fn routes(app: App) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/stages", post(create))
        .route("/api/stages/get-or-create", post(get_or_create))
        .route("/api/shutdown", post(|s| shutdown(s, "all")))
        .route("/api/shutdown/play", post(|s| shutdown(s, "play")))
        .route("/api/shutdown/api", post(|s| shutdown(s, "api")))
        .with_state(Arc::new(app))
}

async fn health(State(app): State<Arc<App>>) -> Response {
    Json(json!({ "status": "healthy", "serverId": app.play_id })).into_response()
}

/// The payload handed to `on_create`: the original always sends 10 players.
fn creation_packet(stage_type: &str) -> Packet {
    Packet::from_message(&CreateStagePayload {
        stage_name: stage_type.to_owned(),
        max_players: 10,
    })
}

/// `"StageName:MaxPlayers"` from `on_create`'s reply, when it has one.
fn reply_payload_id(reply: &Packet) -> Option<String> {
    if reply.payload.is_empty() {
        return None;
    }
    let reply = reply.parse::<CreateStageReply>().ok()?;
    Some(format!(
        "{}:{}",
        reply.received_stage_name, reply.received_max_players
    ))
}

/// Codes the original reports as `success: false` rather than as an exception.
fn is_refusal(error: &MeshError) -> bool {
    matches!(
        error.code(),
        ErrorCode::STAGE_ALREADY_EXISTS
            | ErrorCode::STAGE_CREATION_FAILED
            | ErrorCode::INVALID_STAGE_TYPE
    )
}

fn exception(error: &MeshError) -> Response {
    let body = json!({ "error": error.to_string(), "errorCode": error.code().0 });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

async fn create(State(app): State<Arc<App>>, Json(request): Json<StageRequest>) -> Response {
    let stage_id = i64::from(request.stage_id);
    let created = app
        .api
        .create_stage(
            app.play_id,
            &request.stage_type,
            stage_id,
            creation_packet(&request.stage_type),
        )
        .await;
    let (success, reply_payload_id) = match created {
        Ok(created) => (true, reply_payload_id(&created.reply)),
        Err(error) if is_refusal(&error) => (false, None),
        Err(error) => return exception(&error),
    };
    Json(json!({
        "success": success,
        "stageId": request.stage_id,
        "replyPayloadId": reply_payload_id,
    }))
    .into_response()
}

async fn get_or_create(State(app): State<Arc<App>>, Json(request): Json<StageRequest>) -> Response {
    let stage_id = i64::from(request.stage_id);
    let result = app
        .api
        .get_or_create_stage(
            app.play_id,
            &request.stage_type,
            stage_id,
            creation_packet(&request.stage_type),
        )
        .await;
    let (success, is_created, reply_payload_id) = match result {
        Ok(result) if result.is_created => (true, true, reply_payload_id(&result.reply)),
        Ok(_) => (true, false, None),
        Err(error) if is_refusal(&error) => (false, false, None),
        Err(error) => return exception(&error),
    };
    Json(json!({
        "success": success,
        "isCreated": is_created,
        "stageId": request.stage_id,
        "replyPayloadId": reply_payload_id,
    }))
    .into_response()
}

async fn shutdown(State(app): State<Arc<App>>, target: &'static str) -> Response {
    let signaled = !app.shutdown.is_cancelled();
    app.shutdown.cancel();
    Json(json!({ "success": true, "target": target, "signaled": signaled })).into_response()
}
