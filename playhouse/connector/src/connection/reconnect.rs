//! A resumable session outliving its connection: after a drop the task dials again (with
//! backoff, within the resume window; at the new endpoint after a move), resumes, and queues
//! what the server never received.

use std::io;
use std::sync::Arc;

use playhouse_protocol::{ClientFrame, ResumeRequest};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};

use super::close::End;
use super::task::Task;
use crate::callbacks::{Event, SessionEvent};
use crate::resume::{Backoff, Handshake, Reader, Writer, handshake};

impl Task {
    /// Dials again until the session resumes, the server says it is lost, the resume window
    /// passes, or `disconnect()` is called. On success the frames the server did not receive
    /// are queued again, in order.
    pub(super) async fn resume_session(
        &mut self,
        close: &mut oneshot::Receiver<()>,
    ) -> Result<(Reader, Writer), End> {
        let (Some(mut setup), Some(session)) = (self.resume.clone(), self.session.as_ref()) else {
            return Err(End::SessionLost);
        };
        self.callbacks
            .emit(Event::Session(SessionEvent::Reconnecting));
        // What was encoded for the dead connection is either in the session's unacknowledged
        // frames (data) or not worth resending (heartbeats, acknowledgements).
        self.out.clear();
        let grant = session.grant;
        let seed = setup.policy.jitter_seed.unwrap_or_else(|| {
            u64::from_le_bytes(grant.token.0[..8].try_into().unwrap_or_default())
        });
        let mut backoff = Backoff::new(setup.policy, seed);
        let give_up = Instant::now() + grant.window;
        let capabilities = self.capabilities;
        loop {
            if Instant::now() >= give_up {
                tracing::info!("resume window passed; session lost");
                return Err(End::SessionLost);
            }
            let request = ResumeRequest {
                token: grant.token,
                received: self.session.as_ref().map_or(0, |s| s.streams.received()),
            };
            let attempt = handshake(&setup.dial, self.codec, capabilities, request);
            let attempt = async {
                if setup.attempt_timeout.is_zero() {
                    return attempt.await;
                }
                tokio::time::timeout(setup.attempt_timeout, attempt)
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            };
            let outcome = self
                .expiring(async {
                    tokio::select! {
                        biased;
                        _ = &mut *close => None,
                        outcome = tokio::time::timeout_at(give_up, attempt) => Some(outcome),
                    }
                })
                .await;
            let Some(outcome) = outcome else {
                return Err(End::Client);
            };
            match outcome {
                Err(_) => {
                    tracing::info!("resume window passed; session lost");
                    return Err(End::SessionLost);
                }
                Ok(Ok(Handshake::Lost)) => return Err(End::SessionLost),
                Ok(Ok(Handshake::Moved(endpoint))) => {
                    // The stage moved while we were away: resume there, at once.
                    tracing::info!(%endpoint, "the session moved while away; resuming there");
                    let followed = setup.dial.move_to(Arc::clone(&endpoint))
                        && self
                            .resume
                            .as_mut()
                            .is_some_and(|own| own.dial.move_to(Arc::clone(&endpoint)));
                    if !followed {
                        return Err(End::Moved(endpoint));
                    }
                    *self
                        .status
                        .endpoint
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(endpoint);
                    self.moved = true;
                }
                Ok(Ok(Handshake::Resumed {
                    reader,
                    writer,
                    server_received,
                })) => {
                    let Some(session) = self.session.as_mut() else {
                        return Err(End::SessionLost);
                    };
                    if session.streams.acknowledge(server_received).is_none() {
                        tracing::warn!(server_received, "the server's count is impossible");
                        return Err(End::SessionLost);
                    }
                    let resend: Vec<ClientFrame> =
                        session.streams.unacked().iter().cloned().collect();
                    tracing::info!(resent = resend.len(), "session resumed");
                    for frame in resend {
                        self.encode(frame);
                    }
                    self.callbacks.emit(Event::Session(SessionEvent::Resumed));
                    if std::mem::take(&mut self.moved) {
                        self.callbacks.emit(Event::Session(SessionEvent::Moved));
                    }
                    return Ok((reader, writer));
                }
                Ok(Err(error)) => {
                    let delay = backoff.next_delay();
                    tracing::debug!(%error, ?delay, "resume attempt failed");
                    let wake = (Instant::now() + delay).min(give_up);
                    let closed = self
                        .expiring(async {
                            tokio::select! {
                                biased;
                                _ = &mut *close => true,
                                () = sleep_until(wake) => false,
                            }
                        })
                        .await;
                    if closed {
                        return Err(End::Client);
                    }
                }
            }
        }
    }

    /// Waits for `work`, failing the requests whose timeout passes meanwhile: a request's
    /// timeout holds while its session reconnects, as it does on a live connection. (The
    /// server may still run it once the session resumes; its late reply is discarded.)
    async fn expiring<F: Future>(&mut self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            let next = self.pending.next_deadline();
            tokio::select! {
                biased;
                output = &mut work => return output,
                () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    self.expire(Instant::now());
                }
            }
        }
    }
}
