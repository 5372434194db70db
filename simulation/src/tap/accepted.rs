//! The accepting side of mesh connections, and what a node's verdict must do to it.
//!
//! A TCP link connection carries frames one way, from the node that dialed it; the node that
//! accepted it only reads, and learns who dialed from the connection's hello. When a node
//! declares a peer down, its link's `reset` must drop every connection with that peer: the
//! one it dialed (dialed again at once) *and* the one the peer dialed. The second half is
//! invisible from the dialing side, so the tap watches accepted connections too:
//!
//! * every connection the peer dialed that is open at the verdict is closed within
//!   [`RESET_GRACE`] of it ([`AcceptTap::check_reset`]);
//! * nothing is read from such a connection after the verdict: what the silent peer sent
//!   before the verdict (held by a cut, delivered after the heal) must not reach the node
//!   over the old connection;
//! * once the network is quiet, a node holds at most one connection from each peer
//!   ([`AcceptTap::crowded`]).
//!
//! A connection counts as the peer's once its hello has been read: the link files it under
//! the peer's id in that same poll.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;

use super::stream::{Observer, Tapped, lock};
use crate::trace::{Trace, now};

/// How soon after a verdict the peer's connections must be gone: one tick of the simulated
/// clock, in which the connection's task sees its cancellation and drops the stream.
pub const RESET_GRACE: Duration = Duration::from_millis(1);

/// The accepted connections whose hello named the dialing node.
#[derive(Debug, Default)]
struct Accepted {
    next: u64,
    /// Open connections by (acceptor, dialer): id -> when a verdict on the dialer condemned
    /// the connection, if one did.
    open: BTreeMap<(String, String), BTreeMap<u64, Option<Duration>>>,
}

/// The tap on the accepting side of every mesh connection of one run.
#[derive(Clone, Debug)]
pub struct AcceptTap {
    trace: Trace,
    state: Arc<Mutex<Accepted>>,
}

impl AcceptTap {
    /// A tap recording violations in `trace`.
    pub fn new(trace: &Trace) -> AcceptTap {
        AcceptTap {
            trace: trace.clone(),
            state: Arc::default(),
        }
    }

    /// `stream`, accepted by node `local`, tapped on its reading side.
    pub fn wrap<S>(&self, local: &str, stream: S) -> Tapped<S> {
        let id = {
            let mut state = lock(&self.state);
            state.next += 1;
            state.next
        };
        Tapped {
            inner: stream,
            observer: Box::new(AcceptedConnection {
                tap: self.clone(),
                local: local.to_owned(),
                id,
                peer: None,
                hello: BytesMut::new(),
                reported: false,
            }),
        }
    }

    /// Node `local` declared `peer` down and reset its link connections, now: every
    /// connection `peer` dialed to `local` that is open is condemned (and the verdict
    /// recorded in the trace). Returns their ids, for [`AcceptTap::check_reset`].
    pub fn reset(&self, local: &str, peer: &str) -> Vec<u64> {
        let at = now();
        let condemned: Vec<u64> = {
            let mut state = lock(&self.state);
            let key = (local.to_owned(), peer.to_owned());
            match state.open.get_mut(&key) {
                Some(open) => {
                    for condemned in open.values_mut() {
                        condemned.get_or_insert(at);
                    }
                    open.keys().copied().collect()
                }
                None => Vec::new(),
            }
        };
        self.trace.record(
            local,
            format_args!(
                "declared {peer} down: reset, {} connection(s) it dialed to drop",
                condemned.len()
            ),
        );
        condemned
    }

    /// [`RESET_GRACE`] after `local`'s verdict on `peer` at `at`: each of `condemned` must be
    /// closed; a violation names every one still open.
    pub fn check_reset(&self, local: &str, peer: &str, at: Duration, condemned: &[u64]) {
        let left: Vec<u64> = {
            let state = lock(&self.state);
            let key = (local.to_owned(), peer.to_owned());
            let open = state.open.get(&key);
            condemned
                .iter()
                .copied()
                .filter(|id| open.is_some_and(|open| open.contains_key(id)))
                .collect()
        };
        if !left.is_empty() {
            self.trace.violation(
                local,
                format!(
                    "wire: {} connection(s) {peer} dialed (ids {left:?}) still open {}ms after \
                     {local} declared {peer} down at {}ms: a reset must drop both halves",
                    left.len(),
                    (now() - at).as_millis(),
                    at.as_millis()
                ),
            );
        }
    }

