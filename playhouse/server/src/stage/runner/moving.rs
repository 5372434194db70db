//! A stage moving to another Play server, both ends of it.
//!
//! Source ([`StageRunner::move_to`]), at a quiet point of the loop (the `Move` message is
//! handled between two others): every connected player's session is frozen (it stops
//! reading, so what its client sends from now on stays at the client, to be replayed to the
//! target), the mailbox is emptied into the snapshot's held messages, and the stage, its
//! actors and their sessions' streams go to the target in one mesh request. Accepted: each
//! session tells its client where to resume and ends, and the loop ends without `on_destroy`
//! (the stage lives on). Refused: the sessions thaw, the held messages are handled here, and
//! the stage goes on as if nothing happened.
//!
//! Target ([`StageRunner::restore`]): the stage and its actors are rebuilt from the snapshot
//! (with the sessions adopted under their tokens), `on_moved` re-arms timers, the held
//! messages are handled in order, and the loop runs as usual.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use playhouse_mesh::proto::{MoveStageReq, MoveStageRes, MoveStatusReq, MovedActor, RelayedFrom};
use playhouse_mesh::{MeshError, Route};
use playhouse_protocol::ErrorCode;
use prost::{Message, Name};
use tokio::sync::oneshot;

use super::StageRunner;
use crate::session::handle::{Outbound, SessionHandle};
use crate::session::moved_state::SessionState;
use crate::stage::actor::{ActorCell, ActorInit, ActorLink};
use crate::stage::context::{Client, StageInit};
use crate::stage::handle::{JoinOutcome, StageMsg};
use crate::stage::model::Stage;
use crate::stage::moving::{Held, RestoreRequest, session_to_wire};

/// Longest wait for a frozen session to hand over its state (it answers at once unless its
/// task is stuck; then it moves as a session that is not resumable).
const FREEZE_WAIT: Duration = Duration::from_secs(2);

