//! Bots for the arena: `cargo run -p playhouse-examples --bin arena-bots -- [BOTS] [ROOM]`
//! (default 4 bots in room 1) against the arena at `ARENA_HTTP` (default `127.0.0.1:8080`).
//! They chase coins until Ctrl-C, then print how many snapshots each saw.

use playhouse_examples::arena::bot::{join_room, play};
use playhouse_examples::{env_or, init_logging, stop_signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let mut args = std::env::args().skip(1);
    let bots: usize = args.next().map_or(Ok(4), |a| a.parse())?;
    let room: i64 = args.next().map_or(Ok(1), |a| a.parse())?;
    let http = env_or("ARENA_HTTP", "127.0.0.1:8080").parse()?;
    let joined = join_room(http, room).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 1..=bots {
        let (joined, mut stop) = (joined.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let name = format!("bot-{k}");
            let until = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            (name.clone(), play(&joined, &name, until).await)
        });
    }
    eprintln!("{bots} bots in room {}; Ctrl-C stops them", joined.room);
    stop_signal().await;
    let _ = stop_tx.send(true);
    while let Some(Ok((name, outcome))) = tasks.join_next().await {
        match outcome {
            Ok(snapshots) => println!("{name}: {snapshots} snapshots"),
            Err(error) => println!("{name}: {error}"),
        }
    }
    Ok(())
}
