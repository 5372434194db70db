//! The Play server: registered stage types, listeners, sessions, graceful stop.

#[cfg(feature = "http")]
mod admin;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::ToSocketAddrs;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::PlayConfig;
use crate::limits::{ConnectionLimiter, LogThrottle, throttled};
use crate::mesh_join::{MeshJoin, join};
use crate::metrics::Metrics;
use crate::play_mesh::PlayInbound;
use crate::sender::Sender;
use crate::services::{ServerControl, Services};
use crate::session;
use crate::session::context::SessionContext;
use crate::stage::host::StageHost;
use playhouse_mesh::{Mesh, ServerInfoCenter, ServerType};
use playhouse_transport::Listener;
#[cfg(feature = "tls")]
use playhouse_transport::TlsListener;
#[cfg(feature = "ws")]
use playhouse_transport::WsListener;

/// One running server, shared by its handles, accept loops and stop task: its parts, who may
/// connect, and how far its stop has got.
struct Inner {
    config: PlayConfig,
    control: ServerControl,
    metrics: Arc<Metrics>,
    host: Arc<StageHost>,
    sessions: Arc<SessionContext>,
    /// The tasks of the sessions, to wait for on a stop.
    session_tasks: TaskTracker,
    /// How the mesh reaches the stages and system handlers, once the server joins one.
    inbound: Arc<PlayInbound>,
    center: ServerInfoCenter,
    limiter: Arc<ConnectionLimiter>,
    /// One WARN a second for refused connections, however many there are.
    refusal_log: LogThrottle,
    stop_started: AtomicBool,
    /// Set once the task that runs the shutdown on a stop request has been spawned.
    stop_watched: AtomicBool,
    stopped: CancellationToken,
    /// The admin listener's bearer token, once asked for (see `admin`).
    #[cfg(feature = "http")]
    admin_token: std::sync::OnceLock<Arc<str>>,
}

/// A Play server: hosts stages and serves clients on any number of listeners.
///
/// Cloning gives another handle to the same server.
#[derive(Clone)]
pub struct PlayServer {
    inner: Arc<Inner>,
}

impl fmt::Debug for PlayServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlayServer")
            .field("server_id", &self.server_id())
            .field("stages", &self.stage_count())
            .finish()
    }
}

/// The parts a builder assembles a server from.
pub(crate) struct Assembly {
    pub(crate) config: PlayConfig,
    pub(crate) control: ServerControl,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) host: Arc<StageHost>,
    pub(crate) sessions: Arc<SessionContext>,
    pub(crate) inbound: Arc<PlayInbound>,
    pub(crate) center: ServerInfoCenter,
    pub(crate) limiter: Arc<ConnectionLimiter>,
}

impl PlayServer {
    /// A server from its built parts (see `PlayServerBuilder::build`).
    pub(crate) fn assemble(parts: Assembly) -> PlayServer {
        let Assembly {
            config,
            control,
            metrics,
            host,
            sessions,
            inbound,
            center,
            limiter,
        } = parts;
        let inner = Inner {
            config,
            control,
            metrics,
            host,
            sessions,
            session_tasks: TaskTracker::new(),
            inbound,
            center,
            limiter,
            refusal_log: LogThrottle::new(Duration::from_secs(1)),
            stop_started: AtomicBool::new(false),
            stop_watched: AtomicBool::new(false),
            stopped: CancellationToken::new(),
            #[cfg(feature = "http")]
            admin_token: std::sync::OnceLock::new(),
        };
        PlayServer {
            inner: Arc::new(inner),
        }
    }

    /// The stage host (for the drain).
    pub(crate) fn host(&self) -> &Arc<StageHost> {
        &self.inner.host
    }

    /// The settings (for the drain).
    pub(crate) fn config(&self) -> &PlayConfig {
        &self.inner.config
    }

    /// Until when a client away during its stage's move may come back here to learn where
    /// it went (for the drain).
    pub(crate) fn moved_away_until(&self) -> Option<tokio::time::Instant> {
        self.inner.sessions.resumes().away_until()
    }

    /// Connections relayed to stages that moved away (for the drain).
    pub(crate) fn relayed(&self) -> &crate::session::relay::RelayedSessions {
        self.inner.sessions.relayed()
    }

