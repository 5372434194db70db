//! Resumable sessions: a dropped connection loses nothing.
//!
//! An opt-in extension ([`Capabilities::RESUME`](crate::capabilities::Capabilities::RESUME), asked
//! for in the hello). Clients that never
//! ask see exactly the original wire. Both directions of an authenticated session become
//! numbered streams, the way TCP numbers bytes: every *data* frame (anything but the control
//! frames below) gets the next number, counted from 1 by sender and receiver alike, so no
//! number travels with a frame. What each side has received it acknowledges now and then;
//! the sender keeps what is not yet acknowledged and replays it after a reconnect.
//!
//! ```text
//! authenticate (resume granted in the hello):
//!   client -> server  AuthenticateRequest seq S               (client data frames counted after it)
//!   server -> client  "@Session@" seq 0  [ResumeGrant]        (server data frames counted after it;
//!   server -> client  auth reply  seq S  = server frame #1     the auth reply is the first)
//! while connected, either side, seq 0, whenever `ack_every` frames arrived or with a heartbeat:
//!                     "@Ack@"           [received: u64 LE]
//! after a drop, on a new connection (hello with RESUME first):
//!   client -> server  "@Resume@" seq N  [ResumeRequest: token, frames received from the server]
//!   server -> client  "@Resume@" seq N  [frames received from the client: u64 LE]   or error 23
//!   server -> client  the frames after the client's count, in order, then live traffic
//!   client -> server  its frames after the server's count, in order, then live traffic
//! ending it on purpose (the server forgets the session, the actor stays):
//!   client -> server  "@End@" seq 0
//! ```
//!
//! A request is a data frame like any other, so a request the server received is never
//! resent (it runs once) and its reply, like every push, reaches the client once and in
//! order: replayed if the first copy was lost. When the server cannot keep its side (the
//! resume window passed, the replay buffer overflowed) the session is *lost*: a resume gets
//! [`ErrorCode::SESSION_LOST`](crate::error_code::ErrorCode::SESSION_LOST), never a silent gap.

use std::collections::VecDeque;
use std::collections::vec_deque::Drain;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// Where a moved session resumes (the `@Move@` payload): the target server's endpoint for the
/// client's transport, `host:port` in UTF-8 (a WebSocket client keeps its path and TLS
/// settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveNotice {
    /// `host:port`, e.g. `10.0.0.7:7777`.
    pub endpoint: String,
}

impl MoveNotice {
    /// The `@Move@` payload.
    pub fn to_payload(&self) -> Bytes {
        Bytes::copy_from_slice(self.endpoint.as_bytes())
    }

    /// Reads a `@Move@` payload: `None` unless it is UTF-8 `host:port` with a port number.
    pub fn from_payload(payload: &[u8]) -> Option<MoveNotice> {
        let endpoint = std::str::from_utf8(payload).ok()?;
        let (host, port) = endpoint.rsplit_once(':')?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return None;
        }
        Some(MoveNotice {
            endpoint: endpoint.to_owned(),
        })
    }

    /// The host and port.
    pub fn host_port(&self) -> (&str, u16) {
        let (host, port) = self
            .endpoint
            .rsplit_once(':')
            .unwrap_or((&self.endpoint, "0"));
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (host, port.parse().unwrap_or(0))
    }
}

/// The secret that lets a new connection take over a session: 128 random bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResumeToken(pub [u8; 16]);

impl std::fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A secret: only a prefix, enough to correlate logs.
        write!(f, "ResumeToken({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// What the server grants with a resumable session (the `@Session@` payload, 28 bytes:
/// token, then `window_ms`, `ack_every`, `max_unacked` as `u32` LE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumeGrant {
    /// Presented by a new connection to resume.
    pub token: ResumeToken,
    /// How long the server keeps the session after the connection drops.
    pub window: Duration,
    /// Acknowledge at least every this many received frames.
    pub ack_every: u32,
    /// Most unacknowledged frames the server keeps; more means the session is lost.
    pub max_unacked: u32,
}

impl ResumeGrant {
    /// Size of the payload.
    pub const LEN: usize = 16 + 4 + 4 + 4;

    /// The `@Session@` payload.
    pub fn to_payload(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(Self::LEN);
        out.put_slice(&self.token.0);
        let window_ms = u32::try_from(self.window.as_millis()).unwrap_or(u32::MAX);
        out.put_u32_le(window_ms);
        out.put_u32_le(self.ack_every);
        out.put_u32_le(self.max_unacked);
        out.freeze()
    }

