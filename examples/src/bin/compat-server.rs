//! `compat-server`: PlayHouse playing the C# original's connector test server, so the
//! original's connectors run their integration suites against PlayHouse unchanged (see
//! `playhouse_examples::compat`).
//!
//! ```sh
//! cargo run -p playhouse-examples --bin compat-server                    # ephemeral ports
//! cargo run -p playhouse-examples --bin compat-server -- --http-port 8080 --https-port 8443 \
//!     --tcp-port 34001 --tls-port 34002                                  # the original's ports
//! ```
//!
//! Once ready it prints one JSON line on stdout,
//! `{"http":"HOST:PORT","https":"HOST:PORT","tcp":"HOST:PORT","tls":"HOST:PORT"}`, and runs
//! until SIGINT/SIGTERM or `POST /api/shutdown`. Logs go to stderr (`RUST_LOG`).

use clap::Parser;
use playhouse_examples::compat::{CompatServer, Ports};
use playhouse_examples::{init_logging, stop_signal};

/// PlayHouse re-creating PlayHouse-NET's connector test server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address every listener binds.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// HTTP API and WebSocket (`/ws`) port; 0 picks one.
    #[arg(long, env = "HTTP_PORT", default_value_t = 0)]
    http_port: u16,
    /// HTTPS API and WSS (`/ws`) port; 0 picks one.
    #[arg(long, env = "HTTPS_PORT", default_value_t = 0)]
    https_port: u16,
    /// Play server TCP port; 0 picks one.
    #[arg(long, env = "TCP_PORT", default_value_t = 0)]
    tcp_port: u16,
    /// Play server TCP+TLS port; 0 picks one.
    #[arg(long, env = "TCP_TLS_PORT", default_value_t = 0)]
    tls_port: u16,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    init_logging();
    let ports = Ports {
        host: args.host,
        http: args.http_port,
        https: args.https_port,
        tcp: args.tcp_port,
        tls: args.tls_port,
    };
    let server = CompatServer::start(&ports).await?;
    println!("{}", server.endpoints_json());
    tokio::select! {
        _ = stop_signal() => {}
        _ = server.shutdown_requested() => {}
    }
    server.stop().await;
    Ok(())
}
