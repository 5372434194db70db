//! Stage to stage: send, request (awaited or with a callback), and the other stage's side,
//! `InterStageMessage`.

use playhouse::{ErrorCode, Packet};

use super::common::{answer, inter_stage, me, on_stage_loop};
use crate::proto::{
    InterStageMessage, InterStageNotify, InterStageReply, TriggerRequestToStageCallbackAccepted,
    TriggerRequestToStageCallbackReply, TriggerRequestToStageCallbackRequest,
    TriggerRequestToStageReply, TriggerRequestToStageRequest, TriggerSendToStageReply,
    TriggerSendToStageRequest,
};
use crate::servers::test_stage::state::{Actor, Ctx, TestStage};

pub(super) fn send_to_stage(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerSendToStageRequest,
) -> Result<TriggerSendToStageReply, ErrorCode> {
    let message = inter_stage(ctx, request.content);
    ctx.sender()
        .send_to_stage(&request.play_id, request.stage_id, message)?;
    Ok(TriggerSendToStageReply { success: true })
}

pub(super) async fn request_to_stage(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerRequestToStageRequest,
) -> Result<TriggerRequestToStageReply, ErrorCode> {
    let message = inter_stage(ctx, request.content);
    let answer: InterStageReply = ctx
        .sender()
        .request_to_stage(&request.play_id, request.stage_id, message)
        .await?
        .decode()?;
    Ok(TriggerRequestToStageReply {
        response: answer.content,
        responder_server_id: answer.responder_server_id,
        responder_stage_id: answer.responder_stage_id,
    })
}

pub(super) fn request_to_stage_callback(
    _: &mut TestStage,
    ctx: &mut Ctx,
    actor: &mut Actor,
    request: TriggerRequestToStageCallbackRequest,
) -> Result<TriggerRequestToStageCallbackAccepted, ErrorCode> {
    let account_id = actor.link.account_id().to_owned();
    let tag = request.tag;
    let accepted = TriggerRequestToStageCallbackAccepted { tag: tag.clone() };
    let message = inter_stage(ctx, request.content);
    let pending = ctx
        .sender()
        .request_to_stage(&request.play_id, request.stage_id, message);
    // The callback runs on the stage loop after this callback, so after the reply.
    ctx.request_with_callback(
        pending,
        move |stage: &mut TestStage, ctx: &mut Ctx, result| {
            let mut notify = TriggerRequestToStageCallbackReply {
                tag,
                on_stage_loop: on_stage_loop(stage),
                ..TriggerRequestToStageCallbackReply::default()
            };
            match answer::<InterStageReply>(result) {
                Ok(answer) => {
                    notify.response = answer.content;
                    notify.responder_server_id = answer.responder_server_id;
                    notify.responder_stage_id = answer.responder_stage_id;
                }
                Err(code) => notify.error_code = u32::from(code.0),
            }
            ctx.send_to_account(&account_id, Packet::from_message(&notify));
        },
    );
    Ok(accepted)
}

/// `InterStageMessage` from another stage: every client of this stage sees the delivery; a
/// request also gets an `InterStageReply` (for a one-way message it is dropped).
pub(super) fn inter_stage_message(
    _: &mut TestStage,
    ctx: &mut Ctx,
    message: InterStageMessage,
) -> Result<InterStageReply, ErrorCode> {
    let me = me(ctx);
    ctx.broadcast(Packet::from_message(&InterStageNotify {
        content: message.content.clone(),
        from_server_id: message.from_server_id,
        from_stage_id: message.from_stage_id,
        receiver_server_id: me.clone(),
        receiver_stage_id: ctx.stage_id(),
    }));
    Ok(InterStageReply {
        content: message.content,
        responder_server_id: me,
        responder_stage_id: ctx.stage_id(),
        from_stage_id: message.from_stage_id,
    })
}
