//! Memory under connection churn: `--clients` clients open, authenticate (as the same
//! accounts every round, like players reconnecting) and close, `--rounds` times; the server's
//! RSS is printed after every round. Flat RSS after warm-up means nothing leaks per connection.

use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use playhouse_benches::ids;
use playhouse_benches::process::{raise_fd_limit, rss_bytes};
use playhouse_protocol::{ClientCodec, ClientFrame};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

#[derive(Parser)]
struct Args {
    /// Server address (loopback).
    #[arg(long)]
    target: String,
    /// The server's pid (RSS from /proc).
    #[arg(long)]
    server_pid: u32,
    /// Clients per round.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Rounds.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Use fresh account ids every round (actors accumulate as disconnected unless the
    /// server expires them).
    #[arg(long)]
    fresh_accounts: bool,
}

async fn one(target: String, index: usize, account: String) -> bool {
    let Ok(stream) = TcpStream::connect(&target).await else {
        return false;
    };
    let mut framed = Framed::new(stream, ClientCodec::default());
    let stage = (index / 10) as i64 + 1;
    if framed
        .send(ClientFrame::new(ids::AUTH, 1, stage, account.into_bytes()))
        .await
        .is_err()
    {
        return false;
    }
    matches!(framed.next().await, Some(Ok(reply)) if reply.error_code.is_success())
}

#[tokio::main]
async fn main() {
    raise_fd_limit();
    let args = Args::parse();
    let mut samples = Vec::new();
    for round in 0..args.rounds {
        let mut tasks = Vec::with_capacity(args.clients);
        for index in 0..args.clients {
            let account = if args.fresh_accounts {
                format!("churn-{round}-{index}")
            } else {
                format!("churn-{index}")
            };
            tasks.push(tokio::spawn(one(args.target.clone(), index, account)));
        }
        let mut ok = 0;
        for task in tasks {
            ok += usize::from(task.await.unwrap_or(false));
        }
        // Let the server notice the closes before sampling.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss = rss_bytes(args.server_pid).unwrap_or(0) as f64 / (1024.0 * 1024.0);
        eprintln!(
            "round {round:>3}: {ok}/{} authenticated, server RSS {rss:.1} MiB",
            args.clients
        );
        samples.push(rss);
    }
    let warm = samples.get(2).copied().unwrap_or(0.0);
    let last = samples.last().copied().unwrap_or(0.0);
    let max = samples.iter().copied().fold(0.0, f64::max);
    println!(
        "{}",
        serde_json::json!({
            "clients": args.clients, "rounds": args.rounds, "fresh_accounts": args.fresh_accounts,
            "rss_after_round_3_mb": (warm * 10.0).round() / 10.0,
            "rss_last_mb": (last * 10.0).round() / 10.0,
            "rss_max_mb": (max * 10.0).round() / 10.0,
        })
    );
}
