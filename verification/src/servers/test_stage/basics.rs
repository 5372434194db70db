//! Echo, errors, pushes, the actor and stage senders, and shared services.

use std::time::{SystemTime, UNIX_EPOCH};

use playhouse::{ActorCell, ErrorCode, Packet, ServerInfoCenter, StageContext};

use super::{TestStage, parse, reply};
use crate::proto::{
    ActorStateReply, BroadcastNotify, BroadcastTrigger, BroadcastTriggerReply, CloseStageReply,
    EchoReply, EchoRequest, FailRequest, GetAccountIdReply, GetDirectoryReply, GetServerInfoReply,
    GetServiceValueReply, GetServiceValueRequest, IncrementCounterReply, IncrementCounterRequest,
    LeaveStageReply, StageHistoryReply, StageHistoryRequest, StageStateReply,
};
use crate::servers::api::describe_servers;
use crate::servers::test_actor::TestActor;

type Actor = ActorCell<TestActor>;

/// `EchoRequest` → `EchoReply`; sent one-way, the echo comes back as a push.
pub(super) fn echo(actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<EchoRequest>(actor, packet) else {
        return;
    };
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
pub(super) fn fail(actor: &mut Actor, packet: &Packet) {
    let Some(request) = parse::<FailRequest>(actor, packet) else {
        return;
    };
    match u16::try_from(request.error_code) {
        Ok(code) => actor.link.reply_error(ErrorCode(code)),
        Err(_) => actor.link.reply_error(ErrorCode::INVALID_MESSAGE),
    }
}

/// `BroadcastTrigger` → `count` `BroadcastNotify` pushes to the whole stage (then a reply).
pub(super) fn broadcast(ctx: &mut StageContext<TestStage>, actor: &mut Actor, packet: &Packet) {
    let Some(trigger) = parse::<BroadcastTrigger>(actor, packet) else {
        return;
    };
    let count = trigger.count.max(1);
    for sequence in 1..=count {
        ctx.broadcast(Packet::from_message(&BroadcastNotify {
            event_type: trigger.event_type.clone(),
            data: trigger.data.clone(),
            from_account_id: actor.link.account_id().to_owned(),
            sequence,
        }));
    }
    reply(actor, &BroadcastTriggerReply { pushed: count });
}

/// `GetAccountIdRequest` → the actor's account id.
pub(super) fn account_id(actor: &mut Actor) {
    let account_id = actor.link.account_id().to_owned();
    reply(actor, &GetAccountIdReply { account_id });
}

/// `LeaveStageRequest` → `LeaveStageReply`, then the actor leaves.
pub(super) fn leave_stage(actor: &mut Actor) {
    reply(actor, &LeaveStageReply { success: true });
    actor.link.leave_stage();
}

/// `ActorStateRequest` → the actor's identity and history.
pub(super) fn actor_state(actor: &mut Actor) {
    let state = ActorStateReply {
        actor_instance_id: actor.instance_id,
        account_id: actor.link.account_id().to_owned(),
        callbacks: actor.callbacks.clone(),
        connection_history: actor.connection_history.clone(),
    };
    reply(actor, &state);
}

/// `CloseStageRequest` → `CloseStageReply`, then the stage closes.
pub(super) fn close_stage(ctx: &mut StageContext<TestStage>, actor: &mut Actor) {
    reply(actor, &CloseStageReply { success: true });
    ctx.close_stage();
}

/// `GetDirectoryRequest` → the Play server's directory view (its `ServerInfoCenter` service).
pub(super) fn directory(ctx: &mut StageContext<TestStage>, actor: &mut Actor) {
    match ctx.services().get::<ServerInfoCenter>() {
        Some(center) => reply(
            actor,
            &GetDirectoryReply {
                known_servers: describe_servers(&center),
            },
        ),
        None => actor.link.reply_error(ErrorCode::SYSTEM_ERROR),
    }
}

/// `GetServerInfoRequest` → the server id from the control handle.
pub(super) fn server_info(ctx: &mut StageContext<TestStage>, actor: &mut Actor) {
    let server_id = ctx.control().server_id().to_owned();
    reply(actor, &GetServerInfoReply { server_id });
}

impl TestStage {
    /// `StageStateRequest` → the stage's identity and callback history.
    pub(super) fn stage_state(&mut self, ctx: &mut StageContext<Self>, actor: &mut Actor) {
        let state = StageStateReply {
            stage_id: ctx.stage_id(),
            stage_type: ctx.stage_type().to_owned(),
            callbacks: self.callbacks.clone(),
            connected_count: i32::try_from(ctx.connected_count()).unwrap_or(i32::MAX),
            create_msg_id: self.create_msg_id.clone(),
            created_by: self.created_by.clone(),
        };
        reply(actor, &state);
    }

    /// `StageHistoryRequest` → what a destroyed stage left in the journal.
    pub(super) fn stage_history(&mut self, actor: &mut Actor, packet: &Packet) {
        let Some(request) = parse::<StageHistoryRequest>(actor, packet) else {
            return;
        };
        let history = self
            .journal
            .as_ref()
            .and_then(|journal| journal.history(request.stage_id));
        reply(
            actor,
            &StageHistoryReply {
                stage_id: request.stage_id,
                found: history.is_some(),
                callbacks: history.unwrap_or_default(),
            },
        );
    }

    /// `GetServiceValueRequest` → the greeting service as the stage or the actor got it.
    pub(super) fn service_value(&mut self, actor: &mut Actor, packet: &Packet) {
        let Some(request) = parse::<GetServiceValueRequest>(actor, packet) else {
            return;
        };
        let service = match request.source.as_str() {
            "stage" => self.greeting.clone(),
            "actor" => actor.greeting.clone(),
            _ => return actor.link.reply_error(ErrorCode::INVALID_MESSAGE),
        };
        let Some(service) = service else {
            return actor.link.reply_error(ErrorCode::SYSTEM_ERROR);
        };
        reply(
            actor,
            &GetServiceValueReply {
                source: request.source,
                greeting: service.greeting().to_owned(),
                service_instance_id: service.instance_id(),
            },
        );
    }

    /// `IncrementCounterRequest` → the shared counter after one increment.
    pub(super) fn increment_counter(&mut self, actor: &mut Actor, packet: &Packet) {
        let Some(request) = parse::<IncrementCounterRequest>(actor, packet) else {
            return;
        };
        let counter = match request.via.as_str() {
            "stage" => self.counter.clone(),
            "actor" => actor.counter.clone(),
            _ => return actor.link.reply_error(ErrorCode::INVALID_MESSAGE),
        };
        match counter {
            Some(counter) => reply(
                actor,
                &IncrementCounterReply {
                    value: counter.increment(),
                },
            ),
            None => actor.link.reply_error(ErrorCode::SYSTEM_ERROR),
        }
    }
}
