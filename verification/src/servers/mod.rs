//! The servers under test: `play-1` with `TestStage` as its default stage type and the shared
//! services, started once on ephemeral ports. Verifiers that must stop or misconfigure a
//! server build a temporary one from the same [`play_server_builder`].

pub mod services;
mod test_actor;
mod test_stage;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use playhouse::{PlayServer, PlayServerBuilder};

pub use test_actor::TestActor;
pub use test_stage::TestStage;

use services::{GreetingService, SharedCounter, StageJournal};

/// The stage type name of [`TestStage`]; play-1's default stage type.
pub const TEST_STAGE: &str = "TestStage";

/// The greeting the shared [`GreetingService`] answers with.
pub const GREETING: &str = "hello from the shared GreetingService";

/// A Play server builder with the verification stage types and shared services registered.
pub fn play_server_builder(server_id: &str) -> PlayServerBuilder {
    PlayServer::builder()
        .server_id(server_id)
        .stage(TEST_STAGE, TestStage::new, TestActor::new)
        .default_stage_type(TEST_STAGE)
        .service(Arc::new(GreetingService::new(GREETING)))
        .service(Arc::new(SharedCounter::default()))
        .service(Arc::new(StageJournal::default()))
}

/// Builds a server from `builder` and starts a TCP listener on an ephemeral port of 127.0.0.1.
pub async fn start_play(builder: PlayServerBuilder) -> io::Result<(PlayServer, SocketAddr)> {
    let server = builder.build().map_err(io::Error::other)?;
    let tcp = server.listen_tcp("127.0.0.1:0").await?;
    Ok((server, tcp))
}

/// The long-lived servers of one verification run.
#[derive(Debug)]
pub struct Servers {
    /// `play-1`.
    pub play: PlayServer,
    /// play-1's TCP endpoint.
    pub play_tcp: SocketAddr,
}

impl Servers {
    /// Starts every server.
    pub async fn start() -> io::Result<Servers> {
        let (play, play_tcp) = start_play(play_server_builder("play-1")).await?;
        tracing::info!(%play_tcp, "play-1 is up");
        Ok(Servers { play, play_tcp })
    }

    /// Every endpoint as one JSON object: `{"servers":[{"id":..,"type":..,"tcp":..}]}`, one
    /// key per listener that exists.
    pub fn endpoints_json(&self) -> String {
        serde_json::json!({
            "servers": [{
                "id": self.play.server_id(),
                "type": "play",
                "tcp": self.play_tcp.to_string(),
            }]
        })
        .to_string()
    }

    /// Stops every server gracefully.
    pub async fn stop(&self) {
        self.play.stop().await;
    }
}
