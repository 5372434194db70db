//! `cargo run -p simulation -- --scenario NAME --seed N` (or `--seeds A..B`, or `--list`):
//! runs scenarios and prints one line per run,
//! `scenario=NAME seed=N result=ok|FAIL trace=HASH`; a failure also prints why, the end of
//! its trace and the command that replays it. `--trace` prints whole traces;
//! `--check-replay` runs every seed twice and fails when the traces differ.

use std::process::ExitCode;

use clap::Parser;
use simulation::scenarios;

/// Deterministic fault simulations of PlayHouse.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Scenario to run (repeatable); every scenario when none is given.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// One seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds, `A..B` (B excluded).
    #[arg(long, value_name = "A..B", value_parser = parse_range)]
    seeds: Option<(u64, u64)>,
    /// Lists the scenarios and exits.
    #[arg(long)]
    list: bool,
    /// Prints the whole trace of each run.
    #[arg(long)]
    trace: bool,
    /// Runs every seed twice and fails when the two traces differ (hunts nondeterminism).
    #[arg(long)]
    check_replay: bool,
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("`{text}` is not A..B"))?;
    let a = a.parse().map_err(|e| format!("`{a}`: {e}"))?;
    let b = b.parse().map_err(|e| format!("`{b}`: {e}"))?;
    if b <= a {
        return Err(format!("empty range {a}..{b}"));
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for scenario in scenarios::ALL {
            println!("{:<18} {}", scenario.name, scenario.about);
        }
        return ExitCode::SUCCESS;
    }
    let names: Vec<&str> = if args.scenarios.is_empty() {
        scenarios::ALL.iter().map(|s| s.name).collect()
    } else {
        args.scenarios.iter().map(String::as_str).collect()
    };
    for name in &names {
        if scenarios::find(name).is_none() {
            eprintln!("unknown scenario `{name}` (see --list)");
            return ExitCode::from(2);
        }
    }
    let (first, end) = match (args.seed, args.seeds) {
        (Some(seed), _) => (seed, seed + 1),
        (None, Some(range)) => range,
        (None, None) => (0, 1),
    };
    let mut failed = 0;
    for name in names {
        for seed in first..end {
            let Some(report) = scenarios::run(name, seed) else {
                continue;
            };
            if args.trace {
                for line in &report.outcome.lines {
                    println!("  | {line}");
                }
            }
            match report.failure() {
                Some(failure) => {
                    failed += 1;
                    print!("{failure}");
                }
                None => println!("{report}"),
            }
            if args.check_replay
                && let Some(again) = scenarios::run(name, seed)
                && again.outcome.hash != report.outcome.hash
            {
                failed += 1;
                println!("  REPLAY MISMATCH: {again}");
                if let Some(at) = report
                    .outcome
                    .lines
                    .iter()
                    .zip(&again.outcome.lines)
                    .position(|(a, b)| a != b)
                {
                    println!("  first difference, line {at}:");
                    println!("    {}", report.outcome.lines[at]);
                    println!("    {}", again.outcome.lines[at]);
                }
                println!("  replay: {}", report.replay_command());
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} runs failed");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