impl<S: Stage> StageRunner<S> {
    /// Moves the stage to Play server `target`; `done` hears how it went.
    pub(super) async fn move_to(
        &mut self,
        target: String,
        done: oneshot::Sender<Result<(), ErrorCode>>,
    ) {
        let Some(ops) = self.moves else {
            let _ = done.send(Err(ErrorCode::INVALID_STAGE_TYPE));
            return;
        };
        let Some(mesh) = self.env.mesh.get().cloned() else {
            let _ = done.send(Err(ErrorCode::SERVER_NOT_FOUND));
            return;
        };
        let started = tokio::time::Instant::now();
        // 1. Freeze every connected player's session and collect its streams.
        let frozen: Vec<(u64, oneshot::Receiver<Option<SessionState>>)> = self
            .actors
            .iter()
            .filter_map(|(key, cell)| Some((*key, cell.link.session()?.freeze())))
            .collect();
        // 2. Whatever reaches the stage meanwhile moves with it, in order. The mailbox is
        //    emptied while the sessions answer: one waiting for room in it to pass on a
        //    client's message can then take its freeze.
        let mut held_msgs = Vec::new();
        let mut sessions: BTreeMap<u64, SessionState> = BTreeMap::new();
        let give_up = tokio::time::Instant::now() + FREEZE_WAIT;
        for (key, mut state) in frozen {
            loop {
                tokio::select! {
                    biased;
                    answer = &mut state => {
                        if let Ok(Some(state)) = answer {
                            sessions.insert(key, state);
                        }
                        break;
                    }
                    Some(msg) = self.rx.recv() => held_msgs.push(msg),
                    _ = tokio::time::sleep_until(give_up) => break,
                }
            }
        }
        while let Ok(msg) = self.rx.try_recv() {
            held_msgs.push(msg);
        }
        let held: Vec<Held> = held_msgs
            .iter()
            .filter_map(|msg| held_of(msg, &self.actors))
            .chain(self.relay_order.take_waiting())
            .collect();
        // 3. The snapshot, sent in one request.
        let actors = self
            .actors
            .iter()
            .map(|(key, cell)| MovedActor {
                key: *key,
                account_id: cell.link.account_id().to_owned(),
                state: (ops.save_actor)(&cell.actor),
                session: sessions.get(key).map(session_to_wire),
                relay: match cell.link.session() {
                    Some(session) if !sessions.contains_key(key) => {
                        let next = self.relay_order.next(session.id);
                        Some(relayed_from(session, mesh.server_id(), next))
                    }
                    _ => None,
                },
            })
            .collect();
        let request = MoveStageReq {
            stage_type: self.stage_type.to_string(),
            stage_id: self.stage_id,
            state: (ops.save_stage)(&self.stage),
            actors,
            held: held.iter().map(Held::to_wire).collect(),
        };
        let route = Route::new(MoveStageReq::NAME).with_framework(true);
        let payload = Bytes::from(request.encode_to_vec());
        let reply = match mesh.request(&target, route, payload).await {
            // No answer: the move may have gone through with its answer lost. Ask (after the
            // move on the same link, so the target has taken it in if it ever will).
            Err(MeshError::Timeout) => {
                let status = MoveStatusReq {
                    stage_id: self.stage_id,
                };
                let route = Route::new(MoveStatusReq::NAME).with_framework(true);
                let payload = Bytes::from(status.encode_to_vec());
                mesh.request(&target, route, payload).await
            }
            other => other,
        };
        let endpoints = reply.map_err(|e| e.code()).and_then(|reply| {
            MoveStageRes::decode(reply.payload).map_err(|_| ErrorCode::INVALID_MESSAGE)
        });
        match endpoints {
            Ok(res) => {
                let endpoints = Arc::new(res.endpoints.into_iter().collect());
                let target: Arc<str> = Arc::from(target);
                let mut relayed = 0;
                for (key, cell) in &self.actors {
                    if let Some(session) = cell.link.session() {
                        session.push(match sessions.contains_key(key) {
                            true => Outbound::Moved(Arc::clone(&endpoints)),
                            // A player without a resumable session cannot follow: its
                            // connection stays, relayed to the stage's new server.
                            false => {
                                relayed += 1;
                                // What it sent meanwhile goes after the stage.
                                self.gone.insert(session.id, session.clone());
                                Outbound::Relay(Arc::clone(&target))
                            }
                        });
                    }
                }
                self.env
                    .metrics
                    .stage_moved(started.elapsed(), sessions.len(), relayed);
                // Logins that were waiting: the stage is not here any more.
                for msg in held_msgs {
                    if let StageMsg::Join { packet, done, .. } = msg {
                        let _ = done.send(JoinOutcome::StageGone { packet });
                    }
                }
                self.actors_left(self.actors.len());
                self.actors.clear();
                self.ctx.clients.clear();
                self.moved = true;
                self.ctx.closing = true;
                self.env.registry.moved_away(self.stage_id, &target);
                tracing::info!(
                    %target,
                    players = sessions.len(),
                    relayed,
                    paused_ms = started.elapsed().as_millis() as u64,
                    "stage moved"
                );
                let _ = done.send(Ok(()));
            }
            Err(code) => {
                tracing::warn!(target, %code, "stage move refused; it stays here");
                self.env.metrics.stage_move_failed();
                for cell in self.actors.values() {
                    if let Some(session) = cell.link.session() {
                        session.push(Outbound::Thaw);
                    }
                }
                for msg in held_msgs {
                    self.handle_boxed(msg).await;
                }
                let _ = done.send(Err(code));
            }
        }
    }

