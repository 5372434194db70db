//! Where client connections come from: a tiny listener trait so TCP, TLS, WebSocket and a
//! simulated network are interchangeable without touching the server logic.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A source of client byte streams (in the style of axum's `serve::Listener`).
///
/// Every stream carries the client wire protocol (length-prefixed frames) as plain bytes.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The peer's address, for logs and per-address limits.
    type Addr: fmt::Display + fmt::Debug + Send + 'static;

    /// Waits for the next connection. An error here is logged and the listener keeps going.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> + Send;

    /// The address clients connect to.
    fn local_addr(&self) -> io::Result<Self::Addr>;

    /// A short name for logs and metrics (`tcp`, `tls`, `ws`, ...).
    fn transport_name(&self) -> &'static str {
        "tcp"
    }
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, Self::Addr)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        // Game traffic is many small frames; Nagle would add latency to every reply.
        stream.set_nodelay(true)?;
        Ok((stream, addr))
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        tokio::net::TcpListener::local_addr(self)
    }
}
