//! `TestStage`: the default stage type of `play-1`. Every verifier feature is one message kind;
//! [`TestStage::on_dispatch`](playhouse::Stage::on_dispatch) dispatches on the message id to
//! the handlers of the submodules. The stage records its callbacks in order and answers with
//! packets only.

mod async_block;
mod basics;
mod game_loop;
mod mesh;
mod resume;
mod timers;

use std::collections::HashMap;
use std::sync::Arc;

use playhouse::{ActorCell, ErrorCode, Packet, Stage, StageContext, StageInit, TimerId};

use super::services::{GreetingService, SharedCounter, StageJournal};
use super::test_actor::TestActor;
use crate::proto::{
    ConnectionChangedNotify, CreateStagePayload, InterStageMessage, InterStageNotify,
    InterStageReply, StageCreatedReply,
};

/// The stage every verifier talks to.
#[derive(Debug)]
pub struct TestStage {
    /// Stage callbacks in the order they ran.
    callbacks: Vec<String>,
    greeting: Option<Arc<GreetingService>>,
    counter: Option<Arc<SharedCounter>>,
    journal: Option<Arc<StageJournal>>,
    /// The task running this stage's loop, to tell which code ran on it.
    stage_task: Option<tokio::task::Id>,
    /// Async blocks whose `post` has run.
    async_completed: i32,
    /// Live timers by the id the client knows.
    timers: HashMap<u64, TimerId>,
    /// Ticks each timer has pushed, by timer id.
    timer_ticks: HashMap<u64, i32>,
    /// The game loop's last step number.
    game_loop_ticks: u64,
    /// The msg id of the packet `on_create` got, and the creator it named (API creations).
    create_msg_id: String,
    created_by: String,
    /// Ids of the `ResumeProbeRequest`s handled, in order.
    probes_handled: Vec<i32>,
}

impl TestStage {
    /// The stage factory: fetches the shared services the stage uses.
    pub fn new(init: &StageInit<'_>) -> Self {
        TestStage {
            callbacks: Vec::new(),
            greeting: init.services.get::<GreetingService>(),
            counter: init.services.get::<SharedCounter>(),
            journal: init.services.get::<StageJournal>(),
            stage_task: None,
            async_completed: 0,
            timers: HashMap::new(),
            timer_ticks: HashMap::new(),
            game_loop_ticks: 0,
            create_msg_id: String::new(),
            created_by: String::new(),
            probes_handled: Vec::new(),
        }
    }

    fn record(&mut self, callback: impl Into<String>) {
        self.callbacks.push(callback.into());
    }
}

/// Parses a request payload, answering [`ErrorCode::INVALID_MESSAGE`] when it is not `M`.
fn parse<M: prost::Message + Default>(
    actor: &mut ActorCell<TestActor>,
    packet: &Packet,
) -> Option<M> {
    match packet.parse::<M>() {
        Ok(message) => Some(message),
        Err(_) => {
            actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
            None
        }
    }
}

/// Replies with a prost message.
fn reply<M: prost::Message + prost::Name>(actor: &mut ActorCell<TestActor>, message: &M) {
    actor.link.reply(Packet::from_message(message));
}

impl Stage for TestStage {
    type Actor = TestActor;

    async fn on_create(
        &mut self,
        ctx: &mut StageContext<Self>,
        packet: Packet,
    ) -> Result<Packet, ErrorCode> {
        self.stage_task = tokio::task::try_id();
        self.record("on_create");
        self.create_msg_id = packet.msg_id.to_string();
        if let Ok(payload) = packet.parse::<CreateStagePayload>()
            && packet.is::<CreateStagePayload>()
        {
            self.created_by = payload.creator;
        }
        Ok(Packet::from_message(&StageCreatedReply {
            stage_id: ctx.stage_id(),
            stage_type: ctx.stage_type().to_owned(),
        }))
    }

    async fn on_post_create(&mut self, _ctx: &mut StageContext<Self>) {
        self.record("on_post_create");
    }

    async fn on_destroy(&mut self, ctx: &mut StageContext<Self>) {
        self.record("on_destroy");
        if let Some(journal) = &self.journal {
            journal.record(ctx.stage_id(), self.callbacks.clone());
        }
    }

