//! Connection: connect (async and callback forms, success and failure), disconnect, the
//! disconnect event, and authentication (async, callback, refused, twice, stage 0).

use std::time::Duration;

use playhouse::{ErrorCode, Packet};
use playhouse_connector::{ConnectorConfig, ConnectorError};
use tokio::sync::oneshot;

use crate::check::TestResult;
use crate::client::{self, WAIT, auth_packet, describe};
use crate::context::TestCtx;
use crate::proto::{AuthenticateReply, AuthenticateRequest, EchoReply, EchoRequest};
use crate::runner::{Category, TestCase};
use crate::servers::TEST_STAGE;
use crate::{ensure, ensure_eq};

/// The Connection category (stage ids 1000..).
pub(super) fn category() -> Category {
    Category {
        name: "Connection",
        base: 1000,
        tests: vec![
            TestCase::new("Connect_Success", |t| Box::pin(connect_success(t))),
            TestCase::new("Connect_InvalidHost", |t| Box::pin(connect_invalid_host(t))),
            TestCase::new("ConnectWithCallback_Success", |t| {
                Box::pin(connect_callback_success(t))
            }),
            TestCase::new("ConnectWithCallback_Refused", |t| {
                Box::pin(connect_callback_refused(t))
            }),
            TestCase::new("Disconnect_ClientInitiated", |t| {
                Box::pin(client_disconnect(t))
            }),
            TestCase::new("OnDisconnect_Callback", |t| Box::pin(on_disconnect(t))),
            TestCase::new("Authenticate_Async", |t| Box::pin(authenticate_async(t))),
            TestCase::new("Authenticate_Callback", |t| {
                Box::pin(authenticate_callback(t))
            }),
            TestCase::new("Authenticate_Refused", |t| {
                Box::pin(authenticate_refused(t))
            }),
            TestCase::new("Authenticate_EmptyUserId", |t| {
                Box::pin(authenticate_empty(t))
            }),
            TestCase::new("Authenticate_Twice", |t| Box::pin(authenticate_twice(t))),
            TestCase::new("Request_BeforeAuthenticate", |t| {
                Box::pin(request_before_auth(t))
            }),
            TestCase::new("Connect_StageZeroGetsFreshStage", |t| {
                Box::pin(stage_zero(t))
            }),
            TestCase::new("Connect_UnknownStageType_Refused", |t| {
                Box::pin(unknown_stage_type(t))
            }),
        ],
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound once, then released).
fn closed_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    drop(listener);
    Ok(port)
}

/// A configuration whose callbacks wait for `main_thread_action`, as in a game.
fn queued_config() -> ConnectorConfig {
    ConnectorConfig::default()
}

async fn connect_success(t: TestCtx) -> TestResult {
    let (connector, tap) = t.connector(client::direct_config());
    let mut events = tap.subscribe();
    client::connect(&connector, t.addr(), t.stage_id(1)).await?;
    ensure!(
        connector.is_connected(),
        "is_connected is false after connect"
    );
    ensure!(
        !connector.is_authenticated(),
        "is_authenticated is true before authenticating"
    );
    ensure_eq!(connector.stage_id(), t.stage_id(1), "connector stage id");
    ensure!(events.connect(WAIT).await?, "on_connect reported false");
    Ok(())
}

async fn connect_invalid_host(t: TestCtx) -> TestResult {
    let config = client::direct_config().connect_timeout(Duration::from_secs(3));
    let (connector, tap) = t.connector(config);
    let mut events = tap.subscribe();
    let result = connector
        .connect("invalid.host.invalid", 9, t.stage_id(2), TEST_STAGE)
        .await;
    match result {
        Ok(()) => return Err("connect to invalid.host.invalid succeeded".into()),
        Err(error) => ensure_eq!(
            error.code(),
            ErrorCode::CONNECTOR_DISCONNECTED,
            "connect error code ({error})"
        ),
    }
    ensure!(
        !connector.is_connected(),
        "is_connected is true after a failed connect"
    );
    ensure!(!events.connect(WAIT).await?, "on_connect reported true");
    Ok(())
}

async fn connect_callback_success(t: TestCtx) -> TestResult {
    let (connector, tap) = t.connector(queued_config());
    let mut events = tap.subscribe();
    let addr = t.addr();
    connector.connect_with_callback(
        &addr.ip().to_string(),
        addr.port(),
        t.stage_id(3),
        TEST_STAGE,
    );
    let ok = client::pump_until(
        &connector,
        Duration::from_millis(5),
        WAIT,
        events.connect(WAIT),
    )
    .await??;
    ensure!(ok, "on_connect(false) after connecting to play-1");
    ensure!(
        connector.is_connected(),
        "is_connected is false after on_connect(true)"
    );
    client::authenticate(&connector, "conn_callback").await?;
    Ok(())
}

