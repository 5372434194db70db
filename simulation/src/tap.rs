//! A wire-level tap: simulated TCP streams wrapped so that every frame, in both directions,
//! is parsed and checked where it crosses the wire, below anything the framework could hide
//! (a connector that drops a second reply, a request cache that counts it as late).
//!
//! * Client connections ([`ClientTap`], one per game client, shared by all its connections):
//!   every reply (server frame with a sequence) must answer a request sent before it and not
//!   answered yet. A resumable session replays unacknowledged frames after a resume: a reply
//!   with the same server frame number as one already seen is that frame again, not a
//!   duplicate (frames are numbered from the `@Session@` grant, and after a `@Resume@` from
//!   the count the client reported as received).
//! * Mesh connections ([`MeshTap`], one per run on [`crate::cluster::Env`]): a TCP link
//!   connection carries frames one way, from the node that dialed it, so the tap reads the
//!   dialed side's writes. A request and its reply travel on two connections (each node dials
//!   its peers), so outstanding requests are kept per (requester, responder) pair: every reply
//!   must answer a request of that pair that is not answered yet, and no request sequence is
//!   sent twice. The tap also counts the connections opened and closed per pair: one-way
//!   messages must arrive unless that count moved ([`MeshTap::changes`]).
//!
//! Everything is kept in ordered maps and recorded from the stream's own polls, so the trace
//! stays a function of the seed.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use playhouse_protocol::{
    ClientCodec, CodecConfig, Decoder, RESUME_MSG_ID, ResumeRequest, SESSION_MSG_ID, ServerCodec,
    is_control_msg_id,
};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::trace::Trace;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a tapped stream tells its observer.
trait Observer: Send {
    /// Bytes the local side wrote.
    fn written(&mut self, bytes: &[u8]);
    /// Bytes the local side read.
    fn read(&mut self, bytes: &[u8]);
    /// The stream is gone.
    fn closed(&mut self);
}

/// A stream whose traffic an observer sees, frame by frame.
pub struct Tapped<S> {
    inner: S,
    observer: Box<dyn Observer>,
}

impl<S> std::fmt::Debug for Tapped<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tapped").finish_non_exhaustive()
    }
}

impl<S> Tapped<S> {
    /// `stream`, watched by nobody.
    pub fn untapped(stream: S) -> Tapped<S> {
        Tapped {
            inner: stream,
            observer: Box::new(Untapped),
        }
    }
}

struct Untapped;

impl Observer for Untapped {
    fn written(&mut self, _: &[u8]) {}
    fn read(&mut self, _: &[u8]) {}
    fn closed(&mut self) {}
}

