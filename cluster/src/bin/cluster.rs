//! `cluster`: the real cluster under real network faults (run as root).
//!
//! - `cluster run --seed S --duration SECS [--out DIR] [--faults kind,kind]`: builds the
//!   namespaces, starts Redis, `play-node` ×2, `api-node` and the workload driver, applies
//!   the faults of the seed's schedule, tears everything down, checks the history, prints
//!   the summary table (also `<out>/summary.md`); exits 1 on a violation.
//! - `cluster teardown`: removes every `phc-` namespace and what runs in it.
//! - `cluster check DIR`: checks the history of a finished run again.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use clap::{Parser, Subcommand};
use playhouse_cluster::cluster::{ADMIN_TOKEN, API_HTTP, Bins, Cluster, PLAY_ADMIN, PLAY_TCP};
use playhouse_cluster::faults::{self, Kind};
use playhouse_cluster::history::{self, Record, Writer, now_ms};
use playhouse_cluster::net;
use playhouse_cluster::{check, summary};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the cluster with faults from a seed, then checks the history.
    Run {
        /// The seed of the fault schedule.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How long the workload plays, in seconds.
        #[arg(long, default_value_t = 180)]
        duration: u64,
        /// Where the history, the logs and the summary go.
        #[arg(long, default_value = "/tmp/playhouse-cluster")]
        out: PathBuf,
        /// The fault kinds to use (comma-separated); all by default.
        #[arg(long, value_delimiter = ',')]
        faults: Vec<String>,
        /// Where `play-node`, `api-node` and `cluster-driver` are; this program's directory
        /// by default.
        #[arg(long)]
        bin_dir: Option<PathBuf>,
    },
    /// Removes every namespace of the cluster and what runs in it.
    Teardown,
    /// Checks the history in a run's output directory.
    Check {
        /// The run's output directory.
        out: PathBuf,
    },
}

/// Quiet time before the first fault and after the last.
const WARMUP: Duration = Duration::from_secs(15);
/// Quiet time after each heal: the recovery bound plus a margin.
const GAP: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Teardown => net::teardown()
            .await
            .map(|n| {
                println!("removed {n} namespace(s)");
                true
            })
            .map_err(Into::into),
        Command::Check { out } => verdict(&out),
        Command::Run {
            seed,
            duration,
            out,
            faults,
            bin_dir,
        } => run(seed, duration, out, faults, bin_dir).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("cluster: {error}");
            let _ = net::teardown().await;
            ExitCode::from(2)
        }
    }
}

type Error = Box<dyn std::error::Error>;

async fn run(
    seed: u64,
    duration: u64,
    out: PathBuf,
    faults: Vec<String>,
    bin_dir: Option<PathBuf>,
) -> Result<bool, Error> {
    let kinds = if faults.is_empty() {
        Kind::ALL.to_vec()
    } else {
        faults
            .iter()
            .map(|f| Kind::parse(f).ok_or_else(|| format!("no fault kind {f}")))
            .collect::<Result<Vec<_>, _>>()?
    };
    let removed = net::teardown().await?;
    if removed > 0 {
        println!("removed {removed} namespace(s) left by an earlier run");
    }
    let exe = std::env::current_exe()?;
    let dir = bin_dir.unwrap_or_else(|| exe.parent().expect("a directory").to_owned());
    let bins = Bins {
        play: dir.join("play-node"),
        api: dir.join("api-node"),
        driver: dir.join("cluster-driver"),
    };
    std::fs::create_dir_all(&out)?;
    for old in ["history.jsonl", "faults.jsonl", "summary.md"] {
        let _ = std::fs::remove_file(out.join(old));
    }
    watchdog(&exe)?;
    let work = run_cluster(seed, duration, &out, &kinds, &bins);
    let interrupted = tokio::select! {
        result = work => { result?; false }
        () = stop_signal() => true,
    };
    net::teardown().await?;
    if std::fs::read_to_string(owner_mark()).is_ok_and(|o| o == std::process::id().to_string()) {
        let _ = std::fs::remove_file(owner_mark());
    }
    if interrupted {
        return Err("interrupted; namespaces removed".into());
    }
    verdict(&out)
}

/// Names the run that owns the namespaces (its pid), so that a finished run's watchdog
/// leaves the next run's alone.
fn owner_mark() -> PathBuf {
    std::env::temp_dir().join("playhouse-cluster.owner")
}

/// A detached shell that tears the namespaces down once this process is gone, however it
/// ended (SIGKILL included), unless another run has taken them over meanwhile.
fn watchdog(exe: &Path) -> std::io::Result<()> {
    let pid = std::process::id();
    let mark = owner_mark();
    std::fs::write(&mark, pid.to_string())?;
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         [ \"$(cat '{}' 2>/dev/null)\" = {pid} ] && exec '{}' teardown",
        mark.display(),
        exe.display()
    );
    std::process::Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(())
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run_cluster(
    seed: u64,
    duration: u64,
    out: &Path,
    kinds: &[Kind],
    bins: &Bins,
) -> Result<(), Error> {
    let mut cluster = Cluster::start(bins, out).await?;
    let plays: Vec<String> = ["play-1", "play-2"]
        .iter()
        .flat_map(|p| {
            let addr = &cluster.host(p).addr;
            [
                format!("--play={p}={addr}:{PLAY_TCP}"),
                format!("--admin={p}={addr}:{PLAY_ADMIN}"),
            ]
        })
        .collect();
    let mut args = vec![
        format!("--out={}", out.join("history.jsonl").display()),
        format!("--duration={duration}"),
        format!("--api={}:{API_HTTP}", cluster.host("api-1").addr),
        format!("--token={ADMIN_TOKEN}"),
    ];
    args.extend(plays);
    let mut driver = cluster.start_driver(bins, &args).await?;
    let started = tokio::time::Instant::now();
    let faults_log = Writer::create(&out.join("faults.jsonl"))?;
    let budget = Duration::from_secs(duration).saturating_sub(WARMUP * 2);
    let plan = faults::plan(seed, kinds, budget, GAP);
    println!("seed {seed}: {} fault(s) in {duration} s", plan.len());
    tokio::time::sleep(WARMUP).await;
    for step in &plan {
        let applied = now_ms();
        cluster.apply(step).await?;
        tokio::time::sleep(step.hold).await;
        cluster.heal(step).await?;
        let healed = now_ms();
        println!(
            "  fault {} {} on {}: held {:?}",
            step.id,
            step.kind.name(),
            step.target,
            step.hold
        );
        faults_log.write(&Record::Fault {
            id: step.id,
            kind: step.kind.name().to_owned(),
            target: step.target.clone(),
            applied,
            healed,
        });
        faults_log.flush()?;
        tokio::time::sleep(GAP).await;
    }
    faults_log.flush()?;
    let left = Duration::from_secs(duration + 60).saturating_sub(started.elapsed());
    if tokio::time::timeout(left, driver.wait()).await.is_err() {
        driver.kill().await;
        return Err(format!("the driver did not finish (see {})", driver.log().display()).into());
    }
    cluster.stop().await;
    Ok(())
}

/// Checks the run in `out`, prints and saves the summary; whether it passed.
fn verdict(out: &Path) -> Result<bool, Error> {
    let records = history::read(&[&out.join("history.jsonl"), &out.join("faults.jsonl")])?;
    let report = check::check(&records);
    let table = summary::table(&report);
    println!("{table}");
    std::fs::write(out.join("summary.md"), &table)?;
    Ok(report.violations.is_empty())
}
