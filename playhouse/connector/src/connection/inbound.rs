//! The receiving half of the task: a reply settles its pending request, a push goes to the
//! application (`push`), and the control frames of resumable sessions (grant,
//! acknowledgements) update the session; a close or move notice is kept for when the
//! connection ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use playhouse_protocol::{
    ACK_MSG_ID, CLOSE_MSG_ID, ClientFrame, MOVE_MSG_ID, ResumeGrant, SESSION_MSG_ID, ServerFrame,
    read_count,
};

use super::task::Task;
use crate::error::ConnectorError;
use crate::pushes::Push;
use crate::resume::ClientSession;

impl Task {
    pub(super) fn on_frame(&mut self, frame: ServerFrame) {
        // Heartbeat echoes, the answer to our hello (seq 0 asked for none, but a server may
        // send one) and the frames of resumable sessions are the connection's business, not
        // the application's.
        if frame.is_control() {
            self.on_control(frame);
            return;
        }
        if let Some(count) = self.session.as_mut().and_then(|s| s.streams.received_one()) {
            self.encode(ClientFrame::ack(count));
        }
        if frame.msg_seq == 0 {
            self.deliver_push(Push {
                stage_id: frame.stage_id,
                stage_type: Arc::clone(&self.stage_type),
                packet: frame.into_packet(),
            });
            return;
        }
        let Some(in_flight) = self.pending.remove(frame.msg_seq) else {
            tracing::debug!(
                seq = frame.msg_seq,
                msg_id = %frame.msg_id,
                "reply to no pending request (timed out?); discarded"
            );
            return;
        };
        self.publish_pending();
        let (code, reply_stage) = (frame.error_code, frame.stage_id);
        if in_flight.authenticate {
            // Granted or not, the session (if any) formed before this reply.
            self.forming = None;
        }
        let packet = frame.into_packet();
        let result = if code.is_success() {
            if in_flight.authenticate {
                self.status.authenticated.store(true, Ordering::SeqCst);
                // Connected with stage 0 ("create one for me"): adopt the stage the server chose.
                if self.stage_id == 0 && reply_stage != 0 {
                    self.stage_id = reply_stage;
                    self.shared_stage_id.store(reply_stage, Ordering::SeqCst);
                }
            }
            Ok(packet)
        } else {
            Err(ConnectorError::Server { code, packet })
        };
        self.complete(in_flight.responder, result);
    }

    fn on_control(&mut self, frame: ServerFrame) {
        match &*frame.msg_id {
            SESSION_MSG_ID => {
                let grant = ResumeGrant::from_payload(&frame.payload);
                if let (Some(grant), Some(logged)) = (grant, self.forming.take()) {
                    tracing::debug!(window = ?grant.window, "resumable session granted");
                    self.session = Some(ClientSession::start(grant, logged));
                }
            }
            ACK_MSG_ID => {
                let count = read_count(&frame.payload);
                if let Some(session) = self.session.as_mut()
                    && count.and_then(|c| session.streams.acknowledge(c)).is_none()
                {
                    tracing::warn!(?count, "the server acknowledged an impossible count");
                }
            }
            CLOSE_MSG_ID => {
                tracing::info!(code = %frame.error_code, "the server is closing the connection");
                self.closing = Some(frame.error_code);
            }
            MOVE_MSG_ID => self.on_move_notice(&frame.payload),
            _ => {}
        }
    }
}
