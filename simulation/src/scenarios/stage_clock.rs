//! Stage timers, the fixed-step game loop and async blocks under client cuts and latency
//! jitter.
//!
//! A clock stage starts, once both players have joined, a 50 ms game loop, a count timer (5
//! runs) and a series of async blocks, next to the 100 ms repeat timer it has run since its
//! creation; it pushes what each did with its own clock. Each player's link is cut (held, then
//! healed) at random meanwhile, and every segment takes 1-40 ms. From what each player sees:
//! repeat-timer runs are consecutive and each on its period; game-loop steps are consecutive,
//! `total == tick × timestep`, and the stage's elapsed time matches within one step (no
//! drift, no double or skipped step); the count timer ran exactly its count, on time; every
//! async block posted its result, in the order started; the never-ending block never posted.
//! Then a player closes the stage: the server ends with no stage, and a census of the Play
//! host shows it back to what it was before the stage existed (no timer, loop or async-block
//! task left).

use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, Packet};

use crate::census::{Census, baseline, expect_back};
use crate::client::{SimClient, retire};
use crate::clock_room::{ASYNC_BLOCKS, CLOCK, COUNT, COUNT_PERIOD, STEP, STEP_EVERY, TICK};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, sleep, wait_until};
use crate::cluster::timing::{Network, Timing};
use crate::trace::now;

const PLAY: &str = "play-1";
const API: &str = "api-1";
const PLAYERS: [(&str, &str); 2] = [("client-1", "alice"), ("client-2", "bob")];
const STAGE: i64 = 1;
/// Marks the clock stage created.
const READY: &str = "clock stage created";
/// How long the players stay once the clock started: past the last count-timer run.
const RUN: Duration = Duration::from_millis(2500);
/// How late the stage's loop may run a timer or step it (simulated time moves in 1 ms ticks).
const LATE: u128 = 5;

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let network = Network {
        max_latency: Duration::from_millis(40),
        ..Network::default()
    };
    let mut cluster = Cluster::new(seed, network, Timing::default());
    cluster.play(PLAY);
    let workload: Workload = Rc::new(|api, env| Box::pin(host(api, env)));
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    for (name, account) in PLAYERS {
        cluster.client(name, player(env.clone(), name, account));
    }
    cluster.client("director", async move {
        let mut names: Vec<String> = PLAYERS.iter().map(|(n, _)| (*n).to_owned()).collect();
        names.push(API.to_owned());
        env.wait_finished(&names, Duration::from_secs(60)).await;
        env.stop_servers().await;
    });
    cluster.run()
}

/// Takes the census of the Play host before the stage exists, creates it, and once the
/// players are done checks the stage and everything it ran are gone.
async fn host(api: ApiServer, env: Env) {
    let trace = &env.trace;
    if !env.wait_mesh(&[PLAY, API], Duration::from_secs(5)).await {
        env.finish(READY);
        return;
    }
    sleep(Duration::from_millis(300)).await;
    let base = baseline(&env, &[PLAY]);
    let created = api
        .sender()
        .create_stage(
            PLAY,
            CLOCK,
            STAGE,
            Packet::new("Create", format!("clock {}", PLAYERS.len())),
        )
        .await;
    trace.check(API, created.is_ok(), || {
        format!("clock stage not created: {:?}", created.err())
    });
    env.finish(READY);
    let names: Vec<String> = PLAYERS.iter().map(|(n, _)| (*n).to_owned()).collect();
    env.wait_finished(&names, Duration::from_secs(30)).await;
    let stages = env.play(PLAY).map_or(usize::MAX, |p| p.stage_count());
    trace.check(API, stages == 0, || {
        format!("{stages} stages left after the clock stage closed")
    });
    expect_back(&env, &[PLAY], &base, Duration::from_secs(1)).await;
    if let Some(census) = Census::take(&env, PLAY) {
        trace.record(API, format_args!("census after the stage closed: {census}"));
    }
    env.finish(API);
}

