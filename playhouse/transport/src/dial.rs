//! The client side: open a byte stream to a PlayHouse server over TCP, TLS, WebSocket or
//! WebSocket over TLS.

use std::io;
#[cfg(feature = "tls")]
use std::sync::Arc;

#[cfg(feature = "ws-client")]
use playhouse_protocol::{DEFAULT_MAX_PACKET_SIZE, max_frame_len};
#[cfg(feature = "tls")]
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

#[cfg(feature = "ws-client")]
use crate::ws::{WsStream, ws_config};

/// Any client byte stream.
pub trait ClientIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ClientIo for T {}

/// How to reach the server.
#[derive(Clone, Debug, Default)]
pub struct DialOptions {
    /// TLS with this configuration (see `crate::tls`); `None` for plain TCP. Feature `tls`.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Speak WebSocket, upgrading at this path (e.g. `/ws`); `None` for raw frames. Without
    /// the `ws-client` feature a path makes dialing fail with [`io::ErrorKind::Unsupported`].
    pub websocket_path: Option<String>,
    /// The largest WebSocket message accepted (`max_frame_len` of the codec's
    /// `max_packet_size`). Default when 0: 2 MiB + 4.
    pub max_message: usize,
}

/// Connects to `host:port` as `options` say.
pub async fn dial(host: &str, port: u16, options: &DialOptions) -> io::Result<Box<dyn ClientIo>> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    upgrade(tcp, host, port, options).await
}

/// Runs the TLS and WebSocket handshakes `options` ask for over an open stream (of any
/// network, e.g. a simulated one).
pub async fn upgrade<S: ClientIo>(
    stream: S,
    host: &str,
    port: u16,
    options: &DialOptions,
) -> io::Result<Box<dyn ClientIo>> {
    #[cfg(feature = "tls")]
    if let Some(config) = &options.tls {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
            .connect(name, stream)
            .await?;
        return websocket(tls, "wss", host, port, options).await;
    }
    websocket(stream, "ws", host, port, options).await
}

#[cfg(feature = "ws-client")]
async fn websocket<S: ClientIo>(
    stream: S,
    scheme: &str,
    host: &str,
    port: u16,
    options: &DialOptions,
) -> io::Result<Box<dyn ClientIo>> {
    let Some(path) = &options.websocket_path else {
        return Ok(Box::new(stream));
    };
    let max = match options.max_message {
        0 => max_frame_len(DEFAULT_MAX_PACKET_SIZE),
        n => n,
    };
    let url = format!("{scheme}://{host}:{port}{path}");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config(max)))
        .await
        .map_err(io::Error::other)?;
    Ok(Box::new(WsStream::new(ws)))
}

#[cfg(not(feature = "ws-client"))]
async fn websocket<S: ClientIo>(
    stream: S,
    _scheme: &str,
    _host: &str,
    _port: u16,
    options: &DialOptions,
) -> io::Result<Box<dyn ClientIo>> {
    match options.websocket_path {
        None => Ok(Box::new(stream)),
        Some(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "WebSocket needs playhouse-transport's `ws-client` feature",
        )),
    }
}
