//! Mesh packets the stage owns (AutoDispose): replies dropped or kept until the last one
//! arrived, and large payloads carried intact.

use futures_util::future::join_all;
use playhouse::{ErrorCode, MeshError, Packet};

use super::common::{api_echo, inter_stage};
use crate::proto::{
    ApiEchoReply, ApiEchoRequest, InterStageReply, TriggerAutoDisposeApiReply,
    TriggerAutoDisposeApiRequest, TriggerAutoDisposeStageReply, TriggerAutoDisposeStageRequest,
    TriggerKeepMeshRepliesReply, TriggerKeepMeshRepliesRequest, TriggerLargeMeshEchoReply,
    TriggerLargeMeshEchoRequest,
};
use crate::servers::test_stage::state::{Actor, Ctx, TestStage};

pub(super) async fn auto_dispose_api(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerAutoDisposeApiRequest,
) -> Result<TriggerAutoDisposeApiReply, ErrorCode> {
    let (mut completed, mut intact) = (0, 0);
    for i in 0..request.count {
        let content = format!("auto dispose {i}");
        let echo = ApiEchoRequest {
            content: content.clone(),
            ..ApiEchoRequest::default()
        };
        let answer = ctx
            .sender()
            .request_to_api(&request.api_id, Packet::from_message(&echo))
            .await?;
        completed += 1;
        if answer
            .decode::<ApiEchoReply>()
            .is_ok_and(|a| a.content == content)
        {
            intact += 1;
        }
        // The reply is dropped here: nothing to free by hand.
    }
    Ok(TriggerAutoDisposeApiReply { completed, intact })
}

pub(super) async fn auto_dispose_stage(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerAutoDisposeStageRequest,
) -> Result<TriggerAutoDisposeStageReply, ErrorCode> {
    let (mut completed, mut intact) = (0, 0);
    for i in 0..request.count {
        let content = format!("auto dispose {i}");
        let message = inter_stage(ctx, content.clone());
        let answer = ctx
            .sender()
            .request_to_stage(&request.play_id, request.stage_id, message)
            .await?;
        completed += 1;
        if answer
            .decode::<InterStageReply>()
            .is_ok_and(|a| a.content == content)
        {
            intact += 1;
        }
    }
    Ok(TriggerAutoDisposeStageReply { completed, intact })
}

/// Every request goes out at once; the replies are checked only after the last one arrived.
pub(super) async fn keep_mesh_replies(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerKeepMeshRepliesRequest,
) -> Result<TriggerKeepMeshRepliesReply, ErrorCode> {
    let sender = ctx.sender();
    let pending = (0..request.count).map(|i| {
        let echo = ApiEchoRequest {
            content: format!("kept {i}"),
            ..ApiEchoRequest::default()
        };
        sender.request_to_api(&request.api_id, Packet::from_message(&echo))
    });
    let kept = join_all(pending)
        .await
        .into_iter()
        .collect::<Result<Vec<Packet>, MeshError>>()?;
    let intact = kept
        .iter()
        .enumerate()
        .filter(|(i, answer)| {
            answer
                .decode::<ApiEchoReply>()
                .is_ok_and(|a| a.content == format!("kept {i}"))
        })
        .count();
    Ok(TriggerKeepMeshRepliesReply {
        kept: i32::try_from(kept.len()).unwrap_or(i32::MAX),
        intact: i32::try_from(intact).unwrap_or(i32::MAX),
    })
}

/// A fixed pattern of `size` bytes.
pub(super) fn pattern(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| u8::try_from((i * 31 + 7) % 251).unwrap_or(0))
        .collect()
}

pub(super) async fn large_mesh_echo(
    _: &mut TestStage,
    ctx: &mut Ctx,
    _: &mut Actor,
    request: TriggerLargeMeshEchoRequest,
) -> Result<TriggerLargeMeshEchoReply, ErrorCode> {
    let size = usize::try_from(request.size).map_err(|_| ErrorCode::INVALID_MESSAGE)?;
    let data = pattern(size);
    let echo = ApiEchoRequest {
        content: "large".into(),
        data: data.clone(),
        ..ApiEchoRequest::default()
    };
    let answer = api_echo(ctx, &request.api_id, &echo).await?;
    Ok(TriggerLargeMeshEchoReply {
        size: i32::try_from(answer.data.len()).unwrap_or(i32::MAX),
        intact: answer.data == data,
    })
}
