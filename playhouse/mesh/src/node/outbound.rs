//! What the node sends: messages and requests within the payload bound, and replies, retried
//! for a while when the requester is not connected yet.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use playhouse_protocol::{ErrorCode, Packet};
use prost::Message;

use super::shared::Shared;
use crate::config::REPLY_RETRY;
use crate::error::MeshError;
use crate::link::LinkError;
use crate::route::Route;
use crate::wire::RouteHeader;

impl Shared {
    /// Sends `header` and `payload` to `target`, unless the payload is over `max_payload`.
    pub(super) fn send_raw(
        &self,
        target: &str,
        header: RouteHeader,
        payload: Bytes,
    ) -> Result<(), MeshError> {
        let max = self.config.max_payload;
        if payload.len() > max {
            return Err(MeshError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let mut header = header;
        if !header.is_reply && header.liveness == 0 {
            if header.traceparent.is_empty() {
                let traceparent = crate::trace::TraceContext::for_send().traceparent();
                header.traceparent = Bytes::from(traceparent);
            }
            if tracing::enabled!(tracing::Level::DEBUG)
                && let Ok(traceparent) = std::str::from_utf8(&header.traceparent)
                && let Some(trace) = crate::trace::TraceContext::parse(traceparent)
            {
                tracing::debug!(
                    server = self.server_id(),
                    to = target,
                    msg_id = %String::from_utf8_lossy(&header.msg_id),
                    trace_id = %trace.trace_id(),
                    "mesh message sent"
                );
            }
        }
        let encoded = self.encode(header);
        self.send_encoded(target, encoded, payload)
    }

    /// The header as sent by this server.
    fn encode(&self, mut header: RouteHeader) -> Bytes {
        header.from = self.from.clone();
        header.service_id = u32::from(self.config.service_id);
        Bytes::from(header.encode_to_vec())
    }

    fn send_encoded(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), MeshError> {
        if self.is_closed() {
            return Err(MeshError::Closed);
        }
        if self.liveness.is_down(target) {
            return Err(MeshError::ServerNotFound(target.to_owned()));
        }
        self.link
            .send(target, header, payload)
            .map_err(|error| match error {
                LinkError::Closed => MeshError::Closed,
                _ => MeshError::ServerNotFound(target.to_owned()),
            })
    }

    /// Answers `request` (see [`Mesh::reply`](super::Mesh::reply)).
    pub(super) fn reply(
        self: &Arc<Self>,
        request: &Route,
        code: ErrorCode,
        packet: Packet,
    ) -> Result<(), MeshError> {
        let requester = request.from();
        let request = &request.header;
        if request.msg_seq == 0 {
            return Ok(());
        }
        let max = self.config.max_payload;
        let (code, packet) = if packet.payload.len() > max {
            tracing::warn!(
                len = packet.payload.len(),
                max,
                msg_id = %packet.msg_id,
                "mesh reply too large; the requester gets PACKET_TOO_LARGE"
            );
            (
                ErrorCode::PACKET_TOO_LARGE,
                Packet::empty(packet.msg_id.clone()),
            )
        } else {
            (code, packet)
        };
        // The requester matches a reply by its sequence alone (its request cache), so the
        // reply carries nothing of the request's routing (stage, session, system flags).
        let header = RouteHeader {
            msg_seq: request.msg_seq,
            msg_id: packet.msg_id.clone().into_bytes(),
            error_code: u32::from(code.0),
            is_reply: true,
            ..RouteHeader::default()
        };
        let header = self.encode(header);
        // Cheap clones (reference counts): the retry needs them only if the requester is
        // not connected yet.
        match self.send_encoded(requester, header.clone(), packet.payload.clone()) {
            Err(MeshError::ServerNotFound(_)) => {
                let shared = Arc::clone(self);
                let target = requester.to_owned();
                tokio::spawn(
                    async move { shared.retry_reply(target, header, packet.payload).await },
                );
                Ok(())
            }
            other => other,
        }
    }

    async fn retry_reply(&self, target: String, header: Bytes, payload: Bytes) {
        let deadline = tokio::time::Instant::now() + REPLY_RETRY;
        let mut refreshed = false;
        while tokio::time::Instant::now() < deadline {
            if !refreshed && self.center.get(&target).is_none() {
                refreshed = self.refresh().await.is_ok();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            match self.send_encoded(&target, header.clone(), payload.clone()) {
                Err(MeshError::ServerNotFound(_)) => continue,
                _ => return,
            }
        }
        tracing::warn!(%target, "reply undeliverable: the requester is unreachable");
    }
}
