//! The cut runs: pushes streaming and requests running while the connection is cut, then
//! every push once and in order, every request answered once and run once by the stage.

use std::time::Duration;

use playhouse_connector::{Connector, SessionEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::cutting::{Cutter, OwnSockets, Run, Side, Transport, endpoint};
use super::watch::{next_session_event, session_events, watch_stream};
use crate::check::TestResult;
use crate::client::{self, Events, WAIT, describe};
use crate::context::TestCtx;
use crate::cut_proxy::CutProxy;
use crate::proto::{
    ResumeProbeHistoryReply, ResumeProbeHistoryRequest, ResumeProbeReply, ResumeProbeRequest,
    StageStateReply, StageStateRequest, StartCountTimerRequest, StartTimerReply,
};
use crate::servers::TEST_STAGE;
use crate::{ensure, ensure_eq};

/// Pushes the stage streams during a cut run (one every [`PUSH_PERIOD_MS`]).
const PUSHES: i32 = 150;
const PUSH_PERIOD_MS: i32 = 3;
/// Requests sent during a cut run (one every [`REQUEST_GAP`]), each answered after
/// [`PROBE_DELAY_MS`] so some are running at the cut.
const REQUESTS: i32 = 30;
const REQUEST_GAP: Duration = Duration::from_millis(4);
const PROBE_DELAY_MS: i32 = 25;
/// The request after which the connection is cut.
const CUT_AT: i32 = 10;

/// A connector joined to stage `run.offset` over `run.transport`, and what cuts it.
async fn open(t: &TestCtx, run: &Run) -> Result<(Connector, client::EventTap, Cutter), String> {
    let (config, host, server) = endpoint(t, run.transport);
    let (connector, tap) = t.connector(config);
    let stage_id = t.stage_id(run.offset);
    let cutter = if run.transport == Transport::Tcp && run.side == Side::Client {
        let sockets = OwnSockets::default();
        connector
            .connect_with(sockets.dialer(server), stage_id, TEST_STAGE)
            .await
            .map_err(|e| format!("connect_with failed: {}", describe(&e)))?;
        Cutter::Own(sockets)
    } else {
        let proxy = CutProxy::start(server).await?;
        connector
            .connect(host, proxy.addr.port(), stage_id, TEST_STAGE)
            .await
            .map_err(|e| format!("connect through the relay failed: {}", describe(&e)))?;
        Cutter::Proxy(proxy, run.side)
    };
    client::authenticate(&connector, &run.user()).await?;
    Ok((connector, tap, cutter))
}

fn probe(connector: &Connector, id: i32) -> JoinHandle<Result<ResumeProbeReply, String>> {
    let connector = connector.clone();
    tokio::spawn(async move {
        let request = ResumeProbeRequest {
            id,
            delay_ms: PROBE_DELAY_MS,
        };
        client::request(&connector, &request).await
    })
}

/// Streams pushes and runs requests, cuts the connection `run.cuts` times in a row after
/// request [`CUT_AT`], then checks what the client saw and asks the stage what it handled.
pub(super) async fn cut_run(t: TestCtx, run: Run) -> TestResult {
    let (connector, tap, cutter) = open(&t, &run).await?;
    let mut sessions = session_events(&connector);
    let mut events = tap.subscribe();
    let result = cut_run_on(&connector, &mut events, &mut sessions, &cutter, &run).await;
    connector.disconnect().await;
    result
}

async fn cut_run_on(
    connector: &Connector,
    events: &mut Events,
    sessions: &mut mpsc::UnboundedReceiver<SessionEvent>,
    cutter: &Cutter,
    run: &Run,
) -> TestResult {
    let stream = StartCountTimerRequest {
        initial_delay_ms: 10,
        period_ms: PUSH_PERIOD_MS,
        count: PUSHES,
    };
    let timer: StartTimerReply = client::request(connector, &stream).await?;
    let dialed_before = cutter.dialed();

    let mut replies = Vec::new();
    for id in 1..=REQUESTS {
        replies.push((id, probe(connector, id)));
        if id == CUT_AT {
            for cut in 1..=run.cuts {
                cutter.cut().await?;
                if cut < run.cuts {
                    // Cut again right after resuming.
                    next_session_event(sessions, SessionEvent::Reconnecting).await?;
                    next_session_event(sessions, SessionEvent::Resumed).await?;
                }
            }
        }
        tokio::time::sleep(REQUEST_GAP).await;
    }
    if run.cuts > 0 {
        next_session_event(sessions, SessionEvent::Reconnecting).await?;
        next_session_event(sessions, SessionEvent::Resumed).await?;
    }

    // Every request answered exactly once, with its own reply.
    for (id, reply) in replies {
        let reply = tokio::time::timeout(WAIT, reply)
            .await
            .map_err(|_| format!("request {id} not answered within {WAIT:?}"))?
            .map_err(|e| format!("request {id}: {e}"))?
            .map_err(|e| format!("request {id}: {e}"))?;
        ensure_eq!(reply.id, id, "the reply to request {id}");
    }

    // Every push once and in order, and no disconnect seen by the application.
    let count = usize::try_from(PUSHES).unwrap_or(0);
    let seen = watch_stream(events, timer.timer_id, count, WAIT).await;
    ensure!(
        !seen.disconnected,
        "on_disconnect fired during a drop the session resumed from"
    );
    let expected: Vec<i32> = (1..=PUSHES).collect();
    if seen.ticks != expected {
        return Err(format!(
            "pushes not delivered exactly once and in order: {} received, {}",
            seen.ticks.len(),
            first_difference(&seen.ticks, &expected)
        ));
    }

    // No further session event (no Lost), and the connector really dialed again.
    ensure!(
        sessions.try_recv().is_err(),
        "an extra session event after Resumed"
    );
    let redials = cutter.dialed() - dialed_before;
    ensure!(
        redials >= run.cuts,
        "{redials} new connections for {} cuts: the cut did not take",
        run.cuts
    );

    // The stage ran each request exactly once and saw no drop.
    let history: ResumeProbeHistoryReply =
        client::request(connector, &ResumeProbeHistoryRequest {}).await?;
    let runs = |id: i32| history.handled_ids.iter().filter(|h| **h == id).count();
    let twice: Vec<i32> = (1..=REQUESTS).filter(|id| runs(*id) > 1).collect();
    let never: Vec<i32> = (1..=REQUESTS).filter(|id| runs(*id) == 0).collect();
    ensure!(
        twice.is_empty() && never.is_empty() && history.handled_ids.len() == (1..=REQUESTS).count(),
        "the stage did not handle each request exactly once: more than once {twice:?}, \
         never {never:?}, handled {:?}",
        history.handled_ids
    );
    let stage: StageStateReply = client::request(connector, &StageStateRequest {}).await?;
    let changes: Vec<&String> = stage
        .callbacks
        .iter()
        .filter(|c| c.starts_with("on_connection_changed:"))
        .collect();
    ensure!(changes.is_empty(), "the stage saw the drop: {changes:?}");
    Ok(())
}

/// Describes where `actual` first departs from `expected`.
fn first_difference(actual: &[i32], expected: &[i32]) -> String {
    let at = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .unwrap_or(actual.len().min(expected.len()));
    format!(
        "first difference at index {at}: got {:?}, expected {:?}",
        actual.get(at..(at + 5).min(actual.len())).unwrap_or(&[]),
        expected
            .get(at..(at + 5).min(expected.len()))
            .unwrap_or(&[]),
    )
}
