//! Resumable sessions under random drops and partitions of random length.
//!
//! Three players with resumable connectors play in one stage: operations as requests (several
//! in flight) and as one-way messages, while every applied operation is broadcast to all of
//! them as a numbered `Applied` push. Meanwhile their connections are cut from the client's
//! side (the stream dropped under the connector) and partitioned for 0.1 to 6 s, so some
//! outages end within the server's resume window (3 s) and some do not. Checked:
//!
//! * a session that was never lost loses nothing: every push reaches the application exactly
//!   once and in order (the `Applied` sequence never skips or repeats), every request is
//!   answered once with its own reply, and the stage applied every operation, request or
//!   one-way, exactly once and in order (`Dump`);
//! * the stage never sees a drop shorter than the window: no `Presence <account> 0` for a
//!   player whose session was never lost;
//! * a cut from the client's side while the connection is steady (no partition, no resume
//!   under way) is resumed: the network is fine and the server holds the session for the
//!   window, so reporting it lost is a bug;
//! * past the window the loss is reported (`SessionEvent::Lost`, pending requests fail with
//!   `SessionLost`), and nothing after it is out of order: operations the player knows were
//!   applied are there exactly once, none is there twice, all in order, every operation sent
//!   in the session the final `Dump` is answered in (one-way or failed) is there, nothing the
//!   connector refused is, and pushes after the new login are consecutive again;
//! * on the wire (the client tap), every reply answers one request, once: a reply replayed
//!   after a resume is the same session frame again, never a second answer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use playhouse_connector::{
    Connector, ConnectorConfig, ConnectorError, Packet, ReconnectPolicy, SessionEvent,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::STAGE_TYPE;
use crate::cluster::Cluster;
use crate::cluster::env::{Env, sleep};
use crate::cluster::ports::CLIENT_PORT;
use crate::cluster::timing::{Network, Timing};
use crate::net::{Cuttable, dial};
use crate::tap::client::ClientTap;
use crate::tap::stream::Tapped;
use crate::trace::Trace;

const PLAY: &str = "play-1";
const PLAYERS: [(&str, &str); 3] = [
    ("client-1", "alice"),
    ("client-2", "bob"),
    ("client-3", "carol"),
];
const OPS: u64 = 40;

/// Runs the scenario for `seed`.
pub(super) fn run(seed: u64) -> crate::cluster::Outcome {
    let mut cluster = Cluster::new(seed, Network::default(), Timing::default());
    cluster.play(PLAY);
    let env = cluster.env.clone();
    let lost = Arc::new(Mutex::new(BTreeMap::<String, bool>::new()));
    let presence = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let leaving = Arc::new(Mutex::new(BTreeMap::<String, bool>::new()));
    for (name, account) in PLAYERS {
        let shared = Shared {
            lost: Arc::clone(&lost),
            presence: Arc::clone(&presence),
            leaving: Arc::clone(&leaving),
        };
        cluster.client(name, player(env.clone(), name, account, shared));
    }
    cluster.client("director", async move {
        let names: Vec<String> = PLAYERS.iter().map(|(n, _)| (*n).to_owned()).collect();
        env.wait_finished(&names, Duration::from_secs(120)).await;
        // The stage never reported a drop of a session that was not lost.
        let lost = lock(&lost).clone();
        for (seen_by, what) in lock(&presence).iter() {
            let mut words = what.split(' ');
            let (Some(account), Some("0")) = (words.next(), words.next()) else {
                continue;
            };
            env.trace
                .check(seen_by, lost.get(account) == Some(&true), || {
                    format!("the stage reported {account} gone, but its session was never lost")
                });
        }
        env.stop_servers().await;
    });
    cluster.run()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the players report to the director.
struct Shared {
    /// Whether each account's session was ever lost.
    lost: Arc<Mutex<BTreeMap<String, bool>>>,
    /// `Presence` pushes about players still playing: who saw them, and the payload.
    presence: Arc<Mutex<Vec<(String, String)>>>,
    /// Accounts that have finished and disconnect on purpose.
    leaving: Arc<Mutex<BTreeMap<String, bool>>>,
}

/// What one player's connector callbacks saw.
#[derive(Default)]
struct Seen {
    /// The last `Applied` sequence of the current login.
    last_applied: Option<u64>,
    events: Vec<SessionEvent>,
}

/// Cuts for the live connection of one player.
#[derive(Clone)]
struct Cutter {
    current: Arc<Mutex<CancellationToken>>,
    /// The wire tap on the player's connections.
    tap: ClientTap,
}

impl Cutter {
    fn cut(&self) {
        lock(&self.current).cancel();
    }

    fn dialer(
        &self,
        timeout: Duration,
    ) -> impl Fn()
        -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Tapped<Cuttable>>> + Send>>
    + Send
    + Sync
    + 'static {
        let current = Arc::clone(&self.current);
        let tap = self.tap.clone();
        move || {
            let current = Arc::clone(&current);
            let tap = tap.clone();
            Box::pin(async move {
                let stream = dial(PLAY, CLIENT_PORT, timeout).await?;
                let token = CancellationToken::new();
                *lock(&current) = token.clone();
                Ok(tap.wrap(Cuttable::new(stream, token)))
            })
        }
    }
}

