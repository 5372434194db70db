//! One stage's event loop: its mailbox, timers, game loop and async-block results, handled
//! one at a time so stage code needs no locks.
//!
//! The loop itself is here; what it does on each wake-up lives next to it:
//! * `dispatch`: mailbox messages (client, server, disconnect) handed to stage code;
//! * `join`: the authentication flow of a client joining the stage;
//! * `occupancy`: actors leaving (asked, expired, disconnected) and the idle close;
//! * `schedule`: when the loop must wake next, timers and the fixed-step game loop;
//! * `close`: the graceful close, and answering whatever is still queued at the end.

mod close;
mod dispatch;
mod join;
mod occupancy;
mod schedule;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::actor::{ActorCell, ActorFactory};
use super::context::{Post, StageContext};
use super::env::StageEnv;
use super::handle::{CreateRequest, StageMsg};
use super::model::Stage;
use crate::limits::throttled;
use crate::session::handle::{SessionHandle, SessionId};

pub(crate) use close::refuse_stillborn;

/// Mailbox messages handled per wake-up of the stage loop.
const MAILBOX_BATCH: usize = 64;

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
    expiries: BTreeSet<(Instant, u64)>,
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
            expiries: BTreeSet::new(),
            empty_since: None,
        }
    }

    /// Runs the stage until it closes. A panic in stage code closes only this stage.
    pub(crate) async fn run(mut self, create: CreateRequest) {
        let span = tracing::info_span!("stage", id = self.stage_id, kind = %self.stage_type);
        async move {
            let outcome = AssertUnwindSafe(self.drive(create)).catch_unwind().await;
            if outcome.is_err() {
                throttled!(error, "stage code panicked; closing the stage");
                self.detach_after_panic();
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
                // Without a deadline the branch is disabled: its sleep is built, never polled.
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
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
                        throttled!(error, "an async block panicked; its post will not run");
                    }
                }
            }
        }

        self.close().await;
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
}

#[allow(dead_code)]
fn _assert_send<S: Stage>(runner: StageRunner<S>, create: CreateRequest) {
    fn is_send<T: Send>(_: T) {}
    is_send(runner.run(create));
}
