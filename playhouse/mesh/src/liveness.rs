//! Heartbeats above the link: the node pings every connected peer and watches for the pongs.
//!
//! A ping is a message whose header has `liveness = PING` and whose payload is the time it
//! was sent (nanoseconds since this node started); the peer echoes it back with
//! `liveness = PONG`. A pong proves the round trip worked *when its ping was sent*, so one-way
//! loss in either direction silences the pongs just as a partition, a frozen process or a
//! dead machine does. Messages other than pongs do not count: a peer whose messages still
//! arrive but which no longer receives ours is not alive for requests.
//!
//! A peer whose last answered ping was sent more than `heartbeat_timeout` ago is declared
//! down: its requests in flight fail at once ([`MeshError::ServerNotFound`]), the link
//! [`reset`](crate::link::MeshLink::reset)s its connections, and sends to it fail at once until it
//! answers a ping again (a link may well report a fresh connection "up" that leads nowhere).
//! While it stays silent it is reset again every `heartbeat_timeout`.
//!
//! [`MeshError::ServerNotFound`]: crate::error::MeshError::ServerNotFound

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// `RouteHeader::liveness` of a ping.
pub(crate) const PING: u32 = 1;
/// `RouteHeader::liveness` of a pong.
pub(crate) const PONG: u32 = 2;

/// The silence clock of one connected peer.
#[derive(Clone, Copy, Debug)]
struct Clock {
    /// When the last answered ping was sent (or the clock started).
    heard: Instant,
}

/// What [`Liveness::tick`] asks the node to do.
#[derive(Debug)]
pub(crate) struct Tick {
    /// Peers to ping now.
    pub(crate) ping: Vec<String>,
    /// Peers silent for the timeout: fail their requests and reset their connections.
    pub(crate) declare_down: Vec<String>,
    /// When to tick next: the next ping round or the earliest silence deadline.
    pub(crate) next: Instant,
}

/// Every peer's silence clock.
#[derive(Debug)]
pub(crate) struct Liveness {
    interval: Duration,
    timeout: Duration,
    epoch: Instant,
    clocks: Mutex<HashMap<String, Clock>>,
    /// Peers declared down and not heard from since (checked on every send, so kept apart).
    down: Mutex<HashMap<String, Instant>>,
    down_count: AtomicUsize,
    next_ping: Mutex<Instant>,
    declared: AtomicU64,
}

