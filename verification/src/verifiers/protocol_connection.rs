//! ProtocolConnection: the connector reaches play-1 over TCP, TLS, WebSocket and WebSocket
//! over TLS — connect,
//! then authenticate and a request/reply on each transport. TLS trusts the certificate the
//! servers generated at start-up and refuses a server it cannot verify. A request whose
//! message id is empty (the original's codec allows it) is answered `InvalidMessage` under
//! the id `@Invalid@`, and the connection stays.

use playhouse_connector::{Connector, ConnectorConfig, TlsTrust};
use prost::Message;

use crate::check::TestResult;
use crate::client::{self, WAIT, describe};
use crate::context::TestCtx;
use crate::proto::{EchoReply, EchoRequest};
use crate::raw::{RawClient, client_frame};
use crate::runner::{Category, TestCase};
use crate::servers::TEST_STAGE;
use crate::{ensure, ensure_eq};

/// The ProtocolConnection category (stage ids 24000..).
pub(super) fn category() -> Category {
    Category {
        name: "ProtocolConnection",
        base: 24_000,
        tests: vec![
            TestCase::new("Tcp_Connect", |t| Box::pin(connect(t, Transport::Tcp))),
            TestCase::new("Tcp_AuthenticateAndRequest", |t| {
                Box::pin(authenticate(t, Transport::Tcp))
            }),
            TestCase::new("Tls_Connect", |t| Box::pin(connect(t, Transport::Tls))),
            TestCase::new("Tls_AuthenticateAndRequest", |t| {
                Box::pin(authenticate(t, Transport::Tls))
            }),
            TestCase::new("WebSocket_Connect", |t| {
                Box::pin(connect(t, Transport::WebSocket))
            }),
            TestCase::new("WebSocket_AuthenticateAndRequest", |t| {
                Box::pin(authenticate(t, Transport::WebSocket))
            }),
            TestCase::new("SecureWebSocket_Connect", |t| {
                Box::pin(connect(t, Transport::SecureWebSocket))
            }),
            TestCase::new("SecureWebSocket_AuthenticateAndRequest", |t| {
                Box::pin(authenticate(t, Transport::SecureWebSocket))
            }),
            TestCase::new("Tls_UntrustedCertificate_Refused", |t| {
                Box::pin(untrusted(t))
            }),
            TestCase::new("EmptyMsgId_InvalidMessageAndConnectionStays", |t| {
                Box::pin(empty_msg_id(t))
            }),
        ],
    }
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Tcp,
    Tls,
    WebSocket,
    SecureWebSocket,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::WebSocket => "ws",
            Transport::SecureWebSocket => "wss",
        }
    }

    fn offset(self) -> i64 {
        match self {
            Transport::Tcp => 1,
            Transport::Tls => 2,
            Transport::WebSocket => 3,
            Transport::SecureWebSocket => 5,
        }
    }
}

/// The connector settings, host and port for `transport` on play-1.
fn endpoint(t: &TestCtx, transport: Transport) -> (ConnectorConfig, &'static str, u16) {
    let servers = t.servers();
    let direct = client::direct_config();
    match transport {
        Transport::Tcp => (direct, "127.0.0.1", servers.play_tcp.port()),
        Transport::Tls => (
            direct.transport(playhouse_connector::Transport::Tls {
                trust: TlsTrust::Config(servers.tls_client.clone()),
            }),
            // The generated certificate names `localhost`.
            "localhost",
            servers.play_tls.port(),
        ),
        Transport::WebSocket => (
            direct.transport(playhouse_connector::Transport::websocket()),
            "127.0.0.1",
            servers.play_ws.port(),
        ),
        Transport::SecureWebSocket => (
            direct.transport(playhouse_connector::Transport::WebSocketTls {
                path: "/ws".into(),
                trust: TlsTrust::Config(servers.tls_client.clone()),
            }),
            "localhost",
            servers.play_wss.port(),
        ),
    }
}

