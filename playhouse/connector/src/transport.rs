//! Dialing: TCP, TLS, WebSocket or WebSocket over TLS, through `playhouse-transport`. The
//! connection task is generic over any `AsyncRead + AsyncWrite` stream.

use std::io;
use std::time::Duration;

use playhouse_protocol::{MoveNotice, max_frame_len};
use playhouse_transport::dial::{ClientIo, DialOptions};
use playhouse_transport::tls;

use tokio::net::TcpStream;

use crate::config::{ConnectorConfig, TlsTrust, Transport};
use crate::error::ConnectorError;

mod first_bytes;

use first_bytes::{FirstBytes, describe, looks_like_http};

/// The transport `config` asks for; an error names what cannot be built.
pub(crate) fn dial_options(config: &ConnectorConfig) -> Result<DialOptions, &'static str> {
    let trust = match &config.transport {
        Transport::Tls { trust } | Transport::WebSocketTls { trust, .. } => Some(trust),
        Transport::Tcp | Transport::WebSocket { .. } => None,
    };
    let tls = match trust {
        None => None,
        Some(trust) => {
            let tls = match trust {
                TlsTrust::PublicRoots => tls::client_config_public_roots(),
                TlsTrust::Config(tls) => Ok(tls.clone()),
                TlsTrust::SkipVerification => tls::insecure_client_config(),
            };
            Some(tls.map_err(|_| "the TLS client configuration could not be built")?)
        }
    };
    Ok(DialOptions {
        tls,
        websocket_path: config.transport.websocket_path().map(str::to_owned),
        max_message: max_frame_len(config.max_packet_size),
    })
}

/// `host:port`, the host in brackets when it is an IPv6 address.
pub(crate) fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The host and port of an endpoint (`host:port`, or `[v6]:port`).
pub(crate) fn host_port(endpoint: &str) -> io::Result<(String, u16)> {
    let notice = MoveNotice::from_payload(endpoint.as_bytes()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{endpoint:?} is not host:port"),
        )
    })?;
    let (host, port) = notice.host_port();
    Ok((host.to_owned(), port))
}

/// Connects and runs every handshake, bounded as a whole by `timeout` (zero: unbounded).
pub(crate) async fn dial(
    host: &str,
    port: u16,
    options: &DialOptions,
    timeout: Duration,
) -> io::Result<Box<dyn ClientIo>> {
    let connect = connect(host, port, options);
    if timeout.is_zero() {
        return connect.await;
    }
    tokio::time::timeout(timeout, connect).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connecting to {host}:{port} timed out after {timeout:?}"),
        )
    })?
}

/// A WebSocket handshake that got no HTTP answer: this port does not speak WebSocket.
#[derive(Debug, thiserror::Error)]
#[error("WebSocket handshake with {url} failed: {what} ({source})")]
struct NotWebSocket {
    url: String,
    what: String,
    source: io::Error,
}

/// Dials; for plain WebSocket, keeps the server's first bytes to explain a failed handshake.
async fn connect(host: &str, port: u16, options: &DialOptions) -> io::Result<Box<dyn ClientIo>> {
    let (Some(path), None) = (&options.websocket_path, &options.tls) else {
        return playhouse_transport::dial::dial(host, port, options).await;
    };
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let (stream, seen) = FirstBytes::new(tcp);
    let upgraded = playhouse_transport::dial::upgrade(stream, host, port, options).await;
    upgraded.map_err(|source| {
        let url = format!("ws://{host}:{port}{path}");
        if looks_like_http(&seen) {
            // An HTTP refusal (e.g. 404): the port speaks WebSocket, the path may be wrong.
            let message = format!("WebSocket upgrade at {url} refused: {source}");
            return io::Error::new(source.kind(), message);
        }
        let what = describe(&seen);
        io::Error::new(
            io::ErrorKind::InvalidData,
            NotWebSocket { url, what, source },
        )
    })
}

/// The error for a failed dial: [`ConnectorError::NotWebSocket`] for a WebSocket handshake
/// without an HTTP answer, else [`ConnectorError::Connect`].
pub(crate) fn connect_error(error: io::Error) -> ConnectorError {
    let not_websocket = error
        .get_ref()
        .is_some_and(|inner| inner.is::<NotWebSocket>());
    if not_websocket {
        ConnectorError::NotWebSocket(error)
    } else {
        ConnectorError::Connect(error)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use playhouse_protocol::DEFAULT_MAX_PACKET_SIZE;

    use super::*;

    fn options(transport: Transport) -> DialOptions {
        dial_options(&ConnectorConfig::default().transport(transport)).unwrap()
    }

    #[test]
    fn an_endpoint_is_host_and_port_both_ways() {
        for (host, port, text) in [
            ("127.0.0.1", 7777, "127.0.0.1:7777"),
            ("play-2.internal", 80, "play-2.internal:80"),
            ("::1", 34001, "[::1]:34001"),
        ] {
            assert_eq!(endpoint(host, port), text);
            assert_eq!(host_port(text).unwrap(), (host.to_owned(), port));
        }
        for bad in ["no-port", "host:99999", ":80"] {
            let error = host_port(bad).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn each_transport_dials_what_it_names() {
        let tcp = options(Transport::Tcp);
        assert!(tcp.tls.is_none() && tcp.websocket_path.is_none());
        assert_eq!(tcp.max_message, 2 * 1024 * 1024 + 4);
        assert_eq!(tcp.max_message, max_frame_len(DEFAULT_MAX_PACKET_SIZE));

        let tls = options(Transport::tls());
        assert!(tls.tls.is_some() && tls.websocket_path.is_none());

        let ws = options(Transport::websocket());
        assert!(ws.tls.is_none());
        assert_eq!(ws.websocket_path.as_deref(), Some("/ws"));

        let own = tls::insecure_client_config().unwrap();
        let wss = options(Transport::WebSocketTls {
            path: "/game".into(),
            trust: TlsTrust::Config(own.clone()),
        });
        assert!(
            Arc::ptr_eq(wss.tls.as_ref().unwrap(), &own),
            "the given config is used"
        );
        assert_eq!(wss.websocket_path.as_deref(), Some("/game"));

        // `with_trust` leaves a transport without TLS alone.
        let plain = Transport::websocket().with_trust(TlsTrust::SkipVerification);
        assert!(!plain.is_tls());
        assert_eq!(plain.websocket_path(), Some("/ws"));

        assert!(Transport::tls().is_tls());
        assert!(Transport::websocket_tls().is_tls());
        assert!(!Transport::Tcp.is_tls());
    }
}
