//! The stage's half of the server mesh: on a client's `Trigger*` request the stage messages
//! other stages, API servers and system handlers through `ctx.sender()` (awaiting in its
//! handler, in an async block, or with a request callback) and answers with what came back. A
//! remote error code becomes the reply's error code (`?` on a `MeshError`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use playhouse::{ErrorCode, MeshError, Packet, ReplyTarget, RoutingPolicy, Sender};

use super::{Actor, Ctx, Routes, TestStage};
use crate::proto::{
    ApiEchoReply, ApiEchoRequest, InterApiMessage, InterStageMessage, InterStageNotify,
    InterStageReply, StartTimerWithRequestReply, StartTimerWithRequestRequest, SystemNotifyMessage,
    SystemPingReply, SystemPingRequest, TimerApiReply, TimerApiRequest, TimerRequestResultNotify,
    TriggerAsyncBlockRequestToApiAccepted, TriggerAsyncBlockRequestToApiReply,
    TriggerAsyncBlockRequestToApiRequest, TriggerAsyncBlockSendToApiAccepted,
    TriggerAsyncBlockSendToApiRequest, TriggerAutoDisposeApiReply, TriggerAutoDisposeApiRequest,
    TriggerAutoDisposeStageReply, TriggerAutoDisposeStageRequest, TriggerGetOrCreateStageReply,
    TriggerGetOrCreateStageRequest, TriggerKeepMeshRepliesReply, TriggerKeepMeshRepliesRequest,
    TriggerLargeMeshEchoReply, TriggerLargeMeshEchoRequest, TriggerRequestToApiReply,
    TriggerRequestToApiRequest, TriggerRequestToStageCallbackAccepted,
    TriggerRequestToStageCallbackReply, TriggerRequestToStageCallbackRequest,
    TriggerRequestToStageReply, TriggerRequestToStageRequest, TriggerRequestToSystemReply,
    TriggerRequestToSystemRequest, TriggerSendToApiReply, TriggerSendToApiRequest,
    TriggerSendToStageReply, TriggerSendToStageRequest, TriggerSendToSystemReply,
    TriggerSendToSystemRequest, TriggerServiceReply, TriggerServiceRequest,
    TriggerServiceSendReply, TriggerServiceSendRequest,
};

/// Messages relayed unchanged to the API server named in their first field (`via_api_id` or
/// `api_id`); the API handler does the work and its reply goes back to the client as is.
pub(super) const RELAYED: &[&str] = &[
    "TriggerRequestToApiServerRequest",
    "TriggerSendToApiServerRequest",
    "TriggerCreateStageRequest",
    "GetApiServerInfoRequest",
    "TriggerHoldRequestPacketRequest",
];

/// This module's handlers: the clients' `Trigger*` requests, and `InterStageMessage` from
/// other stages.
pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .client(send_to_stage)
        .client_async(request_to_stage)
        .client(request_to_stage_callback)
        .client(send_to_api)
        .client_async(request_to_api)
        .client(async_block_send_to_api)
        .client(async_block_request_to_api)
        .client_async(get_or_create_stage)
        .client_async(service_request)
        .client(service_send)
        .client_async(request_to_system)
        .client(send_to_system)
        .client_async(auto_dispose_api)
        .client_async(auto_dispose_stage)
        .client(timer_with_request)
        .client_async(keep_mesh_replies)
        .client_async(large_mesh_echo)
        .server(inter_stage_message)
}

/// A mesh request's outcome as the message `M`: the remote (or local) failure's code, or
/// `INVALID_MESSAGE` for a reply that is not an `M`.
fn answer<M>(result: Result<Packet, MeshError>) -> Result<M, ErrorCode>
where
    M: prost::Message + prost::Name + Default,
{
    Ok(result?.decode()?)
}

fn on_stage_loop(stage: &TestStage) -> bool {
    let task = tokio::task::try_id();
    task.is_some() && task == stage.stage_task
}

fn me(ctx: &Ctx) -> String {
    ctx.control().server_id().to_owned()
}

fn inter_stage(ctx: &Ctx, content: String) -> Packet {
    Packet::from_message(&InterStageMessage {
        content,
        from_server_id: me(ctx),
        from_stage_id: ctx.stage_id(),
    })
}

/// The first string field of a relayed message: the API server to relay it to.
fn relay_target(packet: &Packet) -> Option<String> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct FirstField {
        #[prost(string, tag = "1")]
        target: String,
    }
    packet
        .parse::<FirstField>()
        .ok()
        .map(|f| f.target)
        .filter(|t| !t.is_empty())
}

/// Relays `packet` to the API server its first field names and answers with the API's reply.
pub(super) async fn relay(ctx: &mut Ctx, actor: &mut Actor, packet: Packet) {
    let Some(api_id) = relay_target(&packet) else {
        return actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
    };
    match ctx.sender().request_to_api(&api_id, packet).await {
        Ok(answer) => actor.link.reply(answer),
        Err(error) => actor.link.reply_error(error.code()),
    }
}

