//! Resumable sessions: requests the stage records and answers late, so a verifier can cut a
//! connection with some of them running and then ask how often each one ran.

use std::time::Duration;

use playhouse::{ErrorCode, Packet};

use super::state::{Actor, Ctx, Routes, TestStage};
use crate::proto::{
    ResumeProbeHistoryReply, ResumeProbeHistoryRequest, ResumeProbeReply, ResumeProbeRequest,
};

/// This module's handlers.
pub(super) fn routes(routes: Routes) -> Routes {
    routes.client(probe).client(history)
}

/// `ResumeProbeRequest` → recorded now, `ResumeProbeReply` after `delay_ms`.
fn probe(stage: &mut TestStage, ctx: &mut Ctx, actor: &mut Actor, request: ResumeProbeRequest) {
    stage.probes_handled.push(request.id);
    let Some(target) = actor.link.reply_target() else {
        // Sent one-way: nothing to answer.
        return;
    };
    let mut target = Some(target);
    let delay = Duration::from_millis(u64::try_from(request.delay_ms).unwrap_or(0));
    let answer = Packet::from_message(&ResumeProbeReply { id: request.id });
    ctx.add_count_timer(delay, delay, 1, move |_, _| {
        if let Some(target) = target.take() {
            target.reply(answer.clone());
        }
    });
}

/// `ResumeProbeHistoryRequest` → every probe id handled so far, in order.
fn history(
    stage: &mut TestStage,
    _: &mut Ctx,
    _: &mut Actor,
    _: ResumeProbeHistoryRequest,
) -> Result<ResumeProbeHistoryReply, ErrorCode> {
    Ok(ResumeProbeHistoryReply {
        handled_ids: stage.probes_handled.clone(),
    })
}
