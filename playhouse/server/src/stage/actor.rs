use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use playhouse_mesh::Mesh;
use playhouse_mesh::Route;
use playhouse_protocol::{ErrorCode, MsgId, Packet, ServerFrame};

use crate::mesh_reply;
use crate::reply::error_frame;
use crate::services::Services;
use crate::session::handle::SessionHandle;

/// The user's actor factory, as a stage type keeps it.
pub(crate) type ActorFactory<A> = dyn Fn(&ActorInit<'_>) -> A + Send + Sync;

/// What an actor factory gets to build an actor.
#[derive(Debug)]
pub struct ActorInit<'a> {
    /// The stage the actor is joining.
    pub stage_id: i64,
    /// The stage's type name.
    pub stage_type: &'a str,
    /// The server's shared services.
    pub services: &'a Services,
}

/// An actor together with its [`ActorLink`], as stage callbacks see it. Derefs to the actor.
#[derive(Debug)]
pub struct ActorCell<A> {
    /// The user's actor.
    pub actor: A,
    /// The framework side of the actor: account id, connection, replies.
    pub link: ActorLink,
}

impl<A> Deref for ActorCell<A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.actor
    }
}

impl<A> DerefMut for ActorCell<A> {
    fn deref_mut(&mut self) -> &mut A {
        &mut self.actor
    }
}

/// The current client request being dispatched to an actor.
#[derive(Clone, Debug)]
struct Current {
    msg_id: MsgId,
    seq: u16,
}

/// The actor sender: what actor code can do with its player.
#[derive(Debug)]
pub struct ActorLink {
    stage_id: i64,
    account_id: Arc<str>,
    session: Option<SessionHandle>,
    current: Option<Current>,
    leave: bool,
}

impl ActorLink {
    /// The link of an actor without a connection (one that moved here without its client).
    pub(crate) fn detached(stage_id: i64) -> Self {
        ActorLink {
            stage_id,
            account_id: Arc::from(""),
            session: None,
            current: None,
            leave: false,
        }
    }

    pub(crate) fn new(stage_id: i64, session: SessionHandle) -> Self {
        ActorLink {
            stage_id,
            account_id: Arc::from(""),
            session: Some(session),
            current: None,
            leave: false,
        }
    }

    /// The account id set by `on_authenticate` (empty before).
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    pub(crate) fn account_arc(&self) -> &Arc<str> {
        &self.account_id
    }

    /// Sets the account id; call it from [`crate::Actor::on_authenticate`].
    pub fn set_account_id(&mut self, account_id: impl Into<Arc<str>>) {
        self.account_id = account_id.into();
    }

    /// The stage this actor belongs to.
    pub fn stage_id(&self) -> i64 {
        self.stage_id
    }

    /// Whether the player's client is connected right now.
    pub fn is_connected(&self) -> bool {
        self.session.is_some()
    }

    /// Pushes a message to the player's client (dropped while it is disconnected).
    pub fn send_to_client(&self, packet: Packet) {
        if let Some(session) = &self.session {
            session.send(ServerFrame::from_packet(packet, 0, self.stage_id));
        }
    }

    /// Asks the framework to remove this actor from the stage after the current callback
    /// (`on_destroy` runs; the client stays connected and may authenticate again).
    pub fn leave_stage(&mut self) {
        self.leave = true;
    }

    /// Whether the message being dispatched is a request that expects a reply.
    pub fn is_request(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.seq != 0)
    }

    /// Replies to the client request being dispatched. Ignored for one-way messages.
    pub fn reply(&mut self, packet: Packet) {
        let stage_id = self.stage_id;
        if let Some((session, current)) = self.answer() {
            session.send(ServerFrame::from_packet(packet, current.seq, stage_id));
        }
    }

    /// Replies to the client request being dispatched with an error code and no payload.
    pub fn reply_error(&mut self, code: ErrorCode) {
        let stage_id = self.stage_id;
        if let Some((session, current)) = self.answer() {
            session.send(error_frame(current.msg_id, current.seq, stage_id, code));
        }
    }

    /// Replies to the client request being dispatched with an error code and a packet (its
    /// message id and payload, e.g. details of the failure); the client's request fails with
    /// `code` and still receives the packet.
    pub fn reply_error_with(&mut self, code: ErrorCode, packet: Packet) {
        let stage_id = self.stage_id;
        if let Some((session, current)) = self.answer() {
            let frame =
                ServerFrame::new(packet.msg_id, current.seq, stage_id, code, packet.payload);
            session.send(frame);
        }
    }

    /// Takes the request being dispatched to answer it now, with the connection the answer
    /// goes to: `None` for a one-way message, one already answered, or while disconnected
    /// (the request then stays unanswered). Borrows the connection: no handle is cloned per
    /// reply.
    fn answer(&mut self) -> Option<(&SessionHandle, Current)> {
        let session = self.session.as_ref()?;
        self.current.as_ref().filter(|c| c.seq != 0)?;
        Some((session, self.current.take()?))
    }

    /// A handle to answer the current request later (e.g. from an async block's `post`).
    /// `None` for one-way messages, when already answered, or when disconnected.
    pub fn reply_target(&self) -> Option<ReplyTarget> {
        let current = self.current.as_ref().filter(|c| c.seq != 0)?;
        Some(ReplyTarget {
            to: ReplyTo::Client {
                session: self.session.clone()?,
                msg_id: current.msg_id.clone(),
                seq: current.seq,
                stage_id: self.stage_id,
            },
        })
    }

    pub(crate) fn session(&self) -> Option<&SessionHandle> {
        self.session.as_ref()
    }

    pub(crate) fn set_session(&mut self, session: Option<SessionHandle>) -> Option<SessionHandle> {
        std::mem::replace(&mut self.session, session)
    }

    pub(crate) fn begin(&mut self, msg_id: MsgId, seq: u16) {
        self.current = Some(Current { msg_id, seq });
    }

    pub(crate) fn end(&mut self) {
        self.current = None;
    }

    pub(crate) fn wants_leave(&self) -> bool {
        self.leave
    }
}