    async fn on_join_stage(
        &mut self,
        _ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<TestActor>,
    ) -> bool {
        self.record(format!("on_join_stage:{}", actor.link.account_id()));
        true
    }

    async fn on_post_join_stage(
        &mut self,
        _ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<TestActor>,
    ) {
        self.record(format!("on_post_join_stage:{}", actor.link.account_id()));
    }

    async fn on_connection_changed(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<TestActor>,
        connected: bool,
    ) {
        let account_id = actor.link.account_id().to_owned();
        self.record(format!("on_connection_changed:{account_id}:{connected}"));
        actor.connection_history.push(connected);
        // Everyone connected hears it: on `false` that is the others, on `true` the
        // re-attached client too.
        ctx.broadcast(Packet::from_message(&ConnectionChangedNotify {
            account_id,
            connected,
            actor_instance_id: actor.instance_id,
        }));
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<TestActor>,
        packet: Packet,
    ) {
        self.record(format!("on_dispatch:{}", packet.msg_id));
        match &*packet.msg_id {
            "EchoRequest" => basics::echo(actor, &packet),
            "FailRequest" => basics::fail(actor, &packet),
            "NoResponseRequest" => {}
            "BroadcastTrigger" => basics::broadcast(ctx, actor, &packet),
            "GetAccountIdRequest" => basics::account_id(actor),
            "LeaveStageRequest" => basics::leave_stage(actor),
            "ActorStateRequest" => basics::actor_state(actor),
            "StageStateRequest" => self.stage_state(ctx, actor),
            "CloseStageRequest" => basics::close_stage(ctx, actor),
            "StageHistoryRequest" => self.stage_history(actor, &packet),
            "GetServiceValueRequest" => self.service_value(actor, &packet),
            "IncrementCounterRequest" => self.increment_counter(actor, &packet),
            "GetServerInfoRequest" => basics::server_info(ctx, actor),
            "AsyncBlockRequest" => async_block::start(self, ctx, actor, &packet),
            "StartRepeatTimerRequest" => timers::start_repeat(self, ctx, actor, &packet),
            "StartCountTimerRequest" => timers::start_count(self, ctx, actor, &packet),
            "CancelTimerRequest" => timers::cancel(self, ctx, actor, &packet),
            "HasTimerRequest" => timers::has(self, ctx, actor, &packet),
            "StartGameLoopRequest" => game_loop::start(ctx, actor, &packet),
            "StopGameLoopRequest" => game_loop::stop(self, ctx, actor),
            "StallStageRequest" => game_loop::stall(self, actor, &packet).await,
            "GetDirectoryRequest" => basics::directory(ctx, actor),
            "ResumeProbeRequest" => resume::probe(self, ctx, actor, &packet),
            "ResumeProbeHistoryRequest" => resume::history(self, actor),
            msg_id if mesh::handles(msg_id) => mesh::dispatch(ctx, actor, &packet).await,
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        self.record(format!("on_dispatch_server:{}", packet.msg_id));
        match &*packet.msg_id {
            "InterStageMessage" => {
                let Ok(message) = packet.parse::<InterStageMessage>() else {
                    return ctx.reply_error(ErrorCode::INVALID_MESSAGE);
                };
                let me = ctx.control().server_id().to_owned();
                // Every client of this stage sees the delivery; a request also gets a reply
                // (replying to a one-way message does nothing).
                ctx.broadcast(Packet::from_message(&InterStageNotify {
                    content: message.content.clone(),
                    from_server_id: message.from_server_id,
                    from_stage_id: message.from_stage_id,
                    receiver_server_id: me.clone(),
                    receiver_stage_id: ctx.stage_id(),
                }));
                let reply = InterStageReply {
                    content: message.content,
                    responder_server_id: me,
                    responder_stage_id: ctx.stage_id(),
                    from_stage_id: message.from_stage_id,
                };
                ctx.reply(Packet::from_message(&reply));
            }
            // Reports from other servers, for this stage's clients.
            "ServerToStageNotify" => ctx.broadcast(packet),
            _ => ctx.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}