/// `InterStageMessage` from another stage: every client of this stage sees the delivery; a
/// request also gets an `InterStageReply` (for a one-way message it is dropped).
fn inter_stage_message(
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

// ---- stage to stage --------------------------------------------------------------------------

fn send_to_stage(
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

async fn request_to_stage(
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

fn request_to_stage_callback(
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

// ---- stage to API ----------------------------------------------------------------------------

fn send_to_api(
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

async fn request_to_api(
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
    let answer: ApiEchoReply = ctx
        .sender()
        .request_to_api(&request.api_id, Packet::from_message(&echo))
        .await?
        .decode()?;
    Ok(TriggerRequestToApiReply {
        content: answer.content,
        api_server_id: answer.server_id,
        seen_from: answer.from,
        seen_stage_id: answer.stage_id,
    })
}

/// The send runs in the async block's `pre` (off the stage loop); the API server's report of
/// the delivery reaches the client as a push.
fn async_block_send_to_api(
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
fn async_block_request_to_api(
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

// ---- API to Play -----------------------------------------------------------------------------

/// Relays to the API server; with `use_callback` through `request_with_callback`, answering
/// the client later from the callback (a deferred reply) instead of awaiting here.
async fn get_or_create_stage(
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

// ---- service routing -------------------------------------------------------------------------

fn policy(name: &str) -> Option<RoutingPolicy> {
    match name {
        "round_robin" => Some(RoutingPolicy::RoundRobin),
        "weighted" => Some(RoutingPolicy::Weighted),
        _ => None,
    }
}

fn service_echo(i: usize) -> Packet {
    Packet::from_message(&ApiEchoRequest {
        content: format!("service {i}"),
        ..ApiEchoRequest::default()
    })
}

/// The callback form's shared state: each request's responder by index, and the deferred reply.
struct Collected {
    responders: Vec<Option<String>>,
    remaining: usize,
    target: Option<ReplyTarget>,
}

/// `count` requests to the service, one after the other (awaited here) or all at once with a
/// callback each (the last one answers).
async fn service_request(
    _: &mut TestStage,
    ctx: &mut Ctx,
    actor: &mut Actor,
    request: TriggerServiceRequest,
) {
    let (Some(policy), Ok(service_id), Ok(count)) = (
        policy(&request.policy),
        u16::try_from(request.service_id),
        usize::try_from(request.count),
    ) else {
        return actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
    };
    if request.use_callback {
        return service_request_with_callbacks(ctx, actor, service_id, policy, count);
    }
    match service_responders(ctx.sender(), service_id, policy, count).await {
        Ok(responders) => actor.link.reply_message(&TriggerServiceReply {
            responders,
            answered_from_callback: false,
        }),
        Err(code) => actor.link.reply_error(code),
    }
}

/// Who answered each of `count` requests, asked one after the other.
async fn service_responders(
    sender: Sender,
    service_id: u16,
    policy: RoutingPolicy,
    count: usize,
) -> Result<Vec<String>, ErrorCode> {
    let mut responders = Vec::with_capacity(count);
    for i in 0..count {
        let result = sender
            .request_to_api_service(service_id, service_echo(i), policy)
            .await;
        responders.push(answer::<ApiEchoReply>(result)?.server_id);
    }
    Ok(responders)
}

fn service_request_with_callbacks(
    ctx: &mut Ctx,
    actor: &mut Actor,
    service_id: u16,
    policy: RoutingPolicy,
    count: usize,
) {
    let Some(target) = actor.link.reply_target() else {
        return;
    };
    if count == 0 {
        return target.reply_message(&TriggerServiceReply::default());
    }
    let collected = Arc::new(Mutex::new(Collected {
        responders: vec![None; count],
        remaining: count,
        target: Some(target),
    }));
    for i in 0..count {
        let pending = ctx
            .sender()
            .request_to_api_service(service_id, service_echo(i), policy);
        let collected = Arc::clone(&collected);
        ctx.request_with_callback(
            pending,
            move |stage: &mut TestStage, _ctx: &mut Ctx, result| {
                let mut collected = collected.lock().unwrap_or_else(|e| e.into_inner());
                collected.remaining -= 1;
                match answer::<ApiEchoReply>(result) {
                    Ok(answer) => collected.responders[i] = Some(answer.server_id),
                    Err(code) => {
                        if let Some(target) = collected.target.take() {
                            target.reply_error(code);
                        }
                    }
                }
                if collected.remaining == 0
                    && let Some(target) = collected.target.take()
                {
                    let responders = collected.responders.iter().flatten().cloned().collect();
                    target.reply_message(&TriggerServiceReply {
                        responders,
                        answered_from_callback: on_stage_loop(stage),
                    });
                }
            },
        );
    }
}

fn service_send(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerServiceSendRequest,
) -> Result<TriggerServiceSendReply, ErrorCode> {
    let (Some(policy), Ok(service_id)) =
        (policy(&request.policy), u16::try_from(request.service_id))
    else {
        return Err(ErrorCode::INVALID_MESSAGE);
    };
    let mut sent = 0;
    for i in 0..request.count {
        let message = InterApiMessage {
            content: format!("service send {i}"),
            tag: request.tag.clone(),
            ..InterApiMessage::default()
        };
        ctx.sender()
            .send_to_api_service(service_id, Packet::from_message(&message), policy)?;
        sent += 1;
    }
    Ok(TriggerServiceSendReply { sent })
}

// ---- system messages -------------------------------------------------------------------------

async fn request_to_system(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerRequestToSystemRequest,
) -> Result<TriggerRequestToSystemReply, ErrorCode> {
    let message = if request.as_regular_message {
        Packet::from_message(&ApiEchoRequest {
            content: request.content,
            ..ApiEchoRequest::default()
        })
    } else {
        Packet::from_message(&SystemPingRequest {
            content: request.content,
            fail_code: request.fail_code,
        })
    };
    let answer: SystemPingReply = ctx
        .sender()
        .request_to_system(&request.server_id, message)
        .await?
        .decode()?;
    Ok(TriggerRequestToSystemReply {
        content: answer.content,
        server_id: answer.server_id,
        server_type: answer.server_type,
    })
}

fn send_to_system(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerSendToSystemRequest,
) -> Result<TriggerSendToSystemReply, ErrorCode> {
    let message = SystemNotifyMessage {
        content: request.content,
        tag: request.tag,
    };
    ctx.sender()
        .send_to_system(&request.server_id, Packet::from_message(&message))?;
    Ok(TriggerSendToSystemReply { success: true })
}

// ---- owned mesh packets (AutoDispose) --------------------------------------------------------

async fn auto_dispose_api(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerAutoDisposeApiRequest,
) -> Result<TriggerAutoDisposeApiReply, ErrorCode> {
    let (mut completed, mut intact) = (0, 0);
    for i in 0..request.count {
        let content = format!("auto dispose {i}");
        let echo = ApiEchoRequest {
            content: content.clone(),
            ..ApiEchoRequest::default()
        };
        let answer = ctx
            .sender()
            .request_to_api(&request.api_id, Packet::from_message(&echo))
            .await?;
        completed += 1;
        if answer
            .decode::<ApiEchoReply>()
            .is_ok_and(|a| a.content == content)
        {
            intact += 1;
        }
        // The reply is dropped here: nothing to free by hand.
    }
    Ok(TriggerAutoDisposeApiReply { completed, intact })
}

async fn auto_dispose_stage(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerAutoDisposeStageRequest,
) -> Result<TriggerAutoDisposeStageReply, ErrorCode> {
    let (mut completed, mut intact) = (0, 0);
    for i in 0..request.count {
        let content = format!("auto dispose {i}");
        let message = inter_stage(ctx, content.clone());
        let answer = ctx
            .sender()
            .request_to_stage(&request.play_id, request.stage_id, message)
            .await?;
        completed += 1;
        if answer
            .decode::<InterStageReply>()
            .is_ok_and(|a| a.content == content)
        {
            intact += 1;
        }
    }
    Ok(TriggerAutoDisposeStageReply { completed, intact })
}

/// A count timer whose every tick requests an API server with a callback; the callback pushes
/// the result.
fn timer_with_request(
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

/// Every request goes out at once; the replies are checked only after the last one arrived.
async fn keep_mesh_replies(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerKeepMeshRepliesRequest,
) -> Result<TriggerKeepMeshRepliesReply, ErrorCode> {
    let sender = ctx.sender();
    let pending = (0..request.count).map(|i| {
        let echo = ApiEchoRequest {
            content: format!("kept {i}"),
            ..ApiEchoRequest::default()
        };
        sender.request_to_api(&request.api_id, Packet::from_message(&echo))
    });
    let kept = join_all(pending)
        .await
        .into_iter()
        .collect::<Result<Vec<Packet>, MeshError>>()?;
    let intact = kept
        .iter()
        .enumerate()
        .filter(|(i, answer)| {
            answer
                .decode::<ApiEchoReply>()
                .is_ok_and(|a| a.content == format!("kept {i}"))
        })
        .count();
    Ok(TriggerKeepMeshRepliesReply {
        kept: i32::try_from(kept.len()).unwrap_or(i32::MAX),
        intact: i32::try_from(intact).unwrap_or(i32::MAX),
    })
}

/// A fixed pattern of `size` bytes.
fn pattern(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| u8::try_from((i * 31 + 7) % 251).unwrap_or(0))
        .collect()
}

async fn large_mesh_echo(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerLargeMeshEchoRequest,
) -> Result<TriggerLargeMeshEchoReply, ErrorCode> {
    let size = usize::try_from(request.size).map_err(|_| ErrorCode::INVALID_MESSAGE)?;
    let data = pattern(size);
    let echo = ApiEchoRequest {
        content: "large".into(),
        data: data.clone(),
        ..ApiEchoRequest::default()
    };
    let answer: ApiEchoReply = ctx
        .sender()
        .request_to_api(&request.api_id, Packet::from_message(&echo))
        .await?
        .decode()?;
    Ok(TriggerLargeMeshEchoReply {
        size: i32::try_from(answer.data.len()).unwrap_or(i32::MAX),
        intact: answer.data == data,
    })
}
