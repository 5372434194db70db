//! The players of `rolling_drain` who cannot follow a move, both connected without resume to
//! the first Play server drained:
//!
//! * **grace** plays in stage 1, a movable one: when it moves, her connection stays at its old
//!   server, which relays her to the stage's new home. She plays on for a while, then leaves
//!   (before the drain's deadline). Checked: every request answered once, successfully, with
//!   the number her operation has in the stage's final log (the director checks that, see
//!   [`check_relayed`]); her pushes consecutive; never `Moved`, never `Lost`.
//! * **heidi** plays in stage [`FIXED_STAGE`], of a type that does not opt into moving: it
//!   plays on until the drain's deadline, then closes, and heidi is told why: her requests
//!   succeed until one fails with `Closed { code: StageDrained }`, none otherwise.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use playhouse::ErrorCode;
use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, Packet, SessionEvent};

use crate::cluster::env::{Env, sleep, wait_until};
use crate::cluster::ports::CLIENT_PORT;
use crate::move_room::{FIXED, MOVER};
use crate::net::dial;

/// The relayed player: name, account, stage.
pub(super) const GRACE: (&str, &str, i64) = ("client-7", "grace", 1);
/// The player of the stage that cannot move: name, account.
pub(super) const HEIDI: (&str, &str) = ("client-8", "heidi");
/// The stage that cannot move, created on the first Play server drained.
pub(super) const FIXED_STAGE: i64 = 10;
/// Set by the director when the first drain begins.
pub(super) const FIRST_DRAIN: &str = "first drain";
/// How long grace plays on, relayed, after the first drain begins (well within its deadline).
const RELAYED_FOR: Duration = Duration::from_millis(1500);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Grace's operations on her stage: the operation, and for a request the number it was
/// answered.
pub(super) type RelayedOps = Arc<Mutex<Vec<(String, Option<usize>)>>>;

/// A connector without resume, whose `Applied` pushes must be consecutive.
fn connector(env: &Env, name: &'static str) -> Connector {
    let timing = env.timing;
    let connector = Connector::new(
        ConnectorConfig::default()
            .request_timeout(Duration::from_secs(30))
            .heartbeat_interval(timing.heartbeat_interval)
            .heartbeat_timeout(timing.heartbeat_timeout)
            .connect_timeout(timing.connect_timeout)
            .use_main_thread_callbacks(false)
            .resume(false),
    );
    let last = Arc::new(Mutex::new(None::<usize>));
    let trace = env.trace.clone();
    connector.on_receive(move |_, _, packet| {
        if packet.msg_id != "Applied" {
            return;
        }
        let text = String::from_utf8_lossy(&packet.payload).into_owned();
        let Some(n) = text
            .split_once(' ')
            .and_then(|(n, _)| n.parse::<usize>().ok())
        else {
            trace.violation(name, format_args!("malformed push {text:?}"));
            return;
        };
        let mut last = lock(&last);
        if let Some(before) = *last {
            trace.check(name, n == before + 1, || {
                format!("push {n} after {before}: not consecutive")
            });
        }
        *last = Some(n);
    });
    let trace = env.trace.clone();
    connector.on_session(move |event| {
        trace.record(name, format_args!("session {event:?}"));
        if matches!(event, SessionEvent::Lost | SessionEvent::Moved) {
            trace.violation(name, format_args!("a client without resume saw {event:?}"));
        }
    });
    connector
}

/// Logs `name` in as `account` to `stage` (of `stage_type`) at `home`; `false` when it could
/// not (a violation).
async fn log_in(
    env: &Env,
    connector: &Connector,
    (name, account): (&str, &str),
    home: &str,
    stage: i64,
    stage_type: &str,
) -> bool {
    let endpoint = format!("{home}:{CLIENT_PORT}");
    let timeout = env.timing.connect_timeout;
    let dialer = move |endpoint: &str| {
        let endpoint = endpoint.to_owned();
        Box::pin(async move {
            let (host, port) = endpoint
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or(std::io::ErrorKind::InvalidInput)?;
            dial(&host, port, timeout).await
        }) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>
    };
    let login = async {
        connector
            .connect_with_endpoint(&endpoint, dialer, stage, stage_type)
            .await?;
        connector
            .authenticate(Packet::new("AuthenticateRequest", account.to_owned()))
            .await
    };
    match login.await {
        Ok(_) => true,
        Err(error) => {
            env.trace
                .violation(name, format_args!("could not log in: {error}"));
            false
        }
    }
}

