//! `compat-server`: PlayHouse re-creating the C# original's connector test server
//! (`connectors/test-server` of PlayHouse-NET), so the original's connectors (C#, C++, Java,
//! Unity, Unreal, JavaScript) run their own integration suites against PlayHouse unchanged.
//!
//! One process, as the original: a Play server `play-1` (default stage type `TestStage`,
//! authenticate message `AuthenticateRequest`) and an API server `api-1`, joined by the ZeroMQ
//! mesh through an in-memory directory. Endpoints:
//!
//! | endpoint | what |
//! | --- | --- |
//! | `http` | the HTTP API ([`http`]) and WebSocket at `/ws` |
//! | `https` | the same over TLS: HTTPS API and WSS at `/ws` |
//! | `tcp` | Play server over TCP |
//! | `tls` | Play server over TCP+TLS |
//!
//! TLS uses a self-signed certificate generated at start-up (names `localhost`, `127.0.0.1`).
//! The stage and actor behave as the original's `TestStageActor`/`TestActor` ([`stage`]).

mod http;
mod stage;

/// The original test server's messages (`proto/compat_messages.proto`).
#[allow(missing_docs, clippy::all)]
pub mod proto;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use playhouse::{
    ApiServer, ErrorCode, HttpLimits, MemoryDirectory, MeshJoin, Packet, PlayServer, TlsListener,
};
use playhouse_transport::tls;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use stage::{CompatActor, CompatStage, LARGE_PAYLOAD, TEST_STAGE};

/// The Play server's id (the HTTP API creates stages on it).
pub const PLAY_ID: &str = "play-1";
/// The API server's id.
pub const API_ID: &str = "api-1";

/// Where to listen. Port 0 picks an ephemeral port.
#[derive(Clone, Debug)]
pub struct Ports {
    /// The address every listener binds. Default: `127.0.0.1`.
    pub host: String,
    /// HTTP API and WebSocket (`/ws`).
    pub http: u16,
    /// HTTPS API and WSS (`/ws`).
    pub https: u16,
    /// Play server over TCP.
    pub tcp: u16,
    /// Play server over TCP+TLS.
    pub tls: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            host: "127.0.0.1".to_owned(),
            http: 0,
            https: 0,
            tcp: 0,
            tls: 0,
        }
    }
}

/// A running compat server.
#[derive(Debug)]
pub struct CompatServer {
    /// HTTP API and WebSocket endpoint.
    pub http: SocketAddr,
    /// HTTPS API and WSS endpoint.
    pub https: SocketAddr,
    /// Play server, TCP.
    pub tcp: SocketAddr,
    /// Play server, TCP+TLS.
    pub tls: SocketAddr,
    /// The certificate the TLS endpoints present (for clients that want to trust it).
    pub certificate: rustls::pki_types::CertificateDer<'static>,
    play: PlayServer,
    api: ApiServer,
    shutdown: CancellationToken,
}

impl CompatServer {
    /// Starts every server and listener, and returns once the API server reaches the Play
    /// server over the mesh (so the first HTTP request can create a stage).
    pub async fn start(ports: &Ports) -> io::Result<CompatServer> {
        let host = ports.host.as_str();
        let certs = tls::self_signed(&["localhost", "127.0.0.1"]).map_err(io::Error::other)?;
        let directory = MemoryDirectory::new();

        let play = PlayServer::builder()
            .server_id(PLAY_ID)
            .stage(TEST_STAGE, |_| CompatStage, |_| CompatActor)
            .default_stage_type(TEST_STAGE)
            // The original's behaviour, which its connector suite was written against:
            // disconnected actors stay until they leave.
            .configure(|c| c.disconnected_actor_ttl = None)
            .build()
            .map_err(io::Error::other)?;
        let tcp = play.listen_tcp((host, ports.tcp)).await?;
        let tls = play
            .listen_tls((host, ports.tls), Arc::clone(&certs.server))
            .await?;
        play.join_mesh(zmq_join(host, &directory)).await?;

        let api = ApiServer::builder()
            .server_id(API_ID)
            .start(zmq_join(host, &directory))
            .await?;
        wait_for_mesh(&api).await?;

        let shutdown = CancellationToken::new();
        let app = http::App {
            api: api.sender(),
            play_id: PLAY_ID,
            shutdown: shutdown.clone(),
        };
        let plain = http::routes(app.clone()).merge(play.websocket_router("/ws", false));
        let secure = http::routes(app).merge(play.websocket_router("/ws", true));
        let http = spawn_http(
            TcpListener::bind((host, ports.http)).await?,
            plain,
            &shutdown,
        )?;
        let https = spawn_http(
            TlsListener::new(TcpListener::bind((host, ports.https)).await?, certs.server),
            secure,
            &shutdown,
        )?;
        Ok(CompatServer {
            http,
            https,
            tcp,
            tls,
            certificate: certs.cert,
            play,
            api,
            shutdown,
        })
    }

    /// The endpoints as one JSON line: `{"http":..,"https":..,"tcp":..,"tls":..}`.
    pub fn endpoints_json(&self) -> String {
        serde_json::json!({
            "http": self.http.to_string(),
            "https": self.https.to_string(),
            "tcp": self.tcp.to_string(),
            "tls": self.tls.to_string(),
        })
        .to_string()
    }

    /// Resolves when a client asked for a stop (`POST /api/shutdown`).
    pub async fn shutdown_requested(&self) {
        self.shutdown.cancelled().await;
    }

    /// The Play server (e.g. to read its metrics).
    pub fn play(&self) -> &PlayServer {
        &self.play
    }

    /// Stops the HTTP endpoints, then the Play and API servers.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.play.stop().await;
        self.api.stop().await;
    }
}

/// Joins the ZeroMQ mesh on an ephemeral port of `host`.
fn zmq_join(host: &str, directory: &MemoryDirectory) -> MeshJoin {
    MeshJoin::zmq(format!("{host}:0"), directory.clone())
        .refresh_interval(Duration::from_millis(300))
        .request_timeout(Duration::from_secs(30))
}

/// Waits until a system request from the API server reaches the Play server (any answer
/// from it, even "no handler", proves the route).
async fn wait_for_mesh(api: &ApiServer) -> io::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let probe = tokio::time::timeout(
            Duration::from_secs(1),
            api.sender()
                .request_to_system(PLAY_ID, Packet::empty("CompatPing")),
        )
        .await;
        match probe {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error))
                if !matches!(
                    error.code(),
                    ErrorCode::SERVER_NOT_FOUND | ErrorCode::REQUEST_TIMEOUT
                ) =>
            {
                return Ok(());
            }
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the API server never reached the Play server",
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Serves `app` on `listener` under the default [`HttpLimits`] (handlers see the client
/// address; WebSocket upgrades work) until `shutdown`.
fn spawn_http<L: playhouse::Listener>(
    listener: L,
    app: axum::Router,
    shutdown: &CancellationToken,
) -> io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let stop = shutdown.clone().cancelled_owned();
    tokio::spawn(playhouse::serve_http(
        listener,
        app,
        HttpLimits::default(),
        stop,
    ));
    Ok(addr)
}
