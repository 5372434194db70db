//! AsyncBlock: `pre` runs off the stage loop (the stage keeps answering meanwhile), `post` runs
//! back on it; several blocks run concurrently.

use std::collections::HashSet;

use crate::check::TestResult;
use crate::client::{self, ClientEvent, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    AsyncBlockAccepted, AsyncBlockReply, AsyncBlockRequest, EchoReply, EchoRequest,
};
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

/// The AsyncBlock category (stage ids 9000..).
pub(super) fn category() -> Category {
    Category {
        name: "AsyncBlock",
        base: 9000,
        tests: vec![
            TestCase::new("PreOffLoop_PostOnLoop", |t| Box::pin(pre_and_post(t))),
            TestCase::new("Concurrent5", |t| Box::pin(concurrent(t))),
        ],
    }
}

fn block(tag: &str, delay_ms: i32) -> AsyncBlockRequest {
    AsyncBlockRequest {
        tag: tag.to_owned(),
        delay_ms,
    }
}

async fn pre_and_post(t: TestCtx) -> TestResult {
    let connector = t.shared(1, "async_user").await?;
    let mut events = t.shared_events();
    let accepted: AsyncBlockAccepted = client::request(&connector, &block("single", 300)).await?;
    ensure_eq!(accepted.tag.as_str(), "single", "accepted tag");
    // While pre waits, the stage loop is free: an echo is answered before the block ends.
    let echo: EchoReply = client::request(
        &connector,
        &EchoRequest {
            content: "while pre runs".into(),
            sequence: 1,
        },
    )
    .await?;
    ensure_eq!(echo.content.as_str(), "while pre runs", "echo content");
    let early = events.drain_now().into_iter().any(
        |event| matches!(event, ClientEvent::Push { packet, .. } if packet.is::<AsyncBlockReply>()),
    );
    ensure!(
        !early,
        "the async block finished before the echo was answered"
    );
    let reply: AsyncBlockReply = events.push(WAIT).await?;
    ensure_eq!(reply.tag.as_str(), "single", "reply tag");
    ensure!(reply.pre_off_stage_task, "pre ran on the stage loop's task");
    ensure!(
        reply.post_on_stage_task,
        "post did not run on the stage loop's task"
    );
    ensure_eq!(
        reply.pre_result.as_str(),
        "pre finished single",
        "pre result"
    );
    ensure_eq!(reply.completed_count, 1, "blocks completed by this stage");
    Ok(())
}

async fn concurrent(t: TestCtx) -> TestResult {
    let connector = t.shared(2, "async_many").await?;
    let mut events = t.shared_events();
    // Issued longest first: if the blocks ran one after another they would finish in issue
    // order; concurrently, the shortest finishes first.
    let delays = [400, 300, 200, 100, 0];
    for (i, delay) in delays.iter().enumerate() {
        let tag = format!("block{i}");
        let accepted: AsyncBlockAccepted =
            client::request(&connector, &block(&tag, *delay)).await?;
        ensure_eq!(accepted.tag, tag, "accepted tag");
    }
    let replies: Vec<AsyncBlockReply> = events.pushes(5, WAIT).await?;
    let order: Vec<&str> = replies.iter().map(|r| r.tag.as_str()).collect();
    ensure_eq!(
        order,
        vec!["block4", "block3", "block2", "block1", "block0"],
        "completion order"
    );
    let counts: HashSet<i32> = replies.iter().map(|r| r.completed_count).collect();
    ensure_eq!(counts, (1..=5).collect::<HashSet<_>>(), "completed counts");
    for reply in &replies {
        ensure!(
            reply.pre_off_stage_task && reply.post_on_stage_task,
            "{}: pre/post on the wrong task",
            reply.tag
        );
    }
    Ok(())
}