/// Grace: plays in her movable stage at `home` until a while after the first drain began,
/// then leaves.
pub(super) async fn relayed_player(env: Env, home: &'static str, stages: &str, ops: RelayedOps) {
    let (name, account, stage) = GRACE;
    let connector = connector(&env, name);
    wait_until(Duration::from_secs(20), || env.is_finished(stages)).await;
    let joined = log_in(&env, &connector, (name, account), home, stage, MOVER).await;
    env.finish(&format!("{name} joined"));
    if !joined {
        env.finish(name);
        return;
    }
    let mut drain_began = None;
    let mut i = 0u64;
    loop {
        if drain_began.is_none() && env.is_finished(FIRST_DRAIN) {
            drain_began = Some(tokio::time::Instant::now());
        }
        if drain_began.is_some_and(|at| at.elapsed() >= RELAYED_FOR) {
            break;
        }
        i += 1;
        let op = format!("{account}:o{i}");
        match connector.send(Packet::new("Op", op.clone())) {
            Ok(()) => lock(&ops).push((op, None)),
            Err(error) => env
                .trace
                .violation(name, format_args!("one-way {op} refused: {error}")),
        }
        i += 1;
        let op = format!("{account}:r{i}");
        let reply = connector.request(Packet::new("Op", op.clone())).await;
        match reply.map(|p| String::from_utf8_lossy(&p.payload).parse::<usize>()) {
            Ok(Ok(n)) => lock(&ops).push((op, Some(n))),
            outcome => env
                .trace
                .violation(name, format_args!("request {op}: {outcome:?}")),
        }
        sleep(env.rng.millis(10, 60)).await;
    }
    env.trace
        .record(name, format_args!("{} ops sent, leaving", lock(&ops).len()));
    connector.disconnect().await;
    env.finish(name);
}

/// Heidi: plays in the stage that cannot move at `home` until it is closed at the first
/// drain's deadline, and checks she is told why.
pub(super) async fn fixed_player(env: Env, home: &'static str, stages: &str, drains: &str) {
    let (name, account) = HEIDI;
    let connector = connector(&env, name);
    wait_until(Duration::from_secs(20), || env.is_finished(stages)).await;
    let joined = log_in(&env, &connector, (name, account), home, FIXED_STAGE, FIXED).await;
    env.finish(&format!("{name} joined"));
    if !joined {
        env.finish(name);
        return;
    }
    let mut i = 0u64;
    let outcome = loop {
        if env.is_finished(drains) {
            break None;
        }
        i += 1;
        match connector
            .request(Packet::new("Op", format!("{account}:r{i}")))
            .await
        {
            Ok(_) => sleep(env.rng.millis(10, 60)).await,
            Err(error) => break Some(error),
        }
    };
    match outcome {
        Some(ConnectorError::Closed {
            code: ErrorCode::STAGE_DRAINED,
        }) => env.trace.record(name, "closed with StageDrained"),
        Some(other) => env.trace.violation(
            name,
            format_args!("expected a close with StageDrained, got {other}"),
        ),
        None => env
            .trace
            .violation(name, "the stage that cannot move was never closed"),
    }
    connector.disconnect().await;
    env.finish(name);
}

/// Every operation grace sent is in her stage's final `log` once, each request answered
/// with its number there.
pub(super) fn check_relayed(env: &Env, ops: &RelayedOps, log: &[String]) {
    let (name, ..) = GRACE;
    let ops = lock(ops);
    env.trace
        .check(name, !ops.is_empty(), || "no operation sent".to_owned());
    for (op, answered) in ops.iter() {
        let times = log.iter().filter(|o| *o == op).count();
        env.trace.check(name, times == 1, || {
            format!("the stage applied {op} {times} times")
        });
        if let Some(n) = answered {
            env.trace
                .check(name, log.get(n - 1).is_some_and(|o| o == op), || {
                    format!(
                        "{op} was answered {n}, but entry {n} is {:?}",
                        log.get(n - 1)
                    )
                });
        }
    }
}