    /// The metrics (for the drain).
    pub(crate) fn metrics_handle(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Joins a server mesh (see [`MeshJoin`]): other servers can then create stages here,
    /// message them, and stage code can reach other servers through `ctx.sender()`.
    /// Returns the mesh node; joining twice is an error.
    pub async fn join_mesh(&self, setup: MeshJoin) -> io::Result<Mesh> {
        let inbound = Arc::clone(&self.inner.inbound);
        let center = self.inner.center.clone();
        let mesh = join(self.server_id(), ServerType::Play, setup, inbound, center).await?;
        mesh.observe(Arc::clone(&self.inner.metrics) as _);
        self.inner
            .host
            .mesh()
            .set(mesh.clone())
            .map_err(|_| io::Error::new(io::ErrorKind::AlreadyExists, "already in a mesh"))?;
        Ok(mesh)
    }

    /// The mesh node, once joined.
    pub fn mesh(&self) -> Option<&Mesh> {
        self.inner.host.mesh().get()
    }

    /// A sender for code outside stages (e.g. an admin endpoint).
    pub fn sender(&self) -> Sender {
        Sender::new(Arc::clone(self.inner.host.mesh()), 0, Arc::from(""))
    }

    /// The server's id.
    pub fn server_id(&self) -> &str {
        self.inner.control.server_id()
    }

    /// The control handle (also available to stage and actor code).
    pub fn control(&self) -> ServerControl {
        self.inner.control.clone()
    }

    /// The largest frame body a client may send or receive, in bytes.
    #[cfg(all(feature = "http", feature = "ws"))]
    pub(crate) fn max_packet_size(&self) -> usize {
        self.inner.config.codec.max_packet_size
    }

    /// The shared services.
    pub fn services(&self) -> &Services {
        self.inner.host.services()
    }

    /// The registered stage type names.
    pub fn stage_types(&self) -> impl Iterator<Item = &str> {
        self.inner.host.stage_types()
    }

    /// How many stages are live.
    pub fn stage_count(&self) -> usize {
        self.inner.host.len()
    }

    /// The connection cap in force: [`PlayConfig::max_connections`], lowered if needed to
    /// fit the file-descriptor limit (see [`PlayConfig::fd_reserve`]).
    pub fn max_connections(&self) -> usize {
        self.inner.limiter.max_total()
    }

    /// How many client connections are open.
    pub fn session_count(&self) -> usize {
        usize::try_from(self.inner.metrics.sessions_now()).unwrap_or(0)
    }

    /// The server's metrics in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let host = &self.inner.host;
        self.inner.metrics.render(host.len(), host.queued())
    }

    /// `POST /drain[?within_secs=N]`: starts a drain in the background; `202 Accepted` with
    /// the stage count, or `400` for a query that is not `within_secs=<seconds>`.
    #[cfg(feature = "http")]
    fn drain_from_http(&self, query: Option<&str>) -> (axum::http::StatusCode, String) {
        use axum::http::StatusCode;
        let within = match drain_query(query) {
            Ok(within) => within.unwrap_or(self.inner.config.drain_timeout),
            Err(why) => return (StatusCode::BAD_REQUEST, why.to_owned()),
        };
        let stages = self.stage_count();
        tracing::info!(?within, "drain requested over HTTP");
        let draining = self.clone();
        tokio::spawn(async move { draining.drain(within).await });
        let body = format!(r#"{{"draining":true,"stages":{stages}}}"#);
        (StatusCode::ACCEPTED, body)
    }

    /// Binds a TCP listener and serves clients on it; returns the bound address (bind to
    /// port 0 for an ephemeral port).
    pub async fn listen_tcp(&self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        self.serve(listener)
    }

    /// Binds a TLS listener (rustls; see `playhouse_transport::tls`) and serves clients on it.
    /// Feature `tls`.
    #[cfg(feature = "tls")]
    pub async fn listen_tls(
        &self,
        addr: impl ToSocketAddrs,
        tls: Arc<rustls::ServerConfig>,
    ) -> io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        self.serve(TlsListener::new(listener, tls))
    }

