//! The fixed-timestep game loop: ticks pushed to the requester, stop, self-stop after
//! `max_ticks`, and a stall that makes the loop catch up.

use std::time::Duration;

use playhouse::{ErrorCode, GameTick, Packet};
use tokio::time::Instant;

use super::state::{Actor, Ctx, Routes, TestStage};
use crate::proto::{
    GameLoopStoppedNotify, GameLoopTickNotify, StallStageReply, StallStageRequest,
    StartGameLoopReply, StartGameLoopRequest, StopGameLoopReply, StopGameLoopRequest,
};

/// This module's handlers.
pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .client(start)
        .client(stop)
        .client_async(TestStage::stall)
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// `StartGameLoopRequest` → `StartGameLoopReply`; every step pushes `GameLoopTickNotify`.
fn start(
    _: &mut TestStage,
    ctx: &mut Ctx,
    actor: &mut Actor,
    request: StartGameLoopRequest,
) -> Result<StartGameLoopReply, ErrorCode> {
    let account_id = actor.link.account_id().to_owned();
    let max_ticks = u64::try_from(request.max_ticks).unwrap_or(0);
    let timestep = Duration::from_millis(u64::try_from(request.timestep_ms).unwrap_or(0));
    let started = Instant::now();
    ctx.start_game_loop(
        timestep,
        move |stage: &mut TestStage, ctx: &mut Ctx, tick: GameTick| {
            stage.game_loop_ticks = tick.tick;
            ctx.send_to_account(
                &account_id,
                Packet::from_message(&GameLoopTickNotify {
                    tick: tick.tick,
                    delta_us: micros(tick.delta),
                    total_us: micros(tick.total),
                    elapsed_us: micros(started.elapsed()),
                }),
            );
            if max_ticks > 0 && tick.tick >= max_ticks {
                ctx.stop_game_loop();
                ctx.send_to_account(
                    &account_id,
                    Packet::from_message(&GameLoopStoppedNotify { ticks: tick.tick }),
                );
            }
        },
    );
    Ok(StartGameLoopReply { started: true })
}

/// `StopGameLoopRequest` → whether it ran and its last step number.
fn stop(
    stage: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    _: StopGameLoopRequest,
) -> Result<StopGameLoopReply, ErrorCode> {
    let was_running = ctx.is_game_loop_running();
    ctx.stop_game_loop();
    Ok(StopGameLoopReply {
        was_running,
        ticks: stage.game_loop_ticks,
    })
}

impl TestStage {
    /// `StallStageRequest`: keeps the stage loop busy (nothing else of this stage runs
    /// meanwhile), then replies.
    async fn stall(
        &mut self,
        _: &mut Ctx,
        _: &mut Actor,
        request: StallStageRequest,
    ) -> Result<StallStageReply, ErrorCode> {
        let stall = Duration::from_millis(u64::try_from(request.stall_ms).unwrap_or(0));
        tokio::time::sleep(stall).await;
        Ok(StallStageReply {
            stalled_ms: request.stall_ms,
            ticks: self.game_loop_ticks,
        })
    }
}
