//! The fixed-timestep game loop: ticks pushed to the requester, stop, self-stop after
//! `max_ticks`, and a stall that makes the loop catch up.

use std::time::Duration;

use playhouse::{ActorCell, GameTick, Packet, StageContext};
use tokio::time::Instant;

use super::{TestStage, parse, reply};
use crate::proto::{
    GameLoopStoppedNotify, GameLoopTickNotify, StallStageReply, StallStageRequest,
    StartGameLoopReply, StartGameLoopRequest, StopGameLoopReply,
};
use crate::servers::test_actor::TestActor;

type Actor = ActorCell<TestActor>;

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// `StartGameLoopRequest` → `StartGameLoopReply`; every step pushes `GameLoopTickNotify`.
pub(super) fn start(ctx: &mut StageContext<TestStage>, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<StartGameLoopRequest>(actor, packet) else {
        return;
    };
    let account_id = actor.link.account_id().to_owned();
    let max_ticks = u64::try_from(request.max_ticks).unwrap_or(0);
    let timestep = Duration::from_millis(u64::try_from(request.timestep_ms).unwrap_or(0));
    let started = Instant::now();
    ctx.start_game_loop(
        timestep,
        move |stage: &mut TestStage, ctx: &mut StageContext<TestStage>, tick: GameTick| {
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
    reply(actor, &StartGameLoopReply { started: true });
}

/// `StopGameLoopRequest` → whether it ran and its last step number.
pub(super) fn stop(stage: &mut TestStage, ctx: &mut StageContext<TestStage>, actor: &mut Actor) {
    let was_running = ctx.is_game_loop_running();
    ctx.stop_game_loop();
    reply(
        actor,
        &StopGameLoopReply {
            was_running,
            ticks: stage.game_loop_ticks,
        },
    );
}

/// `StallStageRequest`: keeps the stage loop busy (nothing else of this stage runs meanwhile),
/// then replies.
pub(super) async fn stall(stage: &mut TestStage, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<StallStageRequest>(actor, packet) else {
        return;
    };
    let stall = Duration::from_millis(u64::try_from(request.stall_ms).unwrap_or(0));
    tokio::time::sleep(stall).await;
    reply(
        actor,
        &StallStageReply {
            stalled_ms: request.stall_ms,
            ticks: stage.game_loop_ticks,
        },
    );
}
