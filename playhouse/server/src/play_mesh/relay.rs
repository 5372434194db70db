//! Relayed players' traffic at the server their stage moved to: a client's message from its
//! home (`RelayToStage`) goes into the stage's mailbox as if the client were connected here
//! (see `session::relay` for the home, `session::relay_proxy` for the way back).

use playhouse_mesh::proto::RelayToStage;
use playhouse_mesh::proto::relay_to_client::What;
use playhouse_mesh::{Mesh, Route, RoutePacket};
use playhouse_protocol::{ErrorCode, MsgId, Packet};
use prost::Message;

use crate::reply::error_frame;
use crate::session::handle::RELAYED;
use crate::session::relay::{client_bound, frame_to_wire};
use crate::stage::host::StageHost;

/// A relayed client's message, or the end of its connection (never waits: runs on the
/// link's task). A request the stage cannot take is answered with why.
pub(super) fn to_stage(host: &StageHost, mesh: &Mesh, packet: RoutePacket) {
    let Ok(message) = RelayToStage::decode(packet.payload.clone()) else {
        tracing::warn!(from = %packet.route.from(), "malformed relayed message; dropped");
        return;
    };
    let stage_id = packet.route.stage_id();
    let session = packet.route.sid() | RELAYED;
    let Some(stage) = host.get(stage_id) else {
        return match host.moved_to(stage_id) {
            // It moved on: passed along (the home learns the new server from the stage).
            Some(target) => {
                if let Err(error) = mesh.send(&target, packet.route, packet.payload) {
                    tracing::debug!(%error, "could not pass a relayed message on");
                }
            }
            None => refuse(mesh, &message, &packet.route, ErrorCode::STAGE_NOT_FOUND),
        };
    };
    if message.gone {
        let actor = message.actor;
        tokio::spawn(async move { stage.disconnected(actor, session).await });
        return;
    }
    let seq = u16::try_from(message.msg_seq).unwrap_or(0);
    let client = Packet::new(
        MsgId::from(message.msg_id.as_str()),
        message.payload.clone(),
    );
    if let Err(code) = stage.try_client(message.actor, session, seq, client, message.order) {
        refuse(mesh, &message, &packet.route, code);
    }
}

/// Answers a relayed request with `code` (a one-way message is dropped).
fn refuse(mesh: &Mesh, message: &RelayToStage, route: &Route, code: ErrorCode) {
    let Ok(seq) = u16::try_from(message.msg_seq) else {
        return;
    };
    if seq == 0 || message.gone {
        return;
    }
    let msg_id = MsgId::from(message.msg_id.as_str());
    let frame = error_frame(msg_id, seq, route.stage_id(), code);
    let (back, payload) = client_bound(route.sid(), What::Frame(frame_to_wire(&frame)));
    if let Err(error) = mesh.send(&message.home, back, payload) {
        tracing::debug!(%error, "could not answer a relayed request");
    }
}
