//! The command line: `--ci`, `--category`, `--list`, `--serve`, and the interactive menu.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::context::ServerContext;
use crate::runner::{self, Category};
use crate::servers::Servers;
use crate::tap::{self, TapWriter};
use crate::verifiers;

/// Starts the PlayHouse servers once and verifies every feature through the real connector.
///
/// Without flags on a terminal it shows a menu; without flags and without a terminal it runs
/// like `--ci`. Logs go to stderr (`RUST_LOG`, default `warn`); stdout carries only TAP, the
/// menu, or `--serve`'s JSON line.
#[derive(Debug, Parser)]
#[command(name = "verification", version)]
pub struct Args {
    /// Run every test (or the `--category` ones), print TAP to stdout and to
    /// `verification-results.tap`, exit 1 if any test failed.
    #[arg(long)]
    pub ci: bool,
    /// Run only this category (repeatable, case-insensitive).
    #[arg(long = "category", value_name = "NAME")]
    pub categories: Vec<String>,
    /// List the categories with their test counts.
    #[arg(long, conflicts_with_all = ["ci", "categories", "serve"])]
    pub list: bool,
    /// Start the servers, print one JSON line with every endpoint, serve until SIGINT/SIGTERM.
    #[arg(long, conflicts_with_all = ["ci", "categories"])]
    pub serve: bool,
    /// Start two Play servers of the Drain category's kind in a mesh of their own, print one
    /// JSON line with their endpoints (and the first one's admin listener and token), serve
    /// until SIGINT/SIGTERM: `POST /drain` on the first moves its stages to the second.
    #[arg(long, conflicts_with_all = ["ci", "categories", "serve"])]
    pub serve_drain: bool,
}

/// Runs the program for `args`; the exit code tells CI whether everything passed.
pub async fn run(args: Args) -> ExitCode {
    let all = verifiers::all();
    if args.list {
        list(&all);
        return ExitCode::SUCCESS;
    }
    if args.serve {
        return serve().await;
    }
    if args.serve_drain {
        return serve_drain().await;
    }
    let selected = match select(&all, &args.categories) {
        Ok(selected) => selected,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let interactive = !args.ci && args.categories.is_empty() && std::io::stdin().is_terminal();
    let server = match ServerContext::start().await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("could not start the servers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = if interactive {
        menu(&server, &all).await
    } else {
        let save = args.ci || args.categories.is_empty();
        run_tap(&server, &selected, save).await
    };
    server.stop().await;
    code
}

fn list(all: &[Category]) {
    let mut out = std::io::stdout().lock();
    for category in all {
        let _ = writeln!(out, "{} ({})", category.name, category.tests.len());
    }
    let total: usize = all.iter().map(|c| c.tests.len()).sum();
    let _ = writeln!(out, "# {} categories, {total} tests", all.len());
}

/// The categories named on the command line (all when none is named).
fn select(all: &[Category], names: &[String]) -> Result<Vec<Category>, String> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    let mut selected: Vec<Category> = Vec::new();
    for name in names {
        let Some(category) = all.iter().find(|c| c.name.eq_ignore_ascii_case(name)) else {
            let known: Vec<&str> = all.iter().map(|c| c.name).collect();
            return Err(format!(
                "unknown category {name:?}; known: {}",
                known.join(", ")
            ));
        };
        if !selected.iter().any(|c| c.name == category.name) {
            selected.push(category.clone());
        }
    }
    Ok(selected)
}

/// Runs `categories` printing TAP; `save` also writes the results file. Exit 1 on failure.
async fn run_tap(server: &Arc<ServerContext>, categories: &[Category], save: bool) -> ExitCode {
    let count = categories.iter().map(|c| c.tests.len()).sum();
    let failed = match run_and_print(server, categories, count).await {
        Ok((failed, tap)) => {
            if save && let Err(error) = tap.save(Path::new(tap::TAP_FILE)) {
                eprintln!("could not write {}: {error}", tap::TAP_FILE);
                return ExitCode::FAILURE;
            }
            failed
        }
        Err(error) => {
            eprintln!("could not write TAP: {error}");
            return ExitCode::FAILURE;
        }
    };
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_and_print(
    server: &Arc<ServerContext>,
    categories: &[Category],
    count: usize,
) -> std::io::Result<(usize, TapWriter<std::io::Stdout>)> {
    let mut tap = TapWriter::new(std::io::stdout(), count)?;
    let mut write_error = None;
    runner::run(server, categories, |outcome| {
        if let Err(error) = tap.outcome(outcome) {
            write_error.get_or_insert(error);
        }
    })
    .await;
    if let Some(error) = write_error {
        return Err(error);
    }
    let failed = tap.finish()?;
    Ok((failed, tap))
}

/// `--serve`: one JSON line on stdout, then serve until SIGINT or SIGTERM.
async fn serve() -> ExitCode {
    let servers = match Servers::start().await {
        Ok(servers) => servers,
        Err(error) => {
            eprintln!("could not start the servers: {error}");
            return ExitCode::FAILURE;
        }
    };
    {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{}", servers.endpoints_json())
            .and_then(|()| out.flush())
            .is_err()
        {
            servers.stop().await;
            return ExitCode::FAILURE;
        }
    }
    if let Err(error) = shutdown_signal().await {
        eprintln!("cannot listen for signals: {error}");
    }
    tracing::info!("signal received; stopping");
    servers.stop().await;
    ExitCode::SUCCESS
}

/// `--serve-drain`: one JSON line on stdout, then serve until SIGINT or SIGTERM.
async fn serve_drain() -> ExitCode {
    let (servers, json) = match verifiers::serve_drain_pair().await {
        Ok(pair) => pair,
        Err(error) => {
            eprintln!("could not start the servers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let printed = {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{json}").and_then(|()| out.flush()).is_ok()
    };
    if printed && let Err(error) = shutdown_signal().await {
        eprintln!("cannot listen for signals: {error}");
    }
    for server in servers {
        server.stop().await;
    }
    if printed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(unix)]
async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}

/// The interactive menu: 1 runs everything, 2.. one category, 0 exits.
async fn menu(server: &Arc<ServerContext>, all: &[Category]) -> ExitCode {
    let total: usize = all.iter().map(|c| c.tests.len()).sum();
    loop {
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "========================================");
            let _ = writeln!(out, "PlayHouse Verification");
            let _ = writeln!(out, "========================================");
            let _ = writeln!(out, "1. Run all tests ({total})");
            for (i, category) in all.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{}. {} ({})",
                    i + 2,
                    category.name,
                    category.tests.len()
                );
            }
            let _ = writeln!(out, "0. Exit");
            let _ = write!(out, "Select option: ");
            let _ = out.flush();
        }
        let Some(line) = read_line().await else {
            return ExitCode::SUCCESS;
        };
        let choice = match line.trim().parse::<usize>() {
            Ok(choice) => choice,
            Err(_) => continue,
        };
        let categories = match choice {
            0 => return ExitCode::SUCCESS,
            1 => all.to_vec(),
            n if n - 2 < all.len() => vec![all[n - 2].clone()],
            _ => continue,
        };
        let count = categories.iter().map(|c| c.tests.len()).sum();
        if let Err(error) = run_and_print(server, &categories, count).await {
            eprintln!("could not write TAP: {error}");
            return ExitCode::FAILURE;
        }
    }
}

/// One line from stdin without blocking the runtime; `None` at end of input.
async fn read_line() -> Option<String> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    })
    .await
    .ok()
    .flatten()
}
