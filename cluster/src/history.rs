//! The history: one JSON line per operation and fault, with wall-clock times in milliseconds
//! (the orchestrator and the driver run on one machine, so their clocks agree).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One entry of the history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Record {
    /// A player logged in: epoch `epoch` of `player` starts (a new connection, or a new
    /// session for a resumable client).
    Login {
        /// The player's name (its account id).
        player: String,
        /// Counts the player's logins from 1.
        epoch: u64,
        /// Whether its session is resumable.
        resumable: bool,
        /// The Play server it logged in to.
        play: String,
        /// The stage it joined.
        stage: i64,
        /// When.
        t: u64,
    },
    /// A request `Add` (tag `seq`) and its outcome.
    Add {
        /// The player.
        player: String,
        /// Its epoch.
        epoch: u64,
        /// The message's sequence number in the epoch (its tag).
        seq: u64,
        /// When it was sent.
        sent: u64,
        /// When the outcome came.
        done: u64,
        /// The player tally of the reply, when it succeeded.
        ptally: Option<u64>,
        /// The wire error code, when it failed.
        code: Option<u16>,
    },
    /// A one-way `Bump` (tag `seq`); `code` when the send itself failed (not sent).
    Bump {
        /// The player.
        player: String,
        /// Its epoch.
        epoch: u64,
        /// The message's sequence number in the epoch (its tag).
        seq: u64,
        /// When it was sent.
        sent: u64,
        /// The wire error code of a failed send.
        code: Option<u16>,
    },
    /// The push `Bumped` answering the `Bump` tagged `seq`.
    Push {
        /// The player.
        player: String,
        /// Its epoch.
        epoch: u64,
        /// The tag it carries.
        seq: u64,
        /// The player tally it carries.
        ptally: u64,
        /// When it arrived.
        t: u64,
    },
    /// A connection or session event: `disconnect`, `reconnecting`, `resumed`, `lost`,
    /// `closing` (the player leaves).
    Session {
        /// The player.
        player: String,
        /// Its epoch.
        epoch: u64,
        /// What happened.
        event: String,
        /// When.
        t: u64,
    },
    /// A resumable session followed its room to another Play server (`SessionEvent::Moved`).
    Moved {
        /// The player.
        player: String,
        /// Its epoch.
        epoch: u64,
        /// The Play server it follows its room to.
        to: String,
        /// When.
        t: u64,
    },
    /// A player's connection (or session) ended without the player leaving: the wire code
    /// the Connector gives for it (25 StageDrained for a close at a drain's deadline).
    Ended {
        /// The player.
        player: String,
        /// Its epoch.
        epoch: u64,
        /// The code of using the connection after its end.
        code: u16,
        /// When.
        t: u64,
    },
    /// A request `Ask`: the player's room asks another room over the mesh (a stage-to-stage
    /// request) and replies with its answer.
    Ask {
        /// The player.
        player: String,
        /// Its epoch.
        epoch: u64,
        /// The tag the request carries (counts the player's asks in the epoch).
        tag: u64,
        /// The Play server of the room asked, as the driver last knew it.
        play: String,
        /// The room asked.
        stage: i64,
        /// When it was sent.
        sent: u64,
        /// When the outcome came.
        done: u64,
        /// The stage id the answer names (when it succeeded and carried the tag back).
        answered: Option<i64>,
        /// The wire error code, when it failed.
        code: Option<u16>,
    },
    /// The stages a Play server listed (`GET /admin/state`).
    Stages {
        /// The Play server.
        play: String,
        /// Their ids.
        ids: Vec<i64>,
        /// When the answer came.
        t: u64,
    },
    /// An HTTP call to the API server: `get_or_create` or `request` (a mesh request to a
    /// stage).
    Http {
        /// `get_or_create`, `race` (a get-or-create racing others for a fresh id), or
        /// `request`.
        op: String,
        /// The Play server named.
        play: String,
        /// The stage id.
        stage: i64,
        /// When it was sent.
        sent: u64,
        /// When the outcome came.
        done: u64,
        /// The HTTP status (0: no HTTP answer, see `error`).
        status: u16,
        /// `created` of a get-or-create that succeeded.
        created: Option<bool>,
        /// The PlayHouse error code of a 502.
        code: Option<u16>,
        /// What went wrong below HTTP (connect refused, timed out).
        error: Option<String>,
    },
    /// A fault, applied and healed.
    Fault {
        /// Its number in the schedule.
        id: u64,
        /// Its kind (see `faults::Kind`).
        kind: String,
        /// The node it hit.
        target: String,
        /// When it was applied.
        applied: u64,
        /// When it was healed.
        healed: u64,
    },
}

/// Appends records to a file; shared by the tasks of one process.
#[derive(Debug)]
pub struct Writer(Mutex<BufWriter<File>>);

impl Writer {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<Writer> {
        Ok(Writer(Mutex::new(BufWriter::new(File::create(path)?))))
    }

    /// Appends one record.
    pub fn write(&self, record: &Record) {
        let line = serde_json::to_string(record).expect("a record serializes");
        let mut out = self.0.lock().expect("history lock");
        // A full disk ends the run's value anyway; the checker reports a short history.
        let _ = writeln!(out, "{line}");
    }

    /// Writes everything buffered to the file.
    pub fn flush(&self) -> std::io::Result<()> {
        self.0.lock().expect("history lock").flush()
    }
}

/// Reads every record of the history files `paths`.
pub fn read(paths: &[&Path]) -> std::io::Result<Vec<Record>> {
    let mut records = Vec::new();
    for path in paths {
        for line in BufReader::new(File::open(path)?).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let record = serde_json::from_str(&line)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            records.push(record);
        }
    }
    Ok(records)
}
