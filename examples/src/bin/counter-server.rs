//! The counter game's server: one Play server, no mesh. Prints one JSON line with its
//! endpoints once it listens, and stops gracefully on Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run -p playhouse-examples --bin counter-server -- --tcp 127.0.0.1:7001 --ws 127.0.0.1:7002
//! ```

use clap::Parser;
use playhouse::PlayServer;
use playhouse_examples::counter::room::{Counter, CounterPlayer, ROOM};
use playhouse_examples::{init_logging, stop_signal};

#[derive(Parser)]
struct Args {
    /// Client TCP listener.
    #[arg(long, default_value = "127.0.0.1:7001")]
    tcp: String,
    /// Client WebSocket listener (path `/ws`).
    #[arg(long, default_value = "127.0.0.1:7002")]
    ws: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let args = Args::parse();
    let server = PlayServer::builder()
        .stage(ROOM, |_| Counter::default(), |_| CounterPlayer)
        .default_stage_type(ROOM) // logging into a room that does not exist creates it
        .build()?;
    let tcp = server.listen_tcp(&args.tcp).await?;
    let ws = server.listen_ws(&args.ws, "/ws").await?;
    println!(
        "{}",
        serde_json::json!({"tcp": tcp.to_string(), "ws": ws.to_string()})
    );
    stop_signal().await;
    server.stop().await;
    Ok(())
}
