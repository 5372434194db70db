//! Server idle timeout on a half-open client.
//!
//! A player's link is partitioned for good: its connector gives up, but its FIN is lost, so
//! the Play server still holds a half-open connection. The server must close it on its own
//! idle timeout (measured from the last frame it received: heartbeats stop at the cut), and
//! the stage must report the player gone; an observer sees that at the right simulated
//! time, and the server's session count drops. When the link heals, the player logs in
//! again and is re-attached to its actor.

use std::time::Duration;

use crate::client::{SimClient, expect_idle_close, presence_of, retire};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, sleep, wait_until};
use crate::cluster::timing::{Network, Timing};
use crate::trace::now;

const PLAY: &str = "play-1";
const PLAYER: &str = "client-1";
const OBSERVER: &str = "client-2";
const CUT: &str = "cut";

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let mut cluster = Cluster::new(seed, Network::default(), Timing::default());
    cluster.play(PLAY);
    let env = cluster.env.clone();
    let cut_at = std::rc::Rc::new(std::cell::Cell::new(Duration::ZERO));
    cluster.client(PLAYER, player(env.clone(), cut_at.clone()));
    cluster.client(OBSERVER, observer(env.clone(), cut_at));
    cluster.client("director", async move {
        env.wait_finished(
            &[PLAYER.to_owned(), OBSERVER.to_owned()],
            Duration::from_secs(60),
        )
        .await;
        env.stop_servers().await;
    });
    cluster.run()
}

async fn player(env: Env, cut_at: std::rc::Rc<std::cell::Cell<Duration>>) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    let mut client = SimClient::new(&env, PLAYER, "carol", PLAY, 1);
    if !client
        .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
        .await
    {
        trace.violation(PLAYER, "could not log in");
        env.finish(CUT);
        return env.finish(PLAYER);
    }
    for _ in 0..rng.range(1..4) {
        let op = client.op().await;
        trace.check(PLAYER, op.is_ok(), || format!("op failed: {op:?}"));
    }
    sleep(rng.millis(0, 1000)).await;
    crate::network::cut(PLAYER, PLAY);
    cut_at.set(now());
    env.finish(CUT);
    trace.record(PLAYER, "partition client-1 <-> play-1");

    // Stay cut off until the server has surely given up on us.
    let idle = env.timing.idle_timeout;
    sleep(idle + rng.millis(500, 1500)).await;
    crate::network::heal(PLAYER, PLAY);
    trace.record(PLAYER, "repair client-1 <-> play-1");
    if client
        .login_retrying(Duration::from_millis(100), Duration::from_secs(3))
        .await
    {
        let attached = client.pushes("Attached");
        let last = attached.last().map(|(_, p)| p.clone()).unwrap_or_default();
        trace.check(PLAYER, last.split(' ').nth(1) == Some("01"), || {
            format!("re-login after the idle timeout was not a re-attach: Attached {last:?}")
        });
        client.verify_ops().await;
    } else {
        trace.violation(PLAYER, "could not log in after the partition healed");
    }
    retire(&env, client).await;
}

async fn observer(env: Env, cut_at: std::rc::Rc<std::cell::Cell<Duration>>) {
    let trace = env.trace.clone();
    let mut client = SimClient::new(&env, OBSERVER, "dave", PLAY, 1);
    if !client
        .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
        .await
    {
        trace.violation(OBSERVER, "could not log in");
        return env.finish(OBSERVER);
    }
    let limit = Duration::from_secs(10);
    if !wait_until(limit, || env.is_finished(CUT)).await {
        return retire(&env, client).await;
    }
    expect_idle_close(&env, OBSERVER, &client, PLAY, "carol", cut_at.get()).await;
    while !env.is_finished(PLAYER) {
        sleep(Duration::from_millis(50)).await;
    }
    sleep(Duration::from_millis(100)).await;
    let seen = presence_of(&client, "carol");
    trace.check(OBSERVER, seen.len() >= 2 && seen[..2] == ["0", "1"], || {
        format!("observer saw carol's presence as {seen:?}, not lost then back")
    });
    client.verify_ops().await;
    retire(&env, client).await;
}
