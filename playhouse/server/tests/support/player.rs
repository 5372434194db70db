//! The actor most tests need: a player whose account id is its login's payload.

use std::sync::Arc;

use playhouse::{Actor, ActorLink, ErrorReply, Packet};

use super::destroys::Destroys;

/// Logs in as the authenticate request's payload; counts its destroy.
#[derive(Debug, Default)]
pub struct Player {
    destroys: Arc<Destroys>,
}

impl Player {
    /// A player that reports its destroy to `destroys`.
    pub fn counted_by(destroys: &Arc<Destroys>) -> Player {
        Player {
            destroys: Arc::clone(destroys),
        }
    }
}

impl Actor for Player {
    async fn on_destroy(&mut self, _: &mut ActorLink) {
        self.destroys.actor_destroyed();
    }

    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let user = String::from_utf8_lossy(&packet.payload).into_owned();
        let reply = Packet::new("Welcome", user.clone());
        link.set_account_id(user);
        Ok(reply)
    }
}
