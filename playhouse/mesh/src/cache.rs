//! Pending requests by sequence. Every entry ends exactly once: reply, error, timeout or
//! cancellation; a reply that finds no entry is late and only counted.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::MeshError;
use crate::route::RoutePacket;

type Waiter = oneshot::Sender<Result<RoutePacket, MeshError>>;

struct Entry {
    target: Arc<str>,
    waiter: Waiter,
}

/// Requests awaiting replies, keyed by a u32 sequence per server (wrapping, skipping 0 and
/// sequences still in use).
pub struct RequestCache {
    next: AtomicU32,
    pending: Mutex<HashMap<u32, Entry>>,
    late_replies: AtomicU64,
    max_pending: usize,
}

impl fmt::Debug for RequestCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestCache")
            .field("pending", &self.in_flight())
            .field("late_replies", &self.late_replies())
            .finish()
    }
}

impl RequestCache {
    /// A cache holding at most `max_pending` requests at once.
    pub fn new(max_pending: usize) -> Self {
        RequestCache {
            next: AtomicU32::new(1),
            pending: Mutex::new(HashMap::new()),
            late_replies: AtomicU64::new(0),
            max_pending,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Entry>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a request to `target`; `None` when `max_pending` requests are already in
    /// flight.
    pub fn register(
        &self,
        target: &str,
    ) -> Option<(u32, oneshot::Receiver<Result<RoutePacket, MeshError>>)> {
        let mut pending = self.lock();
        if pending.len() >= self.max_pending {
            return None;
        }
        let seq = loop {
            let seq = self.next.fetch_add(1, Ordering::Relaxed);
            if seq != 0 && !pending.contains_key(&seq) {
                break seq;
            }
        };
        let (tx, rx) = oneshot::channel();
        pending.insert(
            seq,
            Entry {
                target: Arc::from(target),
                waiter: tx,
            },
        );
        Some((seq, rx))
    }

    /// Completes a request; `false` (and counted) when it already ended.
    pub fn complete(&self, seq: u32, result: Result<RoutePacket, MeshError>) -> bool {
        match self.lock().remove(&seq) {
            Some(entry) => {
                let _ = entry.waiter.send(result);
                true
            }
            None => {
                self.late_replies.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Forgets a request (timed out or abandoned) without counting anything.
    pub fn forget(&self, seq: u32) {
        self.lock().remove(&seq);
    }

    /// Fails every pending request (shutdown).
    pub fn fail_all(&self, error: MeshError) {
        let mut drained: Vec<_> = self.lock().drain().collect();
        // In sequence order (the map's order is random): the waiters wake in a fixed order.
        drained.sort_unstable_by_key(|(seq, _)| *seq);
        for (_, entry) in drained {
            let _ = entry.waiter.send(Err(error.clone()));
        }
    }

    /// Fails every request in flight to `target` (its connection died: their messages may
    /// be lost, so waiting for the timeout would only delay the error). Returns how many.
    pub fn fail_target(&self, target: &str) -> usize {
        let failed: Vec<Entry> = {
            let mut pending = self.lock();
            let mut seqs: Vec<u32> = pending
                .iter()
                .filter(|(_, e)| &*e.target == target)
                .map(|(seq, _)| *seq)
                .collect();
            // In sequence order (the map's order is random): the waiters wake in a fixed order.
            seqs.sort_unstable();
            seqs.into_iter()
                .filter_map(|seq| pending.remove(&seq))
                .collect()
        };
        let n = failed.len();
        for entry in failed {
            let _ = entry
                .waiter
                .send(Err(MeshError::ServerNotFound(target.to_owned())));
        }
        n
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    /// Replies that arrived after their request ended.
    pub fn late_replies(&self) -> u64 {
        self.late_replies.load(Ordering::Relaxed)
    }
}

/// Forgets a request's entry when the future waiting for its reply ends, however it ends
/// (timeout, drop), unless [`disarm`](Forget::disarm)ed because the reply came (which
/// removed the entry already).
pub(crate) struct Forget<'a> {
    cache: &'a RequestCache,
    seq: u32,
    armed: bool,
}

impl RequestCache {
    /// Forgets request `seq` when the guard drops.
    pub(crate) fn forget_on_drop(&self, seq: u32) -> Forget<'_> {
        Forget {
            cache: self,
            seq,
            armed: true,
        }
    }
}

impl Forget<'_> {
    /// The request completed: nothing is left to forget (skips a second lock).
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.cache.forget(self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_skip_zero_and_live_entries() {
        let cache = RequestCache::new(10);
        cache.next.store(u32::MAX, Ordering::Relaxed);
        let (a, _ra) = cache.register("x").unwrap();
        let (b, _rb) = cache.register("x").unwrap();
        assert_eq!((a, b), (u32::MAX, 1), "wraps past 0");
        cache.next.store(u32::MAX, Ordering::Relaxed);
        let (c, _rc) = cache.register("x").unwrap();
        assert_eq!(c, 2, "skips sequences still pending");
    }

    #[test]
    fn every_request_ends_once_and_late_replies_are_counted() {
        let cache = RequestCache::new(2);
        let (a, mut ra) = cache.register("x").unwrap();
        let (_b, mut rb) = cache.register("y").unwrap();
        assert!(cache.register("x").is_none(), "bounded");
        assert!(cache.complete(a, Err(MeshError::Timeout)));
        assert!(matches!(ra.try_recv(), Ok(Err(MeshError::Timeout))));
        assert!(!cache.complete(a, Err(MeshError::Timeout)));
        assert_eq!(cache.late_replies(), 1);
        assert_eq!(cache.fail_target("x"), 0);
        assert_eq!(cache.fail_target("y"), 1);
        assert!(matches!(
            rb.try_recv(),
            Ok(Err(MeshError::ServerNotFound(_)))
        ));
        let (_c, mut rc) = cache.register("z").unwrap();
        cache.fail_all(MeshError::Closed);
        assert!(matches!(rc.try_recv(), Ok(Err(MeshError::Closed))));
        assert_eq!(cache.in_flight(), 0);
    }
}
