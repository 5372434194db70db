//! What goes into a stage's mailbox, and the handle that puts it there.

use playhouse_mesh::RoutePacket;
use playhouse_protocol::{ErrorCode, MsgId, Packet};
use tokio::sync::{mpsc, oneshot};

use crate::session_handle::{SessionHandle, SessionId};

/// A message to a stage's mailbox.
#[derive(Debug)]
pub(crate) enum StageMsg {
    /// A client authenticates into the stage.
    Join {
        session: SessionHandle,
        /// The authenticate reply id, e.g. `AuthenticateReply`.
        reply_id: MsgId,
        seq: u16,
        packet: Packet,
        done: oneshot::Sender<JoinOutcome>,
    },
    /// A message from a joined client.
    Client {
        actor: u64,
        session: SessionId,
        seq: u16,
        packet: Packet,
    },
    /// A joined client's connection ended.
    Disconnected { actor: u64, session: SessionId },
    /// A message from another server (`Stage::on_dispatch_server`).
    Server { packet: RoutePacket },
    /// The server is stopping.
    Close,
}

/// The result of a join, for the session's state machine.
#[derive(Debug)]
pub(crate) enum JoinOutcome {
    Joined {
        actor: u64,
    },
    Rejected,
    /// The stage closed before it handled the join: the session may try again (a default
    /// stage type then creates a fresh stage under the same id).
    StageGone {
        packet: Packet,
    },
}

/// How a stage is created: the creating packet and, for creators that wait, a channel for
/// `on_create`'s answer.
#[derive(Debug)]
pub(crate) struct CreateRequest {
    pub(crate) packet: Packet,
    pub(crate) done: Option<oneshot::Sender<Result<Packet, ErrorCode>>>,
}

/// A live stage's mailbox.
#[derive(Clone, Debug)]
pub(crate) struct StageHandle {
    pub(crate) stage_id: i64,
    pub(crate) tx: mpsc::Sender<StageMsg>,
}
