//! Players per core for the arena sample game (`examples/src/arena`), like
//! `@colyseus/loadtest`: `--bots` bots in rooms of `--per-room`, each steering at 20 Hz
//! towards coins, against the arena running in a child process (so its CPU and memory are its
//! own). Prints one JSON line: the server's CPU (cores busy), players per core at that load,
//! the push latency at the client (p50/p99/max, from the server's send to the bot's
//! callback), snapshots received a second, and the server's memory per player.
//!
//! ```sh
//! cargo run --release -p playhouse-benches --bin arena-load -- --bots 400 --per-room 8
//! ```

use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Parser;
use playhouse_benches::move_bench::quantile;
use playhouse_benches::process::{cpu_seconds, raise_fd_limit, rss_bytes};
use playhouse_examples::arena::app::{ArenaConfig, start};
use playhouse_examples::arena::bot::{join_room, play_measured};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
struct Args {
    /// Run the arena (the child process) and print its addresses.
    #[arg(long)]
    serve: bool,
    /// Bots in all.
    #[arg(long, default_value_t = 200)]
    bots: usize,
    /// Bots per room.
    #[arg(long, default_value_t = 8)]
    per_room: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of play before measuring.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
}

/// The game loop's tick duration from the server's `playhouse_stage_tick_seconds` histogram
/// (all rooms, since the start): the bucket bounds under which 50% and 99% of the ticks fell,
/// in ms, and the tick count.
async fn tick_quantiles(admin: std::net::SocketAddr) -> Option<(f64, f64, u64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin).await.ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    // `..._bucket{...,le="0.001"} 123`: cumulative counts by upper bound.
    let mut buckets: Vec<(f64, u64)> = text
        .lines()
        .filter(|l| l.starts_with("playhouse_stage_tick_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    let at = |q: f64| {
        let rank = (total as f64 * q).ceil() as u64;
        buckets
            .iter()
            .find(|(_, count)| *count >= rank)
            .map_or(f64::INFINITY, |(bound, _)| bound * 1000.0)
    };
    Some((at(0.5), at(0.99), total))
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let config = ArenaConfig {
        http: "127.0.0.1:0".into(),
        tcp: "127.0.0.1:0".into(),
        ..ArenaConfig::default()
    };
    let arena = start(config).await?;
    let admin = arena.play.listen_metrics("127.0.0.1:0").await?;
    let line = json!({
        "http": arena.http.to_string(),
        "admin": admin.to_string(),
        "pid": std::process::id(),
    });
    println!("{line}");
    // Until the parent closes our stdin (or dies).
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut sink = String::new();
    while stdin
        .read_line(&mut sink)
        .await
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
    arena.stop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    raise_fd_limit();
    if args.serve {
        return serve().await;
    }
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).await?;
    let ready: serde_json::Value = serde_json::from_str(&first)?;
    let http = ready["http"].as_str().ok_or("no http")?.parse()?;
    let pid = u32::try_from(ready["pid"].as_u64().ok_or("no pid")?)?;
    let admin: std::net::SocketAddr = ready["admin"].as_str().ok_or("no admin")?.parse()?;
    let base_rss = rss_bytes(pid).unwrap_or(0);

    let rooms = args.bots.div_ceil(args.per_room.max(1));
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut bots = tokio::task::JoinSet::new();
    for k in 0..args.bots {
        let room = i64::try_from(k / args.per_room.max(1) + 1)?;
        let joined = join_room(http, room).await?;
        let (latencies, mut stopped) = (Arc::clone(&latencies), stopped.clone());
        bots.spawn(async move {
            let until = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            play_measured(&joined, &format!("bot-{k}"), until, Some(latencies)).await
        });
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    latencies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    let cpu_before = cpu_seconds(pid);
    let started = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let cpu = cpu_seconds(pid) - cpu_before;
    let elapsed = started.elapsed().as_secs_f64();
    let loaded_rss = rss_bytes(pid).unwrap_or(0);
    let ticks = tick_quantiles(admin).await.unwrap_or_default();
    let samples = std::mem::take(&mut *latencies.lock().unwrap_or_else(PoisonError::into_inner));
    let _ = stop.send(true);
    let mut failed = 0;
    while let Some(outcome) = bots.join_next().await {
        if !matches!(outcome, Ok(Ok(_))) {
            failed += 1;
        }
    }
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    let mut latency_ms: Vec<f64> = samples.iter().map(|&us| us as f64 / 1000.0).collect();
    let cores = cpu / elapsed;
    let per_player = loaded_rss.saturating_sub(base_rss) as f64 / args.bots.max(1) as f64;
    let line = json!({
        "case": "arena",
        "bots": args.bots,
        "rooms": rooms,
        "per_room": args.per_room,
        "failed_bots": failed,
        "server_cpu_cores": (cores * 1000.0).round() / 1000.0,
        "players_per_core": if cores > 0.0 { (args.bots as f64 / cores).round() } else { 0.0 },
        "push_latency_ms": {
            "p50": quantile(&mut latency_ms, 0.5),
            "p99": quantile(&mut latency_ms, 0.99),
            "max": quantile(&mut latency_ms, 1.0),
        },
        "tick_ms": {"p50_at_most": ticks.0, "p99_at_most": ticks.1, "ticks": ticks.2},
        "snapshots_per_s": (samples.len() as f64 / elapsed).round(),
        "expected_snapshots_per_s": args.bots * 20,
        "server_rss_mb": {"base": base_rss / 1_048_576, "loaded": loaded_rss / 1_048_576},
        "server_kib_per_player": (per_player / 1024.0).round(),
    });
    println!("{line}");
    Ok(())
}
