//! A session whose stage moves to another Play server. On the source it is frozen while the
//! stage is saved (it stops reading, so its counts stop), then told where to resume
//! (`@Move@`) or thawed when the move failed. On the target it is adopted from its moved
//! state and parked under the same token until its client resumes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use playhouse_protocol::{MoveNotice, ResumeStreams, ServerCodec, ServerFrame};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

use super::context::SessionContext;
use super::end::End;
use super::handle::{Outbound, QueuedBytes, SessionHandle};
use super::killable::until_killed;
use super::moved_state::SessionState;
use super::relay::RelayLink;
use super::resume::buffer::Resumable;
use super::stage_ref::StageRef;
use super::state::{Session, State};
use crate::stage::handle::StageHandle;

impl Session {
    /// Frozen for a move: reading stops (what the client sends meanwhile stays unacknowledged
    /// at the client, which replays it to wherever the session goes on), the resumable state
    /// goes to the stage, and the session waits for the outcome. `Ok` when thawed.
    pub(super) async fn frozen(
        &mut self,
        reply: oneshot::Sender<Option<SessionState>>,
    ) -> Result<(), End> {
        self.flush().await?;
        let capabilities = self.capabilities.unwrap_or_default();
        let state = self.resume.as_ref().map(|r| r.to_state(capabilities));
        let relayable = state.is_none();
        if relayable {
            // Not resumable: relayed from here if the move succeeds. Counted as such from now,
            // so a drain that sees the move done waits for this connection too.
            self.ctx.relayed().insert(self.handle.clone());
        }
        let _ = reply.send(state);
        loop {
            match until_killed(&self.kill, self.rx.recv()).await? {
                Some(Outbound::Thaw) => {
                    self.ctx.relayed().remove(self.id);
                    return Ok(());
                }
                Some(Outbound::Moved(endpoints)) => return self.moved(&endpoints).await,
                // Not resumable: it cannot follow its stage, and is told why.
                Some(Outbound::Close(code)) => return self.close_with(code).await,
                // Not resumable, and kept here: relayed to the stage's new server.
                Some(Outbound::Relay(server)) => {
                    self.relay_to(server);
                    return Ok(());
                }
                // Relayed already by the stage's new server, which may answer before the
                // move's outcome reaches here: written as they come.
                Some(Outbound::Frame(frame)) if relayable => {
                    self.queued.release(&frame);
                    self.feed(frame).await?;
                    self.flush().await?;
                }
                Some(Outbound::Shared(shared)) if relayable => {
                    self.queued.release(shared.frame());
                    self.feed(shared.frame().clone()).await?;
                    self.flush().await?;
                }
                Some(Outbound::Detached(code)) if relayable => self.detach(code),
                // Nothing else is expected while the stage is frozen: a frame for a resumable
                // session would be one the snapshot does not know of, so the session could
                // not move on consistently.
                Some(other) => {
                    tracing::warn!(?other, "unexpected message while frozen for a move");
                    return Err(End::ClosedByServer);
                }
                None => return Err(End::ClosedByServer),
            }
        }
    }

    /// The stage moved to `server` and this connection, not resumable, stays here: its
    /// messages are relayed there from now (a relayed one follows the stage on).
    pub(super) fn relay_to(&mut self, server: Arc<str>) {
        let mesh = self.ctx.host().mesh().get().cloned();
        let (State::Joined { stage, .. }, Some(mesh)) = (&mut self.state, mesh) else {
            self.ctx.relayed().remove(self.id);
            return;
        };
        match stage {
            StageRef::Relayed(link) => link.moved_to(server),
            StageRef::Local(local) => {
                let _span = self.span.enter(); // no await while entered
                tracing::debug!(%server, "the stage moved; this connection is relayed to it");
                *stage = StageRef::Relayed(RelayLink::new(mesh, server, local.stage_id()));
            }
        }
    }

    /// The stage moved: a connected client learns the endpoint of its transport there
    /// (`@Move@`); the session ends here (its token now lives on the target).
    async fn moved(&mut self, endpoints: &BTreeMap<String, String>) -> Result<(), End> {
        if let Some(resume) = self.resume.take() {
            let resumes = self.ctx.resumes();
            resumes.remove(&resume.token);
            let endpoints = Arc::new(endpoints.clone());
            let window = resume.config.window;
            resumes.moved_away(resume.token, endpoints, window);
            if !self.connected {
                resumes.moved_while_away(tokio::time::Instant::now() + window);
            }
        }
        let stage_id = match &self.state {
            State::Joined { stage, .. } => stage.stage_id(),
            _ => 0,
        };
        if self.connected {
            match endpoints.get(self.transport) {
                Some(endpoint) => {
                    let notice = MoveNotice {
                        endpoint: endpoint.clone(),
                    };
                    self.feed_raw(ServerFrame::move_notice(stage_id, &notice))
                        .await?;
                    self.flush().await?;
                    self.close_after_notice(true).await;
                }
                None => tracing::warn!(
                    transport = self.transport,
                    "the stage moved to a server without this transport; the client must log in again"
                ),
            }
        }
        tracing::debug!("the stage moved; the session goes on at its new server");
        Err(End::Moved)
    }
}

/// A session adopted from its moved state, not yet tied to its stage.
pub(crate) struct Adopted {
    session: Session,
}

/// Adopts a session that moved here: registered under its token, parked until its client
/// resumes; `None` when its counts are impossible or resumable sessions are off here.
pub(crate) fn adopt(
    ctx: &Arc<SessionContext>,
    state: SessionState,
) -> Option<(SessionHandle, Adopted)> {
    let config = ctx.config().resume?;
    let SessionState {
        token,
        sent,
        unacked,
        received,
        acked,
        capabilities,
    } = state;
    let streams = ResumeStreams::resume_from(
        config.ack_every,
        sent,
        VecDeque::from(unacked),
        received,
        acked,
    )?;
    let (attach_tx, attach_rx) = mpsc::channel(1);
    ctx.resumes().register_as(token, attach_tx);
    let resume = Resumable::from_streams(token, config, streams, attach_rx);
    let codec = ServerCodec::new(ctx.config().codec);
    let reader = FramedRead::new(Box::new(tokio::io::empty()) as _, codec.clone());
    let writer = FramedWrite::new(Box::new(tokio::io::sink()) as _, codec.into());
    let id = ctx.next_session_id();
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
    );
    let mut session = Session::new(
        id,
        Arc::clone(ctx),
        reader,
        writer,
        rx,
        handle.clone(),
        queued,
        kill,
        "moved",
        // Unknown until the client resumes (a login would count against no address's quota).
        std::net::Ipv4Addr::UNSPECIFIED.into(),
    );
    session.connected = false;
    session.capabilities = Some(capabilities);
    session.resume = Some(Box::new(resume));
    Some((handle, Adopted { session }))
}

impl Adopted {
    /// Gives up the session (its stage could not move here): its token is forgotten.
    pub(crate) fn discard(self) {
        if let Some(resume) = &self.session.resume {
            self.session.ctx.resumes().remove(&resume.token);
        }
    }

    /// Ties the session to its actor in `stage` and starts it: parked until the client
    /// resumes (or the resume window passes).
    pub(crate) fn start(self, stage: StageHandle, actor: u64) {
        let mut session = self.session;
        session.state = State::Joined {
            stage: stage.into(),
            actor,
        };
        session.span = tracing::info_span!("session", id = session.id, moved = true);
        tokio::spawn(async move {
            let end = match cold!(session.park(End::Moved)) {
                Ok(()) => session.serve().await,
                Err(end) => end,
            };
            Box::pin(session.go_on(end)).await;
        });
    }
}
