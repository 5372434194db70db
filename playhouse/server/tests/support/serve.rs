//! Setting up a server for a test: one stage type, a TCP port, or one in-memory connection
//! at a time.

use std::net::SocketAddr;

use playhouse::{ActorInit, PlayServer, PlayServerBuilder, Stage, StageInit};
use tokio::io::DuplexStream;

use super::RawClient;

/// A server builder with one stage type, the one a login creates when its stage is missing.
pub fn one_stage_type<S: Stage>(
    name: &str,
    make_stage: impl Fn(&StageInit<'_>) -> S + Send + Sync + 'static,
    make_actor: impl Fn(&ActorInit<'_>) -> S::Actor + Send + Sync + 'static,
) -> PlayServerBuilder {
    PlayServer::builder()
        .stage(name, make_stage, make_actor)
        .default_stage_type(name)
}

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