    /// Reads a `@Session@` payload; `None` when it is shorter than [`Self::LEN`] (longer
    /// payloads are reserved for future fields).
    pub fn from_payload(payload: &[u8]) -> Option<ResumeGrant> {
        let payload = payload.get(..Self::LEN)?;
        let token = ResumeToken(payload[..16].try_into().ok()?);
        let word = |at: usize| u32::from_le_bytes(payload[at..at + 4].try_into().unwrap_or([0; 4]));
        Some(ResumeGrant {
            token,
            window: Duration::from_millis(u64::from(word(16))),
            ack_every: word(20).max(1),
            max_unacked: word(24),
        })
    }
}

/// The `@Resume@` request payload (24 bytes): the token, then how many data frames the
/// client received from the server (`u64` LE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumeRequest {
    /// The session's token.
    pub token: ResumeToken,
    /// Server data frames the client has received.
    pub received: u64,
}

impl ResumeRequest {
    /// Size of the payload.
    pub const LEN: usize = 16 + 8;

    /// The `@Resume@` payload.
    pub fn to_payload(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(Self::LEN);
        out.put_slice(&self.token.0);
        out.put_u64_le(self.received);
        out.freeze()
    }

    /// Reads a `@Resume@` payload; `None` when it is too short.
    pub fn from_payload(payload: &[u8]) -> Option<ResumeRequest> {
        let payload = payload.get(..Self::LEN)?;
        Some(ResumeRequest {
            token: ResumeToken(payload[..16].try_into().ok()?),
            received: read_count(&payload[16..])?,
        })
    }
}

/// A frame count as a payload (`@Ack@`, and the `@Resume@` reply).
pub fn count_payload(count: u64) -> Bytes {
    Bytes::copy_from_slice(&count.to_le_bytes())
}

