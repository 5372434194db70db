//! A stage moving here from a draining Play server (`MoveStageReq`): its players' sessions
//! adopted under their tokens, the stage rebuilt, and the sender answered with where clients
//! reach this server (`MoveStageRes`), once the stage runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use playhouse_mesh::proto::{MoveStageReq, MoveStageRes, MoveStatusReq};
use playhouse_mesh::{Mesh, RoutePacket};
use playhouse_protocol::ErrorCode;
use prost::Message;

use crate::mesh_reply;
use crate::session::context::SessionContext;
use crate::session::moving::adopt;
use crate::session::relay_proxy::stand_in;
use crate::stage::host::StageHost;
use crate::stage::moving::{ActorSnapshot, Held, StageSnapshot, session_from_wire};

/// Takes in a moving stage and answers its sender (never waits: runs on the link's task).
pub(super) fn move_in(
    host: &StageHost,
    sessions: Option<Arc<SessionContext>>,
    mesh: &Mesh,
    packet: RoutePacket,
) {
    let Ok(request) = MoveStageReq::decode(packet.payload.clone()) else {
        return mesh_reply::send_code(mesh, &packet.route, ErrorCode::INVALID_MESSAGE);
    };
    let mut adopted = Vec::new();
    let mut stand_ins = Vec::new();
    let mut actors = Vec::with_capacity(request.actors.len());
    for moved in request.actors {
        let state = moved.session.and_then(session_from_wire);
        let session = state.and_then(|state| adopt(sessions.as_ref()?, state));
        let mut handle = session.map(|(handle, session)| {
            adopted.push((moved.key, session));
            handle
        });
        // A player connected without resume plays on through its home server.
        let mut relay_next = 0;
        if let (None, Some(relay), Some(sessions)) = (&handle, moved.relay, &sessions) {
            relay_next = relay.next_order.max(1);
            let home = Arc::from(relay.home);
            let (stand_in_handle, forwarder) =
                stand_in(sessions, mesh.clone(), home, relay.session);
            stand_ins.push((moved.key, forwarder));
            handle = Some(stand_in_handle);
        }
        actors.push(ActorSnapshot {
            key: moved.key,
            account_id: moved.account_id,
            state: moved.state,
            session: handle,
            relay_next,
        });
    }
    let snapshot = StageSnapshot {
        state: request.state,
        actors,
        held: request.held.into_iter().map(Held::from_wire).collect(),
    };
    let (stage, restored) = match host.restore(&request.stage_type, request.stage_id, snapshot) {
        Ok(restoring) => restoring,
        Err(code) => {
            for (_, session) in adopted {
                session.discard();
            }
            tracing::warn!(stage_id = request.stage_id, %code, "a stage could not move here");
            return mesh_reply::send_code(mesh, &packet.route, code);
        }
    };
    for (key, session) in adopted {
        session.start(stage.clone(), key);
    }
    for (key, forwarder) in stand_ins {
        forwarder.start(stage.clone(), key);
    }
    let endpoints = advertised(host.endpoints(), mesh.address());
    let mesh = mesh.clone();
    tokio::spawn(async move {
        match restored.await {
            Ok(Ok(())) => {
                let from = packet.route.from();
                tracing::info!(stage_id = stage.stage_id(), %from, "stage moved in");
                mesh.stage_moved_in(from, stage.stage_id());
                let endpoints = endpoints.into_iter().collect();
                mesh_reply::send_message(&mesh, &packet.route, &MoveStageRes { endpoints });
            }
            Ok(Err(code)) => mesh_reply::send_code(&mesh, &packet.route, code),
            Err(_) => mesh_reply::send_code(&mesh, &packet.route, ErrorCode::STAGE_CREATION_FAILED),
        }
    });
}

/// Whether a stage that moved here runs here (its mover lost our answer): answered as the
/// move would have been, or `STAGE_NOT_FOUND`.
pub(super) fn move_status(host: &StageHost, mesh: &Mesh, packet: RoutePacket) {
    let Ok(request) = MoveStatusReq::decode(packet.payload.clone()) else {
        return mesh_reply::send_code(mesh, &packet.route, ErrorCode::INVALID_MESSAGE);
    };
    if host.get(request.stage_id).is_none() {
        return mesh_reply::send_code(mesh, &packet.route, ErrorCode::STAGE_NOT_FOUND);
    }
    let endpoints = advertised(host.endpoints(), mesh.address());
    let endpoints = endpoints.into_iter().collect();
    mesh_reply::send_message(mesh, &packet.route, &MoveStageRes { endpoints });
}

/// Client endpoints as a client elsewhere can dial them: a listener bound to every interface
/// (`0.0.0.0`, `[::]`) is reached at the host this server advertises on the mesh.
fn advertised(endpoints: BTreeMap<String, String>, mesh_address: &str) -> BTreeMap<String, String> {
    let mesh_host = mesh_address
        .rsplit_once("://")
        .map_or(mesh_address, |(_, rest)| rest)
        .rsplit_once(':')
        .map(|(host, _)| host.to_owned());
    endpoints
        .into_iter()
        .map(|(transport, endpoint)| {
            let endpoint = match (endpoint.parse::<SocketAddr>(), &mesh_host) {
                (Ok(addr), Some(host)) if addr.ip().is_unspecified() => {
                    format!("{host}:{}", addr.port())
                }
                _ => endpoint,
            };
            (transport, endpoint)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::advertised;

    #[test]
    fn wildcard_listeners_are_advertised_at_the_mesh_host() {
        let endpoints = [
            ("tcp".to_owned(), "0.0.0.0:7000".to_owned()),
            ("ws".to_owned(), "10.0.0.2:7001".to_owned()),
        ]
        .into_iter()
        .collect();
        let out = advertised(endpoints, "tcp://10.0.0.9:5000");
        assert_eq!(out["tcp"], "10.0.0.9:7000");
        assert_eq!(out["ws"], "10.0.0.2:7001");
    }
}
