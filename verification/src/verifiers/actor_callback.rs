//! ActorCallback: `on_create`, `on_authenticate`, `on_post_authenticate` run once per new actor,
//! in order, and a refused actor never joins.

use crate::check::TestResult;
use crate::client::{self, auth_packet};
use crate::context::TestCtx;
use crate::proto::{ActorStateReply, ActorStateRequest, StageStateReply, StageStateRequest};
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

/// The ActorCallback category (stage ids 6000..).
pub(super) fn category() -> Category {
    Category {
        name: "ActorCallback",
        base: 6000,
        tests: vec![
            TestCase::new("OnAuthenticate_SeesRequest", |t| {
                Box::pin(on_authenticate(t))
            }),
            TestCase::new("OnPostAuthenticate_AfterOnAuthenticate", |t| {
                Box::pin(on_post_authenticate(t))
            }),
            TestCase::new("OnCreate_OncePerActor", |t| Box::pin(on_create(t))),
            TestCase::new("OnAuthenticate_RefusedActorNeverJoins", |t| {
                Box::pin(refused_never_joins(t))
            }),
        ],
    }
}

async fn on_authenticate(t: TestCtx) -> TestResult {
    let (connector, _tap) = t.connector(client::direct_config());
    client::connect(&connector, t.addr(), t.stage_id(1)).await?;
    // The reply is what on_authenticate built from the request it saw.
    let reply = client::authenticate(&connector, "actor_cb_auth").await?;
    ensure_eq!(
        reply.received_user_id.as_str(),
        "actor_cb_auth",
        "received_user_id"
    );
    ensure_eq!(
        reply.received_token.as_str(),
        "token-actor_cb_auth",
        "received_token"
    );
    ensure!(connector.is_authenticated(), "is_authenticated is false");
    Ok(())
}

async fn on_post_authenticate(t: TestCtx) -> TestResult {
    let connector = t.shared(2, "actor_cb_post").await?;
    let state: ActorStateReply = client::request(&connector, &ActorStateRequest {}).await?;
    ensure_eq!(
        state.callbacks,
        vec!["on_create", "on_authenticate", "on_post_authenticate"],
        "actor callbacks in order"
    );
    ensure_eq!(
        state.account_id.as_str(),
        "actor_cb_post",
        "actor account id"
    );
    Ok(())
}

async fn on_create(t: TestCtx) -> TestResult {
    let first = t.shared(3, "actor_cb_first").await?;
    let (second, _tap) = t.joined(3, "actor_cb_second").await?;
    let a: ActorStateReply = client::request(&first, &ActorStateRequest {}).await?;
    let b: ActorStateReply = client::request(&second, &ActorStateRequest {}).await?;
    ensure!(
        a.actor_instance_id != b.actor_instance_id,
        "two users share actor instance {}",
        a.actor_instance_id
    );
    for state in [&a, &b] {
        let creates = state.callbacks.iter().filter(|c| *c == "on_create").count();
        ensure_eq!(creates, 1, "on_create count of {}", state.account_id);
    }
    Ok(())
}

async fn refused_never_joins(t: TestCtx) -> TestResult {
    let (refused, _tap) = t.connector(client::direct_config());
    client::connect(&refused, t.addr(), t.stage_id(4)).await?;
    ensure!(
        refused
            .authenticate(auth_packet("fail_actor_cb"))
            .await
            .is_err(),
        "fail_actor_cb was accepted"
    );
    let connector = t.shared(4, "actor_cb_member").await?;
    let stage: StageStateReply = client::request(&connector, &StageStateRequest {}).await?;
    ensure!(
        !stage.callbacks.iter().any(|c| c.contains("fail_actor_cb")),
        "the refused actor reached the stage: {:?}",
        stage.callbacks
    );
    ensure!(
        stage
            .callbacks
            .iter()
            .any(|c| c == "on_join_stage:actor_cb_member"),
        "the member did not join: {:?}",
        stage.callbacks
    );
    Ok(())
}