/// Reads a frame count payload; `None` when shorter than 8 bytes.
pub fn read_count(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// Both streams of a resumable session as one side sees them: the frames it sent and the
/// peer has not acknowledged (kept for a replay), and the count of frames it received (to
/// acknowledge every `ack_every` and on demand). Frame type `F` is the side's own
/// ([`ServerFrame`](crate::frame::ServerFrame) on a server,
/// [`ClientFrame`](crate::frame::ClientFrame) on a
/// client); control frames are never put in.
#[derive(Debug)]
pub struct ResumeStreams<F> {
    /// Data frames sent so far (the last one's number).
    sent: u64,
    /// Sent frames not acknowledged: numbers `sent - unacked.len() + 1 ..= sent`.
    unacked: VecDeque<F>,
    /// Data frames received so far.
    received: u64,
    /// The count last acknowledged to the peer.
    acked: u64,
    ack_every: u64,
}

impl<F> ResumeStreams<F> {
    /// Empty streams acknowledging every `ack_every` frames received (at least 1).
    pub fn new(ack_every: u32) -> Self {
        ResumeStreams {
            sent: 0,
            unacked: VecDeque::new(),
            received: 0,
            acked: 0,
            ack_every: u64::from(ack_every.max(1)),
        }
    }

    /// Streams that go on where others stopped (a session moved to another server): `sent`
    /// frames sent, of which `unacked` (the last ones, oldest first) are not acknowledged;
    /// `received` frames received, `acked` of them acknowledged to the peer. `None` when the
    /// counts are impossible.
    pub fn resume_from(
        ack_every: u32,
        sent: u64,
        unacked: VecDeque<F>,
        received: u64,
        acked: u64,
    ) -> Option<Self> {
        if unacked.len() as u64 > sent || acked > received {
            return None;
        }
        Some(ResumeStreams {
            sent,
            unacked,
            received,
            acked,
            ack_every: u64::from(ack_every.max(1)),
        })
    }

    /// The count last acknowledged to the peer.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Numbers a data frame sent and keeps it until acknowledged.
    pub fn sent(&mut self, frame: F) {
        self.sent += 1;
        self.unacked.push_back(frame);
    }

    /// Data frames sent so far.
    pub fn sent_count(&self) -> u64 {
        self.sent
    }

    /// Frames sent and not yet acknowledged, oldest first.
    pub fn unacked(&self) -> &VecDeque<F> {
        &self.unacked
    }

    /// The peer has received `count` frames: those leave the buffer (returned, oldest first).
    /// `None` when the count is impossible: more than was sent, or fewer than the peer
    /// acknowledged before.
    pub fn acknowledge(&mut self, count: u64) -> Option<Drain<'_, F>> {
        let first_kept = self.sent - self.unacked.len() as u64;
        if count > self.sent || count < first_kept {
            return None;
        }
        let done = usize::try_from(count - first_kept).ok()?;
        Some(self.unacked.drain(..done))
    }

    /// Counts a data frame received; `Some(count)` when an acknowledgement is due.
    pub fn received_one(&mut self) -> Option<u64> {
        self.received += 1;
        (self.received - self.acked >= self.ack_every).then(|| self.ack_now())
    }

    /// The count to acknowledge now, if it moved since the last acknowledgement.
    pub fn pending_ack(&mut self) -> Option<u64> {
        (self.received > self.acked).then(|| self.ack_now())
    }

    fn ack_now(&mut self) -> u64 {
        self.acked = self.received;
        self.received
    }

    /// Data frames received so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_resume_where_others_stopped() {
        let unacked: VecDeque<u8> = [4, 5].into();
        let mut streams = ResumeStreams::resume_from(4, 5, unacked, 9, 8).unwrap();
        assert_eq!(
            (streams.sent_count(), streams.received(), streams.acked()),
            (5, 9, 8)
        );
        assert!(streams.acknowledge(2).is_none());
        assert_eq!(streams.acknowledge(4).unwrap().collect::<Vec<_>>(), [4]);
        streams.sent(6);
        assert_eq!(streams.sent_count(), 6);
        assert_eq!(streams.pending_ack(), Some(9));
        assert!(ResumeStreams::resume_from(4, 1, [1u8, 2].into(), 0, 0).is_none());
        assert!(ResumeStreams::<u8>::resume_from(4, 0, VecDeque::new(), 1, 2).is_none());
    }

    #[test]
    fn streams_keep_exactly_what_was_not_acknowledged() {
        let mut streams = ResumeStreams::new(4);
        for n in 1..=5u8 {
            streams.sent(n);
        }
        assert_eq!(streams.acknowledge(2).unwrap().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(streams.acknowledge(3).unwrap().collect::<Vec<_>>(), [3]);
        assert_eq!(
            streams.unacked().iter().copied().collect::<Vec<_>>(),
            [4, 5]
        );
        // Behind an acknowledgement, or ahead of what was sent: impossible.
        assert!(streams.acknowledge(2).is_none());
        assert!(streams.acknowledge(6).is_none());
        assert_eq!(streams.acknowledge(5).unwrap().count(), 2);
        assert_eq!(streams.acknowledge(5).unwrap().count(), 0);
        assert_eq!(streams.sent_count(), 5);
    }

    #[test]
    fn streams_acknowledge_every_n_and_on_demand() {
        let mut streams = ResumeStreams::<()>::new(4);
        let due: Vec<u64> = (0..9).filter_map(|_| streams.received_one()).collect();
        assert_eq!(due, [4, 8]);
        assert_eq!(streams.pending_ack(), Some(9));
        assert_eq!(streams.pending_ack(), None);
        assert_eq!(streams.received(), 9);
    }

    #[test]
    fn grant_round_trips() {
        let grant = ResumeGrant {
            token: ResumeToken([7; 16]),
            window: Duration::from_secs(30),
            ack_every: 32,
            max_unacked: 1024,
        };
        let payload = grant.to_payload();
        assert_eq!(payload.len(), ResumeGrant::LEN);
        assert_eq!(ResumeGrant::from_payload(&payload), Some(grant));
        assert_eq!(ResumeGrant::from_payload(&payload[..27]), None);
    }

    #[test]
    fn request_and_counts_round_trip() {
        let request = ResumeRequest {
            token: ResumeToken([1; 16]),
            received: 1 << 40,
        };
        assert_eq!(
            ResumeRequest::from_payload(&request.to_payload()),
            Some(request)
        );
        assert_eq!(ResumeRequest::from_payload(&[0; 23]), None);
        assert_eq!(read_count(&count_payload(99)), Some(99));
        assert_eq!(read_count(&[1, 2, 3]), None);
    }

    #[test]
    fn token_debug_hides_the_secret() {
        let shown = format!("{:?}", ResumeToken([0xab; 16]));
        assert_eq!(shown, "ResumeToken(abab..)");
    }
}

#[cfg(test)]
mod move_tests {
    use super::MoveNotice;

    #[test]
    fn a_move_notice_is_host_and_port() {
        let notice = MoveNotice::from_payload(b"10.0.0.7:7777").unwrap();
        assert_eq!(notice.host_port(), ("10.0.0.7", 7777));
        assert_eq!(MoveNotice::from_payload(&notice.to_payload()), Some(notice));
        let v6 = MoveNotice::from_payload(b"[::1]:80").unwrap();
        assert_eq!(v6.host_port(), ("::1", 80));
        for bad in [&b"no-port"[..], b":80", b"host:", b"host:99999", b"\xff:1"] {
            assert_eq!(MoveNotice::from_payload(bad), None, "{bad:?}");
        }
    }
}
