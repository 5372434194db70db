//! The API server: stateless handlers by message id, reachable over the mesh, embeddable in
//! an HTTP service (its [`ApiSender`] is cheap to clone into axum state).

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};

use playhouse_mesh::{InboundHandler, Mesh, RoutePacket, ServerInfoCenter, ServerType};
use playhouse_protocol::ErrorCode;
use tokio::sync::Semaphore;

use crate::api_sender::ApiSender;
use crate::handlers::{Controller, HandlerRegistry};
use crate::mesh_join::{MeshJoin, join};
use crate::mesh_reply;
use crate::sender::MeshHandle;
use crate::services::{ServerControl, Services, ServicesBuilder};

/// Configures an [`ApiServer`].
#[must_use]
pub struct ApiServerBuilder {
    server_id: String,
    handlers: HandlerRegistry,
    services: ServicesBuilder,
    max_concurrent: usize,
}

impl fmt::Debug for ApiServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiServerBuilder")
            .field("server_id", &self.server_id)
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

impl ApiServerBuilder {
    /// The server's id. Default: `api-1`.
    pub fn server_id(mut self, server_id: impl Into<String>) -> Self {
        self.server_id = server_id.into();
        self
    }

    /// Registers a controller's handlers.
    pub fn controller(mut self, controller: impl Controller) -> Self {
        controller.handles(&mut self.handlers);
        self
    }

    /// Registers handlers in place.
    ///
    /// ```
    /// use playhouse::{ApiServer, ErrorCode, Packet};
    /// let builder = ApiServer::builder().handlers(|h| {
    ///     h.add("Ping", |packet: Packet, _sender| async move { Ok::<_, ErrorCode>(packet) });
    /// });
    /// ```
    pub fn handlers(mut self, register: impl FnOnce(&mut HandlerRegistry)) -> Self {
        register(&mut self.handlers);
        self
    }

    /// Registers a shared service: handlers fetch it with `sender.services().get::<T>()`
    /// ([`ApiSender::services`]), other code through [`ApiServer::services`]. The control
    /// handle and directory view are always there.
    pub fn service<T: std::any::Any + Send + Sync>(mut self, service: Arc<T>) -> Self {
        self.services.insert(service);
        self
    }

    /// Handlers allowed to run at once; further requests get `SystemError`. Default: 10,000.
    pub fn max_concurrent_handlers(mut self, max: usize) -> Self {
        self.max_concurrent = max.max(1);
        self
    }

    /// Joins the mesh and starts serving.
    pub async fn start(self, setup: MeshJoin) -> io::Result<ApiServer> {
        let control = ServerControl::new(Arc::from(self.server_id.as_str()));
        let center = ServerInfoCenter::default();
        let mut services = self.services;
        services.insert(Arc::new(control.clone()));
        services.insert(Arc::new(center.clone()));
        let shared = Arc::new(ApiShared {
            mesh: Arc::new(OnceLock::new()),
            handlers: self.handlers,
            limit: Arc::new(Semaphore::new(self.max_concurrent)),
            services: services.build(),
            control,
        });
        let inbound = Arc::new(ApiInbound {
            shared: Arc::downgrade(&shared),
        });
        let mesh = join(&self.server_id, ServerType::Api, setup, inbound, center).await?;
        let _ = shared.mesh.set(mesh);
        let server = ApiServer { shared };
        let watcher = server.clone();
        tokio::spawn(async move {
            watcher.shared.control.stop_requested().await;
            watcher.stop().await;
        });
        Ok(server)
    }
}

struct ApiShared {
    mesh: MeshHandle,
    handlers: HandlerRegistry,
    limit: Arc<Semaphore>,
    services: Services,
    control: ServerControl,
}

struct ApiInbound {
    shared: std::sync::Weak<ApiShared>,
}

impl InboundHandler for ApiInbound {
    fn handle(&self, mesh: &Mesh, packet: RoutePacket) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let sender = ApiSender::new(
            Arc::clone(&shared.mesh),
            Some(packet.route.clone()),
            shared.services.clone(),
        );
        let header = packet.route.clone();
        if !shared
            .handlers
            .dispatch(mesh, packet, sender, &shared.limit)
        {
            tracing::debug!(msg_id = %header.msg_id(), from = %header.from(), "no handler");
            mesh_reply::send_code(mesh, &header, ErrorCode::HANDLER_NOT_FOUND);
        }
    }
}

/// A stateless API server. Cheap to clone.
#[derive(Clone)]
pub struct ApiServer {
    shared: Arc<ApiShared>,
}

impl fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiServer")
            .field("server_id", &self.server_id())
            .finish()
    }
}

impl ApiServer {
    /// Starts configuring an API server.
    pub fn builder() -> ApiServerBuilder {
        ApiServerBuilder {
            server_id: "api-1".to_owned(),
            handlers: HandlerRegistry::default(),
            services: Services::builder(),
            max_concurrent: 10_000,
        }
    }

    /// The server's id.
    pub fn server_id(&self) -> &str {
        self.shared.control.server_id()
    }

    /// The mesh node.
    pub fn mesh(&self) -> &Mesh {
        self.shared
            .mesh
            .get()
            .expect("an ApiServer exists only after joining its mesh")
    }

    /// A sender outside any request (e.g. for axum handlers): create stages, message
    /// servers.
    pub fn sender(&self) -> ApiSender {
        ApiSender::new(
            Arc::clone(&self.shared.mesh),
            None,
            self.shared.services.clone(),
        )
    }

    /// The shared services.
    pub fn services(&self) -> &Services {
        &self.shared.services
    }

    /// The control handle.
    pub fn control(&self) -> ServerControl {
        self.shared.control.clone()
    }

    /// Leaves the mesh: no more requests are served; pending ones fail.
    pub async fn stop(&self) {
        self.shared.control.stop();
        if let Some(mesh) = self.shared.mesh.get() {
            mesh.shutdown().await;
        }
    }
}
