use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use playhouse_protocol::{ErrorCode, Packet, ServerFrame, SharedFrame};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::actor::ReplyTarget;
use super::timer::{TimerId, Timers};
use crate::sender::{MeshHandle, Sender};
use crate::services::{ServerControl, Services};
use crate::session::handle::SessionHandle;

/// What a stage factory gets to build a stage.
#[derive(Debug)]
pub struct StageInit<'a> {
    /// The new stage's id.
    pub stage_id: i64,
    /// The registered type name it was created as.
    pub stage_type: &'a str,
    /// The server's shared services.
    pub services: &'a Services,
    /// The server's control handle.
    pub control: &'a ServerControl,
}

/// One step of a stage's fixed-timestep game loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GameTick {
    /// Always the configured timestep (the loop catches up in fixed steps).
    pub delta: Duration,
    /// Simulated time since the loop started: `tick × timestep`.
    pub total: Duration,
    /// Step number, from 1.
    pub tick: u64,
}

pub(crate) type TimerCallback<S> = Box<dyn FnMut(&mut S, &mut StageContext<S>) + Send>;
pub(crate) type GameLoopCallback<S> = Box<dyn FnMut(&mut S, &mut StageContext<S>, GameTick) + Send>;
pub(crate) type Post<S> = Box<dyn FnOnce(&mut S, &mut StageContext<S>) + Send>;

/// Most steps one wake-up of the game loop may run before it drops the backlog, so a stalled
/// stage does not spiral.
pub(crate) const MAX_STEPS_PER_WAKE: u32 = 5;

pub(crate) struct GameLoop<S> {
    pub(crate) step: Duration,
    pub(crate) callback: Option<GameLoopCallback<S>>,
    pub(crate) last: Instant,
    pub(crate) accumulated: Duration,
    pub(crate) ticks: u64,
    pub(crate) total: Duration,
    pub(crate) next: Instant,
    /// Bumped by every start, so a callback that restarts the loop is not overwritten.
    pub(crate) generation: u64,
}

/// A connected client of the stage, for broadcasts.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) account_id: Arc<str>,
    pub(crate) session: SessionHandle,
}

/// The stage sender: everything stage code can do besides touching its own state.
/// Lives on the stage loop; callbacks receive it as `&mut`.
pub struct StageContext<S> {
    stage_id: i64,
    stage_type: Arc<str>,
    services: Services,
    control: ServerControl,
    pub(crate) timers: Timers<TimerCallback<S>>,
    pub(crate) game_loop: Option<GameLoop<S>>,
    game_loop_generation: u64,
    post_tx: mpsc::Sender<Post<S>>,
    pub(crate) tasks: JoinSet<()>,
    /// Connected clients by actor key: ordered, so a broadcast reaches them in join order
    /// on every run.
    pub(crate) clients: BTreeMap<u64, Client>,
    pub(crate) closing: bool,
    /// Whether the stage closes after `stage_idle_timeout` without actors.
    pub(crate) auto_dispose: bool,
    pub(crate) server_reply: Option<ReplyTarget>,
    mesh: MeshHandle,
}

