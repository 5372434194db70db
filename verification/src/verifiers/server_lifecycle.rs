//! ServerLifecycle: stopping a server reaches its clients as `on_disconnect`, after the stages
//! closed (actors' `on_destroy` pushes are flushed first) and pending requests fail.

use playhouse::{ErrorCode, Packet};

use crate::check::TestResult;
use crate::client::{self, ClientEvent, WAIT, direct_config};
use crate::context::TestCtx;
use crate::proto::{ActorDestroyedNotify, NoResponseRequest};
use crate::runner::{Category, TestCase};
use crate::servers::{play_server_builder, start_play};
use crate::{ensure, ensure_eq};

/// The ServerLifecycle category (stage ids 5000..).
pub(super) fn category() -> Category {
    Category {
        name: "ServerLifecycle",
        base: 5000,
        tests: vec![
            TestCase::new("ServerStop_FiresOnDisconnect", |t| {
                Box::pin(stop_disconnects(t))
            }),
            TestCase::new("ServerStop_ClosesStagesFirst", |t| {
                Box::pin(stop_closes_stages(t))
            }),
        ],
    }
}

async fn stop_disconnects(t: TestCtx) -> TestResult {
    let (server, addr) = start_play(play_server_builder("play-lifecycle-1"))
        .await
        .map_err(|e| format!("temporary server did not start: {e}"))?;
    let (connector, tap) = t.connector(direct_config());
    let mut events = tap.subscribe();
    client::join(&connector, addr, t.stage_id(1), "lifecycle_user").await?;
    // A request the server never answers: the stop must fail it, not leave it hanging.
    let pending = tokio::spawn({
        let connector = connector.clone();
        async move {
            connector
                .request(Packet::from_message(&NoResponseRequest { delay_ms: 0 }))
                .await
        }
    });
    server.stop().await;
    events.disconnect(WAIT).await?;
    ensure!(
        !connector.is_connected(),
        "is_connected is true after the server stopped"
    );
    let result = tokio::time::timeout(WAIT, pending)
        .await
        .map_err(|_| "the pending request never finished".to_owned())?
        .map_err(|e| format!("request task failed: {e}"))?;
    match result {
        Ok(reply) => Err(format!(
            "the pending request got a reply: {:?}",
            reply.msg_id
        )),
        Err(error) => {
            ensure_eq!(
                error.code(),
                ErrorCode::CONNECTOR_DISCONNECTED,
                "pending request error ({error})"
            );
            Ok(())
        }
    }
}

async fn stop_closes_stages(t: TestCtx) -> TestResult {
    let (server, addr) = start_play(play_server_builder("play-lifecycle-2"))
        .await
        .map_err(|e| format!("temporary server did not start: {e}"))?;
    let (connector, tap) = t.connector(direct_config());
    let mut events = tap.subscribe();
    client::join(&connector, addr, t.stage_id(2), "lifecycle_graceful").await?;
    server.stop().await;
    // Graceful: the stage closed (the actor's on_destroy pushed) before the connection went.
    let mut destroyed = None;
    events
        .wait_for(WAIT, "on_disconnect", |event| match event {
            ClientEvent::Push { packet, .. } if packet.is::<ActorDestroyedNotify>() => {
                destroyed = Some(packet);
                None
            }
            ClientEvent::Disconnect => Some(()),
            _ => None,
        })
        .await?;
    let destroyed = destroyed.ok_or("no ActorDestroyedNotify arrived before on_disconnect")?;
    let destroyed = client::parse::<ActorDestroyedNotify>(&destroyed)?;
    ensure_eq!(
        destroyed.account_id.as_str(),
        "lifecycle_graceful",
        "destroyed actor"
    );
    Ok(())
}
