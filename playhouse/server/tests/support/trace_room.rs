//! The stage and servers of the trace tests (`mesh_trace`, `mesh_trace_otlp`): play-1 with
//! stage 9 of `Room`, whose server messages ask api-1's `Lookup` handler.

use std::time::Duration;

use playhouse::{
    Actor, ActorCell, ActorLink, ApiServer, ErrorCode, ErrorReply, MemoryDirectory, MeshError,
    MeshJoin, Packet, PlayServer, Stage, StageContext,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// `Ask` (from another server) asks api-1 `Lookup` and answers with its reply.
pub struct Room;
pub struct Nobody;

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

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        // The request leaves the handler: made here, sent from another task.
        let lookup = |variant: &str| Packet::new("Lookup", variant.as_bytes().to_vec());
        match &*packet.msg_id {
            "AskWithCallback" => {
                let request = ctx.sender().request_to_api("api-1", lookup("callback"));
                ctx.request_with_callback(request, |_: &mut Room, _, result| {
                    tracing::info!(ok = result.is_ok(), "the callback runs");
                });
                return;
            }
            "AskInBlock" => {
                let sender = ctx.sender();
                let request = async move { sender.request_to_api("api-1", lookup("block")).await };
                ctx.async_block(request, |_: &mut Room, _, _| {});
                return;
            }
            "AskSpawned" => {
                tokio::spawn(ctx.sender().request_to_api("api-1", lookup("spawned")));
                return;
            }
            _ => {}
        }
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

/// play-1 with stage 9 of `Room`, and api-1 whose `Lookup` handler reports the payload it
/// got on `looked_up`.
pub async fn cluster(looked_up: mpsc::Sender<String>) -> (PlayServer, ApiServer) {
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
            h.add("Lookup", move |packet: Packet, _sender| {
                let looked_up = looked_up.clone();
                async move {
                    let variant = String::from_utf8_lossy(&packet.payload).into_owned();
                    tracing::info!(%variant, "the API handler runs");
                    let _ = looked_up.send(variant).await;
                    Ok::<_, ErrorCode>(Packet::empty("Found"))
                }
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
    (play, api)
}
