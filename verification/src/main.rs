//! `verification`: starts the PlayHouse servers once and verifies every feature (see `--help`).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let args = verification::cli::Args::parse();
    // Logs go to stderr only: stdout carries TAP or the `--serve` JSON line.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    verification::cli::run(args).await
}