fn connector(env: &Env, name: &str, shared: &Shared, seen: &Arc<Mutex<Seen>>) -> Connector {
    let timing = env.timing;
    let connector = Connector::new(
        ConnectorConfig::default()
            // Long enough that no request times out within an outage the session survives.
            .request_timeout(Duration::from_secs(30))
            .heartbeat_interval(timing.heartbeat_interval)
            .heartbeat_timeout(timing.heartbeat_timeout)
            .connect_timeout(timing.connect_timeout)
            .use_main_thread_callbacks(false)
            .resume(true)
            .reconnect(ReconnectPolicy {
                initial_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
                jitter_seed: Some(env.rng.next_u64()),
            }),
    );
    let trace = env.trace.clone();
    {
        let (trace, seen, who) = (trace.clone(), Arc::clone(seen), name.to_owned());
        let presence = Arc::clone(&shared.presence);
        let leaving = Arc::clone(&shared.leaving);
        connector.on_receive(move |_, _, packet| {
            let text = String::from_utf8_lossy(&packet.payload).into_owned();
            match &*packet.msg_id {
                "Applied" => {
                    let seq: u64 = text
                        .split(' ')
                        .next()
                        .and_then(|w| w.parse().ok())
                        .unwrap_or(0);
                    let mut seen = lock(&seen);
                    if let Some(last) = seen.last_applied {
                        trace.check(&who, seq == last + 1, || {
                            format!(
                                "Applied {seq} after {last}: a push lost, repeated or reordered"
                            )
                        });
                    }
                    seen.last_applied = Some(seq);
                }
                "Presence" => {
                    let account = text.split(' ').next().unwrap_or("");
                    if !lock(&leaving).contains_key(account) {
                        lock(&presence).push((who.clone(), text));
                    }
                }
                _ => {}
            }
        });
    }
    {
        let (seen, who) = (Arc::clone(seen), name.to_owned());
        connector.on_session(move |event| {
            trace.record(&who, format_args!("session {event:?}"));
            lock(&seen).events.push(event);
        });
    }
    connector
}

/// A player's partition from the Play server, healed when its time comes.
struct Partition {
    name: &'static str,
    trace: Trace,
    heal_at: Option<Duration>,
}

impl Partition {
    fn start(&mut self, length: Duration) {
        self.trace.record(
            self.name,
            format_args!("partition {} <-> {PLAY} for {length:?}", self.name),
        );
        crate::network::cut(self.name, PLAY);
        self.heal_at = Some(crate::trace::now() + length);
    }

    /// Heals the partition if its time has come.
    fn tick(&mut self) {
        if self.heal_at.is_some_and(|at| crate::trace::now() >= at) {
            crate::network::heal(self.name, PLAY);
            self.trace.record(self.name, "repair");
            self.heal_at = None;
        }
    }

    /// Waits for the partition to heal, and heals it.
    async fn heal(&mut self) {
        if let Some(at) = self.heal_at {
            sleep(at.saturating_sub(crate::trace::now())).await;
            self.tick();
        }
    }
}

