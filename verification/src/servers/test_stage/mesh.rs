//! The stage's half of the server mesh: on a client's `Trigger*` request the stage messages
//! other stages, API servers and system handlers through `ctx.sender()` (awaiting in
//! `on_dispatch`, in an async block, or with a request callback) and answers with what came
//! back. A remote error code becomes the reply's error code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use playhouse::{
    ActorCell, ErrorCode, MeshError, Packet, ReplyTarget, RoutingPolicy, StageContext,
};

use super::{TestStage, parse, reply};
use crate::proto::{
    ApiEchoReply, ApiEchoRequest, InterApiMessage, InterStageMessage, InterStageReply,
    StartTimerWithRequestReply, StartTimerWithRequestRequest, SystemNotifyMessage, SystemPingReply,
    SystemPingRequest, TimerApiReply, TimerApiRequest, TimerRequestResultNotify,
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
use crate::servers::test_actor::TestActor;

type Actor = ActorCell<TestActor>;
type Ctx = StageContext<TestStage>;

/// Messages relayed unchanged to the API server named in their first field (`via_api_id` or
/// `api_id`); the API handler does the work and its reply goes back to the client as is.
const RELAYED: &[&str] = &[
    "TriggerRequestToApiServerRequest",
    "TriggerSendToApiServerRequest",
    "TriggerCreateStageRequest",
    "GetApiServerInfoRequest",
    "TriggerHoldRequestPacketRequest",
];

/// Whether `msg_id` is one of this module's messages.
pub(super) fn handles(msg_id: &str) -> bool {
    msg_id.starts_with("Trigger")
        || msg_id == "StartTimerWithRequestRequest"
        || RELAYED.contains(&msg_id)
}

/// Runs the handler of `packet`'s message.
pub(super) async fn dispatch(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    match &*packet.msg_id {
        "TriggerSendToStageRequest" => send_to_stage(ctx, actor, packet),
        "TriggerRequestToStageRequest" => request_to_stage(ctx, actor, packet).await,
        "TriggerRequestToStageCallbackRequest" => request_to_stage_callback(ctx, actor, packet),
        "TriggerSendToApiRequest" => send_to_api(ctx, actor, packet),
        "TriggerRequestToApiRequest" => request_to_api(ctx, actor, packet).await,
        "TriggerAsyncBlockSendToApiRequest" => async_block_send_to_api(ctx, actor, packet),
        "TriggerAsyncBlockRequestToApiRequest" => async_block_request_to_api(ctx, actor, packet),
        "TriggerGetOrCreateStageRequest" => get_or_create_stage(ctx, actor, packet).await,
        "TriggerServiceRequest" => service_request(ctx, actor, packet).await,
        "TriggerServiceSendRequest" => service_send(ctx, actor, packet),
        "TriggerRequestToSystemRequest" => request_to_system(ctx, actor, packet).await,
        "TriggerSendToSystemRequest" => send_to_system(ctx, actor, packet),
        "TriggerAutoDisposeApiRequest" => auto_dispose_api(ctx, actor, packet).await,
        "TriggerAutoDisposeStageRequest" => auto_dispose_stage(ctx, actor, packet).await,
        "StartTimerWithRequestRequest" => timer_with_request(ctx, actor, packet),
        "TriggerKeepMeshRepliesRequest" => keep_mesh_replies(ctx, actor, packet).await,
        "TriggerLargeMeshEchoRequest" => large_mesh_echo(ctx, actor, packet).await,
        msg_id if RELAYED.contains(&msg_id) => relay(ctx, actor, packet).await,
        _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
    }
}

/// Answers the client with a mesh failure's error code.
fn fail(actor: &mut Actor, error: &MeshError) {
    actor.link.reply_error(error.code());
}

/// A mesh reply parsed as `M`.
fn parse_reply<M: prost::Message + Default>(packet: &Packet) -> Result<M, MeshError> {
    packet
        .parse::<M>()
        .map_err(|e| MeshError::Invalid(e.to_string()))
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
async fn relay(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(api_id) = relay_target(packet) else {
        return actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
    };
    match ctx.sender().request_to_api(&api_id, packet.clone()).await {
        Ok(answer) => actor.link.reply(answer),
        Err(error) => fail(actor, &error),
    }
}

// ---- stage to stage --------------------------------------------------------------------------

fn send_to_stage(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerSendToStageRequest>(actor, packet) else {
        return;
    };
    let message = inter_stage(ctx, request.content);
    match ctx
        .sender()
        .send_to_stage(&request.play_id, request.stage_id, message)
    {
        Ok(()) => reply(actor, &TriggerSendToStageReply { success: true }),
        Err(error) => fail(actor, &error),
    }
}

async fn request_to_stage(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerRequestToStageRequest>(actor, packet) else {
        return;
    };
    let message = inter_stage(ctx, request.content);
    let answer = ctx
        .sender()
        .request_to_stage(&request.play_id, request.stage_id, message)
        .await
        .and_then(|answer| parse_reply::<InterStageReply>(&answer));
    match answer {
        Ok(answer) => reply(
            actor,
            &TriggerRequestToStageReply {
                response: answer.content,
                responder_server_id: answer.responder_server_id,
                responder_stage_id: answer.responder_stage_id,
            },
        ),
        Err(error) => fail(actor, &error),
    }
}

fn request_to_stage_callback(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerRequestToStageCallbackRequest>(actor, packet) else {
        return;
    };
    let account_id = actor.link.account_id().to_owned();
    let tag = request.tag;
    reply(
        actor,
        &TriggerRequestToStageCallbackAccepted { tag: tag.clone() },
    );
    let message = inter_stage(ctx, request.content);
    let pending = ctx
        .sender()
        .request_to_stage(&request.play_id, request.stage_id, message);
    ctx.request_with_callback(
        pending,
        move |stage: &mut TestStage, ctx: &mut Ctx, result| {
            let mut notify = TriggerRequestToStageCallbackReply {
                tag,
                on_stage_loop: on_stage_loop(stage),
                ..TriggerRequestToStageCallbackReply::default()
            };
            match result.and_then(|answer| parse_reply::<InterStageReply>(&answer)) {
                Ok(answer) => {
                    notify.response = answer.content;
                    notify.responder_server_id = answer.responder_server_id;
                    notify.responder_stage_id = answer.responder_stage_id;
                }
                Err(error) => notify.error_code = u32::from(error.code().0),
            }
            ctx.send_to_account(&account_id, Packet::from_message(&notify));
        },
    );
}

// ---- stage to API ----------------------------------------------------------------------------

fn send_to_api(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerSendToApiRequest>(actor, packet) else {
        return;
    };
    let message = InterApiMessage {
        content: request.content,
        tag: request.tag,
        ..InterApiMessage::default()
    };
    match ctx
        .sender()
        .send_to_api(&request.api_id, Packet::from_message(&message))
    {
        Ok(()) => reply(actor, &TriggerSendToApiReply { success: true }),
        Err(error) => fail(actor, &error),
    }
}

async fn request_to_api(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerRequestToApiRequest>(actor, packet) else {
        return;
    };
    let echo = ApiEchoRequest {
        content: request.content,
        fail_code: request.fail_code,
        ..ApiEchoRequest::default()
    };
    let answer = ctx
        .sender()
        .request_to_api(&request.api_id, Packet::from_message(&echo))
        .await
        .and_then(|answer| parse_reply::<ApiEchoReply>(&answer));
    match answer {
        Ok(answer) => reply(
            actor,
            &TriggerRequestToApiReply {
                content: answer.content,
                api_server_id: answer.server_id,
                seen_from: answer.from,
                seen_stage_id: answer.stage_id,
            },
        ),
        Err(error) => fail(actor, &error),
    }
}

/// The send runs in the async block's `pre` (off the stage loop); the API server's report of
/// the delivery reaches the client as a push.
fn async_block_send_to_api(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerAsyncBlockSendToApiRequest>(actor, packet) else {
        return;
    };
    reply(
        actor,
        &TriggerAsyncBlockSendToApiAccepted {
            tag: request.tag.clone(),
        },
    );
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
}

/// The request runs in the async block's `pre`; `post` pushes the result from the stage loop.
fn async_block_request_to_api(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerAsyncBlockRequestToApiRequest>(actor, packet) else {
        return;
    };
    let tag = request.tag;
    reply(
        actor,
        &TriggerAsyncBlockRequestToApiAccepted { tag: tag.clone() },
    );
    let account_id = actor.link.account_id().to_owned();
    let echo = ApiEchoRequest {
        content: request.content,
        ..ApiEchoRequest::default()
    };
    let pending = ctx
        .sender()
        .request_to_api(&request.api_id, Packet::from_message(&echo));
    ctx.async_block(
        async move {
            pending
                .await
                .and_then(|answer| parse_reply::<ApiEchoReply>(&answer))
        },
        move |stage: &mut TestStage, ctx: &mut Ctx, answer: Result<ApiEchoReply, MeshError>| {
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
                Err(error) => notify.error_code = u32::from(error.code().0),
            }
            ctx.send_to_account(&account_id, Packet::from_message(&notify));
        },
    );
}

// ---- API to Play -----------------------------------------------------------------------------

/// Relays to the API server; with `use_callback` through `request_with_callback`, answering
/// the client later from the callback (a deferred reply) instead of awaiting here.
async fn get_or_create_stage(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerGetOrCreateStageRequest>(actor, packet) else {
        return;
    };
    if !request.use_callback {
        return relay(ctx, actor, packet).await;
    }
    let Some(target) = actor.link.reply_target() else {
        return;
    };
    let pending = ctx
        .sender()
        .request_to_api(&request.via_api_id, packet.clone());
    ctx.request_with_callback(
        pending,
        move |stage: &mut TestStage, _ctx: &mut Ctx, result| match result
            .and_then(|answer| parse_reply::<TriggerGetOrCreateStageReply>(&answer))
        {
            Ok(mut answer) => {
                answer.answered_from_callback = on_stage_loop(stage);
                target.reply(Packet::from_message(&answer));
            }
            Err(error) => target.reply_error(error.code()),
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

/// The callback form's shared state: each request's responder by index, and the deferred reply.
struct Collected {
    responders: Vec<Option<String>>,
    remaining: usize,
    target: Option<ReplyTarget>,
}

async fn service_request(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerServiceRequest>(actor, packet) else {
        return;
    };
    let (Some(policy), Ok(service_id), Ok(count)) = (
        policy(&request.policy),
        u16::try_from(request.service_id),
        usize::try_from(request.count),
    ) else {
        return actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
    };
    let echo = |i: usize| {
        Packet::from_message(&ApiEchoRequest {
            content: format!("service {i}"),
            ..ApiEchoRequest::default()
        })
    };
    if !request.use_callback {
        let mut responders = Vec::with_capacity(count);
        for i in 0..count {
            let answer = ctx
                .sender()
                .request_to_api_service(service_id, echo(i), policy)
                .await
                .and_then(|answer| parse_reply::<ApiEchoReply>(&answer));
            match answer {
                Ok(answer) => responders.push(answer.server_id),
                Err(error) => return fail(actor, &error),
            }
        }
        return reply(
            actor,
            &TriggerServiceReply {
                responders,
                answered_from_callback: false,
            },
        );
    }
    // Callback form: every request goes out now; the last callback answers.
    let Some(target) = actor.link.reply_target() else {
        return;
    };
    if count == 0 {
        return target.reply(Packet::from_message(&TriggerServiceReply::default()));
    }
    let collected = Arc::new(Mutex::new(Collected {
        responders: vec![None; count],
        remaining: count,
        target: Some(target),
    }));
    for i in 0..count {
        let pending = ctx
            .sender()
            .request_to_api_service(service_id, echo(i), policy);
        let collected = Arc::clone(&collected);
        ctx.request_with_callback(
            pending,
            move |stage: &mut TestStage, _ctx: &mut Ctx, result| {
                let mut collected = collected.lock().unwrap_or_else(|e| e.into_inner());
                collected.remaining -= 1;
                match result.and_then(|answer| parse_reply::<ApiEchoReply>(&answer)) {
                    Ok(answer) => collected.responders[i] = Some(answer.server_id),
                    Err(error) => {
                        if let Some(target) = collected.target.take() {
                            target.reply_error(error.code());
                        }
                    }
                }
                if collected.remaining == 0
                    && let Some(target) = collected.target.take()
                {
                    let responders = collected.responders.iter().flatten().cloned().collect();
                    target.reply(Packet::from_message(&TriggerServiceReply {
                        responders,
                        answered_from_callback: on_stage_loop(stage),
                    }));
                }
            },
        );
    }
}

fn service_send(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerServiceSendRequest>(actor, packet) else {
        return;
    };
    let (Some(policy), Ok(service_id)) =
        (policy(&request.policy), u16::try_from(request.service_id))
    else {
        return actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
    };
    let mut sent = 0;
    for i in 0..request.count {
        let message = InterApiMessage {
            content: format!("service send {i}"),
            tag: request.tag.clone(),
            ..InterApiMessage::default()
        };
        match ctx
            .sender()
            .send_to_api_service(service_id, Packet::from_message(&message), policy)
        {
            Ok(()) => sent += 1,
            Err(error) => return fail(actor, &error),
        }
    }
    reply(actor, &TriggerServiceSendReply { sent });
}

// ---- system messages -------------------------------------------------------------------------

async fn request_to_system(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerRequestToSystemRequest>(actor, packet) else {
        return;
    };
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
    let answer = ctx
        .sender()
        .request_to_system(&request.server_id, message)
        .await
        .and_then(|answer| parse_reply::<SystemPingReply>(&answer));
    match answer {
        Ok(answer) => reply(
            actor,
            &TriggerRequestToSystemReply {
                content: answer.content,
                server_id: answer.server_id,
                server_type: answer.server_type,
            },
        ),
        Err(error) => fail(actor, &error),
    }
}

fn send_to_system(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerSendToSystemRequest>(actor, packet) else {
        return;
    };
    let message = SystemNotifyMessage {
        content: request.content,
        tag: request.tag,
    };
    match ctx
        .sender()
        .send_to_system(&request.server_id, Packet::from_message(&message))
    {
        Ok(()) => reply(actor, &TriggerSendToSystemReply { success: true }),
        Err(error) => fail(actor, &error),
    }
}

// ---- owned mesh packets (AutoDispose) --------------------------------------------------------

async fn auto_dispose_api(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerAutoDisposeApiRequest>(actor, packet) else {
        return;
    };
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
            .await;
        match answer {
            Ok(answer) => {
                completed += 1;
                if parse_reply::<ApiEchoReply>(&answer).is_ok_and(|a| a.content == content) {
                    intact += 1;
                }
                // The reply is dropped here: nothing to free by hand.
            }
            Err(error) => return fail(actor, &error),
        }
    }
    reply(actor, &TriggerAutoDisposeApiReply { completed, intact });
}

async fn auto_dispose_stage(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerAutoDisposeStageRequest>(actor, packet) else {
        return;
    };
    let (mut completed, mut intact) = (0, 0);
    for i in 0..request.count {
        let content = format!("auto dispose {i}");
        let message = inter_stage(ctx, content.clone());
        let answer = ctx
            .sender()
            .request_to_stage(&request.play_id, request.stage_id, message)
            .await;
        match answer {
            Ok(answer) => {
                completed += 1;
                if parse_reply::<InterStageReply>(&answer).is_ok_and(|a| a.content == content) {
                    intact += 1;
                }
            }
            Err(error) => return fail(actor, &error),
        }
    }
    reply(actor, &TriggerAutoDisposeStageReply { completed, intact });
}

/// A count timer whose every tick requests an API server with a callback; the callback pushes
/// the result.
fn timer_with_request(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<StartTimerWithRequestRequest>(actor, packet) else {
        return;
    };
    let (Ok(count), Ok(period)) = (
        u32::try_from(request.count),
        u64::try_from(request.period_ms),
    ) else {
        return actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
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
                    let answer = result.and_then(|answer| parse_reply::<TimerApiReply>(&answer));
                    let notify = match answer {
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
    reply(actor, &StartTimerWithRequestReply { timer_id: id.get() });
}

/// Every request goes out at once; the replies are checked only after the last one arrived.
async fn keep_mesh_replies(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerKeepMeshRepliesRequest>(actor, packet) else {
        return;
    };
    let sender = ctx.sender();
    let pending = (0..request.count).map(|i| {
        let echo = ApiEchoRequest {
            content: format!("kept {i}"),
            ..ApiEchoRequest::default()
        };
        sender.request_to_api(&request.api_id, Packet::from_message(&echo))
    });
    let mut kept = Vec::new();
    for answer in join_all(pending).await {
        match answer {
            Ok(answer) => kept.push(answer),
            Err(error) => return fail(actor, &error),
        }
    }
    let intact = kept
        .iter()
        .enumerate()
        .filter(|(i, answer)| {
            parse_reply::<ApiEchoReply>(answer).is_ok_and(|a| a.content == format!("kept {i}"))
        })
        .count();
    reply(
        actor,
        &TriggerKeepMeshRepliesReply {
            kept: i32::try_from(kept.len()).unwrap_or(i32::MAX),
            intact: i32::try_from(intact).unwrap_or(i32::MAX),
        },
    );
}

/// A fixed pattern of `size` bytes.
fn pattern(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| u8::try_from((i * 31 + 7) % 251).unwrap_or(0))
        .collect()
}

async fn large_mesh_echo(ctx: &mut Ctx, actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<TriggerLargeMeshEchoRequest>(actor, packet) else {
        return;
    };
    let Ok(size) = usize::try_from(request.size) else {
        return actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
    };
    let data = pattern(size);
    let echo = ApiEchoRequest {
        content: "large".into(),
        data: data.clone(),
        ..ApiEchoRequest::default()
    };
    let answer = ctx
        .sender()
        .request_to_api(&request.api_id, Packet::from_message(&echo))
        .await
        .and_then(|answer| parse_reply::<ApiEchoReply>(&answer));
    match answer {
        Ok(answer) => reply(
            actor,
            &TriggerLargeMeshEchoReply {
                size: i32::try_from(answer.data.len()).unwrap_or(i32::MAX),
                intact: answer.data == data,
            },
        ),
        Err(error) => fail(actor, &error),
    }
}
