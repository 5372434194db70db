//! The fault scenarios. Each builds a cluster from the seed, runs a script of faults and
//! workload against it, and checks the invariants as it goes:
//!
//! * every request ends in exactly one reply or one error (none hangs, none is completed by
//!   another request's reply); on the wire (the taps), every reply answers one request sent,
//!   once;
//! * nothing acknowledged is lost or duplicated (client ledgers against the stage's record);
//!   one-way operations (client `Op` sends, mesh `MOp` sends) and timed-out requests are
//!   applied exactly once unless their connection dropped, in the stage incarnation the
//!   connection is attached to;
//! * per-stage order holds (stage pushes consecutive per connection, operations applied in
//!   the order sent);
//! * queues stay bounded (request caches empty at the end, late replies at most the failed
//!   requests and, with the replies that completed requests, at most the replies on the
//!   wire; connectors with nothing pending);
//! * a node that declares a peer down drops every connection with it, the one the peer
//!   dialed included: closed within a tick of the verdict, nothing read from it after; once
//!   quiet, a node holds one connection from each peer (the tap's accepting side);
//! * a graceful stop closes every stage: each stage open when it began runs `on_destroy`
//!   exactly once before the shutdown deadline, after each of its actors' (on every close
//!   path: never twice, never before its actors; see [`crate::lifecycle`]);
//! * no task outlives a graceful shutdown (every host's runtime is empty after it stops).

use std::fmt;
use std::time::Instant;

use crate::cluster::Outcome;
use crate::trace::TraceHash;

mod api_partition;
mod chaos;
mod client_reconnect;
mod crash_inflight;
mod directory_churn;
mod directory_wipe;
mod drain_strays;
mod idle_timeout;
mod late_reply;
mod oneway_delivery;
mod play_requester;
mod play_restart;
mod push_idle;
mod request_timeout;
mod rolling_drain;
mod session_resume;
mod silent_peer;
mod stage_clock;
mod stage_order;

/// A named scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// One line on what it does.
    pub about: &'static str,
    /// Runs it for a seed.
    pub run: fn(u64) -> Outcome,
}

/// Every scenario.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "request_timeout",
        about: "held links: mesh and client requests time out, late replies are discarded and counted, caches end empty",
        run: request_timeout::run,
    },
    Scenario {
        name: "client_reconnect",
        about: "client link partition: heartbeat timeout, refused reconnects, re-authentication re-attaches the actor",
        run: client_reconnect::run,
    },
    Scenario {
        name: "idle_timeout",
        about: "half-open client: the server closes it on its idle timeout, the stage reports it gone",
        run: idle_timeout::run,
    },
    Scenario {
        name: "api_partition",
        about: "API <-> Play partition: timeouts with the right codes, repair, recovery, no stale reply",
        run: api_partition::run,
    },
    Scenario {
        name: "silent_peer",
        about: "the network to a Play server goes silent (both ways or one): held requests fail within the heartbeat timeout, not the 30 s request timeout",
        run: silent_peer::run,
    },
    Scenario {
        name: "play_restart",
        about: "Play server crash and restart: API requests fail fast, then recover; players rejoin a new stage",
        run: play_restart::run,
    },
    Scenario {
        name: "directory_churn",
        about: "an API server disabled, removed from the directory, re-added: routing and direct requests follow",
        run: directory_churn::run,
    },
    Scenario {
        name: "directory_wipe",
        about: "the directory loses every entry (an empty Redis restart): no live server drops out of routing",
        run: directory_wipe::run,
    },
    Scenario {
        name: "session_resume",
        about: "resumable sessions under random cuts and partitions: exactly once and in order within the window, an explicit loss past it",
        run: session_resume::run,
    },
    Scenario {
        name: "stage_order",
        about: "latency jitter: per-stage order of client and server messages, pushes and pipelined replies",
        run: stage_order::run,
    },
    Scenario {
        name: "chaos",
        about: "random partitions, holds and restarts over many clients and stages; every invariant at the end",
        run: chaos::run,
    },
    Scenario {
        name: "oneway_delivery",
        about: "client and mesh one-way messages under latency jitter and a dropped connection: exactly once unless their connection dropped",
        run: oneway_delivery::run,
    },
    Scenario {
        name: "late_reply",
        about: "a late reply (mesh and client) arrives while a newer request is pending: discarded and counted, the newer request gets its own",
        run: late_reply::run,
    },
    Scenario {
        name: "play_requester",
        about: "a stage requests an API server and another Play server's stage under a silent link: fail fast with SERVER_NOT_FOUND, its loop never blocked, recovery",
        run: play_requester::run,
    },
    Scenario {
        name: "crash_inflight",
        about: "requests in flight (API and client) when their Play server crashes: SERVER_NOT_FOUND within the heartbeat timeout, not the 30 s request timeout; a new stage incarnation after the restart",
        run: crash_inflight::run,
    },
    Scenario {
        name: "push_idle",
        about: "a stage keeps pushing to a client whose network died: the server still closes it on its idle timeout, the stage sees it gone, the other client's pushes never stall",
        run: push_idle::run,
    },
    Scenario {
        name: "stage_clock",
        about: "stage timers, the fixed-step game loop and async blocks under client cuts and latency jitter: on time, exact counts, results in order, nothing left after the stage closes",
        run: stage_clock::run,
    },
    Scenario {
        name: "rolling_drain",
        about: "every Play server drained and restarted in turn: movable stages move with their resumable players and their state, mesh messages addressed at the old server find them, nothing lost or applied twice",
        run: rolling_drain::run,
    },
];

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    ALL.iter().find(|s| s.name == name)
}

/// One run's result.
#[derive(Debug)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// Seed.
    pub seed: u64,
    /// What happened.
    pub outcome: Outcome,
    /// Wall-clock time the run took.
    pub wall: std::time::Duration,
}

impl Report {
    /// Whether every invariant held.
    pub fn ok(&self) -> bool {
        self.outcome.result.is_ok()
    }

    /// A failure report: the verdict line, why, the end of the trace, and the replay command
    /// (`None` when the run passed).
    pub fn failure(&self) -> Option<String> {
        let why = self.outcome.result.as_ref().err()?;
        let mut text = format!("{self}\n  why: {}\n", why.replace('\n', "\n       "));
        for line in self.outcome.tail(40) {
            text.push_str(&format!("  | {line}\n"));
        }
        text.push_str(&format!("  replay: {}\n", self.replay_command()));
        Some(text)
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "cargo run -p simulation -- --scenario {} --seed {}",
            self.scenario, self.seed
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scenario={} seed={} result={} trace={}",
            self.scenario,
            self.seed,
            if self.ok() { "ok" } else { "FAIL" },
            TraceHash(self.outcome.hash)
        )
    }
}

/// Runs scenario `name` with `seed`; `None` for an unknown name.
pub fn run(name: &str, seed: u64) -> Option<Report> {
    let scenario = find(name)?;
    let start = Instant::now();
    let outcome = (scenario.run)(seed);
    Some(Report {
        scenario: scenario.name,
        seed,
        outcome,
        wall: start.elapsed(),
    })
}
