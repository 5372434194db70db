//! Resumable sessions: requests the stage records and answers late, so a verifier can cut a
//! connection with some of them running and then ask how often each one ran.

use std::time::Duration;

use playhouse::{ActorCell, Packet, StageContext};

use super::{TestStage, parse, reply};
use crate::proto::{ResumeProbeHistoryReply, ResumeProbeReply, ResumeProbeRequest};
use crate::servers::test_actor::TestActor;

type Actor = ActorCell<TestActor>;

/// `ResumeProbeRequest` → recorded now, `ResumeProbeReply` after `delay_ms`.
pub(super) fn probe(
    stage: &mut TestStage,
    ctx: &mut StageContext<TestStage>,
    actor: &mut Actor,
    packet: &Packet,
) {
    let Some(request) = parse::<ResumeProbeRequest>(actor, packet) else {
        return;
    };
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
pub(super) fn history(stage: &TestStage, actor: &mut Actor) {
    reply(
        actor,
        &ResumeProbeHistoryReply {
            handled_ids: stage.probes_handled.clone(),
        },
    );
}
