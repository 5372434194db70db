//! WebSocket over any [`Listener`] (feature `ws`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use playhouse_protocol::{DEFAULT_MAX_PACKET_SIZE, max_frame_len};

use crate::listener::Listener;
use crate::upgrade::Upgrading;
use crate::ws_server::{self, WsServerStream};

/// WebSocket over any listener: the HTTP upgrade at `path`, then binary messages that each
/// hold one whole frame.
#[derive(Debug)]
pub struct WsListener<L> {
    inner: L,
    path: Arc<str>,
    max_message: usize,
}

impl<L: Listener> WsListener<L> {
    /// Serves WebSocket upgrades at `path` (e.g. `/ws`) on top of `inner`; other paths get 404.
    /// Messages are capped at the default packet size (2 MiB) plus the length prefix
    /// ([`max_frame_len`]); see [`WsListener::max_message`].
    pub fn new(inner: L, path: impl Into<Arc<str>>) -> Self {
        WsListener {
            inner,
            path: path.into(),
            max_message: max_frame_len(DEFAULT_MAX_PACKET_SIZE),
        }
    }

    /// The largest WebSocket message accepted, in bytes: [`max_frame_len`] of the codec's
    /// `max_packet_size`.
    #[must_use]
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }
}

impl<L: Listener> Listener for WsListener<L> {
    type Io = Upgrading<WsServerStream<L::Io>>;

    async fn accept(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        let (io, addr) = self.inner.accept().await?;
        let path = Arc::clone(&self.path);
        let max_message = self.max_message;
        let handshake = async move { ws_server::accept(io, &path, max_message).await };
        Ok((Upgrading::new(handshake), addr))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn transport_name(&self) -> &'static str {
        match self.inner.transport_name() {
            "tcp" => "ws",
            "tls" => "wss",
            _ => "ws+other",
        }
    }
}
