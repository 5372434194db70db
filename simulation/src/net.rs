//! turmoil's simulated TCP behind PlayHouse's transport traits: [`SimListener`] is a
//! [`playhouse_transport::Listener`] (Play server clients; [`MeshListener`] for the mesh link,
//! whose accepted connections the run's tap watches), [`SimDialer`] a
//! [`playhouse_mesh::Dialer`] (mesh link), [`dial`] the connector's side, and [`Cuttable`], a
//! client stream a scenario can cut from the client's side.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use playhouse_mesh::Dialer;

use crate::tap::accepted::AcceptTap;
use crate::tap::mesh::MeshTap;
use crate::tap::stream::Tapped;
use playhouse_transport::Listener;
use turmoil::net::{TcpListener, TcpStream};

/// A turmoil listener accepting simulated TCP connections.
pub struct SimListener {
    inner: TcpListener,
}

impl std::fmt::Debug for SimListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimListener")
            .field("local_addr", &self.inner.local_addr().ok())
            .finish()
    }
}

impl SimListener {
    /// Binds `0.0.0.0:port` on the current simulated host.
    pub async fn bind(port: u16) -> io::Result<SimListener> {
        let inner = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await?;
        Ok(SimListener { inner })
    }
}

impl Listener for SimListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        self.inner.accept().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn transport_name(&self) -> &'static str {
        "tcp"
    }
}

/// The mesh link's listener: a [`SimListener`] whose accepted connections the run's
/// [`AcceptTap`] watches (what a node reads from each peer, and when it drops the connection).
#[derive(Debug)]
pub struct MeshListener {
    inner: SimListener,
    tap: AcceptTap,
    /// The accepting node.
    local: String,
}

impl MeshListener {
    /// Binds `0.0.0.0:port` on the current simulated host, for node `local`.
    pub async fn bind(port: u16, tap: &AcceptTap, local: &str) -> io::Result<MeshListener> {
        Ok(MeshListener {
            inner: SimListener::bind(port).await?,
            tap: tap.clone(),
            local: local.to_owned(),
        })
    }
}

impl Listener for MeshListener {
    type Io = Tapped<TcpStream>;

    async fn accept(&mut self) -> io::Result<(Tapped<TcpStream>, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        Ok((self.tap.wrap(&self.local, stream), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn transport_name(&self) -> &'static str {
        "tcp"
    }
}

/// Dials simulated TCP by host name (turmoil's DNS); the mesh link's dialer, whose
/// connections the run's [`MeshTap`] watches when it has one.
#[derive(Clone, Debug, Default)]
pub struct SimDialer {
    /// The tap, and the name of the node dialing.
    tap: Option<(MeshTap, String)>,
}

impl SimDialer {
    /// A dialer for node `local` whose connections `tap` watches.
    pub fn tapped(tap: &MeshTap, local: &str) -> SimDialer {
        SimDialer {
            tap: Some((tap.clone(), local.to_owned())),
        }
    }
}

impl Dialer for SimDialer {
    type Io = Tapped<TcpStream>;

    async fn dial(&self, host: &str, port: u16) -> io::Result<Tapped<TcpStream>> {
        let stream = TcpStream::connect((host, port)).await?;
        Ok(match &self.tap {
            Some((tap, local)) => tap.wrap(local, host, stream),
            None => Tapped::untapped(stream),
        })
    }
}

/// Opens a simulated TCP connection to `host:port`, giving up after `timeout` (a held
/// handshake never answers).
pub async fn dial(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(connected) => connected,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// A client connection that can be cut from the client's side, as when a phone drops its
/// network: once its token is cancelled the stream is dropped (the server sees the connection
/// end) and every read and write fails with `ConnectionReset`.
pub struct Cuttable {
    inner: Option<TcpStream>,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl std::fmt::Debug for Cuttable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuttable")
            .field("open", &self.inner.is_some())
            .finish()
    }
}

impl Cuttable {
    /// `stream`, cut when `token` is cancelled.
    pub fn new(stream: TcpStream, token: CancellationToken) -> Self {
        Cuttable {
            inner: Some(stream),
            cut: Box::pin(token.cancelled_owned()),
        }
    }

    /// The open stream, or the error once cut (registering for the cut either way).
    fn open(&mut self, cx: &mut Context<'_>) -> io::Result<Pin<&mut TcpStream>> {
        if self.cut.as_mut().poll(cx).is_ready() {
            self.inner = None;
        }
        match self.inner.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::ErrorKind::ConnectionReset.into()),
        }
    }
}

impl AsyncRead for Cuttable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = self.open(cx)?;
        stream.poll_read(cx, buf)
    }
}

impl AsyncWrite for Cuttable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = self.open(cx)?;
        stream.poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = self.open(cx)?;
        stream.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = self.open(cx)?;
        ready!(stream.poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}
