//! Requests and sends to an API service, routed by policy (round robin, weighted), awaited
//! one by one or with a callback each.

use std::sync::{Arc, Mutex};

use playhouse::{ErrorCode, Packet, ReplyTarget, RoutingPolicy, Sender};

use super::common::{answer, on_stage_loop};
use crate::proto::{
    ApiEchoReply, ApiEchoRequest, InterApiMessage, TriggerServiceReply, TriggerServiceRequest,
    TriggerServiceSendReply, TriggerServiceSendRequest,
};
use crate::servers::test_stage::state::{Actor, Ctx, TestStage};

pub(super) fn policy(name: &str) -> Option<RoutingPolicy> {
    match name {
        "round_robin" => Some(RoutingPolicy::RoundRobin),
        "weighted" => Some(RoutingPolicy::Weighted),
        _ => None,
    }
}

pub(super) fn service_echo(i: usize) -> Packet {
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
pub(super) async fn service_request(
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
pub(super) async fn service_responders(
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

pub(super) fn service_request_with_callbacks(
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

pub(super) fn service_send(
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
