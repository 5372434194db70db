//! GameLoop: the fixed-timestep loop ticks at its rate with `delta == timestep`, stops on
//! request or after `max_ticks`, and catches up at most 5 steps after a stall.

use std::time::Duration;

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    GameLoopStoppedNotify, GameLoopTickNotify, StallStageReply, StallStageRequest,
    StartGameLoopReply, StartGameLoopRequest, StopGameLoopReply, StopGameLoopRequest,
};
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

/// Most steps the framework runs in one wake-up to catch up (SPEC §3: cap 5).
const CATCH_UP_CAP: usize = 5;

/// The GameLoop category (stage ids 11000..).
pub(super) fn category() -> Category {
    Category {
        name: "GameLoop",
        base: 11_000,
        tests: vec![
            TestCase::new("TickRate_MatchesTimestep", |t| Box::pin(tick_rate(t))),
            TestCase::new("Delta_EqualsTimestep", |t| Box::pin(delta(t))),
            TestCase::new("Stop_StopsTicks", |t| Box::pin(stop(t))),
            TestCase::new("MaxTicks_StopsItself", |t| Box::pin(max_ticks(t))),
            TestCase::new("CatchUp_CappedAfterStall", |t| Box::pin(catch_up(t))),
        ],
    }
}

fn start(timestep_ms: i32, max_ticks: i32) -> StartGameLoopRequest {
    StartGameLoopRequest {
        timestep_ms,
        max_ticks,
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

async fn tick_rate(t: TestCtx) -> TestResult {
    let connector = t.shared(1, "loop_rate").await?;
    let mut events = t.shared_events();
    let started: StartGameLoopReply = client::request(&connector, &start(20, 10)).await?;
    ensure!(started.started, "StartGameLoopReply.started is false");
    let ticks: Vec<GameLoopTickNotify> = events.pushes(10, WAIT).await?;
    let last = ticks.last().ok_or("no ticks")?;
    // Step n cannot run before n timesteps of real time have passed, and should not lag far.
    let elapsed = Duration::from_micros(u64::try_from(last.elapsed_us).unwrap_or(0));
    ensure!(
        elapsed >= Duration::from_millis(200),
        "10 steps of 20 ms ran in {elapsed:?}"
    );
    ensure!(
        elapsed <= Duration::from_millis(600),
        "10 steps of 20 ms took {elapsed:?}"
    );
    Ok(())
}

async fn delta(t: TestCtx) -> TestResult {
    let connector = t.shared(2, "loop_delta").await?;
    let mut events = t.shared_events();
    let _: StartGameLoopReply = client::request(&connector, &start(15, 8)).await?;
    let ticks: Vec<GameLoopTickNotify> = events.pushes(8, WAIT).await?;
    let step = micros(Duration::from_millis(15));
    for (i, tick) in ticks.iter().enumerate() {
        let n = u64::try_from(i + 1).unwrap_or(0);
        ensure_eq!(tick.tick, n, "step number");
        ensure_eq!(tick.delta_us, step, "delta of step {n}");
        ensure_eq!(
            tick.total_us,
            step * i64::try_from(n).unwrap_or(0),
            "total of step {n}"
        );
    }
    Ok(())
}

async fn stop(t: TestCtx) -> TestResult {
    let connector = t.shared(3, "loop_stop").await?;
    let mut events = t.shared_events();
    let _: StartGameLoopReply = client::request(&connector, &start(10, 0)).await?;
    let _: Vec<GameLoopTickNotify> = events.pushes(3, WAIT).await?;
    let stopped: StopGameLoopReply = client::request(&connector, &StopGameLoopRequest {}).await?;
    ensure!(stopped.was_running, "the loop was not running");
    ensure!(
        stopped.ticks >= 3,
        "only {} steps before stop",
        stopped.ticks
    );
    // Steps already on their way may still arrive; none may be numbered past the stop.
    let late: Vec<GameLoopTickNotify> = events.collect_pushes(Duration::from_millis(150)).await?;
    let after: Vec<u64> = late
        .iter()
        .map(|tick| tick.tick)
        .filter(|&n| n > stopped.ticks)
        .collect();
    ensure!(after.is_empty(), "steps after stop: {after:?}");
    let again: StopGameLoopReply = client::request(&connector, &StopGameLoopRequest {}).await?;
    ensure!(!again.was_running, "the loop still ran after stop");
    Ok(())
}

async fn max_ticks(t: TestCtx) -> TestResult {
    let connector = t.shared(4, "loop_max").await?;
    let mut events = t.shared_events();
    let _: StartGameLoopReply = client::request(&connector, &start(10, 5)).await?;
    let ticks: Vec<GameLoopTickNotify> = events.pushes(5, WAIT).await?;
    let numbers: Vec<u64> = ticks.iter().map(|t| t.tick).collect();
    ensure_eq!(numbers, vec![1, 2, 3, 4, 5], "step numbers");
    let stopped: GameLoopStoppedNotify = events.push(WAIT).await?;
    ensure_eq!(stopped.ticks, 5, "steps when the loop stopped itself");
    let extra: Vec<GameLoopTickNotify> = events.collect_pushes(Duration::from_millis(100)).await?;
    ensure!(extra.is_empty(), "{} steps after max_ticks", extra.len());
    Ok(())
}

async fn catch_up(t: TestCtx) -> TestResult {
    let connector = t.shared(5, "loop_catch_up").await?;
    let mut events = t.shared_events();
    let _: StartGameLoopReply = client::request(&connector, &start(20, 0)).await?;
    let _: Vec<GameLoopTickNotify> = events.pushes(2, WAIT).await?;
    // Hold the stage for 15 timesteps: the loop owes 15 steps when it wakes up.
    let stall: StallStageReply =
        client::request(&connector, &StallStageRequest { stall_ms: 300 }).await?;
    let mut after = Vec::new();
    while after.len() < CATCH_UP_CAP + 1 {
        let tick: GameLoopTickNotify = events.push(WAIT).await?;
        if tick.tick > stall.ticks {
            after.push(tick);
        }
    }
    let _: StopGameLoopReply = client::request(&connector, &StopGameLoopRequest {}).await?;
    // The first wake-up after the stall runs exactly the cap, back to back ...
    let burst = &after[..CATCH_UP_CAP];
    let spread = burst[CATCH_UP_CAP - 1].elapsed_us - burst[0].elapsed_us;
    ensure!(
        spread < 5_000,
        "the {CATCH_UP_CAP} catch-up steps spread over {spread} us"
    );
    // ... and drops the rest of the backlog: the next step waits a full timestep.
    let gap = after[CATCH_UP_CAP].elapsed_us - burst[CATCH_UP_CAP - 1].elapsed_us;
    ensure!(
        gap >= 10_000,
        "a {}th catch-up step ran {gap} us after the burst",
        CATCH_UP_CAP + 1
    );
    // Simulated time now lags real time by roughly the dropped backlog (10 steps).
    let last = &after[CATCH_UP_CAP];
    let lag = last.elapsed_us - last.total_us;
    ensure!(
        lag >= 100_000,
        "simulated time lags real time by only {lag} us"
    );
    Ok(())
}
