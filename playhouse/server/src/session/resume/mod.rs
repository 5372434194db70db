//! Resumable sessions: a lost connection parks the session for the resume window, a new
//! connection that names its token takes it over, and what the client missed is replayed.
//!
//! * `registry`: the tokens of live resumable sessions, and what a resuming connection hands
//!   over to the session it names;
//! * `buffer`: one session's numbered streams and its replay buffer.

pub(crate) mod buffer;
pub(crate) mod registry;

use bytes::Bytes;
use futures_util::SinkExt;
use std::collections::BTreeMap;

use playhouse_protocol::{
    ACK_MSG_ID, Capabilities, ClientFrame, END_MSG_ID, ErrorCode, MoveNotice, RESUME_MSG_ID,
    ResumeRequest, ServerFrame, read_count,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

use self::buffer::Resumable;
use self::registry::{Attach, Handover};
use super::end::End;
use super::handle::Outbound;
use super::state::{Session, State};
use crate::limits::throttled;

impl Session {
    /// Numbers a data frame of a resumable session and keeps it until acknowledged.
    pub(in crate::session) fn record(&mut self, frame: &ServerFrame) -> Result<(), End> {
        let Some(resume) = self.resume.as_mut() else {
            return Ok(());
        };
        if frame.is_control() {
            return Ok(());
        }
        resume.record(frame).map_err(|overflow| {
            throttled!(warn, ?overflow, "resume buffer full; session lost");
            self.ctx.metrics().session_lost();
            End::ReplayOverflow
        })
    }

    /// The control frames of resumable sessions.
    pub(in crate::session) async fn resume_control(
        &mut self,
        frame: ClientFrame,
    ) -> Result<(), End> {
        match &*frame.msg_id {
            RESUME_MSG_ID => self.resume_request(frame).await,
            ACK_MSG_ID => {
                let count = read_count(&frame.payload);
                let Some(resume) = self.resume.as_mut() else {
                    return Ok(()); // an ack that raced the end of the session
                };
                if count.is_some_and(|count| resume.acknowledge(count)) {
                    return Ok(());
                }
                throttled!(
                    warn,
                    ?count,
                    "impossible acknowledgement; closing the connection"
                );
                Err(End::ProtocolError)
            }
            END_MSG_ID => {
                self.end_resume();
                Ok(())
            }
            _ => self.reply_error(&frame, ErrorCode::INVALID_MESSAGE).await,
        }
    }

    /// A new connection asks to take over a session: checked here, carried out by the
    /// session's own task once this one hands its socket over.
    pub(in crate::session) async fn resume_request(
        &mut self,
        frame: ClientFrame,
    ) -> Result<(), End> {
        let request = ResumeRequest::from_payload(&frame.payload);
        let (Some(request), State::Fresh, true) = (request, &self.state, frame.msg_seq != 0) else {
            tracing::debug!("resume request malformed, without seq, or not first");
            return self.reply_error(&frame, ErrorCode::INVALID_MESSAGE).await;
        };
        let Some(target) = self.ctx.resumes().find(&request.token) else {
            if let Some(endpoints) = self.ctx.resumes().moved_to(&request.token) {
                // Its stage moved while the client was away: it resumes over there.
                return self.tell_moved(&endpoints).await;
            }
            tracing::debug!(token = ?request.token, "resume of an unknown or lost session");
            return self.reply_error(&frame, ErrorCode::SESSION_LOST).await;
        };
        self.handover = Some(Handover {
            target,
            seq: frame.msg_seq,
            received: request.received,
        });
        Err(End::HandedOver)
    }

    /// A client resuming a session whose stage moved: told where (`@Move@`), then closed.
    async fn tell_moved(&mut self, endpoints: &BTreeMap<String, String>) -> Result<(), End> {
        match endpoints.get(self.transport) {
            Some(endpoint) => {
                let notice = MoveNotice {
                    endpoint: endpoint.clone(),
                };
                tracing::debug!(%endpoint, "resume of a session that moved; told where");
                self.send_now(ServerFrame::move_notice(0, &notice)).await?;
            }
            None => {
                tracing::debug!("resume of a session that moved to a server without this transport")
            }
        }
        Err(End::Moved)
    }

    /// Makes the session resumable if the client asked and the server offers it: registers
    /// a token and sends the grant (before the authentication reply, already queued).
    pub(in crate::session) async fn start_resume(&mut self) -> Result<(), End> {
        let Some(config) = self.ctx.config().resume else {
            return Ok(());
        };
        if !self.granted(Capabilities::RESUME) {
            return Ok(());
        }
        let (tx, rx) = mpsc::channel(1);
        let Some(token) = self.ctx.resumes().register(tx) else {
            return Ok(());
        };
        let resume = Resumable::new(token, config, rx);
        let grant = ServerFrame::session_grant(&resume.grant());
        self.resume = Some(Box::new(resume));
        self.send_now(grant).await
    }

    /// Forgets the resumable session (the client ended it, or authenticates anew).
    pub(in crate::session) fn end_resume(&mut self) {
        if let Some(resume) = self.resume.take() {
            self.ctx.resumes().remove(&resume.token);
        }
    }

    pub(in crate::session) fn resumable_after(&self, end: End) -> bool {
        self.resume.is_some() && matches!(self.state, State::Joined { .. }) && end.lost_connection()
    }

    /// The connection is gone but the session stays, for the resume window: frames for the
    /// client are numbered and kept, the stage notices nothing. `Ok` once a new connection
    /// has taken over.
    pub(in crate::session) async fn park(&mut self, why: End) -> Result<(), End> {
        tracing::debug!(
            why = why.as_str(),
            "connection lost; session kept for the resume window"
        );
        if self.connected {
            self.connected = false;
            self.ctx.metrics().session_closed(self.transport);
        }
        // Let the old socket go now (its peer sees it end), not when a new one replaces it.
        let codec = self.writer.encoder().clone();
        self.reader = FramedRead::new(Box::new(tokio::io::empty()), (*codec).clone());
        self.writer = FramedWrite::new(Box::new(tokio::io::sink()), codec);
        let window = self
            .resume
            .as_ref()
            .map_or_else(Default::default, |r| r.config.window);
        let parked = Instant::now();
        let deadline = parked + window;
        let stop = self.ctx.stop_token().clone();
        loop {
            tokio::select! {
                biased;
                _ = self.kill.cancelled() => return Err(End::ClosedByServer),
                _ = stop.cancelled() => return Err(End::ServerStopping),
                Some(attach) = next_attach(&mut self.resume) => {
                    self.ctx.metrics().resume_gap(parked.elapsed());
                    return self.install(attach).await;
                }
                Some(outbound) = self.rx.recv() => match outbound {
                    Outbound::Frame(frame) => {
                        self.queued.release(&frame);
                        if let Some(frame) = self.checked(frame) {
                            self.record(&frame)?;
                        }
                    }
                    // Kept for the replay as a frame of this session's own.
                    Outbound::Shared(shared) => {
                        self.queued.release(shared.frame());
                        if let Some(frame) = self.checked(shared.frame().clone()) {
                            self.record(&frame)?;
                        }
                    }
                    Outbound::Detached(code) => self.detach(code),
                    // Closed on purpose while the client is away: the session ends here.
                    Outbound::Close(_) => return Err(End::Drained),
                    // The stage moves while the client is away: it resumes at the new server
                    // (a move fails: the session stays parked here).
                    Outbound::Freeze(reply) => self.frozen(reply).await?,
                    Outbound::Moved(_) | Outbound::Thaw | Outbound::Relay(_) => {}
                },
                _ = tokio::time::sleep_until(deadline) => {
                    self.ctx.metrics().session_lost();
                    return Err(End::WindowPassed);
                }
            }
        }
    }

    /// Takes a resuming connection: replies with what the server received, replays what the
    /// client missed, and goes on with live traffic on it.
    pub(in crate::session) async fn install(&mut self, attach: Box<Attach>) -> Result<(), End> {
        let Attach {
            mut reader,
            writer,
            seq,
            received,
            capabilities,
            transport,
        } = *attach;
        let max = self.ctx.config().codec.max_packet_size;
        reader.decoder_mut().set_max_incoming(max);
        // The old connection, if still open, closes here.
        self.reader = reader;
        self.writer = writer;
        self.capabilities = Some(capabilities);
        if self.connected {
            self.ctx.metrics().session_closed(self.transport);
        }
        self.connected = true; // the new connection counted itself when it opened
        self.transport = transport;
        let Some(resume) = self.resume.as_mut() else {
            return Err(End::ResumeImpossible);
        };
        let ours = resume.received();
        let Some(replay) = resume.replay_after(received) else {
            throttled!(
                warn,
                received,
                "resume with an impossible count; session lost"
            );
            self.ctx.metrics().session_lost();
            let lost =
                ServerFrame::new(RESUME_MSG_ID, seq, 0, ErrorCode::SESSION_LOST, Bytes::new());
            let _ = self.send_now(lost).await;
            return Err(End::ResumeImpossible);
        };
        tracing::debug!(received, replayed = replay.len(), "session resumed");
        self.feed_raw(ServerFrame::resumed(seq, ours)).await?;
        for frame in replay {
            self.feed_raw(frame).await?;
        }
        self.flush().await?;
        self.ctx.metrics().session_resumed();
        Ok(())
    }

    /// Gives this connection to the session it resumes (see `resume_request`).
    pub(in crate::session) async fn hand_over(self) {
        let Session {
            reader,
            writer,
            handover,
            capabilities,
            transport,
            ctx,
            ..
        } = self;
        let Some(Handover {
            target,
            seq,
            received,
        }) = handover
        else {
            return;
        };
        let attach = Box::new(Attach {
            reader,
            writer,
            seq,
            received,
            capabilities: capabilities.unwrap_or_default(),
            transport,
        });
        let sent = tokio::select! {
            biased;
            _ = ctx.stop_token().cancelled() => None,
            sent = target.send(attach) => Some(sent),
        };
        match sent {
            // The socket lives on in the session that took it, which counts it from now on.
            Some(Ok(())) => return,
            Some(Err(mpsc::error::SendError(attach))) => {
                // The session ended between the lookup and now.
                let mut writer = attach.writer;
                let lost =
                    ServerFrame::new(RESUME_MSG_ID, seq, 0, ErrorCode::SESSION_LOST, Bytes::new());
                let _ = tokio::time::timeout(ctx.config().write_timeout, writer.send(lost)).await;
            }
            None => {}
        }
        ctx.metrics().session_closed(transport);
    }
}

/// The next connection that resumes this session; never, for a session that is not
/// resumable.
pub(in crate::session) async fn next_attach(
    resume: &mut Option<Box<Resumable>>,
) -> Option<Box<Attach>> {
    match resume {
        Some(resume) => resume.attach.recv().await,
        None => std::future::pending().await,
    }
}
