//! The Play server: registered stage types, listeners, sessions, graceful stop.

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
use crate::fd_limit::clamp_connections;
use crate::handlers::{Controller, HandlerRegistry};
use crate::limits::{ConnectionLimiter, LogThrottle, throttled};
use crate::mesh_join::{MeshJoin, join};
use crate::metrics::Metrics;
use crate::play_mesh::PlayInbound;
use crate::sender::Sender;
use crate::services::{ServerControl, Services, ServicesBuilder};
use crate::session;
use crate::session::context::SessionContext;
use crate::stage::actor::ActorInit;
use crate::stage::context::StageInit;
use crate::stage::host::{ClientTypes, HostParts, StageHost, StageTypes, UnknownStageType};
use crate::stage::model::{MovableStage, Stage};
use playhouse_mesh::{Mesh, ServerInfoCenter, ServerType};
use playhouse_transport::Listener;
#[cfg(feature = "tls")]
use playhouse_transport::TlsListener;
#[cfg(feature = "ws")]
use playhouse_transport::WsListener;

mod drain;

pub use drain::DrainReport;

/// Why a server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The default stage type names no registered stage type.
    #[error("default stage type `{0}` is not registered")]
    UnknownDefaultStageType(String),
    /// A client stage type names no registered stage type.
    #[error("client stage type `{0}` is not registered")]
    UnknownClientStageType(String),
    /// The authenticate message id is empty or longer than 255 bytes.
    #[error("authenticate message id must be 1..=255 bytes")]
    InvalidAuthenticateMsgId,
}

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
}

/// Configures a [`PlayServer`]: stage types, the default stage type, shared services and
/// limits. Nothing runs until the server is given a listener.
#[must_use]
pub struct PlayServerBuilder {
    server_id: String,
    config: PlayConfig,
    types: StageTypes,
    default_stage_type: Option<String>,
    client_stage_types: Vec<String>,
    services: ServicesBuilder,
    system: HandlerRegistry,
}

impl fmt::Debug for PlayServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlayServerBuilder")
            .field("server_id", &self.server_id)
            .field("stage_types", &self.types)
            .field("default_stage_type", &self.default_stage_type)
            .field("client_stage_types", &self.client_stage_types)
            .finish_non_exhaustive()
    }
}

impl PlayServerBuilder {
    /// The server's id in logs and (later) the mesh. Default: `play-1`.
    pub fn server_id(mut self, server_id: impl Into<String>) -> Self {
        self.server_id = server_id.into();
        self
    }

    /// Replaces all settings (see [`PlayConfig`] for each default).
    pub fn config(mut self, config: PlayConfig) -> Self {
        self.config = config;
        self
    }

