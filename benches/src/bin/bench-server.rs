//! The server under load: `--mode framework` (a Play server with `BenchStage`), `--mode raw`
//! (the TCP baseline), `--mode raw-hop` (the TCP baseline with the framework's session → stage
//! → session hop), `--mode raw-ws` (the WebSocket baseline) or `--mode raw-ws-hop` (it with the
//! hop). Prints one JSON line with the
//! listening addresses (`tcp`, `ws`, `tls`, whichever the mode has) and `pid`, then serves until
//! SIGINT/SIGTERM.

use clap::Parser;
use playhouse_benches::bench_server::{
    framework_server, raw_hop_server, raw_server, raw_ws_hop_server, raw_ws_server, without_metrics,
};

#[derive(Parser)]
struct Args {
    /// `framework`, `raw` (TCP), `raw-hop` (TCP through a stage task), `raw-ws` (WebSocket,
    /// any path) or `raw-ws-hop` (WebSocket through a stage task).
    #[arg(long, default_value = "framework")]
    mode: String,
    /// Bind address of the TCP listener (`raw-ws`: of the WebSocket listener).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
    /// Framework: remove actors disconnected this long (milliseconds; 0 = never).
    #[arg(long, default_value_t = 0)]
    actor_ttl_ms: u64,
    /// Framework: `on` keeps every metric, logs at INFO through a `tracing` subscriber (to
    /// stderr) and serves the admin listener, as a production server would; `off` keeps no
    /// per-message metric and installs no subscriber; `metrics` keeps every metric and serves
    /// the admin listener without a subscriber (see `benches/observe_cost.sh`).
    #[arg(long, default_value = "on")]
    observe: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    playhouse_benches::process::raise_fd_limit();
    let args = Args::parse();
    let pid = std::process::id();
    let mut server = None;
    let line = if args.mode == "raw" {
        let tcp = raw_server(&args.bind).await?;
        serde_json::json!({"mode": "raw", "tcp": tcp.to_string(), "pid": pid})
    } else if args.mode == "raw-hop" {
        let tcp = raw_hop_server(&args.bind).await?;
        serde_json::json!({"mode": "raw-hop", "tcp": tcp.to_string(), "pid": pid})
    } else if args.mode == "raw-ws-hop" {
        let ws = raw_ws_hop_server(&args.bind).await?;
        serde_json::json!({"mode": "raw-ws-hop", "ws": ws.to_string(), "pid": pid})
    } else if args.mode == "raw-ws" {
        let ws = raw_ws_server(&args.bind).await?;
        serde_json::json!({"mode": "raw-ws", "ws": ws.to_string(), "pid": pid})
    } else {
        let observe = args.observe != "off";
        if args.observe == "on" {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_writer(std::io::stderr)
                .init();
        }
        let play = if observe {
            framework_server(args.actor_ttl_ms)
        } else {
            without_metrics(args.actor_ttl_ms)
        };
        let play = server.insert(play);
        if observe {
            play.listen_metrics("127.0.0.1:0").await?;
        }
        let tcp = play.listen_tcp(&args.bind).await?;
        let ws = play.listen_ws("127.0.0.1:0", "/ws").await?;
        let certs = playhouse_transport::tls::self_signed(&["localhost", "127.0.0.1"])
            .map_err(|e| e.to_string())?;
        let tls = play.listen_tls("127.0.0.1:0", certs.server).await?;
        serde_json::json!({"mode": "framework", "tcp": tcp.to_string(), "ws": ws.to_string(), "tls": tls.to_string(), "pid": pid})
    };
    println!("{line}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    if let Some(play) = server {
        play.stop().await;
    }
    Ok(())
}
