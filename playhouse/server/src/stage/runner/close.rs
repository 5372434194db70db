//! How a stage ends: the graceful close (every actor, then the stage, is told), and the
//! last word to whatever is still queued once the loop is over.

use std::collections::HashMap;

use playhouse_protocol::ErrorCode;
use tokio::sync::mpsc;

use super::StageRunner;
use crate::mesh_reply;
use crate::reply::error_frame;
use crate::sender::MeshHandle;
use crate::session::handle::{Outbound, SessionHandle, SessionId};
use crate::session::relay::RelayedMessage;
use crate::stage::actor::ReplyTarget;
use crate::stage::env::StageEnv;
use crate::stage::handle::{CreateRequest, JoinOutcome, StageMsg};
use crate::stage::model::{Actor, Stage};

impl<S: Stage> StageRunner<S> {
    /// A close was asked for; with a `farewell`, the clients' connections close too.
    pub(super) fn begin_close(&mut self, farewell: Option<ErrorCode>) {
        self.ctx.closing = true;
        self.farewell = self.farewell.or(farewell);
    }

    /// Graceful close: every actor is told, then the stage. A stage that moved away is not
    /// closed: it lives on at its new server.
    pub(super) async fn close(&mut self) {
        if self.moved {
            return;
        }
        let actors = std::mem::take(&mut self.actors);
        self.actors_left(actors.len());
        for (_, mut cell) in actors {
            cell.actor.on_destroy(&mut cell.link).await;
            if let Some(session) = cell.link.session() {
                session.push(match self.farewell {
                    Some(code) => Outbound::Close(code),
                    None => Outbound::Detached(ErrorCode::STAGE_NOT_FOUND),
                });
                self.gone.insert(session.id, session.clone());
            }
        }
        self.accounts.clear();
        self.ctx.clients.clear();
        self.stage.on_destroy(&mut self.ctx).await;
        tracing::debug!("stage closed");
    }

    /// After stage code panicked: it is not trusted again, so clients are only told the
    /// stage is gone.
    pub(super) fn detach_after_panic(&mut self) {
        for cell in self.actors.values() {
            if let Some(session) = cell.link.session() {
                session.push(Outbound::Detached(ErrorCode::STAGE_NOT_FOUND));
                self.gone.insert(session.id, session.clone());
            }
        }
    }

    /// A stage whose actors could not be restored on arrival: its actors' sessions are
    /// closed (their clients will find the stage gone), then it ends as a stillborn stage.
    pub(crate) fn abandon(mut self) {
        for cell in self.actors.values() {
            if let Some(session) = cell.link.session() {
                session.close();
            }
        }
        self.actors.clear();
        self.finish();
    }

    /// Leaves the registry and answers whatever is still queued.
    pub(super) fn finish(&mut self) {
        // Actors still here when stage code panicked.
        self.actors_left(self.actors.len());
        self.ctx.timers.clear();
        self.ctx.game_loop = None;
        self.ctx.tasks.abort_all();
        self.env.registry.remove(self.stage_id, self.incarnation);
        let moved_to = self
            .moved
            .then(|| self.env.registry.moved_to(self.stage_id))
            .flatten();
        refuse_queued(
            &mut self.rx,
            self.stage_id,
            self.created,
            &self.gone,
            &self.env.mesh,
            moved_to,
        );
    }
}

/// A stage whose factory failed: it frees its id, then refuses its creator and whatever was
/// queued for it, as a stage whose `on_create` failed would.
pub(crate) fn refuse_stillborn(
    env: &StageEnv,
    stage_id: i64,
    incarnation: u64,
    mut rx: mpsc::Receiver<StageMsg>,
    create: CreateRequest,
) {
    env.registry.remove(stage_id, incarnation);
    if let Some(done) = create.done {
        let _ = done.send(Err(ErrorCode::STAGE_CREATION_FAILED));
    }
    refuse_queued(&mut rx, stage_id, false, &HashMap::new(), &env.mesh, None);
}

/// Closes a finished stage's mailbox and answers what is still in it. Nothing queued goes
/// unanswered: every request gets an error, every login another chance (or, for a stage
/// that was never `created`, a refusal). `gone` are the connections of the actors the stage
/// had, whose requests are answered.
fn refuse_queued(
    rx: &mut mpsc::Receiver<StageMsg>,
    stage_id: i64,
    created: bool,
    gone: &HashMap<SessionId, SessionHandle>,
    mesh: &MeshHandle,
    moved_to: Option<std::sync::Arc<str>>,
) {
    rx.close();
    let code = if created {
        ErrorCode::STAGE_NOT_FOUND
    } else {
        ErrorCode::STAGE_CREATION_FAILED
    };
    while let Ok(msg) = rx.try_recv() {
        match msg {
            StageMsg::Join { packet, done, .. } if created => {
                let _ = done.send(JoinOutcome::StageGone { packet });
            }
            StageMsg::Join {
                session,
                reply_id,
                seq,
                done,
                ..
            } => {
                session.send(error_frame(reply_id, seq, stage_id, code));
                let _ = done.send(JoinOutcome::Rejected);
            }
            StageMsg::Client {
                actor,
                session,
                seq,
                packet,
                order,
                ..
            } => match (gone.get(&session), mesh.get(), &moved_to) {
                // A relayed player's message that came in during the move: after the stage.
                (Some(handle), Some(mesh), Some(target)) if handle.home().is_some() => {
                    let message = RelayedMessage {
                        stage_id,
                        actor,
                        seq,
                        packet,
                        order,
                    };
                    message.pass_on(mesh, target, handle);
                }
                (Some(handle), _, _) if seq != 0 => {
                    handle.send(error_frame(packet.msg_id, seq, stage_id, code));
                }
                _ => {}
            },
            StageMsg::Server { packet } => match (mesh.get(), &moved_to) {
                // The stage moved away: the message goes after it.
                (Some(mesh), Some(target)) => mesh_reply::forward_moved(mesh, packet, target),
                (Some(mesh), None) => {
                    ReplyTarget::mesh(mesh.clone(), packet.route).reply_error(code);
                }
                (None, _) => {}
            },
            _ => {}
        }
    }
}
