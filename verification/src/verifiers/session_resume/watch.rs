//! What the client saw: its session events, and a push stream watched until complete and
//! then a little longer, to catch a duplicate.

use std::time::Duration;

use playhouse_connector::{Connector, SessionEvent};
use tokio::sync::mpsc;

use crate::check::TestResult;
use crate::client::{ClientEvent, Events, WAIT};
use crate::ensure_eq;
use crate::proto::TimerTickNotify;

/// How long to watch for something that must not happen (a duplicate push, a late event).
const QUIET: Duration = Duration::from_millis(300);

/// The session events a connector reported, in order.
pub(super) fn session_events(connector: &Connector) -> mpsc::UnboundedReceiver<SessionEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    connector.on_session(move |event| {
        let _ = tx.send(event);
    });
    rx
}

pub(super) async fn next_session_event(
    events: &mut mpsc::UnboundedReceiver<SessionEvent>,
    expected: SessionEvent,
) -> TestResult {
    let event = tokio::time::timeout(WAIT, events.recv())
        .await
        .map_err(|_| format!("no session event within {WAIT:?} (expected {expected:?})"))?
        .ok_or("the session event handler is gone")?;
    ensure_eq!(event, expected, "session event");
    Ok(())
}

/// What the application saw of a push stream: the ticks of `timer_id` in arrival order, and
/// whether `on_disconnect` fired meanwhile.
pub(super) struct Seen {
    pub(super) ticks: Vec<i32>,
    pub(super) disconnected: bool,
}

/// Reads events until `count` ticks of `timer_id` arrived (or `within` passed), then `quiet`
/// longer to catch a duplicate.
pub(super) async fn watch_stream(
    events: &mut Events,
    timer_id: u64,
    count: usize,
    within: Duration,
) -> Seen {
    let mut seen = Seen {
        ticks: Vec::new(),
        disconnected: false,
    };
    let record = |event: ClientEvent, seen: &mut Seen| match event {
        ClientEvent::Push { packet, .. } if packet.is::<TimerTickNotify>() => {
            if let Ok(tick) = packet.parse::<TimerTickNotify>()
                && tick.timer_id == timer_id
            {
                seen.ticks.push(tick.tick);
            }
        }
        ClientEvent::Disconnect => seen.disconnected = true,
        _ => {}
    };
    let deadline = tokio::time::Instant::now() + within;
    while seen.ticks.len() < count {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match events.next(left).await {
            Ok(event) => record(event, &mut seen),
            Err(_) => break,
        }
    }
    let quiet_until = tokio::time::Instant::now() + QUIET;
    loop {
        let left = quiet_until.saturating_duration_since(tokio::time::Instant::now());
        match events.next(left).await {
            Ok(event) => record(event, &mut seen),
            Err(_) => break,
        }
    }
    seen
}