async fn open(t: &TestCtx, transport: Transport, offset: i64) -> Result<Connector, String> {
    let (config, host, port) = endpoint(t, transport);
    let (connector, tap) = t.connector(config);
    let mut events = tap.subscribe();
    connector
        .connect(host, port, t.stage_id(offset), TEST_STAGE)
        .await
        .map_err(|e| format!("{} connect failed: {}", transport.name(), describe(&e)))?;
    ensure!(
        events.connect(WAIT).await?,
        "on_connect reported false over {}",
        transport.name()
    );
    ensure!(connector.is_connected(), "is_connected is false");
    Ok(connector)
}

async fn connect(t: TestCtx, transport: Transport) -> TestResult {
    let connector = open(&t, transport, transport.offset()).await?;
    ensure!(
        !connector.is_authenticated(),
        "authenticated before authenticating"
    );
    connector.disconnect().await;
    ensure!(
        !connector.is_connected(),
        "still connected after disconnect"
    );
    Ok(())
}

async fn authenticate(t: TestCtx, transport: Transport) -> TestResult {
    let connector = open(&t, transport, transport.offset()).await?;
    let user = format!("proto_{}_user", transport.name());
    let auth = client::authenticate(&connector, &user).await?;
    ensure_eq!(
        auth.stage_id,
        t.stage_id(transport.offset()),
        "joined stage"
    );
    ensure!(connector.is_authenticated(), "is_authenticated is false");
    let content = format!("echo over {}", transport.name());
    let echo: EchoReply = client::request(
        &connector,
        &EchoRequest {
            content: content.clone(),
            sequence: 7,
        },
    )
    .await?;
    connector.disconnect().await;
    ensure_eq!(echo.content, content, "echo content");
    ensure_eq!(echo.sequence, 7, "echo sequence");
    Ok(())
}

async fn untrusted(t: TestCtx) -> TestResult {
    // Default TLS settings trust only public roots: the generated certificate must not pass.
    // The public roots: the servers' generated certificate is not among them.
    let config = client::direct_config().transport(playhouse_connector::Transport::tls());
    let (connector, _tap) = t.connector(config);
    let port = t.servers().play_tls.port();
    let outcome = connector
        .connect("localhost", port, t.stage_id(4), TEST_STAGE)
        .await;
    let authenticated = match outcome {
        Err(_) => false,
        // Some TLS failures surface only on first use.
        Ok(()) => client::authenticate(&connector, "proto_untrusted")
            .await
            .is_ok(),
    };
    connector.disconnect().await;
    ensure!(
        !authenticated,
        "a connector that does not trust the certificate got through"
    );
    Ok(())
}

async fn empty_msg_id(t: TestCtx) -> TestResult {
    let mut raw = RawClient::connect(t.addr()).await?;
    raw.authenticate(t.stage_id(10), "empty_msg_id").await?;
    // A one-way message and a request, both with an empty id.
    raw.write(&client_frame(b"", 0, t.stage_id(10), b""))
        .await?;
    raw.write(&client_frame(b"", 7, t.stage_id(10), b""))
        .await?;
    let reply = raw.reply(7, WAIT).await?;
    ensure_eq!(reply.msg_id.as_str(), "@Invalid@", "the error reply's id");
    ensure_eq!(reply.error_code, 11, "the error code (InvalidMessage)");
    // The connection and the session go on.
    let echo = EchoRequest {
        content: "still here".into(),
        sequence: 8,
    };
    raw.send("EchoRequest", 8, t.stage_id(10), &echo.encode_to_vec())
        .await?;
    let reply = raw.reply(8, WAIT).await?;
    ensure_eq!(reply.error_code, 0, "the next request's error code");
    let echoed = EchoReply::decode(&reply.payload[..]).map_err(|e| e.to_string())?;
    ensure_eq!(echoed.content.as_str(), "still here", "the echo");
    Ok(())
}
