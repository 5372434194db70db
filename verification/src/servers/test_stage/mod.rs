//! `TestStage`: the default stage type of `play-1`. Every verifier feature is one message kind:
//! each submodule registers typed handlers for its messages ([`StageRoutes`]), and
//! [`TestStage::on_dispatch`](playhouse::Stage::on_dispatch) hands every packet to them; the
//! few messages that stay packets (relayed to an API server unchanged, never answered, pushed on
//! as they are) fall through to a `match` on the message id. The stage records its callbacks in
//! order.

mod async_block;
mod basics;
mod game_loop;
mod mesh;
mod resume;
pub(super) mod state;
mod timers;

use std::sync::LazyLock;

use playhouse::{ActorCell, ErrorCode, Packet, Stage, StageContext, StageRoutes};

use super::test_actor::TestActor;
use crate::proto::{ConnectionChangedNotify, CreateStagePayload, StageCreatedReply};
use mesh::relay::{RELAYED, relay};
use state::{Routes, TestStage};

/// Every submodule's handlers, registered once for the stage type.
static ROUTES: LazyLock<Routes> = LazyLock::new(|| {
    let modules: [fn(Routes) -> Routes; 6] = [
        basics::routes,
        async_block::routes,
        timers::routes,
        game_loop::routes,
        resume::routes,
        mesh::routes,
    ];
    modules
        .into_iter()
        .fold(StageRoutes::new(), |routes, add| add(routes))
});

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
        let Some(packet) = ROUTES.dispatch(self, ctx, actor, packet).await else {
            return;
        };
        match &*packet.msg_id {
            // Never answered: what request timeouts are tested with.
            "NoResponseRequest" => {}
            // Relayed to an API server as they are.
            msg_id if RELAYED.contains(&msg_id) => relay(ctx, actor, packet).await,
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        self.record(format!("on_dispatch_server:{}", packet.msg_id));
        let Some(packet) = ROUTES.dispatch_server(self, ctx, packet).await else {
            return;
        };
        match &*packet.msg_id {
            // Reports from other servers, for this stage's clients.
            "ServerToStageNotify" => ctx.broadcast(packet),
            _ => ctx.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}