    /// The stage and its actors rebuilt from a snapshot (the target's side of a move);
    /// `Err` when a restore hook refused. Nothing has run yet: [`StageRunner::run_moved`]
    /// goes on from here.
    pub(crate) fn restore_actors(&mut self, request: &mut RestoreRequest) -> Result<(), ErrorCode> {
        let Some(ops) = self.moves else {
            return Err(ErrorCode::INVALID_STAGE_TYPE);
        };
        let actors = std::mem::take(&mut request.snapshot.actors);
        for moved in actors {
            let init = ActorInit {
                stage_id: self.stage_id,
                stage_type: &self.stage_type,
                services: &self.env.services,
            };
            let actor = (ops.restore_actor)(&init, moved.state)?;
            let mut link = ActorLink::detached(self.stage_id);
            link.set_account_id(moved.account_id.as_str());
            link.set_session(moved.session.clone());
            let account: Arc<str> = Arc::clone(link.account_arc());
            self.accounts.insert(Arc::clone(&account), moved.key);
            match moved.session {
                Some(session) => {
                    let client = Client {
                        account_id: account,
                        session,
                    };
                    self.ctx.clients.insert(moved.key, client);
                }
                None => {
                    if let Some(ttl) = self.env.actor_ttl {
                        let now = tokio::time::Instant::now();
                        self.disconnected.insert(moved.key, now);
                        self.expiries.insert((now + ttl, moved.key));
                    }
                }
            }
            if let Some(session) = link.session().filter(|_| moved.relay_next > 0) {
                self.relay_order.seed(session.id, moved.relay_next);
            }
            self.actors.insert(moved.key, ActorCell { actor, link });
            self.next_actor = self.next_actor.max(moved.key + 1);
        }
        for _ in 0..self.actors.len() {
            self.actors_joined();
        }
        Ok(())
    }

    /// Runs a moved stage: `on_moved`, the held messages in order, then the loop.
    pub(super) async fn drive_moved(&mut self, request: RestoreRequest) {
        let RestoreRequest { snapshot, done } = request;
        let Some(ops) = self.moves else {
            let _ = done.send(Err(ErrorCode::INVALID_STAGE_TYPE));
            return;
        };
        self.created = true;
        (ops.on_moved)(&mut self.stage, &mut self.ctx).await;
        self.note_occupancy();
        let _ = done.send(Ok(()));
        for held in snapshot.held {
            match held {
                Held::Client {
                    actor,
                    seq,
                    packet,
                    order,
                } => {
                    let Some(session) = self
                        .actors
                        .get(&actor)
                        .and_then(|cell| cell.link.session())
                        .map(|session| session.id)
                    else {
                        continue;
                    };
                    self.handle_boxed(StageMsg::Client {
                        actor,
                        session,
                        seq,
                        packet,
                        queued: tokio::time::Instant::now(),
                        order,
                    })
                    .await;
                }
                Held::Server(packet) => self.handle_boxed(StageMsg::Server { packet }).await,
            }
        }
        tracing::debug!("stage moved in");
        self.serve().await;
    }

    async fn handle_boxed(&mut self, msg: StageMsg) {
        Box::pin(self.handle(msg)).await;
    }
}

/// A mailbox message as the target handles it, if it is one to move (clients' and servers'
/// messages; joins and disconnects stay behind).
fn held_of<A>(msg: &StageMsg, actors: &BTreeMap<u64, ActorCell<A>>) -> Option<Held> {
    match msg {
        StageMsg::Client {
            actor,
            session,
            seq,
            packet,
            order,
            ..
        } => {
            // Only from the connection the actor has now.
            let current = actors.get(actor)?.link.session()?.id;
            (current == *session).then(|| Held::Client {
                actor: *actor,
                seq: *seq,
                packet: packet.clone(),
                order: *order,
            })
        }
        StageMsg::Server { packet } => Some(Held::Server(packet.clone())),
        _ => None,
    }
}

/// Where a player not resumable plays from when its stage moves: the server holding its
/// connection (this one, unless it is relayed already) and its session's id there.
/// `next_order` is the number of the next relayed message it has not handled.
fn relayed_from(session: &SessionHandle, here: &str, next_order: u64) -> RelayedFrom {
    let (home, id) = match session.home() {
        Some((home, id)) => (home.to_string(), id),
        None => (here.to_owned(), session.id),
    };
    RelayedFrom {
        home,
        session: id,
        next_order,
    }
}

/// The stage's init view, for restoring it.
pub(crate) fn stage_init<'a>(
    stage_id: i64,
    stage_type: &'a str,
    env: &'a crate::stage::env::StageEnv,
) -> StageInit<'a> {
    StageInit {
        stage_id,
        stage_type,
        services: &env.services,
        control: &env.control,
    }
}
