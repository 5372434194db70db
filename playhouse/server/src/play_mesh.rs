//! How a Play server answers the mesh: framework commands (create / get-or-create / destroy
//! stage), messages to its stages (`on_dispatch_server`) and system handlers.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use playhouse_mesh::proto::{
    CreateStageReq, CreateStageRes, DestroyStageReq, DestroyStageRes, GetOrCreateStageReq,
    GetOrCreateStageRes,
};
use playhouse_mesh::{InboundHandler, Mesh, RoutePacket};
use playhouse_protocol::{ErrorCode, MsgId, Packet};
use prost::{Message, Name};
use tokio::sync::{mpsc, oneshot};

use crate::api_sender::ApiSender;
use crate::play_server::PlayShared;
use crate::stage::kind::StageKind;
use crate::stage::mailbox::{CreateRequest, StageMsg};

/// The Play server's mesh inbound handler (holds the server weakly: no cycle through the
/// mesh node the server owns).
pub(crate) struct PlayInbound {
    pub(crate) shared: Weak<PlayShared>,
}

fn reply_code(mesh: &Mesh, packet: &RoutePacket, code: ErrorCode) {
    let empty = Packet::empty(MsgId::from(packet.header.msg_id.as_str()));
    if let Err(error) = mesh.reply(&packet.header, code, empty) {
        tracing::debug!(%error, "mesh reply not delivered");
    }
}

fn reply_message<M: Message + Name>(mesh: &Mesh, packet: &RoutePacket, message: &M) {
    if let Err(error) = mesh.reply(
        &packet.header,
        ErrorCode::SUCCESS,
        Packet::from_message(message),
    ) {
        tracing::debug!(%error, "mesh reply not delivered");
    }
}

impl InboundHandler for PlayInbound {
    fn handle(&self, mesh: &Mesh, packet: RoutePacket) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let header = &packet.header;
        if header.is_framework {
            framework(&shared, mesh, packet);
        } else if header.is_system {
            let sender = ApiSender::new(
                Arc::clone(&shared.stage_env.mesh),
                Some(header.clone()),
                shared.stage_env.services.clone(),
            );
            if !shared
                .system
                .dispatch(mesh, packet.clone(), sender, &shared.handler_limit)
            {
                reply_code(mesh, &packet, ErrorCode::HANDLER_NOT_FOUND);
            }
        } else if header.stage_id != 0 {
            to_stage(&shared, mesh, packet);
        } else {
            reply_code(mesh, &packet, ErrorCode::HANDLER_NOT_FOUND);
        }
    }
}

/// Queues a mesh message into its stage's mailbox without blocking the mesh.
///
/// This runs on the link's receive task, so it never waits. A full mailbox refuses the
/// message instead of queueing it anywhere else: a request is answered at once with
/// [`ErrorCode::STAGE_BUSY`], a one-way message is dropped; both are counted. Memory stays
/// bounded by the mailbox capacity, and what the stage does take keeps each sender's order
/// (nothing waits on the side to overtake, or be overtaken by, later messages).
fn to_stage(shared: &PlayShared, mesh: &Mesh, packet: RoutePacket) {
    let Some(stage) = shared.stage_env.registry.get(packet.header.stage_id) else {
        reply_code(mesh, &packet, ErrorCode::STAGE_NOT_FOUND);
        return;
    };
    match stage.tx.try_send(StageMsg::Server { packet }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(StageMsg::Server { packet })) => {
            let request = packet.header.msg_seq != 0;
            shared.metrics.stage_busy(request);
            tracing::debug!(
                stage_id = packet.header.stage_id,
                from = %packet.header.from,
                msg_id = %packet.header.msg_id,
                request,
                "stage mailbox full; mesh message refused"
            );
            reply_code(mesh, &packet, ErrorCode::STAGE_BUSY);
        }
        Err(mpsc::error::TrySendError::Closed(StageMsg::Server { packet })) => {
            reply_code(mesh, &packet, ErrorCode::STAGE_NOT_FOUND);
        }
        Err(_) => {}
    }
}

