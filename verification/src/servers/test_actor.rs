//! `TestActor`: the player of `TestStage`. It answers only with packets; what it records is
//! reported back to its own client on request (`ActorStateRequest`).

use std::sync::Arc;

use playhouse::{Actor, ActorInit, ActorLink, ErrorCode, ErrorReply, Packet};

use super::services::{GreetingService, SharedCounter, next_instance_id};
use crate::proto::{ActorDestroyedNotify, AuthenticateReply, AuthenticateRequest};

/// A player of `TestStage`.
#[derive(Debug)]
pub struct TestActor {
    pub(crate) instance_id: u64,
    pub(crate) greeting: Option<Arc<GreetingService>>,
    pub(crate) counter: Option<Arc<SharedCounter>>,
    /// Actor callbacks in the order they ran.
    pub(crate) callbacks: Vec<String>,
    /// Every `on_connection_changed` value the stage reported for this actor.
    pub(crate) connection_history: Vec<bool>,
    /// Set once authentication completed; only a joined actor announces its `on_destroy`
    /// (an actor built for a refused or re-attaching authentication does not).
    joined: bool,
}

impl TestActor {
    /// The actor factory: fetches the shared services the actor uses.
    pub fn new(init: &ActorInit<'_>) -> Self {
        TestActor {
            instance_id: next_instance_id(),
            greeting: init.services.get::<GreetingService>(),
            counter: init.services.get::<SharedCounter>(),
            callbacks: Vec::new(),
            connection_history: Vec::new(),
            joined: false,
        }
    }
}

impl Actor for TestActor {
    async fn on_create(&mut self, _link: &mut ActorLink) {
        self.callbacks.push("on_create".to_owned());
    }

    async fn on_destroy(&mut self, link: &mut ActorLink) {
        if self.joined {
            link.send_to_client(Packet::from_message(&ActorDestroyedNotify {
                account_id: link.account_id().to_owned(),
                actor_instance_id: self.instance_id,
            }));
        }
    }

    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let request: AuthenticateRequest = packet.decode()?;
        if request.user_id.starts_with("fail") {
            // The refusal tells the client what the server saw, with the code.
            let refusal = AuthenticateReply {
                account_id: String::new(),
                success: false,
                received_user_id: request.user_id,
                received_token: request.token,
                stage_id: link.stage_id(),
            };
            return Err(ErrorReply::new(ErrorCode::AUTHENTICATION_FAILED)
                .with_packet(Packet::from_message(&refusal)));
        }
        self.callbacks.push("on_authenticate".to_owned());
        // The user id is the account id; an empty one is refused by the framework.
        link.set_account_id(request.user_id.as_str());
        Ok(Packet::from_message(&AuthenticateReply {
            account_id: request.user_id.clone(),
            success: true,
            received_user_id: request.user_id,
            received_token: request.token,
            stage_id: link.stage_id(),
        }))
    }

    async fn on_post_authenticate(&mut self, _link: &mut ActorLink) {
        self.callbacks.push("on_post_authenticate".to_owned());
        self.joined = true;
    }
}
