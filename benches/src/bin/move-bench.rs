//! Moving live stages (issue 27), in one process over a real mesh link on loopback:
//!
//! * `pause`: one stage of `--players` resumable clients issuing requests back to back, with
//!   `--state-kib` of state, moved `--moves` times (each time a new Play server joins and the
//!   one holding the stage drains).
//! * `drain`: `--stages` such stages on play-1 drained to play-2 (players back to back, or
//!   `--rate` requests a second each): the time until the last stage runs on play-2, until
//!   `drain()` returns (play-1 stopped), and until every client has resumed on play-2; and,
//!   with `--bystander-ccu`, the throughput and latency of a third server's clients (another
//!   service, so it takes no stage) before, during and after the drain.
//!
//! Per client and move, both cases report the time from the stage's snapshot, and from the
//! drain's start, to the client's session resumed on the new server (`SessionEvent::Moved`);
//! for clients requesting back to back also the reply gap (its last reply from the old server
//! to its first from the new one) and the snapshot to that first reply. Prints one JSON line
//! per case.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use playhouse::MemoryDirectory;
use playhouse_benches::bystander;
use playhouse_benches::move_bench::{
    Link, Player, Recorder, play_server, players, summary, until_moved, until_sees,
};
use playhouse_benches::process::{cpu_seconds, raise_fd_limit};
use serde_json::json;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Case {
    Pause,
    Drain,
    Both,
}

#[derive(Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value = "both")]
    case: Case,
    /// The mesh link between the servers.
    #[arg(long, value_enum, default_value = "zmq")]
    link: Link,
    /// Players per stage.
    #[arg(long, default_value_t = 10)]
    players: usize,
    /// Each stage's state, KiB.
    #[arg(long, default_value_t = 64)]
    state_kib: usize,
    /// `pause`: how many times the stage moves.
    #[arg(long, default_value_t = 30)]
    moves: usize,
    /// `drain`: stages drained at once.
    #[arg(long, default_value_t = 100)]
    stages: usize,
    /// `drain`: requests a second per player; 0: back to back.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// `drain`: clients of the bystander server (0: none).
    #[arg(long, default_value_t = 0)]
    bystander_ccu: usize,
    /// `drain`: requests a second per bystander client; 0: back to back.
    #[arg(long, default_value_t = 100.0)]
    bystander_rate: f64,
    /// `drain`: seconds measured before the drain and after it.
    #[arg(long, default_value_t = 3.0)]
    window: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU seconds over a wall-clock span, as cores busy (two decimals).
fn cores(cpu: f64, span: Duration) -> f64 {
    (cpu / span.as_secs_f64().max(1e-9) * 100.0).round() / 100.0
}

fn per_sec(rate: f64) -> Option<f64> {
    (rate > 0.0).then_some(rate)
}

/// What each player saw of its stage's move number `moves + 1`, in milliseconds.
#[derive(Default)]
struct Pauses {
    /// Its last reply from the old server to its first from the new one.
    gap: Vec<f64>,
    /// The snapshot to its session resumed on the new server.
    snapshot_to_resumed: Vec<f64>,
    /// The snapshot to its first reply from the new server.
    snapshot_to_reply: Vec<f64>,
    /// The drain's start to its session resumed on the new server.
    drain_to_resumed: Vec<f64>,
}

impl Pauses {
    fn add(&mut self, players: &[Arc<Player>], recorder: &Recorder, moves: u64, drain: Instant) {
        for player in players {
            let saved = recorder.saved(player.stage_id, moves);
            if let Some(resumed) = player.resumed().get(moves as usize) {
                self.drain_to_resumed.push(ms(*resumed - drain));
                if let Some(saved) = saved {
                    self.snapshot_to_resumed
                        .push(ms(resumed.saturating_duration_since(saved)));
                }
            }
            for switch in player.switches() {
                if switch.moves_before != moves {
                    continue;
                }
                self.gap.push(ms(switch.first_new - switch.last_old));
                if let Some(saved) = saved {
                    self.snapshot_to_reply
                        .push(ms(switch.first_new.saturating_duration_since(saved)));
                }
            }
        }
    }

    fn json(mut self, paced: bool) -> serde_json::Value {
        let mut out = json!({
            "snapshot_to_resumed": summary(&mut self.snapshot_to_resumed),
            "drain_start_to_resumed": summary(&mut self.drain_to_resumed),
        });
        // A paced client's next request waits for its tick: its reply gap says little.
        if !paced {
            out["reply_gap"] = summary(&mut self.gap);
            out["snapshot_to_first_reply"] = summary(&mut self.snapshot_to_reply);
        }
        out
    }
}

