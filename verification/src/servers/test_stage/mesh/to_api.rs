//! Stage to API: send and request, from the handler or an async block; a relay that answers
//! from its callback (API to Play); a timer whose every tick requests an API server.

use std::time::Duration;

use playhouse::{ErrorCode, MeshError, Packet};

use super::common::{answer, api_echo, on_stage_loop};
use super::relay::relay;
use crate::proto::{
    ApiEchoReply, ApiEchoRequest, InterApiMessage, StartTimerWithRequestReply,
    StartTimerWithRequestRequest, TimerApiReply, TimerApiRequest, TimerRequestResultNotify,
    TriggerAsyncBlockRequestToApiAccepted, TriggerAsyncBlockRequestToApiReply,
    TriggerAsyncBlockRequestToApiRequest, TriggerAsyncBlockSendToApiAccepted,
    TriggerAsyncBlockSendToApiRequest, TriggerGetOrCreateStageReply,
    TriggerGetOrCreateStageRequest, TriggerRequestToApiReply, TriggerRequestToApiRequest,
    TriggerSendToApiReply, TriggerSendToApiRequest,
};
use crate::servers::test_stage::state::{Actor, Ctx, TestStage};

pub(super) fn send_to_api(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerSendToApiRequest,
) -> Result<TriggerSendToApiReply, ErrorCode> {
    let message = InterApiMessage {
        content: request.content,
        tag: request.tag,
        ..InterApiMessage::default()
    };
    ctx.sender()
        .send_to_api(&request.api_id, Packet::from_message(&message))?;
    Ok(TriggerSendToApiReply { success: true })
}

pub(super) async fn request_to_api(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerRequestToApiRequest,
) -> Result<TriggerRequestToApiReply, ErrorCode> {
    let echo = ApiEchoRequest {
        content: request.content,
        fail_code: request.fail_code,
        ..ApiEchoRequest::default()
    };
    let answer = api_echo(ctx, &request.api_id, &echo).await?;
    Ok(TriggerRequestToApiReply {
        content: answer.content,
        api_server_id: answer.server_id,
        seen_from: answer.from,
        seen_stage_id: answer.stage_id,
    })
}

/// The send runs in the async block's `pre` (off the stage loop); the API server's report of
/// the delivery reaches the client as a push.
pub(super) fn async_block_send_to_api(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerAsyncBlockSendToApiRequest,
) -> Result<TriggerAsyncBlockSendToApiAccepted, ErrorCode> {
    let accepted = TriggerAsyncBlockSendToApiAccepted {
        tag: request.tag.clone(),
    };
    let sender = ctx.sender();
    let message = InterApiMessage {
        content: request.content,
        tag: request.tag,
        ..InterApiMessage::default()
    };
    let api_id = request.api_id;
    ctx.async_block(
        async move { sender.send_to_api(&api_id, Packet::from_message(&message)) },
        |_stage: &mut TestStage, _ctx: &mut Ctx, sent: Result<(), MeshError>| {
            if let Err(error) = sent {
                tracing::warn!(%error, "async block send_to_api failed");
            }
        },
    );
    Ok(accepted)
}

/// The request runs in the async block's `pre`; `post` pushes the result from the stage loop.
pub(super) fn async_block_request_to_api(
    _: &mut TestStage,
    ctx: &mut Ctx,
    actor: &mut Actor,
    request: TriggerAsyncBlockRequestToApiRequest,
) -> Result<TriggerAsyncBlockRequestToApiAccepted, ErrorCode> {
    let tag = request.tag;
    let accepted = TriggerAsyncBlockRequestToApiAccepted { tag: tag.clone() };
    let account_id = actor.link.account_id().to_owned();
    let echo = ApiEchoRequest {
        content: request.content,
        ..ApiEchoRequest::default()
    };
    let pending = ctx
        .sender()
        .request_to_api(&request.api_id, Packet::from_message(&echo));
    ctx.async_block(
        async move { answer::<ApiEchoReply>(pending.await) },
        move |stage: &mut TestStage, ctx: &mut Ctx, answer: Result<ApiEchoReply, ErrorCode>| {
            let mut notify = TriggerAsyncBlockRequestToApiReply {
                tag,
                post_on_stage_task: on_stage_loop(stage),
                ..TriggerAsyncBlockRequestToApiReply::default()
            };
            match answer {
                Ok(answer) => {
                    notify.content = answer.content;
                    notify.api_server_id = answer.server_id;
                }
                Err(code) => notify.error_code = u32::from(code.0),
            }
            ctx.send_to_account(&account_id, Packet::from_message(&notify));
        },
    );
    Ok(accepted)
}

/// Relays to the API server; with `use_callback` through `request_with_callback`, answering
/// the client later from the callback (a deferred reply) instead of awaiting here.
pub(super) async fn get_or_create_stage(
    _: &mut TestStage,
    ctx: &mut Ctx,
    actor: &mut Actor,
    request: TriggerGetOrCreateStageRequest,
) {
    let packet = Packet::from_message(&request);
    if !request.use_callback {
        return relay(ctx, actor, packet).await;
    }
    let Some(target) = actor.link.reply_target() else {
        return;
    };
    let pending = ctx.sender().request_to_api(&request.via_api_id, packet);
    ctx.request_with_callback(
        pending,
        move |stage: &mut TestStage, _ctx: &mut Ctx, result| match answer::<
            TriggerGetOrCreateStageReply,
        >(result)
        {
            Ok(mut answer) => {
                answer.answered_from_callback = on_stage_loop(stage);
                target.reply_message(&answer);
            }
            Err(code) => target.reply_error(code),
        },
    );
}

/// A count timer whose every tick requests an API server with a callback; the callback pushes
/// the result.
pub(super) fn timer_with_request(
    _: &mut TestStage,
    ctx: &mut Ctx,
    actor: &mut Actor,
    request: StartTimerWithRequestRequest,
) -> Result<StartTimerWithRequestReply, ErrorCode> {
    let (Ok(count), Ok(period)) = (
        u32::try_from(request.count),
        u64::try_from(request.period_ms),
    ) else {
        return Err(ErrorCode::INVALID_MESSAGE);
    };
    let period = Duration::from_millis(period);
    let account_id = actor.link.account_id().to_owned();
    let api_id = request.api_id;
    let mut tick = 0;
    let id = ctx.add_count_timer(
        period,
        period,
        count,
        move |_stage: &mut TestStage, ctx: &mut Ctx| {
            tick += 1;
            let this_tick = tick;
            let pending = ctx
                .sender()
                .request_to_api(&api_id, Packet::from_message(&TimerApiRequest { tick }));
            let account_id = account_id.clone();
            ctx.request_with_callback(
                pending,
                move |_stage: &mut TestStage, ctx: &mut Ctx, result| {
                    let notify = match answer::<TimerApiReply>(result) {
                        Ok(answer) => TimerRequestResultNotify {
                            tick: this_tick,
                            success: answer.tick == this_tick,
                            api_server_id: answer.server_id,
                        },
                        Err(_) => TimerRequestResultNotify {
                            tick: this_tick,
                            success: false,
                            api_server_id: String::new(),
                        },
                    };
                    ctx.send_to_account(&account_id, Packet::from_message(&notify));
                },
            );
        },
    );
    Ok(StartTimerWithRequestReply { timer_id: id.get() })
}
