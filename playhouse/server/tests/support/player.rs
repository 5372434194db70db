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
        Ok(log_in_as_payload(link, &packet))
    }
}

/// Sets the account id to the authenticate request's payload (an empty one leaves it empty:
/// `INVALID_ACCOUNT_ID`) and returns a reply carrying it, under an id the session replaces.
pub fn log_in_as_payload(link: &mut ActorLink, packet: &Packet) -> Packet {
    let user = String::from_utf8_lossy(&packet.payload).into_owned();
    let reply = Packet::new("Ignored", user.clone());
    link.set_account_id(user);
    reply
}
