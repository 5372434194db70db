//! How a Play server answers the mesh: framework commands (see [`command`]), messages to its
//! stages (`on_dispatch_server`) and system handlers.

mod command;
mod move_in;
mod relay;

use std::sync::{Arc, Weak};

use playhouse_mesh::{InboundHandler, Mesh, RoutePacket};
use playhouse_protocol::ErrorCode;
use tokio::sync::Semaphore;

use crate::api_sender::ApiSender;
use crate::handlers::HandlerRegistry;
use crate::mesh_reply;
use crate::metrics::Metrics;
use crate::session::context::SessionContext;
use crate::stage::handle::NotQueued;
use crate::stage::host::StageHost;
use playhouse_mesh::proto::{MoveStageReq, MoveStatusReq, RelayToClient, RelayToStage};
use prost::Name;

use self::command::Command;

/// Most system handlers running at once; further requests get `SystemError`.
const SYSTEM_HANDLER_LIMIT: usize = 10_000;

/// The Play server's mesh inbound handler. Holds the stage host weakly: the host owns the
/// mesh node, which owns this handler.
pub(crate) struct PlayInbound {
    host: Weak<StageHost>,
    /// Where stages moving here adopt their players' sessions (weak, as the host).
    sessions: Weak<SessionContext>,
    system: HandlerRegistry,
    handler_limit: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl PlayInbound {
    pub(crate) fn new(
        host: &Arc<StageHost>,
        sessions: &Arc<SessionContext>,
        system: HandlerRegistry,
        metrics: Arc<Metrics>,
    ) -> Self {
        PlayInbound {
            host: Arc::downgrade(host),
            sessions: Arc::downgrade(sessions),
            system,
            handler_limit: Arc::new(Semaphore::new(SYSTEM_HANDLER_LIMIT)),
            metrics,
        }
    }

    /// Runs a system handler (`send_to_system` / `request_to_system`).
    fn system(&self, host: &StageHost, mesh: &Mesh, packet: RoutePacket) {
        let sender = ApiSender::new(
            Arc::clone(host.mesh()),
            Some(packet.route.clone()),
            host.services().clone(),
        );
        if !self
            .system
            .dispatch(mesh, packet.clone(), sender, &self.handler_limit)
        {
            mesh_reply::send_code(mesh, &packet.route, ErrorCode::HANDLER_NOT_FOUND);
        }
    }

    /// Queues a mesh message into its stage's mailbox without blocking the mesh.
    ///
    /// This runs on the link's receive task, so it never waits. A full mailbox refuses the
    /// message instead of queueing it anywhere else: a request is answered at once with
    /// [`ErrorCode::STAGE_BUSY`], a one-way message is dropped; both are counted. Memory stays
    /// bounded by the mailbox capacity, and what the stage does take keeps each sender's order
    /// (nothing waits on the side to overtake, or be overtaken by, later messages).
    fn to_stage(&self, host: &StageHost, mesh: &Mesh, packet: RoutePacket) {
        let Some(stage) = host.get(packet.route.stage_id()) else {
            return match host.moved_to(packet.route.stage_id()) {
                Some(target) => mesh_reply::forward_moved(mesh, packet, &target),
                None => mesh_reply::send_code(mesh, &packet.route, ErrorCode::STAGE_NOT_FOUND),
            };
        };
        match stage.try_server(packet) {
            Ok(()) => {}
            Err(NotQueued::Busy(packet)) => {
                let request = packet.route.is_request();
                self.metrics.stage_busy(request);
                tracing::debug!(
                    stage_id = packet.route.stage_id(),
                    from = %packet.route.from(),
                    msg_id = %packet.route.msg_id(),
                    request,
                    "stage mailbox full; mesh message refused"
                );
                mesh_reply::send_code(mesh, &packet.route, ErrorCode::STAGE_BUSY);
            }
            Err(NotQueued::Gone(packet)) => {
                mesh_reply::send_code(mesh, &packet.route, ErrorCode::STAGE_NOT_FOUND);
            }
        }
    }
}

impl InboundHandler for PlayInbound {
    fn handle(&self, mesh: &Mesh, packet: RoutePacket) {
        let Some(host) = self.host.upgrade() else {
            return;
        };
        let header = &packet.route;
        if header.is_framework() && header.msg_id() == MoveStageReq::NAME {
            move_in::move_in(&host, self.sessions.upgrade(), mesh, packet);
        } else if header.is_framework() && header.msg_id() == MoveStatusReq::NAME {
            move_in::move_status(&host, mesh, packet);
        } else if header.is_framework() && header.msg_id() == RelayToStage::NAME {
            relay::to_stage(&host, mesh, packet);
        } else if header.is_framework() && header.msg_id() == RelayToClient::NAME {
            if let Some(sessions) = self.sessions.upgrade() {
                crate::session::relay::to_client(sessions.relayed(), &packet);
            }
        } else if header.is_framework() {
            match Command::parse(&packet) {
                Ok(command) => command.apply(&host, mesh, packet),
                Err(code) => mesh_reply::send_code(mesh, &packet.route, code),
            }
        } else if header.is_system() {
            self.system(&host, mesh, packet);
        } else if header.stage_id() != 0 {
            self.to_stage(&host, mesh, packet);
        } else {
            mesh_reply::send_code(mesh, &packet.route, ErrorCode::HANDLER_NOT_FOUND);
        }
    }
}
