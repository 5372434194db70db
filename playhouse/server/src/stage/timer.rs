//! Stage timers: repeat and count timers on the stage's own loop, driven by `tokio::time`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// Identifies a stage timer; returned by `add_repeat_timer` / `add_count_timer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);

impl TimerId {
    /// The raw id (unique within its stage).
    pub fn get(self) -> u64 {
        self.0
    }
}

struct Entry<C> {
    deadline: Instant,
    period: Duration,
    /// `None` repeats forever.
    remaining: Option<u32>,
    /// Taken out while the callback runs, so the callback can use the stage context.
    callback: Option<C>,
}

/// Timers keyed by deadline. Cancelled timers leave a stale queue entry that is skipped.
pub(crate) struct Timers<C> {
    next_id: u64,
    entries: HashMap<u64, Entry<C>>,
    queue: BTreeSet<(Instant, u64)>,
}

impl<C> Default for Timers<C> {
    fn default() -> Self {
        Timers {
            next_id: 1,
            entries: HashMap::new(),
            queue: BTreeSet::new(),
        }
    }
}

impl<C> fmt::Debug for Timers<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers")
            .field("active", &self.entries.len())
            .finish()
    }
}

impl<C> Timers<C> {
    /// Adds a timer first due after `initial`, then every `period`; `count` limits the runs.
    pub(crate) fn add(
        &mut self,
        now: Instant,
        initial: Duration,
        period: Duration,
        count: Option<u32>,
        callback: C,
    ) -> TimerId {
        let id = self.next_id;
        self.next_id += 1;
        if count == Some(0) {
            return TimerId(id);
        }
        // A zero period would spin the stage loop.
        let period = period.max(Duration::from_millis(1));
        let deadline = now + initial;
        self.entries.insert(
            id,
            Entry {
                deadline,
                period,
                remaining: count,
                callback: Some(callback),
            },
        );
        self.queue.insert((deadline, id));
        TimerId(id)
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        match self.entries.remove(&id.0) {
            Some(entry) => {
                self.queue.remove(&(entry.deadline, id.0));
                true
            }
            None => false,
        }
    }

    pub(crate) fn contains(&self, id: TimerId) -> bool {
        self.entries.contains_key(&id.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.queue.first().map(|(deadline, _)| *deadline)
    }

    /// Takes the callback of the earliest timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerId, C)> {
        loop {
            let &(deadline, id) = self.queue.first()?;
            if deadline > now {
                return None;
            }
            self.queue.pop_first();
            if let Some(callback) = self.entries.get_mut(&id).and_then(|e| e.callback.take()) {
                return Some((TimerId(id), callback));
            }
        }
    }

    /// Puts a fired timer's callback back and schedules its next run, unless it was cancelled
    /// meanwhile or has run its count.
    pub(crate) fn rearm(&mut self, id: TimerId, callback: C) {
        let Some(entry) = self.entries.get_mut(&id.0) else {
            return;
        };
        if let Some(remaining) = entry.remaining.as_mut() {
            *remaining -= 1;
            if *remaining == 0 {
                self.entries.remove(&id.0);
                return;
            }
        }
        entry.deadline += entry.period;
        entry.callback = Some(callback);
        self.queue.insert((entry.deadline, id.0));
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn count_timer_runs_exactly_count_times() {
        let mut timers = Timers::default();
        let start = Instant::now();
        let id = timers.add(
            start,
            Duration::from_millis(10),
            Duration::from_millis(5),
            Some(3),
            (),
        );
        let mut fired = Vec::new();
        let mut now = start;
        for _ in 0..100 {
            now += Duration::from_millis(1);
            while let Some((fired_id, cb)) = timers.pop_due(now) {
                fired.push(now - start);
                timers.rearm(fired_id, cb);
            }
        }
        assert_eq!(
            fired,
            [10, 15, 20].map(Duration::from_millis).to_vec(),
            "three runs at the initial delay, then every period"
        );
        assert!(!timers.contains(id));
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_a_repeat_timer_even_while_it_runs() {
        let mut timers = Timers::default();
        let now = Instant::now();
        let a = timers.add(now, Duration::ZERO, Duration::from_millis(1), None, 'a');
        let b = timers.add(
            now,
            Duration::from_millis(2),
            Duration::from_millis(1),
            None,
            'b',
        );
        assert!(timers.has_both(a, b));
        let (id, cb) = timers.pop_due(now).unwrap();
        assert_eq!((id, cb), (a, 'a'));
        assert!(timers.cancel(a), "cancel from inside the callback");
        timers.rearm(a, cb);
        assert!(!timers.contains(a));
        assert!(timers.cancel(b));
        assert_eq!(timers.next_deadline(), None);
        assert!(!timers.cancel(b));
    }

    impl<C> Timers<C> {
        fn has_both(&self, a: TimerId, b: TimerId) -> bool {
            self.contains(a) && self.contains(b) && self.len() == 2
        }
    }
}
