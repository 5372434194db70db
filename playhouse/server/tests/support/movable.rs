//! A movable stage for the move tests: a counter whose state is its count, players counting
//! their own adds, and Play servers of it joined in one in-memory directory.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use playhouse::testing::EchoActor;
use playhouse::{
    ActorCell, ActorInit, ErrorCode, MemoryDirectory, MeshJoin, MovableActor, MovableStage, Packet,
    PlayServer, Stage, StageContext, StageInit,
};

const WAIT: Duration = Duration::from_secs(10);

/// A counter: every `Add` adds one and answers the new count; its state is the count.
pub struct Counter {
    pub count: u64,
}

impl Stage for Counter {
    type Actor = Mover;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_dispatch(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<Mover>,
        packet: Packet,
    ) {
        self.count += 1;
        actor.actor.adds += 1;
        let text = format!("{} {} {}", packet.msg_id, self.count, actor.actor.adds);
        actor.link.reply(Packet::new("Count", text));
    }

    /// From other servers: `Peek` answers the count, `Bump` adds one, `Nap` adds one slowly.
    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        if packet.msg_id == "Bump" {
            self.count += 1;
        }
        if packet.msg_id == "Nap" {
            // Busy: whatever reaches the stage now waits in its mailbox.
            NAPPING.store(true, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(400)).await;
            self.count += 1;
        }
        ctx.reply(Packet::new("Count", self.count.to_string()));
    }
}

impl MovableStage for Counter {
    fn save(&self) -> Bytes {
        Bytes::copy_from_slice(&self.count.to_le_bytes())
    }

    fn restore(_: &StageInit<'_>, state: Bytes) -> Result<Self, ErrorCode> {
        let bytes: [u8; 8] = state[..]
            .try_into()
            .map_err(|_| ErrorCode::INVALID_MESSAGE)?;
        Ok(Counter {
            count: u64::from_le_bytes(bytes),
        })
    }
}

/// A player counting its own adds (its state moves too).
#[derive(Default)]
pub struct Mover {
    pub adds: u64,
}

impl playhouse::Actor for Mover {
    async fn on_authenticate(
        &mut self,
        link: &mut playhouse::ActorLink,
        packet: Packet,
    ) -> Result<Packet, playhouse::ErrorReply> {
        EchoActor.on_authenticate(link, packet).await
    }
}

impl MovableActor for Mover {
    fn save(&self) -> Bytes {
        Bytes::copy_from_slice(&self.adds.to_le_bytes())
    }

    fn restore(_: &ActorInit<'_>, state: Bytes) -> Result<Self, ErrorCode> {
        let bytes: [u8; 8] = state[..]
            .try_into()
            .map_err(|_| ErrorCode::INVALID_MESSAGE)?;
        Ok(Mover {
            adds: u64::from_le_bytes(bytes),
        })
    }
}

pub async fn play(id: &str, directory: &MemoryDirectory) -> (PlayServer, SocketAddr) {
    play_with(id, directory, |_| {}).await
}

pub async fn play_with(
    id: &str,
    directory: &MemoryDirectory,
    configure: impl FnOnce(&mut playhouse::PlayConfig),
) -> (PlayServer, SocketAddr) {
    let server = PlayServer::builder()
        .server_id(id)
        .configure(configure)
        .movable_stage("Counter", |_| Counter { count: 0 }, |_| Mover::default())
        .default_stage_type("Counter")
        .build()
        .unwrap();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let join =
        MeshJoin::memory("127.0.0.1:0", directory).refresh_interval(Duration::from_millis(50));
    server.join_mesh(join).await.unwrap();
    (server, addr)
}

/// Waits until `server`'s directory view lists `peer`.
pub async fn sees(server: &PlayServer, peer: &str) {
    let center = server
        .services()
        .get::<playhouse::ServerInfoCenter>()
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while center.get(peer).is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} never saw {peer}", server.server_id()));
}

/// Set when a stage starts its `Nap` (only one test sends one).
pub static NAPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The value of series `name` (its first line, whatever its labels) in `server`'s metrics.
pub fn metric(server: &PlayServer, name: &str) -> u64 {
    let text = server.metrics();
    let line = text
        .lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in the exposition"));
    let value = line.rsplit(' ').next().unwrap_or_default();
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name}: {value} is not a count"))
}
