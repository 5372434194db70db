//! `TestApiController`: the handlers of api-1 and api-2. Each answers with a packet that says
//! which server handled it and what the handler saw; one-way messages are reported back to the
//! stage that sent them (`ServerToStageNotify`), so a client sees every delivery.

use playhouse::{
    ApiSender, Controller, ErrorCode, HandlerRegistry, Packet, ServerControl, ServerInfoCenter,
    ServerState, ServerType,
};

use super::services::GreetingService;
use super::system::{code, notify_stage};
use crate::proto::{
    ApiEchoReply, ApiEchoRequest, CreateStagePayload, GetApiServerInfoReply,
    GetApiServerInfoRequest, InterApiMessage, InterApiReply, ServerToStageNotify, TimerApiReply,
    TimerApiRequest, TriggerCreateStageReply, TriggerCreateStageRequest,
    TriggerGetOrCreateStageReply, TriggerGetOrCreateStageRequest, TriggerHoldRequestPacketReply,
    TriggerHoldRequestPacketRequest, TriggerRequestToApiServerReply,
    TriggerRequestToApiServerRequest, TriggerSendToApiServerReply, TriggerSendToApiServerRequest,
};

/// The verification API handlers (typed where the message is known, raw where the test is
/// about the packet itself).
#[derive(Clone, Copy, Debug, Default)]
pub struct TestApiController;

impl Controller for TestApiController {
    fn handles(&self, h: &mut HandlerRegistry) {
        h.add_typed(
            |request: ApiEchoRequest, sender: ApiSender| async move { echo(request, &sender) },
        );
        h.add_typed(inter_api);
        h.add_typed(request_to_api_server);
        h.add_typed(send_to_api_server);
        h.add_typed(create_stage);
        h.add_typed(get_or_create_stage);
        h.add_typed(|request: TimerApiRequest, sender: ApiSender| async move {
            Ok::<_, ErrorCode>(TimerApiReply {
                tick: request.tick,
                server_id: sender.server_id().to_owned(),
            })
        });
        h.add_typed(api_server_info);
        h.add("TriggerHoldRequestPacketRequest", hold_request_packet);
    }
}

/// `ApiEchoRequest` → `ApiEchoReply` with what the handler saw; `fail_code` fails it.
fn echo(request: ApiEchoRequest, sender: &ApiSender) -> Result<ApiEchoReply, ErrorCode> {
    if request.fail_code > 0 {
        return Err(code(request.fail_code));
    }
    Ok(ApiEchoReply {
        content: request.content,
        server_id: sender.server_id().to_owned(),
        from: sender.from().to_owned(),
        stage_id: sender.stage_id(),
        data: request.data,
    })
}

/// `InterApiMessage`: reports itself to the originating stage; as a request with `bounce_to`,
/// first requests that server back.
async fn inter_api(
    message: InterApiMessage,
    sender: ApiSender,
) -> Result<InterApiReply, ErrorCode> {
    let me = sender.server_id().to_owned();
    let (play_id, stage_id) = if message.origin_stage_id != 0 {
        (message.origin_play_id.clone(), message.origin_stage_id)
    } else {
        (sender.from().to_owned(), sender.stage_id())
    };
    let notify = ServerToStageNotify {
        kind: "InterApiMessage".into(),
        sender_server_id: me.clone(),
        via_server_id: message.via_server_id.clone(),
        content: message.content.clone(),
        tag: message.tag.clone(),
    };
    notify_stage(&sender, &play_id, stage_id, &notify)?;
    let mut path = vec![me];
    if !message.bounce_to.is_empty() {
        let ping = ApiEchoRequest {
            content: message.content.clone(),
            ..ApiEchoRequest::default()
        };
        let reply = sender
            .request_to_api(&message.bounce_to, Packet::from_message(&ping))
            .await?;
        path.push(reply.decode::<ApiEchoReply>()?.server_id);
    }
    Ok(InterApiReply {
        content: message.content,
        path,
    })
}

/// `TriggerRequestToApiServerRequest` (at the `via` server): requests `target_api_id`.
async fn request_to_api_server(
    request: TriggerRequestToApiServerRequest,
    sender: ApiSender,
) -> Result<TriggerRequestToApiServerReply, ErrorCode> {
    let me = sender.server_id().to_owned();
    let target = request.target_api_id.as_str();
    if request.bounce {
        let message = InterApiMessage {
            content: request.content,
            bounce_to: me.clone(),
            ..InterApiMessage::default()
        };
        let reply = sender
            .request_to_api(target, Packet::from_message(&message))
            .await?;
        let reply: InterApiReply = reply.decode()?;
        let mut path = vec![me];
        path.extend(reply.path.iter().cloned());
        Ok(TriggerRequestToApiServerReply {
            content: reply.content,
            responder_server_id: reply.path.first().cloned().unwrap_or_default(),
            path,
        })
    } else {
        let echo = ApiEchoRequest {
            content: request.content,
            fail_code: request.fail_code,
            ..ApiEchoRequest::default()
        };
        let reply = sender
            .request_to_api(target, Packet::from_message(&echo))
            .await?;
        let reply: ApiEchoReply = reply.decode()?;
        Ok(TriggerRequestToApiServerReply {
            content: reply.content,
            path: vec![me, reply.server_id.clone()],
            responder_server_id: reply.server_id,
        })
    }
}

