//! A stage that keeps time: the application of `push_idle` and `stage_clock`. It pushes
//! what its timers, game loop and async blocks did, each with the stage's own clock (ms since
//! the stage was created), so clients can check the cadence whatever the network did to the
//! pushes on the way.
//!
//! ```text
//! api -> Clock   create "push"   a repeat timer only
//!                create "clock <players>"  the repeat timer; once <players> have joined,
//!                                the game loop, a count timer and async blocks
//! stage -> client Tick "<n> <ms>"          repeat timer run n (every TICK; ms since creation)
//!                 Started "<ms>"           the clock started (ms since creation)
//!                 Step "<tick> <total ms> <ms>" every STEP_EVERY-th game-loop step (ms
//!                                          since the start)
//!                 Count "<k> <ms>"         count timer run k of COUNT (every COUNT_PERIOD)
//!                 Posted "<k>"             async block k of ASYNC_BLOCKS has ended (in start order)
//!                 Presence "<account> <0|1>" broadcast on connection change
//! client -> Clock Close ""                 request: ClosedSoon "", then the stage closes
//! ```

use std::time::Duration;

use playhouse::{ActorCell, ErrorCode, Packet, PlayServerBuilder, Stage, StageContext};
use tokio::time::Instant;

use crate::app::SimPlayer;
use crate::lifecycle::{StageBook, StageLog};

/// The stage type name.
pub const CLOCK: &str = "Clock";
/// The repeat timer's period.
pub const TICK: Duration = Duration::from_millis(100);
/// The game loop's timestep.
pub const STEP: Duration = Duration::from_millis(50);
/// Every how many game-loop steps a `Step` is pushed.
pub const STEP_EVERY: u64 = 4;
/// Runs of the count timer.
pub const COUNT: u32 = 5;
/// The count timer's period.
pub const COUNT_PERIOD: Duration = Duration::from_millis(300);
/// Async blocks started (one per run of a count timer every `ASYNC_PERIOD`).
pub const ASYNC_BLOCKS: u32 = 8;
/// How often an async block is started.
pub const ASYNC_PERIOD: Duration = Duration::from_millis(120);
/// How long each async block takes (all the same: they end in the order they started).
pub const ASYNC_TAKES: Duration = Duration::from_millis(70);

/// Registers the clock stage type on a Play server being built, whose stages and actors
/// report to `book`.
pub fn register(builder: PlayServerBuilder, book: &StageBook) -> PlayServerBuilder {
    let (stages, actors) = (book.clone(), book.clone());
    builder.stage(
        CLOCK,
        move |init| ClockRoom::new(stages.stage(CLOCK, init.stage_id)),
        move |_| SimPlayer::new(&actors),
    )
}

/// The clock stage.
#[derive(Debug)]
pub struct ClockRoom {
    log: StageLog,
    born: Instant,
    ticks: u64,
    /// Players to wait for before starting the clock (`None`: ticks only).
    players: Option<usize>,
    joined: usize,
    /// When the game loop, count timer and async blocks started.
    start: Instant,
    counts: u32,
    started: u32,
}

impl ClockRoom {
    fn new(log: StageLog) -> ClockRoom {
        ClockRoom {
            log,
            born: Instant::now(),
            ticks: 0,
            players: None,
            joined: 0,
            start: Instant::now(),
            counts: 0,
            started: 0,
        }
    }

    fn ms(&self) -> u128 {
        self.born.elapsed().as_millis()
    }

    fn since_start(&self) -> u128 {
        self.start.elapsed().as_millis()
    }

    /// Starts the game loop, the count timer and the async blocks; the stage's `Start`
    /// push carries the time since creation.
    fn start(&mut self, ctx: &mut StageContext<Self>) {
        self.start = Instant::now();
        ctx.broadcast(Packet::new("Started", self.ms().to_string()));
        ctx.start_game_loop(STEP, |room: &mut ClockRoom, ctx, tick| {
            if tick.tick % STEP_EVERY == 0 {
                let payload = format!(
                    "{} {} {}",
                    tick.tick,
                    tick.total.as_millis(),
                    room.since_start()
                );
                ctx.broadcast(Packet::new("Step", payload));
            }
        });
        ctx.add_count_timer(
            COUNT_PERIOD,
            COUNT_PERIOD,
            COUNT,
            |room: &mut ClockRoom, ctx| {
                room.counts += 1;
                let payload = format!("{} {}", room.counts, room.since_start());
                ctx.broadcast(Packet::new("Count", payload));
            },
        );
        ctx.add_count_timer(
            ASYNC_PERIOD,
            ASYNC_PERIOD,
            ASYNC_BLOCKS,
            |room: &mut ClockRoom, ctx| {
                room.started += 1;
                let k = room.started;
                ctx.async_block(
                    async move {
                        tokio::time::sleep(ASYNC_TAKES).await;
                        k
                    },
                    |_, ctx, k| ctx.broadcast(Packet::new("Posted", k.to_string())),
                );
            },
        );
        // Never ends by itself: closing the stage must cancel it.
        ctx.async_block(
            tokio::time::sleep(Duration::from_secs(3600)),
            |_, ctx, ()| ctx.broadcast(Packet::empty("Overslept")),
        );
    }
}

impl Stage for ClockRoom {
    type Actor = SimPlayer;

    async fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        packet: Packet,
    ) -> Result<Packet, ErrorCode> {
        self.log.created();
        self.born = Instant::now();
        ctx.add_repeat_timer(TICK, TICK, |room: &mut ClockRoom, ctx| {
            room.ticks += 1;
            let payload = format!("{} {}", room.ticks, room.ms());
            ctx.broadcast(Packet::new("Tick", payload));
        });
        // "clock <players>": the rest starts once that many players have joined.
        self.players = String::from_utf8_lossy(&packet.payload)
            .strip_prefix("clock ")
            .and_then(|n| n.parse().ok());
        Ok(Packet::empty("Created"))
    }

    async fn on_destroy(&mut self, _: &mut StageContext<Self>) {
        self.log.destroyed();
    }

    async fn on_post_join_stage(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<SimPlayer>,
    ) {
        self.log.joined(&actor.log);
        self.joined += 1;
        if self.players == Some(self.joined) {
            self.start(ctx);
        }
    }

    async fn on_connection_changed(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<SimPlayer>,
        connected: bool,
    ) {
        let presence = format!("{} {}", actor.link.account_id(), u8::from(connected));
        ctx.broadcast(Packet::new("Presence", presence));
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<SimPlayer>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "Close" => {
                actor.link.reply(Packet::empty("ClosedSoon"));
                ctx.close_stage();
            }
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}
