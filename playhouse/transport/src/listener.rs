use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A source of client byte streams (in the style of axum's `serve::Listener`).
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection. Must return promptly: handshakes belong in the stream
    /// ([`Upgrading`](crate::upgrade::Upgrading)), not here. An error is logged and the server
    /// keeps accepting.
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
