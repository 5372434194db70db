//! The workload driver: run inside the client's namespace by `cluster run` (see
//! `playhouse_cluster::driver`). Prints one JSON line once started, plays for `--duration`
//! seconds, writes the history to `--out`, and exits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use playhouse_cluster::driver::{self, Workload};
use playhouse_cluster::history::Writer;

#[derive(Parser)]
struct Args {
    /// The history file to write.
    #[arg(long)]
    out: PathBuf,
    /// How long to play, in seconds.
    #[arg(long)]
    duration: u64,
    /// The API server's HTTP address.
    #[arg(long)]
    api: String,
    /// `<server id>=<client TCP address>` of each Play server.
    #[arg(long, required = true)]
    play: Vec<String>,
    /// `<server id>=<admin address>` of each Play server (its stage list is read).
    #[arg(long)]
    admin: Vec<String>,
    /// The Play servers' admin token.
    #[arg(long, default_value = "")]
    token: String,
    /// Rooms per Play server.
    #[arg(long, default_value_t = 3)]
    rooms: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let pairs = |list: &[String]| {
        list.iter()
            .map(|p| {
                p.split_once('=')
                    .map(|(id, addr)| (id.to_owned(), addr.to_owned()))
                    .ok_or_else(|| format!("{p}: expected <id>=<addr>"))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let plays = pairs(&args.play)?;
    let admins = pairs(&args.admin)?;
    let history = Arc::new(Writer::create(&args.out)?);
    println!("{{\"ready\": true}}");
    let workload = Workload {
        api: args.api,
        plays,
        admins,
        token: args.token,
        rooms: args.rooms,
        duration: Duration::from_secs(args.duration),
    };
    driver::run(workload, Arc::clone(&history)).await;
    history.flush()?;
    Ok(())
}
