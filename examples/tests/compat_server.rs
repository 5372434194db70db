//! compat-server through its real endpoints: the HTTP API (camelCase JSON), and the original's
//! client flow (authenticate, echo, failure details, a refused login that may try again) over
//! WebSocket on the HTTP port, WSS on the HTTPS port, TCP and TCP+TLS — with our connector
//! set up as the original's connectors behave (no capability hello).

mod common;

use std::time::Duration;

use playhouse_connector::{
    Connector, ConnectorConfig, ConnectorError, ErrorCode, Packet, TlsTrust, Transport,
};
use playhouse_examples::compat::proto::{
    AuthenticateReply, AuthenticateRequest, EchoReply, EchoRequest, FailReply, FailRequest,
};
use playhouse_examples::compat::{CompatServer, Ports};
use serde_json::{Value, json};

/// One HTTP/1.1 request to `addr`; returns the status and the parsed body.
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    common::http(&addr.to_string(), method, path, body.as_ref()).await
}

/// A connector configured like the original's: no capability hello, self-signed TLS accepted.
fn original_like(transport: Transport) -> Connector {
    Connector::new(
        ConnectorConfig::default()
            .transport(transport.with_trust(TlsTrust::SkipVerification))
            .compression(false)
            .use_main_thread_callbacks(false)
            .heartbeat_interval(Duration::ZERO)
            .request_timeout(Duration::from_secs(10)),
    )
}

fn auth(user_id: &str, token: &str) -> Packet {
    Packet::from_message(&AuthenticateRequest {
        user_id: user_id.to_owned(),
        token: token.to_owned(),
        metadata: Default::default(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_speaks_the_originals_json() {
    let server = CompatServer::start(&Ports::default()).await.unwrap();
    let (status, health) = http(server.http, "GET", "/api/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(health, json!({"status": "healthy", "serverId": "play-1"}));

    let body = json!({"stageType": "TestStage", "stageId": 1001});
    let (status, created) = http(server.http, "POST", "/api/stages", Some(body.clone())).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created,
        json!({"success": true, "stageId": 1001, "replyPayloadId": "TestStage:100"})
    );
    // The same id again: refused as `success: false`, still 200 (the client retries).
    let (status, again) = http(server.http, "POST", "/api/stages", Some(body.clone())).await;
    assert_eq!((status, &again["success"]), (200, &json!(false)), "{again}");

    let (status, existing) =
        http(server.http, "POST", "/api/stages/get-or-create", Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(
        existing,
        json!({"success": true, "isCreated": false, "stageId": 1001, "replyPayloadId": null})
    );
    let fresh = json!({"stageType": "TestStage", "stageId": 1002});
    let (_, created) = http(
        server.http,
        "POST",
        "/api/stages/get-or-create",
        Some(fresh),
    )
    .await;
    assert_eq!(created["isCreated"], json!(true), "{created}");

    // A plain GET on the WebSocket path is not an upgrade.
    let (status, _) = http(server.http, "GET", "/ws", None).await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_client_flow_works_on_every_endpoint() {
    let server = CompatServer::start(&Ports::default()).await.unwrap();
    let endpoints = [
        ("ws", server.http, Transport::websocket()),
        ("wss", server.https, Transport::websocket_tls()),
        ("tcp", server.tcp, Transport::Tcp),
        ("tls", server.tls, Transport::tls()),
    ];
    for (index, (name, addr, transport)) in endpoints.into_iter().enumerate() {
        let stage_id = 2000 + index as i64;
        let connector = original_like(transport);
        connector
            .connect("127.0.0.1", addr.port(), stage_id, "TestStage")
            .await
            .unwrap_or_else(|e| panic!("{name}: connect: {e}"));

        // A refused login carries an AuthenticateReply and leaves the connection open.
        let refused = connector
            .authenticate(auth("someone", "invalid_token"))
            .await;
        let Err(ConnectorError::Server { code, packet }) = refused else {
            panic!("{name}: an invalid token was not refused: {refused:?}");
        };
        assert_eq!(code, ErrorCode::AUTHENTICATION_FAILED, "{name}");
        assert_eq!(packet.msg_id, "AuthenticateReply", "{name}");
        let refusal: AuthenticateReply = packet.parse().unwrap();
        assert!(!refusal.success, "{name}");
        assert_eq!(refusal.received_token, "invalid_token", "{name}");
        assert!(
            connector.is_connected(),
            "{name}: the refusal closed the connection"
        );

        let reply = connector
            .authenticate(auth("player", "valid_token"))
            .await
            .unwrap_or_else(|e| panic!("{name}: authenticate: {e}"));
        let welcome: AuthenticateReply = reply.parse().unwrap();
        assert!(
            welcome.success && !welcome.account_id.is_empty(),
            "{name}: {welcome:?}"
        );

        let echo = EchoRequest {
            content: format!("over {name}"),
            sequence: 7,
        };
        let reply = connector
            .request(Packet::from_message(&echo))
            .await
            .unwrap();
        assert_eq!(reply.msg_id, "EchoReply", "{name}");
        let echoed: EchoReply = reply.parse().unwrap();
        assert_eq!(
            (echoed.content.as_str(), echoed.sequence),
            (echo.content.as_str(), 7)
        );

        // Failure details travel as an ordinary reply.
        let fail = FailRequest {
            error_code: 1000,
            error_message: "Test Error".to_owned(),
        };
        let reply = connector
            .request(Packet::from_message(&fail))
            .await
            .unwrap();
        assert_eq!(reply.msg_id, "FailReply", "{name}");
        let details: FailReply = reply.parse().unwrap();
        assert_eq!(
            (details.error_code, details.message.as_str()),
            (1000, "Test Error")
        );
        connector.disconnect().await;
    }
    server.stop().await;
}