    /// Binds a WebSocket listener (upgrades at `path`, e.g. `/ws`; binary messages holding one
    /// frame each) and serves clients on it. Feature `ws` (on by default).
    #[cfg(feature = "ws")]
    pub async fn listen_ws(&self, addr: impl ToSocketAddrs, path: &str) -> io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        self.serve(WsListener::new(listener, path).max_message(self.max_ws_message()))
    }

    /// [`PlayServer::listen_ws`] over TLS (`wss://`). Features `ws` and `tls`.
    #[cfg(all(feature = "ws", feature = "tls"))]
    pub async fn listen_wss(
        &self,
        addr: impl ToSocketAddrs,
        path: &str,
        tls: Arc<rustls::ServerConfig>,
    ) -> io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let tls = TlsListener::new(listener, tls);
        self.serve(WsListener::new(tls, path).max_message(self.max_ws_message()))
    }

    /// The largest WebSocket message: one frame of the largest packet.
    #[cfg(feature = "ws")]
    fn max_ws_message(&self) -> usize {
        playhouse_protocol::max_frame_len(self.inner.config.codec.max_packet_size)
    }

    /// Serves clients from any [`Listener`] until the server stops; returns its address.
    pub fn serve<L: Listener>(&self, listener: L) -> io::Result<SocketAddr> {
        let addr = listener.local_addr()?;
        let transport = listener.transport_name();
        self.inner.host.set_endpoint(transport, addr.to_string());
        tracing::info!(server = self.server_id(), transport, %addr, "listening");
        let inner = Arc::clone(&self.inner);
        tokio::spawn(accept_loop(listener, inner));
        self.spawn_stop_watcher();
        Ok(addr)
    }

    /// Serves one client connection accepted elsewhere (e.g. a WebSocket upgraded by an HTTP
    /// server, see [`PlayServer::websocket_router`]), under the same limits as a listener's
    /// connections; `transport` names it in logs and metrics. Ignored once the server stops.
    pub fn serve_connection<Io>(&self, io: Io, peer: SocketAddr, transport: &'static str)
    where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if self.inner.control.is_stopping() {
            return;
        }
        admit(&self.inner, io, peer, transport);
        self.spawn_stop_watcher();
    }

    /// Stops gracefully: stop accepting, close every stage (actors' and stages'
    /// `on_destroy`), flush and close client connections. Returns when done (or after
    /// `shutdown_timeout`). Calling it again waits for the first stop.
    pub async fn stop(&self) {
        self.inner.control.stop();
        shutdown(&self.inner).await;
    }

    /// Resolves when the server has stopped (after [`PlayServer::stop`] or
    /// [`ServerControl::stop`]).
    pub async fn stopped(&self) {
        self.inner.stopped.cancelled().await;
    }

    fn spawn_stop_watcher(&self) {
        if self.inner.stop_watched.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            inner.control.stop_requested().await;
            shutdown(&inner).await;
        });
    }
}

async fn accept_loop<L: Listener>(mut listener: L, inner: Arc<Inner>) {
    let transport = listener.transport_name();
    let stop = inner.control.token().clone();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((io, peer)) => admit(&inner, io, peer, transport),
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    throttled!(warn, %error, transport, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Serves `io` as a client session if the connection limits allow it; otherwise drops it,
/// which closes it before any byte is read.
fn admit<Io>(inner: &Inner, io: Io, peer: SocketAddr, transport: &'static str)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match inner.limiter.admit(peer.ip()) {
        Ok(permit) => {
            let sessions = Arc::clone(&inner.sessions);
            let session = session::run(io, peer, transport, sessions, permit);
            inner.session_tasks.spawn(session);
        }
        Err(why) => {
            inner.metrics.reject(why);
            if let Some(suppressed) = inner.refusal_log.allow() {
                // `suppressed`: refusals since the last line (all are counted in metrics).
                tracing::warn!(%peer, transport, ?why, suppressed, "connection refused by limit");
            }
        }
    }
}

/// After the stop deadline, how long sessions and the mesh still get to say goodbye.
const FINAL_GRACE: Duration = Duration::from_millis(500);

/// Stops within `shutdown_timeout` (plus at most twice [`FINAL_GRACE`]) whatever user code
/// does: every stage is asked to close at once; stages still running at the deadline are
/// aborted; then connections are flushed and closed.
async fn shutdown(inner: &Inner) {
    if inner.stop_started.swap(true, Ordering::AcqRel) {
        inner.stopped.cancelled().await;
        return;
    }
    let deadline = tokio::time::Instant::now() + inner.config.shutdown_timeout;
    tracing::info!(server = inner.control.server_id(), "stopping");
    inner.host.close_all(deadline, None).await;
    let grace = |from: tokio::time::Instant| from.max(tokio::time::Instant::now()) + FINAL_GRACE;
    if let Some(mesh) = inner.host.mesh().get()
        && tokio::time::timeout_at(grace(deadline), mesh.shutdown())
            .await
            .is_err()
    {
        tracing::warn!("the mesh did not shut down in time");
    }
    // Every session's kill switch is a child of this token: even one waiting on a full stage
    // mailbox stops now.
    inner.sessions.stop_token().cancel();
    inner.session_tasks.close();
    if tokio::time::timeout_at(grace(deadline), inner.session_tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections did not close within the shutdown timeout");
    }
    tracing::info!(server = inner.control.server_id(), "stopped");
    inner.stopped.cancel();
}

/// How long a `POST /drain[?within_secs=N]` drains for: `Ok(None)` for the default, `Err` for a
/// query that is not `within_secs=<seconds>`.
#[cfg(feature = "http")]
pub(crate) fn drain_query(query: Option<&str>) -> Result<Option<Duration>, &'static str> {
    match query.map(|q| q.strip_prefix("within_secs=").map(str::parse::<u64>)) {
        None => Ok(None),
        Some(Some(Ok(secs))) => Ok(Some(Duration::from_secs(secs))),
        Some(_) => Err(r#"{"error":"the only parameter is within_secs=<seconds>"}"#),
    }
}
