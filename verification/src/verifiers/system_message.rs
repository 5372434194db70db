//! SystemMessage: a stage sends to and requests the system handlers (the second handler table)
//! of Play and API servers; error codes and the separation of the two tables reach the client.

use playhouse::ErrorCode;

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    ServerToStageNotify, TriggerRequestToSystemReply, TriggerRequestToSystemRequest,
    TriggerSendToSystemReply, TriggerSendToSystemRequest,
};
use crate::runner::{Category, TestCase};
use crate::servers::{API_1, API_2, PLAY_2};
use crate::{ensure, ensure_eq};

const USER: &str = "system_user";

/// The SystemMessage category (stage ids 22000..).
pub(super) fn category() -> Category {
    Category {
        name: "SystemMessage",
        base: 22_000,
        tests: vec![
            TestCase::new("RequestToSystem_ApiServer", |t| {
                Box::pin(request(t, API_2, "api"))
            }),
            TestCase::new("RequestToSystem_PlayServer", |t| {
                Box::pin(request(t, PLAY_2, "play"))
            }),
            TestCase::new("SendToSystem_ApiServer", |t| Box::pin(send(t, API_1))),
            TestCase::new("SendToSystem_PlayServer", |t| Box::pin(send(t, PLAY_2))),
            TestCase::new("RequestToSystem_ErrorCode", |t| Box::pin(error_code(t))),
            TestCase::new("SystemTable_SeparateFromHandlers", |t| {
                Box::pin(separate_tables(t))
            }),
        ],
    }
}

fn ping(server_id: &str, content: &str) -> TriggerRequestToSystemRequest {
    TriggerRequestToSystemRequest {
        server_id: server_id.into(),
        content: content.into(),
        fail_code: 0,
        as_regular_message: false,
    }
}

async fn request(t: TestCtx, server_id: &str, server_type: &str) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let content = format!("system ping to {server_id}");
    let reply: TriggerRequestToSystemReply =
        client::request(&connector, &ping(server_id, &content)).await?;
    ensure_eq!(reply.server_id.as_str(), server_id, "answering server");
    ensure_eq!(reply.server_type.as_str(), server_type, "server type");
    ensure_eq!(reply.content, content, "content");
    Ok(())
}

async fn send(t: TestCtx, server_id: &str) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut events = t.shared_events();
    let tag = format!("system-send-{server_id}");
    let sent: TriggerSendToSystemReply = client::request(
        &connector,
        &TriggerSendToSystemRequest {
            server_id: server_id.into(),
            content: "system one-way".into(),
            tag: tag.clone(),
        },
    )
    .await?;
    ensure!(sent.success, "TriggerSendToSystemReply.success is false");
    let report: ServerToStageNotify = events
        .push_where(WAIT, |n: &ServerToStageNotify| n.tag == tag)
        .await?;
    ensure_eq!(
        report.kind.as_str(),
        "SystemNotifyMessage",
        "delivered message"
    );
    ensure_eq!(
        report.sender_server_id.as_str(),
        server_id,
        "receiving server"
    );
    ensure_eq!(report.content.as_str(), "system one-way", "content");
    Ok(())
}

async fn error_code(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let failing = TriggerRequestToSystemRequest {
        fail_code: 1600,
        ..ping(API_1, "fail please")
    };
    client::request_fails(&connector, &failing, ErrorCode(1600)).await?;
    let on_play = TriggerRequestToSystemRequest {
        fail_code: 1601,
        ..ping(PLAY_2, "fail please")
    };
    client::request_fails(&connector, &on_play, ErrorCode(1601)).await
}

async fn separate_tables(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    // ApiEchoRequest has a regular handler on api-1 but no system handler.
    let regular = TriggerRequestToSystemRequest {
        as_regular_message: true,
        ..ping(API_1, "wrong table")
    };
    client::request_fails(&connector, &regular, ErrorCode::HANDLER_NOT_FOUND).await
}
