//! Echo, errors, pushes, the actor and stage senders, and shared services.

use std::time::{SystemTime, UNIX_EPOCH};

use playhouse::{ErrorCode, Packet, ServerInfoCenter};

use super::state::{Actor, Ctx, Routes, TestStage};
use crate::proto::{
    ActorStateReply, ActorStateRequest, BroadcastNotify, BroadcastTrigger, BroadcastTriggerReply,
    CloseStageReply, CloseStageRequest, EchoReply, EchoRequest, FailRequest, GetAccountIdReply,
    GetAccountIdRequest, GetDirectoryReply, GetDirectoryRequest, GetServerInfoReply,
    GetServerInfoRequest, GetServiceValueReply, GetServiceValueRequest, IncrementCounterReply,
    IncrementCounterRequest, LeaveStageReply, LeaveStageRequest, StageHistoryReply,
    StageHistoryRequest, StageStateReply, StageStateRequest,
};
use crate::servers::api::describe_servers;

/// This module's handlers.
pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .client(echo)
        .client(fail)
        .client(broadcast)
        .client(account_id)
        .client(leave_stage)
        .client(actor_state)
        .client(close_stage)
        .client(directory)
        .client(server_info)
        .client(TestStage::stage_state)
        .client(TestStage::stage_history)
        .client(TestStage::service_value)
        .client(TestStage::increment_counter)
}

/// `EchoRequest` → `EchoReply`; sent one-way, the echo comes back as a push.
fn echo(_: &mut TestStage, _: &mut Ctx, actor: &mut Actor, request: EchoRequest) {
    let processed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let echo = Packet::from_message(&EchoReply {
        content: request.content,
        sequence: request.sequence,
        processed_at,
    });
    if actor.link.is_request() {
        actor.link.reply(echo);
    } else {
        actor.link.send_to_client(echo);
    }
}

/// `FailRequest` → an empty reply carrying the requested error code.
fn fail(_: &mut TestStage, _: &mut Ctx, actor: &mut Actor, request: FailRequest) {
    match u16::try_from(request.error_code) {
        Ok(code) => actor.link.reply_error(ErrorCode(code)),
        Err(_) => actor.link.reply_error(ErrorCode::INVALID_MESSAGE),
    }
}

/// `BroadcastTrigger` → `count` `BroadcastNotify` pushes to the whole stage (then a reply).
fn broadcast(
    _: &mut TestStage,
    ctx: &mut Ctx,
    actor: &mut Actor,
    trigger: BroadcastTrigger,
) -> Result<BroadcastTriggerReply, ErrorCode> {
    let count = trigger.count.max(1);
    for sequence in 1..=count {
        ctx.broadcast(Packet::from_message(&BroadcastNotify {
            event_type: trigger.event_type.clone(),
            data: trigger.data.clone(),
            from_account_id: actor.link.account_id().to_owned(),
            sequence,
        }));
    }
    Ok(BroadcastTriggerReply { pushed: count })
}

/// `GetAccountIdRequest` → the actor's account id.
fn account_id(
    _: &mut TestStage,
    _: &mut Ctx,
    actor: &mut Actor,
    _: GetAccountIdRequest,
) -> Result<GetAccountIdReply, ErrorCode> {
    let account_id = actor.link.account_id().to_owned();
    Ok(GetAccountIdReply { account_id })
}

/// `LeaveStageRequest` → `LeaveStageReply`, then (after this callback) the actor leaves.
fn leave_stage(
    _: &mut TestStage,
    _: &mut Ctx,
    actor: &mut Actor,
    _: LeaveStageRequest,
) -> Result<LeaveStageReply, ErrorCode> {
    actor.link.leave_stage();
    Ok(LeaveStageReply { success: true })
}

