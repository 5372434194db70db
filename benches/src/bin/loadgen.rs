//! The load generator (see `playhouse_benches::loadgen`). Loopback targets only.

use std::time::Duration;

use clap::Parser;
use playhouse_benches::loadgen::{Mode, Plan, Transport, run};
use playhouse_benches::process::raise_fd_limit;

#[derive(Parser)]
#[command(about = "PlayHouse load generator: prints a table and one JSON line")]
struct Args {
    /// Server address (loopback only).
    #[arg(long, default_value = "127.0.0.1:7000")]
    target: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1000)]
    ccu: usize,
    /// Clients per stage.
    #[arg(long, default_value_t = 10)]
    per_stage: usize,
    /// `request`, `send` or `idle` (authenticate, then only heartbeats).
    #[arg(long, value_enum, default_value = "request")]
    mode: Mode,
    /// Messages outstanding per client.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Messages per second per client (instead of a full window).
    #[arg(long)]
    rate: Option<f64>,
    /// Payload bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to connect and warm up before measuring.
    #[arg(long, default_value_t = 3.0)]
    ramp: f64,
    /// `tcp`, `ws` or `tls`.
    #[arg(long, value_enum, default_value = "tcp")]
    transport: Transport,
    /// The server's pid (RSS is read from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Resumable clients: ask for RESUME in the hello, acknowledge what arrives, keep what
    /// was sent until acknowledged.
    #[arg(long)]
    resume: bool,
    /// Seconds between heartbeats (each preceded by a pending ack when resumable); none by default.
    #[arg(long)]
    heartbeat: Option<f64>,
    /// Source addresses 127.0.0.1..=127.0.0.N in turn: one source address reaches one port
    /// from about 28,000 ephemeral ports, so 100,000 clients need 4.
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Only this many clients (spread evenly) run `--mode`; the rest authenticate and idle.
    #[arg(long)]
    active: Option<usize>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let host = args
        .target
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or_default();
    assert!(
        matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]"),
        "the load generator targets loopback only"
    );
    let limit = raise_fd_limit();
    if limit < args.ccu as u64 + 100 {
        eprintln!(
            "warning: open-file limit {limit} may be too low for {} clients",
            args.ccu
        );
    }
    let report = run(Plan {
        target: args.target,
        ccu: args.ccu,
        per_stage: args.per_stage,
        mode: args.mode,
        inflight: args.inflight,
        rate: args.rate,
        size: args.size,
        duration: Duration::from_secs_f64(args.duration),
        ramp: Duration::from_secs_f64(args.ramp),
        transport: args.transport,
        server_pid: args.server_pid,
        resume: args.resume,
        heartbeat: args.heartbeat.map(Duration::from_secs_f64),
        sources: args.sources,
        active: args.active,
    })
    .await;
    eprintln!("{report}");
    println!("{}", report.json());
}
