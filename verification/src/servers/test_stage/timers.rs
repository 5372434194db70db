//! Repeat and count timers that push `TimerTickNotify` to the requester; cancel and has.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use playhouse::{ErrorCode, Packet};

use super::state::{Actor, Ctx, Routes, TestStage};
use crate::proto::{
    CancelTimerReply, CancelTimerRequest, HasTimerReply, HasTimerRequest, StartCountTimerRequest,
    StartRepeatTimerRequest, StartTimerReply, TimerTickNotify,
};

/// This module's handlers.
pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .client(start_repeat)
        .client(start_count)
        .client(cancel)
        .client(has)
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A timer callback pushing numbered ticks to `account_id`. The timer's id is only known
/// after it was added, hence the cell; the stage counts each timer's ticks.
fn tick_pusher(
    account_id: String,
    timer_id: Arc<OnceLock<u64>>,
) -> impl FnMut(&mut TestStage, &mut Ctx) + Send + 'static {
    move |stage, ctx| {
        let timer_id = timer_id.get().copied().unwrap_or_default();
        let tick = stage.timer_ticks.entry(timer_id).or_default();
        *tick += 1;
        ctx.send_to_account(
            &account_id,
            Packet::from_message(&TimerTickNotify {
                timer_id,
                tick: *tick,
            }),
        );
    }
}

/// `StartRepeatTimerRequest` → `StartTimerReply`; ticks until cancelled.
fn start_repeat(
    stage: &mut TestStage,
    ctx: &mut Ctx,
    actor: &mut Actor,
    request: StartRepeatTimerRequest,
) -> Result<StartTimerReply, ErrorCode> {
    let cell = Arc::new(OnceLock::new());
    let callback = tick_pusher(actor.link.account_id().to_owned(), Arc::clone(&cell));
    let id = ctx.add_repeat_timer(
        millis(request.initial_delay_ms),
        millis(request.period_ms),
        callback,
    );
    let _ = cell.set(id.get());
    stage.timers.insert(id.get(), id);
    Ok(StartTimerReply { timer_id: id.get() })
}

/// `StartCountTimerRequest` → `StartTimerReply`; ticks exactly `count` times.
fn start_count(
    stage: &mut TestStage,
    ctx: &mut Ctx,
    actor: &mut Actor,
    request: StartCountTimerRequest,
) -> Result<StartTimerReply, ErrorCode> {
    let cell = Arc::new(OnceLock::new());
    let callback = tick_pusher(actor.link.account_id().to_owned(), Arc::clone(&cell));
    let id = ctx.add_count_timer(
        millis(request.initial_delay_ms),
        millis(request.period_ms),
        u32::try_from(request.count).unwrap_or(0),
        callback,
    );
    let _ = cell.set(id.get());
    stage.timers.insert(id.get(), id);
    Ok(StartTimerReply { timer_id: id.get() })
}

/// `CancelTimerRequest` → whether the timer was still scheduled.
fn cancel(
    stage: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: CancelTimerRequest,
) -> Result<CancelTimerReply, ErrorCode> {
    let cancelled = stage
        .timers
        .remove(&request.timer_id)
        .is_some_and(|id| ctx.cancel_timer(id));
    let ticks = stage
        .timer_ticks
        .get(&request.timer_id)
        .copied()
        .unwrap_or(0);
    Ok(CancelTimerReply { cancelled, ticks })
}

/// `HasTimerRequest` → whether the timer is still scheduled.
fn has(
    stage: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: HasTimerRequest,
) -> Result<HasTimerReply, ErrorCode> {
    let has_timer = stage
        .timers
        .get(&request.timer_id)
        .is_some_and(|id| ctx.has_timer(*id));
    Ok(HasTimerReply { has_timer })
}
