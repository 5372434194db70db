//! Messaging over the shared connector: send, request (async and callback), error replies,
//! timeouts, pushes, sequential and parallel requests, large payloads.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use playhouse::{ErrorCode, Packet};
use playhouse_connector::{Connector, ConnectorError};
use tokio::sync::oneshot;

use crate::check::TestResult;
use crate::client::{self, ClientEvent, WAIT, describe};
use crate::context::TestCtx;
use crate::proto::{
    BroadcastNotify, BroadcastTrigger, BroadcastTriggerReply, EchoReply, EchoRequest, FailRequest,
    NoResponseRequest, UnhandledRequest,
};
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

const USER: &str = "msg_user";

/// The Messaging category (stage ids 2000..).
pub(super) fn category() -> Category {
    Category {
        name: "Messaging",
        base: 2000,
        tests: vec![
            TestCase::new("Send_KeepsConnection", |t| {
                Box::pin(send_keeps_connection(t))
            }),
            TestCase::new("Request_Callback", |t| Box::pin(request_callback(t))),
            TestCase::new("Request_Callback_ErrorReply", |t| {
                Box::pin(request_callback_error(t))
            }),
            TestCase::new("RequestAsync_Success", |t| Box::pin(request_async(t))),
            TestCase::new("RequestAsync_Timeout", |t| Box::pin(request_timeout(t))),
            TestCase::new("RequestAsync_ErrorReply", |t| {
                Box::pin(request_async_error(t))
            }),
            TestCase::new("OnReceive_OnePush", |t| Box::pin(push_one(t))),
            TestCase::new("OnReceive_SeveralPushes", |t| Box::pin(push_several(t))),
            TestCase::new("Requests_Sequential5", |t| Box::pin(sequential(t))),
            TestCase::new("Requests_Parallel10", |t| Box::pin(parallel(t))),
            TestCase::new("Request_UnknownMessage", |t| Box::pin(unknown_message(t))),
            TestCase::new("SetRequestTimeout_AppliesToNewRequests", |t| {
                Box::pin(set_request_timeout(t))
            }),
            TestCase::new("Request_LargePayload", |t| Box::pin(large_payload(t))),
        ],
    }
}

fn echo(content: &str, sequence: i32) -> EchoRequest {
    EchoRequest {
        content: content.to_owned(),
        sequence,
    }
}

async fn shared(t: &TestCtx) -> Result<Connector, String> {
    t.shared(1, USER).await
}

async fn check_echo(connector: &Connector, content: &str, sequence: i32) -> TestResult {
    let reply: EchoReply = client::request(connector, &echo(content, sequence)).await?;
    ensure_eq!(reply.content.as_str(), content, "echo content");
    ensure_eq!(reply.sequence, sequence, "echo sequence");
    Ok(())
}

async fn send_keeps_connection(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let mut events = t.shared_events();
    connector
        .send(Packet::from_message(&echo("one-way", 41)))
        .map_err(|e| format!("send failed: {}", describe(&e)))?;
    // The stage answers a one-way echo with a push.
    let pushed: EchoReply = events.push(WAIT).await?;
    ensure_eq!(pushed.content.as_str(), "one-way", "pushed echo content");
    ensure_eq!(pushed.sequence, 41, "pushed echo sequence");
    ensure!(connector.is_connected(), "send closed the connection");
    check_echo(&connector, "after send", 42).await
}

async fn request_callback(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let (tx, rx) = oneshot::channel();
    connector.request_with_callback(Packet::from_message(&echo("callback", 7)), move |result| {
        let _ = tx.send(result);
    });
    let result = tokio::time::timeout(WAIT, rx)
        .await
        .map_err(|_| "the callback did not run".to_owned())?
        .map_err(|_| "the callback was dropped".to_owned())?;
    let reply = result.map_err(|e| format!("callback got an error: {}", describe(&e)))?;
    let reply = client::parse::<EchoReply>(&reply)?;
    ensure_eq!(reply.content.as_str(), "callback", "echo content");
    ensure_eq!(reply.sequence, 7, "echo sequence");
    Ok(())
}

async fn request_callback_error(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let mut events = t.shared_events();
    let (tx, rx) = oneshot::channel();
    let request = FailRequest {
        error_code: 1001,
        error_message: "callback error".into(),
    };
    connector.request_with_callback(Packet::from_message(&request), move |result| {
        let _ = tx.send(result);
    });
    let result = tokio::time::timeout(WAIT, rx)
        .await
        .map_err(|_| "the callback did not run".to_owned())?
        .map_err(|_| "the callback was dropped".to_owned())?;
    match result {
        Ok(reply) => return Err(format!("FailRequest succeeded: {:?}", reply.msg_id)),
        Err(error) => ensure_eq!(error.code(), ErrorCode(1001), "callback error code"),
    }
    // A failed callback request is also reported to on_error.
    let (code, msg_id) = events
        .wait_for(WAIT, "on_error", |event| match event {
            ClientEvent::Error { code, request, .. } => Some((code, request.msg_id)),
            _ => None,
        })
        .await?;
    ensure_eq!(code, ErrorCode(1001), "on_error code");
    ensure_eq!(&*msg_id, "FailRequest", "on_error request id");
    Ok(())
}

