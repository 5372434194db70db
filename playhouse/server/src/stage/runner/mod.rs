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
mod moving;
mod occupancy;
mod relayed;
mod schedule;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use playhouse_protocol::ErrorCode;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::actor::{ActorCell, ActorFactory};
use super::context::{Post, StageContext};
use super::env::StageEnv;
use super::handle::{CreateRequest, StageMsg, StageStats};
use super::model::Stage;
use super::moving::{MoveOps, RestoreRequest};
use super::relay_order::RelayOrder;
use crate::limits::throttled;
use crate::session::handle::{SessionHandle, SessionId};

pub(crate) use close::refuse_stillborn;
pub(crate) use moving::stage_init;

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
    /// Set by a close that also closes the clients' connections, with the code they get.
    farewell: Option<ErrorCode>,
    /// How the stage moves to another server (`None`: its type is not movable).
    moves: Option<MoveOps<S>>,
    /// Set once the stage moved away: it ends here without `on_destroy`.
    moved: bool,
    /// When each disconnected actor lost its client (for `disconnected_actor_ttl`).
    disconnected: HashMap<u64, Instant>,
    /// Expiry checks, earliest first (stale ones are skipped).
    expiries: BTreeSet<(Instant, u64)>,
    /// Since when the stage has had no actors (for `stage_idle_timeout`).
    empty_since: Option<Instant>,
    /// Its actors and overruns, for the admin page (its handle reads them).
    stats: Arc<StageStats>,
    /// Relayed players' messages, taken in their home's order.
    relay_order: RelayOrder,
    /// When the last client message's handler ended, while the loop has gone straight on
    /// to the next message since (see `dispatch`; `None` once anything else ran).
    handled_until: Option<Instant>,
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
        // Registered before the task that builds this runner started (or not at all: a
        // stage refused before it lived has no page to show).
        let stats = env
            .registry
            .stats(stage_id, incarnation)
            .unwrap_or_default();
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
            farewell: None,
            moves: None,
            moved: false,
            disconnected: HashMap::new(),
            expiries: BTreeSet::new(),
            empty_since: None,
            stats,
            relay_order: RelayOrder::default(),
            handled_until: None,
        }
    }

    /// `n` actors left (the server's gauge and this stage's count).
    fn actors_left(&self, n: usize) {
        self.env.metrics.actors_left(n);
        self.stats.actors_left(n);
    }

    /// An actor joined (the server's gauge and this stage's count).
    fn actors_joined(&self) {
        self.env.metrics.actors_joined();
        self.stats.actors_joined();
    }

    /// A runner that can move its stage to another server.
    pub(crate) fn movable(mut self, moves: Option<MoveOps<S>>) -> Self {
        self.moves = moves;
        self
    }

    /// Runs the stage until it closes. A panic in stage code closes only this stage.
    pub(crate) async fn run(self, create: CreateRequest) {
        self.run_from(Start::Create(create)).await;
    }

    /// Runs a stage that moved here (see `moving`) until it closes.
    pub(crate) async fn run_moved(self, request: RestoreRequest) {
        self.run_from(Start::Moved(request)).await;
    }

    async fn run_from(mut self, start: Start) {
        let span = tracing::info_span!(
            "stage",
            server = self.env.control.server_id(),
            id = self.stage_id,
            kind = %self.stage_type
        );
        async move {
            let driven = async {
                match start {
                    Start::Create(create) => self.drive(create).await,
                    Start::Moved(request) => self.drive_moved(request).await,
                }
            };
            let outcome = AssertUnwindSafe(driven).catch_unwind().await;
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
        self.serve().await;
    }

    /// The loop, until the stage closes (or moves away).
    async fn serve(&mut self) {
        while !self.ctx.closing {
            self.handled_until = None;
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                // Without a deadline the branch is disabled: its sleep is built, never polled.
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() => {
                        self.fire_due();
                        self.release_overdue().await;
                        self.expire_actors().await;
                        self.dispose_if_idle();
                    }
                Some(post) = self.post_rx.recv() => post(&mut self.stage, &mut self.ctx),
                msg = self.rx.recv() => match msg {
                    Some(StageMsg::Close { farewell }) => self.begin_close(farewell),
                    None => self.ctx.closing = true,
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
                Ok(StageMsg::Close { farewell }) => self.begin_close(farewell),
                Ok(msg) => self.handle(msg).await,
                Err(_) => return,
            }
        }
    }
}

/// How a stage starts: created, or moved here.
enum Start {
    Create(CreateRequest),
    Moved(RestoreRequest),
}

#[allow(dead_code)]
fn _assert_send<S: Stage>(runner: StageRunner<S>, create: CreateRequest) {
    fn is_send<T: Send>(_: T) {}
    is_send(runner.run(create));
}
