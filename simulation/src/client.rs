//! A game client for scenarios: the real [`Connector`] over a simulated TCP stream, with every
//! event it sees recorded in the trace and checked as it arrives.
//!
//! Checked here, per connection: `Applied` pushes of the stage come with consecutive
//! sequence numbers (nothing lost, duplicated or reordered) and say the stage saw every
//! operation in order; each reply answers the request it completes (never a stale reply);
//! every request ends within its timeout. The operation ledger ([`crate::invariants::Ledger`])
//! is compared with the stage's own record by [`SimClient::verify_ops`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, Packet};

use crate::app::STAGE_TYPE;
use crate::cluster::env::{Env, sleep, wait_until};
use crate::cluster::ports::CLIENT_PORT;
use crate::invariants::Ledger;
use crate::net::dial;
use crate::tap::client::ClientTap;
use crate::trace::{Trace, now};

/// What the connector's callbacks saw (shared with them: they run on its task).
#[derive(Debug, Default)]
pub struct Inbox {
    /// `Applied` sequence last seen on the current connection.
    last_applied: Option<u64>,
    /// Connections lost so far.
    pub disconnects: u32,
    /// Every push, as `msg_id payload`, with the simulated time it arrived.
    pub pushes: Vec<(Duration, String)>,
    /// The stage incarnation the current connection is attached to (from its `Joined` or
    /// `Attached` push).
    attached_to: Option<String>,
}

/// One simulated player.
#[derive(Debug)]
pub struct SimClient {
    /// Trace label (the client host's name).
    pub name: String,
    /// Account id it authenticates as.
    pub account: String,
    /// The stage it plays in.
    pub stage_id: i64,
    /// That stage's type, named in the connection's hello: a login joins only a stage of the
    /// type it names ([`STAGE_TYPE`] unless [`SimClient::of_type`] says otherwise).
    pub stage_type: String,
    /// The Play server host it connects to.
    pub server: String,
    connector: Connector,
    trace: Trace,
    /// The wire tap on its connections.
    tap: ClientTap,
    inbox: Arc<Mutex<Inbox>>,
    /// What happened to each operation it sent.
    pub ledger: Ledger,
    next_op: u64,
    /// Connection epochs so far (one per login attempt).
    epoch: u64,
    /// `Inbox::disconnects` when the current epoch began: another disconnect ends it.
    epoch_disconnects: u32,
    request_timeout: Duration,
    connect_timeout: Duration,
}

fn lock(inbox: &Mutex<Inbox>) -> MutexGuard<'_, Inbox> {
    inbox.lock().unwrap_or_else(PoisonError::into_inner)
}

fn words(packet: &Packet) -> Vec<String> {
    String::from_utf8_lossy(&packet.payload)
        .split(' ')
        .map(str::to_owned)
        .collect()
}

impl SimClient {
    /// A client `name` playing `account` in stage `stage_id` on `server`, with the
    /// cluster's connector timing (`heartbeats: false` turns heartbeats off).
    pub fn new(env: &Env, name: &str, account: &str, server: &str, stage_id: i64) -> SimClient {
        let timing = env.timing;
        let config = ConnectorConfig::default()
            .request_timeout(timing.client_request_timeout)
            .heartbeat_interval(timing.heartbeat_interval)
            .heartbeat_timeout(timing.heartbeat_timeout)
            .connect_timeout(timing.connect_timeout)
            .use_main_thread_callbacks(false);
        let connector = Connector::new(config);
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let trace = env.trace.clone();
        {
            let (trace, inbox, who) = (trace.clone(), Arc::clone(&inbox), name.to_owned());
            connector.on_receive(move |_, _, packet| on_push(&trace, &who, &inbox, &packet));
        }
        {
            let (trace, inbox, who) = (trace.clone(), Arc::clone(&inbox), name.to_owned());
            connector.on_disconnect(move || {
                lock(&inbox).disconnects += 1;
                trace.record(&who, "disconnected");
            });
        }
        SimClient {
            name: name.to_owned(),
            account: account.to_owned(),
            stage_id,
            stage_type: STAGE_TYPE.to_owned(),
            server: server.to_owned(),
            connector,
            tap: ClientTap::new(&trace, name),
            trace,
            inbox,
            ledger: Ledger::default(),
            next_op: 0,
            epoch: 0,
            epoch_disconnects: 0,
            request_timeout: timing.client_request_timeout,
            connect_timeout: timing.connect_timeout,
        }
    }

    /// The same client, playing in a stage of type `stage_type` (one an API server created).
    pub fn of_type(mut self, stage_type: &str) -> SimClient {
        self.stage_type = stage_type.to_owned();
        self
    }

