//! The write path: frames the stage queued, written in batches with one flush, checked
//! against the packet size, numbered for a resumable session, and timed for the request
//! latency histogram.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt;
use playhouse_protocol::{EncodeError, Encoder, ErrorCode, ServerFrame, SharedFrame};
use tokio::time::Instant;

use super::end::End;
use super::handle::Outbound;
use super::killable::bounded;
use super::state::{Session, State};
use super::write_codec::WriteCodec;
use crate::limits::throttled;
use crate::metrics::Rejection;

/// Most queued frames written before one flush.
const WRITE_BATCH: usize = 256;
/// Most requests whose latency is tracked at once per connection (older ones are forgotten).
const TRACKED_REQUESTS: usize = 256;

impl Session {
    /// Writes `first` and whatever else is queued, then flushes once.
    pub(super) async fn write_batch(&mut self, first: Outbound) -> Result<(), End> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(outbound) = next {
            match outbound {
                Outbound::Frame(frame) => {
                    self.queued.release(&frame);
                    self.feed(frame).await?;
                }
                Outbound::Shared(shared) => {
                    self.queued.release(shared.frame());
                    self.feed_shared(shared).await?;
                }
                Outbound::Detached(code) => {
                    if matches!(self.state, State::Joined { .. }) {
                        self.detach(code);
                    }
                }
                // Cold paths, boxed: an idle session's future stays small (see `run`).
                Outbound::Close(code) => return cold!(self.close_with(code)),
                Outbound::Freeze(reply) => return cold!(self.frozen(reply)),
                Outbound::Relay(server) => self.relay_to(server),
                // Only meaningful while frozen.
                Outbound::Moved(_) | Outbound::Thaw => {}
            }
            written += 1;
            next = if written < WRITE_BATCH {
                self.rx.try_recv().ok()
            } else {
                None
            };
        }
        self.flush().await
    }

    /// Tells the client why the server closes its connection (only a client that sent a
    /// hello knows the `@Close@` frame), flushes, and ends the session.
    pub(super) async fn close_with(&mut self, code: ErrorCode) -> Result<(), End> {
        if self.capabilities.is_some() {
            let stage_id = match &self.state {
                State::Joined { stage, .. } => stage.stage_id(),
                _ => 0,
            };
            self.feed(ServerFrame::close(stage_id, code)).await?;
            self.flush().await?;
            // The notice must reach the client: no reset for what it sent meanwhile. This
            // runs as the server drains, and a stop that follows must not cut it short.
            self.close_after_notice(false).await;
            tracing::debug!(%code, "closing the connection with a reason");
            return Err(End::Drained);
        }
        self.flush().await?;
        tracing::debug!(%code, "closing the connection with a reason");
        Err(End::Drained)
    }

    /// Flushes, unless the client stops reading for `write_timeout` or the server kills us.
    pub(super) async fn flush(&mut self) -> Result<(), End> {
        self.write_clock = None;
        let timeout = self.ctx.config().write_timeout;
        match bounded(
            &self.kill,
            timeout,
            SinkExt::<ServerFrame>::flush(&mut self.writer),
        )
        .await
        {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(_))) => Err(End::WriteFailed),
            Ok(Err(reason)) => Err(reason),
            Err(_) => {
                self.ctx.metrics().reject(Rejection::SlowConsumer);
                Err(End::WriteTimeout)
            }
        }
    }

    /// A frame as it may go out: one over `max_packet_size` is dropped (`None`), or, for a
    /// reply, turned into a `PACKET_TOO_LARGE` error reply, so the requester learns it at once
    /// instead of waiting for its timeout.
    pub(super) fn checked(&self, mut frame: ServerFrame) -> Option<ServerFrame> {
        if self.oversized(&frame) {
            if frame.msg_seq == 0 {
                return None;
            }
            frame.error_code = ErrorCode::PACKET_TOO_LARGE;
            frame.payload = Bytes::new();
        }
        Some(frame)
    }

    /// Whether `frame` is over `max_packet_size` (logged and counted if so).
    fn oversized(&self, frame: &ServerFrame) -> bool {
        // The body as the codec would write it uncompressed (its limit applies to that).
        let body = frame.body_len();
        if body <= self.ctx.config().codec.max_packet_size {
            return false;
        }
        self.span.in_scope(|| {
            throttled!(error, msg_id = %frame.msg_id, body, "outgoing frame over max_packet_size; dropped");
        });
        self.ctx.metrics().reject(Rejection::OversizedFrame);
        true
    }

    pub(super) async fn feed(&mut self, frame: ServerFrame) -> Result<(), End> {
        let Some(frame) = self.checked(frame) else {
            return Ok(());
        };
        self.record(&frame)?;
        self.feed_raw(frame).await
    }

    /// Writes a frame as it is (checked and numbered already, or a replay).
    pub(super) async fn feed_raw(&mut self, frame: ServerFrame) -> Result<(), End> {
        self.count_out(&frame);
        self.write(frame).await
    }

    /// Writes a frame other connections write too, in the encoding made for the first one
    /// like this one. A broadcast is a push: one over the size limit is dropped.
    async fn feed_shared(&mut self, shared: Arc<SharedFrame>) -> Result<(), End> {
        if self.oversized(shared.frame()) {
            return Ok(());
        }
        self.record(shared.frame())?;
        self.count_out(shared.frame());
        self.write(shared).await
    }

    /// Counts `frame` as sent, and times the request it answers.
    fn count_out(&mut self, frame: &ServerFrame) {
        let metrics = &self.ctx.metrics();
        metrics.message_out(frame.payload.len());
        if frame.msg_seq != 0
            && let Some(at) = self
                .in_flight
                .iter()
                .position(|(seq, _)| *seq == frame.msg_seq)
            && let Some((_, arrived)) = self.in_flight.remove(at)
        {
            // The replies of one batch go out together: one clock read for them all.
            let now = *self.write_clock.get_or_insert_with(Instant::now);
            metrics.observe_latency(now.saturating_duration_since(arrived));
        }
    }

    /// Hands `item` to the writer's buffer.
    async fn write<I>(&mut self, item: I) -> Result<(), End>
    where
        WriteCodec: Encoder<I, Error = EncodeError>,
    {
        // `feed` writes out when the buffer is full, so it can block on a non-reading client.
        let timeout = self.ctx.config().write_timeout;
        let fed = match bounded(&self.kill, timeout, self.writer.feed(item)).await {
            Ok(fed) => fed?,
            Err(_) => {
                self.ctx.metrics().reject(Rejection::SlowConsumer);
                return Err(End::WriteTimeout);
            }
        };
        match fed {
            Ok(()) => Ok(()),
            Err(EncodeError::Io(_)) => Err(End::WriteFailed),
            Err(error) => {
                // Sizes are checked above; this is a frame no client could read.
                self.span
                    .in_scope(|| throttled!(error, %error, "dropping an outgoing frame"));
                Ok(())
            }
        }
    }

    pub(super) async fn send_now(&mut self, frame: ServerFrame) -> Result<(), End> {
        self.feed(frame).await?;
        self.flush().await
    }
}

/// Notes that request `seq` arrived at `arrived`, for the latency histogram (the oldest
/// tracked request is forgotten when too many are awaiting a reply).
pub(super) fn track_request(in_flight: &mut VecDeque<(u16, Instant)>, seq: u16, arrived: Instant) {
    if in_flight.len() == TRACKED_REQUESTS {
        in_flight.pop_front();
    }
    in_flight.push_back((seq, arrived));
}