    /// Every (acceptor, dialer) pair with more than one connection open, with the count.
    pub fn crowded(&self) -> Vec<(String, String, usize)> {
        lock(&self.state)
            .open
            .iter()
            .filter(|(_, open)| open.len() > 1)
            .map(|((local, peer), open)| (local.clone(), peer.clone(), open.len()))
            .collect()
    }
}

/// One accepted connection: its hello names the dialer.
struct AcceptedConnection {
    tap: AcceptTap,
    local: String,
    id: u64,
    /// The dialing node, once its hello has been read.
    peer: Option<String>,
    /// The hello's bytes read so far.
    hello: BytesMut,
    /// A read after the verdict was reported (once per connection).
    reported: bool,
}

impl AcceptedConnection {
    /// Reads the hello (`[len][header len][dialer id]`) once complete; the dialer's id.
    fn parse_hello(&self) -> Option<String> {
        let hello = &self.hello[..];
        let len = u32::from_le_bytes(hello.get(..4)?.try_into().ok()?) as usize;
        let frame = hello.get(4..4 + len)?;
        let id_len = u32::from_le_bytes(frame.get(..4)?.try_into().ok()?) as usize;
        let id = frame.get(4..4 + id_len)?;
        Some(String::from_utf8_lossy(id).into_owned())
    }
}

impl Observer for AcceptedConnection {
    fn written(&mut self, _: &[u8]) {}

    fn read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let Some(peer) = &self.peer else {
            self.hello.extend_from_slice(bytes);
            if let Some(peer) = self.parse_hello() {
                let key = (self.local.clone(), peer.clone());
                let mut state = lock(&self.tap.state);
                state.open.entry(key).or_default().insert(self.id, None);
                self.peer = Some(peer);
                self.hello = BytesMut::new();
            }
            return;
        };
        if self.reported {
            return;
        }
        let condemned = {
            let state = lock(&self.tap.state);
            let key = (self.local.clone(), peer.clone());
            state
                .open
                .get(&key)
                .and_then(|open| open.get(&self.id).copied().flatten())
        };
        if let Some(at) = condemned {
            self.reported = true;
            self.tap.trace.violation(
                &self.local,
                format!(
                    "wire: {} read {} bytes from the connection {peer} dialed, {}ms after \
                     declaring {peer} down at {}ms: a reset must drop both halves",
                    self.local,
                    bytes.len(),
                    (now() - at).as_millis(),
                    at.as_millis()
                ),
            );
        }
    }

    fn closed(&mut self) {
        if let Some(peer) = &self.peer {
            let key = (self.local.clone(), peer.clone());
            let mut state = lock(&self.tap.state);
            if let Some(open) = state.open.get_mut(&key) {
                open.remove(&self.id);
                if open.is_empty() {
                    state.open.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(id: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(4 + id.len() as u32).to_le_bytes());
        out.extend_from_slice(&(id.len() as u32).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        out
    }

    #[test]
    fn a_reset_condemns_the_peers_connections_and_reads_after_it_are_flagged() {
        let trace = crate::trace::Trace::new();
        let tap = AcceptTap::new(&trace);
        let mut old = tap.wrap("a", ());
        let mut other = tap.wrap("a", ());
        // The hello may come in pieces.
        let greeting = hello("b");
        old.observer.read(&greeting[..3]);
        assert!(tap.reset("a", "b").is_empty(), "not named yet");
        old.observer.read(&greeting[3..]);
        other.observer.read(&hello("c"));
        let mut new = tap.wrap("a", ());
        new.observer.read(&hello("b"));
        assert_eq!(tap.crowded(), vec![("a".into(), "b".into(), 2)]);
        let condemned = tap.reset("a", "b");
        assert_eq!(condemned.len(), 2);
        drop(new);
        tap.check_reset("a", "b", Duration::ZERO, &condemned);
        assert_eq!(trace.violations().len(), 1, "the old one is still open");
        old.observer.read(b"ping");
        old.observer.read(b"ping");
        assert_eq!(trace.violations().len(), 2, "one read reported, once");
        other.observer.read(b"ping");
        drop(old);
        tap.check_reset("a", "b", Duration::ZERO, &condemned);
        assert_eq!(trace.violations().len(), 2, "{:?}", trace.violations());
        assert!(tap.crowded().is_empty());
    }
}