    /// The connector.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// What the callbacks saw.
    pub fn inbox(&self) -> MutexGuard<'_, Inbox> {
        lock(&self.inbox)
    }

    /// Dials and authenticates once; `true` when authenticated.
    pub async fn login(&mut self) -> bool {
        if self.connector.is_connected() {
            self.connector.disconnect().await;
        }
        // A new epoch: what the last connection left unanswered may be missing.
        self.ledger.epoch_ended();
        self.epoch += 1;
        {
            let mut inbox = lock(&self.inbox);
            inbox.attached_to = None;
            self.epoch_disconnects = inbox.disconnects;
        }
        self.trace
            .record(&self.name, format_args!("epoch {}", self.epoch));
        let stream = match dial(&self.server, CLIENT_PORT, self.connect_timeout).await {
            Ok(stream) => stream,
            Err(error) => {
                self.trace
                    .record(&self.name, format_args!("dial failed: {}", error.kind()));
                return false;
            }
        };
        lock(&self.inbox).last_applied = None;
        if let Err(error) =
            self.connector
                .connect_stream(self.tap.wrap(stream), self.stage_id, &self.stage_type)
        {
            self.trace
                .record(&self.name, format_args!("connect failed: {error}"));
            return false;
        }
        let auth = Packet::new("AuthenticateRequest", self.account.clone());
        let result = self.bounded(self.connector.authenticate(auth)).await;
        match result {
            Some(Ok(reply)) => {
                let ok =
                    self.trace
                        .check(&self.name, reply.payload == self.account.as_bytes(), || {
                            format!("authenticate reply for another account: {reply:?}")
                        });
                self.trace.record(&self.name, "authenticated");
                ok
            }
            Some(Err(error)) => {
                self.trace.record(
                    &self.name,
                    format_args!("authenticate failed: {}", error.code()),
                );
                false
            }
            None => false,
        }
    }

    /// Logs in, retrying every `every` until it works or `limit` passes.
    pub async fn login_retrying(&mut self, every: Duration, limit: Duration) -> bool {
        let deadline = now() + limit;
        loop {
            if self.login().await {
                return true;
            }
            if now() >= deadline {
                return false;
            }
            sleep(every).await;
        }
    }

    /// Waits up to `within` for `env` to mark `ready` (a server or stage the scenario needs),
    /// then logs in, retrying every 200 ms for 5 s. On failure records `why` as a violation,
    /// marks this client finished and returns `false`.
    pub async fn join_when_ready(
        &mut self,
        env: &Env,
        ready: &str,
        within: Duration,
        why: &str,
    ) -> bool {
        let ready = wait_until(within, || env.is_finished(ready)).await;
        if ready
            && self
                .login_retrying(Duration::from_millis(200), Duration::from_secs(5))
                .await
        {
            return true;
        }
        self.trace.violation(&self.name, why);
        env.finish(&self.name);
        false
    }

    /// Awaits a connector call, recording a violation when it outlives its timeout (every
    /// request must end by itself, with a reply or an error).
    async fn bounded<T>(&self, call: impl std::future::Future<Output = T>) -> Option<T> {
        let limit = self.request_timeout + Duration::from_secs(1);
        match tokio::time::timeout(limit, call).await {
            Ok(value) => Some(value),
            Err(_) => {
                self.trace
                    .violation(&self.name, "a request never completed");
                None
            }
        }
    }

    fn op_packet(&mut self) -> (u64, Packet) {
        self.next_op += 1;
        (self.next_op, Packet::new("Op", self.next_op.to_string()))
    }

    /// Sends the next operation as a request and checks its reply; `Ok(stage sequence)`.
    pub async fn op(&mut self) -> Result<u64, ConnectorError> {
        let (n, packet) = self.op_packet();
        let request = self.connector.request(packet);
        let result = self
            .bounded(request)
            .await
            .unwrap_or(Err(ConnectorError::RequestTimeout));
        self.settle(n, result)
    }

    /// Like [`SimClient::op`] with its own request timeout.
    pub async fn op_within(&mut self, timeout: Duration) -> Result<u64, ConnectorError> {
        let (n, packet) = self.op_packet();
        let request = self.connector.request_with_timeout(packet, timeout);
        let result = self
            .bounded(request)
            .await
            .unwrap_or(Err(ConnectorError::RequestTimeout));
        self.settle(n, result)
    }

    /// Sends `count` operations at once (pipelined) and checks that their replies come back
    /// in the order the stage applied them.
    pub async fn ops_pipelined(&mut self, count: usize) {
        let connector = self.connector.clone();
        let mut sent = Vec::new();
        for _ in 0..count {
            let (n, packet) = self.op_packet();
            sent.push((n, connector.request(packet)));
        }
        let (numbers, requests): (Vec<u64>, Vec<_>) = sent.into_iter().unzip();
        let results = self.bounded(futures_util::future::join_all(requests)).await;
        let Some(results) = results else {
            return;
        };
        let mut last_seq = 0;
        for (n, result) in numbers.into_iter().zip(results) {
            if let Ok(seq) = self.settle(n, result) {
                self.trace.check(&self.name, seq > last_seq, || {
                    format!("pipelined op {n} applied at {seq}, after {last_seq}")
                });
                last_seq = seq;
            }
        }
    }

    /// Sends the next operation one-way: it must be applied exactly once unless this
    /// connection drops (checked by the next [`SimClient::verify_ops`]).
    pub fn note(&mut self) {
        let (n, packet) = self.op_packet();
        match self.connector.send(packet) {
            Ok(()) => self.ledger.unanswered(n),
            Err(error) => self.ledger.failed(n, error.code().0),
        }
    }

    /// Records what happened to operation `n` and checks the reply is its own.
    fn settle(
        &mut self,
        n: u64,
        result: Result<Packet, ConnectorError>,
    ) -> Result<u64, ConnectorError> {
        match result {
            Ok(reply) => {
                let w = words(&reply);
                let matches = w.len() == 3 && w[0] == n.to_string();
                if !self.trace.check(&self.name, matches, || {
                    format!("op {n} completed by a reply to another request: {w:?}")
                }) {
                    return Err(ConnectorError::Disconnected);
                }
                let seq = w[1].parse().unwrap_or(0);
                self.trace
                    .record(&self.name, format_args!("op {n} ok seq={seq} inc={}", w[2]));
                self.ledger.acked(&w[2], n);
                Ok(seq)
            }
            Err(error) => {
                let code = error.code();
                self.trace
                    .record(&self.name, format_args!("op {n} error {code}"));
                self.trace
                    .check(&self.name, code != crate::app::OUT_OF_ORDER, || {
                        format!("stage saw op {n} out of order")
                    });
                match &error {
                    // Sent on this connection, the reply late: applied unless it drops.
                    ConnectorError::RequestTimeout => self.ledger.unanswered(n),
                    // Applied or not: the connection was lost.
                    ConnectorError::Disconnected => self.ledger.unknown(n),
                    _ => self.ledger.failed(n, code.0),
                }
                Err(error)
            }
        }
    }

    /// Asks the stage which operations of this account it holds and checks them against the
    /// ledger: every acknowledged one exactly once, nothing never sent, no duplicate; and,
    /// when this connection never dropped, every one-way or timed-out operation sent on it
    /// exactly once, in the incarnation it is attached to (the dump is answered on the same
    /// connection, after everything sent before it). A dump
    /// that fails or never answers is a violation as well (callers ask when the stage must
    /// answer). Returns whether everything held.
    pub async fn verify_ops(&mut self) -> bool {
        let dump = self.connector.request(Packet::empty("Dump"));
        match self.bounded(dump).await {
            Some(Ok(reply)) => {
                let w = words(&reply);
                let incarnation = w.first().cloned().unwrap_or_default();
                let held: Vec<u64> = w
                    .get(1)
                    .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
                    .unwrap_or_default();
                self.trace.record(
                    &self.name,
                    format_args!("dump inc={incarnation} ops={}", held.len()),
                );
                let (attached, intact) = {
                    let inbox = lock(&self.inbox);
                    let intact = inbox.disconnects == self.epoch_disconnects;
                    (inbox.attached_to.clone(), intact)
                };
                let attached_here = attached.as_deref() == Some(&*incarnation);
                self.trace.check(&self.name, attached_here, || {
                    format!("dump answered by {incarnation}, connection attached to {attached:?}")
                });
                let intact = intact && attached_here && self.connector.is_connected();
                let problems = self.ledger.compare(&incarnation, &held, intact);
                for problem in &problems {
                    self.trace.violation(&self.name, problem);
                }
                problems.is_empty()
            }
            // Every caller asks when the stage must answer: a dump that fails hides the
            // comparison, so it is a violation too.
            Some(Err(error)) => {
                let code = error.code();
                self.trace
                    .violation(&self.name, format_args!("dump failed: {code}"));
                false
            }
            None => {
                self.trace.violation(&self.name, "dump never answered");
                false
            }
        }
    }

    /// Pushes seen so far whose id is `msg_id`, as payload strings.
    pub fn pushes(&self, msg_id: &str) -> Vec<(Duration, String)> {
        let prefix = format!("{msg_id} ");
        lock(&self.inbox)
            .pushes
            .iter()
            .filter_map(|(at, push)| push.strip_prefix(&prefix).map(|p| (*at, p.to_owned())))
            .collect()
    }

    /// Checks that every request of the script has ended (none hangs), then disconnects.
    /// (Checked before `disconnect`, which fails whatever is still pending.)
    pub async fn close(&self) {
        let pending = self.connector.pending_requests();
        self.trace.check(&self.name, pending == 0, || {
            format!("{pending} requests still pending when the client closed")
        });
        self.trace.record(
            &self.name,
            format_args!("wire: {} replies checked", self.tap.replies()),
        );
        self.connector.disconnect().await;
    }
}

