//! Play and API servers in one mesh (TCP link, in-memory directory), driven through the API
//! sender and a real client.

mod support;

use std::time::Duration;

use playhouse::testing::EchoActor;
use playhouse::{
    ActorCell, ApiServer, ErrorCode, MemoryDirectory, MeshError, MeshJoin, Packet, PlayServer,
    RoutingPolicy, Stage, StageContext,
};
use support::RawClient;

struct Room;

impl Stage for Room {
    type Actor = EchoActor;

    async fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        packet: Packet,
    ) -> Result<Packet, ErrorCode> {
        if packet.msg_id == "Refuse" {
            return Err(ErrorCode(1500));
        }
        Ok(Packet::new(
            "Created",
            format!(
                "{}:{}",
                ctx.stage_id(),
                String::from_utf8_lossy(&packet.payload)
            ),
        ))
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<EchoActor>,
        packet: Packet,
    ) {
        let sender = ctx.sender();
        let result = match &*packet.msg_id {
            "AskStage" => {
                let text = String::from_utf8_lossy(&packet.payload).into_owned();
                let (play, stage) = text.split_once(':').unwrap();
                sender
                    .request_to_stage(
                        play,
                        stage.parse().unwrap(),
                        Packet::new("Ping", "from-stage"),
                    )
                    .await
            }
            "AskApi" => {
                sender
                    .request_to_api("api-1", Packet::new("Hello", "stage"))
                    .await
            }
            _ => Ok(packet),
        };
        match result {
            Ok(reply) => actor.link.reply(reply),
            Err(error) => actor.link.reply_error(error.code()),
        }
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        match &*packet.msg_id {
            "Ping" => {
                let text = format!(
                    "pong {} {}",
                    ctx.stage_id(),
                    String::from_utf8_lossy(&packet.payload)
                );
                ctx.reply(Packet::new("Pong", text));
            }
            "Notify" => ctx.broadcast(packet),
            _ => ctx.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

fn fast(directory: &MemoryDirectory) -> MeshJoin {
    MeshJoin::memory("127.0.0.1:0", directory).refresh_interval(Duration::from_millis(50))
}

async fn play(id: &str, directory: &MemoryDirectory) -> (PlayServer, std::net::SocketAddr) {
    let server = PlayServer::builder()
        .server_id(id)
        .stage("Room", |_| Room, |_| EchoActor)
        .build()
        .unwrap();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    server.join_mesh(fast(directory)).await.unwrap();
    (server, addr)
}

async fn api(id: &str, directory: &MemoryDirectory) -> ApiServer {
    let server_id = id.to_owned();
    ApiServer::builder()
        .server_id(id)
        .handlers(move |h| {
            let me = server_id.clone();
            h.add("Hello", move |packet: Packet, sender| {
                let me = me.clone();
                async move {
                    let text = format!(
                        "{me} got {} from {}",
                        String::from_utf8_lossy(&packet.payload),
                        sender.from()
                    );
                    Ok::<_, ErrorCode>(Packet::new("HelloReply", text))
                }
            });
            let me = server_id.clone();
            h.add("WhoAmI", move |_, _| {
                let me = me.clone();
                async move { Ok::<_, ErrorCode>(Packet::new("Me", me)) }
            });
            h.add(
                "Forward",
                |packet: Packet, sender: playhouse::ApiSender| async move {
                    let target = String::from_utf8_lossy(&packet.payload).into_owned();
                    sender
                        .request_to_api(&target, Packet::new("WhoAmI", ""))
                        .await
                        .map_err(|e| e.code())
                },
            );
            h.add("Boom", |_, _| async move { Err(ErrorCode(1700)) });
            h.add_system("Status", |_, _| async move {
                Ok::<_, ErrorCode>(Packet::new("Status", "ok"))
            });
        })
        .start(fast(directory).request_timeout(Duration::from_secs(5)))
        .await
        .unwrap()
}

/// Waits until every pair can talk (connections come up after directory refreshes).
async fn settle(api: &ApiServer, targets: &[&str]) {
    for target in targets {
        let mut ok = false;
        for _ in 0..200 {
            let probe = api
                .sender()
                .request_to_system(target, Packet::new("Status", ""))
                .await;
            if !matches!(probe, Err(MeshError::ServerNotFound(_))) {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "{target} never reachable from {}", api.server_id());
    }
}

#[tokio::test]
async fn api_creates_stages_and_talks_to_them() {
    let directory = MemoryDirectory::new();
    let (_play1, addr1) = play("play-1", &directory).await;
    let api1 = api("api-1", &directory).await;
    settle(&api1, &["play-1", "api-1"]).await;
    let sender = api1.sender();

    let created = sender
        .create_stage("play-1", "Room", 100, Packet::new("Make", "x"))
        .await
        .unwrap();
    assert_eq!(created.stage_id, 100);
    assert_eq!(
        (created.reply.msg_id.as_ref(), &created.reply.payload[..]),
        ("Created", &b"100:x"[..])
    );

    let again = sender
        .create_stage("play-1", "Room", 100, Packet::empty("Make"))
        .await;
    assert_eq!(again.unwrap_err().code(), ErrorCode::STAGE_ALREADY_EXISTS);
    let bad_type = sender
        .create_stage("play-1", "Nope", 101, Packet::empty("Make"))
        .await;
    assert_eq!(bad_type.unwrap_err().code(), ErrorCode::INVALID_STAGE_TYPE);
    let refused = sender
        .create_stage("play-1", "Room", 102, Packet::empty("Refuse"))
        .await;
    assert_eq!(refused.unwrap_err().code(), ErrorCode(1500));
    let generated = sender
        .create_stage("play-1", "Room", 0, Packet::empty("Make"))
        .await
        .unwrap();
    assert_ne!(generated.stage_id, 0);

    let fresh = sender
        .get_or_create_stage("play-1", "Room", 200, Packet::new("Make", "g"))
        .await
        .unwrap();
    assert!(fresh.is_created);
    assert_eq!(&fresh.reply.payload[..], b"200:g");
    let existing = sender
        .get_or_create_stage("play-1", "Room", 200, Packet::new("Make", "g"))
        .await
        .unwrap();
    assert!(!existing.is_created);

    let pong = sender
        .request_to_stage("play-1", 100, Packet::new("Ping", "api"))
        .await
        .unwrap();
    assert_eq!(&pong.payload[..], b"pong 100 api");
    let missing = sender
        .request_to_stage("play-1", 999, Packet::new("Ping", ""))
        .await;
    assert_eq!(missing.unwrap_err().code(), ErrorCode::STAGE_NOT_FOUND);

    // A client joins the stage the API created (no default stage type on this server) and
    // receives a push the API sends to the stage.
    let mut client = RawClient::connect(addr1, 100).await;
    assert!(client.authenticate("joiner").await.is_success());
    sender
        .send_to_stage("play-1", 100, Packet::new("Notify", "hello room"))
        .unwrap();
    assert_eq!(client.push("Notify").await.payload, "hello room");

    assert!(sender.destroy_stage("play-1", 100).await.unwrap());
    assert_eq!(
        client.request("Echo", b"").await.error_code,
        ErrorCode::STAGE_NOT_FOUND
    );
    assert!(!sender.destroy_stage("play-1", 100).await.unwrap());
}

#[tokio::test]
async fn stages_talk_to_stages_and_apis_across_servers() {
    let directory = MemoryDirectory::new();
    let (_play1, addr1) = play("play-1", &directory).await;
    let (_play2, _) = play("play-2", &directory).await;
    let api1 = api("api-1", &directory).await;
    settle(&api1, &["play-1", "play-2", "api-1"]).await;
    let sender = api1.sender();
    sender
        .create_stage("play-1", "Room", 1, Packet::empty("Make"))
        .await
        .unwrap();
    sender
        .create_stage("play-2", "Room", 2, Packet::empty("Make"))
        .await
        .unwrap();
    sender
        .create_stage("play-1", "Room", 3, Packet::empty("Make"))
        .await
        .unwrap();

    let mut client = RawClient::connect(addr1, 1).await;
    assert!(client.authenticate("asker").await.is_success());
    let cross = client.request("AskStage", b"play-2:2").await;
    assert_eq!(cross.payload, "pong 2 from-stage");
    let same = client.request("AskStage", b"play-1:3").await;
    assert_eq!(same.payload, "pong 3 from-stage");
    let gone = client.request("AskStage", b"play-2:77").await;
    assert_eq!(gone.error_code, ErrorCode::STAGE_NOT_FOUND);
    let api_reply = client.request("AskApi", b"").await;
    assert_eq!(api_reply.payload, "api-1 got stage from play-1");
}

#[tokio::test]
async fn apis_talk_to_each_other_route_by_service_and_propagate_errors() {
    let directory = MemoryDirectory::new();
    let api1 = api("api-1", &directory).await;
    let api2 = api("api-2", &directory).await;
    settle(&api1, &["api-1", "api-2"]).await;
    settle(&api2, &["api-1"]).await;
    let sender = api1.sender();

    let hello = sender
        .request_to_api("api-2", Packet::new("Hello", "hi"))
        .await
        .unwrap();
    assert_eq!(hello.payload, "api-2 got hi from api-1");
    let forwarded = sender
        .request_to_api("api-2", Packet::new("Forward", "api-1"))
        .await
        .unwrap();
    assert_eq!(
        forwarded.payload, "api-1",
        "api-2 asked api-1 from inside its handler"
    );
    let boom = sender
        .request_to_api("api-2", Packet::new("Boom", ""))
        .await;
    assert_eq!(boom.unwrap_err().code(), ErrorCode(1700));
    let unknown = sender
        .request_to_api("api-2", Packet::new("Nope", ""))
        .await;
    assert_eq!(unknown.unwrap_err().code(), ErrorCode::HANDLER_NOT_FOUND);
    let status = sender
        .request_to_system("api-2", Packet::new("Status", ""))
        .await
        .unwrap();
    assert_eq!(status.payload, "ok");
    let self_call = sender
        .request_to_api("api-1", Packet::new("WhoAmI", ""))
        .await
        .unwrap();
    assert_eq!(self_call.payload, "api-1");

    let mut seen = Vec::new();
    for _ in 0..4 {
        let reply = sender
            .request_to_api_service(2, Packet::new("WhoAmI", ""), RoutingPolicy::RoundRobin)
            .await
            .unwrap();
        seen.push(String::from_utf8(reply.payload.to_vec()).unwrap());
    }
    seen.sort();
    assert_eq!(seen, ["api-1", "api-1", "api-2", "api-2"]);
    let none = sender
        .request_to_api_service(42, Packet::new("WhoAmI", ""), RoutingPolicy::Weighted)
        .await;
    assert_eq!(none.unwrap_err().code(), ErrorCode::SERVER_NOT_FOUND);
}

#[tokio::test]
async fn a_stopped_play_server_fails_fast_and_a_restarted_one_serves_again() {
    let directory = MemoryDirectory::new();
    let (play2, _) = play("play-2", &directory).await;
    let api1 = api("api-1", &directory).await;
    settle(&api1, &["play-2"]).await;
    let sender = api1.sender();
    sender
        .create_stage("play-2", "Room", 5, Packet::empty("Make"))
        .await
        .unwrap();

    play2.stop().await;
    let started = tokio::time::Instant::now();
    let down = sender
        .request_to_stage("play-2", 5, Packet::new("Ping", ""))
        .await;
    assert_eq!(down.unwrap_err().code(), ErrorCode::SERVER_NOT_FOUND);
    assert!(started.elapsed() < Duration::from_secs(2), "failed fast");

    let (_play2b, _) = play("play-2", &directory).await;
    settle(&api1, &["play-2"]).await;
    sender
        .create_stage("play-2", "Room", 5, Packet::empty("Make"))
        .await
        .unwrap();
    let pong = sender
        .request_to_stage("play-2", 5, Packet::new("Ping", "again"))
        .await
        .unwrap();
    assert_eq!(pong.payload, "pong 5 again");
}

/// A shared service of the API server, for the test below.
struct Motd(&'static str);

#[tokio::test]
async fn api_handlers_fetch_shared_services_from_their_sender() {
    let directory = MemoryDirectory::new();
    let api1 = ApiServer::builder()
        .server_id("api-svc")
        .service(std::sync::Arc::new(Motd("welcome")))
        .handlers(|h| {
            h.add("Motd", |_, sender: playhouse::ApiSender| async move {
                let motd = sender.services().get::<Motd>().ok_or(ErrorCode(1800))?;
                let control = sender
                    .services()
                    .get::<playhouse::ServerControl>()
                    .ok_or(ErrorCode(1801))?;
                let center = sender
                    .services()
                    .get::<playhouse::ServerInfoCenter>()
                    .ok_or(ErrorCode(1802))?;
                let known = center.all().len();
                Ok::<_, ErrorCode>(Packet::new(
                    "Motd",
                    format!("{} {} {known}", motd.0, control.server_id()),
                ))
            });
        })
        .start(fast(&directory))
        .await
        .unwrap();
    settle(&api1, &["api-svc"]).await;
    let reply = api1
        .sender()
        .request_to_api("api-svc", Packet::new("Motd", ""))
        .await
        .unwrap();
    assert_eq!(reply.payload, "welcome api-svc 1");
}
