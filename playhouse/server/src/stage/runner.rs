//! One stage's event loop: its mailbox, timers, game loop and async-block results, handled
//! one at a time so stage code needs no locks.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use playhouse_protocol::{ErrorCode, MsgId, Packet, ServerFrame};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::actor::{ActorCell, ActorInit, ActorLink, ReplyTarget};
use super::context::{Client, GameTick, MAX_STEPS_PER_WAKE, Post, StageContext};
use super::env::StageEnv;
use super::kind::ActorFactory;
use super::mailbox::{CreateRequest, JoinOutcome, StageMsg};
use super::{Actor, Stage};
use crate::session_handle::{Outbound, SessionHandle, SessionId};

/// Mailbox messages handled per wake-up of the stage loop.
const MAILBOX_BATCH: usize = 64;

/// Far enough to mean "never" for a disabled sleep.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

pub(crate) struct StageRunner<S: Stage> {
    stage: S,
    ctx: StageContext<S>,
    stage_id: i64,
    incarnation: u64,
    stage_type: Arc<str>,
    /// Ordered by key (join order): closing a stage destroys its actors in a fixed order.
    actors: BTreeMap<u64, ActorCell<S::Actor>>,
    accounts: HashMap<Arc<str>, u64>,
    next_actor: u64,
    make_actor: Arc<ActorFactory<S::Actor>>,
    env: Arc<StageEnv>,
    rx: mpsc::Receiver<StageMsg>,
    post_rx: mpsc::Receiver<Post<S>>,
    created: bool,
    /// Connections of the actors the stage had when it closed, to answer their queued
    /// requests.
    gone: HashMap<SessionId, SessionHandle>,
    /// When each disconnected actor lost its client (for `disconnected_actor_ttl`).
    disconnected: HashMap<u64, Instant>,
    /// Expiry checks, earliest first (stale ones are skipped).
    expiries: std::collections::BTreeSet<(Instant, u64)>,
    /// Since when the stage has had no actors (for `stage_idle_timeout`).
    empty_since: Option<Instant>,
}

impl<S: Stage> StageRunner<S> {
    pub(crate) fn new(
        stage: S,
        stage_id: i64,
        incarnation: u64,
        stage_type: Arc<str>,
        make_actor: Arc<ActorFactory<S::Actor>>,
        env: Arc<StageEnv>,
        rx: mpsc::Receiver<StageMsg>,
    ) -> Self {
        let (post_tx, post_rx) = mpsc::channel(env.mailbox_capacity);
        let ctx = StageContext::new(
            stage_id,
            Arc::clone(&stage_type),
            env.services.clone(),
            env.control.clone(),
            post_tx,
            Arc::clone(&env.mesh),
        );
        StageRunner {
            stage,
            ctx,
            stage_id,
            incarnation,
            stage_type,
            actors: BTreeMap::new(),
            accounts: HashMap::new(),
            next_actor: 1,
            make_actor,
            env,
            rx,
            post_rx,
            created: false,
            gone: HashMap::new(),
            disconnected: HashMap::new(),
            expiries: std::collections::BTreeSet::new(),
            empty_since: None,
        }
    }

    /// Runs the stage until it closes. A panic in stage code closes only this stage.
    pub(crate) async fn run(mut self, create: CreateRequest) {
        let span = tracing::info_span!("stage", id = self.stage_id, kind = %self.stage_type);
        async move {
            let outcome = AssertUnwindSafe(self.drive(create)).catch_unwind().await;
            if outcome.is_err() {
                tracing::error!("stage code panicked; closing the stage");
                // Stage code is not trusted again: clients are only told the stage is gone.
                for cell in self.actors.values() {
                    if let Some(session) = cell.link.session() {
                        session.push(Outbound::Detached(ErrorCode::STAGE_NOT_FOUND));
                        self.gone.insert(session.id, session.clone());
                    }
                }
            }
            self.finish();
        }
        .instrument(span)
        .await
    }

