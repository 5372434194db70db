//! One resumable session's numbered streams and the replay buffer of frames the client has
//! not acknowledged (`playhouse_protocol::ResumeGrant` documents the wire).

use playhouse_protocol::{Capabilities, ResumeGrant, ResumeStreams, ResumeToken, ServerFrame};
use tokio::sync::mpsc;

use super::registry::Attach;
use crate::config::ResumeConfig;
use crate::session::handle::frame_cost;
use crate::session::moved_state::SessionState;

/// Why a session cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// More unacknowledged frames than `max_unacked_frames`.
    Frames,
    /// More unacknowledged bytes than `max_unacked_bytes`.
    Bytes,
}

/// One resumable session's streams, with the bytes of its replay buffer.
#[derive(Debug)]
pub(crate) struct Resumable {
    pub(crate) token: ResumeToken,
    pub(crate) config: ResumeConfig,
    streams: ResumeStreams<ServerFrame>,
    unacked_bytes: usize,
    /// Where a resuming connection is handed to this session.
    pub(crate) attach: mpsc::Receiver<Box<Attach>>,
}

impl Resumable {
    pub(crate) fn new(
        token: ResumeToken,
        config: ResumeConfig,
        attach: mpsc::Receiver<Box<Attach>>,
    ) -> Self {
        Resumable {
            token,
            config,
            streams: ResumeStreams::new(config.ack_every),
            unacked_bytes: 0,
            attach,
        }
    }

    /// A session that moved here with its stage: its streams go on where they stopped.
    pub(crate) fn from_streams(
        token: ResumeToken,
        config: ResumeConfig,
        streams: ResumeStreams<ServerFrame>,
        attach: mpsc::Receiver<Box<Attach>>,
    ) -> Self {
        let unacked_bytes = streams.unacked().iter().map(frame_cost).sum();
        Resumable {
            token,
            config,
            streams,
            unacked_bytes,
            attach,
        }
    }

    /// The session's state, to move it with its stage.
    pub(crate) fn to_state(&self, capabilities: Capabilities) -> SessionState {
        SessionState {
            token: self.token,
            sent: self.streams.sent_count(),
            unacked: self.streams.unacked().iter().cloned().collect(),
            received: self.streams.received(),
            acked: self.streams.acked(),
            capabilities,
        }
    }

    /// The grant to send the client.
    pub(crate) fn grant(&self) -> ResumeGrant {
        ResumeGrant {
            token: self.token,
            window: self.config.window,
            ack_every: self.config.ack_every,
            max_unacked: self.config.max_unacked_frames,
        }
    }

    /// Numbers a data frame on its way out and keeps it until acknowledged.
    pub(crate) fn record(&mut self, frame: &ServerFrame) -> Result<(), Overflow> {
        self.unacked_bytes += frame_cost(frame);
        self.streams.sent(detached(frame));
        if self.streams.unacked().len() > self.config.max_unacked_frames as usize {
            return Err(Overflow::Frames);
        }
        if self.unacked_bytes > self.config.max_unacked_bytes {
            return Err(Overflow::Bytes);
        }
        Ok(())
    }

    /// The client has received `count` frames: forget those. `false` when the count is
    /// impossible (more than was sent, or fewer than it acknowledged before).
    pub(crate) fn acknowledge(&mut self, count: u64) -> bool {
        let Some(done) = self.streams.acknowledge(count) else {
            return false;
        };
        let freed: usize = done.map(|frame| frame_cost(&frame)).sum();
        self.unacked_bytes -= freed;
        true
    }

    /// The frames to replay to a client that received `count`; `None` when the count is
    /// impossible.
    pub(crate) fn replay_after(&mut self, count: u64) -> Option<Vec<ServerFrame>> {
        self.acknowledge(count)
            .then(|| self.streams.unacked().iter().cloned().collect())
    }

    /// Counts a client data frame; `Some(count)` when it is time to acknowledge.
    pub(crate) fn received_one(&mut self) -> Option<u64> {
        self.streams.received_one()
    }

    /// The count to acknowledge now, if it moved since the last acknowledgement.
    pub(crate) fn pending_ack(&mut self) -> Option<u64> {
        self.streams.pending_ack()
    }

