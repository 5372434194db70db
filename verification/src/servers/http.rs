//! api-1's HTTP front door (axum): `POST /api/stages` and `POST /api/stages/get-or-create`
//! with JSON `{"stage_type": .., "stage_id": ..}` create stages on a Play server (play-1)
//! through the API server's sender.
//!
//! Replies: `200 {"stage_id": N, "reply_msg_id": ".."}` (create) and
//! `200 {"stage_id": N, "is_created": bool}` (get-or-create); a failure is a non-200 status
//! with `{"error_code": N, "error": ".."}` (409 StageAlreadyExists, 400 InvalidStageType or
//! a refused creation, 503 ServerNotFound, 504 RequestTimeout, 500 otherwise).

use std::io;
use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use playhouse::{ApiSender, ApiServer, ErrorCode, HttpLimits, MeshError, Packet};
use serde::Deserialize;
use serde_json::json;

use crate::proto::CreateStagePayload;

/// The JSON body of both endpoints.
#[derive(Debug, Deserialize)]
struct StageRequest {
    stage_type: String,
    stage_id: i64,
}

/// What the handlers share: the API server's sender, and the Play server stages go to.
#[derive(Clone, Debug)]
struct Front {
    api: ApiSender,
    play_id: &'static str,
}

/// Serves the endpoints on `addr` until `api` stops, under the default [`HttpLimits`],
/// creating stages on `play_id`; returns the bound address.
pub(super) async fn serve(
    api: &ApiServer,
    addr: &str,
    play_id: &'static str,
) -> io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/api/stages", post(create))
        .route("/api/stages/get-or-create", post(get_or_create))
        .with_state(Front {
            api: api.sender(),
            play_id,
        });
    let control = api.control();
    let stop = async move { control.stop_requested().await };
    tokio::spawn(playhouse::serve_http(
        listener,
        app,
        HttpLimits::default(),
        stop,
    ));
    tracing::info!(%local, "api-1 HTTP endpoint");
    Ok(local)
}

fn creation_packet() -> Packet {
    Packet::from_message(&CreateStagePayload {
        creator: "http".into(),
    })
}

async fn create(State(front): State<Front>, Json(body): Json<StageRequest>) -> Response {
    match front
        .api
        .create_stage(
            front.play_id,
            &body.stage_type,
            body.stage_id,
            creation_packet(),
        )
        .await
    {
        Ok(created) => Json(json!({
            "stage_id": created.stage_id,
            "reply_msg_id": created.reply.msg_id.to_string(),
        }))
        .into_response(),
        Err(error) => failure(&error),
    }
}

async fn get_or_create(State(front): State<Front>, Json(body): Json<StageRequest>) -> Response {
    match front
        .api
        .get_or_create_stage(
            front.play_id,
            &body.stage_type,
            body.stage_id,
            creation_packet(),
        )
        .await
    {
        Ok(result) => Json(json!({
            "stage_id": result.stage_id,
            "is_created": result.is_created,
        }))
        .into_response(),
        Err(error) => failure(&error),
    }
}

fn failure(error: &MeshError) -> Response {
    let code = error.code();
    let status = match code {
        ErrorCode::STAGE_ALREADY_EXISTS => StatusCode::CONFLICT,
        ErrorCode::INVALID_STAGE_TYPE | ErrorCode::STAGE_CREATION_FAILED => StatusCode::BAD_REQUEST,
        ErrorCode::SERVER_NOT_FOUND => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::REQUEST_TIMEOUT => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = json!({ "error_code": code.0, "error": error.to_string() });
    (status, Json(body)).into_response()
}