async fn pause_case(args: &Args) -> serde_json::Value {
    let directory = MemoryDirectory::new();
    let recorder = Arc::new(Recorder::default());
    let state = args.state_kib * 1024;
    let (mut current, port) =
        play_server("play-0", 1, args.link, &directory, &recorder, state).await;
    let stop = Arc::new(AtomicBool::new(false));
    let players = players(port, 1, 1, args.players, &stop, None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let answered_before: u64 = players.iter().map(|p| p.answered()).sum();
    let mut pauses = Pauses::default();
    let mut drains = Vec::new();
    for m in 0..args.moves {
        let id = format!("play-{}", m + 1);
        let (next, _) = play_server(&id, 1, args.link, &directory, &recorder, state).await;
        until_sees(&current, &[&id]).await;
        let drain_started = Instant::now();
        let report = current.drain(Duration::from_secs(10)).await;
        drains.push(ms(drain_started.elapsed()));
        assert_eq!(report.moved, 1, "{report:?}");
        until_moved(&players, m as u64 + 1)
            .await
            .unwrap_or_else(|e| panic!("a player failed: {e}"));
        pauses.add(&players, &recorder, m as u64, drain_started);
        current = next;
    }
    let answered: u64 = players.iter().map(|p| p.answered()).sum::<u64>() - answered_before;
    let requests_per_sec = answered as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for player in &players {
        player.leave().await;
    }
    current.stop().await;
    json!({
        "case": "pause", "link": format!("{:?}", args.link).to_lowercase(),
        "players": args.players, "state_kib": args.state_kib, "moves": args.moves,
        "pause": pauses.json(false),
        "drain_call": summary(&mut drains),
        "requests_per_sec": requests_per_sec.round(),
    })
}

async fn drain_case(args: &Args) -> serde_json::Value {
    let directory = MemoryDirectory::new();
    let recorder = Arc::new(Recorder::default());
    let state = args.state_kib * 1024;
    let (play1, port1) = play_server("play-1", 1, args.link, &directory, &recorder, state).await;
    let (play2, port2) = play_server("play-2", 1, args.link, &directory, &recorder, state).await;
    until_sees(&play1, &["play-2"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let rate = per_sec(args.rate);
    let players = players(port1, 1, args.stages, args.players, &stop, rate).await;

    // The bystander: a Play server of another service (so no stage moves to it).
    let by_rate = per_sec(args.bystander_rate);
    let (bystander, ready) = bystander::spawn(&directory, args.bystander_ccu, by_rate, &stop);
    let _ = tokio::task::spawn_blocking(move || ready.recv()).await;

    let window = Duration::from_secs_f64(args.window);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_at_start = cpu_seconds(std::process::id());
    let answered_at_start: u64 = players.iter().map(|p| p.answered()).sum();
    tokio::time::sleep(window).await;
    let answered_before: u64 = players.iter().map(|p| p.answered()).sum();
    let cpu_at_drain = cpu_seconds(std::process::id());
    let drain_started = Instant::now();
    let report = play1.drain(Duration::from_secs(60)).await;
    let drain_returned = Instant::now();
    let cpu_at_drained = cpu_seconds(std::process::id());
    assert_eq!(report.moved, args.stages, "{report:?}");
    until_moved(&players, 1)
        .await
        .unwrap_or_else(|e| panic!("a player failed: {e}"));
    let clients_moved = Instant::now();
    let answered_during: u64 = players.iter().map(|p| p.answered()).sum::<u64>() - answered_before;
    let last_in = recorder.last_moved_in(0).expect("stages moved in");
    let target = format!("127.0.0.1:{port2}");
    let elsewhere = players
        .iter()
        .filter(|p| p.endpoint().as_deref() != Some(target.as_str()))
        .count();
    assert_eq!(elsewhere, 0, "players not on play-2");
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let samples = tokio::task::spawn_blocking(move || bystander.join().expect("bystander"))
        .await
        .expect("bystander");
    let mut pauses = Pauses::default();
    pauses.add(&players, &recorder, 0, drain_started);
    for player in &players {
        player.leave().await;
    }
    play2.stop().await;
    let before = samples.window(drain_started - window, drain_started);
    let during = samples.window(drain_started, drain_returned);
    let after = samples.window(drain_returned, drain_returned + window);
    json!({
        "case": "drain", "link": format!("{:?}", args.link).to_lowercase(),
        "stages": args.stages, "players": args.players, "state_kib": args.state_kib,
        "player_rate": args.rate, "moved": report.moved,
        "all_stages_on_target_ms": ms(last_in - drain_started).round(),
        "drain_call_ms": ms(drain_returned - drain_started).round(),
        "all_clients_on_target_ms": ms(clients_moved - drain_started).round(),
        "player_requests_per_sec_before": ((answered_before - answered_at_start) as f64
            / window.as_secs_f64())
        .round(),
        "player_requests_during": answered_during,
        "cores_used_before": cores(cpu_at_drain - cpu_at_start, window),
        "cores_used_during": cores(cpu_at_drained - cpu_at_drain, drain_returned - drain_started),
        "pause": pauses.json(rate.is_some()),
        "bystander": {
            "ccu": args.bystander_ccu, "rate": args.bystander_rate,
            "before": before.json(), "during": during.json(), "after": after.json(),
        },
    })
}

#[tokio::main]
async fn main() {
    // Off unless RUST_LOG asks (e.g. `RUST_LOG=playhouse=info` logs one line per move).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    raise_fd_limit();
    let args = Args::parse();
    if matches!(args.case, Case::Pause | Case::Both) {
        println!("{}", pause_case(&args).await);
    }
    if matches!(args.case, Case::Drain | Case::Both) {
        println!("{}", drain_case(&args).await);
    }
}