async fn request_async(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let reply = connector
        .request(Packet::from_message(&echo("Hello", 1)))
        .await
        .map_err(|e| format!("request failed: {}", describe(&e)))?;
    ensure_eq!(&*reply.msg_id, "EchoReply", "reply msg id");
    let reply = client::parse::<EchoReply>(&reply)?;
    ensure_eq!(reply.content.as_str(), "Hello", "echo content");
    ensure_eq!(reply.sequence, 1, "echo sequence");
    ensure!(reply.processed_at > 0, "processed_at is not set");
    Ok(())
}

async fn request_timeout(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let started = Instant::now();
    let result = connector
        .request_with_timeout(
            Packet::from_message(&NoResponseRequest { delay_ms: 0 }),
            Duration::from_millis(300),
        )
        .await;
    match result {
        Err(ConnectorError::RequestTimeout) => {}
        other => return Err(format!("expected RequestTimeout (60202), got {other:?}")),
    }
    let waited = started.elapsed();
    ensure!(
        waited >= Duration::from_millis(250),
        "timed out after only {waited:?}"
    );
    ensure!(
        connector.is_connected(),
        "the timeout closed the connection"
    );
    ensure_eq!(
        connector.pending_requests(),
        0,
        "pending requests after the timeout"
    );
    check_echo(&connector, "after timeout", 2).await
}

async fn request_async_error(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let request = FailRequest {
        error_code: 1234,
        error_message: "async error".into(),
    };
    match connector.request(Packet::from_message(&request)).await {
        Ok(reply) => Err(format!("FailRequest succeeded: {:?}", reply.msg_id)),
        Err(ConnectorError::Server { code, packet }) => {
            ensure_eq!(code, ErrorCode(1234), "server error code");
            ensure_eq!(&*packet.msg_id, "FailRequest", "error reply msg id");
            ensure!(packet.payload.is_empty(), "error reply has a payload");
            Ok(())
        }
        Err(other) => Err(format!(
            "expected a server error 1234, got {}",
            describe(&other)
        )),
    }
}

async fn push_one(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let mut events = t.shared_events();
    let trigger = BroadcastTrigger {
        event_type: "msg_one".into(),
        data: "payload".into(),
        count: 1,
    };
    let reply: BroadcastTriggerReply = client::request(&connector, &trigger).await?;
    ensure_eq!(reply.pushed, 1, "pushes announced");
    let notify: BroadcastNotify = events.push(WAIT).await?;
    ensure_eq!(notify.event_type.as_str(), "msg_one", "event_type");
    ensure_eq!(notify.data.as_str(), "payload", "data");
    ensure_eq!(notify.from_account_id.as_str(), USER, "from_account_id");
    ensure_eq!(notify.sequence, 1, "push sequence");
    Ok(())
}

async fn push_several(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let mut events = t.shared_events();
    let trigger = BroadcastTrigger {
        event_type: "msg_several".into(),
        data: String::new(),
        count: 3,
    };
    // One-way: the pushes are the only answer.
    connector
        .send(Packet::from_message(&trigger))
        .map_err(|e| format!("send failed: {}", describe(&e)))?;
    let pushes: Vec<BroadcastNotify> = events.pushes(3, WAIT).await?;
    for notify in &pushes {
        ensure_eq!(notify.event_type.as_str(), "msg_several", "event_type");
    }
    Ok(())
}

async fn sequential(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    for i in 1..=5 {
        check_echo(&connector, &format!("sequential {i}"), i).await?;
    }
    Ok(())
}

async fn parallel(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let requests = (0..10).map(|i| {
        let connector = connector.clone();
        async move {
            let content = format!("Request {i}");
            let reply: EchoReply = client::request(&connector, &echo(&content, i)).await?;
            ensure_eq!(reply.content, content, "reply {i} content");
            ensure_eq!(reply.sequence, i, "reply {i} sequence");
            Ok::<(), String>(())
        }
    });
    for result in join_all(requests).await {
        result?;
    }
    Ok(())
}

async fn unknown_message(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let request = UnhandledRequest {
        note: "nobody handles this".into(),
    };
    client::request_fails(&connector, &request, ErrorCode::HANDLER_NOT_FOUND).await?;
    check_echo(&connector, "after unknown", 5).await
}

/// Puts the shared connector's default request timeout back even if the test fails.
struct RestoreTimeout {
    connector: Connector,
    timeout: Duration,
}

impl Drop for RestoreTimeout {
    fn drop(&mut self) {
        self.connector.set_request_timeout(self.timeout);
    }
}

async fn set_request_timeout(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    let _restore = RestoreTimeout {
        connector: connector.clone(),
        timeout: connector.config().request_timeout,
    };
    connector.set_request_timeout(Duration::from_millis(200));
    ensure_eq!(
        connector.config().request_timeout,
        Duration::from_millis(200),
        "configured timeout"
    );
    let request = NoResponseRequest { delay_ms: 0 };
    client::request_fails(&connector, &request, ErrorCode::CONNECTOR_REQUEST_TIMEOUT).await?;
    check_echo(&connector, "after short timeout", 6).await
}

async fn large_payload(t: TestCtx) -> TestResult {
    let connector = shared(&t).await?;
    // Repetitive text: the server compresses it (LZ4), the connector must restore it.
    let compressible = "PlayHouse large payload. ".repeat(8_000);
    check_echo(&connector, &compressible, 7).await?;
    // Incompressible text travels as is.
    let mut state = 0x2545_f491_u32;
    let noisy: String = (0..100_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            char::from(b'!' + u8::try_from(state % 90).unwrap_or(0))
        })
        .collect();
    check_echo(&connector, &noisy, 8).await
}
