//! What the mesh handlers share: a mesh outcome read as a message, an echo from an API
//! server, where code runs, and the stage's own address.

use playhouse::{ErrorCode, MeshError, Packet};

use crate::proto::{ApiEchoReply, ApiEchoRequest, InterStageMessage};
use crate::servers::test_stage::state::{Ctx, TestStage};

/// A mesh request's outcome as the message `M`: the remote (or local) failure's code, or
/// `INVALID_MESSAGE` for a reply that is not an `M`.
pub(super) fn answer<M>(result: Result<Packet, MeshError>) -> Result<M, ErrorCode>
where
    M: prost::Message + prost::Name + Default,
{
    Ok(result?.decode()?)
}

/// Asks API server `api_id` to echo `echo` and awaits its reply. (`&mut`: the context is not
/// `Sync`, and a handler's future must be `Send`.)
pub(super) async fn api_echo(
    ctx: &mut Ctx,
    api_id: &str,
    echo: &ApiEchoRequest,
) -> Result<ApiEchoReply, ErrorCode> {
    answer(
        ctx.sender()
            .request_to_api(api_id, Packet::from_message(echo))
            .await,
    )
}

pub(super) fn on_stage_loop(stage: &TestStage) -> bool {
    let task = tokio::task::try_id();
    task.is_some() && task == stage.stage_task
}

pub(super) fn me(ctx: &Ctx) -> String {
    ctx.control().server_id().to_owned()
}

pub(super) fn inter_stage(ctx: &Ctx, content: String) -> Packet {
    Packet::from_message(&InterStageMessage {
        content,
        from_server_id: me(ctx),
        from_stage_id: ctx.stage_id(),
    })
}
