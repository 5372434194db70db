//! What the checker found: a row per fault (its operations, outcomes and timings) and the
//! violations, each in the row of its time ([`crate::check`], [`crate::moves`]).

use std::collections::BTreeMap;

/// One broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The row it belongs to.
    pub segment: usize,
    /// Which check.
    pub check: &'static str,
    /// What was seen.
    pub detail: String,
}

/// One row of the summary.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// `baseline` or `<id> <kind> <target>`.
    pub name: String,
    /// When it starts (ms).
    pub from: u64,
    /// The fault's heal time, if any.
    pub healed: Option<u64>,
    /// The fault's target.
    pub target: String,
    /// The fault's kind.
    pub kind: String,
    /// Operations started in it.
    pub ops: u64,
    /// Of which succeeded.
    pub ok: u64,
    /// Failures by wire code (or transport error).
    pub failed: BTreeMap<String, u64>,
    /// First failed mesh request to the target after the fault, in ms after it.
    pub detect_ms: Option<u64>,
    /// First client connection seen dropping after the fault (a Connector's `reconnecting` or
    /// `disconnect`), in ms after it.
    pub client_detect_ms: Option<u64>,
    /// Slowest recovery after the heal, in ms.
    pub recover_ms: Option<u64>,
    /// A drain: the last resumable session to follow its room, in ms after the SIGTERM.
    pub follow_ms: Option<u64>,
    /// Resumable sessions resumed (`resumed`), lost (`lost`), and plain connections dropped
    /// (`disconnect`), by the time they happened; for a drain, sessions that followed their
    /// room (`moved`) and plain connections closed with 25 StageDrained (`drained`).
    pub sessions: BTreeMap<&'static str, u64>,
    /// Violations counted.
    pub violations: u64,
}

/// The checker's verdict.
#[derive(Debug, Default)]
pub struct Report {
    /// One row per fault, after the baseline.
    pub rows: Vec<Row>,
    /// Every violation.
    pub violations: Vec<Violation>,
}

/// A fault of the history: applied, healed, id, kind, target.
pub type Fault = (u64, u64, u64, String, String);

impl Report {
    /// The row time `t` falls in.
    pub(crate) fn segment(&self, t: u64) -> usize {
        self.rows.iter().rposition(|r| r.from <= t).unwrap_or(0)
    }

    /// Records a violation of `check` at time `t`.
    pub(crate) fn violate(&mut self, t: u64, check: &'static str, detail: String) {
        let segment = self.segment(t);
        self.rows[segment].violations += 1;
        self.violations.push(Violation {
            segment,
            check,
            detail,
        });
    }

    /// Counts an operation started at `t`, and its failure if it failed.
    pub(crate) fn outcome(&mut self, t: u64, failure: Option<String>) {
        let segment = self.segment(t);
        let row = &mut self.rows[segment];
        row.ops += 1;
        match failure {
            None => row.ok += 1,
            Some(why) => *row.failed.entry(why).or_default() += 1,
        }
    }
}
