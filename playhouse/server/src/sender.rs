//! The sender (the original's `ISender`): messages and requests to API servers, stages on any
//! Play server, services and system handlers, over the mesh.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use playhouse_mesh::{Mesh, MeshError, RoutingPolicy, ServerType};
use playhouse_mesh::{Route, TraceContext};
use playhouse_protocol::Packet;

/// Where a server's mesh node lives once it has joined (servers are built before joining).
pub(crate) type MeshHandle = Arc<OnceLock<Mesh>>;

/// Sends messages and requests to other servers. Cheap to clone; every request future is
/// `'static`, so it can run inside a stage's async block.
#[derive(Clone)]
pub struct Sender {
    mesh: MeshHandle,
    /// The stage sending (0 for non-stage code); replies to stage requests come back to it.
    stage_id: i64,
    /// The account the messages concern, when known.
    account_id: Arc<str>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("server_id", &self.server_id())
            .field("stage_id", &self.stage_id)
            .finish()
    }
}

impl Sender {
    pub(crate) fn new(mesh: MeshHandle, stage_id: i64, account_id: Arc<str>) -> Self {
        Sender {
            mesh,
            stage_id,
            account_id,
        }
    }

    /// This server's mesh node, once it has joined a mesh.
    pub fn mesh(&self) -> Option<&Mesh> {
        self.mesh.get()
    }

    /// This server's id in the mesh (empty before it joins).
    pub fn server_id(&self) -> &str {
        self.mesh().map(Mesh::server_id).unwrap_or_default()
    }

    fn node(&self, target: &str) -> Result<&Mesh, MeshError> {
        self.mesh()
            .ok_or_else(|| MeshError::ServerNotFound(target.to_owned()))
    }

    fn header(&self, packet: &Packet, stage_id: i64, is_system: bool) -> Route {
        Route::new(packet.msg_id.clone())
            .with_stage(stage_id)
            .with_account(self.account_id.to_string())
            .with_reply_stage(self.stage_id)
            .with_system(is_system)
    }

    fn send(
        &self,
        target: &str,
        packet: Packet,
        stage_id: i64,
        system: bool,
    ) -> Result<(), MeshError> {
        let header = self.header(&packet, stage_id, system);
        self.node(target)?.send(target, header, packet.payload)
    }

    fn request(
        &self,
        target: &str,
        packet: Packet,
        stage_id: i64,
        system: bool,
    ) -> impl Future<Output = Result<Packet, MeshError>> + Send + 'static {
        // The trace is taken now, where the request is made: the future may run on another
        // task (`StageContext::request_with_callback`, an async block, a spawned task).
        let header = self
            .header(&packet, stage_id, system)
            .with_trace(TraceContext::for_send());
        let node = self.node(target).cloned();
        let target = target.to_owned();
        async move {
            let reply = node?.request(&target, header, packet.payload).await?;
            Ok(reply.packet())
        }
    }

    fn pick(&self, service_id: u16, policy: RoutingPolicy) -> Result<String, MeshError> {
        let service = format!("service {service_id}");
        let node = self.node(&service)?;
        node.servers()
            .pick(Some(ServerType::Api), service_id, policy)
            .map(|server| server.server_id)
            .ok_or(MeshError::ServerNotFound(service))
    }

    /// Sends a one-way message to API server `api_id`.
    pub fn send_to_api(&self, api_id: &str, packet: Packet) -> Result<(), MeshError> {
        self.send(api_id, packet, 0, false)
    }

    /// Requests API server `api_id`; the reply, or the remote error code as an error.
    pub fn request_to_api(
        &self,
        api_id: &str,
        packet: Packet,
    ) -> impl Future<Output = Result<Packet, MeshError>> + Send + 'static {
        self.request(api_id, packet, 0, false)
    }

    /// Sends a one-way message to stage `stage_id` on Play server `play_id`
    /// (`Stage::on_dispatch_server`).
    pub fn send_to_stage(
        &self,
        play_id: &str,
        stage_id: i64,
        packet: Packet,
    ) -> Result<(), MeshError> {
        self.send(play_id, packet, stage_id, false)
    }

    /// Requests stage `stage_id` on Play server `play_id`.
    pub fn request_to_stage(
        &self,
        play_id: &str,
        stage_id: i64,
        packet: Packet,
    ) -> impl Future<Output = Result<Packet, MeshError>> + Send + 'static {
        self.request(play_id, packet, stage_id, false)
    }

    /// Sends a one-way message to one API server of `service_id`, chosen by `policy`.
    pub fn send_to_api_service(
        &self,
        service_id: u16,
        packet: Packet,
        policy: RoutingPolicy,
    ) -> Result<(), MeshError> {
        let target = self.pick(service_id, policy)?;
        self.send(&target, packet, 0, false)
    }

    /// Requests one API server of `service_id`, chosen by `policy`.
    pub fn request_to_api_service(
        &self,
        service_id: u16,
        packet: Packet,
        policy: RoutingPolicy,
    ) -> impl Future<Output = Result<Packet, MeshError>> + Send + 'static {
        let picked = self.pick(service_id, policy);
        let sender = self.clone();
        async move { sender.request(&picked?, packet, 0, false).await }
    }

    /// Sends a one-way message to server `server_id`'s system handlers.
    pub fn send_to_system(&self, server_id: &str, packet: Packet) -> Result<(), MeshError> {
        self.send(server_id, packet, 0, true)
    }

    /// Requests server `server_id`'s system handlers.
    pub fn request_to_system(
        &self,
        server_id: &str,
        packet: Packet,
    ) -> impl Future<Output = Result<Packet, MeshError>> + Send + 'static {
        self.request(server_id, packet, 0, true)
    }

    /// Callback form of any request: runs `callback` with the result on a tokio task.
    /// (Stage code uses the `StageContext` forms, which call back on the stage loop.)
    pub fn with_callback<F>(
        request: F,
        callback: impl FnOnce(Result<Packet, MeshError>) + Send + 'static,
    ) where
        F: Future<Output = Result<Packet, MeshError>> + Send + 'static,
    {
        tokio::spawn(async move { callback(request.await) });
    }
}
