//! Client connections: every reply answers one request sent before it and not answered yet;
//! a resumed session's replay is not a duplicate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use playhouse_protocol::{
    ClientCodec, CodecConfig, Decoder, MOVE_MSG_ID, RESUME_MSG_ID, ResumeRequest, SESSION_MSG_ID,
    ServerCodec, is_control_msg_id,
};

use super::stream::{Observer, Tapped, lock};
use crate::trace::Trace;

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
    /// `@Move@` notices read on a live connection, and in answer to a `@Resume@`.
    moves: (u64, u64),
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

    /// `@Move@` notices read so far: on a live connection (the stage moved while the client
    /// was there), and in answer to a `@Resume@` (the client came back to the old server).
    pub fn moves(&self) -> (u64, u64) {
        lock(&self.state).moves
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
            if msg_id == MOVE_MSG_ID {
                match state.resuming {
                    None => state.moves.0 += 1,
                    Some(_) => state.moves.1 += 1,
                }
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
}
