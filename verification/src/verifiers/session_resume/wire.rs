//! What crosses the wire: a connector that does not opt in sees no grant and no
//! acknowledgement; one that does sees both.

use std::time::Duration;

use playhouse_protocol::{ACK_MSG_ID, END_MSG_ID, RESUME_MSG_ID, SESSION_MSG_ID};

use super::watch::watch_stream;
use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::cut_proxy::{CutProxy, msg_ids};
use crate::proto::{ResumeProbeReply, ResumeProbeRequest, StartCountTimerRequest, StartTimerReply};
use crate::{ensure, ensure_eq};

/// A connector with `resume` on or off, through a relay that keeps the bytes: pushes and
/// requests enough for acknowledgements to be due (more than 32 each way). Off, no control
/// frame of resumable sessions may cross; on, the grant and acknowledgements must (so the
/// check above can tell).
pub(super) async fn wire(t: TestCtx, resume: bool) -> TestResult {
    let offset = if resume { 31 } else { 30 };
    let proxy = CutProxy::start(t.addr()).await?;
    let config = client::direct_config().resume(resume);
    let (connector, tap) = t.connector(config);
    let mut events = tap.subscribe();
    client::connect(&connector, proxy.addr, t.stage_id(offset)).await?;
    let user = format!("resume_wire_{resume}");
    client::authenticate(&connector, &user).await?;
    let stream = StartCountTimerRequest {
        initial_delay_ms: 0,
        period_ms: 1,
        count: 40,
    };
    let timer: StartTimerReply = client::request(&connector, &stream).await?;
    for id in 1..=40 {
        let reply: ResumeProbeReply =
            client::request(&connector, &ResumeProbeRequest { id, delay_ms: 0 }).await?;
        ensure_eq!(reply.id, id, "probe reply");
    }
    let seen = watch_stream(&mut events, timer.timer_id, 40, WAIT).await;
    ensure_eq!(seen.ticks.len(), 40, "pushes received");

    let control = [SESSION_MSG_ID, ACK_MSG_ID, RESUME_MSG_ID, END_MSG_ID];
    let deadline = tokio::time::Instant::now() + WAIT;
    let (to_client, to_server) = loop {
        let carried = proxy.carried();
        ensure_eq!(carried.len(), 1, "connections through the relay");
        let to_client = msg_ids(&carried[0].to_client)?;
        let to_server = msg_ids(&carried[0].to_server)?;
        let client_acked = to_server.iter().any(|id| id == ACK_MSG_ID);
        // On: wait until the connector's acknowledgement crossed the relay.
        if !resume || client_acked || tokio::time::Instant::now() >= deadline {
            break (to_client, to_server);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    connector.disconnect().await;
    ensure!(
        to_client.len() >= 80 && to_server.len() >= 40,
        "too few frames on the wire to judge: {} from the server, {} from the client",
        to_client.len(),
        to_server.len()
    );
    let count = |ids: &[String], wanted: &str| ids.iter().filter(|id| *id == wanted).count();
    if resume {
        ensure_eq!(
            count(&to_client, SESSION_MSG_ID),
            1,
            "grants from the server"
        );
        ensure!(
            count(&to_client, ACK_MSG_ID) >= 1,
            "the server never acknowledged the client's frames"
        );
        ensure!(
            count(&to_server, ACK_MSG_ID) >= 1,
            "the connector never acknowledged the server's frames"
        );
    } else {
        for id in control {
            ensure_eq!(count(&to_client, id), 0, "{id} frames from the server");
            ensure_eq!(count(&to_server, id), 0, "{id} frames from the connector");
        }
    }
    Ok(())
}
