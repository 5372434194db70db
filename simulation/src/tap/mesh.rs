//! Mesh connections: replies matched to requests per (requester, responder) pair across the
//! two connections of a pair (or from the server a stage moved to, for a request it held), no request sequence sent twice, and the connections opened and
//! closed per pair counted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use prost::Message;

use super::accepted::AcceptTap;
use super::stream::{Observer, Tapped, lock};
use crate::trace::Trace;

/// The route header as the wire carries it (`proto/route_header.proto`), decoded here
/// independently of the mesh crate's private type: the fields the tap looks at.
#[derive(Clone, PartialEq, prost::Message)]
struct WireHeader {
    #[prost(uint32, tag = "1")]
    msg_seq: u32,
    #[prost(string, tag = "3")]
    msg_id: String,
    #[prost(bool, tag = "9")]
    is_reply: bool,
    #[prost(uint32, tag = "13")]
    liveness: u32,
}

#[derive(Debug, Default)]
struct MeshState {
    /// Requests written and not answered, by (requester, responder).
    outstanding: BTreeMap<(String, String), BTreeSet<u32>>,
    /// Requests answered, by (requester, responder).
    answered: BTreeMap<(String, String), BTreeSet<u32>>,
    /// Requests a previous boot of the requester left unanswered: a reply may still come.
    stale: BTreeMap<(String, String), BTreeSet<u32>>,
    /// Connections opened or closed, by unordered node pair.
    changes: BTreeMap<(String, String), u64>,
    /// Replies checked, by requester.
    replies: BTreeMap<String, u64>,
}

/// The tap of every mesh link connection of one run.
#[derive(Clone, Debug)]
pub struct MeshTap {
    trace: Trace,
    state: Arc<Mutex<MeshState>>,
    /// The accepting side of every connection.
    accepting: AcceptTap,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

impl MeshTap {
    /// A tap recording violations in `trace`.
    pub fn new(trace: &Trace) -> MeshTap {
        MeshTap {
            trace: trace.clone(),
            state: Arc::default(),
            accepting: AcceptTap::new(trace),
        }
    }

    /// The tap on the accepting side of every connection.
    pub fn accepting(&self) -> &AcceptTap {
        &self.accepting
    }

    /// `stream`, dialed by node `local` to node `remote`, tapped.
    pub fn wrap<S>(&self, local: &str, remote: &str, stream: S) -> Tapped<S> {
        self.changed(local, remote);
        Tapped {
            inner: stream,
            observer: Box::new(MeshConnection {
                tap: self.clone(),
                local: local.to_owned(),
                remote: remote.to_owned(),
                out: BytesMut::new(),
                hello: true,
                broken: false,
            }),
        }
    }

    /// Node `name` boots: its sequences start again, so what its previous boot asked for
    /// is forgotten (a reply to it may still come, once).
    pub fn booted(&self, name: &str) {
        let mut state = lock(&self.state);
        let state = &mut *state;
        state.answered.retain(|(requester, _), _| requester != name);
        let outstanding = std::mem::take(&mut state.outstanding);
        for (key, seqs) in outstanding {
            if key.0 == name {
                state.stale.entry(key).or_default().extend(seqs);
            } else {
                state.outstanding.insert(key, seqs);
            }
        }
    }

    fn changed(&self, a: &str, b: &str) {
        *lock(&self.state).changes.entry(pair(a, b)).or_default() += 1;
    }

    /// Mesh connections opened or closed between `a` and `b` so far, either way: while it
    /// stays the same, nothing sent between them can have been lost with a connection.
    pub fn changes(&self, a: &str, b: &str) -> u64 {
        lock(&self.state)
            .changes
            .get(&pair(a, b))
            .copied()
            .unwrap_or(0)
    }

    /// Requests `requester` sent `responder` that no reply has answered yet.
    pub fn unanswered(&self, requester: &str, responder: &str) -> usize {
        lock(&self.state)
            .outstanding
            .get(&(requester.to_owned(), responder.to_owned()))
            .map_or(0, BTreeSet::len)
    }

