//! [`TcpLink`]: length-delimited frames over any byte stream (production TCP or a simulated
//! network).
//!
//! Each connection carries frames one way: a server dials each peer once and sends on that
//! connection only ([`outgoing`]); the peer's frames arrive on the connection it dialed
//! ([`incoming`]). Liveness is the mesh node's: it pings every peer and
//! [`reset`](MeshLink::reset)s one that falls silent, which drops both connections with it.

pub(crate) mod config;
mod incoming;
mod outgoing;
mod shared;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use playhouse_transport::Listener;
use tokio::sync::{mpsc, oneshot};

use self::config::TcpLinkConfig;
use self::incoming::accept_loop;
use self::shared::Shared;
use super::address::advertised_address;
use super::dialer::{Dialer, TcpDialer};
use super::peers::{PeerTable, lock};
use super::{EventSink, LinkError, MeshLink};

/// Length-delimited frames over byte streams: one outgoing connection per peer (sending
/// only), incoming connections receiving only — the same discipline as the ZeroMQ link.
pub struct TcpLink<D: Dialer = TcpDialer> {
    shared: Arc<Shared<D>>,
}

impl<D: Dialer> fmt::Debug for TcpLink<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpLink")
            .field("server_id", &self.shared.server_id)
            .field("address", &self.shared.address)
            .finish_non_exhaustive()
    }
}

impl TcpLink<TcpDialer> {
    /// Binds `bind` (e.g. `127.0.0.1:0`) with real TCP; the advertised address uses the bound
    /// port and `advertise_host` (default: the bound IP, which must not be unspecified).
    pub async fn bind(
        server_id: &str,
        bind: &str,
        advertise_host: Option<&str>,
        config: TcpLinkConfig,
    ) -> io::Result<TcpLink<TcpDialer>> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let local = listener.local_addr()?;
        let address =
            advertised_address(advertise_host, local.ip(), local.port()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "binding an unspecified address needs an advertised host",
                )
            })?;
        Ok(TcpLink::new(
            server_id, listener, address, TcpDialer, config,
        ))
    }
}

impl<D: Dialer> TcpLink<D> {
    /// A link receiving on `listener` (advertised as `address`) and dialing peers with
    /// `dialer`. It accepts connections once [`started`](MeshLink::start).
    pub fn new<L: Listener>(
        server_id: &str,
        listener: L,
        address: String,
        dialer: D,
        config: TcpLinkConfig,
    ) -> TcpLink<D> {
        let (start, started) = oneshot::channel();
        let shared = Arc::new(Shared {
            server_id: Arc::from(server_id),
            address,
            dialer,
            config,
            start: Mutex::new(Some(start)),
            peers: PeerTable::new(),
            incoming: Mutex::new(HashMap::new()),
            next_incoming: AtomicU64::new(0),
        });
        let accepting = accept_loop(listener, started, Arc::clone(&shared));
        shared.peers.spawn(accepting);
        TcpLink { shared }
    }
}

impl<D: Dialer> MeshLink for TcpLink<D> {
    fn address(&self) -> &str {
        &self.shared.address
    }

    fn start(&self, sink: EventSink) {
        self.shared.peers.set_sink(Arc::clone(&sink));
        if let Some(start) = lock(&self.shared.start).take() {
            let _ = start.send(sink);
        }
    }

    fn connect(&self, server_id: &str, address: &str) {
        let shared = &self.shared;
        shared.peers.connect(server_id, address, |address, cancel| {
            outgoing::open(shared, server_id, address, cancel)
        });
    }

    fn disconnect(&self, server_id: &str) {
        self.shared.peers.disconnect(server_id);
    }

    fn reset(&self, server_id: &str) {
        let shared = &self.shared;
        if let Some(incoming) = lock(&shared.incoming).remove(server_id) {
            incoming.cancel.cancel();
        }
        shared.peers.reconnect(server_id, |address, cancel| {
            outgoing::open(shared, server_id, address, cancel)
        });
    }

    fn send(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), LinkError> {
        self.shared.peers.with(target, |peer| {
            if !peer.up.load(Ordering::Acquire) {
                return Err(LinkError::NotConnected(target.to_owned()));
            }
            peer.tx.try_send((header, payload)).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => LinkError::Busy(target.to_owned()),
                mpsc::error::TrySendError::Closed(_) => LinkError::NotConnected(target.to_owned()),
            })
        })
    }

    fn is_connected(&self, server_id: &str) -> bool {
        let up = |peer: &shared::Outgoing| peer.up.load(Ordering::Acquire);
        self.shared.peers.is_connected(server_id, up)
    }

    fn close(&self) {
        self.shared.peers.close();
        lock(&self.shared.incoming).clear();
        lock(&self.shared.start).take();
    }
}

impl<D: Dialer> Drop for TcpLink<D> {
    fn drop(&mut self) {
        self.close();
    }
}
