//! The read path: each frame from the client, by kind — heartbeats, the capability hello,
//! the control frames of resumable sessions, and data frames by where the session stands.

use std::sync::Arc;

use playhouse_protocol::{
    Capabilities, ClientFrame, ErrorCode, Hello, INVALID_MSG_ID, MsgId, ServerFrame,
};
use tokio::time::Instant;

use super::end::End;
use super::killable::until_killed;
use super::outbound::track_request;
use super::state::{Session, State};
use crate::limits::throttled;
use crate::metrics::Rejection;
use crate::reply::error_frame;
use crate::stage::handle::Undelivered;

impl Session {
    /// One frame from the client, which `arrived` then.
    pub(super) async fn on_frame(
        &mut self,
        frame: ClientFrame,
        arrived: Instant,
        auth_deadline: Instant,
    ) -> Result<(), End> {
        // Every path but a message to the stage is boxed: what this future holds inline, every
        // idle connection holds (see `run`).
        if frame.is_heartbeat() {
            return cold!(self.heartbeat());
        }
        if frame.is_hello() {
            return cold!(self.hello(frame));
        }
        if self.granted(Capabilities::RESUME) && frame.is_control() {
            return cold!(self.resume_control(frame));
        }
        // A data frame of a resumable session (not the authentication that starts one).
        let counted = self.resume.is_some();
        self.on_data(frame, arrived, auth_deadline).await?;
        if counted && let Some(count) = self.resume.as_mut().and_then(|r| r.received_one()) {
            cold!(self.send_now(ServerFrame::ack(count)))?;
        }
        Ok(())
    }

    /// Answers a heartbeat (after the acknowledgement a resumable session owes).
    async fn heartbeat(&mut self) -> Result<(), End> {
        if let Some(count) = self.resume.as_mut().and_then(|r| r.pending_ack()) {
            self.feed(ServerFrame::ack(count)).await?;
        }
        self.send_now(ServerFrame::heartbeat()).await
    }

    async fn on_data(
        &mut self,
        frame: ClientFrame,
        arrived: Instant,
        auth_deadline: Instant,
    ) -> Result<(), End> {
        if frame.msg_id.is_empty() {
            // The original accepts such a frame, and its C++ connector cannot survive the
            // connection closing under a pending request: a request gets `INVALID_MESSAGE`
            // (under an id of its own: those connectors reject an empty one), a one-way
            // message is dropped, and the connection stays.
            let seq = frame.msg_seq;
            self.span.in_scope(|| {
                throttled!(warn, seq, "message with an empty id; refused");
            });
            if frame.msg_seq == 0 {
                return Ok(());
            }
            let reply = error_frame(
                MsgId::from(INVALID_MSG_ID),
                frame.msg_seq,
                frame.stage_id,
                ErrorCode::INVALID_MESSAGE,
            );
            return cold!(self.send_now(reply));
        }
        let is_auth = frame.msg_id == *self.ctx.auth_msg_id();
        match &self.state {
            State::Joined { .. } if is_auth => {
                let reply = reply_frame(&frame, ErrorCode::ALREADY_AUTHENTICATED);
                cold!(self.send_now(reply))
            }
            State::Joined { stage, actor } => {
                let (stage_id, seq) = (frame.stage_id, frame.msg_seq);
                if seq != 0 && self.ctx.metrics().collects() {
                    track_request(&mut self.in_flight, seq, arrived);
                }
                let sent = stage.client(*actor, self.id, seq, frame.into_packet());
                let Err(Undelivered(packet)) = until_killed(&self.kill, sent).await? else {
                    return Ok(());
                };
                // The stage is gone (closed or panicked).
                let code = ErrorCode::STAGE_NOT_FOUND;
                self.detach(code);
                if seq == 0 {
                    return Ok(());
                }
                cold!(self.send_now(error_frame(packet.msg_id, seq, stage_id, code)))
            }
            _ if is_auth => cold!(self.authenticate(frame, auth_deadline)),
            State::Fresh => {
                self.span.in_scope(|| {
                    throttled!(warn, msg_id = %frame.msg_id, "message before authentication");
                });
                self.ctx.metrics().reject(Rejection::BeforeAuth);
                // A request learns why before the close (a wrong authenticate message id is
                // the usual cause); the connection ends either way.
                cold!(self.reply_error(&frame, ErrorCode::NOT_AUTHENTICATED))?;
                Err(End::BeforeAuth)
            }
            State::Detached { code, .. } => {
                let code = *code;
                cold!(self.reply_error(&frame, code))
            }
        }
    }

    /// The capability handshake (see `playhouse_protocol::Capabilities`): once, before
    /// authentication; grants what was asked for and this server offers, and keeps the stage
    /// type it names for the logins to come.
    async fn hello(&mut self, frame: ClientFrame) -> Result<(), End> {
        let hello = Hello::from_payload(&frame.payload);
        let (Some(hello), State::Fresh, None) = (hello, &self.state, self.capabilities) else {
            tracing::debug!("late, repeated or malformed hello");
            return self.reply_error(&frame, ErrorCode::INVALID_MESSAGE).await;
        };
        let requested = hello.requested;
        let granted = requested & self.ctx.offered_capabilities();
        self.capabilities = Some(granted);
        if granted.contains(Capabilities::STAGE_TYPE) {
            self.stage_type = hello.stage_type.map(Arc::from);
        }
        self.writer
            .encoder_mut()
            .set_compression(granted.contains(Capabilities::LZ4));
        tracing::debug!(?requested, ?granted, "capabilities");
        if frame.msg_seq == 0 {
            return Ok(());
        }
        self.send_now(ServerFrame::hello(frame.msg_seq, granted))
            .await
    }

    /// Answers request `frame` with `code` (a one-way message gets no answer).
    pub(super) async fn reply_error(
        &mut self,
        frame: &ClientFrame,
        code: ErrorCode,
    ) -> Result<(), End> {
        if frame.msg_seq == 0 {
            return Ok(());
        }
        self.send_now(reply_frame(frame, code)).await
    }
}

/// The error reply to `frame`.
fn reply_frame(frame: &ClientFrame, code: ErrorCode) -> ServerFrame {
    error_frame(frame.msg_id.clone(), frame.msg_seq, frame.stage_id, code)
}
