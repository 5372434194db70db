//! The counter game's client: logs in, clicks, hears the room, leaves. Exits non-zero if
//! anything the game promises did not happen.
//!
//! ```text
//! cargo run -p playhouse-examples --bin counter-client -- --port 7001 --name alice --clicks 3
//! ```

use clap::Parser;
use playhouse_examples::counter::client::play;

#[derive(Parser)]
struct Args {
    /// The server's host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The server's TCP port.
    #[arg(long, default_value_t = 7001)]
    port: u16,
    /// The room to join (created if missing).
    #[arg(long, default_value_t = 1)]
    room: i64,
    /// The player's name.
    #[arg(long)]
    name: String,
    /// How many times to click.
    #[arg(long, default_value_t = 3)]
    clicks: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let played = play(&args.host, args.port, args.room, &args.name, args.clicks).await?;
    println!(
        "{}: clicks answered {:?}, heard {:?}, {} tick(s)",
        args.name, played.replies, played.heard, played.ticks
    );
    // Each reply counts up, and the room told this player about each of its own clicks.
    let ordered = played.replies.windows(2).all(|pair| pair[0] < pair[1]);
    let own = played
        .heard
        .iter()
        .filter(|(by, _)| *by == args.name)
        .count();
    if played.replies.len() != args.clicks || !ordered || own != args.clicks || played.ticks == 0 {
        return Err("the room did not answer as the game promises".into());
    }
    Ok(())
}
