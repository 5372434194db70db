//! A simulated cluster: turmoil configured from the seed, Play and API server hosts running
//! the real servers, the shared directory and trace, host faults (crash, bounce) requested
//! from inside the simulation, and the run loop.

pub mod env;
pub mod hosts;
pub mod ports;
pub mod timing;

use std::time::{Duration, UNIX_EPOCH};

use env::{Env, HostFault, Workload};
use hosts::{api_host, play_host};
use timing::{Network, Timing};

use crate::trace::now;

/// How one run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The trace hash.
    pub hash: u64,
    /// `Ok`, or why the run failed (violations, a stuck or crashed simulation).
    pub result: Result<(), String>,
    /// Every line of the trace.
    pub lines: Vec<String>,
    /// Lines in the trace.
    pub events: usize,
    /// Simulated time the run took.
    pub simulated: Duration,
}

/// One simulation: the turmoil [`turmoil::Sim`] plus the shared [`Env`].
pub struct Cluster {
    /// The simulation (register hosts and clients on it).
    pub sim: turmoil::Sim<'static>,
    /// What hosts and clients share.
    pub env: Env,
    /// Every host and client registered, by name.
    names: Vec<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Cluster {
    /// A cluster for `seed`: turmoil's generator and the scenario's are both seeded with it.
    pub fn new(seed: u64, network: Network, timing: Timing) -> Cluster {
        let sim = turmoil::Builder::new()
            .rng_seed(seed)
            .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .simulation_duration(network.limit)
            .tick_duration(Duration::from_millis(1))
            .min_message_latency(network.min_latency)
            .max_message_latency(network.max_latency)
            .tcp_capacity(256)
            .build();
        Cluster {
            sim,
            env: Env::new(seed, timing),
            names: Vec::new(),
        }
    }

    /// Registers Play server host `name`.
    pub fn play(&mut self, name: &'static str) {
        let software = play_host(&self.env, name);
        self.sim.host(name, software);
        self.names.push(name.to_owned());
    }

    /// Registers API server host `name`.
    pub fn api(&mut self, name: &'static str, service_id: Option<u16>, workload: Option<Workload>) {
        let software = api_host(&self.env, name, service_id, workload);
        self.sim.host(name, software);
        self.names.push(name.to_owned());
    }

    /// Registers client host `name` running `script` (the run ends when every client has).
    pub fn client<F>(&mut self, name: &str, script: F)
    where
        F: Future<Output = ()> + 'static,
    {
        self.names.push(name.to_owned());
        self.sim.client(name, async move {
            script.await;
            Ok(())
        });
    }

    /// Crashes `name` with its links cut for the instant (see [`HostFault::Crash`]).
    fn crash(&mut self, name: &str) {
        let others: Vec<&str> = self
            .names
            .iter()
            .map(String::as_str)
            .filter(|other| *other != name)
            .collect();
        for other in &others {
            self.sim.partition(name, *other);
        }
        self.sim.crash(name);
        for other in &others {
            self.sim.repair(name, *other);
        }
    }

    /// Runs until every client script has finished, applying host faults as they are asked
    /// for; then collects the verdict.
    pub fn run(mut self) -> Outcome {
        let env = self.env.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            loop {
                match self.sim.step() {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(error) => return Err(error.to_string()),
                }
                let faults = env.take_faults();
                for fault in faults {
                    match fault {
                        HostFault::Crash(name) => self.crash(&name),
                        HostFault::Bounce(name) => self.sim.bounce(name.as_str()),
                    }
                }
            }
        }));
        let simulated = self.sim.elapsed();
        // Tear the simulation down before reading the verdict: dropping hosts runs no code
        // that records anything.
        drop(self);
        let result = match result {
            Ok(Ok(())) => {
                let violations = env.trace.violations();
                if violations.is_empty() {
                    Ok(())
                } else {
                    Err(violations.join("\n"))
                }
            }
            Ok(Err(error)) => Err(format!("simulation failed: {error}")),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panic".to_owned());
                Err(format!("panicked: {message}"))
            }
        };
        Outcome {
            hash: env.trace.hash(),
            result,
            lines: env.trace.lines(),
            events: env.trace.len(),
            simulated,
        }
    }
}

impl Outcome {
    /// The last `n` lines of the trace.
    pub fn tail(&self, n: usize) -> &[String] {
        &self.lines[self.lines.len().saturating_sub(n)..]
    }
}

/// The current simulated time (for scripts that measure how long something took).
pub fn elapsed() -> Duration {
    now()
}
