//! The example processes (`play-node`, `api-node`) started as children of a test, with a
//! Redis directory under a prefix of their own. Not every test binary uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a node may take to start, a stage to be created, a node to exit.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

pub(crate) fn redis_url() -> String {
    std::env::var("PLAYHOUSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A child process that is killed when dropped.
pub(crate) struct Node {
    pub(crate) child: Child,
    /// The JSON line it printed once ready (`tcp`, `http`, `admin`, `mesh`).
    pub(crate) endpoints: Value,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// The endpoint named `name` in the node's ready line.
    pub(crate) fn endpoint(&self, name: &str) -> String {
        self.endpoints[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} endpoint in {}", self.endpoints))
            .to_owned()
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// Waits for the node to exit by itself; its exit status.
    pub(crate) async fn exits(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "the node did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Starts `bin` as server `id` in the directory under `prefix`, with extra environment
/// variables; returns once it printed its endpoints. API nodes create stages on `play-1`.
pub(crate) fn start_with(bin: &str, id: &str, prefix: &str, extra: &[(&str, &str)]) -> Node {
    let mut child = Command::new(bin)
        .envs(extra.iter().copied())
        .env("PLAYHOUSE_SERVER_ID", id)
        .env("PLAYHOUSE_REDIS_URL", redis_url())
        .env("PLAYHOUSE_REDIS_PREFIX", prefix)
        .env("PLAYHOUSE_PLAY_ID", "play-1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the node");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(WAIT)
        .expect("the node printed no endpoints");
    let endpoints: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
        panic!("{bin} did not start (is Redis up? run `bash ci/redis.sh`): {line:?}")
    });
    Node { child, endpoints }
}

/// [`start_with`] with no extra variables.
pub(crate) fn start(bin: &str, id: &str, prefix: &str) -> Node {
    start_with(bin, id, prefix, &[])
}

/// A directory prefix no other test run shares.
pub(crate) fn fresh_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("playhouse:test:{}:{nanos}:", std::process::id())
}

/// Creates a stage of `stage_type` through the API node's HTTP at `http`, retrying while
/// the mesh is still connecting; the reply's body.
pub(crate) async fn create_stage(http: &str, stage_type: &str, stage_id: i64) -> Value {
    let body = serde_json::json!({"stage_type": stage_type, "stage_id": stage_id});
    let started = Instant::now();
    loop {
        let (status, reply) = super::http(http, "POST", "/api/stages", Some(&body)).await;
        if status == 200 {
            return reply;
        }
        assert!(
            started.elapsed() < WAIT,
            "stage never created: {status} {reply}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
