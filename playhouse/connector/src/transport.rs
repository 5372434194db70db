//! Dialing. The connection task is generic over any `AsyncRead + AsyncWrite` stream, so adding
//! WebSocket, TLS or a simulated network means adding a dial function here.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// Opens a TCP connection, bounded by `timeout` (zero: unbounded). Nagle is turned off: game
/// messages are small and latency-sensitive.
pub(crate) async fn dial_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let connect = TcpStream::connect((host, port));
    let stream = if timeout.is_zero() {
        connect.await?
    } else {
        tokio::time::timeout(timeout, connect).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {host}:{port} timed out after {timeout:?}"),
            )
        })??
    };
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not disable Nagle's algorithm");
    }
    Ok(stream)
}