    /// Replies written to `requester` so far (each answering a request of it, once).
    pub fn replies_to(&self, requester: &str) -> u64 {
        lock(&self.state)
            .replies
            .get(requester)
            .copied()
            .unwrap_or(0)
    }
}

/// The (requester, responder) pair a request of `requester` numbered `seq` is outstanding
/// at, taken out, whatever the responder: a stage moving away takes the requests it holds
/// with it, and its new server answers them.
fn moved_answer(state: &mut MeshState, requester: &str, seq: u32) -> Option<(String, String)> {
    let key = state
        .outstanding
        .iter()
        .find(|((asker, _), seqs)| asker == requester && seqs.contains(&seq))
        .map(|(key, _)| key.clone())?;
    state.outstanding.get_mut(&key)?.remove(&seq);
    Some(key)
}

struct MeshConnection {
    tap: MeshTap,
    local: String,
    remote: String,
    out: BytesMut,
    /// The next frame is the connection's hello (the dialer's server id, no route header).
    hello: bool,
    broken: bool,
}

impl MeshConnection {
    fn frame(&mut self, mut frame: BytesMut) {
        if std::mem::take(&mut self.hello) {
            return;
        }
        if frame.len() < 4 {
            return self.violation("mesh frame shorter than its header length".into());
        }
        let header_len = frame.get_u32_le() as usize;
        if header_len > frame.len() {
            return self.violation("mesh frame header longer than the frame".into());
        }
        let Ok(header) = WireHeader::decode(&frame[..header_len]) else {
            return self.violation("undecodable mesh route header".into());
        };
        if header.liveness != 0 || header.msg_seq == 0 {
            return;
        }
        let problem = {
            let mut state = lock(&self.tap.state);
            let state = &mut *state;
            if header.is_reply {
                *state.replies.entry(self.remote.clone()).or_default() += 1;
                let key = (self.remote.clone(), self.local.clone());
                if state
                    .outstanding
                    .get_mut(&key)
                    .is_some_and(|o| o.remove(&header.msg_seq))
                {
                    state
                        .answered
                        .entry(key)
                        .or_default()
                        .insert(header.msg_seq);
                    None
                } else if state
                    .stale
                    .get_mut(&key)
                    .is_some_and(|o| o.remove(&header.msg_seq))
                {
                    None
                } else if let Some(asked) = moved_answer(state, &self.remote, header.msg_seq) {
                    // A request held by a stage that moved is answered by its new server.
                    state
                        .answered
                        .entry(asked)
                        .or_default()
                        .insert(header.msg_seq);
                    None
                } else if state
                    .answered
                    .get(&key)
                    .is_some_and(|a| a.contains(&header.msg_seq))
                {
                    Some(format!(
                        "reply {} seq {} from {} to {} seen twice",
                        header.msg_id, header.msg_seq, self.local, self.remote
                    ))
                } else {
                    Some(format!(
                        "reply {} seq {} from {} to {} answers no request sent",
                        header.msg_id, header.msg_seq, self.local, self.remote
                    ))
                }
            } else {
                let key = (self.local.clone(), self.remote.clone());
                let answered = state
                    .answered
                    .get(&key)
                    .is_some_and(|a| a.contains(&header.msg_seq));
                let fresh = state
                    .outstanding
                    .entry(key)
                    .or_default()
                    .insert(header.msg_seq);
                (!fresh || answered).then(|| {
                    format!(
                        "request {} seq {} from {} to {} sent twice",
                        header.msg_id, header.msg_seq, self.local, self.remote
                    )
                })
            }
        };
        if let Some(problem) = problem {
            self.violation(problem);
        }
    }

    fn violation(&mut self, what: String) {
        self.tap
            .trace
            .violation(&self.local, format!("wire: {what}"));
    }
}

impl Observer for MeshConnection {
    fn written(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        self.out.extend_from_slice(bytes);
        while self.out.len() >= 4 {
            let len = u32::from_le_bytes([self.out[0], self.out[1], self.out[2], self.out[3]]);
            let len = len as usize;
            if self.out.len() < 4 + len {
                break;
            }
            self.out.advance(4);
            let frame = self.out.split_to(len);
            self.frame(frame);
        }
    }

    fn read(&mut self, _: &[u8]) {}

    fn closed(&mut self) {
        self.tap.changed(&self.local, &self.remote);
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn mesh_frame(seq: u32, is_reply: bool) -> Vec<u8> {
        let header = WireHeader {
            msg_seq: seq,
            msg_id: "M".into(),
            is_reply,
            liveness: 0,
        }
        .encode_to_vec();
        let mut out = Vec::new();
        out.extend_from_slice(&(4 + header.len() as u32).to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out
    }

    #[test]
    fn mesh_replies_are_matched_by_node_pair_across_connections() {
        let trace = Trace::new();
        let tap = MeshTap::new(&trace);
        let hello = [4u8, 0, 0, 0, 0, 0, 0, 0];
        let mut a_to_b = tap.wrap("a", "b", ());
        let mut b_to_a = tap.wrap("b", "a", ());
        a_to_b.observer.written(&hello);
        b_to_a.observer.written(&hello);
        a_to_b.observer.written(&mesh_frame(1, false));
        b_to_a.observer.written(&mesh_frame(1, true));
        assert!(trace.violations().is_empty(), "{:?}", trace.violations());
        b_to_a.observer.written(&mesh_frame(1, true));
        a_to_b.observer.written(&mesh_frame(1, false));
        b_to_a.observer.written(&mesh_frame(2, true));
        let violations = trace.violations();
        assert_eq!(violations.len(), 3, "{violations:?}");
        assert_eq!(tap.replies_to("a"), 3);
        assert_eq!(tap.changes("b", "a"), 2);
        drop(a_to_b);
        assert_eq!(tap.changes("a", "b"), 3);
    }
}
