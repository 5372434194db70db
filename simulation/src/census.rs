//! Resource counts taken while a scenario runs, not only at shutdown.
//!
//! A leak that grows with every reconnect or fault (a session task that outlives its
//! connection, a mesh connection never closed, a stage's timer left running) hides at the end
//! of a run if shutdown cleans it up. A [`Census`] of each Play server is taken at a steady
//! state before the faults and again once they are over and the same clients are back:
//! client sessions must come back to exactly the number of clients connected, and tasks on
//! the host to at most what they were (every connection the servers hold is owned by a task).
//!
//! turmoil's own count of established streams is not used: it keeps a socket for a connection
//! attempt abandoned mid-handshake (a dial that timed out against a crashed host), which no
//! code of ours holds.

use std::fmt;
use std::time::Duration;

use crate::cluster::env::{Env, wait_until};

/// What one Play server host holds at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Census {
    /// Client sessions open.
    pub sessions: usize,
    /// Tasks alive on the host's runtime.
    pub tasks: usize,
}

impl fmt::Display for Census {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sessions={} tasks={}", self.sessions, self.tasks)
    }
}

impl Census {
    /// Counts on live Play server `host` now (`None` while it is down).
    pub fn take(env: &Env, host: &str) -> Option<Census> {
        let sessions = env.play(host)?.session_count();
        let tasks = env.tasks_on(host)?;
        Some(Census { sessions, tasks })
    }

    /// Whether `self` holds no more than `baseline`, with exactly its sessions.
    fn within(&self, baseline: &Census) -> bool {
        self.sessions == baseline.sessions && self.tasks <= baseline.tasks
    }
}

/// Takes a census of every host in `hosts`, recording it in the trace; a host that is down is
/// a violation.
pub fn baseline(env: &Env, hosts: &[&str]) -> Vec<Census> {
    hosts
        .iter()
        .map(|host| {
            let census = Census::take(env, host);
            match census {
                Some(census) => {
                    env.trace
                        .record("census", format_args!("{host} baseline {census}"));
                    census
                }
                None => {
                    env.trace
                        .violation("census", format_args!("{host} down at the baseline"));
                    Census {
                        sessions: 0,
                        tasks: 0,
                    }
                }
            }
        })
        .collect()
}

/// Waits up to `limit` for every host in `hosts` to come back within its `baseline`
/// (sessions equal, tasks no more), recording a violation with the counts for
/// each that does not: what a fault left behind is a leak.
pub async fn expect_back(env: &Env, hosts: &[&str], baseline: &[Census], limit: Duration) {
    for (host, base) in hosts.iter().zip(baseline) {
        let back = wait_until(limit, || {
            Census::take(env, host).is_some_and(|now| now.within(base))
        })
        .await;
        let now = Census::take(env, host);
        let shown = now.map_or_else(|| "down".to_owned(), |c| c.to_string());
        env.trace
            .record("census", format_args!("{host} after {shown}"));
        env.trace.check("census", back, || {
            format!("{host} did not come back within {limit:?}: {shown}, baseline {base}")
        });
    }
}