    /// Client data frames received (for the resume reply).
    pub(crate) fn received(&self) -> u64 {
        self.streams.received()
    }

    /// Frames kept for replay, and their bytes.
    #[cfg(test)]
    fn kept(&self) -> (usize, usize) {
        (self.streams.unacked().len(), self.unacked_bytes)
    }
}

/// Payloads up to this size are copied when kept for a replay (see [`detached`]).
const COPY_BELOW: usize = 512;

/// A copy of `frame` to keep. A decoded message often points into a connection's read buffer
/// (an echo's reply reuses the request's bytes): kept until acknowledged, such a slice would
/// pin a whole buffer chunk and make the reader allocate and copy anew. Small parts are cheaper
/// copied; large payloads are shared as they are.
fn detached(frame: &ServerFrame) -> ServerFrame {
    let mut kept = frame.clone();
    kept.msg_id = playhouse_protocol::MsgId::from(&*frame.msg_id);
    if frame.payload.len() < COPY_BELOW {
        kept.payload = bytes::Bytes::copy_from_slice(&frame.payload);
    }
    kept
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use playhouse_protocol::ErrorCode;

    use super::*;

    fn resumable(max_frames: u32, max_bytes: usize) -> Resumable {
        let config = ResumeConfig {
            max_unacked_frames: max_frames,
            max_unacked_bytes: max_bytes,
            ack_every: 4,
            ..ResumeConfig::default()
        };
        let (_tx, rx) = mpsc::channel(1);
        Resumable::new(ResumeToken([0; 16]), config, rx)
    }

    fn push(n: u8) -> ServerFrame {
        ServerFrame::new("Push", 0, 1, ErrorCode::SUCCESS, Bytes::from(vec![n; 10]))
    }

    #[test]
    fn replays_exactly_what_was_not_received() {
        let mut session = resumable(16, 1 << 20);
        for n in 1..=5 {
            session.record(&push(n)).unwrap();
        }
        assert!(session.acknowledge(2));
        let replay: Vec<u8> = session
            .replay_after(3)
            .unwrap()
            .iter()
            .map(|frame| frame.payload[0])
            .collect();
        assert_eq!(replay, [4, 5]);
        assert_eq!(session.kept(), (2, 2 * frame_cost(&push(0))));
        // Going back behind an acknowledgement, or ahead of what was sent, is impossible.
        assert!(session.replay_after(2).is_none());
        assert!(session.replay_after(6).is_none());
        assert_eq!(session.replay_after(5).unwrap().len(), 0);
    }

    #[test]
    fn small_kept_frames_do_not_pin_the_buffers_they_came_from() {
        let mut session = resumable(16, 1 << 20);
        let buffer = Bytes::from(vec![7u8; 4096]);
        let small = ServerFrame::new("Push", 0, 1, ErrorCode::SUCCESS, buffer.slice(0..64));
        let large = ServerFrame::new("Push", 0, 1, ErrorCode::SUCCESS, buffer.slice(0..1024));
        session.record(&small).unwrap();
        session.record(&large).unwrap();
        let kept = session.replay_after(0).unwrap();
        assert_eq!(kept[0], small);
        assert!(!std::ptr::eq(
            kept[0].payload.as_ptr(),
            small.payload.as_ptr()
        ));
        assert!(std::ptr::eq(
            kept[1].payload.as_ptr(),
            large.payload.as_ptr()
        ));
    }

    #[test]
    fn overflow_by_frames_and_by_bytes() {
        let mut session = resumable(2, 1 << 20);
        session.record(&push(1)).unwrap();
        session.record(&push(2)).unwrap();
        assert_eq!(session.record(&push(3)), Err(Overflow::Frames));

        let mut session = resumable(100, 2 * frame_cost(&push(0)));
        session.record(&push(1)).unwrap();
        session.record(&push(2)).unwrap();
        assert_eq!(session.record(&push(3)), Err(Overflow::Bytes));
        // Acknowledged frames make room again.
        let mut session = resumable(2, 1 << 20);
        session.record(&push(1)).unwrap();
        session.record(&push(2)).unwrap();
        assert!(session.acknowledge(2));
        assert_eq!(session.record(&push(3)), Ok(()));
    }
}
