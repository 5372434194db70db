//! ApiToApi: API handlers send to and request other API servers (api-1 ↔ api-2, both
//! directions, nested requests, error codes). The client asks its stage, the stage relays the
//! trigger to the first API server, whose handler does the work.

use playhouse::ErrorCode;

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    ServerToStageNotify, TriggerRequestToApiServerReply, TriggerRequestToApiServerRequest,
    TriggerSendToApiServerReply, TriggerSendToApiServerRequest,
};
use crate::runner::{Category, TestCase};
use crate::servers::{API_1, API_2};
use crate::{ensure, ensure_eq};

const USER: &str = "a2a_user";

/// The ApiToApi category (stage ids 18000..).
pub(super) fn category() -> Category {
    Category {
        name: "ApiToApi",
        base: 18_000,
        tests: vec![
            TestCase::new("RequestToApi_Api1ToApi2", |t| {
                Box::pin(request(t, API_1, API_2))
            }),
            TestCase::new("RequestToApi_Api2ToApi1", |t| {
                Box::pin(request(t, API_2, API_1))
            }),
            TestCase::new("SendToApi_Api1ToApi2", |t| Box::pin(send(t, API_1, API_2))),
            TestCase::new("SendToApi_Api2ToApi1", |t| Box::pin(send(t, API_2, API_1))),
            TestCase::new("Bidirectional_NestedRequests", |t| Box::pin(bounce(t))),
            TestCase::new("ErrorCode_PropagatesAcrossApis", |t| {
                Box::pin(error_code(t))
            }),
        ],
    }
}

/// `via`'s handler requests `target`; the client gets the answer through its stage.
pub(super) async fn request_between(
    t: &TestCtx,
    user: &str,
    via: &str,
    target: &str,
) -> Result<TriggerRequestToApiServerReply, String> {
    let connector = t.shared(1, user).await?;
    let content = format!("{via} asks {target}");
    let reply: TriggerRequestToApiServerReply = client::request(
        &connector,
        &TriggerRequestToApiServerRequest {
            via_api_id: via.into(),
            target_api_id: target.into(),
            content: content.clone(),
            bounce: false,
            fail_code: 0,
        },
    )
    .await?;
    ensure_eq!(reply.content, content, "echoed content");
    ensure_eq!(
        reply.responder_server_id.as_str(),
        target,
        "answering server"
    );
    ensure_eq!(reply.path, vec![via.to_owned(), target.to_owned()], "path");
    Ok(reply)
}

/// `via`'s handler sends to `target`, which reports the delivery to the client's stage.
pub(super) async fn send_between(t: &TestCtx, user: &str, via: &str, target: &str) -> TestResult {
    let connector = t.shared(1, user).await?;
    let mut events = t.shared_events();
    let tag = format!("{user}:{via}->{target}");
    let sent: TriggerSendToApiServerReply = client::request(
        &connector,
        &TriggerSendToApiServerRequest {
            via_api_id: via.into(),
            target_api_id: target.into(),
            content: "passed along".into(),
            tag: tag.clone(),
        },
    )
    .await?;
    ensure!(sent.success, "TriggerSendToApiServerReply.success is false");
    ensure_eq!(sent.via_server_id.as_str(), via, "forwarding server");
    let report: ServerToStageNotify = events
        .push_where(WAIT, |n: &ServerToStageNotify| n.tag == tag)
        .await?;
    ensure_eq!(report.kind.as_str(), "InterApiMessage", "delivered message");
    ensure_eq!(report.sender_server_id.as_str(), target, "receiving server");
    ensure_eq!(report.via_server_id.as_str(), via, "forwarding server");
    ensure_eq!(report.content.as_str(), "passed along", "content");
    Ok(())
}

async fn request(t: TestCtx, via: &str, target: &str) -> TestResult {
    request_between(&t, USER, via, target).await.map(|_| ())
}

async fn send(t: TestCtx, via: &str, target: &str) -> TestResult {
    send_between(&t, USER, via, target).await
}

async fn bounce(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: TriggerRequestToApiServerReply = client::request(
        &connector,
        &TriggerRequestToApiServerRequest {
            via_api_id: API_1.into(),
            target_api_id: API_2.into(),
            content: "there and back".into(),
            bounce: true,
            fail_code: 0,
        },
    )
    .await?;
    ensure_eq!(reply.content.as_str(), "there and back", "content");
    ensure_eq!(
        reply.responder_server_id.as_str(),
        API_2,
        "answering server"
    );
    ensure_eq!(
        reply.path,
        vec![API_1.to_owned(), API_2.to_owned(), API_1.to_owned()],
        "api-1 asked api-2, whose handler asked api-1 back"
    );
    Ok(())
}

async fn error_code(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let failing = TriggerRequestToApiServerRequest {
        via_api_id: API_1.into(),
        target_api_id: API_2.into(),
        content: "fail over there".into(),
        bounce: false,
        fail_code: 1500,
    };
    client::request_fails(&connector, &failing, ErrorCode(1500)).await?;
    let unknown = TriggerRequestToApiServerRequest {
        target_api_id: "api-9".into(),
        fail_code: 0,
        ..failing
    };
    client::request_fails(&connector, &unknown, ErrorCode::SERVER_NOT_FOUND).await
}
