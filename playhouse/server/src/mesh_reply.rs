//! Replies to mesh requests. A reply that cannot be delivered (the requester's server is
//! gone, or its link is down) is logged here, once for every replier: the requester's own
//! timeout tells it the rest.

use playhouse_mesh::{Mesh, Route};
use playhouse_protocol::{ErrorCode, MsgId, Packet};
use prost::{Message, Name};

/// Replies to `request` with `code` and `packet`.
pub(crate) fn send(mesh: &Mesh, request: &Route, code: ErrorCode, packet: Packet) {
    if let Err(error) = mesh.reply(request, code, packet) {
        tracing::debug!(%error, "mesh reply not delivered");
    }
}

/// Replies to `request` with `code` and an empty packet of the request's message id.
pub(crate) fn send_code(mesh: &Mesh, request: &Route, code: ErrorCode) {
    send(
        mesh,
        request,
        code,
        Packet::empty(MsgId::from(request.msg_id())),
    );
}

/// Replies to `request` with `message`.
pub(crate) fn send_message<M: Message + Name>(mesh: &Mesh, request: &Route, message: &M) {
    send(
        mesh,
        request,
        ErrorCode::SUCCESS,
        Packet::from_message(message),
    );
}

/// A message for a stage that moved to server `target`: a request is answered `STAGE_MOVED`
/// with the new server's id (the sender's mesh retries there and remembers it); a one-way
/// message is passed on.
pub(crate) fn forward_moved(mesh: &Mesh, packet: playhouse_mesh::RoutePacket, target: &str) {
    if packet.route.is_request() {
        let moved = Packet::new(packet.route.msg_id(), target.to_owned());
        send(mesh, &packet.route, ErrorCode::STAGE_MOVED, moved);
    } else if let Err(error) = mesh.send(target, packet.route, packet.payload) {
        tracing::debug!(%error, target, "could not pass a message on to a moved stage");
    }
}
