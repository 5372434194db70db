//! ActorSender: the actor link's account id, leave stage, reply, and reply with an error code.

use playhouse::ErrorCode;

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    ActorDestroyedNotify, ActorStateReply, ActorStateRequest, EchoReply, EchoRequest, FailRequest,
    GetAccountIdReply, GetAccountIdRequest, LeaveStageReply, LeaveStageRequest,
};
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

const USER: &str = "sender_user";

/// The ActorSender category (stage ids 7000..).
pub(super) fn category() -> Category {
    Category {
        name: "ActorSender",
        base: 7000,
        tests: vec![
            TestCase::new("AccountId", |t| Box::pin(account_id(t))),
            TestCase::new("LeaveStage", |t| Box::pin(leave_stage(t))),
            TestCase::new("LeaveStage_AuthenticateAgainCreatesNewActor", |t| {
                Box::pin(rejoin_after_leave(t))
            }),
            TestCase::new("Reply", |t| Box::pin(reply(t))),
            TestCase::new("ReplyErrorCode", |t| Box::pin(reply_error(t))),
        ],
    }
}

async fn account_id(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: GetAccountIdReply = client::request(&connector, &GetAccountIdRequest {}).await?;
    ensure_eq!(reply.account_id.as_str(), USER, "account id");
    Ok(())
}

async fn leave_stage(t: TestCtx) -> TestResult {
    let (connector, tap) = t.joined(2, "sender_leaver").await?;
    let mut events = tap.subscribe();
    let reply: LeaveStageReply = client::request(&connector, &LeaveStageRequest {}).await?;
    ensure!(reply.success, "LeaveStageReply.success is false");
    // The actor's on_destroy ran while its client was still attached.
    let destroyed: ActorDestroyedNotify = events.push(WAIT).await?;
    ensure_eq!(
        destroyed.account_id.as_str(),
        "sender_leaver",
        "destroyed actor"
    );
    // Out of the stage: requests are refused, the connection stays.
    let echo = EchoRequest {
        content: "after leave".into(),
        sequence: 1,
    };
    client::request_fails(&connector, &echo, ErrorCode::NOT_AUTHENTICATED).await?;
    ensure!(
        connector.is_connected(),
        "leaving the stage closed the connection"
    );
    Ok(())
}

async fn rejoin_after_leave(t: TestCtx) -> TestResult {
    let (connector, tap) = t.joined(3, "sender_rejoin").await?;
    let mut events = tap.subscribe();
    let before: ActorStateReply = client::request(&connector, &ActorStateRequest {}).await?;
    let _: LeaveStageReply = client::request(&connector, &LeaveStageRequest {}).await?;
    let _: ActorDestroyedNotify = events.push(WAIT).await?;
    client::authenticate(&connector, "sender_rejoin").await?;
    let after: ActorStateReply = client::request(&connector, &ActorStateRequest {}).await?;
    ensure!(
        after.actor_instance_id != before.actor_instance_id,
        "the actor that left came back (instance {})",
        before.actor_instance_id
    );
    ensure_eq!(
        after.callbacks,
        vec!["on_create", "on_authenticate", "on_post_authenticate"],
        "new actor callbacks"
    );
    Ok(())
}

async fn reply(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let request = EchoRequest {
        content: "actor reply".into(),
        sequence: 77,
    };
    let reply: EchoReply = client::request(&connector, &request).await?;
    ensure_eq!(reply.content.as_str(), "actor reply", "reply content");
    ensure_eq!(reply.sequence, 77, "reply sequence");
    Ok(())
}

async fn reply_error(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let request = FailRequest {
        error_code: 1500,
        error_message: "actor error".into(),
    };
    client::request_fails(&connector, &request, ErrorCode(1500)).await?;
    // A framework code passes through the same way.
    let request = FailRequest {
        error_code: i32::from(ErrorCode::INVALID_MESSAGE.0),
        error_message: String::new(),
    };
    client::request_fails(&connector, &request, ErrorCode::INVALID_MESSAGE).await
}
