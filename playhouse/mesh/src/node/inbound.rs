//! What the link delivers to the node: messages (liveness ones, replies that complete
//! requests, and the rest, for the inbound handler), broken connections and undelivered
//! frames, which fail the requests they carried at once.

use std::sync::Arc;

use bytes::Bytes;

use super::shared::Shared;
use crate::error::MeshError;
use crate::link::LinkEvent;
use crate::route::{Route, RoutePacket, decode_header};

impl Shared {
    /// Handles one event of the link; a message for the inbound handler comes back.
    pub(super) fn on_event(self: &Arc<Self>, event: LinkEvent) -> Option<RoutePacket> {
        match event {
            LinkEvent::Message {
                from,
                header,
                payload,
            } => {
                let Some(mut header) = decode_header(header) else {
                    tracing::warn!(%from, "undecodable route header; dropped");
                    return None;
                };
                if header.liveness != 0 {
                    self.on_liveness(&from, header.liveness, payload);
                    return None;
                }
                // The connection says who sent it; the header's own claim is kept only when
                // it agrees (then without a copy).
                if header.from != from.as_bytes() {
                    header.from = Bytes::copy_from_slice(from.as_bytes());
                }
                let is_reply = header.is_reply;
                let seq = header.msg_seq;
                let packet = RoutePacket {
                    route: Route::from_header(header),
                    payload,
                };
                if !is_reply {
                    if tracing::enabled!(tracing::Level::DEBUG)
                        && let Some(trace) = packet.route.trace()
                    {
                        tracing::debug!(
                            server = self.server_id(),
                            %from,
                            msg_id = packet.route.msg_id(),
                            stage_id = packet.route.stage_id(),
                            trace_id = %trace.trace_id(),
                            "mesh message received"
                        );
                    }
                    return Some(packet);
                }
                let code = packet.error_code();
                let result = if code.is_success() {
                    Ok(packet)
                } else {
                    Err(MeshError::Remote {
                        code,
                        packet: packet.packet(),
                    })
                };
                if !self.cache.complete(seq, result) {
                    tracing::debug!(seq, %from, "late reply discarded");
                }
            }
            LinkEvent::PeerDown { target } => {
                self.lost().insert(target.to_string());
                let failed = self.cache.fail_target(&target);
                if failed > 0 {
                    tracing::warn!(%target, failed, "peer connection lost; its requests failed");
                }
                // Kept only on trust after it went missing from the directory: with its
                // connection gone too, it is gone (e.g. it stopped gracefully).
                if self.center.forget_unlisted(&target).is_some() {
                    tracing::info!(peer = %target, "mesh peer left the directory");
                    self.link.disconnect(&target);
                }
            }
            LinkEvent::SendFailed { target, header } => {
                if let Some(header) = decode_header(header)
                    && !header.is_reply
                    && header.msg_seq != 0
                {
                    let error = MeshError::ServerNotFound(target.to_string());
                    self.cache.complete(header.msg_seq, Err(error));
                }
            }
        }
        None
    }
}
