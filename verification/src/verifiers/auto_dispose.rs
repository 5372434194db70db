//! AutoDispose (the original freed mesh replies by hand; here they are owned values): requests
//! awaited in `on_dispatch` and made from timer callbacks return intact replies, again and
//! again, and the stage stays healthy.

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    EchoReply, EchoRequest, StartTimerWithRequestReply, StartTimerWithRequestRequest,
    TimerRequestResultNotify, TriggerAutoDisposeApiReply, TriggerAutoDisposeApiRequest,
    TriggerAutoDisposeStageReply, TriggerAutoDisposeStageRequest,
};
use crate::runner::{Category, TestCase};
use crate::servers::{API_1, API_2, PLAY_2};
use crate::{ensure, ensure_eq};

const USER: &str = "auto_dispose_user";

/// The AutoDispose category (stage ids 23000..).
pub(super) fn category() -> Category {
    Category {
        name: "AutoDispose",
        base: 23_000,
        tests: vec![
            TestCase::new("OnDispatch_RequestToApi", |t| Box::pin(request_to_api(t))),
            TestCase::new("OnDispatch_RequestToStage", |t| {
                Box::pin(request_to_stage(t))
            }),
            TestCase::new("TimerCallback_RequestToApi", |t| Box::pin(timer(t))),
        ],
    }
}

/// The stage still answers its client.
async fn healthy(t: &TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let echo: EchoReply = client::request(
        &connector,
        &EchoRequest {
            content: "after".into(),
            sequence: 1,
        },
    )
    .await?;
    ensure_eq!(echo.content.as_str(), "after", "echo after the requests");
    Ok(())
}

async fn request_to_api(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: TriggerAutoDisposeApiReply = client::request(
        &connector,
        &TriggerAutoDisposeApiRequest {
            api_id: API_1.into(),
            count: 20,
        },
    )
    .await?;
    ensure_eq!(reply.completed, 20, "completed requests");
    ensure_eq!(reply.intact, 20, "intact replies");
    healthy(&t).await
}

async fn request_to_stage(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let (target, _tap) = t
        .joined_at(t.play2_addr(), 2, "auto_dispose_target")
        .await?;
    let reply: TriggerAutoDisposeStageReply = client::request(
        &connector,
        &TriggerAutoDisposeStageRequest {
            play_id: PLAY_2.into(),
            stage_id: t.stage_id(2),
            count: 20,
        },
    )
    .await?;
    target.disconnect().await;
    ensure_eq!(reply.completed, 20, "completed requests");
    ensure_eq!(reply.intact, 20, "intact replies");
    healthy(&t).await
}

async fn timer(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut events = t.shared_events();
    let started: StartTimerWithRequestReply = client::request(
        &connector,
        &StartTimerWithRequestRequest {
            api_id: API_2.into(),
            count: 3,
            period_ms: 50,
        },
    )
    .await?;
    ensure!(started.timer_id != 0, "timer id 0");
    let results: Vec<TimerRequestResultNotify> = events.pushes(3, WAIT).await?;
    let ticks: Vec<i32> = results.iter().map(|r| r.tick).collect();
    ensure_eq!(ticks, vec![1, 2, 3], "ticks whose requests completed");
    for result in &results {
        ensure!(result.success, "tick {}'s request failed", result.tick);
        ensure_eq!(
            result.api_server_id.as_str(),
            API_2,
            "server that answered tick {}",
            result.tick
        );
    }
    healthy(&t).await
}
