//! One call across the mesh keeps one trace id: an API server asks a stage, the stage asks an
//! API server in turn, and the log lines of both servers (the sender's, the receiver's, the
//! stage's and the handler's) carry the same `trace_id`. Real sockets (TCP link), in-memory
//! directory; the servers share this process, so their lines are told apart by `server`.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use playhouse::{
    Actor, ActorCell, ActorLink, ApiServer, ErrorCode, ErrorReply, MemoryDirectory, MeshError,
    MeshJoin, Packet, PlayServer, Stage, StageContext,
};
use tokio::time::Instant;

/// Log output, captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// `Ask` (from another server) asks api-1 `Lookup` and answers with its reply.
struct Room;
struct Nobody;

impl Stage for Room {
    type Actor = Nobody;

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
        _: &mut ActorCell<Nobody>,
        _: Packet,
    ) {
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, _packet: Packet) {
        tracing::info!("stage asks the API server");
        let looked_up = ctx
            .sender()
            .request_to_api("api-1", Packet::empty("Lookup"))
            .await;
        ctx.reply(looked_up.unwrap_or_else(|_| Packet::empty("Failed")));
    }
}

impl Actor for Nobody {
    async fn on_authenticate(
        &mut self,
        _: &mut ActorLink,
        _: Packet,
    ) -> Result<Packet, ErrorReply> {
        Err(ErrorReply::from(ErrorCode::AUTHENTICATION_FAILED))
    }
}

#[tokio::test]
async fn one_mesh_call_has_one_trace_id_in_both_servers_logs() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("playhouse=debug,playhouse_mesh=debug,mesh_trace=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let directory = MemoryDirectory::new();
    let join =
        || MeshJoin::memory("127.0.0.1:0", &directory).refresh_interval(Duration::from_millis(50));
    let play = PlayServer::builder()
        .server_id("play-1")
        .stage("Room", |_| Room, |_| Nobody)
        .build()
        .unwrap();
    play.join_mesh(join()).await.unwrap();
    let api = ApiServer::builder()
        .server_id("api-1")
        .handlers(|h| {
            h.add("Lookup", |_: Packet, _sender| async move {
                tracing::info!("the API handler runs");
                Ok::<_, ErrorCode>(Packet::empty("Found"))
            });
        })
        .start(join())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let created = api
            .sender()
            .create_stage("play-1", "Room", 9, Packet::empty("Make"))
            .await;
        if !matches!(created, Err(MeshError::ServerNotFound(_))) {
            created.unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "play-1 never reachable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let reply = api
        .sender()
        .request_to_stage("play-1", 9, Packet::empty("Ask"))
        .await
        .unwrap();
    assert_eq!(&*reply.msg_id, "Found");

    let lines = log.lines();
    let sent = lines
        .iter()
        .find(|l| {
            l.contains("mesh message sent")
                && l.contains("server=\"api-1\"")
                && l.contains("msg_id=Ask")
        })
        .unwrap_or_else(|| panic!("api-1 logged no send of Ask:\n{}", lines.join("\n")));
    let trace_id = sent.split("trace_id=").nth(1).unwrap()[..32].to_owned();
    let traced: Vec<&String> = lines.iter().filter(|l| l.contains(&trace_id)).collect();
    let has = |what: &str, server: &str| {
        traced
            .iter()
            .any(|l| l.contains(what) && l.contains(server))
    };
    let all = traced
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        has("mesh message received", "server=\"play-1\""),
        "play-1 receives Ask:\n{all}"
    );
    assert!(
        has("stage asks the API server", "play-1"),
        "the stage's line:\n{all}"
    );
    assert!(
        has("mesh message sent", "server=\"play-1\""),
        "play-1 sends Lookup:\n{all}"
    );
    assert!(
        has("mesh message received", "server=\"api-1\""),
        "api-1 receives Lookup:\n{all}"
    );
    assert!(
        has("the API handler runs", "api-1"),
        "the handler's line:\n{all}"
    );
    play.stop().await;
    api.stop().await;
}
