//! PacketAutoDispose: the original freed packets by hand; here packets are owned values. Every
//! test checks that a packet handed to a callback, a push handler or an async caller stays
//! intact however long it is kept and whatever arrives after it, and that the connection stays
//! healthy. The mesh tests do the same on the server side: mesh replies kept by a stage, a
//! request packet kept by an API handler across its own request, a large mesh payload.

use playhouse::Packet;
use playhouse_connector::Connector;
use tokio::sync::mpsc;

use crate::check::TestResult;
use crate::client::{self, WAIT, describe};
use crate::context::TestCtx;
use crate::proto::{
    BroadcastNotify, BroadcastTrigger, EchoReply, EchoRequest, TriggerHoldRequestPacketReply,
    TriggerHoldRequestPacketRequest, TriggerKeepMeshRepliesReply, TriggerKeepMeshRepliesRequest,
    TriggerLargeMeshEchoReply, TriggerLargeMeshEchoRequest,
};
use crate::runner::{Category, TestCase};
use crate::servers::{API_1, API_2};
use crate::{ensure, ensure_eq};

const USER: &str = "dispose_user";

/// The PacketAutoDispose category (stage ids 4000..).
pub(super) fn category() -> Category {
    Category {
        name: "PacketAutoDispose",
        base: 4000,
        tests: vec![
            TestCase::new("RequestCallback_PacketIntact", |t| {
                Box::pin(callback_one(t))
            }),
            TestCase::new("RequestCallback_Multiple5", |t| Box::pin(callback_many(t))),
            TestCase::new("OnReceive_PushIntact", |t| Box::pin(push_intact(t))),
            TestCase::new("RequestAsync_ReplyOwnedByCaller", |t| {
                Box::pin(async_owned(t))
            }),
            TestCase::new("RequestAsync_Multiple5", |t| Box::pin(async_many(t))),
            TestCase::new("Mixed_AsyncAndCallback", |t| Box::pin(mixed(t))),
            TestCase::new("Mesh_StageKeepsRepliesUntilLast", |t| {
                Box::pin(mesh_keep_replies(t))
            }),
            TestCase::new("Mesh_ApiHandlerKeepsRequestPacket", |t| {
                Box::pin(mesh_hold_request(t))
            }),
            TestCase::new("Mesh_LargePayloadIntact", |t| Box::pin(mesh_large(t))),
        ],
    }
}

fn echo(content: String, sequence: i32) -> Packet {
    Packet::from_message(&EchoRequest { content, sequence })
}

/// Parses a kept reply and checks it is still the echo of `sequence`.
fn check(reply: &Packet, sequence: i32) -> TestResult {
    let reply = client::parse::<EchoReply>(reply)?;
    ensure_eq!(reply.sequence, sequence, "kept reply sequence");
    ensure_eq!(
        reply.content,
        format!("dispose {sequence}"),
        "kept reply content"
    );
    Ok(())
}

/// The connection still answers after the packets were kept and dropped.
async fn healthy(connector: &Connector) -> TestResult {
    ensure!(connector.is_connected(), "the connection is gone");
    let reply = connector
        .request(echo("dispose 999".into(), 999))
        .await
        .map_err(|e| format!("request after the test failed: {}", describe(&e)))?;
    check(&reply, 999)
}

/// Sends callback requests for `sequences`; the replies arrive on the returned channel.
fn callback_requests(
    connector: &Connector,
    sequences: impl IntoIterator<Item = i32>,
) -> mpsc::UnboundedReceiver<(i32, Result<Packet, String>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    for sequence in sequences {
        let tx = tx.clone();
        connector.request_with_callback(
            echo(format!("dispose {sequence}"), sequence),
            move |result| {
                let _ = tx.send((sequence, result.map_err(|e| describe(&e))));
            },
        );
    }
    rx
}

async fn receive(
    rx: &mut mpsc::UnboundedReceiver<(i32, Result<Packet, String>)>,
) -> Result<(i32, Packet), String> {
    let (sequence, result) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .map_err(|_| "a callback did not run".to_owned())?
        .ok_or("the callbacks were dropped")?;
    Ok((
        sequence,
        result.map_err(|e| format!("callback {sequence}: {e}"))?,
    ))
}

async fn callback_one(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut rx = callback_requests(&connector, [1]);
    let (sequence, reply) = receive(&mut rx).await?;
    check(&reply, sequence)?;
    drop(reply);
    healthy(&connector).await
}

