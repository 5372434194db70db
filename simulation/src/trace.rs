//! The event trace: what clients (game clients, API workloads) saw, stamped with simulated
//! time, plus every invariant violation. Its FNV-1a hash is the run's fingerprint: the same
//! seed must give the same hash on every run.

use std::fmt::{self, Display};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// FNV-1a, 64 bits: a fixed hasher (no per-process random keys).
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Feeds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// Simulated time since the simulation started (zero outside a simulation).
pub fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

#[derive(Debug, Default)]
struct Inner {
    lines: Vec<String>,
    violations: Vec<String>,
    hash: Fnv64,
}

/// A shared, append-only trace. Cheap to clone; usable from any simulated host and from
/// connector callbacks (`Send + Sync`).
#[derive(Clone, Debug, Default)]
pub struct Trace {
    inner: Arc<Mutex<Inner>>,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Trace::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: String) {
        let mut inner = self.lock();
        inner.hash.write(line.as_bytes());
        inner.hash.write(b"\n");
        inner.lines.push(line);
    }

    /// Records that `who` saw `what` now.
    pub fn record(&self, who: &str, what: impl Display) {
        self.push(format!("{:>7} {who} {what}", now().as_millis()));
    }

    /// Records a broken invariant: the run fails.
    pub fn violation(&self, who: &str, what: impl Display) {
        let line = format!("{:>7} {who} VIOLATION {what}", now().as_millis());
        self.lock().violations.push(line.clone());
        self.push(line);
    }

    /// Checks `holds`, recording `what` as a violation when it does not.
    pub fn check(&self, who: &str, holds: bool, what: impl FnOnce() -> String) -> bool {
        if !holds {
            self.violation(who, what());
        }
        holds
    }

    /// Every violation so far.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// The hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.lock().hash.finish()
    }

    /// How many lines were recorded.
    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last `n` lines (for a failure report).
    pub fn tail(&self, n: usize) -> Vec<String> {
        let inner = self.lock();
        inner.lines[inner.lines.len().saturating_sub(n)..].to_vec()
    }

    /// Every line.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }
}

/// A trace hash as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHash(pub u64);

impl Display for TraceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        let hash = |s: &str| {
            let mut h = Fnv64::default();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn violations_are_lines_too() {
        let trace = Trace::new();
        trace.record("c1", "hello");
        let before = trace.hash();
        assert!(!trace.check("c1", false, || "bad".into()));
        assert_eq!(trace.violations().len(), 1);
        assert_eq!(trace.len(), 2);
        assert_ne!(trace.hash(), before);
        assert_eq!(TraceHash(255).to_string(), "00000000000000ff");
    }
}