/// Connects and authenticates, retrying until it works (or 20 s pass).
async fn login(
    env: &Env,
    name: &str,
    account: &str,
    connector: &Connector,
    cutter: &Cutter,
    partition: &mut Partition,
) -> bool {
    let timing = env.timing;
    for _ in 0..100 {
        partition.tick();
        if connector
            .connect_with(cutter.dialer(timing.connect_timeout), 1, STAGE_TYPE)
            .await
            .is_ok()
        {
            let auth = Packet::new("AuthenticateRequest", account.to_owned());
            match tokio::time::timeout(Duration::from_secs(5), connector.authenticate(auth)).await {
                Ok(Ok(_)) => {
                    env.trace.record(name, "authenticated");
                    return true;
                }
                outcome => env
                    .trace
                    .record(name, format_args!("login failed: {outcome:?}")),
            }
            connector.disconnect().await;
        }
        sleep(Duration::from_millis(200)).await;
    }
    false
}

/// How one operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Replied: the stage applied it.
    Applied,
    /// One-way, or its request failed with the session: applied exactly once if the session
    /// it was sent in (counted in losses before it) is never lost, else at most once.
    Unknown(usize),
    /// Refused by the connector: never sent, never applied.
    Refused,
}

/// Sessions lost so far: the current session's number.
fn session(seen: &Mutex<Seen>) -> usize {
    lock(seen)
        .events
        .iter()
        .filter(|e| **e == SessionEvent::Lost)
        .count()
}

async fn player(env: Env, name: &'static str, account: &'static str, shared: Shared) {
    let trace = env.trace.clone();
    let rng = env.rng.fork();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let connector = connector(&env, name, &shared, &seen);
    let cutter = Cutter {
        current: Arc::default(),
        tap: ClientTap::new(&trace, name),
    };
    let mut partition = Partition {
        name,
        trace: trace.clone(),
        heal_at: None,
    };
    if !login(&env, name, account, &connector, &cutter, &mut partition).await {
        trace.violation(name, "could not log in");
        return env.finish(name);
    }
    let fates = Arc::new(Mutex::new(BTreeMap::<u64, Fate>::new()));
    let mut in_flight = JoinSet::new();
    // A cut made while the connection was steady: the session events seen before it. No
    // partition starts until it is judged.
    let mut steady_cut: Option<usize> = None;
    for n in 1..=OPS {
        partition.tick();
        if let Some(before) = steady_cut
            && !steady_cut_pending(&trace, name, &lock(&seen).events[before..])
        {
            steady_cut = None;
        }
        // Faults, from this player's own script: a cut, or a partition of random length.
        if partition.heal_at.is_none() && rng.chance(8) {
            if rng.chance(50) {
                trace.record(name, "cut from the client side");
                let seen = lock(&seen);
                let steady = connector.is_connected()
                    && seen.events.last() != Some(&SessionEvent::Reconnecting);
                if steady && steady_cut.is_none() {
                    steady_cut = Some(seen.events.len());
                }
                drop(seen);
                cutter.cut();
            } else if steady_cut.is_none() {
                partition.start(rng.millis(100, 6000));
            }
        }
        // After a lost session: log in again (the loss was reported; what follows must hold).
        if !connector.is_connected() && lock(&seen).events.last() == Some(&SessionEvent::Lost) {
            lock(&shared.lost).insert(account.to_owned(), true);
            lock(&seen).last_applied = None;
            if !login(&env, name, account, &connector, &cutter, &mut partition).await {
                trace.violation(name, "could not log in again after a lost session");
                break;
            }
        }
        let packet = Packet::new("Op", n.to_string());
        let sent_in = session(&seen);
        if rng.chance(30) {
            lock(&fates).insert(n, Fate::Unknown(sent_in));
            if let Err(error) = connector.send(packet) {
                trace.record(name, format_args!("send {n} refused: {error}"));
                lock(&fates).insert(n, Fate::Refused);
            }
        } else {
            let (connector, fates, trace) = (connector.clone(), Arc::clone(&fates), trace.clone());
            let mut request = Box::pin(async move {
                let result = connector.request(packet).await;
                let fate = match &result {
                    Ok(reply) => {
                        let text = String::from_utf8_lossy(&reply.payload).into_owned();
                        let replied = text.split(' ').next().and_then(|w| w.parse::<u64>().ok());
                        trace.check(name, replied == Some(n), || {
                            format!("request {n} answered with {text:?}")
                        });
                        Fate::Applied
                    }
                    Err(ConnectorError::SessionLost | ConnectorError::Disconnected) => {
                        Fate::Unknown(sent_in)
                    }
                    Err(error) => {
                        trace.violation(name, format_args!("request {n} failed: {error:?}"));
                        Fate::Unknown(sent_in)
                    }
                };
                lock(&fates).insert(n, fate);
            });
            // Polled once here, so it is queued before the next operation (order matters).
            if futures_util::poll!(&mut request).is_pending() {
                in_flight.spawn(request);
            }
            while in_flight.len() >= 4 {
                in_flight.join_next().await;
            }
        }
        sleep(rng.millis(0, 150)).await;
    }
    partition.heal().await;
    while in_flight.join_next().await.is_some() {}
    if let Some(before) = steady_cut {
        // Give the resume its time (a dial and a handshake, well inside the window).
        sleep(Duration::from_secs(2)).await;
        if steady_cut_pending(&trace, name, &lock(&seen).events[before..]) {
            trace.violation(
                name,
                "a cut of a steady connection was not resumed within 2 s",
            );
        }
    }

    // Settle: ask the stage what it applied. The session may still be resuming, or turn out
    // lost now; then the loss has been reported and the player logs in again first.
    let mut dumped = false;
    for _ in 0..3 {
        if !connector.is_connected() {
            login(&env, name, account, &connector, &cutter, &mut partition).await;
        }
        let dump = connector.request(Packet::empty("Dump"));
        let outcome = tokio::time::timeout(Duration::from_secs(10), dump).await;
        let lost = lock(&seen).events.contains(&SessionEvent::Lost);
        if lost {
            lock(&shared.lost).insert(account.to_owned(), true);
        }
        match outcome {
            Ok(Ok(reply)) => {
                check_dump(&trace, name, &reply, &lock(&fates), session(&seen));
                dumped = true;
                break;
            }
            Ok(Err(ConnectorError::SessionLost)) if lost => {}
            outcome => {
                trace.violation(name, format_args!("Dump failed: {outcome:?}"));
                dumped = true;
                break;
            }
        }
    }
    trace.check(name, dumped, || "the session was lost at every Dump".into());
    lock(&shared.leaving).insert(account.to_owned(), true);
    connector.disconnect().await;
    drop(connector);
    crate::cluster::env::expect_no_tasks(&env, name, Duration::from_secs(1)).await;
    env.finish(name);
}

