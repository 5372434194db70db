//! Messages relayed unchanged to an API server, which does the work; its reply goes back to
//! the client as is.

use playhouse::{ErrorCode, Packet};

use crate::servers::test_stage::state::{Actor, Ctx};

/// Messages relayed unchanged to the API server named in their first field (`via_api_id` or
/// `api_id`); the API handler does the work and its reply goes back to the client as is.
pub(in crate::servers::test_stage) const RELAYED: &[&str] = &[
    "TriggerRequestToApiServerRequest",
    "TriggerSendToApiServerRequest",
    "TriggerCreateStageRequest",
    "GetApiServerInfoRequest",
    "TriggerHoldRequestPacketRequest",
];

/// The first string field of a relayed message: the API server to relay it to.
fn relay_target(packet: &Packet) -> Option<String> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct FirstField {
        #[prost(string, tag = "1")]
        target: String,
    }
    packet
        .parse::<FirstField>()
        .ok()
        .map(|f| f.target)
        .filter(|t| !t.is_empty())
}

/// Relays `packet` to the API server its first field names and answers with the API's reply.
pub(in crate::servers::test_stage) async fn relay(
    ctx: &mut Ctx,
    actor: &mut Actor,
    packet: Packet,
) {
    let Some(api_id) = relay_target(&packet) else {
        return actor.link.reply_error(ErrorCode::INVALID_MESSAGE);
    };
    match ctx.sender().request_to_api(&api_id, packet).await {
        Ok(answer) => actor.link.reply(answer),
        Err(error) => actor.link.reply_error(error.code()),
    }
}