/// Where the reply to one request goes (a client's, or another server's). Replying consumes
/// it: one request, one reply.
#[derive(Debug)]
pub struct ReplyTarget {
    to: ReplyTo,
}

#[derive(Debug)]
enum ReplyTo {
    Client {
        session: SessionHandle,
        msg_id: MsgId,
        seq: u16,
        stage_id: i64,
    },
    Mesh {
        mesh: Mesh,
        request: Route,
    },
}

impl ReplyTarget {
    /// The reply to a mesh request.
    pub(crate) fn mesh(mesh: Mesh, request: Route) -> Self {
        ReplyTarget {
            to: ReplyTo::Mesh { mesh, request },
        }
    }

    /// Sends `packet` as the reply.
    pub fn reply(self, packet: Packet) {
        match self.to {
            ReplyTo::Client {
                session,
                seq,
                stage_id,
                ..
            } => session.send(ServerFrame::from_packet(packet, seq, stage_id)),
            ReplyTo::Mesh { mesh, request } => {
                mesh_reply::send(&mesh, &request, ErrorCode::SUCCESS, packet);
            }
        }
    }

    /// Sends an empty reply carrying `code`; the client's request fails with it.
    pub fn reply_error(self, code: ErrorCode) {
        match self.to {
            ReplyTo::Client {
                session,
                msg_id,
                seq,
                stage_id,
            } => session.send(error_frame(msg_id, seq, stage_id, code)),
            ReplyTo::Mesh { mesh, request } => mesh_reply::send_code(&mesh, &request, code),
        }
    }

    /// Sends a reply carrying `code` and `packet` (e.g. details for the requester): the
    /// request fails with `code`, and the requester still receives the packet.
    pub fn reply_error_with(self, code: ErrorCode, packet: Packet) {
        match self.to {
            ReplyTo::Client {
                session,
                seq,
                stage_id,
                ..
            } => session.send(ServerFrame::new(
                packet.msg_id,
                seq,
                stage_id,
                code,
                packet.payload,
            )),
            ReplyTo::Mesh { mesh, request } => mesh_reply::send(&mesh, &request, code, packet),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::session::handle::{Outbound, QueuedBytes};

    fn linked() -> (ActorLink, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(8);
        let queued = Arc::new(QueuedBytes::new(usize::MAX));
        let session = SessionHandle::new(1, tx, CancellationToken::new(), Arc::default(), queued);
        (ActorLink::new(7, session), rx)
    }

    fn sent(rx: &mut mpsc::Receiver<Outbound>) -> Option<ServerFrame> {
        match rx.try_recv().ok()? {
            Outbound::Frame(frame) => Some(frame),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn a_request_is_answered_once_with_its_seq_and_stage() {
        let (mut link, mut rx) = linked();
        link.begin(MsgId::from_static("Ask"), 5);
        assert!(link.is_request());
        link.reply(Packet::new("Answer", &b"a"[..]));
        let frame = sent(&mut rx).expect("the reply");
        assert_eq!(
            (frame.msg_id.as_ref(), frame.msg_seq, frame.stage_id),
            ("Answer", 5, 7)
        );
        assert_eq!(&frame.payload[..], b"a");
        // Answered: a second reply and an error reply are ignored.
        assert!(!link.is_request());
        link.reply(Packet::empty("Again"));
        link.reply_error(ErrorCode::INVALID_MESSAGE);
        assert!(sent(&mut rx).is_none());
    }

    #[test]
    fn error_replies_carry_the_code_and_the_request_or_packet_id() {
        let (mut link, mut rx) = linked();
        link.begin(MsgId::from_static("Ask"), 2);
        link.reply_error(ErrorCode::HANDLER_NOT_FOUND);
        let frame = sent(&mut rx).expect("the error reply");
        assert_eq!(
            (frame.msg_id.as_ref(), frame.msg_seq, frame.error_code),
            ("Ask", 2, ErrorCode::HANDLER_NOT_FOUND)
        );
        link.begin(MsgId::from_static("Ask"), 3);
        link.reply_error_with(ErrorCode::INVALID_MESSAGE, Packet::new("Why", &b"w"[..]));
        let frame = sent(&mut rx).expect("the error reply with a packet");
        assert_eq!(
            (frame.msg_id.as_ref(), frame.msg_seq, frame.error_code),
            ("Why", 3, ErrorCode::INVALID_MESSAGE)
        );
        assert_eq!(&frame.payload[..], b"w");
    }

    #[test]
    fn one_way_messages_and_disconnected_players_get_no_reply() {
        let (mut link, mut rx) = linked();
        link.begin(MsgId::from_static("Tell"), 0);
        link.reply(Packet::empty("Answer"));
        assert!(sent(&mut rx).is_none());

        // Disconnected: nothing is sent and the request stays the current one.
        link.begin(MsgId::from_static("Ask"), 4);
        let session = link.set_session(None);
        link.reply(Packet::empty("Answer"));
        assert!(link.is_request());
        link.set_session(session);
        link.reply(Packet::empty("Answer"));
        assert_eq!(sent(&mut rx).map(|f| f.msg_seq), Some(4));
    }
}