    /// Changes settings in place, keeping the other defaults.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = playhouse::PlayServer::builder()
    ///     .configure(|c| c.idle_timeout = Duration::from_secs(30));
    /// ```
    pub fn configure(mut self, change: impl FnOnce(&mut PlayConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Registers a stage type under `name`, with factories for its stages and actors.
    pub fn stage<S: Stage>(
        mut self,
        name: impl Into<String>,
        make_stage: impl Fn(&StageInit<'_>) -> S + Send + Sync + 'static,
        make_actor: impl Fn(&ActorInit<'_>) -> S::Actor + Send + Sync + 'static,
    ) -> Self {
        self.types.register(name.into(), make_stage, make_actor);
        self
    }

    /// Registers a stage type whose live stages move, with their players, to another Play
    /// server when this one drains (see [`MovableStage`] and `docs/operations.md`). Stages of
    /// types registered with [`PlayServerBuilder::stage`] do not move: a drain lets them run
    /// until they end or its deadline.
    pub fn movable_stage<S: MovableStage>(
        mut self,
        name: impl Into<String>,
        make_stage: impl Fn(&StageInit<'_>) -> S + Send + Sync + 'static,
        make_actor: impl Fn(&ActorInit<'_>) -> S::Actor + Send + Sync + 'static,
    ) -> Self {
        self.types
            .register_movable(name.into(), make_stage, make_actor);
        self
    }

    /// The stage type a client's authentication creates when its stage does not exist yet
    /// (stage id 0: a fresh id; generated ids start at 2^32 = 4,294,967,296, above any id a
    /// game picks by hand). Without it, authenticating into a missing stage fails with
    /// `StageNotFound`. Default: none.
    pub fn default_stage_type(mut self, name: impl Into<String>) -> Self {
        self.default_stage_type = Some(name.into());
        self
    }

    /// Stage types a client may create by naming them when it connects (the Connector's
    /// `stage_type`): join-or-create by room type, with no API server. A client that names a
    /// type joins the stage it names only if the stage is of that type, and creates it when
    /// missing only if the type is the default stage type or one of these (the
    /// per-connection creation rate and `max_stages` apply as always); otherwise its login is
    /// refused with `InvalidStageType` (unknown type, or a live stage of another type) or
    /// `StageNotFound` (a type clients may only join). A client that names no type gets the
    /// default stage type. Default: none besides the default stage type.
    ///
    /// ```
    /// use playhouse::testing::{EchoActor, EchoStage};
    ///
    /// let server = playhouse::PlayServer::builder()
    ///     .stage("Lobby", |_| EchoStage, |_| EchoActor)
    ///     .stage("Arena", |_| EchoStage, |_| EchoActor)
    ///     .default_stage_type("Lobby")
    ///     .client_stage_types(["Arena"])
    ///     .build();
    /// assert!(server.is_ok());
    /// ```
    pub fn client_stage_types<T: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = T>,
    ) -> Self {
        self.client_stage_types = names.into_iter().map(Into::into).collect();
        self
    }

    /// Registers a shared service, reachable from factories through [`Services::get`].
    /// The server's [`ServerControl`] and its directory view
    /// ([`playhouse_mesh::ServerInfoCenter`]) are always registered.
    pub fn service<T: std::any::Any + Send + Sync>(mut self, service: Arc<T>) -> Self {
        self.services.insert(service);
        self
    }

    /// Registers system handlers (messages sent with `send_to_system`/`request_to_system`).
    pub fn system_controller(mut self, controller: impl Controller) -> Self {
        controller.handles(&mut self.system);
        self
    }

    /// Checks the configuration and creates the server.
    pub fn build(self) -> Result<PlayServer, BuildError> {
        let auth_len = self.config.authenticate_msg_id.len();
        if auth_len == 0 || auth_len > playhouse_protocol::MAX_MSG_ID_LEN {
            return Err(BuildError::InvalidAuthenticateMsgId);
        }
        let control = ServerControl::new(Arc::from(self.server_id.as_str()));
        let metrics = Arc::new(Metrics::default());
        let center = ServerInfoCenter::default();
        let mut services = self.services;
        services.insert(Arc::new(control.clone()));
        services.insert(Arc::new(center.clone()));
        let parts = HostParts {
            services: services.build(),
            control: control.clone(),
            metrics: Arc::clone(&metrics),
        };
        let clients = ClientTypes {
            default: self.default_stage_type.as_deref(),
            creatable: &self.client_stage_types,
        };
        let host = StageHost::new(self.types, clients, &self.config, parts).map_err(|unknown| {
            match unknown {
                UnknownStageType::Default(name) => BuildError::UnknownDefaultStageType(name),
                UnknownStageType::Client(name) => BuildError::UnknownClientStageType(name),
            }
        })?;
        let host = Arc::new(host);
        let max_connections = clamp_connections(
            "Play server",
            self.config.max_connections,
            PlayConfig::default().max_connections,
            self.config.fd_reserve,
        );
        let limiter = Arc::new(ConnectionLimiter::new(
            max_connections,
            self.config.max_connections_per_ip,
        ));
        let sessions =
            SessionContext::new(self.config.clone(), Arc::clone(&host), Arc::clone(&metrics));
        let sessions = Arc::new(sessions);
        let inbound = PlayInbound::new(&host, &sessions, self.system, Arc::clone(&metrics));
        let inner = Inner {
            config: self.config,
            control,
            metrics,
            host,
            sessions,
            session_tasks: TaskTracker::new(),
            inbound: Arc::new(inbound),
            center,
            limiter,
            refusal_log: LogThrottle::new(Duration::from_secs(1)),
            stop_started: AtomicBool::new(false),
            stop_watched: AtomicBool::new(false),
            stopped: CancellationToken::new(),
        };
        Ok(PlayServer {
            inner: Arc::new(inner),
        })
    }
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

impl PlayServer {
    /// Starts configuring a server.
    pub fn builder() -> PlayServerBuilder {
        PlayServerBuilder {
            server_id: "play-1".to_owned(),
            config: PlayConfig::default(),
            types: StageTypes::default(),
            default_stage_type: None,
            client_stage_types: Vec::new(),
            services: Services::builder(),
            system: HandlerRegistry::default(),
        }
    }

    /// Joins a server mesh (see [`MeshJoin`]): other servers can then create stages here,
    /// message them, and stage code can reach other servers through `ctx.sender()`.
    /// Returns the mesh node; joining twice is an error.
    pub async fn join_mesh(&self, setup: MeshJoin) -> io::Result<Mesh> {
        let inbound = Arc::clone(&self.inner.inbound);
        let center = self.inner.center.clone();
        let mesh = join(self.server_id(), ServerType::Play, setup, inbound, center).await?;
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
        self.inner
            .metrics
            .render(self.server_id(), host.len(), host.queued())
    }

    /// Serves the admin endpoints over HTTP until the server stops, under
    /// [`PlayConfig::metrics_http`] (see [`crate::serve_http`]); returns the bound address:
    /// `GET /metrics` ([`PlayServer::metrics`]), and `POST /drain` (optional query
    /// `within_secs`, default [`PlayConfig::drain_timeout`]), which starts
    /// [`PlayServer::drain`] and answers `202 Accepted` with `{"draining":true,"stages":N}`.
    /// Bind it where only operators reach it. Feature `http` (on by default).
    #[cfg(feature = "http")]
    pub async fn listen_metrics(&self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let server = self.clone();
        let drainer = self.clone();
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let server = server.clone();
                    async move {
                        (
                            [("content-type", "text/plain; version=0.0.4")],
                            server.metrics(),
                        )
                    }
                }),
            )
            .route(
                "/drain",
                axum::routing::post(move |query: axum::extract::RawQuery| {
                    let server = drainer.clone();
                    async move { drain::start_from_http(&server, query.0.as_deref()) }
                }),
            );
        let stop = self.inner.control.token().clone();
        let limits = self.inner.config.metrics_http.clone();
        tokio::spawn(crate::http_server::serve_http(
            listener,
            app,
            limits,
            stop.cancelled_owned(),
        ));
        tracing::info!(server = self.server_id(), %local, "metrics at GET /metrics");
        Ok(local)
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
