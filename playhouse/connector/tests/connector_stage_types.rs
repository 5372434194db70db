//! A client names the stage type it joins or creates (`Connector::connect`'s `stage_type`):
//! a real Play server honours it for the types clients may create, and refuses the rest with
//! a code, over TCP and WebSocket.

use std::time::Duration;

use playhouse::testing::EchoActor;
use playhouse::{ActorCell, ErrorCode, Packet, PlayServer, Stage, StageContext};
use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, Transport};

/// A stage that answers every request with its own type's name.
struct Named(String);

impl Stage for Named {
    type Actor = EchoActor;

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
        actor: &mut ActorCell<EchoActor>,
        _: Packet,
    ) {
        actor.link.reply(Packet::new("Type", self.0.clone()));
    }
}

/// `Lobby` is the default type, clients may create `Arena`, and `Match` only exists when a
/// server creates it; the TCP and WebSocket ports.
async fn server() -> (PlayServer, u16, u16) {
    let named = |init: &playhouse::StageInit<'_>| Named(init.stage_type.to_owned());
    let server = PlayServer::builder()
        .stage("Lobby", named, |_| EchoActor)
        .stage("Arena", named, |_| EchoActor)
        .stage("Match", named, |_| EchoActor)
        .default_stage_type("Lobby")
        .client_stage_types(["Arena"])
        .build()
        .expect("build");
    let tcp = server.listen_tcp("127.0.0.1:0").await.expect("tcp");
    let ws = server.listen_ws("127.0.0.1:0", "/ws").await.expect("ws");
    (server, tcp.port(), ws.port())
}

/// Connects to `stage_id` naming `stage_type` and logs in: the type of the stage joined, or
/// the login's error.
async fn join(
    transport: &Transport,
    port: u16,
    stage_id: i64,
    stage_type: &str,
) -> Result<String, ConnectorError> {
    let config = ConnectorConfig::default()
        .heartbeat_interval(Duration::ZERO)
        .transport(transport.clone());
    let connector = Connector::new(config.use_main_thread_callbacks(false));
    connector
        .connect("127.0.0.1", port, stage_id, stage_type)
        .await?;
    let joined = async {
        connector
            .authenticate(Packet::new("AuthenticateRequest", "alice"))
            .await?;
        let reply = connector.request(Packet::empty("WhichType")).await?;
        Ok(String::from_utf8(reply.payload.to_vec()).expect("utf-8"))
    };
    let joined = tokio::time::timeout(Duration::from_secs(10), joined)
        .await
        .expect("login within 10 s");
    connector.disconnect().await;
    joined
}

fn code(joined: Result<String, ConnectorError>) -> ErrorCode {
    match joined {
        Err(ConnectorError::Server { code, .. }) => code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_stage_type_is_honoured_or_refused_with_a_code() {
    let (server, tcp, ws) = server().await;
    for (transport, port, base) in [
        (Transport::Tcp, tcp, 100),
        (Transport::websocket(), ws, 200),
    ] {
        // Join-or-create by type: the first login creates an Arena, the next joins it.
        let arena = join(&transport, port, base + 1, "Arena").await;
        assert_eq!(arena.unwrap(), "Arena", "{transport:?}");
        let again = join(&transport, port, base + 1, "Arena").await;
        assert_eq!(again.unwrap(), "Arena", "{transport:?}");
        // Naming no type, or the default type, gets the default type.
        assert_eq!(join(&transport, port, base + 2, "").await.unwrap(), "Lobby");
        assert_eq!(
            join(&transport, port, base + 3, "Lobby").await.unwrap(),
            "Lobby"
        );
        // A fresh stage (id 0) of the named type.
        assert_eq!(join(&transport, port, 0, "Arena").await.unwrap(), "Arena");

        // An unknown type is refused, never silently replaced by the default one.
        let unknown = join(&transport, port, base + 4, "NoSuchType").await;
        let error = unknown.as_ref().map(|_| ()).unwrap_err().to_string();
        assert!(error.contains("stage type"), "{error}");
        assert_eq!(code(unknown), ErrorCode::INVALID_STAGE_TYPE);
        // A live stage is joined only under its own type.
        let mismatch = join(&transport, port, base + 1, "Lobby").await;
        assert_eq!(code(mismatch), ErrorCode::INVALID_STAGE_TYPE);
        // A type clients may not create is not created...
        let hidden = join(&transport, port, base + 5, "Match").await;
        assert_eq!(code(hidden), ErrorCode::STAGE_NOT_FOUND);
    }
    // ...and none of the refused logins created a stage: 2 Arenas by id, 2 fresh ones, and
    // 2 Lobbies per transport.
    assert_eq!(server.stage_count(), 8);
    server.stop().await;
}

#[tokio::test]
async fn a_stage_type_longer_than_its_length_byte_is_refused_at_connect() {
    let connector = Connector::new(ConnectorConfig::default());
    let long = "x".repeat(256);
    let connected = connector.connect("127.0.0.1", 9, 1, &long).await;
    assert!(
        matches!(connected, Err(ConnectorError::Unsupported(_))),
        "{connected:?}"
    );
}