/// `TriggerSendToApiServerRequest` (at the `via` server): sends an `InterApiMessage` on to
/// `target_api_id`, naming the stage that asked as its origin.
async fn send_to_api_server(
    request: TriggerSendToApiServerRequest,
    sender: ApiSender,
) -> Result<TriggerSendToApiServerReply, ErrorCode> {
    let me = sender.server_id().to_owned();
    let message = InterApiMessage {
        content: request.content,
        tag: request.tag,
        origin_play_id: sender.from().to_owned(),
        origin_stage_id: sender.stage_id(),
        via_server_id: me.clone(),
        bounce_to: String::new(),
    };
    sender.send_to_api(&request.target_api_id, Packet::from_message(&message))?;
    Ok(TriggerSendToApiServerReply {
        success: true,
        via_server_id: me,
    })
}

fn creation_packet(sender: &ApiSender) -> Packet {
    Packet::from_message(&CreateStagePayload {
        creator: sender.server_id().to_owned(),
    })
}

/// `TriggerCreateStageRequest`: `ApiSender::create_stage`.
async fn create_stage(
    request: TriggerCreateStageRequest,
    sender: ApiSender,
) -> Result<TriggerCreateStageReply, ErrorCode> {
    let created = sender
        .create_stage(
            &request.play_id,
            &request.stage_type,
            request.stage_id,
            creation_packet(&sender),
        )
        .await?;
    Ok(TriggerCreateStageReply {
        success: true,
        stage_id: created.stage_id,
        reply_msg_id: created.reply.msg_id.to_string(),
    })
}

/// `TriggerGetOrCreateStageRequest`: `ApiSender::get_or_create_stage`.
async fn get_or_create_stage(
    request: TriggerGetOrCreateStageRequest,
    sender: ApiSender,
) -> Result<TriggerGetOrCreateStageReply, ErrorCode> {
    let result = sender
        .get_or_create_stage(
            &request.play_id,
            &request.stage_type,
            request.stage_id,
            creation_packet(&sender),
        )
        .await?;
    Ok(TriggerGetOrCreateStageReply {
        stage_id: result.stage_id,
        is_created: result.is_created,
        answered_from_callback: false,
    })
}

/// `GetApiServerInfoRequest`: the handler's view of its server through shared services.
async fn api_server_info(
    _request: GetApiServerInfoRequest,
    sender: ApiSender,
) -> Result<GetApiServerInfoReply, ErrorCode> {
    let services = sender.services();
    let control = services
        .get::<ServerControl>()
        .ok_or(ErrorCode::SYSTEM_ERROR)?;
    let center = services
        .get::<ServerInfoCenter>()
        .ok_or(ErrorCode::SYSTEM_ERROR)?;
    let greeting = services
        .get::<GreetingService>()
        .ok_or(ErrorCode::SYSTEM_ERROR)?;
    Ok(GetApiServerInfoReply {
        server_id: control.server_id().to_owned(),
        known_servers: describe_servers(&center),
        greeting: greeting.greeting().to_owned(),
    })
}

/// The directory view as sorted `server_id:type:state` strings.
pub(crate) fn describe_servers(center: &ServerInfoCenter) -> Vec<String> {
    let mut servers: Vec<String> = center
        .all()
        .iter()
        .map(|info| {
            let kind = match info.server_type {
                ServerType::Play => "play",
                ServerType::Api => "api",
            };
            let state = match info.state {
                ServerState::Running => "running",
                ServerState::Disabled => "disabled",
                ServerState::Draining => "draining",
            };
            format!("{}:{kind}:{state}", info.server_id)
        })
        .collect();
    servers.sort();
    servers
}

/// `TriggerHoldRequestPacketRequest` (raw handler): keeps the request packet across a nested
/// request, then answers from it.
async fn hold_request_packet(packet: Packet, sender: ApiSender) -> Result<Packet, ErrorCode> {
    let nested_api_id = packet
        .decode::<TriggerHoldRequestPacketRequest>()?
        .nested_api_id;
    let nested = ApiEchoRequest {
        content: "nested".into(),
        ..ApiEchoRequest::default()
    };
    let reply = sender
        .request_to_api(&nested_api_id, Packet::from_message(&nested))
        .await?;
    let nested_responder = reply.decode::<ApiEchoReply>()?.server_id;
    drop(reply);
    // The request packet, kept all along, still holds what the stage sent.
    let kept: TriggerHoldRequestPacketRequest = packet.decode()?;
    Ok(Packet::from_message(&TriggerHoldRequestPacketReply {
        content: kept.content,
        nested_responder,
    }))
}
