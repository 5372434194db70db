//! Invariant bookkeeping shared by scenarios.
//!
//! * [`Ledger`]: what a client knows about each operation it sent (acknowledged in which
//!   stage incarnation, failed, or unknown), compared with what the stage holds: nothing
//!   acknowledged is lost, nothing is duplicated, nothing appears that was never sent.
//! * [`MeshTally`]: outcomes of mesh requests, with the codes allowed in each phase.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use playhouse::ErrorCode;

/// The fate of every operation one client (or server) sent.
///
/// Operations whose outcome the sender cannot know (one-way, or a request that timed out)
/// are attributed to the *epoch* they were sent in: one connection (a login of a game
/// client, an unbroken mesh connection of a server). While the epoch lasts they are
/// *required*: the stage must hold each exactly once when a dump sent later on the same
/// epoch answers (the dump travels behind them, in order). When the epoch ends with a
/// disconnect they become *maybe*: held at most once, or missing.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Acknowledged (or verified) operations by the stage incarnation that holds them.
    acked: BTreeMap<String, BTreeSet<u64>>,
    /// Outcome unknown, sent in the current epoch: must arrive unless the epoch ends.
    required: BTreeSet<u64>,
    /// Outcome unknown, sent in an epoch that ended: may or may not have been applied.
    maybe: BTreeSet<u64>,
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

    /// Operation `n` was sent on the current epoch with no answer (one-way, or a request
    /// that timed out): it must be applied exactly once unless the epoch ends.
    pub fn unanswered(&mut self, n: u64) {
        self.required.insert(n);
    }

    /// Operation `n` may or may not have been applied (its connection was lost).
    pub fn unknown(&mut self, n: u64) {
        self.maybe.insert(n);
    }

    /// The current epoch ended with a disconnect: its unanswered operations may be missing.
    pub fn epoch_ended(&mut self) {
        self.maybe.append(&mut self.required);
    }

    /// Operation `n` was refused with `code`.
    pub fn failed(&mut self, n: u64, code: u16) {
        self.failed.insert(n, code);
    }

    /// Operations acknowledged in all.
    pub fn acked_count(&self) -> usize {
        self.acked.values().map(BTreeSet::len).sum()
    }

    /// Operations still required of the current epoch.
    pub fn required_count(&self) -> usize {
        self.required.len()
    }

    /// Compares what stage incarnation `incarnation` holds with the ledger; returns every
    /// discrepancy. `epoch_intact`: the dump was answered on the epoch every required
    /// operation was sent on, by the incarnation that epoch is attached to, so each must be
    /// held; they then count as acknowledged by `incarnation` (later dumps must still hold
    /// them). Otherwise the required operations are not judged.
    pub fn compare(&mut self, incarnation: &str, held: &[u64], epoch_intact: bool) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for n in held {
            if !seen.insert(*n) {
                problems.push(format!("op {n} applied twice in {incarnation}"));
            }
            let acked_here = self.acked.get(incarnation).is_some_and(|a| a.contains(n));
            if !acked_here && !self.maybe.contains(n) && !self.required.contains(n) {
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
        if epoch_intact {
            let missing: Vec<u64> = self.required.difference(&seen).copied().collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "ops sent on a connection that never dropped missing from {incarnation}: {missing:?}"
                ));
            }
            let required = std::mem::take(&mut self.required);
            let (arrived, missing): (BTreeSet<u64>, BTreeSet<u64>) =
                required.into_iter().partition(|n| seen.contains(n));
            self.acked
                .entry(incarnation.to_owned())
                .or_default()
                .extend(arrived);
            // Reported once; judged no further.
            self.maybe.extend(missing);
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
        assert!(ledger.compare("a", &[1, 2, 3], true).is_empty());
        assert!(
            ledger.compare("a", &[1, 2], true).is_empty(),
            "unknown may be missing"
        );
        let problems = ledger.compare("a", &[1, 1, 4, 9], true);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(
            ledger.compare("b", &[], true).is_empty(),
            "acked in another incarnation"
        );
        assert_eq!(ledger.acked_count(), 2);
    }

    #[test]
    fn unanswered_ops_are_required_until_their_epoch_ends() {
        let mut ledger = Ledger::default();
        ledger.unanswered(1);
        ledger.unanswered(2);
        assert!(ledger.compare("a", &[1], false).is_empty(), "not judged");
        let problems = ledger.compare("a", &[1], true);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("[2]"), "{problems:?}");
        // 1 now counts as held by `a`; 2 was reported once.
        assert_eq!(ledger.compare("a", &[], true).len(), 1);
        ledger.unanswered(3);
        ledger.epoch_ended();
        assert!(ledger.compare("b", &[], true).is_empty(), "may be missing");
        assert!(ledger.compare("b", &[3], true).is_empty(), "or there");
    }
}