fn framework(shared: &Arc<PlayShared>, mesh: &Mesh, packet: RoutePacket) {
    let msg_id = packet.header.msg_id.as_str();
    if msg_id == CreateStageReq::NAME {
        let Ok(request) = CreateStageReq::decode(packet.payload.clone()) else {
            return reply_code(mesh, &packet, ErrorCode::INVALID_MESSAGE);
        };
        create(
            shared,
            mesh,
            packet,
            request.stage_type,
            request.stage_id,
            request.msg_id,
            request.payload,
            false,
        );
    } else if msg_id == GetOrCreateStageReq::NAME {
        let Ok(request) = GetOrCreateStageReq::decode(packet.payload.clone()) else {
            return reply_code(mesh, &packet, ErrorCode::INVALID_MESSAGE);
        };
        create(
            shared,
            mesh,
            packet,
            request.stage_type,
            request.stage_id,
            request.msg_id,
            request.payload,
            true,
        );
    } else if msg_id == DestroyStageReq::NAME {
        let Ok(request) = DestroyStageReq::decode(packet.payload.clone()) else {
            return reply_code(mesh, &packet, ErrorCode::INVALID_MESSAGE);
        };
        let destroyed = match shared.stage_env.registry.get(request.stage_id) {
            // Like any mesh message: never parked on a task; a full mailbox is refused.
            Some(stage) => match stage.tx.try_send(StageMsg::Close) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return reply_code(mesh, &packet, ErrorCode::STAGE_BUSY);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
            None => false,
        };
        reply_message(mesh, &packet, &DestroyStageRes { destroyed });
    } else {
        reply_code(mesh, &packet, ErrorCode::HANDLER_NOT_FOUND);
    }
}

#[allow(clippy::too_many_arguments)]
fn create(
    shared: &Arc<PlayShared>,
    mesh: &Mesh,
    packet: RoutePacket,
    stage_type: String,
    stage_id: i64,
    create_msg_id: String,
    create_payload: Bytes,
    or_get: bool,
) {
    let registry = &shared.stage_env.registry;
    let Some(kind) = shared.kinds.get(&stage_type).cloned() else {
        return reply_code(mesh, &packet, ErrorCode::INVALID_STAGE_TYPE);
    };
    if shared.control.is_stopping() {
        return reply_code(mesh, &packet, ErrorCode::SYSTEM_ERROR);
    }
    let stage_id = match stage_id {
        0 => registry.generate_id(),
        id => id,
    };
    let (done_tx, done_rx) = oneshot::channel();
    let create_packet = Packet::new(MsgId::from(create_msg_id.as_str()), create_payload);
    let spawned = registry.get_or_spawn(
        &shared.stage_env,
        stage_id,
        kind.as_ref() as &dyn StageKind,
        || CreateRequest {
            packet: create_packet,
            done: Some(done_tx),
        },
    );
    let created = match spawned {
        Ok((_, created)) => created,
        Err(code) => return reply_code(mesh, &packet, code),
    };
    if !created {
        if or_get {
            let res = GetOrCreateStageRes {
                stage_id,
                is_created: false,
                ..GetOrCreateStageRes::default()
            };
            reply_message(mesh, &packet, &res);
        } else {
            reply_code(mesh, &packet, ErrorCode::STAGE_ALREADY_EXISTS);
        }
        return;
    }
    let mesh = mesh.clone();
    tokio::spawn(async move {
        match done_rx.await {
            Ok(Ok(reply)) if or_get => {
                let res = GetOrCreateStageRes {
                    stage_id,
                    is_created: true,
                    msg_id: reply.msg_id.to_string(),
                    payload: reply.payload,
                };
                reply_message(&mesh, &packet, &res);
            }
            Ok(Ok(reply)) => {
                let res = CreateStageRes {
                    stage_id,
                    msg_id: reply.msg_id.to_string(),
                    payload: reply.payload,
                };
                reply_message(&mesh, &packet, &res);
            }
            Ok(Err(code)) => reply_code(&mesh, &packet, code),
            Err(_) => reply_code(&mesh, &packet, ErrorCode::STAGE_CREATION_FAILED),
        }
    });
}
