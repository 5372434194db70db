//! turmoil's simulated TCP behind PlayHouse's transport traits: [`SimListener`] is a
//! [`playhouse_transport::Listener`] (Play server clients, mesh link), [`SimDialer`] a
//! [`playhouse_mesh::Dialer`] (mesh link), [`dial`] the connector's side.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use playhouse_mesh::Dialer;
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

/// Dials simulated TCP by host name (turmoil's DNS).
#[derive(Clone, Copy, Debug, Default)]
pub struct SimDialer;

impl Dialer for SimDialer {
    type Io = TcpStream;

    async fn dial(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        TcpStream::connect((host, port)).await
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
