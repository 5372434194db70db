//! The API sender: a request's context plus the sender, plus stage management on Play
//! servers (create, get-or-create, destroy).

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use playhouse_mesh::proto::{
    CreateStageReq, CreateStageRes, DestroyStageReq, DestroyStageRes, GetOrCreateStageReq,
    GetOrCreateStageRes,
};
use playhouse_mesh::{MeshError, Route, ServerState, ServerType};
use playhouse_protocol::{ErrorCode, MsgId, Packet};
use prost::Message;

use crate::sender::MeshHandle;
use crate::sender::Sender;
use crate::services::Services;

/// The result of `create_stage`: the new stage's id and what its `on_create` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateStageResult {
    /// The Play server the stage is on: the one asked, or, when that one was draining,
    /// another running Play server of its service.
    pub play_id: String,
    /// The stage id (generated when 0 was asked for).
    pub stage_id: i64,
    /// The packet `Stage::on_create` returned.
    pub reply: Packet,
}

/// The result of `get_or_create_stage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetOrCreateStageResult {
    /// The Play server the stage is on: the one asked, or, when that one was draining (and
    /// did not have the stage), another running Play server of its service.
    pub play_id: String,
    /// The stage id.
    pub stage_id: i64,
    /// Whether this call created it.
    pub is_created: bool,
    /// What `on_create` returned (empty when the stage already existed).
    pub reply: Packet,
}

/// What API handlers get: the request's context (who sent it, for which account and stage),
/// the server's shared services, and everything a [`Sender`] can do (it derefs to one), plus
/// stage management.
#[derive(Clone)]
pub struct ApiSender {
    sender: Sender,
    request: Option<Arc<Route>>,
    services: Services,
}

impl fmt::Debug for ApiSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSender")
            .field("server_id", &self.sender.server_id())
            .field("from", &self.from())
            .finish()
    }
}

impl Deref for ApiSender {
    type Target = Sender;
    fn deref(&self) -> &Sender {
        &self.sender
    }
}

impl ApiSender {
    pub(crate) fn new(mesh: MeshHandle, request: Option<Route>, services: Services) -> Self {
        let account: Arc<str> = Arc::from(request.as_ref().map_or("", |h| h.account_id()));
        ApiSender {
            sender: Sender::new(mesh, 0, account),
            request: request.map(Arc::new),
            services,
        }
    }

    /// The server's shared services (the ones registered on its builder, plus its
    /// [`ServerControl`](crate::ServerControl) and
    /// [`ServerInfoCenter`](playhouse_mesh::ServerInfoCenter)), so handlers can fetch them.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The server that sent the request being handled (empty outside a request).
    pub fn from(&self) -> &str {
        self.request.as_deref().map_or("", |h| h.from())
    }

    /// The account id the request carries.
    pub fn account_id(&self) -> &str {
        self.request.as_deref().map_or("", |h| h.account_id())
    }

    /// The stage the request came from (for requests sent by stages), else 0.
    pub fn stage_id(&self) -> i64 {
        self.request.as_deref().map_or(0, |h| h.reply_stage_id())
    }

