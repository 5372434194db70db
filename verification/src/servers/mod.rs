//! The servers under test, started once on ephemeral ports and joined into one ZeroMQ mesh with
//! a shared in-memory directory:
//!
//! * `play-1`: `TestStage` as its default stage type, TCP, WebSocket (`/ws`) and TLS listeners
//!   (a certificate generated at start-up).
//! * `play-2`: the same stage types on TCP, for cross-server stage messages.
//! * `api-1`: [`TestApiController`] plus an axum HTTP front door (`POST /api/stages`,
//!   `POST /api/stages/get-or-create`) creating stages on play-1.
//! * `api-2`: [`TestApiController`].
//!
//! Every server also answers the system messages of [`SystemController`]. Verifiers that must
//! stop or misconfigure a server build a temporary one from the same [`play_server_builder`].

mod api;
mod http;
mod server_ids;
pub mod services;
mod system;
mod test_actor;
mod test_stage;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use playhouse::{
    ApiServer, MemoryDirectory, MeshJoin, Packet, PlayServer, PlayServerBuilder, Sender,
};
use playhouse_transport::tls;
use tokio::time::Instant;

pub use api::TestApiController;
pub use server_ids::{API_1, API_2, PLAY_1, PLAY_2};
pub use system::SystemController;
pub use test_actor::TestActor;
pub use test_stage::state::TestStage;

use crate::proto::{SystemPingReply, SystemPingRequest};
use services::{GreetingService, SharedCounter, StageJournal};

/// The stage type name of [`TestStage`]; the default stage type of both Play servers.
pub const TEST_STAGE: &str = "TestStage";

/// The greeting the Play servers' shared [`GreetingService`] answers with.
pub const GREETING: &str = "hello from the shared GreetingService";

/// The greeting the API servers' shared [`GreetingService`] answers with.
pub const API_GREETING: &str = "hello from the API servers' GreetingService";

/// The service id both API servers belong to.
pub const API_SERVICE: u16 = 2;
/// api-1's share of weighted routing.
pub const API_1_WEIGHT: u32 = 100;
/// api-2's share of weighted routing.
pub const API_2_WEIGHT: u32 = 300;

/// How often the servers refresh the directory (fast, so the mesh converges quickly).
const REFRESH: Duration = Duration::from_millis(300);
/// Default timeout of mesh requests between the servers.
const MESH_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the mesh to connect every pair of servers at start-up.
const MESH_READY_WITHIN: Duration = Duration::from_secs(30);

/// A Play server builder with the verification stage types, shared services and system
/// handlers registered.
pub fn play_server_builder(server_id: &str) -> PlayServerBuilder {
    PlayServer::builder()
        .server_id(server_id)
        .stage(TEST_STAGE, TestStage::new, TestActor::new)
        .default_stage_type(TEST_STAGE)
        .service(Arc::new(GreetingService::new(GREETING)))
        .service(Arc::new(SharedCounter::default()))
        .service(Arc::new(StageJournal::default()))
        .system_controller(SystemController::play())
}

/// Builds a server from `builder` and starts a TCP listener on an ephemeral port of 127.0.0.1.
pub async fn start_play(builder: PlayServerBuilder) -> io::Result<(PlayServer, SocketAddr)> {
    let server = builder.build().map_err(io::Error::other)?;
    let tcp = server.listen_tcp("127.0.0.1:0").await?;
    Ok((server, tcp))
}

/// How a verification server joins the mesh: a ZeroMQ link on an ephemeral port of 127.0.0.1
/// and the shared in-memory directory.
fn mesh_join(directory: &MemoryDirectory) -> MeshJoin {
    MeshJoin::zmq("127.0.0.1:0", directory.clone())
        .refresh_interval(REFRESH)
        .request_timeout(MESH_REQUEST_TIMEOUT)
}

async fn start_api(
    server_id: &str,
    weight: u32,
    directory: &MemoryDirectory,
) -> io::Result<ApiServer> {
    let join = mesh_join(directory).service_id(API_SERVICE).weight(weight);
    ApiServer::builder()
        .server_id(server_id)
        .controller(TestApiController)
        .controller(SystemController::api())
        .service(Arc::new(GreetingService::new(API_GREETING)))
        .start(join)
        .await
}

/// The long-lived servers of one verification run.
#[derive(Debug)]
pub struct Servers {
    /// `play-1`.
    pub play: PlayServer,
    /// play-1's TCP endpoint.
    pub play_tcp: SocketAddr,
    /// play-1's WebSocket endpoint (path `/ws`).
    pub play_ws: SocketAddr,
    /// play-1's TLS endpoint.
    pub play_tls: SocketAddr,
    /// play-1's WebSocket-over-TLS endpoint (path `/ws`).
    pub play_wss: SocketAddr,
    /// play-1's admin listener (`GET /metrics`, the admin page at `/`).
    pub play_admin: SocketAddr,
    /// `play-2`.
    pub play2: PlayServer,
    /// play-2's TCP endpoint.
    pub play2_tcp: SocketAddr,
    /// `api-1`.
    pub api1: ApiServer,
    /// api-1's HTTP endpoint.
    pub api1_http: SocketAddr,
    /// `api-2`.
    pub api2: ApiServer,
    /// A client TLS configuration trusting play-1's generated certificate (name `localhost`).
    pub tls_client: Arc<rustls::ClientConfig>,
}

