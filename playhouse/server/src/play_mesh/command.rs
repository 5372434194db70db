//! Framework commands from other servers (what [`crate::ApiSender`]'s `create_stage`,
//! `get_or_create_stage` and `destroy_stage` send): decoded once into a [`Command`], then
//! carried out against the stage host.

use bytes::Bytes;
use playhouse_mesh::proto::{
    CreateStageReq, CreateStageRes, DestroyStageReq, DestroyStageRes, GetOrCreateStageReq,
    GetOrCreateStageRes,
};
use playhouse_mesh::{Mesh, RoutePacket};
use playhouse_protocol::{ErrorCode, MsgId, Packet};
use prost::{Message, Name};
use tokio::sync::oneshot;

use crate::mesh_reply;
use crate::stage::handle::CreateRequest;
use crate::stage::host::{CreateAs, Opened, StageHost};

/// A framework command.
#[derive(Debug)]
pub(super) enum Command {
    /// Creates a stage; one that exists already is an error.
    Create(CreateStageReq),
    /// Returns a stage, creating it if it does not exist.
    GetOrCreate(GetOrCreateStageReq),
    /// Closes a stage.
    Destroy(DestroyStageReq),
}

impl Command {
    /// Decodes a framework message: [`ErrorCode::HANDLER_NOT_FOUND`] for a message id that is
    /// no command, [`ErrorCode::INVALID_MESSAGE`] for a payload that does not decode.
    pub(super) fn parse(packet: &RoutePacket) -> Result<Command, ErrorCode> {
        let payload = packet.payload.clone();
        let command = match packet.route.msg_id() {
            CreateStageReq::NAME => CreateStageReq::decode(payload).map(Command::Create),
            GetOrCreateStageReq::NAME => {
                GetOrCreateStageReq::decode(payload).map(Command::GetOrCreate)
            }
            DestroyStageReq::NAME => DestroyStageReq::decode(payload).map(Command::Destroy),
            _ => return Err(ErrorCode::HANDLER_NOT_FOUND),
        };
        command.map_err(|_| ErrorCode::INVALID_MESSAGE)
    }

    /// Carries the command out and answers `packet` (now, or once the stage's `on_create`
    /// has answered). Never waits: this runs on the mesh link's receive task.
    pub(super) fn apply(self, host: &StageHost, mesh: &Mesh, packet: RoutePacket) {
        match self {
            Command::Create(request) => {
                let stage = NewStage {
                    stage_type: request.stage_type,
                    stage_id: request.stage_id,
                    msg_id: request.msg_id,
                    payload: request.payload,
                };
                create(host, mesh, packet, stage, Existing::Refuse);
            }
            Command::GetOrCreate(request) => {
                let stage = NewStage {
                    stage_type: request.stage_type,
                    stage_id: request.stage_id,
                    msg_id: request.msg_id,
                    payload: request.payload,
                };
                create(host, mesh, packet, stage, Existing::Return);
            }
            Command::Destroy(request) => match host.destroy(request.stage_id) {
                Ok(destroyed) => {
                    mesh_reply::send_message(mesh, &packet.route, &DestroyStageRes { destroyed })
                }
                Err(code) => mesh_reply::send_code(mesh, &packet.route, code),
            },
        }
    }
}

/// The stage a create or get-or-create command asks for.
struct NewStage {
    stage_type: String,
    /// 0: a fresh id.
    stage_id: i64,
    /// The creating packet, for `on_create`.
    msg_id: String,
    payload: Bytes,
}

/// What a command does with a stage that exists already.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Create: [`ErrorCode::STAGE_ALREADY_EXISTS`].
    Refuse,
    /// Get-or-create: answer with it.
    Return,
}

fn create(host: &StageHost, mesh: &Mesh, packet: RoutePacket, stage: NewStage, existing: Existing) {
    let NewStage {
        stage_type,
        stage_id,
        msg_id,
        payload,
    } = stage;
    let (done, created_rx) = oneshot::channel();
    let request = || CreateRequest {
        packet: Packet::new(MsgId::from(msg_id.as_str()), payload),
        done: Some(done),
    };
    let opened = host.open(CreateAs::Named(&stage_type), stage_id, || true, request);
    let (stage_id, created) = match opened {
        Ok(Opened { stage, created }) => (stage.stage_id(), created),
        Err(refused) => return mesh_reply::send_code(mesh, &packet.route, refused.code),
    };
    if !created {
        match existing {
            Existing::Return => {
                let res = GetOrCreateStageRes {
                    stage_id,
                    is_created: false,
                    ..GetOrCreateStageRes::default()
                };
                mesh_reply::send_message(mesh, &packet.route, &res);
            }
            Existing::Refuse => {
                mesh_reply::send_code(mesh, &packet.route, ErrorCode::STAGE_ALREADY_EXISTS)
            }
        }
        return;
    }
    let mesh = mesh.clone();
    tokio::spawn(async move {
        match created_rx.await {
            Ok(Ok(reply)) if existing == Existing::Return => {
                let res = GetOrCreateStageRes {
                    stage_id,
                    is_created: true,
                    msg_id: reply.msg_id.to_string(),
                    payload: reply.payload,
                };
                mesh_reply::send_message(&mesh, &packet.route, &res);
            }
            Ok(Ok(reply)) => {
                let res = CreateStageRes {
                    stage_id,
                    msg_id: reply.msg_id.to_string(),
                    payload: reply.payload,
                };
                mesh_reply::send_message(&mesh, &packet.route, &res);
            }
            Ok(Err(code)) => mesh_reply::send_code(&mesh, &packet.route, code),
            Err(_) => mesh_reply::send_code(&mesh, &packet.route, ErrorCode::STAGE_CREATION_FAILED),
        }
    });
}
