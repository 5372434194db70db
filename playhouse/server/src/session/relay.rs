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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use playhouse_mesh::proto::relay_to_client::What;
use playhouse_mesh::proto::{ClientBoundFrame, RelayToClient, RelayToStage};
use playhouse_mesh::{Mesh, MeshError, REPLY_RETRY, Route, RoutePacket};
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
    /// The number of the next message relayed (`RelayToStage.order`): the stage takes them
    /// in this order, however they reach it.
    next_order: AtomicU64,
}

impl RelayLink {
    pub(crate) fn new(mesh: Mesh, server: Arc<str>, stage_id: i64) -> Self {
        RelayLink {
            mesh,
            server,
            stage_id,
            next_order: AtomicU64::new(1),
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
    pub(crate) async fn client(
        &self,
        actor: u64,
        session: SessionId,
        seq: u16,
        packet: Packet,
    ) -> Result<(), Undelivered> {
        let home = self.mesh.server_id().to_owned();
        // The caller waits for each send: one message numbered at a time.
        let order = self.next_order.load(Ordering::Relaxed);
        let message = client_message(actor, seq, packet.clone(), home, order);
        self.send(session, &message)
            .await
            .map_err(|()| Undelivered(packet))?;
        // Numbered only once sent: a message not sent leaves no gap to wait on.
        self.next_order.store(order + 1, Ordering::Relaxed);
        Ok(())
    }

    /// Tells the stage that actor `actor`'s connection ended.
    pub(crate) async fn disconnected(&self, actor: u64, session: SessionId) {
        let message = RelayToStage {
            actor,
            gone: true,
            home: self.mesh.server_id().to_owned(),
            ..RelayToStage::default()
        };
        let _ = self.send(session, &message).await;
    }

    async fn send(&self, session: SessionId, message: &RelayToStage) -> Result<(), ()> {
        let (route, payload) = stage_bound(self.stage_id, session, message);
        send_relayed(&self.mesh, &self.server, route, payload)
            .await
            .map_err(|error| {
                tracing::debug!(%error, server = %self.server, "relay to the stage failed");
            })
    }
}

/// A client's message for actor `actor` (`seq` 0: one-way), relayed from its home `home`
/// as its number `order` there.
fn client_message(actor: u64, seq: u16, packet: Packet, home: String, order: u64) -> RelayToStage {
    RelayToStage {
        actor,
        msg_seq: u32::from(seq),
        msg_id: packet.msg_id.to_string(),
        payload: packet.payload,
        gone: false,
        home,
        order,
    }
}

/// The route and payload that take `message` to stage `stage_id`, for session `session`.
fn stage_bound(stage_id: i64, session: SessionId, message: &RelayToStage) -> (Route, Bytes) {
    let route = Route::new(RelayToStage::NAME)
        .with_framework(true)
        .with_stage(stage_id)
        .with_sid(session);
    (route, Bytes::from(message.encode_to_vec()))
}

/// The route and payload that take `what` back to session `session` at its home.
pub(crate) fn client_bound(session: SessionId, what: What) -> (Route, Bytes) {
    let route = Route::new(RelayToClient::NAME)
        .with_framework(true)
        .with_sid(session);
    let message = RelayToClient { what: Some(what) };
    (route, Bytes::from(message.encode_to_vec()))
}

/// Sends one relayed message to `target`, which this server may not have met yet (the stage
/// just moved there): while it is not reachable, the directory is read once and the send
/// retried, for up to [`REPLY_RETRY`]. The caller waits, so what it relays stays in order.
pub(crate) async fn send_relayed(
    mesh: &Mesh,
    target: &str,
    route: Route,
    payload: Bytes,
) -> Result<(), MeshError> {
    let give_up = tokio::time::Instant::now() + REPLY_RETRY;
    let mut refreshed = false;
    loop {
        let header = Route::from_header(route.to_header());
        match mesh.send(target, header, payload.clone()) {
            Err(MeshError::ServerNotFound(_)) if tokio::time::Instant::now() < give_up => {
                if !refreshed {
                    refreshed = mesh.refresh().await.is_ok();
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
            other => return other,
        }
    }
}

/// How often a relayed message to a server not reachable yet is tried again.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// A relayed player's message that reached its stage's mailbox as the stage moved away.
pub(crate) struct RelayedMessage {
    pub(crate) stage_id: i64,
    pub(crate) actor: u64,
    pub(crate) seq: u16,
    pub(crate) packet: Packet,
    /// Its number from the home: the stage's next server takes it in that order.
    pub(crate) order: u64,
}

impl RelayedMessage {
    /// Passes the message on to the stage at `target`, from stand-in `from` (whose home is
    /// where errors go).
    pub(crate) fn pass_on(self, mesh: &Mesh, target: &str, from: &SessionHandle) {
        let Some((home, session)) = from.home() else {
            return;
        };
        let home = home.to_string();
        let message = client_message(self.actor, self.seq, self.packet, home, self.order);
        let (route, payload) = stage_bound(self.stage_id, session, &message);
        if let Err(error) = mesh.send(target, route, payload) {
            tracing::debug!(%error, target, "could not pass a relayed message on");
        }
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