impl Liveness {
    /// Liveness pinging every `interval`, declaring a peer down after `timeout` of silence.
    /// A zero `interval` or `timeout` turns it off.
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Self {
        let epoch = Instant::now();
        Liveness {
            interval,
            timeout,
            epoch,
            clocks: Mutex::new(HashMap::new()),
            down: Mutex::new(HashMap::new()),
            down_count: AtomicUsize::new(0),
            next_ping: Mutex::new(epoch),
            declared: AtomicU64::new(0),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.interval.is_zero() && !self.timeout.is_zero()
    }

    fn clocks(&self) -> MutexGuard<'_, HashMap<String, Clock>> {
        self.clocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn down(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.down.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Peers declared down since the node started.
    pub(crate) fn declared(&self) -> u64 {
        self.declared.load(Ordering::Relaxed)
    }

    /// Whether `peer` was declared down and has not answered since (sends to it fail).
    pub(crate) fn is_down(&self, peer: &str) -> bool {
        self.down_count.load(Ordering::Acquire) > 0 && self.down().contains_key(peer)
    }

    /// The payload of a ping sent `now`.
    pub(crate) fn ping_payload(&self, now: Instant) -> Bytes {
        let nanos = u64::try_from((now - self.epoch).as_nanos()).unwrap_or(u64::MAX);
        Bytes::copy_from_slice(&nanos.to_le_bytes())
    }

    /// A pong from `peer` echoing `payload`: the path worked when that ping was sent.
    /// Returns the round trip (`None` for a payload that is no ping's).
    pub(crate) fn pong(&self, peer: &str, payload: &[u8]) -> Option<Duration> {
        let Ok(nanos) = <[u8; 8]>::try_from(payload) else {
            return None;
        };
        let sent = self.epoch + Duration::from_nanos(u64::from_le_bytes(nanos));
        if let Some(clock) = self.clocks().get_mut(peer) {
            clock.heard = clock.heard.max(sent);
        }
        let mut down = self.down();
        if down.get(peer).is_some_and(|since| sent >= *since) {
            down.remove(peer);
            self.down_count.store(down.len(), Ordering::Release);
            tracing::info!(%peer, "mesh peer answers again");
        }
        Some(Instant::now().saturating_duration_since(sent))
    }

    /// Updates the clocks at `now` for the peers in `peers` (each with whether its link
    /// connection is up) and says what to do. Peers not listed are forgotten.
    pub(crate) fn tick<'a>(
        &self,
        now: Instant,
        peers: impl IntoIterator<Item = (&'a str, bool)>,
    ) -> Tick {
        let mut ping = Vec::new();
        let mut declare_down = Vec::new();
        let mut clocks = self.clocks();
        let mut next_ping = self.next_ping.lock().unwrap_or_else(|e| e.into_inner());
        let ping_all = now >= *next_ping;
        if ping_all {
            *next_ping = now + self.interval;
        }
        let mut seen = Vec::new();
        for (peer, connected) in peers {
            seen.push(peer);
            if !connected {
                // The link knows it is down (and fails sends itself); start afresh once the
                // connection is back, still "down" if it was declared so.
                clocks.remove(peer);
                continue;
            }
            if !clocks.contains_key(peer) {
                // A connection just came up: ping it now, start its clock.
                ping.push(peer.to_owned());
                clocks.insert(peer.to_owned(), Clock { heard: now });
                continue;
            }
            let Some(clock) = clocks.get_mut(peer) else {
                continue;
            };
            if now >= clock.heard + self.timeout {
                declare_down.push(peer.to_owned());
                clock.heard = now;
                continue;
            }
            if ping_all {
                ping.push(peer.to_owned());
            }
        }
        clocks.retain(|peer, _| seen.contains(&peer.as_str()));
        let mut down = self.down();
        down.retain(|peer, _| seen.contains(&peer.as_str()));
        for peer in &declare_down {
            down.entry(peer.clone()).or_insert(now);
        }
        self.down_count.store(down.len(), Ordering::Release);
        self.declared
            .fetch_add(declare_down.len() as u64, Ordering::Relaxed);
        let deadline = clocks
            .values()
            .map(|clock| clock.heard + self.timeout)
            .min();
        Tick {
            ping,
            declare_down,
            next: deadline.map_or(*next_ping, |d| d.min(*next_ping)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(100);
    const TIMEOUT: Duration = Duration::from_millis(450);

    fn answer(liveness: &Liveness, peer: &str, sent: Instant) {
        liveness.pong(peer, &liveness.ping_payload(sent));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_declared_down_exactly_at_the_timeout() {
        let liveness = Liveness::new(INTERVAL, TIMEOUT);
        let start = Instant::now();
        let tick = liveness.tick(start, [("b", true)]);
        assert_eq!(tick.ping, ["b"], "a new connection is pinged at once");
        assert_eq!(tick.next, start + INTERVAL);
        // b answers the first two pings, then falls silent.
        answer(&liveness, "b", start);
        let t1 = start + INTERVAL;
        assert_eq!(liveness.tick(t1, [("b", true)]).ping, ["b"]);
        answer(&liveness, "b", t1);
        let mut now = t1;
        loop {
            let tick = liveness.tick(now, [("b", true)]);
            if !tick.declare_down.is_empty() {
                assert_eq!(tick.declare_down, ["b"]);
                break;
            }
            assert!(now < t1 + TIMEOUT, "not declared down in time");
            now = tick.next;
        }
        assert_eq!(
            now,
            t1 + TIMEOUT,
            "declared down at the deadline, not a tick later"
        );
        assert!(liveness.is_down("b"));
        assert_eq!(liveness.declared(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_peer_is_back_only_when_it_answers_a_ping_sent_after_the_verdict() {
        let liveness = Liveness::new(INTERVAL, TIMEOUT);
        let start = Instant::now();
        liveness.tick(start, [("b", true)]);
        let verdict = start + TIMEOUT;
        assert_eq!(liveness.tick(verdict, [("b", true)]).declare_down, ["b"]);
        // A late pong for a ping from before the verdict proves nothing about now.
        answer(&liveness, "b", start + INTERVAL);
        assert!(liveness.is_down("b"));
        // Still silent a timeout later: reset again.
        let again = liveness.tick(verdict + TIMEOUT, [("b", true)]);
        assert_eq!(again.declare_down, ["b"]);
        answer(&liveness, "b", verdict + TIMEOUT);
        assert!(!liveness.is_down("b"));
        assert_eq!(liveness.declared(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn only_connected_listed_peers_are_watched() {
        let liveness = Liveness::new(INTERVAL, TIMEOUT);
        let start = Instant::now();
        let tick = liveness.tick(start, [("b", false), ("c", true)]);
        assert_eq!(tick.ping, ["c"]);
        // b never connected: never declared down; c left the directory: forgotten.
        let later = liveness.tick(start + TIMEOUT * 3, [("b", false)]);
        assert!(later.declare_down.is_empty());
        assert_eq!(liveness.declared(), 0);
    }
}
