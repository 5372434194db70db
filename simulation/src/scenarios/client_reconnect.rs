//! Client link partition → heartbeat timeout → reconnect → re-authenticate.
//!
//! A player's link to its Play server is partitioned. Its connector notices the silence
//! after the heartbeat timeout and reports the disconnect; its reconnects are refused until
//! the partition heals; then it authenticates again as the same account and is re-attached
//! to its actor: the stage reports the connection lost then back (an `Attached` push with
//! the actor's history ending `01`, still one join), an observer in the stage sees the
//! player leave then return, and every operation acknowledged before the partition is still
//! there exactly once. Depending on the seed the server notices the dead connection first
//! (idle timeout) or the new login replaces it; both must look the same to the stage.
//! Once back, the server holds what it held before the partition: two sessions and no more
//! tasks (a census taken mid-run, not only at shutdown).

use std::time::Duration;

use crate::census;
use crate::client::{SimClient, presence_of, retire};
use crate::cluster::Cluster;
use crate::cluster::env::{Env, sleep, wait_until};
use crate::cluster::timing::{Network, Timing};
use crate::trace::now;

const PLAY: &str = "play-1";
const PLAYER: &str = "client-1";
const OBSERVER: &str = "client-2";

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let mut cluster = Cluster::new(seed, Network::default(), Timing::default());
    cluster.play(PLAY);
    let env = cluster.env.clone();
    cluster.client(PLAYER, player(env.clone()));
    cluster.client(OBSERVER, observer(env.clone()));
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

async fn player(env: Env) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    let timing = env.timing;
    let mut client = SimClient::new(&env, PLAYER, "alice", PLAY, 1);
    if !client
        .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
        .await
    {
        trace.violation(PLAYER, "could not log in");
        return env.finish(PLAYER);
    }
    let both_in = || env.play(PLAY).is_some_and(|play| play.session_count() == 2);
    wait_until(Duration::from_secs(5), both_in).await;
    let before = census::baseline(&env, &[PLAY]);
    for _ in 0..rng.range(1..6) {
        if rng.chance(30) {
            client.note();
        } else {
            let op = client.op().await;
            trace.check(PLAYER, op.is_ok(), || {
                format!("op before the partition failed: {op:?}")
            });
        }
        sleep(rng.millis(0, 300)).await;
    }

    crate::network::cut(PLAYER, PLAY);
    let cut = now();
    trace.record(PLAYER, "partition client-1 <-> play-1");
    // Keep playing into the void: these may or may not have been applied.
    client.note();
    let connector = client.connector().clone();
    let noticed = wait_until(timing.heartbeat_timeout * 2, || !connector.is_connected()).await;
    let silent = now() - cut;
    let earliest = timing
        .heartbeat_timeout
        .saturating_sub(timing.heartbeat_interval);
    trace.check(
        PLAYER,
        noticed
            && silent >= earliest
            && silent <= timing.heartbeat_timeout + Duration::from_millis(20),
        || {
            format!(
                "partition noticed after {silent:?} (heartbeat timeout {:?})",
                timing.heartbeat_timeout
            )
        },
    );

    let heal_at = cut + rng.millis(1000, 4500);
    let mut healed = false;
    let deadline = heal_at + Duration::from_secs(5);
    let mut logged_in = false;
    while now() < deadline {
        if !healed && now() >= heal_at {
            crate::network::heal(PLAYER, PLAY);
            healed = true;
            trace.record(PLAYER, "repair client-1 <-> play-1");
        }
        if client.login().await {
            logged_in = true;
            break;
        }
        trace.check(
            PLAYER,
            !healed || now() < heal_at + Duration::from_secs(2),
            || "login still failing 2 s after the partition healed".into(),
        );
        sleep(Duration::from_millis(200)).await;
    }
    trace.check(PLAYER, healed && logged_in, || {
        "never logged in again".into()
    });
    if logged_in {
        let attached = client.pushes("Attached");
        let last = attached.last().map(|(_, p)| p.clone()).unwrap_or_default();
        let words: Vec<&str> = last.split(' ').collect();
        trace.check(
            PLAYER,
            words.len() == 3 && words[0] == "1" && words[1].ends_with("01"),
            || format!("re-login was not a re-attach to the same actor: Attached {last:?}"),
        );
        for _ in 0..rng.range(1..4) {
            let op = client.op().await;
            trace.check(PLAYER, op.is_ok(), || {
                format!("op after re-attach failed: {op:?}")
            });
        }
        let limit = timing.idle_timeout + Duration::from_secs(2);
        census::expect_back(&env, &[PLAY], &before, limit).await;
        client.verify_ops().await;
    }
    retire(&env, client).await;
}

async fn observer(env: Env) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    let mut client = SimClient::new(&env, OBSERVER, "bob", PLAY, 1);
    if !client
        .login_retrying(Duration::from_millis(100), Duration::from_secs(5))
        .await
    {
        trace.violation(OBSERVER, "could not log in");
        return env.finish(OBSERVER);
    }
    while !env.is_finished(PLAYER) {
        let op = client.op().await;
        trace.check(OBSERVER, op.is_ok(), || {
            format!("observer op failed: {op:?}")
        });
        sleep(rng.millis(100, 400)).await;
    }
    // The player retired: its last disconnect may still be on its way.
    sleep(Duration::from_millis(100)).await;
    let seen = presence_of(&client, "alice");
    trace.check(OBSERVER, seen.len() >= 2 && seen[..2] == ["0", "1"], || {
        format!("observer saw alice's presence as {seen:?}, not lost then back")
    });
    client.verify_ops().await;
    retire(&env, client).await;
}
