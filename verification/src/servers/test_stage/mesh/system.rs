//! Requests and sends to the system handlers of other servers.

use playhouse::{ErrorCode, Packet};

use crate::proto::{
    ApiEchoRequest, SystemNotifyMessage, SystemPingReply, SystemPingRequest,
    TriggerRequestToSystemReply, TriggerRequestToSystemRequest, TriggerSendToSystemReply,
    TriggerSendToSystemRequest,
};
use crate::servers::test_stage::state::{Actor, Ctx, TestStage};

pub(super) async fn request_to_system(
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

pub(super) fn send_to_system(
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