impl Servers {
    /// Starts every server, then waits until each one can request each other one.
    pub async fn start() -> io::Result<Servers> {
        let directory = MemoryDirectory::new();
        let certs = tls::self_signed(&["localhost", "127.0.0.1"]).map_err(io::Error::other)?;
        let tls_client =
            tls::client_config_trusting(certs.cert.clone()).map_err(io::Error::other)?;

        let play = play_server_builder(PLAY_1)
            .build()
            .map_err(io::Error::other)?;
        let play_tcp = play.listen_tcp("127.0.0.1:0").await?;
        let play_ws = play.listen_ws("127.0.0.1:0", "/ws").await?;
        let play_tls = play
            .listen_tls("127.0.0.1:0", Arc::clone(&certs.server))
            .await?;
        let play_wss = play.listen_wss("127.0.0.1:0", "/ws", certs.server).await?;
        let play_admin = play.listen_metrics("127.0.0.1:0").await?;
        play.join_mesh(mesh_join(&directory)).await?;

        let (play2, play2_tcp) = start_play(play_server_builder(PLAY_2)).await?;
        play2.join_mesh(mesh_join(&directory)).await?;

        let api1 = start_api(API_1, API_1_WEIGHT, &directory).await?;
        let api2 = start_api(API_2, API_2_WEIGHT, &directory).await?;
        let api1_http = http::serve(&api1, "127.0.0.1:0", PLAY_1).await?;

        let servers = Servers {
            play,
            play_tcp,
            play_ws,
            play_tls,
            play_wss,
            play_admin,
            play2,
            play2_tcp,
            api1,
            api1_http,
            api2,
            tls_client,
        };
        if let Err(error) = servers.wait_for_mesh(MESH_READY_WITHIN).await {
            servers.stop().await;
            return Err(error);
        }
        tracing::info!(
            %play_tcp, %play_ws, %play_tls, %play_wss, %play2_tcp, %api1_http,
            "every server is up and the mesh is connected"
        );
        Ok(servers)
    }

    fn senders(&self) -> [(&'static str, Sender); 4] {
        [
            (PLAY_1, self.play.sender()),
            (PLAY_2, self.play2.sender()),
            (API_1, (*self.api1.sender()).clone()),
            (API_2, (*self.api2.sender()).clone()),
        ]
    }

    /// Waits until every server answers a system request from every server (itself included),
    /// failing after `within`.
    async fn wait_for_mesh(&self, within: Duration) -> io::Result<()> {
        let deadline = Instant::now() + within;
        let senders = self.senders();
        let probes = senders.iter().flat_map(|(from, sender)| {
            senders
                .iter()
                .map(move |(to, _)| probe_until(from, sender, to, deadline))
        });
        for result in join_all(probes).await {
            result?;
        }
        Ok(())
    }

    /// The mesh address every server advertises in the directory.
    fn mesh_address(&self, server_id: &str) -> String {
        let mesh = match server_id {
            PLAY_1 => self.play.mesh(),
            PLAY_2 => self.play2.mesh(),
            API_1 => Some(self.api1.mesh()),
            _ => Some(self.api2.mesh()),
        };
        mesh.map(|m| m.address().to_owned()).unwrap_or_default()
    }

    /// Every endpoint as one JSON object, one key per listener that exists:
    /// `{"servers":[{"id":"play-1","type":"play","tcp":..,"ws":..,"tls":..,"wss":..,"admin":..,
    /// "admin_token":..,"mesh":..},
    /// {"id":"play-2",..},{"id":"api-1","type":"api","http":..,"mesh":..},{"id":"api-2",..}]}`.
    pub fn endpoints_json(&self) -> String {
        serde_json::json!({
            "servers": [
                {
                    "id": PLAY_1,
                    "type": "play",
                    "tcp": self.play_tcp.to_string(),
                    "ws": self.play_ws.to_string(),
                    "tls": self.play_tls.to_string(),
                    "wss": self.play_wss.to_string(),
                    "admin": self.play_admin.to_string(),
                    "admin_token": &*self.play.admin_token(),
                    "mesh": self.mesh_address(PLAY_1),
                },
                {
                    "id": PLAY_2,
                    "type": "play",
                    "tcp": self.play2_tcp.to_string(),
                    "mesh": self.mesh_address(PLAY_2),
                },
                {
                    "id": API_1,
                    "type": "api",
                    "http": self.api1_http.to_string(),
                    "mesh": self.mesh_address(API_1),
                },
                {
                    "id": API_2,
                    "type": "api",
                    "mesh": self.mesh_address(API_2),
                },
            ]
        })
        .to_string()
    }

    /// Stops every server gracefully (API servers first, then the Play servers).
    pub async fn stop(&self) {
        self.api1.stop().await;
        self.api2.stop().await;
        tokio::join!(self.play.stop(), self.play2.stop());
    }
}

/// Requests `to`'s system handler from `sender` until it answers as `to`.
async fn probe_until(from: &str, sender: &Sender, to: &str, deadline: Instant) -> io::Result<()> {
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        let ping = Packet::from_message(&SystemPingRequest {
            content: "ready?".into(),
            fail_code: 0,
        });
        let probe = sender.request_to_system(to, ping);
        match tokio::time::timeout(Duration::from_secs(1), probe).await {
            Ok(Ok(reply)) => match reply.parse::<SystemPingReply>() {
                Ok(pong) if pong.server_id == to => return Ok(()),
                Ok(pong) => last = format!("answered by {:?}", pong.server_id),
                Err(error) => last = format!("bad reply: {error}"),
            },
            Ok(Err(error)) => last = error.to_string(),
            Err(_) => last = "no reply within 1 s".to_owned(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("mesh not connected: {from} cannot reach {to} ({last})"),
    ))
}
