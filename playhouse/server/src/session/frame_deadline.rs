//! The deadline of a frame that has started: once the first bytes of a frame are in, the rest
//! must follow within `frame_timeout`, before and after authentication, so a client cannot
//! hold a half frame (and the buffer it fills) until the idle timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use playhouse_protocol::{ClientFrame, DecodeError, ServerCodec};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::FramedRead;

use super::resume::registry::BoxRead;

/// What the connection gave next.
#[derive(Debug)]
pub(super) enum Next {
    /// A whole frame.
    Frame(ClientFrame),
    /// A frame no client may send, or a read error.
    Failed(DecodeError),
    /// The client closed the connection.
    Closed,
    /// A frame started and was not complete within the frame timeout.
    Unfinished,
}

/// Times the frame the read buffer holds the start of.
///
/// The clock runs only while the session waits for bytes: time spent handling the previous
/// frame (a full stage mailbox, a slow write to this client) is not the client's.
#[derive(Debug)]
pub(super) struct FrameDeadline {
    timeout: Duration,
    /// When the session first waited for the rest of the frame in the buffer.
    started: Option<Instant>,
    /// Armed while a frame is incomplete; made on first use, so a session whose frames
    /// always arrive whole never registers a timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl FrameDeadline {
    pub(super) fn new(timeout: Duration) -> Self {
        FrameDeadline {
            timeout,
            started: None,
            timer: None,
        }
    }

    /// The next frame from `reader`, or [`Next::Unfinished`] when one has waited too long.
    pub(super) fn poll_next(
        &mut self,
        reader: &mut FramedRead<BoxRead, ServerCodec>,
        cx: &mut Context<'_>,
    ) -> Poll<Next> {
        if let Poll::Ready(next) = reader.poll_next_unpin(cx) {
            self.started = None;
            return Poll::Ready(match next {
                Some(Ok(frame)) => Next::Frame(frame),
                Some(Err(error)) => Next::Failed(error),
                None => Next::Closed,
            });
        }
        if reader.read_buffer().is_empty() {
            self.started = None;
            return Poll::Pending;
        }
        let deadline = *self.started.get_or_insert_with(Instant::now) + self.timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Next::Unfinished),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use futures_util::future::poll_fn;
    use playhouse_protocol::{ClientCodec, Encoder};
    use tokio::io::{AsyncRead, AsyncWriteExt};

    use super::*;

    fn reader(read: impl AsyncRead + Send + Unpin + 'static) -> FramedRead<BoxRead, ServerCodec> {
        FramedRead::new(Box::new(read), ServerCodec::default())
    }

    fn echo_frame() -> BytesMut {
        let mut bytes = BytesMut::new();
        let frame = ClientFrame::new("Echo", 1, 1, &b"hi"[..]);
        ClientCodec::default().encode(frame, &mut bytes).unwrap();
        bytes
    }

    #[tokio::test(start_paused = true)]
    async fn a_started_frame_must_finish_in_time_and_a_whole_one_resets_the_clock() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = reader(server);
        let mut deadline = FrameDeadline::new(Duration::from_secs(10));
        let frame = echo_frame();
        let (head, tail) = frame.split_at(6);

        // Nothing started: silence is the idle timeout's business, not this one's.
        let idle = tokio::time::timeout(
            Duration::from_secs(60),
            poll_fn(|cx| deadline.poll_next(&mut reader, cx)),
        );
        assert!(idle.await.is_err());

        // Half a frame, the rest 9 s later: in time.
        client.write_all(head).await.unwrap();
        let started = Instant::now();
        let next = poll_fn(|cx| deadline.poll_next(&mut reader, cx));
        let rest = async {
            tokio::time::sleep(Duration::from_secs(9)).await;
            client.write_all(tail).await.unwrap();
        };
        let (next, ()) = tokio::join!(next, rest);
        assert!(matches!(next, Next::Frame(f) if &f.payload[..] == b"hi"));

        // Half a frame and no more: cut 10 s after the session started waiting for it.
        client.write_all(head).await.unwrap();
        let waiting = Instant::now();
        let next = poll_fn(|cx| deadline.poll_next(&mut reader, cx)).await;
        assert!(matches!(next, Next::Unfinished));
        assert_eq!(Instant::now() - waiting, Duration::from_secs(10));
        assert!(Instant::now() - started > Duration::from_secs(10));
    }
}
