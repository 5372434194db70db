//! The stage a joined session talks to: on this server, or relayed to the server it moved to
//! (see `relay`).

use playhouse_protocol::Packet;

use super::handle::SessionId;
use super::relay::RelayLink;
use crate::stage::handle::{StageHandle, Undelivered};

/// Where a joined session's stage runs.
#[derive(Debug)]
pub(crate) enum StageRef {
    /// Here: its mailbox.
    Local(StageHandle),
    /// On another Play server, reached over the mesh.
    Relayed(RelayLink),
}

impl StageRef {
    pub(crate) fn stage_id(&self) -> i64 {
        match self {
            StageRef::Local(stage) => stage.stage_id(),
            StageRef::Relayed(link) => link.stage_id(),
        }
    }

    /// Passes on a message from actor `actor`'s client (waiting while a local mailbox is
    /// full); handed back when the stage is gone.
    pub(crate) async fn client(
        &self,
        actor: u64,
        session: SessionId,
        seq: u16,
        packet: Packet,
    ) -> Result<(), Undelivered> {
        match self {
            StageRef::Local(stage) => stage.client(actor, session, seq, packet).await,
            // Boxed: the relayed path (mesh sends, a directory read) is rare and its future
            // large, and every session's future would hold it inline.
            StageRef::Relayed(link) => Box::pin(link.client(actor, session, seq, packet)).await,
        }
    }

    /// Tells the stage that actor `actor`'s connection ended.
    pub(crate) async fn disconnected(&self, actor: u64, session: SessionId) {
        match self {
            StageRef::Local(stage) => stage.disconnected(actor, session).await,
            StageRef::Relayed(link) => link.disconnected(actor, session).await,
        }
    }
}

impl From<StageHandle> for StageRef {
    fn from(stage: StageHandle) -> Self {
        StageRef::Local(stage)
    }
}
