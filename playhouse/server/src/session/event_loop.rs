//! The session's event loop: one `select!` over the kill switch, a resuming connection, the
//! outbound queue, the next frame (and the deadline of one that has started) and the one
//! timer (idle, auth or re-auth deadline).

use futures_util::future::poll_fn;
use tokio::time::Instant;

use super::due_timer::DueTimer;
use super::end::End;
use super::frame_deadline::{FrameDeadline, Next};
use super::killed::Killed;
use super::resume::next_attach;
use super::state::{Session, State};
use crate::limits::throttled;
use crate::metrics::Rejection;

impl Session {
    /// Serves the current connection until it ends, and says why.
    pub(super) async fn serve(&mut self) -> End {
        let config = self.ctx.config();
        let auth_deadline = Instant::now() + config.auth_timeout;
        let mut idle_deadline = Instant::now() + config.idle_timeout;
        // One cancellation waiter and one timer for the whole connection, not one per
        // message: registering and dropping them took locks shared by every session. `kill`
        // is a child of the server's stop token, so it fires on a stop too; `Killed` reads a
        // flag on each turn instead of the token's locks.
        let mut killed = Killed::new(self.kill.clone());
        // Moved lazily: a frame pushes `idle_deadline` back, and the timer, when it fires
        // early, is set to the deadline then due. Polled only once due (see `DueTimer`).
        let mut timer = DueTimer::new(idle_deadline.min(auth_deadline));
        let mut frames = FrameDeadline::new(config.frame_timeout);
        loop {
            let deadline = match self.state {
                State::Joined { .. } => idle_deadline,
                State::Fresh => idle_deadline.min(auth_deadline),
                State::Detached { reauth_by, .. } => idle_deadline.min(reauth_by),
            };
            if deadline < timer.deadline() {
                timer.reset(deadline);
            }
            tokio::select! {
                biased;
                () = &mut killed => {
                    return if self.ctx.stop_token().is_cancelled() {
                        End::ServerStopping
                    } else {
                        End::ClosedByServer
                    };
                }
                Some(attach) = next_attach(&mut self.resume) => {
                    // The client came back on a new connection before this one was noticed
                    // dead: the new one replaces it.
                    if let Err(reason) = cold!(self.install(attach)) {
                        return reason;
                    }
                    idle_deadline = Instant::now() + self.ctx.config().idle_timeout;
                    frames = FrameDeadline::new(self.ctx.config().frame_timeout);
                }
                Some(outbound) = self.rx.recv() => {
                    if let Err(reason) = self.write_batch(outbound).await {
                        return reason;
                    }
                }
                next = poll_fn(|cx| frames.poll_next(&mut self.reader, cx)) => match next {
                    Next::Closed => return End::ClientClosed,
                    Next::Unfinished => {
                        self.ctx.metrics().reject(Rejection::FrameTimeout);
                        return End::FrameTimeout;
                    }
                    Next::Failed(playhouse_protocol::DecodeError::Io(error)) => {
                        self.span.in_scope(|| tracing::debug!(%error, "connection error"));
                        return End::TransportError;
                    }
                    Next::Failed(error) => {
                        self.span.in_scope(|| {
                            throttled!(warn, %error, "bad frame; closing the connection");
                        });
                        self.ctx.metrics().reject(Rejection::of(&error));
                        return End::ProtocolError;
                    }
                    Next::Frame(frame) => {
                        let arrived = Instant::now();
                        idle_deadline = arrived + self.ctx.config().idle_timeout;
                        let metrics = &self.ctx.metrics();
                        metrics.message_in(frame.wire_len());
                        if self.rate.as_mut().is_some_and(|bucket| !bucket.take()) {
                            self.span.in_scope(|| {
                                throttled!(warn, "message rate limit exceeded; closing the connection");
                            });
                            metrics.reject(Rejection::RateLimited);
                            return End::RateLimited;
                        }
                        if let Err(reason) = self.on_frame(frame, arrived, auth_deadline).await {
                            return reason;
                        }
                    }
                },
                () = poll_fn(|cx| timer.poll_due(cx)) => {
                    if Instant::now() < deadline {
                        // Pushed back by traffic since the timer was set.
                        timer.reset(deadline);
                        continue;
                    }
                    let metrics = &self.ctx.metrics();
                    return if deadline == idle_deadline {
                        metrics.idle_timed_out();
                        End::IdleTimeout
                    } else {
                        metrics.auth_timed_out();
                        End::AuthTimeout
                    };
                }
            }
        }
    }
}
