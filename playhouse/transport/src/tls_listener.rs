//! TLS over any [`Listener`] (feature `tls`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::listener::Listener;
use crate::upgrade::Upgrading;

/// TLS (rustls) over any listener.
pub struct TlsListener<L> {
    inner: L,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl<L: std::fmt::Debug> std::fmt::Debug for TlsListener<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<L: Listener> TlsListener<L> {
    /// Serves TLS with `config` (see [`crate::tls`]) on top of `inner`.
    pub fn new(inner: L, config: Arc<rustls::ServerConfig>) -> Self {
        TlsListener {
            inner,
            acceptor: tokio_rustls::TlsAcceptor::from(config),
        }
    }
}

impl<L: Listener> Listener for TlsListener<L> {
    type Io = Upgrading<tokio_rustls::server::TlsStream<L::Io>>;

    async fn accept(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        let (io, addr) = self.inner.accept().await?;
        let handshake = self.acceptor.accept(io);
        Ok((Upgrading::new(handshake), addr))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn transport_name(&self) -> &'static str {
        match self.inner.transport_name() {
            "tcp" => "tls",
            _ => "tls+other",
        }
    }
}