    async fn drive(&mut self, create: CreateRequest) {
        let CreateRequest { packet, done } = create;
        match self.stage.on_create(&mut self.ctx, packet).await {
            Ok(reply) => {
                self.created = true;
                if let Some(done) = done {
                    let _ = done.send(Ok(reply));
                }
            }
            Err(code) => {
                tracing::debug!(%code, "on_create refused");
                if let Some(done) = done {
                    let _ = done.send(Err(code));
                }
                return;
            }
        }
        self.stage.on_post_create(&mut self.ctx).await;
        self.note_occupancy();
        tracing::debug!("stage created");

        while !self.ctx.closing {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + FAR_FUTURE)),
                    if deadline.is_some() => {
                        self.fire_due();
                        self.expire_actors().await;
                        self.dispose_if_idle();
                    }
                Some(post) = self.post_rx.recv() => post(&mut self.stage, &mut self.ctx),
                msg = self.rx.recv() => match msg {
                    Some(StageMsg::Close) | None => self.ctx.closing = true,
                    Some(msg) => {
                        self.handle(msg).await;
                        self.drain_mailbox().await;
                    }
                },
                Some(result) = self.ctx.tasks.join_next(), if !self.ctx.tasks.is_empty() => {
                    if let Err(error) = result
                        && error.is_panic()
                    {
                        tracing::error!("an async block panicked; its post will not run");
                    }
                }
            }
        }

        // Graceful close: every actor is told, then the stage.
        let actors = std::mem::take(&mut self.actors);
        self.env.metrics.actors_left(actors.len());
        for (_, mut cell) in actors {
            cell.actor.on_destroy(&mut cell.link).await;
            if let Some(session) = cell.link.session() {
                session.push(Outbound::Detached(ErrorCode::STAGE_NOT_FOUND));
                self.gone.insert(session.id, session.clone());
            }
        }
        self.accounts.clear();
        self.ctx.clients.clear();
        self.stage.on_destroy(&mut self.ctx).await;
        tracing::debug!("stage closed");
    }

    /// Leaves the registry and answers whatever is still queued.
    fn finish(&mut self) {
        // Actors still here when stage code panicked.
        self.env.metrics.actors_left(self.actors.len());
        self.ctx.timers.clear();
        self.ctx.game_loop = None;
        self.ctx.tasks.abort_all();
        self.env.registry.remove(self.stage_id, self.incarnation);
        self.rx.close();
        let code = if self.created {
            ErrorCode::STAGE_NOT_FOUND
        } else {
            ErrorCode::STAGE_CREATION_FAILED
        };
        // Nothing queued goes unanswered: every request gets an error, every login another
        // chance.
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                StageMsg::Join { packet, done, .. } if self.created => {
                    let _ = done.send(JoinOutcome::StageGone { packet });
                }
                StageMsg::Join {
                    session,
                    reply_id,
                    seq,
                    done,
                    ..
                } => {
                    session.send(error_frame(reply_id, seq, self.stage_id, code));
                    let _ = done.send(JoinOutcome::Rejected);
                }
                StageMsg::Client {
                    session,
                    seq,
                    packet,
                    ..
                } if seq != 0 => {
                    if let Some(handle) = self.gone.get(&session) {
                        handle.send(error_frame(packet.msg_id, seq, self.stage_id, code));
                    }
                }
                StageMsg::Server { packet } => {
                    if let Some(mesh) = self.env.mesh.get() {
                        ReplyTarget::mesh(mesh.clone(), packet.header).reply_error(code);
                    }
                }
                _ => {}
            }
        }
    }

    /// Handles messages already queued (up to a batch) before going back to `select!`:
    /// fewer wake-ups under load. Stops early for a close, or when a timer is due, so timers
    /// and game loops keep their cadence.
    async fn drain_mailbox(&mut self) {
        for _ in 0..MAILBOX_BATCH {
            if self.ctx.closing || self.next_deadline().is_some_and(|d| d <= Instant::now()) {
                return;
            }
            match self.rx.try_recv() {
                Ok(StageMsg::Close) => self.ctx.closing = true,
                Ok(msg) => self.handle(msg).await,
                Err(_) => return,
            }
        }
    }

    /// Removes actors disconnected for longer than `disconnected_actor_ttl`.
    async fn expire_actors(&mut self) {
        let now = Instant::now();
        while let Some(&(at, key)) = self.expiries.first() {
            if at > now {
                return;
            }
            self.expiries.pop_first();
            let expired = self
                .disconnected
                .get(&key)
                .zip(self.env.actor_ttl)
                .is_some_and(|(since, ttl)| *since + ttl <= now);
            if expired && let Some(cell) = self.actors.get_mut(&key) {
                tracing::debug!(actor = key, "disconnected too long; leaving the stage");
                cell.link.leave_stage();
                self.leave_if_asked(key).await;
            }
        }
    }

    /// Starts or stops the idle clock as the stage becomes empty or occupied.
    fn note_occupancy(&mut self) {
        if !self.actors.is_empty() {
            self.empty_since = None;
        } else if self.empty_since.is_none() {
            self.empty_since = Some(Instant::now());
        }
    }

    /// When an empty stage closes by itself, if it does.
    fn idle_deadline(&self) -> Option<Instant> {
        let idle = self.env.idle_timeout.filter(|_| self.ctx.auto_dispose)?;
        Some(self.empty_since? + idle)
    }

    fn dispose_if_idle(&mut self) {
        if self.idle_deadline().is_some_and(|at| at <= Instant::now()) {
            tracing::debug!("no actors for the idle timeout; closing the stage");
            self.env
                .metrics
                .stages_idle_closed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.ctx.closing = true;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let expiry = [
            self.expiries.first().map(|(at, _)| *at),
            self.idle_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        let timer = match (self.ctx.timers.next_deadline(), expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let game = self.ctx.game_loop.as_ref().map(|g| g.next);
        match (timer, game) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        while let Some((id, mut callback)) = self.ctx.timers.pop_due(now) {
            callback(&mut self.stage, &mut self.ctx);
            self.ctx.timers.rearm(id, callback);
            if self.ctx.closing {
                return;
            }
        }
        self.run_game_loop(now);
    }

    /// Fixed-timestep accumulator: whole steps of `delta == timestep`, at most
    /// [`MAX_STEPS_PER_WAKE`] per wake-up; a larger backlog is dropped.
    fn run_game_loop(&mut self, now: Instant) {
        let Some(game) = self.ctx.game_loop.as_mut().filter(|g| g.next <= now) else {
            return;
        };
        game.accumulated += now - game.last;
        game.last = now;
        let generation = game.generation;
        let Some(mut callback) = game.callback.take() else {
            return;
        };
        for _ in 0..MAX_STEPS_PER_WAKE {
            let Some(game) = self.current_game_loop(generation) else {
                return;
            };
            if game.accumulated < game.step {
                break;
            }
            game.accumulated -= game.step;
            game.ticks += 1;
            game.total += game.step;
            let tick = GameTick {
                delta: game.step,
                total: game.total,
                tick: game.ticks,
            };
            callback(&mut self.stage, &mut self.ctx, tick);
            if self.ctx.closing {
                return;
            }
        }
        if let Some(game) = self.current_game_loop(generation) {
            if game.accumulated >= game.step {
                game.accumulated = Duration::ZERO;
            }
            game.callback = Some(callback);
            game.next = now + (game.step - game.accumulated);
        }
    }

    /// The game loop, unless the callback stopped or restarted it.
    fn current_game_loop(&mut self, generation: u64) -> Option<&mut super::context::GameLoop<S>> {
        self.ctx
            .game_loop
            .as_mut()
            .filter(|g| g.generation == generation)
    }

    async fn handle(&mut self, msg: StageMsg) {
        match msg {
            StageMsg::Join {
                session,
                reply_id,
                seq,
                packet,
                done,
            } => {
                let outcome = self.join(session, reply_id, seq, packet).await;
                let _ = done.send(outcome);
            }
            StageMsg::Client {
                actor,
                session,
                seq,
                packet,
            } => self.dispatch(actor, session, seq, packet).await,
            StageMsg::Disconnected { actor, session } => {
                let Some(cell) = self.actors.get_mut(&actor) else {
                    return;
                };
                if cell.link.session().map(|s| s.id) != Some(session) {
                    return;
                }
                cell.link.set_session(None);
                self.ctx.clients.remove(&actor);
                if let Some(ttl) = self.env.actor_ttl {
                    let now = Instant::now();
                    self.disconnected.insert(actor, now);
                    self.expiries.insert((now + ttl, actor));
                }
                self.stage
                    .on_connection_changed(&mut self.ctx, cell, false)
                    .await;
                self.leave_if_asked(actor).await;
            }
            StageMsg::Server { packet } => {
                let playhouse_mesh::RoutePacket { header, payload } = packet;
                let request = Packet::new(MsgId::from(header.msg_id.as_str()), payload);
                // The header moves into the reply target: no copy per message.
                self.ctx.server_reply = self
                    .env
                    .mesh
                    .get()
                    .map(|mesh| ReplyTarget::mesh(mesh.clone(), header));
                self.stage.on_dispatch_server(&mut self.ctx, request).await;
                self.ctx.server_reply = None;
            }
            StageMsg::Close => self.ctx.closing = true,
        }
    }

    async fn dispatch(&mut self, actor: u64, session: SessionId, seq: u16, packet: Packet) {
        let Some(cell) = self.actors.get_mut(&actor) else {
            return;
        };
        if cell.link.session().map(|s| s.id) != Some(session) {
            return; // from a connection the actor has since replaced
        }
        cell.link.begin(packet.msg_id.clone(), seq);
        self.stage.on_dispatch(&mut self.ctx, cell, packet).await;
        cell.link.end();
        self.leave_if_asked(actor).await;
    }

    /// The authentication flow, step by step (SPEC §4).
    async fn join(
        &mut self,
        session: SessionHandle,
        reply_id: MsgId,
        seq: u16,
        packet: Packet,
    ) -> JoinOutcome {
        let stage_id = self.stage_id;
        let actor = (self.make_actor)(&ActorInit {
            stage_id,
            stage_type: &self.stage_type,
            services: &self.env.services,
        });
        let mut cell = ActorCell {
            actor,
            link: ActorLink::new(stage_id, session.clone()),
        };
        cell.actor.on_create(&mut cell.link).await;
        let reply = match cell.actor.on_authenticate(&mut cell.link, packet).await {
            Ok(reply) if !cell.link.account_id().is_empty() => reply,
            refused => {
                let refusal = refused
                    .err()
                    .unwrap_or_else(|| ErrorCode::INVALID_ACCOUNT_ID.into());
                cell.actor.on_destroy(&mut cell.link).await;
                let frame = match refusal.packet {
                    Some(packet) => {
                        ServerFrame::new(packet.msg_id, seq, stage_id, refusal.code, packet.payload)
                    }
                    None => error_frame(reply_id, seq, stage_id, refusal.code),
                };
                session.send(frame);
                return JoinOutcome::Rejected;
            }
        };
        let reply = ServerFrame::new(reply_id, seq, stage_id, ErrorCode::SUCCESS, reply.payload);
        let account = Arc::clone(cell.link.account_arc());

        if let Some(&key) = self.accounts.get(&account) {
            // Re-authentication as an existing account: re-attach the existing actor. The
            // actor built for this attempt only served to authenticate.
            cell.actor.on_destroy(&mut cell.link).await;
            let Some(existing) = self.actors.get_mut(&key) else {
                return JoinOutcome::Rejected;
            };
            let previous = existing.link.set_session(Some(session.clone()));
            self.disconnected.remove(&key);
            self.ctx.clients.insert(
                key,
                Client {
                    account_id: account,
                    session: session.clone(),
                },
            );
            // A second login while the old connection still looks alive (its drop not yet
            // noticed) replaces it: the stage sees it leave, then come back.
            if let Some(old) = previous {
                old.close();
                self.stage
                    .on_connection_changed(&mut self.ctx, existing, false)
                    .await;
            }
            self.stage
                .on_connection_changed(&mut self.ctx, existing, true)
                .await;
            session.send(reply);
            self.leave_if_asked(key).await;
            return JoinOutcome::Joined { actor: key };
        }

        cell.actor.on_post_authenticate(&mut cell.link).await;
        if !self.stage.on_join_stage(&mut self.ctx, &mut cell).await {
            cell.actor.on_destroy(&mut cell.link).await;
            session.send(error_frame(
                reply.msg_id,
                seq,
                stage_id,
                ErrorCode::JOIN_STAGE_FAILED,
            ));
            return JoinOutcome::Rejected;
        }
        let key = self.next_actor;
        self.next_actor += 1;
        self.accounts.insert(Arc::clone(&account), key);
        self.ctx.clients.insert(
            key,
            Client {
                account_id: account,
                session: session.clone(),
            },
        );
        let cell = self.actors.entry(key).or_insert(cell);
        self.env.metrics.actors_joined();
        self.empty_since = None;
        self.stage.on_post_join_stage(&mut self.ctx, cell).await;
        session.send(reply);
        self.leave_if_asked(key).await;
        JoinOutcome::Joined { actor: key }
    }

    /// Removes the actor if its code called `leave_stage`.
    async fn leave_if_asked(&mut self, key: u64) {
        if !self
            .actors
            .get(&key)
            .is_some_and(|cell| cell.link.wants_leave())
        {
            return;
        }
        let Some(mut cell) = self.actors.remove(&key) else {
            return;
        };
        self.accounts.remove(cell.link.account_id());
        self.ctx.clients.remove(&key);
        self.disconnected.remove(&key);
        self.env.metrics.actors_left(1);
        self.note_occupancy();
        cell.actor.on_destroy(&mut cell.link).await;
        if let Some(session) = cell.link.session() {
            session.push(Outbound::Detached(ErrorCode::NOT_AUTHENTICATED));
        }
    }
}

fn error_frame(msg_id: MsgId, seq: u16, stage_id: i64, code: ErrorCode) -> ServerFrame {
    ServerFrame::new(msg_id, seq, stage_id, code, Bytes::new())
}

#[allow(dead_code)]
fn _assert_send<S: Stage>(runner: StageRunner<S>, create: CreateRequest) {
    fn is_send<T: Send>(_: T) {}
    is_send(runner.run(create));
}
