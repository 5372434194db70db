//! The arena sample game: one command, then open the URL it prints.
//!
//! ```sh
//! cargo run -p playhouse-examples --bin arena
//! ```
//!
//! Environment: `ARENA_HTTP` (default `127.0.0.1:8080`: the page, `POST /join`, the WebSocket
//! at `/ws`), `ARENA_TCP` (default `127.0.0.1:7700`: bots and native clients). Prints one JSON
//! line with both once it is ready; stops on Ctrl-C or SIGTERM.

use playhouse_examples::arena::app::{ArenaConfig, start};
use playhouse_examples::{env_or, init_logging, stop_signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let defaults = ArenaConfig::default();
    let config = ArenaConfig {
        http: env_or("ARENA_HTTP", &defaults.http),
        tcp: env_or("ARENA_TCP", &defaults.tcp),
        ..defaults
    };
    let arena = start(config).await?;
    let line = serde_json::json!({
        "type": "arena",
        "url": format!("http://{}/", arena.http),
        "http": arena.http.to_string(),
        "tcp": arena.tcp.to_string(),
    });
    println!("{line}");
    eprintln!("the arena is up: open http://{}/", arena.http);
    stop_signal().await;
    arena.stop().await;
    Ok(())
}
