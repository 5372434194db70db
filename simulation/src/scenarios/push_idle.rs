//! An idle timeout while the stage keeps pushing to a dead client.
//!
//! A clock stage broadcasts a `Tick` every 100 ms to its two players. One player's network
//! dies silently (a turmoil partition: a black hole, healed only after the checks). The
//! server keeps writing ticks to that session, but nothing comes in: it must close the
//! session on its idle timeout (inbound silence, outbound writes do not count), and the stage
//! must see the disconnect. The other player sees `Presence <dead> 0` within the idle timeout
//! of the cut, keeps receiving consecutive ticks throughout (no gap, no duplicate), the server
//! is back to one session, and a census of the Play host is back to what it was with one
//! player.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use playhouse::{ApiServer, Packet};

use crate::census::{Census, baseline, expect_back};
use crate::client::{SimClient, expect_idle_close, retire};
use crate::clock_room::{CLOCK, TICK};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, Workload, sleep, wait_until};
use crate::cluster::timing::{Network, Timing};
use crate::trace::now;

const PLAY: &str = "play-1";
const API: &str = "api-1";
const LIVE: &str = "client-1";
const DEAD: &str = "client-2";
const STAGE: i64 = 1;
/// Marks the clock stage created.
const READY: &str = "clock stage created";
/// Marks the one-player census taken (the dead player joins after it).
const BASELINE: &str = "baseline";
/// Marks the dead player's link cut.
const CUT: &str = "cut";
/// Most time between two ticks arriving: the period plus the network's slowest delivery.
const TICK_GAP: Duration = Duration::from_millis(100 + 10 + 15);

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let mut cluster = Cluster::new(seed, Network::default(), Timing::default());
    cluster.play(PLAY);
    let workload: Workload = Rc::new(|api, env| Box::pin(create(api, env)));
    cluster.api(API, None, Some(workload));
    let env = cluster.env.clone();
    let cut_at = Rc::new(Cell::new(Duration::ZERO));
    cluster.client(LIVE, live(env.clone(), cut_at.clone()));
    cluster.client(DEAD, dead(env.clone(), cut_at));
    cluster.client("director", async move {
        env.wait_finished(
            &[API.to_owned(), LIVE.to_owned(), DEAD.to_owned()],
            Duration::from_secs(60),
        )
        .await;
        env.stop_servers().await;
    });
    cluster.run()
}

async fn create(api: ApiServer, env: Env) {
    if !env.wait_mesh(&[PLAY, API], Duration::from_secs(5)).await {
        return env.finish(READY);
    }
    let created = api
        .sender()
        .create_stage(PLAY, CLOCK, STAGE, Packet::new("Create", "push"))
        .await;
    env.trace.check(API, created.is_ok(), || {
        format!("clock stage not created: {:?}", created.err())
    });
    env.finish(READY);
}

async fn dead(env: Env, cut_at: Rc<Cell<Duration>>) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    wait_until(Duration::from_secs(20), || env.is_finished(BASELINE)).await;
    let mut client = SimClient::new(&env, DEAD, "bob", PLAY, STAGE).of_type(CLOCK);
    if !client
        .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
        .await
    {
        trace.violation(DEAD, "could not log in");
        env.finish(CUT);
        return env.finish(DEAD);
    }
    sleep(rng.millis(300, 1500)).await;
    turmoil::partition(DEAD, PLAY);
    cut_at.set(now());
    trace.record(DEAD, "partition client-2 -/- play-1 (black hole)");
    env.finish(CUT);
    // Dead until the server has surely given up on us and the checks are done.
    sleep(env.timing.idle_timeout + Duration::from_millis(1500)).await;
    turmoil::repair(DEAD, PLAY);
    trace.record(DEAD, "repair client-2 <-> play-1");
    retire(&env, client).await;
}

async fn live(env: Env, cut_at: Rc<Cell<Duration>>) {
    let trace = env.trace.clone();
    if !wait_until(Duration::from_secs(10), || env.is_finished(READY)).await {
        trace.violation(LIVE, "the clock stage was never created");
        env.finish(BASELINE);
        return env.finish(LIVE);
    }
    let mut client = SimClient::new(&env, LIVE, "alice", PLAY, STAGE).of_type(CLOCK);
    if !client
        .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
        .await
    {
        trace.violation(LIVE, "could not log in");
        env.finish(BASELINE);
        return env.finish(LIVE);
    }
    // One player, settled: the census the server must come back to.
    sleep(Duration::from_millis(300)).await;
    let base = baseline(&env, &[PLAY]);
    env.finish(BASELINE);
    if !wait_until(Duration::from_secs(10), || env.is_finished(CUT)).await {
        trace.violation(LIVE, "the other player was never cut off");
        return retire(&env, client).await;
    }
    // The server's ticks to bob since the cut must not keep the session open.
    expect_idle_close(&env, LIVE, &client, PLAY, "bob", cut_at.get()).await;
    expect_back(&env, &[PLAY], &base, Duration::from_secs(1)).await;
    if let Some(census) = Census::take(&env, PLAY) {
        trace.record(LIVE, format_args!("census after the idle close: {census}"));
    }
    sleep(Duration::from_millis(500)).await;
    check_ticks(&env, &client);
    retire(&env, client).await;
}

/// Ticks arrive consecutive (none lost or doubled) and never more than [`TICK_GAP`] apart.
fn check_ticks(env: &Env, client: &SimClient) {
    let trace = &env.trace;
    let ticks = client.pushes("Tick");
    trace.record(LIVE, format_args!("{} ticks seen", ticks.len()));
    // Alice was there from before the cut to past the idle timeout.
    let expected = (env.timing.idle_timeout.as_millis() / TICK.as_millis()) as usize;
    trace.check(LIVE, ticks.len() >= expected, || {
        format!("only {} ticks seen", ticks.len())
    });
    let mut last: Option<(Duration, u64)> = None;
    for (at, payload) in &ticks {
        let n: u64 = payload
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if let Some((last_at, last_n)) = last {
            trace.check(LIVE, n == last_n + 1, || {
                format!("tick {n} after tick {last_n}")
            });
            let gap = *at - last_at;
            trace.check(LIVE, gap <= TICK_GAP, || {
                format!("{gap:?} between tick {last_n} and tick {n} (at {at:?})")
            });
        }
        last = Some((*at, n));
    }
}