/// Records a push and checks the stage's ordering promises.
fn on_push(trace: &Trace, who: &str, inbox: &Mutex<Inbox>, packet: &Packet) {
    let payload = String::from_utf8_lossy(&packet.payload).into_owned();
    trace.record(who, format_args!("push {} {payload}", packet.msg_id));
    let mut inbox = lock(inbox);
    inbox
        .pushes
        .push((now(), format!("{} {payload}", packet.msg_id)));
    match &*packet.msg_id {
        "Joined" | "Attached" => {
            inbox.attached_to = payload.rsplit(' ').next().map(str::to_owned);
            return;
        }
        "Applied" => {}
        _ => return,
    }
    let w: Vec<&str> = payload.split(' ').collect();
    let seq: u64 = w.first().and_then(|s| s.parse().ok()).unwrap_or(0);
    if let Some(last) = inbox.last_applied {
        trace.check(who, seq == last + 1, || {
            format!("stage pushes out of sequence: {seq} after {last}")
        });
    }
    inbox.last_applied = Some(seq);
    trace.check(who, w.get(3) == Some(&"1"), || {
        format!(
            "stage applied {} op {} out of order",
            w.get(1).unwrap_or(&"?"),
            w.get(2).unwrap_or(&"?")
        )
    });
}

/// Ends a client: disconnects, checks nothing is pending and no task of the connector
/// outlives it, and marks it finished.
pub async fn retire(env: &Env, client: SimClient) {
    client.close().await;
    let name = client.name.clone();
    drop(client);
    crate::cluster::env::expect_no_tasks(env, &name, Duration::from_secs(1)).await;
    env.finish(&name);
}

