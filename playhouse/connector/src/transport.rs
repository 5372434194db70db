//! Dialing: TCP, TLS, WebSocket or WebSocket over TLS, through `playhouse-transport`. The
//! connection task is generic over any `AsyncRead + AsyncWrite` stream.

use std::io;
use std::time::Duration;

use playhouse_transport::dial::{ClientIo, DialOptions};
use playhouse_transport::tls;

use crate::ConnectorConfig;

/// The transport `config` asks for; an error names what cannot be built.
pub(crate) fn dial_options(config: &ConnectorConfig) -> Result<DialOptions, &'static str> {
    let tls = if config.use_tls {
        let tls = match (&config.tls_config, config.tls_skip_verification) {
            (_, true) => tls::insecure_client_config(),
            (Some(tls), false) => Ok(tls.clone()),
            (None, false) => tls::client_config_public_roots(),
        };
        Some(tls.map_err(|_| "the TLS client configuration could not be built")?)
    } else {
        None
    };
    Ok(DialOptions {
        tls,
        websocket_path: config.use_websocket.then(|| config.ws_path.clone()),
        max_message: config.max_packet_size + 4,
    })
}

/// Connects and runs every handshake, bounded as a whole by `timeout` (zero: unbounded).
pub(crate) async fn dial(
    host: &str,
    port: u16,
    options: &DialOptions,
    timeout: Duration,
) -> io::Result<Box<dyn ClientIo>> {
    let connect = playhouse_transport::dial::dial(host, port, options);
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
