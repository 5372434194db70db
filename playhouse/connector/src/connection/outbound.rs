//! The sending half of the task: commands and heartbeats become encoded frames (numbered in a
//! resumable session), requests enter the pending table, and expired ones fail.

use std::sync::atomic::Ordering;

use playhouse_protocol::{ClientFrame, Encoder, Packet};
use tokio::time::Instant;

use super::command::{Command, Request, Responder, complete};
use super::task::{InFlight, Task};
use crate::error::ConnectorError;

impl Task {
    pub(super) fn encode(&mut self, frame: ClientFrame) -> bool {
        match self.encoder.encode(frame, &mut self.out) {
            Ok(()) => true,
            Err(error) => {
                // The API validates packets first, so this is a bug, not bad input.
                tracing::warn!(%error, "connector could not encode a frame; dropped");
                false
            }
        }
    }

    /// Encodes a data frame, numbering it in the resumable session (or the one forming).
    pub(super) fn send_data(&mut self, frame: ClientFrame) -> bool {
        let kept = (self.session.is_some() || self.forming.is_some()).then(|| frame.clone());
        if !self.encode(frame) {
            return false;
        }
        if let Some(frame) = kept {
            match (&mut self.session, &mut self.forming) {
                (Some(session), _) => session.streams.sent(frame),
                (None, Some(forming)) => forming.push(frame),
                (None, None) => {}
            }
        }
        true
    }

    /// A heartbeat, with the acknowledgement of a resumable session when it moved.
    pub(super) fn heartbeat(&mut self) {
        if let Some(count) = self.session.as_mut().and_then(|s| s.streams.pending_ack()) {
            self.encode(ClientFrame::ack(count));
        }
        self.encode(ClientFrame::heartbeat());
    }

    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Send(packet) => {
                let frame = ClientFrame::new(packet.msg_id, 0, self.stage_id, packet.payload);
                self.send_data(frame);
            }
            Command::Request(request) => self.start_request(request),
        }
    }

    pub(super) fn start_request(&mut self, request: Request) {
        let Request {
            packet,
            deadline,
            taken,
            authenticate,
            responder,
        } = request;
        if let Some(taken) = taken {
            taken.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if deadline <= Instant::now() {
            // It waited out its timeout before the task could take it (a reconnect).
            self.complete(responder, Err(ConnectorError::RequestTimeout));
            return;
        }
        let in_flight = InFlight {
            authenticate,
            responder,
        };
        let seq = match self.pending.insert(in_flight, deadline) {
            Ok(seq) => seq,
            Err(in_flight) => {
                let error =
                    ConnectorError::Unsupported("all 65535 request sequence numbers are in use");
                self.complete(in_flight.responder, Err(error));
                return;
            }
        };
        self.publish_pending();
        let frame = ClientFrame::new(packet.msg_id, seq, self.stage_id, packet.payload);
        let sent = if authenticate && self.resume.is_some() {
            // A new authentication starts a new session: the last one ends on both sides,
            // and what follows the request is counted in case the server grants one.
            if self.session.take().is_some() {
                self.encode(ClientFrame::end_session());
            }
            let sent = self.encode(frame);
            self.forming = sent.then(Vec::new);
            sent
        } else {
            self.send_data(frame)
        };
        if !sent && let Some(in_flight) = self.pending.remove(seq) {
            self.publish_pending();
            let error = ConnectorError::Unsupported("packet cannot be encoded");
            self.complete(in_flight.responder, Err(error));
        }
    }

    pub(super) fn publish_pending(&self) {
        self.status
            .pending
            .store(self.pending.len(), Ordering::SeqCst);
    }

    pub(super) fn complete(&self, responder: Responder, result: Result<Packet, ConnectorError>) {
        complete(
            &self.callbacks,
            self.stage_id,
            &self.stage_type,
            responder,
            result,
            None,
        );
    }

    pub(super) fn expire(&mut self, now: Instant) {
        while let Some(in_flight) = self.pending.pop_expired(now) {
            self.publish_pending();
            self.complete(in_flight.responder, Err(ConnectorError::RequestTimeout));
        }
    }
}