async fn connect_callback_refused(t: TestCtx) -> TestResult {
    let (connector, tap) = t.connector(queued_config());
    let mut events = tap.subscribe();
    let port = closed_port()?;
    connector.connect_with_callback("127.0.0.1", port, t.stage_id(4), TEST_STAGE);
    let ok = client::pump_until(
        &connector,
        Duration::from_millis(5),
        WAIT,
        events.connect(WAIT),
    )
    .await??;
    ensure!(!ok, "on_connect(true) for a port nobody listens on");
    ensure!(
        !connector.is_connected(),
        "is_connected is true after a refused connect"
    );
    Ok(())
}

async fn client_disconnect(t: TestCtx) -> TestResult {
    let (connector, _tap) = t.joined(5, "conn_disconnect").await?;
    connector.disconnect().await;
    ensure!(
        !connector.is_connected(),
        "is_connected is true after disconnect"
    );
    ensure!(
        !connector.is_authenticated(),
        "is_authenticated is true after disconnect"
    );
    let result = connector
        .request(Packet::from_message(&EchoRequest {
            content: "after disconnect".into(),
            sequence: 1,
        }))
        .await;
    match result {
        Err(ConnectorError::Disconnected) => Ok(()),
        other => Err(format!(
            "request after disconnect: expected Disconnected, got {other:?}"
        )),
    }
}

async fn on_disconnect(t: TestCtx) -> TestResult {
    let (connector, tap) = t.connector(queued_config());
    let mut events = tap.subscribe();
    client::connect(&connector, t.addr(), t.stage_id(6)).await?;
    client::authenticate(&connector, "conn_on_disconnect").await?;
    connector.disconnect().await;
    client::pump_until(
        &connector,
        Duration::from_millis(5),
        WAIT,
        events.disconnect(WAIT),
    )
    .await??;
    ensure!(
        !connector.is_connected(),
        "is_connected is true after on_disconnect"
    );
    Ok(())
}

async fn authenticate_async(t: TestCtx) -> TestResult {
    let (connector, _tap) = t.connector(client::direct_config());
    client::connect(&connector, t.addr(), t.stage_id(7)).await?;
    let request = AuthenticateRequest {
        user_id: "conn_auth_async".into(),
        token: "secret-token".into(),
    };
    let reply = connector
        .authenticate(Packet::from_message(&request))
        .await
        .map_err(|e| format!("authenticate failed: {}", describe(&e)))?;
    let reply = client::parse::<AuthenticateReply>(&reply)?;
    ensure!(reply.success, "AuthenticateReply.success is false");
    ensure_eq!(reply.account_id.as_str(), "conn_auth_async", "account_id");
    ensure_eq!(
        reply.received_user_id.as_str(),
        "conn_auth_async",
        "received_user_id"
    );
    ensure_eq!(
        reply.received_token.as_str(),
        "secret-token",
        "received_token"
    );
    ensure_eq!(reply.stage_id, t.stage_id(7), "stage_id");
    ensure!(connector.is_authenticated(), "is_authenticated is false");
    let echo: EchoReply = client::request(
        &connector,
        &EchoRequest {
            content: "authenticated".into(),
            sequence: 1,
        },
    )
    .await?;
    ensure_eq!(
        echo.content.as_str(),
        "authenticated",
        "echo after authenticate"
    );
    Ok(())
}

async fn authenticate_callback(t: TestCtx) -> TestResult {
    let (connector, _tap) = t.connector(queued_config());
    client::connect(&connector, t.addr(), t.stage_id(8)).await?;
    let (tx, rx) = oneshot::channel();
    connector.authenticate_with_callback(auth_packet("conn_auth_callback"), move |result| {
        let _ = tx.send(result);
    });
    let result = client::pump_until(&connector, Duration::from_millis(5), WAIT, rx)
        .await?
        .map_err(|_| "the authenticate callback was dropped".to_owned())?;
    let reply = result.map_err(|e| format!("authenticate callback failed: {}", describe(&e)))?;
    let reply = client::parse::<AuthenticateReply>(&reply)?;
    ensure!(reply.success, "AuthenticateReply.success is false");
    ensure_eq!(
        reply.account_id.as_str(),
        "conn_auth_callback",
        "account_id"
    );
    ensure!(connector.is_authenticated(), "is_authenticated is false");
    Ok(())
}