/// `ActorStateRequest` → the actor's identity and history.
fn actor_state(
    _: &mut TestStage,
    _: &mut Ctx,
    actor: &mut Actor,
    _: ActorStateRequest,
) -> Result<ActorStateReply, ErrorCode> {
    Ok(ActorStateReply {
        actor_instance_id: actor.instance_id,
        account_id: actor.link.account_id().to_owned(),
        callbacks: actor.callbacks.clone(),
        connection_history: actor.connection_history.clone(),
    })
}

/// `CloseStageRequest` → `CloseStageReply`, then (after this callback) the stage closes.
fn close_stage(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    _: CloseStageRequest,
) -> Result<CloseStageReply, ErrorCode> {
    ctx.close_stage();
    Ok(CloseStageReply { success: true })
}

/// `GetDirectoryRequest` → the Play server's directory view (its `ServerInfoCenter` service).
fn directory(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    _: GetDirectoryRequest,
) -> Result<GetDirectoryReply, ErrorCode> {
    let center = ctx
        .services()
        .get::<ServerInfoCenter>()
        .ok_or(ErrorCode::SYSTEM_ERROR)?;
    Ok(GetDirectoryReply {
        known_servers: describe_servers(&center),
    })
}

/// `GetServerInfoRequest` → the server id from the control handle.
fn server_info(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    _: GetServerInfoRequest,
) -> Result<GetServerInfoReply, ErrorCode> {
    let server_id = ctx.control().server_id().to_owned();
    Ok(GetServerInfoReply { server_id })
}

impl TestStage {
    /// `StageStateRequest` → the stage's identity and callback history.
    fn stage_state(
        &mut self,
        ctx: &mut Ctx,
        _: &mut Actor,
        _: StageStateRequest,
    ) -> Result<StageStateReply, ErrorCode> {
        Ok(StageStateReply {
            stage_id: ctx.stage_id(),
            stage_type: ctx.stage_type().to_owned(),
            callbacks: self.callbacks.clone(),
            connected_count: i32::try_from(ctx.connected_count()).unwrap_or(i32::MAX),
            create_msg_id: self.create_msg_id.clone(),
            created_by: self.created_by.clone(),
        })
    }

    /// `StageHistoryRequest` → what a destroyed stage left in the journal.
    fn stage_history(
        &mut self,
        _: &mut Ctx,
        _: &mut Actor,
        request: StageHistoryRequest,
    ) -> Result<StageHistoryReply, ErrorCode> {
        let history = self
            .journal
            .as_ref()
            .and_then(|journal| journal.history(request.stage_id));
        Ok(StageHistoryReply {
            stage_id: request.stage_id,
            found: history.is_some(),
            callbacks: history.unwrap_or_default(),
        })
    }

    /// `GetServiceValueRequest` → the greeting service as the stage or the actor got it.
    fn service_value(
        &mut self,
        _: &mut Ctx,
        actor: &mut Actor,
        request: GetServiceValueRequest,
    ) -> Result<GetServiceValueReply, ErrorCode> {
        let service = match request.source.as_str() {
            "stage" => self.greeting.clone(),
            "actor" => actor.greeting.clone(),
            _ => return Err(ErrorCode::INVALID_MESSAGE),
        };
        let service = service.ok_or(ErrorCode::SYSTEM_ERROR)?;
        Ok(GetServiceValueReply {
            source: request.source,
            greeting: service.greeting().to_owned(),
            service_instance_id: service.instance_id(),
        })
    }

    /// `IncrementCounterRequest` → the shared counter after one increment.
    fn increment_counter(
        &mut self,
        _: &mut Ctx,
        actor: &mut Actor,
        request: IncrementCounterRequest,
    ) -> Result<IncrementCounterReply, ErrorCode> {
        let counter = match request.via.as_str() {
            "stage" => self.counter.clone(),
            "actor" => actor.counter.clone(),
            _ => return Err(ErrorCode::INVALID_MESSAGE),
        };
        let counter = counter.ok_or(ErrorCode::SYSTEM_ERROR)?;
        Ok(IncrementCounterReply {
            value: counter.increment(),
        })
    }
}
