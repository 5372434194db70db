//! An API server process with an HTTP front door: `POST /api/stages` and
//! `POST /api/stages/get-or-create` with JSON `{"stage_type": "...", "stage_id": N}` create
//! stages on the Play server named by `PLAYHOUSE_PLAY_ID` (or by `"play_id"` in the body);
//! get-or-create answers with the `"play_id"` the stage is on (another one than named when
//! the named one drains).
//! `POST /api/stages/request` with `{"stage_id": N, "msg_id": "..."}` (and optionally
//! `"play_id"`) sends a mesh request to that stage (`Stage::on_dispatch_server`) and answers
//! `{"msg_id": ..., "payload": ...}` (the reply's payload as UTF-8).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use playhouse::{ApiSender, ApiServer, HttpLimits, Packet};
use playhouse_examples::{env_or, init_logging, mesh_join, stop_signal};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Clone)]
struct App {
    sender: ApiSender,
    play_id: String,
}

#[derive(Deserialize)]
struct StageRequest {
    stage_type: String,
    stage_id: i64,
    /// The Play server to create it on; `PLAYHOUSE_PLAY_ID` when absent.
    play_id: Option<String>,
}

#[derive(Deserialize)]
struct MeshRequest {
    stage_id: i64,
    msg_id: String,
    /// The Play server that has the stage; `PLAYHOUSE_PLAY_ID` when absent.
    play_id: Option<String>,
}

impl App {
    fn play_id<'a>(&'a self, named: &'a Option<String>) -> &'a str {
        named.as_deref().unwrap_or(&self.play_id)
    }
}

/// Mesh errors become 502 with the PlayHouse error code in the body.
fn failure(error: &playhouse::MeshError) -> (StatusCode, Json<Value>) {
    let body = json!({"error": error.to_string(), "error_code": error.code().0});
    (StatusCode::BAD_GATEWAY, Json(body))
}

async fn create(
    State(app): State<App>,
    Json(request): Json<StageRequest>,
) -> (StatusCode, Json<Value>) {
    let packet = Packet::empty("HttpCreate");
    match app
        .sender
        .create_stage(
            app.play_id(&request.play_id),
            &request.stage_type,
            request.stage_id,
            packet,
        )
        .await
    {
        Ok(created) => (
            StatusCode::OK,
            Json(json!({"stage_id": created.stage_id, "created": true})),
        ),
        Err(error) => failure(&error),
    }
}

async fn get_or_create(
    State(app): State<App>,
    Json(request): Json<StageRequest>,
) -> (StatusCode, Json<Value>) {
    let packet = Packet::empty("HttpCreate");
    let result = app
        .sender
        .get_or_create_stage(
            app.play_id(&request.play_id),
            &request.stage_type,
            request.stage_id,
            packet,
        )
        .await;
    match result {
        Ok(r) => (
            StatusCode::OK,
            Json(json!({"stage_id": r.stage_id, "created": r.is_created, "play_id": r.play_id})),
        ),
        Err(error) => failure(&error),
    }
}

async fn stage_request(
    State(app): State<App>,
    Json(request): Json<MeshRequest>,
) -> (StatusCode, Json<Value>) {
    let packet = Packet::empty(request.msg_id.as_str());
    let result = app
        .sender
        .request_to_stage(app.play_id(&request.play_id), request.stage_id, packet)
        .await;
    match result {
        Ok(reply) => (
            StatusCode::OK,
            Json(json!({
                "msg_id": reply.msg_id.to_string(),
                "payload": String::from_utf8_lossy(&reply.payload),
            })),
        ),
        Err(error) => failure(&error),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let id = env_or("PLAYHOUSE_SERVER_ID", "api-1");
    let server = ApiServer::builder()
        .server_id(&id)
        .start(mesh_join().await?)
        .await?;
    let app = App {
        sender: server.sender(),
        play_id: env_or("PLAYHOUSE_PLAY_ID", "play-1"),
    };
    let router = axum::Router::new()
        .route("/api/stages", post(create))
        .route("/api/stages/get-or-create", post(get_or_create))
        .route("/api/stages/request", post(stage_request))
        .with_state(app);
    let listener =
        tokio::net::TcpListener::bind(env_or("PLAYHOUSE_HTTP_BIND", "127.0.0.1:0")).await?;
    let http = listener.local_addr()?;
    let line =
        json!({"id": id, "type": "api", "http": http.to_string(), "mesh": server.mesh().address()});
    println!("{line}");
    playhouse::serve_http(listener, router, HttpLimits::default(), stop_signal()).await;
    server.stop().await;
    Ok(())
}