async fn authenticate_refused(t: TestCtx) -> TestResult {
    let (connector, _tap) = t.connector(client::direct_config());
    client::connect(&connector, t.addr(), t.stage_id(9)).await?;
    match connector.authenticate(auth_packet("fail_conn_user")).await {
        Ok(reply) => return Err(format!("a fail_ user was accepted: {:?}", reply.msg_id)),
        Err(error) => {
            ensure_eq!(
                error.code(),
                ErrorCode::AUTHENTICATION_FAILED,
                "refusal code ({error})"
            );
            // The refusal carries the stage's explanation (an error reply with a payload).
            let ConnectorError::Server { packet, .. } = &error else {
                return Err(format!("refusal is not a server reply: {error}"));
            };
            ensure_eq!(&*packet.msg_id, "AuthenticateReply", "refusal msg id");
            let refusal = client::parse::<AuthenticateReply>(packet)?;
            ensure!(!refusal.success, "the refusal says success");
            ensure_eq!(
                refusal.received_user_id.as_str(),
                "fail_conn_user",
                "refusal's received_user_id"
            );
        }
    }
    ensure!(
        !connector.is_authenticated(),
        "is_authenticated after a refusal"
    );
    ensure!(
        connector.is_connected(),
        "the refusal closed the connection"
    );
    // The same connection may try again.
    client::authenticate(&connector, "conn_after_refusal").await?;
    Ok(())
}

async fn authenticate_empty(t: TestCtx) -> TestResult {
    let (connector, _tap) = t.connector(client::direct_config());
    client::connect(&connector, t.addr(), t.stage_id(10)).await?;
    match connector.authenticate(auth_packet("")).await {
        Ok(reply) => Err(format!("an empty user id was accepted: {:?}", reply.msg_id)),
        Err(error) => {
            ensure_eq!(
                error.code(),
                ErrorCode::INVALID_ACCOUNT_ID,
                "empty account id code ({error})"
            );
            Ok(())
        }
    }
}

async fn authenticate_twice(t: TestCtx) -> TestResult {
    let (connector, _tap) = t.joined(11, "conn_twice").await?;
    match connector.authenticate(auth_packet("conn_twice")).await {
        Ok(reply) => {
            return Err(format!(
                "a second authenticate succeeded: {:?}",
                reply.msg_id
            ));
        }
        Err(error) => ensure_eq!(
            error.code(),
            ErrorCode::ALREADY_AUTHENTICATED,
            "second authenticate code ({error})"
        ),
    }
    ensure!(connector.is_authenticated(), "no longer authenticated");
    Ok(())
}

async fn request_before_auth(t: TestCtx) -> TestResult {
    let (connector, _tap) = t.connector(client::direct_config());
    client::connect(&connector, t.addr(), t.stage_id(12)).await?;
    let echo = EchoRequest {
        content: "too early".into(),
        sequence: 1,
    };
    client::request_fails(&connector, &echo, ErrorCode::CONNECTOR_UNAUTHENTICATED).await?;
    // Refused locally: the connection is still usable.
    ensure!(
        connector.is_connected(),
        "the refused request closed the connection"
    );
    client::authenticate(&connector, "conn_early").await?;
    Ok(())
}

async fn stage_zero(t: TestCtx) -> TestResult {
    let (connector, _tap) = t.connector(client::direct_config());
    client::connect(&connector, t.addr(), 0).await?;
    let reply = client::authenticate(&connector, "conn_stage_zero").await?;
    ensure!(reply.stage_id != 0, "AuthenticateReply.stage_id is 0");
    ensure_eq!(
        connector.stage_id(),
        reply.stage_id,
        "connector adopted stage id"
    );
    let echo: EchoReply = client::request(
        &connector,
        &EchoRequest {
            content: "fresh stage".into(),
            sequence: 3,
        },
    )
    .await?;
    ensure_eq!(echo.sequence, 3, "echo sequence in the fresh stage");
    Ok(())
}

/// A stage type the server does not know is refused with its code at login, never replaced
/// by the default type; the same id then logs in under the right type.
async fn unknown_stage_type(t: TestCtx) -> TestResult {
    let (connector, _tap) = t.connector(client::direct_config());
    let addr = t.addr();
    let stage_id = t.stage_id(12);
    connector
        .connect(&addr.ip().to_string(), addr.port(), stage_id, "NoSuchStage")
        .await
        .map_err(|error| format!("connect to {addr} failed: {error}"))?;
    match connector
        .authenticate(auth_packet("conn_unknown_type"))
        .await
    {
        Ok(reply) => {
            return Err(format!(
                "an unknown stage type logged in: {:?}",
                reply.msg_id
            ));
        }
        Err(error) => ensure_eq!(
            error.code(),
            ErrorCode::INVALID_STAGE_TYPE,
            "refusal code ({error})"
        ),
    }
    ensure!(
        !connector.is_authenticated(),
        "authenticated after a refusal"
    );
    connector.disconnect().await;
    let (connector, _tap) = t.connector(client::direct_config());
    let reply = client::join(&connector, addr, stage_id, "conn_known_type").await?;
    ensure_eq!(
        reply.stage_id,
        stage_id,
        "stage id of the login under the right type"
    );
    Ok(())
}