async fn player(env: Env, name: &'static str, account: &'static str) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    if !wait_until(Duration::from_secs(10), || env.is_finished(READY)).await {
        trace.violation(name, "the clock stage was never created");
        return env.finish(name);
    }
    let mut client = SimClient::new(&env, name, account, PLAY, STAGE).of_type(CLOCK);
    if !client
        .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
        .await
    {
        trace.violation(name, "could not log in");
        return env.finish(name);
    }
    // (The second player's join starts the clock: it may miss `Started`, never the steps.)
    let started = || !client.pushes("Started").is_empty() || !client.pushes("Step").is_empty();
    if !wait_until(Duration::from_secs(5), started).await {
        trace.violation(name, "the clock never started");
        return retire(&env, client).await;
    }
    let end = now() + RUN;
    // Cut off a few times, each short enough for the connection to live through it (the
    // connector's heartbeat timeout is 1.5 s): the pushes wait, none is lost.
    for _ in 0..rng.range(1..4) {
        sleep(rng.millis(50, 500)).await;
        let hold = rng.millis(100, 700);
        crate::network::cut(name, PLAY);
        trace.record(name, format_args!("cut for {}ms", hold.as_millis()));
        sleep(hold).await;
        crate::network::heal(name, PLAY);
        trace.record(name, "healed");
    }
    // Whatever the last cut held has arrived (the slowest delivery is 40 ms).
    sleep(end.saturating_sub(now()).max(Duration::from_millis(200))).await;
    check(&env, name, &client);
    // The first player closes the stage; the other one stays until it is gone.
    if name == PLAYERS[0].0 {
        let closed = client.connector().request(Packet::empty("Close")).await;
        trace.check(name, closed.is_ok(), || {
            format!("closing the stage failed: {:?}", closed.err())
        });
    }
    let gone = wait_until(Duration::from_secs(2), || {
        env.play(PLAY).is_some_and(|p| p.stage_count() == 0)
    })
    .await;
    trace.check(name, gone, || "the clock stage never closed".to_owned());
    // Nothing the stage ran survives it (what it pushed before it closed has arrived
    // after the slowest delivery).
    sleep(Duration::from_millis(50)).await;
    let ticks = client.pushes("Tick").len();
    sleep(TICK * 3).await;
    let after = client.pushes("Tick").len();
    trace.check(name, after == ticks, || {
        format!("{} ticks after the stage closed", after - ticks)
    });
    retire(&env, client).await;
}

/// Parses the numbers of a push.
fn numbers(payload: &str) -> Vec<u128> {
    payload.split(' ').filter_map(|w| w.parse().ok()).collect()
}

/// Everything the player saw of the clock.
fn check(env: &Env, name: &str, client: &SimClient) {
    let trace = &env.trace;
    trace.check(name, client.pushes("Overslept").is_empty(), || {
        "an async block that never ends posted a result".to_owned()
    });

    // Repeat timer: "Tick <n> <ms since creation>", consecutive, each on its period.
    let ticks: Vec<Vec<u128>> = client
        .pushes("Tick")
        .iter()
        .map(|(_, p)| numbers(p))
        .collect();
    let period = TICK.as_millis();
    trace.record(name, format_args!("{} ticks", ticks.len()));
    trace.check(
        name,
        ticks.len() as u128 >= RUN.as_millis() / period - 1,
        || format!("only {} ticks in {RUN:?}", ticks.len()),
    );
    let mut last: Option<u128> = None;
    for tick in &ticks {
        let (n, ms) = (tick[0], tick[1]);
        trace.check(name, last.is_none_or(|l| n == l + 1), || {
            format!("tick {n} after tick {last:?}")
        });
        trace.check(name, ms >= n * period && ms <= n * period + LATE, || {
            format!("tick {n} ran at {ms} ms, not {} ms", n * period)
        });
        last = Some(n);
    }

    // Game loop: "Step <tick> <total ms> <ms since the start>" every STEP_EVERY steps.
    let steps: Vec<Vec<u128>> = client
        .pushes("Step")
        .iter()
        .map(|(_, p)| numbers(p))
        .collect();
    let step = STEP.as_millis();
    let every = u128::from(STEP_EVERY);
    let expected = RUN.as_millis() / (step * every) - 1;
    trace.record(name, format_args!("{} steps pushed", steps.len()));
    trace.check(name, steps.len() as u128 >= expected, || {
        format!(
            "{} game-loop pushes in {RUN:?}, expected {expected}",
            steps.len()
        )
    });
    for (i, s) in steps.iter().enumerate() {
        let (tick, total, ms) = (s[0], s[1], s[2]);
        let want = (i as u128 + 1) * every;
        trace.check(name, tick == want, || {
            format!(
                "game-loop push {} was step {tick}, expected step {want}",
                i + 1
            )
        });
        trace.check(name, total == tick * step, || {
            format!("step {tick} reported total {total} ms, not {}", tick * step)
        });
        trace.check(name, ms >= tick * step && ms <= tick * step + LATE, || {
            format!(
                "step {tick} ran {ms} ms after the start, not {} ms (drift or a doubled or \
                 skipped step)",
                tick * step
            )
        });
    }

    // Count timer: exactly COUNT runs, each on its period.
    let counts: Vec<Vec<u128>> = client
        .pushes("Count")
        .iter()
        .map(|(_, p)| numbers(p))
        .collect();
    let ks: Vec<u128> = counts.iter().map(|c| c[0]).collect();
    let want: Vec<u128> = (1..=u128::from(COUNT)).collect();
    trace.check(name, ks == want, || {
        format!("count timer runs {ks:?}, expected {want:?}")
    });
    let period = COUNT_PERIOD.as_millis();
    for c in &counts {
        let (k, ms) = (c[0], c[1]);
        trace.check(name, ms >= k * period && ms <= k * period + LATE, || {
            format!("count timer run {k} at {ms} ms, not {} ms", k * period)
        });
    }

    // Async blocks: every result posted, in the order started.
    let posted: Vec<u128> = client
        .pushes("Posted")
        .iter()
        .flat_map(|(_, p)| numbers(p))
        .collect();
    let want: Vec<u128> = (1..=u128::from(ASYNC_BLOCKS)).collect();
    trace.check(name, posted == want, || {
        format!("async blocks posted {posted:?}, expected {want:?}")
    });
}