    fn framework<Req: Message + prost::Name, Res: Message + Default>(
        &self,
        play_id: &str,
        request: Req,
    ) -> impl Future<Output = Result<Res, MeshError>> + Send + 'static {
        let header = Route::new(Req::NAME).with_framework(true);
        let mesh = self.sender.mesh().cloned();
        let play_id = play_id.to_owned();
        let payload = Bytes::from(request.encode_to_vec());
        async move {
            let mesh = mesh.ok_or_else(|| MeshError::ServerNotFound(play_id.clone()))?;
            let reply = mesh.request(&play_id, header, payload).await?;
            Res::decode(reply.payload).map_err(|e| MeshError::Invalid(e.to_string()))
        }
    }

    /// A framework command for Play server `play_id` that creates a stage; when `play_id` is
    /// draining (`SERVER_DRAINING`), it goes to the other running Play servers of its service
    /// in turn. The server that answered, and its answer.
    fn placed<Req, Res>(
        &self,
        play_id: &str,
        request: Req,
    ) -> impl Future<Output = Result<(String, Res), MeshError>> + Send + 'static
    where
        Req: Message + prost::Name + Clone + 'static,
        Res: Message + Default + 'static,
    {
        let this = self.clone();
        let play_id = play_id.to_owned();
        async move {
            let first = this.framework::<Req, Res>(&play_id, request.clone()).await;
            match first {
                Err(MeshError::Remote { code, .. }) if code == ErrorCode::SERVER_DRAINING => {}
                other => return other.map(|res| (play_id, res)),
            }
            let others = this.other_play_servers(&play_id);
            let mut last = MeshError::Remote {
                code: ErrorCode::SERVER_DRAINING,
                packet: Packet::empty(Req::NAME),
            };
            for other in others {
                match this.framework::<Req, Res>(&other, request.clone()).await {
                    Ok(res) => return Ok((other, res)),
                    Err(error) => last = error,
                }
            }
            Err(last)
        }
    }

    /// The running Play servers of `play_id`'s service, other than it.
    fn other_play_servers(&self, play_id: &str) -> Vec<String> {
        let Some(mesh) = self.sender.mesh() else {
            return Vec::new();
        };
        let servers = mesh.servers();
        let service = servers
            .get(play_id)
            .map_or(mesh.service_id(), |s| s.service_id);
        servers
            .all()
            .into_iter()
            .filter(|s| {
                s.server_type == ServerType::Play
                    && s.state == ServerState::Running
                    && s.service_id == service
                    && s.server_id != play_id
            })
            .map(|s| s.server_id)
            .collect()
    }

    /// Creates stage `stage_id` (0: a fresh id) of `stage_type` on Play server `play_id`,
    /// handing `packet` to its `on_create`; on another running Play server of its service
    /// when `play_id` is draining (see [`CreateStageResult::play_id`]). Fails with
    /// `StageAlreadyExists`, `InvalidStageType`, or the code `on_create` refused with.
    pub fn create_stage(
        &self,
        play_id: &str,
        stage_type: &str,
        stage_id: i64,
        packet: Packet,
    ) -> impl Future<Output = Result<CreateStageResult, MeshError>> + Send + 'static {
        let request = CreateStageReq {
            stage_type: stage_type.to_owned(),
            stage_id,
            msg_id: packet.msg_id.to_string(),
            payload: packet.payload,
        };
        let reply = self.placed::<_, CreateStageRes>(play_id, request);
        async move {
            let (play_id, res) = reply.await?;
            Ok(CreateStageResult {
                play_id,
                stage_id: res.stage_id,
                reply: Packet::new(MsgId::from(res.msg_id.as_str()), res.payload),
            })
        }
    }

    /// Returns stage `stage_id` of `stage_type` on `play_id`, creating it (with `packet`)
    /// when missing; when `play_id` is draining and does not have it, it is created on another
    /// running Play server of its service (see [`GetOrCreateStageResult::play_id`]; a later
    /// call naming `play_id` may pick yet another one: ask where it landed).
    pub fn get_or_create_stage(
        &self,
        play_id: &str,
        stage_type: &str,
        stage_id: i64,
        packet: Packet,
    ) -> impl Future<Output = Result<GetOrCreateStageResult, MeshError>> + Send + 'static {
        let request = GetOrCreateStageReq {
            stage_type: stage_type.to_owned(),
            stage_id,
            msg_id: packet.msg_id.to_string(),
            payload: packet.payload,
        };
        let reply = self.placed::<_, GetOrCreateStageRes>(play_id, request);
        async move {
            let (play_id, res) = reply.await?;
            Ok(GetOrCreateStageResult {
                play_id,
                stage_id: res.stage_id,
                is_created: res.is_created,
                reply: Packet::new(MsgId::from(res.msg_id.as_str()), res.payload),
            })
        }
    }

    /// Closes stage `stage_id` on `play_id` (its actors and it run `on_destroy`); `false` if
    /// it did not exist.
    pub fn destroy_stage(
        &self,
        play_id: &str,
        stage_id: i64,
    ) -> impl Future<Output = Result<bool, MeshError>> + Send + 'static {
        let reply = self.framework::<_, DestroyStageRes>(play_id, DestroyStageReq { stage_id });
        async move { Ok(reply.await?.destroyed) }
    }
}
