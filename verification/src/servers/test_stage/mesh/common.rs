//! What the mesh handlers share: a mesh outcome read as a message, where code runs, and
//! the stage's own address.

use playhouse::{ErrorCode, MeshError, Packet};

use crate::proto::InterStageMessage;
use crate::servers::test_stage::state::{Ctx, TestStage};

/// A mesh request's outcome as the message `M`: the remote (or local) failure's code, or
/// `INVALID_MESSAGE` for a reply that is not an `M`.
pub(super) fn answer<M>(result: Result<Packet, MeshError>) -> Result<M, ErrorCode>
where
    M: prost::Message + prost::Name + Default,
{
    Ok(result?.decode()?)
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