/// Judges the session events since a cut of a steady connection: it must be resumed, never
/// lost. True while the outcome is not known yet.
fn steady_cut_pending(trace: &Trace, name: &str, since: &[SessionEvent]) -> bool {
    let outcome = since
        .iter()
        .find(|event| matches!(event, SessionEvent::Resumed | SessionEvent::Lost));
    match outcome {
        None => true,
        Some(SessionEvent::Resumed) => false,
        Some(event) => {
            trace.violation(
                name,
                format_args!("a cut of a steady connection ended in {event:?}, not Resumed"),
            );
            false
        }
    }
}

/// The stage's record of this account's operations against what the player knows; `current`
/// is the session the dump was answered in (sessions lost before it): what was sent in it
/// must all be there.
fn check_dump(
    trace: &Trace,
    name: &str,
    reply: &Packet,
    fates: &BTreeMap<u64, Fate>,
    current: usize,
) {
    let text = String::from_utf8_lossy(&reply.payload).into_owned();
    let applied: Vec<u64> = text
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .split(',')
        .filter_map(|w| w.parse().ok())
        .collect();
    trace.record(
        name,
        format_args!(
            "stage applied {} of {OPS} ops (sessions lost: {current})",
            applied.len()
        ),
    );
    trace.check(name, applied.windows(2).all(|w| w[0] < w[1]), || {
        format!("operations applied twice or out of order: {applied:?}")
    });
    for (n, fate) in fates {
        let present = applied.contains(n);
        let expected = match fate {
            Fate::Applied => true,
            Fate::Unknown(session) => *session == current,
            Fate::Refused => {
                trace.check(name, !present, || {
                    format!("operation {n} applied though the connector refused it")
                });
                false
            }
        };
        trace.check(name, present || !expected, || {
            format!("operation {n} ({fate:?}) missing from the stage (sessions lost: {current})")
        });
    }
}