/// The `Presence` pushes `client` saw about `account`, in order (`"0"` lost, `"1"` back).
pub fn presence_of(client: &SimClient, account: &str) -> Vec<String> {
    client
        .pushes("Presence")
        .into_iter()
        .filter_map(|(_, p)| {
            p.strip_prefix(account)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::to_owned)
        })
        .collect()
}

/// Checks that the Play server `play` closed `account`'s session on its idle timeout after
/// the account's network was cut at `cut_at`, as `observer` (another player in the stage)
/// sees it: `Presence <account> 0` neither before the idle timeout (the server last heard
/// the account at most one heartbeat interval, plus a delivery, before the cut) nor much
/// after it, and the server down from two sessions to one. Records a violation for `who`
/// otherwise.
pub async fn expect_idle_close(
    env: &Env,
    who: &str,
    observer: &SimClient,
    play: &str,
    account: &str,
    cut_at: Duration,
) {
    let timing = env.timing;
    let sessions_before = env.play(play).map_or(0, |p| p.session_count());
    let gone = wait_until(timing.idle_timeout * 2, || {
        presence_of(observer, account)
            .first()
            .is_some_and(|p| p == "0")
    })
    .await;
    let since_cut = now() - cut_at;
    let earliest = timing
        .idle_timeout
        .saturating_sub(timing.heartbeat_interval + Duration::from_millis(20));
    let latest = timing.idle_timeout + Duration::from_millis(50);
    env.trace.check(
        who,
        gone && since_cut >= earliest && since_cut <= latest,
        || {
            format!(
                "{account} reported gone: {gone}, {since_cut:?} after the cut (idle timeout {:?})",
                timing.idle_timeout
            )
        },
    );
    let sessions_after = env.play(play).map_or(0, |p| p.session_count());
    env.trace
        .check(who, sessions_before == 2 && sessions_after == 1, || {
            format!("server sessions {sessions_before} -> {sessions_after}, expected 2 -> 1")
        });
}
