//! The cluster's processes: each started inside its host's namespace (`ip netns exec`, which
//! execs the program, so the child's pid is the node's), with its stderr appended to
//! `<out>/<name>.log`. Signals go to that pid only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::net::{self, Host};

/// How long a node may take to be ready.
const READY: Duration = Duration::from_secs(30);

/// A process that did not start.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// Spawning or its log file failed.
    #[error("{name}: {source}")]
    Io {
        /// The node.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited or stayed silent instead of printing its ready line.
    #[error("{name} did not become ready (see its log)")]
    NotReady {
        /// The node.
        name: String,
    },
}

/// What a node runs.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Where it runs.
    pub host: Host,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Its environment (added to ours).
    pub env: Vec<(String, String)>,
    /// Whether it prints a JSON line once ready (the example nodes do); otherwise readiness
    /// is `ready_probe` answering.
    pub ready_line: bool,
    /// A command run in the namespace until it succeeds (Redis: `redis-cli ping`).
    pub ready_probe: Option<Vec<String>>,
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    /// What it runs.
    pub spec: Spec,
    child: Child,
    log: PathBuf,
}

impl Node {
    /// Starts `spec`, logging to `<out>/<host name>.log`; returns once it is ready.
    pub async fn start(spec: Spec, out: &Path) -> Result<Node, ProcError> {
        let name = spec.host.name.clone();
        let io = |source| ProcError::Io {
            name: name.clone(),
            source,
        };
        let log = out.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io)?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &spec.host.ns])
            .args(&spec.argv)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(if spec.ready_line {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::from(file))
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(io)?;
        if spec.ready_line {
            let stdout = child.stdout.take().expect("piped stdout");
            let mut lines = BufReader::new(stdout).lines();
            let line = tokio::time::timeout(READY, lines.next_line()).await;
            match line {
                Ok(Ok(Some(line))) if line.starts_with('{') => {}
                _ => return Err(ProcError::NotReady { name }),
            }
            // Keep reading so the node never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
        if let Some(probe) = &spec.ready_probe {
            let probe: Vec<&str> = probe.iter().map(String::as_str).collect();
            let started = tokio::time::Instant::now();
            while net::in_ns(&spec.host.ns, &probe).await.is_err() {
                if started.elapsed() > READY {
                    return Err(ProcError::NotReady { name });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(Node { spec, child, log })
    }

    /// Its pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, `TERM`) to it.
    pub async fn signal(&self, signal: &str) -> Result<(), net::NetError> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        net::run("kill", &[&format!("-{signal}"), &pid.to_string()])
            .await
            .map(|_| ())
    }

    /// SIGKILL, and waits for it to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Waits up to `within` for it to exit by itself; whether it did.
    pub async fn exited(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.child.wait())
            .await
            .is_ok()
    }

    /// SIGTERM, a second SIGTERM a moment later (a `play-node` draining on the first stops
    /// at the second), then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let _ = self.signal("CONT").await;
        let _ = self.signal("TERM").await;
        if self.exited(Duration::from_millis(300)).await {
            return;
        }
        let _ = self.signal("TERM").await;
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.kill().await;
        }
    }

    /// Waits for it to exit by itself (the driver does at the end of its run).
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Kills it and starts the same spec again.
    pub async fn restart(&mut self, out: &Path) -> Result<(), ProcError> {
        self.kill().await;
        let fresh = Node::start(self.spec.clone(), out).await?;
        *self = fresh;
        Ok(())
    }
}
