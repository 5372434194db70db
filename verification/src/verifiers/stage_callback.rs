//! StageCallback: `on_create`, `on_post_create`, `on_join_stage`, `on_post_join_stage`,
//! `on_dispatch` and `on_destroy`, as the stage reports them to its clients.

use std::time::Duration;

use playhouse::ErrorCode;
use playhouse_connector::Connector;

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    ActorDestroyedNotify, CloseStageReply, CloseStageRequest, EchoReply, EchoRequest,
    StageHistoryReply, StageHistoryRequest, StageStateReply, StageStateRequest,
};
use crate::runner::{Category, TestCase};
use crate::servers::TEST_STAGE;
use crate::{ensure, ensure_eq};

/// The StageCallback category (stage ids 8000..).
pub(super) fn category() -> Category {
    Category {
        name: "StageCallback",
        base: 8000,
        tests: vec![
            TestCase::new("OnCreate", |t| Box::pin(on_create(t))),
            TestCase::new("OnJoinStage", |t| Box::pin(on_join_stage(t))),
            TestCase::new("OnPostJoinStage", |t| Box::pin(on_post_join_stage(t))),
            TestCase::new("OnDispatch", |t| Box::pin(on_dispatch(t))),
            TestCase::new("OnDestroy_CloseStage", |t| Box::pin(on_destroy(t))),
            TestCase::new("ClosedStageId_CreatesFreshStage", |t| {
                Box::pin(reuse_closed_id(t))
            }),
        ],
    }
}

async fn stage_state(connector: &Connector) -> Result<StageStateReply, String> {
    client::request(connector, &StageStateRequest {}).await
}

fn position(callbacks: &[String], wanted: &str) -> Result<usize, String> {
    callbacks
        .iter()
        .position(|c| c == wanted)
        .ok_or_else(|| format!("no {wanted:?} in {callbacks:?}"))
}

async fn on_create(t: TestCtx) -> TestResult {
    let connector = t.shared(1, "stage_cb_creator").await?;
    let state = stage_state(&connector).await?;
    ensure_eq!(state.stage_id, t.stage_id(1), "stage id");
    ensure_eq!(state.stage_type.as_str(), TEST_STAGE, "stage type");
    ensure_eq!(
        state.callbacks.get(..2),
        Some(&["on_create".to_owned(), "on_post_create".to_owned()][..]),
        "first stage callbacks"
    );
    Ok(())
}

async fn on_join_stage(t: TestCtx) -> TestResult {
    let connector = t.shared(2, "stage_cb_joiner").await?;
    let state = stage_state(&connector).await?;
    let join = position(&state.callbacks, "on_join_stage:stage_cb_joiner")?;
    let create = position(&state.callbacks, "on_post_create")?;
    ensure!(
        create < join,
        "joined before on_post_create: {:?}",
        state.callbacks
    );
    ensure_eq!(state.connected_count, 1, "connected clients");
    Ok(())
}

async fn on_post_join_stage(t: TestCtx) -> TestResult {
    let connector = t.shared(3, "stage_cb_first").await?;
    let (_second, _tap) = t.joined(3, "stage_cb_second").await?;
    let state = stage_state(&connector).await?;
    for user in ["stage_cb_first", "stage_cb_second"] {
        let join = position(&state.callbacks, &format!("on_join_stage:{user}"))?;
        let post = position(&state.callbacks, &format!("on_post_join_stage:{user}"))?;
        ensure!(
            join < post,
            "{user}: on_post_join_stage before on_join_stage"
        );
    }
    let first_post = position(&state.callbacks, "on_post_join_stage:stage_cb_first")?;
    let second_join = position(&state.callbacks, "on_join_stage:stage_cb_second")?;
    ensure!(
        first_post < second_join,
        "joins interleaved: {:?}",
        state.callbacks
    );
    Ok(())
}

async fn on_dispatch(t: TestCtx) -> TestResult {
    let connector = t.shared(4, "stage_cb_dispatch").await?;
    let reply: EchoReply = client::request(
        &connector,
        &EchoRequest {
            content: "dispatched".into(),
            sequence: 4,
        },
    )
    .await?;
    ensure_eq!(reply.content.as_str(), "dispatched", "echo content");
    let state = stage_state(&connector).await?;
    let echo = position(&state.callbacks, "on_dispatch:EchoRequest")?;
    let query = position(&state.callbacks, "on_dispatch:StageStateRequest")?;
    ensure!(echo < query, "dispatch order: {:?}", state.callbacks);
    Ok(())
}

/// Asks play-1 (through another stage) for the history a closed stage left behind.
async fn closed_history(t: &TestCtx, stage_id: i64) -> Result<Vec<String>, String> {
    let (observer, _tap) = t.joined(90, "stage_cb_observer").await?;
    // The journal entry is written by on_destroy right after the actors were told; poll
    // briefly in case this request overtakes it.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply: StageHistoryReply =
            client::request(&observer, &StageHistoryRequest { stage_id }).await?;
        if reply.found {
            return Ok(reply.callbacks);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("stage {stage_id} left no history within {WAIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn on_destroy(t: TestCtx) -> TestResult {
    let (connector, tap) = t.joined(5, "stage_cb_closer").await?;
    let mut events = tap.subscribe();
    let reply: CloseStageReply = client::request(&connector, &CloseStageRequest {}).await?;
    ensure!(reply.success, "CloseStageReply.success is false");
    let destroyed: ActorDestroyedNotify = events.push(WAIT).await?;
    ensure_eq!(
        destroyed.account_id.as_str(),
        "stage_cb_closer",
        "destroyed actor"
    );
    let echo = EchoRequest {
        content: "after close".into(),
        sequence: 1,
    };
    client::request_fails(&connector, &echo, ErrorCode::STAGE_NOT_FOUND).await?;
    let history = closed_history(&t, t.stage_id(5)).await?;
    ensure_eq!(
        history.last().map(String::as_str),
        Some("on_destroy"),
        "last callback of the closed stage"
    );
    Ok(())
}

async fn reuse_closed_id(t: TestCtx) -> TestResult {
    let (first, tap) = t.joined(6, "stage_cb_reuse").await?;
    let mut events = tap.subscribe();
    let _: CloseStageReply = client::request(&first, &CloseStageRequest {}).await?;
    let _: ActorDestroyedNotify = events.push(WAIT).await?;
    // Once the old stage is destroyed, authenticating into its id creates a new stage.
    closed_history(&t, t.stage_id(6)).await?;
    let (second, _tap) = t.joined(6, "stage_cb_reuse").await?;
    let state = stage_state(&second).await?;
    ensure_eq!(state.stage_id, t.stage_id(6), "stage id");
    ensure!(
        !state.callbacks.iter().any(|c| c == "on_destroy"),
        "the new stage remembers the old one: {:?}",
        state.callbacks
    );
    ensure_eq!(
        state.callbacks.first().map(String::as_str),
        Some("on_create"),
        "first callback of the new stage"
    );
    Ok(())
}