impl<S> Drop for Tapped<S> {
    fn drop(&mut self) {
        self.observer.closed();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tapped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            this.observer.read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tapped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            this.observer.written(&buf[..*n]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ----- client connections -----

#[derive(Debug, Default)]
struct ClientState {
    /// Connections tapped so far (the current one's id).
    connections: u64,
    /// Requests sent and not answered: sequence → the connection that sent it first.
    outstanding: BTreeMap<u16, u64>,
    /// Requests answered: sequence → the server frame number of the reply (`None` outside a
    /// resumable session).
    answered: BTreeMap<u16, Option<u64>>,
    /// Server data frames of the resumable session so far (`None`: no session).
    frames: Option<u64>,
    /// A `@Resume@` sent on the current connection: its sequence and reported count.
    resuming: Option<(u16, u64)>,
    /// Whether the current connection has shown whether it resumes or starts afresh.
    decided: bool,
    /// Replies checked (for the trace summary).
    replies: u64,
}

/// The tap of one game client's connections.
#[derive(Clone, Debug)]
pub struct ClientTap {
    who: String,
    trace: Trace,
    state: Arc<Mutex<ClientState>>,
}

impl ClientTap {
    /// A tap for client `who`, recording violations in `trace`.
    pub fn new(trace: &Trace, who: &str) -> ClientTap {
        ClientTap {
            who: who.to_owned(),
            trace: trace.clone(),
            state: Arc::default(),
        }
    }

    /// `stream`, tapped as this client's next connection.
    pub fn wrap<S>(&self, stream: S) -> Tapped<S> {
        let connection = {
            let mut state = lock(&self.state);
            state.connections += 1;
            state.decided = false;
            state.resuming = None;
            state.connections
        };
        Tapped {
            inner: stream,
            observer: Box::new(ClientConnection {
                tap: self.clone(),
                connection,
                out: BytesMut::new(),
                incoming: BytesMut::new(),
                out_codec: ServerCodec::new(CodecConfig::default()),
                in_codec: ClientCodec::new(CodecConfig::default()),
                broken: false,
            }),
        }
    }

    /// Replies checked so far.
    pub fn replies(&self) -> u64 {
        lock(&self.state).replies
    }
}

struct ClientConnection {
    tap: ClientTap,
    connection: u64,
    out: BytesMut,
    incoming: BytesMut,
    /// Decodes what the client writes (client frames).
    out_codec: ServerCodec,
    /// Decodes what the client reads (server frames).
    in_codec: ClientCodec,
    broken: bool,
}

impl ClientConnection {
    fn violation(&mut self, what: String) {
        self.tap
            .trace
            .violation(&self.tap.who, format!("wire: {what}"));
    }

    fn client_frame(&mut self, msg_id: &str, seq: u16, payload: &[u8]) {
        let mut state = lock(&self.tap.state);
        if !state.decided && !is_control_msg_id(msg_id) {
            // The first data frame on a connection that did not resume: a fresh session.
            // What other connections left unanswered can never be answered here.
            state.decided = true;
            let current = self.connection;
            state.outstanding.retain(|_, c| *c == current);
            state.answered.clear();
            state.frames = None;
        }
        if msg_id == RESUME_MSG_ID {
            state.decided = true;
            let received = ResumeRequest::from_payload(payload).map_or(0, |r| r.received);
            state.resuming = Some((seq, received));
        }
        if seq != 0 {
            let connection = self.connection;
            state.outstanding.entry(seq).or_insert(connection);
        }
    }

    fn server_frame(&mut self, msg_id: &str, seq: u16, error: u16) {
        let problem = {
            let mut state = lock(&self.tap.state);
            let state = &mut *state;
            if msg_id == SESSION_MSG_ID {
                state.frames = Some(0);
            }
            if msg_id == RESUME_MSG_ID && state.resuming.is_some_and(|(s, _)| s == seq) {
                let (_, received) = state.resuming.take().unwrap_or_default();
                state.frames = (error == 0).then_some(received);
            }
            let number = if is_control_msg_id(msg_id) {
                None
            } else {
                state.frames.as_mut().map(|n| {
                    *n += 1;
                    *n
                })
            };
            if seq == 0 {
                return;
            }
            state.replies += 1;
            if state.outstanding.remove(&seq).is_some() {
                state.answered.insert(seq, number);
                None
            } else {
                match state.answered.get(&seq) {
                    // The same frame of the session, replayed after a resume.
                    Some(Some(first)) if number == Some(*first) => None,
                    Some(_) => Some(format!("reply {msg_id} seq {seq} seen twice")),
                    None => Some(format!("reply {msg_id} seq {seq} answers no request sent")),
                }
            }
        };
        if let Some(problem) = problem {
            self.violation(problem);
        }
    }
}

impl Observer for ClientConnection {
    fn written(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        self.out.extend_from_slice(bytes);
        loop {
            match self.out_codec.decode(&mut self.out) {
                Ok(Some(frame)) => {
                    self.client_frame(&frame.msg_id, frame.msg_seq, &frame.payload);
                }
                Ok(None) => break,
                Err(error) => {
                    self.broken = true;
                    self.violation(format!("undecodable client frame: {error}"));
                    break;
                }
            }
        }
    }

    fn read(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        self.incoming.extend_from_slice(bytes);
        loop {
            match self.in_codec.decode(&mut self.incoming) {
                Ok(Some(frame)) => {
                    self.server_frame(&frame.msg_id, frame.msg_seq, frame.error_code.0);
                }
                Ok(None) => break,
                Err(error) => {
                    self.broken = true;
                    self.violation(format!("undecodable server frame: {error}"));
                    break;
                }
            }
        }
    }

    fn closed(&mut self) {}
}

// ----- mesh connections -----

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
        }
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
    use bytes::Bytes;
    use playhouse_protocol::{ClientFrame, Encoder, ErrorCode, ServerFrame};

    use super::*;

    fn client(frame: ClientFrame) -> Vec<u8> {
        let mut out = BytesMut::new();
        ClientCodec::new(CodecConfig::default())
            .encode(frame, &mut out)
            .unwrap();
        out.to_vec()
    }

    fn server(frame: ServerFrame) -> Vec<u8> {
        let mut out = BytesMut::new();
        ServerCodec::new(CodecConfig::default())
            .encode(frame, &mut out)
            .unwrap();
        out.to_vec()
    }

    fn reply(seq: u16) -> Vec<u8> {
        server(ServerFrame::new(
            "R",
            seq,
            1,
            ErrorCode::SUCCESS,
            Bytes::new(),
        ))
    }

    #[test]
    fn client_replies_answer_one_request_once() {
        let trace = Trace::new();
        let tap = ClientTap::new(&trace, "c");
        let mut conn = tap.wrap(());
        conn.observer
            .written(&client(ClientFrame::new("Op", 1, 1, &b"1"[..])));
        conn.observer
            .written(&client(ClientFrame::new("Op", 2, 1, &b"2"[..])));
        conn.observer.read(&reply(2));
        conn.observer.read(&reply(1));
        assert!(trace.violations().is_empty(), "{:?}", trace.violations());
        conn.observer.read(&reply(1));
        conn.observer.read(&reply(9));
        let violations = trace.violations();
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[0].contains("seq 1 seen twice"));
        assert!(violations[1].contains("seq 9 answers no request"));
    }

    #[test]
    fn a_resume_replay_is_not_a_duplicate() {
        let trace = Trace::new();
        let tap = ClientTap::new(&trace, "c");
        let mut first = tap.wrap(());
        first.observer.written(&client(ClientFrame::new(
            "AuthenticateRequest",
            1,
            1,
            &b"a"[..],
        )));
        first.observer.read(&server(ServerFrame::new(
            SESSION_MSG_ID,
            0,
            0,
            ErrorCode::SUCCESS,
            Bytes::new(),
        )));
        first.observer.read(&reply(1)); // server frame #1
        first
            .observer
            .written(&client(ClientFrame::new("Op", 2, 1, &b"1"[..])));
        first.observer.read(&reply(2)); // #2, seen here but not counted by the client
        drop(first);
        let mut second = tap.wrap(());
        let resume = ResumeRequest {
            token: playhouse_protocol::ResumeToken([0; 16]),
            received: 1,
        };
        second
            .observer
            .written(&client(ClientFrame::resume(3, resume)));
        second.observer.read(&server(ServerFrame::resumed(3, 2)));
        second.observer.read(&reply(2)); // #2 again: a replay
        assert!(trace.violations().is_empty(), "{:?}", trace.violations());
        second.observer.read(&reply(2)); // #3: a second answer
        assert_eq!(trace.violations().len(), 1, "{:?}", trace.violations());
    }

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
