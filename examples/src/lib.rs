//! Shared pieces of the example server processes: configuration from the environment, the
//! mesh join, the echo room, the movable tally room ([`tally`]), and waiting for a stop
//! signal.
//!
//! Environment (all optional):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `PLAYHOUSE_SERVER_ID` | `play-1` / `api-1` | the server id |
//! | `PLAYHOUSE_REDIS_URL` | unset: no directory | Redis directory URL, e.g. `redis://127.0.0.1:6379` |
//! | `PLAYHOUSE_REDIS_PREFIX` | `playhouse:server:` | directory key prefix |
//! | `PLAYHOUSE_MESH_LINK` | `zmq` | `zmq` (ZeroMQ ROUTER) or `tcp` (length-delimited) |
//! | `PLAYHOUSE_MESH_BIND` | `127.0.0.1:0` | mesh bind address |
//! | `PLAYHOUSE_ADVERTISE_HOST` | the bound IP | host other servers dial |
//! | `PLAYHOUSE_TCP_BIND` | `127.0.0.1:0` | Play node: client TCP listener |
//! | `PLAYHOUSE_HTTP_BIND` | `127.0.0.1:0` | API node: HTTP listener |
//! | `PLAYHOUSE_PLAY_ID` | `play-1` | API node: the Play server it creates stages on |
//!
//! Each process prints one JSON line with its endpoints on stdout once it is ready.

pub mod arena;
pub mod compat;
pub mod counter;
pub mod tally;

use std::sync::Arc;
use std::time::Duration;

use playhouse::{
    Actor, ActorCell, ActorLink, ErrorCode, ErrorReply, MeshJoin, Packet, Stage, StageContext,
};
use playhouse_mesh::{Directory, MemoryDirectory, RedisDirectory, RedisDirectoryConfig};

/// A setting from the environment, or `default`.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Logs to stderr (`RUST_LOG` overrides the `info` default).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// How this process joins the mesh, from the environment.
pub async fn mesh_join() -> Result<MeshJoin, Box<dyn std::error::Error>> {
    let directory: Arc<dyn Directory> = match std::env::var("PLAYHOUSE_REDIS_URL") {
        Ok(url) => {
            let prefix = env_or("PLAYHOUSE_REDIS_PREFIX", "playhouse:server:");
            let config = RedisDirectoryConfig::new().key_prefix(prefix);
            Arc::new(RedisDirectory::connect(&url, config).await?)
        }
        Err(_) => Arc::new(MemoryDirectory::new()),
    };
    let bind = env_or("PLAYHOUSE_MESH_BIND", "127.0.0.1:0");
    let advertise = std::env::var("PLAYHOUSE_ADVERTISE_HOST").ok();
    let join = match env_or("PLAYHOUSE_MESH_LINK", "zmq").as_str() {
        "tcp" => MeshJoin::tcp(bind, MemoryDirectory::new()),
        _ => MeshJoin::zmq(bind, MemoryDirectory::new()),
    };
    let join = match advertise {
        Some(host) => join.advertise_host(host),
        None => join,
    };
    let join = join.directory(directory);
    Ok(join
        .refresh_interval(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(10)))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// A room that echoes client requests and answers `Ping` from other servers.
#[derive(Debug)]
pub struct EchoRoom;

/// A player of [`EchoRoom`]; the authenticate payload is its account id.
#[derive(Debug)]
pub struct EchoPlayer;

impl Stage for EchoRoom {
    type Actor = EchoPlayer;

    async fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        packet: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::new(
            "RoomCreated",
            format!("{} {}", ctx.stage_id(), packet.msg_id),
        ))
    }

    async fn on_dispatch(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<EchoPlayer>,
        packet: Packet,
    ) {
        actor.link.reply(packet);
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        ctx.reply(Packet::new("Pong", packet.payload));
    }
}

impl Actor for EchoPlayer {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let account = String::from_utf8_lossy(&packet.payload).into_owned();
        if account.is_empty() {
            return Err(ErrorCode::AUTHENTICATION_FAILED.into());
        }
        link.set_account_id(account);
        Ok(Packet::empty("Welcome"))
    }
}
