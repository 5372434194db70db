//! A relayed player's stand-in at the server its stage moved to: a session handle like any
//! other, so the stage needs to know nothing, whose queue is forwarded over the mesh to the
//! player's home server (see `relay`), which writes it to the connection.

use std::sync::Arc;

use playhouse_mesh::proto::relay_to_client::What;
use playhouse_mesh::{Mesh, MeshError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::context::SessionContext;
use super::handle::{Outbound, QueuedBytes, RELAYED, SessionHandle, SessionId};
use super::relay::{client_bound, frame_to_wire, send_relayed};
use crate::stage::handle::StageHandle;

/// The forwarding half of a stand-in, started once its stage runs.
pub(crate) struct StandIn {
    id: SessionId,
    rx: mpsc::Receiver<Outbound>,
    kill: CancellationToken,
    queued: Arc<QueuedBytes>,
    mesh: Mesh,
    home: Arc<str>,
}

/// A stand-in for session `session` of server `home`, whose client plays on in a stage here.
pub(crate) fn stand_in(
    ctx: &SessionContext,
    mesh: Mesh,
    home: Arc<str>,
    session: SessionId,
) -> (SessionHandle, StandIn) {
    let id = session | RELAYED;
    let (tx, rx) = mpsc::channel(ctx.config().session_outbound_capacity);
    let queued = QueuedBytes::new(ctx.config().session_outbound_bytes);
    let queued = Arc::new(queued.counted(Arc::clone(ctx.metrics())));
    let kill = ctx.stop_token().child_token();
    let handle = SessionHandle::new(
        id,
        tx,
        kill.clone(),
        Arc::clone(ctx.metrics()),
        Arc::clone(&queued),
    )
    .relayed_from(Arc::clone(&home));
    let stand_in = StandIn {
        id,
        rx,
        kill,
        queued,
        mesh,
        home,
    };
    (handle, stand_in)
}

impl StandIn {
    /// Forwards what actor `actor` of `stage` is sent to the player's home, until the stage
    /// lets go of the actor's connection, closes it, or moves on.
    pub(crate) fn start(self, stage: StageHandle, actor: u64) {
        let span = tracing::info_span!("relayed", home = %self.home, session = self.id & !RELAYED);
        tokio::spawn(tracing::Instrument::instrument(
            self.forward(stage, actor),
            span,
        ));
    }

    async fn forward(mut self, stage: StageHandle, actor: u64) {
        loop {
            let outbound = tokio::select! {
                biased;
                next = self.rx.recv() => match next {
                    Some(outbound) => outbound,
                    // The stage let go of the connection (the actor left or disconnected).
                    None => return,
                },
                // Closed here (the account logged in again, or the server stops).
                _ = self.kill.cancelled() => {
                    let _ = self.send(What::Kill(true)).await;
                    return;
                }
            };
            let (what, last) = match outbound {
                Outbound::Frame(frame) => {
                    self.queued.release(&frame);
                    (What::Frame(frame_to_wire(&frame)), false)
                }
                Outbound::Shared(shared) => {
                    self.queued.release(shared.frame());
                    (What::Frame(frame_to_wire(shared.frame())), false)
                }
                Outbound::Detached(code) => (What::Detached(u32::from(code.0)), false),
                Outbound::Close(code) => (What::Close(u32::from(code.0)), true),
                Outbound::Relay(server) => (What::MovedTo(server.to_string()), true),
                // A stand-in is not resumable: it moves on relayed.
                Outbound::Freeze(reply) => {
                    let _ = reply.send(None);
                    continue;
                }
                Outbound::Moved(_) | Outbound::Thaw => continue,
            };
            match self.send(what).await {
                Ok(()) => {}
                Err(MeshError::TooLarge { len, .. }) => {
                    tracing::warn!(len, "a frame too large for the mesh; not relayed");
                }
                // The home server is gone, and the connection with it.
                Err(error) => {
                    tracing::debug!(%error, "the relayed player's home is unreachable");
                    stage.disconnected(actor, self.id).await;
                    return;
                }
            }
            if last {
                return;
            }
        }
    }

    async fn send(&self, what: What) -> Result<(), MeshError> {
        let (route, payload) = client_bound(self.id & !RELAYED, what);
        send_relayed(&self.mesh, &self.home, route, payload).await
    }
}
