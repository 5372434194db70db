//! The node's side of peer liveness: pinging every connected peer, answering pings, timing
//! pongs, and declaring down (and resetting) a peer that falls silent. When a peer is down is
//! decided by the pure table in [`liveness`]; this carries it out.

use std::sync::Arc;

use bytes::Bytes;

use super::shared::Shared;
use crate::link::LinkError;
use crate::liveness;

impl Shared {
    /// A ping is answered at once (whatever else is queued for the peer); a pong restarts
    /// the peer's silence clock.
    pub(super) fn on_liveness(self: &Arc<Self>, from: &str, kind: u32, payload: Bytes) {
        match kind {
            liveness::PING => {
                let pong = self.link.send(from, self.pong_header.clone(), payload);
                if let Err(LinkError::Unknown(_)) = pong {
                    // A peer that joined since the last refresh: learn it now rather than
                    // let it declare this server down for a directory interval.
                    self.refresh_soon();
                }
            }
            liveness::PONG => {
                let took = self.liveness.pong(from, &payload);
                if let (Some(took), Some(observer)) = (took, self.observer.get()) {
                    observer.liveness_round_trip(from, took);
                }
            }
            _ => tracing::debug!(%from, kind, "unknown liveness message; dropped"),
        }
    }
}

/// Pings every connected peer and declares down those silent for the heartbeat timeout.
/// Wakes at the next ping or the next deadline, so a silent peer is declared down at its
/// deadline, not at the next ping after it.
pub(super) async fn liveness_loop(shared: Arc<Shared>) {
    let mut wake = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = tokio::time::Instant::now();
        let servers = shared.center.all();
        let peers = servers
            .iter()
            .map(|server| server.server_id.as_str())
            .filter(|id| *id != shared.server_id())
            .map(|id| (id, shared.link.is_connected(id)));
        let tick = shared.liveness.tick(now, peers);
        for peer in &tick.declare_down {
            let failed = shared.cache.fail_target(peer);
            tracing::warn!(%peer, failed, "mesh peer answers no pings; declared down, connections reset");
            shared.link.reset(peer);
        }
        if !tick.ping.is_empty() {
            let payload = shared.liveness.ping_payload(now);
            for peer in &tick.ping {
                // A full queue or a connection going down: the next ping, or the deadline,
                // tells.
                let _ = shared
                    .link
                    .send(peer, shared.ping_header.clone(), payload.clone());
            }
        }
        wake = tick.next;
    }
}
