//! The arena in one process: a Play server hosting the rooms and an API server finding them,
//! joined by a mesh (in memory), behind one HTTP listener that serves the page, answers
//! `POST /join` and carries the players' WebSocket (`/ws`). Bots and other native clients
//! may use the Play server's TCP listener instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as AxumPath, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use playhouse::{ApiSender, ApiServer, HttpLimits, MemoryDirectory, MeshJoin, Packet, PlayServer};
use serde_json::{Value, json};

use super::ARENA;

/// Where the arena listens.
#[derive(Clone, Debug)]
pub struct ArenaConfig {
    /// The HTTP listener: the page, `POST /join`, and the WebSocket at `/ws`.
    pub http: String,
    /// The Play server's TCP listener (bots, native clients).
    pub tcp: String,
    /// How long a player whose connection dropped keeps its place (its actor).
    pub keep_dropped: Duration,
    /// The TypeScript client's package, built (`npm ci && npm run build`): the page loads
    /// the client, the arena's generated messages and protobuf-es from it.
    pub client_dir: PathBuf,
}

impl Default for ArenaConfig {
    fn default() -> Self {
        ArenaConfig {
            http: "127.0.0.1:8080".into(),
            tcp: "127.0.0.1:7700".into(),
            keep_dropped: Duration::from_secs(60),
            client_dir: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../clients/typescript"
            )),
        }
    }
}

/// A running arena.
#[derive(Debug)]
pub struct Arena {
    /// The HTTP listener's address.
    pub http: SocketAddr,
    /// The Play server's TCP address.
    pub tcp: SocketAddr,
    /// The Play server hosting the rooms.
    pub play: PlayServer,
    /// The API server finding them.
    pub api: ApiServer,
    http_task: tokio::task::JoinHandle<()>,
}

impl Arena {
    /// Stops the HTTP listener, then both servers.
    pub async fn stop(self) {
        self.http_task.abort();
        self.api.stop().await;
        self.play.stop().await;
    }
}

/// The Play server's id in the arena's mesh.
pub const PLAY_ID: &str = "arena-play-1";

#[derive(Clone)]
struct App {
    sender: ApiSender,
    tcp: SocketAddr,
    client_dir: Arc<PathBuf>,
}

/// The room `POST /join?room=N` asks for (default 1); `None` for a malformed query.
fn room_of(query: Option<&str>) -> Option<i64> {
    match query {
        None | Some("") => Some(1),
        Some(query) => query.strip_prefix("room=")?.parse().ok().filter(|r| *r > 0),
    }
}

/// Starts the arena; it serves until [`Arena::stop`] (or the process ends).
pub async fn start(config: ArenaConfig) -> Result<Arena, Box<dyn std::error::Error>> {
    let directory = MemoryDirectory::new();
    let keep = config.keep_dropped;
    let play = super::register(PlayServer::builder().server_id(PLAY_ID))
        .configure(|c| c.disconnected_actor_ttl = Some(keep))
        .build()?;
    let tcp = play.listen_tcp(&config.tcp).await?;
    play.join_mesh(MeshJoin::memory("127.0.0.1:0", &directory))
        .await?;
    let api = ApiServer::builder()
        .server_id("arena-api-1")
        .start(MeshJoin::memory("127.0.0.1:0", &directory))
        .await?;
    // Ready once the API server can reach the rooms' server.
    let center = api.mesh().servers().clone();
    let met = tokio::time::timeout(Duration::from_secs(10), async {
        while center.get(PLAY_ID).is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    met.await
        .map_err(|_| "the API server never saw the Play server")?;
    let client_dir = Arc::new(config.client_dir.clone());
    if !client_dir.join("dist/src/index.js").exists() {
        tracing::warn!(
            dir = %client_dir.display(),
            "the TypeScript client is not built: the page cannot load it (run `npm ci && npm run build` there, or use examples/arena/run.sh)"
        );
    }
    let app = App {
        sender: api.sender(),
        tcp,
        client_dir,
    };
    let router = axum::Router::new()
        .route("/", get(page))
        .route("/arena.js", get(script))
        .route("/{dir}/{*path}", get(module))
        .route("/join", post(join))
        .with_state(app)
        .merge(play.websocket_router("/ws", false));
    let listener = tokio::net::TcpListener::bind(&config.http).await?;
    let http = listener.local_addr()?;
    let http_task = tokio::spawn(playhouse::serve_http(
        listener,
        router,
        HttpLimits::default(),
        std::future::pending(),
    ));
    Ok(Arena {
        http,
        tcp,
        play,
        api,
        http_task,
    })
}

async fn page() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(include_str!("../../arena/index.html")),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        include_str!("../../arena/arena.js"),
    )
}

/// A module of the TypeScript client's package: `/client/..` (the client), `/gen/..` (the
/// generated messages), `/pb/..` (protobuf-es), read from [`ArenaConfig::client_dir`].
async fn module(
    State(app): State<App>,
    AxumPath((dir, path)): AxumPath<(String, String)>,
) -> Result<impl IntoResponse, StatusCode> {
    let base = match dir.as_str() {
        "client" => "dist/src",
        "gen" => "dist/test/gen",
        "pb" => "node_modules/@bufbuild/protobuf/dist/esm",
        _ => return Err(StatusCode::NOT_FOUND),
    };
    let safe = path
        .split('/')
        .all(|part| !part.is_empty() && !part.starts_with('.'))
        && path.ends_with(".js");
    if !safe {
        return Err(StatusCode::NOT_FOUND);
    }
    let file = app.client_dir.join(base).join(&path);
    let text = tokio::fs::read_to_string(file)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    Ok(([(header::CONTENT_TYPE, "text/javascript")], text))
}

/// Finds or creates the room through the mesh and says where to play: the stage id, and the
/// WebSocket path (same host) and TCP address of its Play server.
async fn join(State(app): State<App>, RawQuery(query): RawQuery) -> (StatusCode, Json<Value>) {
    let Some(room) = room_of(query.as_deref()) else {
        let body = json!({"error": "the only parameter is room=<a number from 1>"});
        return (StatusCode::BAD_REQUEST, Json(body));
    };
    // Right after start-up the mesh link to the Play server may still be connecting: a request
    // then fails at once with ServerNotFound, and is tried again for up to a second.
    let mut tries = 0;
    let opened = loop {
        let opened = app
            .sender
            .get_or_create_stage(PLAY_ID, ARENA, room, Packet::empty("OpenArena"))
            .await;
        match opened {
            Err(playhouse::MeshError::ServerNotFound(_)) if tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other,
        }
    };
    match opened {
        Ok(found) => (
            StatusCode::OK,
            Json(json!({
                "room": found.stage_id,
                "created": found.is_created,
                "ws_path": "/ws",
                "tcp": app.tcp.to_string(),
            })),
        ),
        Err(error) => {
            let body = json!({"error": error.to_string(), "error_code": error.code().0});
            (StatusCode::BAD_GATEWAY, Json(body))
        }
    }
}
