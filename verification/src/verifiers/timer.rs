//! Timer: a repeat timer ticks until cancelled; a count timer ticks exactly `count` times;
//! timers of one stage run independently.

use std::collections::HashMap;
use std::time::Duration;

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    CancelTimerReply, CancelTimerRequest, HasTimerReply, HasTimerRequest, StartCountTimerRequest,
    StartRepeatTimerRequest, StartTimerReply, TimerTickNotify,
};
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

/// How long to watch for ticks that must not come (several timer periods).
const QUIET: Duration = Duration::from_millis(200);

/// The Timer category (stage ids 10000..).
pub(super) fn category() -> Category {
    Category {
        name: "Timer",
        base: 10_000,
        tests: vec![
            TestCase::new("RepeatTimer_TicksUntilCancelled", |t| Box::pin(repeat(t))),
            TestCase::new("CountTimer_ExactCount", |t| Box::pin(count(t))),
            TestCase::new("Timers_RunIndependently", |t| Box::pin(independent(t))),
        ],
    }
}

async fn repeat(t: TestCtx) -> TestResult {
    let connector = t.shared(1, "timer_user").await?;
    let mut events = t.shared_events();
    let start = StartRepeatTimerRequest {
        initial_delay_ms: 10,
        period_ms: 30,
    };
    let started: StartTimerReply = client::request(&connector, &start).await?;
    let ticks: Vec<TimerTickNotify> = events.pushes(3, WAIT).await?;
    for (i, tick) in ticks.iter().enumerate() {
        ensure_eq!(tick.timer_id, started.timer_id, "tick {i} timer id");
        ensure_eq!(tick.tick, i32::try_from(i + 1).unwrap_or(0), "tick number");
    }
    let timer_id = started.timer_id;
    let cancelled: CancelTimerReply =
        client::request(&connector, &CancelTimerRequest { timer_id }).await?;
    ensure!(cancelled.cancelled, "CancelTimerReply.cancelled is false");
    ensure!(
        cancelled.ticks >= 3,
        "only {} ticks before cancel",
        cancelled.ticks
    );
    let has: HasTimerReply = client::request(&connector, &HasTimerRequest { timer_id }).await?;
    ensure!(!has.has_timer, "the cancelled timer is still scheduled");
    // Ticks already on their way may still arrive; none may be numbered past the cancel.
    let late: Vec<TimerTickNotify> = events.collect_pushes(QUIET).await?;
    let after = late
        .iter()
        .filter(|tick| tick.tick > cancelled.ticks)
        .count();
    ensure_eq!(after, 0, "ticks after cancel");
    let again: CancelTimerReply =
        client::request(&connector, &CancelTimerRequest { timer_id }).await?;
    ensure!(!again.cancelled, "a cancelled timer was cancelled twice");
    Ok(())
}

async fn count(t: TestCtx) -> TestResult {
    let connector = t.shared(2, "timer_count").await?;
    let mut events = t.shared_events();
    let start = StartCountTimerRequest {
        initial_delay_ms: 10,
        period_ms: 20,
        count: 5,
    };
    let started: StartTimerReply = client::request(&connector, &start).await?;
    let ticks: Vec<TimerTickNotify> = events.pushes(5, WAIT).await?;
    let numbers: Vec<i32> = ticks.iter().map(|t| t.tick).collect();
    ensure_eq!(numbers, vec![1, 2, 3, 4, 5], "tick numbers");
    let extra: Vec<TimerTickNotify> = events.collect_pushes(QUIET).await?;
    ensure!(
        extra.is_empty(),
        "{} ticks after the count ran out",
        extra.len()
    );
    let has: HasTimerReply = client::request(
        &connector,
        &HasTimerRequest {
            timer_id: started.timer_id,
        },
    )
    .await?;
    ensure!(
        !has.has_timer,
        "the finished count timer is still scheduled"
    );
    Ok(())
}

async fn independent(t: TestCtx) -> TestResult {
    let connector = t.shared(3, "timer_pair").await?;
    let mut events = t.shared_events();
    let fast: StartTimerReply = client::request(
        &connector,
        &StartCountTimerRequest {
            initial_delay_ms: 0,
            period_ms: 15,
            count: 3,
        },
    )
    .await?;
    let slow: StartTimerReply = client::request(
        &connector,
        &StartCountTimerRequest {
            initial_delay_ms: 20,
            period_ms: 35,
            count: 2,
        },
    )
    .await?;
    ensure!(
        fast.timer_id != slow.timer_id,
        "both timers got id {}",
        fast.timer_id
    );
    let ticks: Vec<TimerTickNotify> = events.pushes(5, WAIT).await?;
    let mut per_timer: HashMap<u64, Vec<i32>> = HashMap::new();
    for tick in ticks {
        per_timer.entry(tick.timer_id).or_default().push(tick.tick);
    }
    ensure_eq!(
        per_timer.get(&fast.timer_id),
        Some(&vec![1, 2, 3]),
        "fast timer ticks"
    );
    ensure_eq!(
        per_timer.get(&slow.timer_id),
        Some(&vec![1, 2]),
        "slow timer ticks"
    );
    Ok(())
}
