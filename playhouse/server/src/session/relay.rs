//! Relaying a player whose stage moved away, at its home: a client that did not opt into
//! resume (the original's connectors) cannot follow its stage to another server, so its
//! connection stays here and its session talks to the stage over the mesh instead.
//!
//! The session's messages go to the stage's server as [`RelayToStage`]; what the stage asks
//! of the connection comes back as [`RelayToClient`] (see `relay_proxy` for that side) and
//! is queued on the session's handle as if the stage were here. It lasts until the client
//! leaves, the stage closes, or this server's drain deadline closes the connection with
//! `STAGE_DRAINED`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use playhouse_mesh::proto::relay_to_client::What;
use playhouse_mesh::proto::{ClientBoundFrame, RelayToClient, RelayToStage};
use playhouse_mesh::{Mesh, Route, RoutePacket};
use playhouse_protocol::{ErrorCode, MsgId, Packet, ServerFrame};
use prost::{Message, Name};
use tokio::sync::Notify;

use super::handle::{Outbound, SessionHandle, SessionId};
use crate::stage::handle::Undelivered;

/// Where a relayed session's stage runs now.
#[derive(Debug)]
pub(crate) struct RelayLink {
    mesh: Mesh,
    /// The Play server the stage runs on.
    server: Arc<str>,
    stage_id: i64,
}

impl RelayLink {
    pub(crate) fn new(mesh: Mesh, server: Arc<str>, stage_id: i64) -> Self {
        RelayLink {
            mesh,
            server,
            stage_id,
        }
    }

    pub(crate) fn stage_id(&self) -> i64 {
        self.stage_id
    }

    /// The stage moved on to `server`.
    pub(crate) fn moved_to(&mut self, server: Arc<str>) {
        self.server = server;
    }

    /// Relays a message from actor `actor`'s client; handed back when the mesh cannot take
    /// it (the stage's server is gone).
    pub(crate) fn client(
        &self,
        actor: u64,
        session: SessionId,
        seq: u16,
        packet: Packet,
    ) -> Result<(), Undelivered> {
        let message = RelayToStage {
            actor,
            msg_seq: u32::from(seq),
            msg_id: packet.msg_id.to_string(),
            payload: packet.payload.clone(),
            gone: false,
            home: self.mesh.server_id().to_owned(),
        };
        self.send(session, &message)
            .map_err(|()| Undelivered(packet))
    }

    /// Tells the stage that actor `actor`'s connection ended.
    pub(crate) fn disconnected(&self, actor: u64, session: SessionId) {
        let message = RelayToStage {
            actor,
            gone: true,
            home: self.mesh.server_id().to_owned(),
            ..RelayToStage::default()
        };
        let _ = self.send(session, &message);
    }

    fn send(&self, session: SessionId, message: &RelayToStage) -> Result<(), ()> {
        let route = Route::new(RelayToStage::NAME)
            .with_framework(true)
            .with_stage(self.stage_id)
            .with_sid(session);
        let payload = Bytes::from(message.encode_to_vec());
        self.mesh
            .send(&self.server, route, payload)
            .map_err(|error| {
                tracing::debug!(%error, server = %self.server, "relay to the stage failed");
            })
    }
}

/// The sessions relayed from here, by id: where the stages' answers find them.
#[derive(Debug, Default)]
pub(crate) struct RelayedSessions {
    sessions: Mutex<HashMap<SessionId, SessionHandle>>,
    /// Woken when the last one ends.
    emptied: Notify,
}

impl RelayedSessions {
    pub(crate) fn insert(&self, handle: SessionHandle) {
        self.lock().insert(handle.id, handle);
    }

    pub(crate) fn remove(&self, id: SessionId) {
        let mut sessions = self.lock();
        if sessions.remove(&id).is_some() && sessions.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn get(&self, id: SessionId) -> Option<SessionHandle> {
        self.lock().get(&id).cloned()
    }

    /// Waits until no session is relayed from here.
    pub(crate) async fn all_ended(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.lock().is_empty() {
                return;
            }
            emptied.await;
        }
    }

    /// Closes every relayed connection, telling each client `code`.
    pub(crate) fn close_all(&self, code: ErrorCode) {
        for handle in self.lock().values() {
            handle.push(Outbound::Close(code));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, SessionHandle>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a relayed session's stage asks of its connection (arriving at home over the mesh).
pub(crate) fn to_client(relayed: &RelayedSessions, packet: &RoutePacket) {
    let Some(handle) = relayed.get(packet.route.sid()) else {
        return; // the connection ended meanwhile
    };
    let Ok(RelayToClient { what: Some(what) }) = RelayToClient::decode(packet.payload.clone())
    else {
        tracing::warn!(from = %packet.route.from(), "malformed relayed message; dropped");
        return;
    };
    match what {
        What::Frame(frame) => match frame_from_wire(frame) {
            Some(frame) => handle.send(frame),
            None => tracing::warn!("malformed relayed frame; dropped"),
        },
        What::Detached(code) => handle.push(Outbound::Detached(wire_code(code))),
        What::Close(code) => handle.push(Outbound::Close(wire_code(code))),
        What::MovedTo(server) => handle.push(Outbound::Relay(Arc::from(server))),
        What::Kill(_) => handle.close(),
    }
}

fn wire_code(code: u32) -> ErrorCode {
    ErrorCode(u16::try_from(code).unwrap_or(ErrorCode::SYSTEM_ERROR.0))
}

/// A client-bound frame as it travels between servers.
pub(crate) fn frame_to_wire(frame: &ServerFrame) -> ClientBoundFrame {
    ClientBoundFrame {
        msg_id: frame.msg_id.to_string(),
        msg_seq: u32::from(frame.msg_seq),
        stage_id: frame.stage_id,
        error_code: u32::from(frame.error_code.0),
        payload: frame.payload.clone(),
    }
}

/// A client-bound frame from the mesh; `None` when malformed.
pub(crate) fn frame_from_wire(frame: ClientBoundFrame) -> Option<ServerFrame> {
    Some(ServerFrame::new(
        MsgId::from(frame.msg_id.as_str()),
        u16::try_from(frame.msg_seq).ok()?,
        frame.stage_id,
        ErrorCode(u16::try_from(frame.error_code).ok()?),
        frame.payload,
    ))
}
