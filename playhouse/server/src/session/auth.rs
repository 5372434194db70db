//! Authentication: a login queued as a join in the stage the client names (created with the
//! default stage type when missing), awaited within the auth timeout, retried once when the
//! stage closed under it.

use bytes::Bytes;
use playhouse_protocol::{ClientFrame, ErrorCode, ServerFrame};
use tokio::time::Instant;

use super::end::End;
use super::killable::until_killed;
use super::state::{Session, State};
use crate::limits::ClientAdmission;
use crate::stage::handle::JoinOutcome;
use crate::stage::host::{Login, PendingJoin, Refused};

impl Session {
    pub(super) async fn authenticate(
        &mut self,
        frame: ClientFrame,
        auth_deadline: Instant,
    ) -> Result<(), End> {
        self.authenticate_with(frame, auth_deadline, 1).await
    }

    async fn authenticate_with(
        &mut self,
        frame: ClientFrame,
        auth_deadline: Instant,
        retries_left: u8,
    ) -> Result<(), End> {
        let requested_stage = frame.stage_id;
        if self.ctx.is_stopping() {
            return Err(End::ServerStopping);
        }
        // A new authentication ends the resumable session of the last one.
        self.end_resume();
        let reply_id = self.ctx.auth_reply_id().clone();
        let seq = frame.msg_seq;
        let login = Login {
            stage_id: frame.stage_id,
            stage_type: self.stage_type.clone(),
            session: self.handle.clone(),
            reply_id: reply_id.clone(),
            seq,
            packet: frame.into_packet(),
        };
        // A login that would create a stage spends this connection's creation allowance and
        // takes a place in its source address's quota.
        let admit = ClientAdmission {
            creations: self.stage_creations.as_mut(),
            quota: self.ctx.stage_quota(),
            source: self.source,
            metrics: self.ctx.metrics(),
        };
        let login = self.ctx.host().login(login, admit);
        let PendingJoin { stage, outcome } = match until_killed(&self.kill, login).await? {
            Ok(pending) => pending,
            Err(Refused { stage_id, code }) => {
                let reply = ServerFrame::new(reply_id, seq, stage_id, code, Bytes::new());
                return self.send_now(reply).await;
            }
        };
        // Fresh connections must finish authenticating in time, however slow the stage is.
        let deadline = match self.state {
            State::Fresh => auth_deadline,
            _ => Instant::now() + self.ctx.config().auth_timeout,
        };
        let outcome = tokio::select! {
            biased;
            _ = self.kill.cancelled() => return Err(End::ClosedByServer),
            outcome = outcome => outcome,
            _ = tokio::time::sleep_until(deadline) => return Err(End::AuthTimeout),
        };
        match outcome {
            Ok(JoinOutcome::Joined { actor }) => {
                tracing::debug!(stage = stage.stage_id(), actor, "authenticated");
                self.state = State::Joined {
                    stage: stage.into(),
                    actor,
                };
                let max = self.ctx.config().codec.max_packet_size;
                self.reader.decoder_mut().set_max_incoming(max);
                self.start_resume().await?;
            }
            Ok(JoinOutcome::StageGone { packet }) if retries_left > 0 => {
                // The stage closed under us: the login goes to a fresh stage (or gets
                // StageNotFound without a default stage type).
                let frame = ClientFrame {
                    msg_id: packet.msg_id,
                    msg_seq: seq,
                    stage_id: requested_stage,
                    payload: packet.payload,
                };
                let retry = self.authenticate_with(frame, auth_deadline, retries_left - 1);
                return Box::pin(retry).await;
            }
            Ok(JoinOutcome::StageGone { .. }) => {
                let code = ErrorCode::STAGE_NOT_FOUND;
                let reply = ServerFrame::new(reply_id, seq, requested_stage, code, Bytes::new());
                return self.send_now(reply).await;
            }
            _ => {}
        }
        Ok(())
    }
}
