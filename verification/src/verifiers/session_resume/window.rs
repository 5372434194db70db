//! Past the resume window the session is lost on the client: `Lost`, and the pending request
//! fails with SessionLost.

use std::net::SocketAddr;
use std::time::Duration;

use playhouse::{ErrorCode, Packet, PlayConfig, ResumeConfig};
use playhouse_connector::SessionEvent;

use super::cutting::resumable;
use super::watch::{next_session_event, session_events};
use crate::check::TestResult;
use crate::client::{self, WAIT, describe};
use crate::context::TestCtx;
use crate::cut_proxy::CutProxy;
use crate::proto::ResumeProbeRequest;
use crate::servers::{play_server_builder, start_play};
use crate::{ensure, ensure_eq};

/// A temporary Play server whose resume window is short; the server becomes unreachable
/// with a request pending, and stays so past the window.
pub(super) async fn past_the_window(t: TestCtx) -> TestResult {
    let window = Duration::from_millis(400);
    let builder = play_server_builder("play-resume-window").configure(|config: &mut PlayConfig| {
        let mut resume = ResumeConfig::default();
        resume.window = window;
        config.resume = Some(resume);
    });
    let (server, addr) = start_play(builder)
        .await
        .map_err(|e| format!("start the temporary server: {e}"))?;
    let result = lost_on(&t, addr, window).await;
    server.stop().await;
    result
}

async fn lost_on(t: &TestCtx, addr: SocketAddr, window: Duration) -> TestResult {
    let proxy = CutProxy::start(addr).await?;
    let (connector, tap) = t.connector(resumable(client::direct_config()));
    let mut sessions = session_events(&connector);
    let mut events = tap.subscribe();
    client::join(&connector, proxy.addr, t.stage_id(40), "resume_lost").await?;
    // Answered long after the window: still pending when the session is lost.
    let pending = {
        let connector = connector.clone();
        tokio::spawn(async move {
            let request = ResumeProbeRequest {
                id: 1,
                delay_ms: 5_000,
            };
            connector.request(Packet::from_message(&request)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.set_down(true);
    ensure!(
        proxy.cut_server_side(Duration::ZERO).await > 0,
        "there was no live connection to cut"
    );
    let started = tokio::time::Instant::now();
    next_session_event(&mut sessions, SessionEvent::Reconnecting).await?;
    next_session_event(&mut sessions, SessionEvent::Lost).await?;
    let lost_after = started.elapsed();
    let outcome = tokio::time::timeout(WAIT, pending)
        .await
        .map_err(|_| "the pending request never ended".to_owned())?
        .map_err(|e| format!("the pending request: {e}"))?;
    match outcome {
        Ok(reply) => return Err(format!("the pending request got {:?}", reply.msg_id)),
        Err(error) => ensure_eq!(
            error.code(),
            ErrorCode::SESSION_LOST,
            "the pending request's error ({})",
            describe(&error)
        ),
    }
    events.disconnect(WAIT).await?;
    ensure!(!connector.is_connected(), "still connected after Lost");
    ensure!(
        lost_after + Duration::from_millis(50) >= window,
        "lost after {lost_after:?}, before the {window:?} window passed"
    );
    ensure!(
        proxy.accepted() >= 2,
        "the connector never tried to reconnect ({} connections)",
        proxy.accepted()
    );
    Ok(())
}
