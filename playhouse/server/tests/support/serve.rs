//! Starting a built server for a test: on a TCP port, or one in-memory connection at a time.

use std::net::SocketAddr;

use playhouse::{PlayServer, PlayServerBuilder};
use tokio::io::DuplexStream;

use super::RawClient;

/// Builds the server and listens on a free local TCP port.
pub async fn start(builder: PlayServerBuilder) -> (PlayServer, SocketAddr) {
    let server = builder.build().expect("build");
    let addr = server.listen_tcp("127.0.0.1:0").await.expect("listen");
    (server, addr)
}

/// A connection to `server` over an in-memory stream: no sockets, so a paused clock and a
/// single thread decide exactly when each side runs.
pub fn in_memory(server: &PlayServer, stage_id: i64) -> RawClient<DuplexStream> {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    server.serve_connection(server_end, "127.0.0.1:9".parse().unwrap(), "test");
    RawClient::over(client_end, stage_id)
}
