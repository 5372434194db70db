//! Invariant bookkeeping shared by scenarios.
//!
//! * [`Ledger`]: what a client knows about each operation it sent (acknowledged in which
//!   stage incarnation, failed, or unknown), compared with what the stage holds: nothing
//!   acknowledged is lost, nothing is duplicated, nothing appears that was never sent.
//! * [`MeshTally`]: outcomes of mesh requests, with the codes allowed in each phase.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use playhouse::ErrorCode;

/// The fate of every operation one client sent.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Acknowledged operations by the stage incarnation that acknowledged them.
    acked: BTreeMap<String, BTreeSet<u64>>,
    /// Sent, outcome unknown (one-way, timed out, connection lost).
    unknown: BTreeSet<u64>,
    /// Refused with an error code (never applied).
    failed: BTreeMap<u64, u16>,
}

impl Ledger {
    /// Operation `n` was acknowledged by stage incarnation `incarnation`.
    pub fn acked(&mut self, incarnation: &str, n: u64) {
        self.acked
            .entry(incarnation.to_owned())
            .or_default()
            .insert(n);
    }

    /// Operation `n` may or may not have been applied.
    pub fn unknown(&mut self, n: u64) {
        self.unknown.insert(n);
    }

    /// Operation `n` was refused with `code`.
    pub fn failed(&mut self, n: u64, code: u16) {
        self.failed.insert(n, code);
    }

    /// Operations acknowledged in all.
    pub fn acked_count(&self) -> usize {
        self.acked.values().map(BTreeSet::len).sum()
    }

    /// Compares what stage incarnation `incarnation` holds with the ledger; returns every
    /// discrepancy.
    pub fn compare(&self, incarnation: &str, held: &[u64]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for n in held {
            if !seen.insert(*n) {
                problems.push(format!("op {n} applied twice in {incarnation}"));
            }
            let acked_here = self.acked.get(incarnation).is_some_and(|a| a.contains(n));
            if !acked_here && !self.unknown.contains(n) {
                let why = match self.failed.get(n) {
                    Some(code) => format!("refused with {code}"),
                    None => "never sent or acknowledged elsewhere".to_owned(),
                };
                problems.push(format!("op {n} held by {incarnation} but {why}"));
            }
        }
        if let Some(acked) = self.acked.get(incarnation) {
            let lost: Vec<u64> = acked.difference(&seen).copied().collect();
            if !lost.is_empty() {
                problems.push(format!("acknowledged ops lost by {incarnation}: {lost:?}"));
            }
        }
        if !held.windows(2).all(|w| w[0] < w[1]) {
            problems.push(format!("{incarnation} applied ops out of order: {held:?}"));
        }
        problems
    }
}

/// Outcomes of mesh requests by error code (0: success).
#[derive(Debug, Default, Clone)]
pub struct MeshTally {
    counts: BTreeMap<u16, u64>,
}

impl MeshTally {
    /// Counts one outcome.
    pub fn add(&mut self, code: ErrorCode) {
        *self.counts.entry(code.0).or_default() += 1;
    }

    /// Requests that succeeded.
    pub fn ok(&self) -> u64 {
        self.counts.get(&0).copied().unwrap_or(0)
    }

    /// Requests that failed.
    pub fn failed(&self) -> u64 {
        self.counts
            .iter()
            .filter(|(code, _)| **code != 0)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests that ended with `code`.
    pub fn count(&self, code: ErrorCode) -> u64 {
        self.counts.get(&code.0).copied().unwrap_or(0)
    }

    /// `code=count` pairs, for the trace.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (code, n) in &self.counts {
            let _ = write!(out, "{code}={n} ");
        }
        out.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_finds_loss_duplicates_and_strangers() {
        let mut ledger = Ledger::default();
        ledger.acked("a", 1);
        ledger.acked("a", 2);
        ledger.unknown(3);
        ledger.failed(4, 3);
        assert!(ledger.compare("a", &[1, 2, 3]).is_empty());
        assert!(
            ledger.compare("a", &[1, 2]).is_empty(),
            "unknown may be missing"
        );
        let problems = ledger.compare("a", &[1, 1, 4, 9]);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(
            ledger.compare("b", &[]).is_empty(),
            "acked in another incarnation"
        );
        assert_eq!(ledger.acked_count(), 2);
    }
}