impl<S> fmt::Debug for StageContext<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageContext")
            .field("stage_id", &self.stage_id)
            .field("stage_type", &self.stage_type)
            .field("timers", &self.timers)
            .field("clients", &self.clients.len())
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl<S: Send + 'static> StageContext<S> {
    pub(crate) fn new(
        stage_id: i64,
        stage_type: Arc<str>,
        services: Services,
        control: ServerControl,
        post_tx: mpsc::Sender<Post<S>>,
        mesh: MeshHandle,
    ) -> Self {
        StageContext {
            stage_id,
            stage_type,
            services,
            control,
            timers: Timers::default(),
            game_loop: None,
            game_loop_generation: 0,
            post_tx,
            tasks: JoinSet::new(),
            clients: BTreeMap::new(),
            closing: false,
            auto_dispose: true,
            server_reply: None,
            mesh,
        }
    }

    /// Messaging to other servers and stages (the stage sender's mesh half). Its request
    /// futures are `'static`: await them here, or hand them to [`StageContext::async_block`].
    pub fn sender(&self) -> Sender {
        Sender::new(Arc::clone(&self.mesh), self.stage_id, Arc::from(""))
    }

    /// Callback form of a request: `request` (e.g. `ctx.sender().request_to_stage(..)`) runs
    /// off the loop and `callback` gets its result back on the stage loop.
    pub fn request_with_callback<F, P>(&mut self, request: F, callback: P)
    where
        F: Future<Output = Result<Packet, playhouse_mesh::MeshError>> + Send + 'static,
        P: FnOnce(&mut S, &mut StageContext<S>, Result<Packet, playhouse_mesh::MeshError>)
            + Send
            + 'static,
    {
        self.async_block(request, callback);
    }

    /// This stage's id.
    pub fn stage_id(&self) -> i64 {
        self.stage_id
    }

    /// The type name this stage was registered as.
    pub fn stage_type(&self) -> &str {
        &self.stage_type
    }

    /// The server's shared services.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The server's control handle (its id, graceful stop).
    pub fn control(&self) -> &ServerControl {
        &self.control
    }

    /// Runs `callback` after `initial`, then every `period`, until cancelled.
    pub fn add_repeat_timer(
        &mut self,
        initial: Duration,
        period: Duration,
        callback: impl FnMut(&mut S, &mut StageContext<S>) + Send + 'static,
    ) -> TimerId {
        self.timers
            .add(Instant::now(), initial, period, None, Box::new(callback))
    }

    /// Runs `callback` after `initial`, then every `period`, `count` times in all.
    pub fn add_count_timer(
        &mut self,
        initial: Duration,
        period: Duration,
        count: u32,
        callback: impl FnMut(&mut S, &mut StageContext<S>) + Send + 'static,
    ) -> TimerId {
        self.timers.add(
            Instant::now(),
            initial,
            period,
            Some(count),
            Box::new(callback),
        )
    }

    /// Cancels a timer; `false` if it had already finished or been cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }

    /// How many timers are scheduled.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Whether the timer is still scheduled.
    pub fn has_timer(&self, id: TimerId) -> bool {
        self.timers.contains(id)
    }

    /// Closes the stage after the current callback: every actor's `on_destroy`, then the
    /// stage's `on_destroy`; connected clients are detached from the stage.
    pub fn close_stage(&mut self) {
        self.closing = true;
    }

    /// Whether this stage closes by itself once it has had no actors for the server's
    /// `stage_idle_timeout` (default: yes). Turn it off for a stage meant to outlive its
    /// players (a persistent world, a lobby created ahead of time).
    pub fn set_auto_dispose(&mut self, on: bool) {
        self.auto_dispose = on;
    }

    /// Runs `pre` off the stage loop (it may await I/O or other servers; use
    /// `tokio::task::spawn_blocking` inside it for blocking work), then runs `post` with its
    /// result back on the stage loop. Pending blocks are cancelled when the stage closes.
    pub fn async_block<T, F, P>(&mut self, pre: F, post: P)
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
        P: FnOnce(&mut S, &mut StageContext<S>, T) + Send + 'static,
    {
        let tx = self.post_tx.clone();
        // `pre` continues the trace and span of the code that started it (its log lines and
        // the mesh messages it sends belong to the same call).
        let trace = playhouse_mesh::TraceContext::current();
        let span = tracing::Span::current();
        self.tasks.spawn(async move {
            let pre = tracing::Instrument::instrument(pre, span);
            let value = match trace {
                Some(trace) => trace.scope(pre).await,
                None => pre.await,
            };
            let post: Post<S> = Box::new(move |stage, ctx| post(stage, ctx, value));
            // The stage may have closed meanwhile; then the result has nowhere to go.
            let _ = tx.send(post).await;
        });
    }

    /// Starts (or restarts) the fixed-timestep game loop: `callback` runs every `timestep`
    /// with `delta == timestep`; after a stall it catches up at most 5 steps at once.
    pub fn start_game_loop(
        &mut self,
        timestep: Duration,
        callback: impl FnMut(&mut S, &mut StageContext<S>, GameTick) + Send + 'static,
    ) {
        let step = timestep.max(Duration::from_millis(1));
        let now = Instant::now();
        self.game_loop_generation += 1;
        self.game_loop = Some(GameLoop {
            step,
            callback: Some(Box::new(callback)),
            last: now,
            accumulated: Duration::ZERO,
            ticks: 0,
            total: Duration::ZERO,
            next: now + step,
            generation: self.game_loop_generation,
        });
    }

    /// Stops the game loop (no further ticks, even within the current wake-up).
    pub fn stop_game_loop(&mut self) {
        self.game_loop = None;
    }

    /// Whether the game loop runs.
    pub fn is_game_loop_running(&self) -> bool {
        self.game_loop.is_some()
    }

    /// Pushes `packet` to every connected client in the stage.
    pub fn broadcast(&self, packet: Packet) {
        // Encoded once for all of them (once more for clients that agreed to compression).
        let frame = SharedFrame::new(ServerFrame::from_packet(packet, 0, self.stage_id));
        for client in self.clients.values() {
            client.session.send_shared(frame.clone());
        }
    }

    /// Pushes `packet` to every connected client except `account_id`.
    pub fn broadcast_except(&self, account_id: &str, packet: Packet) {
        let frame = SharedFrame::new(ServerFrame::from_packet(packet, 0, self.stage_id));
        for client in self.clients.values() {
            if &*client.account_id != account_id {
                client.session.send_shared(frame.clone());
            }
        }
    }

    /// Pushes `packet` to one account's client; `false` if it is not connected here.
    pub fn send_to_account(&self, account_id: &str, packet: Packet) -> bool {
        match self
            .clients
            .values()
            .find(|client| &*client.account_id == account_id)
        {
            Some(client) => {
                client
                    .session
                    .send(ServerFrame::from_packet(packet, 0, self.stage_id));
                true
            }
            None => false,
        }
    }

    /// How many clients are connected to the stage right now.
    pub fn connected_count(&self) -> usize {
        self.clients.len()
    }

    /// Takes the reply of the server request being dispatched, to answer it later (e.g. from
    /// an async block's `post`); `None` for one-way messages or once answered.
    pub fn server_reply_target(&mut self) -> Option<ReplyTarget> {
        self.server_reply.take()
    }

    /// Replies to the server request being dispatched (`on_dispatch_server`).
    pub fn reply(&mut self, packet: Packet) {
        if let Some(target) = self.server_reply.take() {
            target.reply(packet);
        }
    }

    /// Replies to the server request being dispatched with an error code.
    pub fn reply_error(&mut self, code: ErrorCode) {
        if let Some(target) = self.server_reply.take() {
            target.reply_error(code);
        }
    }

    /// Replies to the server request being dispatched with an error code and a packet.
    pub fn reply_error_with(&mut self, code: ErrorCode, packet: Packet) {
        if let Some(target) = self.server_reply.take() {
            target.reply_error_with(code, packet);
        }
    }
}