async fn callback_many(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut rx = callback_requests(&connector, 1..=5);
    let mut kept = Vec::new();
    for _ in 0..5 {
        kept.push(receive(&mut rx).await?);
    }
    kept.sort_by_key(|(sequence, _)| *sequence);
    let sequences: Vec<i32> = kept.iter().map(|(s, _)| *s).collect();
    ensure_eq!(sequences, vec![1, 2, 3, 4, 5], "answered sequences");
    for (sequence, reply) in &kept {
        check(reply, *sequence)?;
    }
    healthy(&connector).await
}

async fn push_intact(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut events = t.shared_events();
    let trigger = BroadcastTrigger {
        event_type: "dispose_push".into(),
        data: "kept after later traffic".into(),
        count: 2,
    };
    connector
        .send(Packet::from_message(&trigger))
        .map_err(|e| format!("send failed: {}", describe(&e)))?;
    let pushes: Vec<BroadcastNotify> = events.pushes(2, WAIT).await?;
    // More traffic after the pushes were handed out must not touch them.
    healthy(&connector).await?;
    for (i, push) in pushes.iter().enumerate() {
        ensure_eq!(
            push.data.as_str(),
            "kept after later traffic",
            "push {i} data"
        );
        ensure_eq!(
            push.event_type.as_str(),
            "dispose_push",
            "push {i} event_type"
        );
    }
    Ok(())
}

async fn async_owned(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let first = connector
        .request(echo("dispose 1".into(), 1))
        .await
        .map_err(|e| describe(&e))?;
    for sequence in 2..=11 {
        let later = connector
            .request(echo(format!("dispose {sequence}"), sequence))
            .await
            .map_err(|e| describe(&e))?;
        check(&later, sequence)?;
    }
    // The first reply is untouched by the ten that followed.
    check(&first, 1)?;
    drop(first);
    healthy(&connector).await
}

async fn async_many(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut kept = Vec::new();
    for sequence in 1..=5 {
        let reply = connector
            .request(echo(format!("dispose {sequence}"), sequence))
            .await
            .map_err(|e| describe(&e))?;
        kept.push((sequence, reply));
    }
    for (sequence, reply) in &kept {
        check(reply, *sequence)?;
    }
    drop(kept);
    healthy(&connector).await
}

async fn mixed(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut rx = callback_requests(&connector, [1, 3, 5]);
    let async_replies = futures_util::future::join_all([2, 4, 6].map(|sequence| {
        let connector = connector.clone();
        async move {
            let reply = connector
                .request(echo(format!("dispose {sequence}"), sequence))
                .await
                .map_err(|e| describe(&e))?;
            Ok::<_, String>((sequence, reply))
        }
    }))
    .await;
    let mut kept = Vec::new();
    for reply in async_replies {
        kept.push(reply?);
    }
    for _ in 0..3 {
        kept.push(receive(&mut rx).await?);
    }
    kept.sort_by_key(|(sequence, _)| *sequence);
    ensure_eq!(kept.len(), 6, "replies");
    for (sequence, reply) in &kept {
        check(reply, *sequence)?;
    }
    healthy(&connector).await
}

async fn mesh_keep_replies(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: TriggerKeepMeshRepliesReply = client::request(
        &connector,
        &TriggerKeepMeshRepliesRequest {
            api_id: API_1.into(),
            count: 10,
        },
    )
    .await?;
    ensure_eq!(reply.kept, 10, "replies kept by the stage");
    ensure_eq!(
        reply.intact,
        10,
        "replies still intact after the last arrived"
    );
    healthy(&connector).await
}

async fn mesh_hold_request(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: TriggerHoldRequestPacketReply = client::request(
        &connector,
        &TriggerHoldRequestPacketRequest {
            via_api_id: API_1.into(),
            nested_api_id: API_2.into(),
            content: "kept by the handler".into(),
        },
    )
    .await?;
    ensure_eq!(
        reply.content.as_str(),
        "kept by the handler",
        "request content read after the nested request"
    );
    ensure_eq!(reply.nested_responder.as_str(), API_2, "nested responder");
    healthy(&connector).await
}

async fn mesh_large(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: TriggerLargeMeshEchoReply = client::request(
        &connector,
        &TriggerLargeMeshEchoRequest {
            api_id: API_2.into(),
            size: 256 * 1024,
        },
    )
    .await?;
    ensure_eq!(reply.size, 256 * 1024, "bytes that came back over the mesh");
    ensure!(reply.intact, "the 256 KiB mesh payload came back altered");
    healthy(&connector).await
}
