//! StageToStage: a stage messages another stage on the same Play server and on play-2 (send,
//! awaited request, callback request). The sending client sees the replies; a client in the
//! target stage sees the delivery as a push.

use playhouse::ErrorCode;

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    InterStageNotify, TriggerRequestToStageCallbackAccepted, TriggerRequestToStageCallbackReply,
    TriggerRequestToStageCallbackRequest, TriggerRequestToStageReply, TriggerRequestToStageRequest,
    TriggerSendToStageReply, TriggerSendToStageRequest,
};
use crate::runner::{Category, TestCase};
use crate::servers::{PLAY_1, PLAY_2};
use crate::{ensure, ensure_eq};

const USER: &str = "s2s_user";

/// The StageToStage category (stage ids 16000..).
pub(super) fn category() -> Category {
    Category {
        name: "StageToStage",
        base: 16_000,
        tests: vec![
            TestCase::new("SendToStage_CrossServer", |t| Box::pin(send_cross(t))),
            TestCase::new("RequestToStage_Async_CrossServer", |t| {
                Box::pin(request_cross(t))
            }),
            TestCase::new("RequestToStage_Callback_CrossServer", |t| {
                Box::pin(callback_cross(t))
            }),
            TestCase::new("SendToStage_SameServer", |t| Box::pin(send_same(t))),
            TestCase::new("RequestToStage_SameServer", |t| Box::pin(request_same(t))),
            TestCase::new("RequestToStage_Errors_ReachClient", |t| {
                Box::pin(request_errors(t))
            }),
        ],
    }
}

/// The shared connector's stage sends to stage `offset` on `play_id`, where a second client
/// waits for the delivery.
async fn send_and_observe(t: TestCtx, play_id: &str, offset: i64, content: &str) -> TestResult {
    let sender = t.shared(1, USER).await?;
    let addr = if play_id == PLAY_2 {
        t.play2_addr()
    } else {
        t.addr()
    };
    let (receiver, tap) = t
        .joined_at(addr, offset, &format!("s2s_receiver_{offset}"))
        .await?;
    let mut events = tap.subscribe();
    let sent: TriggerSendToStageReply = client::request(
        &sender,
        &TriggerSendToStageRequest {
            play_id: play_id.into(),
            stage_id: t.stage_id(offset),
            content: content.into(),
        },
    )
    .await?;
    ensure!(sent.success, "TriggerSendToStageReply.success is false");
    let notify: InterStageNotify = events
        .push_where(WAIT, |n: &InterStageNotify| n.content == content)
        .await?;
    receiver.disconnect().await;
    ensure_eq!(notify.from_server_id.as_str(), PLAY_1, "sending server");
    ensure_eq!(notify.from_stage_id, t.stage_id(1), "sending stage");
    ensure_eq!(
        notify.receiver_server_id.as_str(),
        play_id,
        "receiving server"
    );
    ensure_eq!(
        notify.receiver_stage_id,
        t.stage_id(offset),
        "receiving stage"
    );
    Ok(())
}

/// The shared connector's stage requests stage `offset` on `play_id` (awaiting in on_dispatch).
async fn request_and_check(t: TestCtx, play_id: &str, offset: i64, content: &str) -> TestResult {
    let sender = t.shared(1, USER).await?;
    let addr = if play_id == PLAY_2 {
        t.play2_addr()
    } else {
        t.addr()
    };
    // A client creates the target stage on its Play server.
    let (target, _tap) = t
        .joined_at(addr, offset, &format!("s2s_target_{offset}"))
        .await?;
    let reply: TriggerRequestToStageReply = client::request(
        &sender,
        &TriggerRequestToStageRequest {
            play_id: play_id.into(),
            stage_id: t.stage_id(offset),
            content: content.into(),
        },
    )
    .await?;
    target.disconnect().await;
    ensure_eq!(reply.response.as_str(), content, "response content");
    ensure_eq!(
        reply.responder_server_id.as_str(),
        play_id,
        "responding server"
    );
    ensure_eq!(
        reply.responder_stage_id,
        t.stage_id(offset),
        "responding stage"
    );
    Ok(())
}

async fn send_cross(t: TestCtx) -> TestResult {
    send_and_observe(t, PLAY_2, 2, "cross-server send").await
}

async fn request_cross(t: TestCtx) -> TestResult {
    request_and_check(t, PLAY_2, 3, "cross-server request").await
}

async fn callback_cross(t: TestCtx) -> TestResult {
    let sender = t.shared(1, USER).await?;
    let (target, _tap) = t.joined_at(t.play2_addr(), 4, "s2s_target_cb").await?;
    let mut events = t.shared_events();
    let accepted: TriggerRequestToStageCallbackAccepted = client::request(
        &sender,
        &TriggerRequestToStageCallbackRequest {
            play_id: PLAY_2.into(),
            stage_id: t.stage_id(4),
            content: "callback request".into(),
            tag: "s2s-cb".into(),
        },
    )
    .await?;
    ensure_eq!(accepted.tag.as_str(), "s2s-cb", "accepted tag");
    let result: TriggerRequestToStageCallbackReply = events
        .push_where(WAIT, |r: &TriggerRequestToStageCallbackReply| {
            r.tag == "s2s-cb"
        })
        .await?;
    target.disconnect().await;
    ensure_eq!(result.error_code, 0, "callback error code");
    ensure_eq!(result.response.as_str(), "callback request", "response");
    ensure_eq!(
        result.responder_server_id.as_str(),
        PLAY_2,
        "responding server"
    );
    ensure_eq!(result.responder_stage_id, t.stage_id(4), "responding stage");
    ensure!(
        result.on_stage_loop,
        "the callback did not run on the stage loop"
    );
    Ok(())
}

async fn send_same(t: TestCtx) -> TestResult {
    send_and_observe(t, PLAY_1, 5, "same-server send").await
}

async fn request_same(t: TestCtx) -> TestResult {
    request_and_check(t, PLAY_1, 6, "same-server request").await
}

async fn request_errors(t: TestCtx) -> TestResult {
    let sender = t.shared(1, USER).await?;
    let missing = TriggerRequestToStageRequest {
        play_id: PLAY_2.into(),
        stage_id: t.stage_id(99),
        content: "nobody home".into(),
    };
    client::request_fails(&sender, &missing, ErrorCode::STAGE_NOT_FOUND).await?;
    let unknown_server = TriggerRequestToStageRequest {
        play_id: "play-9".into(),
        ..missing
    };
    client::request_fails(&sender, &unknown_server, ErrorCode::SERVER_NOT_FOUND).await?;
    let send_unknown = TriggerSendToStageRequest {
        play_id: "play-9".into(),
        stage_id: t.stage_id(1),
        content: "lost".into(),
    };
    client::request_fails(&sender, &send_unknown, ErrorCode::SERVER_NOT_FOUND).await
}
