//! Draining: a Play server that is about to stop takes no new stages or players, keeps
//! serving the ones it holds until they end (or, later, move), and stops when they are gone
//! or at a deadline.

use std::time::Duration;

use futures_util::StreamExt;
use playhouse_mesh::{Mesh, ServerState, ServerType};
use playhouse_protocol::ErrorCode;
use tokio::time::Instant;

use crate::play_server::PlayServer;
use crate::stage::host::StageHost;

/// What a drain did, for the operator's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Stages the server held when the drain began.
    pub stages: usize,
    /// Of those, the ones that moved, live and with their players, to another Play server
    /// (movable stage types only).
    pub moved: usize,
    /// Of those, the ones that ended by themselves before the deadline.
    pub ended: usize,
    /// The ones still running at the deadline: closed, their clients told
    /// [`ErrorCode::STAGE_DRAINED`].
    pub closed_at_deadline: usize,
    /// Players of moved stages who were not resumable, so stayed connected here, relayed to
    /// their stage's new server, and were still connected at the deadline: closed, told
    /// [`ErrorCode::STAGE_DRAINED`].
    pub relayed_at_deadline: usize,
}

impl PlayServer {
    /// Drains the server, then stops it. Stages of movable types
    /// ([`PlayServerBuilder::movable_stage`](crate::PlayServerBuilder::movable_stage)) move,
    /// live and with their players, to the other running Play servers of the service
    /// (resumable clients follow; the others stay connected here and are relayed to their
    /// stage over the mesh until they leave or the deadline); the other stages stay until
    /// they end or the deadline. At once: the server is marked
    /// [`ServerState::Draining`] in the mesh directory (service routing and placement skip
    /// it), creates no stage (logins and other servers asking get
    /// [`ErrorCode::SERVER_DRAINING`]) and admits no new player to its stages (a returning
    /// player gets its actor back; resumable sessions resume). Its stages keep running, with
    /// their timers and game loops, until they end by themselves. Those still running
    /// `within` from now are closed (`on_destroy` runs) and their clients' connections closed
    /// with [`ErrorCode::STAGE_DRAINED`]; then the server stops as [`PlayServer::stop`] does.
    ///
    /// Calling it again, or during a stop, waits for the server to stop.
    pub async fn drain(&self, within: Duration) -> DrainReport {
        let control = self.control();
        if control.is_stopping() || !control.start_draining() {
            self.stopped().await;
            return DrainReport::default();
        }
        let deadline = Instant::now() + within;
        let host = self.host();
        let stages = host.len();
        tracing::info!(server = self.server_id(), stages, ?within, "draining");
        if let Some(mesh) = host.mesh().get() {
            mesh.set_state(ServerState::Draining);
            // Published now, not at the next refresh: placement should skip us at once.
            if let Err(error) = mesh.refresh().await {
                tracing::warn!(%error, "could not publish the draining state yet");
            }
        }
        let moved = match host.mesh().get() {
            Some(mesh) => move_stages(host, mesh, deadline).await,
            None => 0,
        };
        let closed_at_deadline = if host.all_ended(deadline).await {
            0
        } else {
            let left = host.len();
            tracing::warn!(
                stages = left,
                "drain deadline passed; closing the stages that are left"
            );
            self.metrics_handle().stages_drained(left);
            let by = Instant::now() + self.config().shutdown_timeout;
            host.close_all(by, Some(ErrorCode::STAGE_DRAINED)).await;
            left
        };
        let relayed_at_deadline = self.end_relays(deadline).await;
        if moved > 0 && closed_at_deadline == 0 {
            // Messages still addressed to the moved stages here are passed on for a while,
            // and players away during the move may come back here to learn where it went
            // (within their resume window), all within the deadline.
            let forwarding = Instant::now() + self.config().drain_forwarding;
            let until = self
                .moved_away_until()
                .map_or(forwarding, |at| at.max(forwarding));
            tokio::time::sleep_until(deadline.min(until)).await;
        }
        let report = DrainReport {
            stages,
            moved,
            ended: stages.saturating_sub(closed_at_deadline + moved),
            closed_at_deadline,
            relayed_at_deadline,
        };
        tracing::info!(?report, "drained; stopping");
        self.stop().await;
        report
    }
}

impl PlayServer {
    /// Keeps relaying the connections of players whose stages moved and who could not follow
    /// (not resumable) until they leave or `deadline`, then closes the rest, telling them
    /// [`ErrorCode::STAGE_DRAINED`]; how many were closed.
    async fn end_relays(&self, deadline: Instant) -> usize {
        let relayed = self.relayed();
        let clients = relayed.len();
        if clients == 0 {
            return 0;
        }
        tracing::info!(clients, "relaying players of moved stages until they leave");
        if tokio::time::timeout_at(deadline, relayed.all_ended())
            .await
            .is_ok()
        {
            return 0;
        }
        let left = relayed.len();
        tracing::warn!(
            clients = left,
            "drain deadline passed; closing the relayed connections"
        );
        relayed.close_all(ErrorCode::STAGE_DRAINED);
        let flushed = relayed.all_ended();
        let _ = tokio::time::timeout(self.config().shutdown_timeout, flushed).await;
        left
    }
}

/// Stages moved at once, at most.
const PARALLEL_MOVES: usize = 8;

/// Moves every stage of a movable type to another Play server of this service, trying the
/// running ones in turn (spread by stage), until `deadline`; how many moved. A stage no
/// server took stays and plays on here.
async fn move_stages(host: &StageHost, mesh: &Mesh, deadline: Instant) -> usize {
    let targets: Vec<String> = mesh
        .servers()
        .all()
        .into_iter()
        .filter(|info| {
            info.server_type == ServerType::Play
                && info.state == ServerState::Running
                && info.service_id == mesh.service_id()
                && info.server_id != mesh.server_id()
        })
        .map(|info| info.server_id)
        .collect();
    let movable: Vec<_> = host
        .stages()
        .into_iter()
        .filter(|stage| host.is_movable(stage.stage_type()))
        .collect();
    if movable.is_empty() {
        return 0;
    }
    if targets.is_empty() {
        tracing::warn!(stages = movable.len(), "no Play server to move stages to");
        return 0;
    }
    let moves = movable.into_iter().enumerate().map(|(i, stage)| {
        let targets = &targets;
        async move {
            for k in 0..targets.len() {
                let target = &targets[(i + k) % targets.len()];
                match tokio::time::timeout_at(deadline, stage.move_to(target)).await {
                    Ok(Ok(())) => return true,
                    Ok(Err(ErrorCode::STAGE_NOT_FOUND)) | Err(_) => return false,
                    Ok(Err(code)) => {
                        tracing::debug!(target, %code, stage_id = stage.stage_id(), "move refused; next server");
                    }
                }
            }
            false
        }
    });
    futures_util::stream::iter(moves)
        .buffer_unordered(PARALLEL_MOVES)
        .filter(|moved| std::future::ready(*moved))
        .count()
        .await
}
