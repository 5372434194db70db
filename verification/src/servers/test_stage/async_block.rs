//! `AsyncBlockRequest`: `pre` waits off the stage loop, `post` mutates stage state on it.

use std::time::Duration;

use playhouse::{ErrorCode, Packet};

use super::state::{Actor, Ctx, Routes, TestStage};
use crate::proto::{AsyncBlockAccepted, AsyncBlockReply, AsyncBlockRequest};

/// This module's handlers.
pub(super) fn routes(routes: Routes) -> Routes {
    routes.client(start)
}

/// Replies `AsyncBlockAccepted` at once; the block's result arrives as an `AsyncBlockReply`
/// push telling which task ran `pre` and `post`.
fn start(
    stage: &mut TestStage,
    ctx: &mut Ctx,
    actor: &mut Actor,
    request: AsyncBlockRequest,
) -> Result<AsyncBlockAccepted, ErrorCode> {
    let account_id = actor.link.account_id().to_owned();
    let stage_task = stage.stage_task;
    let delay = Duration::from_millis(u64::try_from(request.delay_ms).unwrap_or(0));
    let tag = request.tag;
    let pre_tag = tag.clone();
    let accepted = AsyncBlockAccepted { tag: tag.clone() };
    // `post` runs on the stage loop after this callback, so after the reply.
    ctx.async_block(
        async move {
            tokio::time::sleep(delay).await;
            let pre_task = tokio::task::try_id();
            let off_stage = pre_task.is_some() && pre_task != stage_task;
            (off_stage, format!("pre finished {pre_tag}"))
        },
        move |stage: &mut TestStage, ctx: &mut Ctx, (off_stage, result)| {
            stage.async_completed += 1;
            let post_task = tokio::task::try_id();
            ctx.send_to_account(
                &account_id,
                Packet::from_message(&AsyncBlockReply {
                    tag,
                    pre_off_stage_task: off_stage,
                    post_on_stage_task: post_task.is_some() && post_task == stage.stage_task,
                    pre_result: result,
                    completed_count: stage.async_completed,
                }),
            );
        },
    );
    Ok(accepted)
}
