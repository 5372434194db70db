//! StageToApi: a stage sends to and requests API servers, awaiting in `on_dispatch` or inside
//! an async block. A one-way message is reported back by the API server and pushed to the
//! client; replies and error codes reach the client through the stage.

use playhouse::ErrorCode;

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    ServerToStageNotify, TriggerAsyncBlockRequestToApiAccepted, TriggerAsyncBlockRequestToApiReply,
    TriggerAsyncBlockRequestToApiRequest, TriggerAsyncBlockSendToApiAccepted,
    TriggerAsyncBlockSendToApiRequest, TriggerRequestToApiReply, TriggerRequestToApiRequest,
    TriggerSendToApiReply, TriggerSendToApiRequest,
};
use crate::runner::{Category, TestCase};
use crate::servers::{API_1, API_2, PLAY_1};
use crate::{ensure, ensure_eq};

const USER: &str = "s2a_user";

/// The StageToApi category (stage ids 17000..).
pub(super) fn category() -> Category {
    Category {
        name: "StageToApi",
        base: 17_000,
        tests: vec![
            TestCase::new("SendToApi_DeliveredToHandler", |t| Box::pin(send(t))),
            TestCase::new("RequestToApi_Async", |t| Box::pin(request(t))),
            TestCase::new("RequestToApi_ErrorCode", |t| Box::pin(request_error(t))),
            TestCase::new("RequestToApi_UnknownServer", |t| {
                Box::pin(unknown_server(t))
            }),
            TestCase::new("AsyncBlock_SendToApi", |t| Box::pin(async_block_send(t))),
            TestCase::new("AsyncBlock_RequestToApi", |t| {
                Box::pin(async_block_request(t))
            }),
        ],
    }
}

async fn send(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut events = t.shared_events();
    let sent: TriggerSendToApiReply = client::request(
        &connector,
        &TriggerSendToApiRequest {
            api_id: API_1.into(),
            content: "one way to api-1".into(),
            tag: "s2a-send".into(),
        },
    )
    .await?;
    ensure!(sent.success, "TriggerSendToApiReply.success is false");
    let report: ServerToStageNotify = events
        .push_where(WAIT, |n: &ServerToStageNotify| n.tag == "s2a-send")
        .await?;
    ensure_eq!(report.kind.as_str(), "InterApiMessage", "delivered message");
    ensure_eq!(
        report.sender_server_id.as_str(),
        API_1,
        "receiving API server"
    );
    ensure_eq!(report.content.as_str(), "one way to api-1", "content");
    Ok(())
}

async fn request(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: TriggerRequestToApiReply = client::request(
        &connector,
        &TriggerRequestToApiRequest {
            api_id: API_2.into(),
            content: "hello api-2".into(),
            fail_code: 0,
        },
    )
    .await?;
    ensure_eq!(reply.content.as_str(), "hello api-2", "echoed content");
    ensure_eq!(reply.api_server_id.as_str(), API_2, "answering server");
    ensure_eq!(reply.seen_from.as_str(), PLAY_1, "requester the API saw");
    ensure_eq!(reply.seen_stage_id, t.stage_id(1), "stage the API saw");
    Ok(())
}

async fn request_error(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let failing = TriggerRequestToApiRequest {
        api_id: API_1.into(),
        content: "please fail".into(),
        fail_code: 1234,
    };
    client::request_fails(&connector, &failing, ErrorCode(1234)).await
}

async fn unknown_server(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let request = TriggerRequestToApiRequest {
        api_id: "api-9".into(),
        content: "nobody".into(),
        fail_code: 0,
    };
    client::request_fails(&connector, &request, ErrorCode::SERVER_NOT_FOUND).await?;
    let send = TriggerSendToApiRequest {
        api_id: "api-9".into(),
        content: "nobody".into(),
        tag: String::new(),
    };
    client::request_fails(&connector, &send, ErrorCode::SERVER_NOT_FOUND).await
}

async fn async_block_send(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut events = t.shared_events();
    let accepted: TriggerAsyncBlockSendToApiAccepted = client::request(
        &connector,
        &TriggerAsyncBlockSendToApiRequest {
            api_id: API_2.into(),
            content: "sent from an async block".into(),
            tag: "s2a-block-send".into(),
        },
    )
    .await?;
    ensure_eq!(accepted.tag.as_str(), "s2a-block-send", "accepted tag");
    let report: ServerToStageNotify = events
        .push_where(WAIT, |n: &ServerToStageNotify| n.tag == "s2a-block-send")
        .await?;
    ensure_eq!(
        report.sender_server_id.as_str(),
        API_2,
        "receiving API server"
    );
    ensure_eq!(
        report.content.as_str(),
        "sent from an async block",
        "content"
    );
    Ok(())
}

async fn async_block_request(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut events = t.shared_events();
    let accepted: TriggerAsyncBlockRequestToApiAccepted = client::request(
        &connector,
        &TriggerAsyncBlockRequestToApiRequest {
            api_id: API_1.into(),
            content: "requested from an async block".into(),
            tag: "s2a-block-request".into(),
        },
    )
    .await?;
    ensure_eq!(accepted.tag.as_str(), "s2a-block-request", "accepted tag");
    let result: TriggerAsyncBlockRequestToApiReply = events
        .push_where(WAIT, |r: &TriggerAsyncBlockRequestToApiReply| {
            r.tag == "s2a-block-request"
        })
        .await?;
    ensure_eq!(result.error_code, 0, "error code");
    ensure_eq!(
        result.content.as_str(),
        "requested from an async block",
        "content"
    );
    ensure_eq!(result.api_server_id.as_str(), API_1, "answering server");
    ensure!(
        result.post_on_stage_task,
        "post did not run on the stage loop"
    );
    Ok(())
}
