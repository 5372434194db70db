use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use playhouse_protocol::{DEFAULT_MAX_PACKET_SIZE, max_frame_len};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::upgrade::Upgrading;
use crate::ws_server::{self, WsServerStream};

/// A source of client byte streams (in the style of axum's `serve::Listener`).
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection. Must return promptly: handshakes belong in the stream
    /// ([`Upgrading`]), not here. An error is logged and the server keeps accepting.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;

    /// The address clients connect to.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// A short name for logs and metrics (`tcp`, `tls`, `ws`, `wss`, ...).
    fn transport_name(&self) -> &'static str;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        // Game traffic is many small frames; Nagle would add latency to every reply.
        stream.set_nodelay(true)?;
        Ok((stream, addr))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }

    fn transport_name(&self) -> &'static str {
        "tcp"
    }
}

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
