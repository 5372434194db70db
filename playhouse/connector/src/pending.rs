//! Requests awaiting their reply: sequence numbers and deadlines, with no I/O and no clock of
//! its own (the caller passes `now`), so it is tested with plain values.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use tokio::time::Instant;

/// Most requests in flight at once: every non-zero `u16` sequence number.
pub(crate) const MAX_PENDING: usize = u16::MAX as usize;

/// In-flight requests keyed by their sequence number (1..=65535, wrapping, skipping 0 and any
/// still in use), each with a deadline.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    entries: HashMap<u16, Entry<T>>,
    /// Deadlines, soonest first. Entries answered early stay here until they surface or the heap
    /// is compacted; `id` tells a stale one from a newer request reusing its `seq`.
    deadlines: BinaryHeap<Reverse<(Instant, u64, u16)>>,
    next_seq: u16,
    next_id: u64,
}

#[derive(Debug)]
struct Entry<T> {
    id: u64,
    value: T,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            entries: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_seq: 1,
            next_id: 0,
        }
    }
}

impl<T> Pending<T> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Registers a request, returning its sequence number, or hands `value` back when every
    /// sequence number is in use.
    pub(crate) fn insert(&mut self, value: T, deadline: Instant) -> Result<u16, T> {
        if self.entries.len() >= MAX_PENDING {
            return Err(value);
        }
        // Terminates: fewer than 65535 entries, so some non-zero seq is free.
        let seq = loop {
            let seq = self.next_seq;
            self.next_seq = match seq.wrapping_add(1) {
                0 => 1,
                next => next,
            };
            if !self.entries.contains_key(&seq) {
                break seq;
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(seq, Entry { id, value });
        self.deadlines.push(Reverse((deadline, id, seq)));
        Ok(seq)
    }

    /// Takes the request a reply with this `seq` answers, if it is still pending.
    pub(crate) fn remove(&mut self, seq: u16) -> Option<T> {
        let entry = self.entries.remove(&seq)?;
        // Bound the stale deadlines left behind by early replies.
        if self.deadlines.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.deadlines
                .retain(|Reverse((_, id, seq))| entries.get(seq).is_some_and(|e| e.id == *id));
        }
        Some(entry.value)
    }

    fn is_live(&self, id: u64, seq: u16) -> bool {
        self.entries.get(&seq).is_some_and(|entry| entry.id == id)
    }

    /// The earliest deadline of a request still pending.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, id, seq))) = self.deadlines.peek().copied() {
            if self.is_live(id, seq) {
                return Some(deadline);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Removes and returns one request whose deadline is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<T> {
        loop {
            let Reverse((deadline, id, seq)) = *self.deadlines.peek()?;
            if deadline > now {
                return None;
            }
            self.deadlines.pop();
            if self.is_live(id, seq) {
                return self.entries.remove(&seq).map(|entry| entry.value);
            }
        }
    }

    /// Removes every request, oldest first (not the map's random order: callers fail them
    /// in this order, and a simulation must see the same order every run).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.deadlines.clear();
        let mut entries: Vec<Entry<T>> = self.entries.drain().map(|(_, entry)| entry).collect();
        entries.sort_unstable_by_key(|entry| entry.id);
        entries.into_iter().map(|entry| entry.value)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn sequence_numbers_start_at_one_and_wrap_past_zero() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        assert_eq!(pending.insert("a", t0), Ok(1));
        assert_eq!(pending.insert("b", t0), Ok(2));
        assert_eq!(pending.remove(1), Some("a"));
        assert_eq!(pending.remove(2), Some("b"));
        assert_eq!(pending.remove(2), None);
        for expected in 3..=u16::MAX {
            let seq = pending.insert("x", t0).unwrap();
            assert_eq!(seq, expected);
            pending.remove(seq);
        }
        // 0 is skipped.
        assert_eq!(pending.insert("wrapped", t0), Ok(1));
    }

    #[test]
    fn sequence_numbers_still_pending_are_skipped() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        assert_eq!(pending.insert("held", t0), Ok(1));
        for _ in 2..=u16::MAX {
            let seq = pending.insert("x", t0).unwrap();
            pending.remove(seq);
        }
        assert_eq!(pending.insert("next", t0), Ok(2));
        assert_eq!(pending.remove(1), Some("held"));
    }

    #[test]
    fn a_full_table_hands_the_request_back() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        for _ in 0..MAX_PENDING {
            pending.insert(0u8, t0).unwrap();
        }
        assert_eq!(pending.insert(7u8, t0), Err(7));
        pending.remove(100);
        assert_eq!(pending.insert(7u8, t0), Ok(100));
    }

    #[test]
    fn expiry_follows_deadlines_and_skips_answered_requests() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        let late = pending.insert("late", t0 + secs(30)).unwrap();
        let early = pending.insert("early", t0 + secs(10)).unwrap();
        let answered = pending.insert("answered", t0 + secs(5)).unwrap();
        assert_eq!(pending.next_deadline(), Some(t0 + secs(5)));
        assert_eq!(pending.remove(answered), Some("answered"));
        assert_eq!(pending.next_deadline(), Some(t0 + secs(10)));
        assert_eq!(pending.pop_expired(t0 + secs(9)), None);
        assert_eq!(pending.pop_expired(t0 + secs(10)), Some("early"));
        assert_eq!(pending.pop_expired(t0 + secs(10)), None);
        assert_eq!(pending.remove(early), None, "an expired request is gone");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending.pop_expired(t0 + secs(60)), Some("late"));
        assert_eq!(pending.remove(late), None);
        assert_eq!(pending.next_deadline(), None);
    }

    #[test]
    fn a_reused_seq_keeps_its_own_deadline() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        let seq = pending.insert("first", t0 + secs(1)).unwrap();
        pending.remove(seq);
        // Walk the counter round so the same seq is handed out again.
        for _ in 0..u16::MAX - 1 {
            let s = pending.insert("x", t0).unwrap();
            pending.remove(s);
        }
        assert_eq!(pending.insert("second", t0 + secs(100)), Ok(seq));
        assert_eq!(pending.pop_expired(t0 + secs(50)), None);
        assert_eq!(pending.next_deadline(), Some(t0 + secs(100)));
    }

    #[test]
    fn stale_deadlines_stay_bounded() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        for _ in 0..100_000 {
            let seq = pending.insert((), t0 + secs(30)).unwrap();
            pending.remove(seq);
        }
        assert!(
            pending.deadlines.len() <= 64 + 1,
            "{}",
            pending.deadlines.len()
        );
    }

    /// With live requests held, stale deadlines may pile up only to twice the live ones plus
    /// 64 (checked after every reply); they are left to accumulate that far rather than
    /// swept on every reply (sweeping is linear), and a sweep keeps every live deadline.
    #[test]
    fn a_sweep_keeps_live_deadlines_and_runs_only_past_the_bound() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        let held: Vec<u16> = (0..10u64)
            .map(|n| pending.insert(n, t0 + secs(100 + n)).unwrap())
            .collect();
        let bounded = |pending: &Pending<u64>| {
            let (stale, live) = (pending.deadlines.len(), pending.len());
            assert!(
                stale <= 2 * live + 64,
                "{stale} deadlines for {live} requests"
            );
        };
        let mut replies = 0;
        // Early replies until the heap holds an odd number of deadlines past 70.
        while pending.deadlines.len() % 2 == 0 || pending.deadlines.len() <= 70 {
            let seq = pending.insert(99, t0 + secs(1)).unwrap();
            assert_eq!(pending.remove(seq), Some(99));
            bounded(&pending);
            replies += 1;
            assert!(
                replies < 1000,
                "stale deadlines never accumulate: swept on every reply"
            );
        }
        // Each answer to a held request lowers the bound by two.
        for &seq in &held[..9] {
            assert!(pending.remove(seq).is_some());
            bounded(&pending);
        }
        assert_eq!(pending.next_deadline(), Some(t0 + secs(109)));
        assert_eq!(pending.pop_expired(t0 + secs(109)), Some(9));
        assert_eq!(pending.len(), 0);
    }

    /// The sweep is linear in the heap, so it waits until stale deadlines outnumber live
    /// ones (plus 64): with many requests in flight, each early reply costs amortised
    /// constant time, not a sweep of every live deadline.
    #[test]
    fn with_many_requests_in_flight_the_sweep_waits_for_as_many_stale_deadlines() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        for n in 0..1000u32 {
            pending.insert(n, t0 + secs(100)).unwrap();
        }
        for _ in 0..1000 {
            let seq = pending.insert(0, t0 + secs(1)).unwrap();
            pending.remove(seq);
        }
        assert_eq!(pending.deadlines.len(), 2000, "swept before the bound");
        for _ in 0..65 {
            let seq = pending.insert(0, t0 + secs(1)).unwrap();
            pending.remove(seq);
        }
        assert_eq!(pending.deadlines.len(), 1000, "not swept past the bound");
    }

    #[test]
    fn drain_empties_everything() {
        let t0 = Instant::now();
        let mut pending = Pending::default();
        for value in [3, 1, 2] {
            pending.insert(value, t0).unwrap();
        }
        let all: Vec<_> = pending.drain().collect();
        assert_eq!(all, vec![3, 1, 2], "oldest first");
        assert_eq!(pending.len(), 0);
        assert_eq!(pending.next_deadline(), None);
    }
}
