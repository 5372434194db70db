//! A mesh link that tells the tap of its node's verdicts: the node calls
//! [`MeshLink::reset`] exactly when it declares a peer down, so the wrapper passes the call on
//! and then has the tap check, [`RESET_GRACE`] later, that the connections the peer dialed
//! are gone (see [`accepted`](super::accepted)).

use bytes::Bytes;
use playhouse_mesh::{EventSink, LinkError, MeshLink};

use super::accepted::{AcceptTap, RESET_GRACE};
use crate::trace::now;

/// `L`, with every reset reported to the run's [`AcceptTap`].
pub struct TappedLink<L> {
    inner: L,
    tap: AcceptTap,
    /// The node's server id.
    local: String,
}

impl<L> std::fmt::Debug for TappedLink<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TappedLink")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl<L: MeshLink> TappedLink<L> {
    /// `inner`, the link of node `local`, watched by `tap`.
    pub fn new(inner: L, tap: &AcceptTap, local: &str) -> TappedLink<L> {
        TappedLink {
            inner,
            tap: tap.clone(),
            local: local.to_owned(),
        }
    }
}

impl<L: MeshLink> MeshLink for TappedLink<L> {
    fn address(&self) -> &str {
        self.inner.address()
    }

    fn start(&self, sink: EventSink) {
        self.inner.start(sink);
    }

    fn connect(&self, server_id: &str, address: &str) {
        self.inner.connect(server_id, address);
    }

    fn disconnect(&self, server_id: &str) {
        self.inner.disconnect(server_id);
    }

    fn reset(&self, server_id: &str) {
        self.inner.reset(server_id);
        let at = now();
        let condemned = self.tap.reset(&self.local, server_id);
        if condemned.is_empty() {
            return;
        }
        let (tap, local, peer) = (self.tap.clone(), self.local.clone(), server_id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(RESET_GRACE).await;
            tap.check_reset(&local, &peer, at, &condemned);
        });
    }

    fn send(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), LinkError> {
        self.inner.send(target, header, payload)
    }

    fn is_connected(&self, server_id: &str) -> bool {
        self.inner.is_connected(server_id)
    }

    fn close(&self) {
        self.inner.close();
    }
}
