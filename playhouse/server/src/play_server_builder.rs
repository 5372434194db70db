//! Configuring a Play server: stage types, which of them clients may create, services,
//! system handlers and settings, checked once by [`PlayServerBuilder::build`].

use std::fmt;
use std::sync::Arc;

use playhouse_mesh::ServerInfoCenter;

use crate::config::PlayConfig;
use crate::fd_limit::clamp_connections;
use crate::handlers::{Controller, HandlerRegistry};
use crate::limits::ConnectionLimiter;
use crate::metrics::Metrics;
use crate::play_mesh::PlayInbound;
use crate::play_server::{Assembly, PlayServer};
use crate::services::{ServerControl, Services, ServicesBuilder};
use crate::session::context::SessionContext;
use crate::stage::actor::ActorInit;
use crate::stage::context::StageInit;
use crate::stage::host::{ClientTypes, HostParts, StageHost, StageTypes, UnknownStageType};
use crate::stage::model::{MovableStage, Stage};

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
        let metrics =
            Arc::new(Metrics::new(&self.server_id).collecting(self.config.collect_metrics));
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
        Ok(PlayServer::assemble(Assembly {
            config: self.config,
            control,
            metrics,
            host,
            sessions,
            inbound: Arc::new(inbound),
            center,
            limiter,
        }))
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
}
