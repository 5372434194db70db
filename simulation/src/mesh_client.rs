//! Mesh requests from an API server's workload, each recorded with its outcome and latency
//! and checked: a reply must answer its own request (never a stale one), and every request
//! must end by itself within its timeout. One-way operations (`MOp`) are kept in a ledger
//! per stage and checked against the stage's record (`MDump`) by
//! [`MeshClient::verify_mops`]: each exactly once, unless a mesh connection between the two
//! servers opened or closed since it was sent (seen by the run's [`MeshTap`]).

use std::collections::BTreeMap;
use std::time::Duration;

use playhouse::{ApiServer, ErrorCode, MeshError, Packet, RoutingPolicy};

use crate::app::STAGE_TYPE;
use crate::cluster::env::Env;
use crate::invariants::{Ledger, MeshTally};
use crate::tap::mesh::MeshTap;
use crate::trace::{Trace, now};

/// One-way operations sent to one stage.
#[derive(Debug, Default)]
struct MopLedger {
    ledger: Ledger,
    /// [`MeshTap::changes`] between this server and the stage's when the current epoch
    /// began: any change since ends it.
    epoch: u64,
}

/// One API server's view of its requests.
#[derive(Debug)]
pub struct MeshClient {
    who: String,
    api: ApiServer,
    trace: Trace,
    /// Outcomes so far.
    pub tally: MeshTally,
    /// Requests completed by a reply (success or an error code from the peer).
    by_reply: u64,
    next: u64,
    /// Longest a request may take before it counts as never completing.
    limit: Duration,
    /// The run's mesh tap (without it, no one-way operation can be required).
    tap: Option<MeshTap>,
    /// One-way operations by target stage (Play server, stage id).
    mops: BTreeMap<(String, i64), MopLedger>,
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 0 on success, else the error code.
    pub code: ErrorCode,
    /// How long it took.
    pub took: Duration,
    /// The reply's words (empty on error).
    pub words: Vec<String>,
}

impl Answer {
    /// Whether it succeeded.
    pub fn is_ok(&self) -> bool {
        self.code.is_success()
    }
}

impl MeshClient {
    /// Requests from `api`, recorded as `who`.
    pub fn new(api: &ApiServer, trace: &Trace) -> MeshClient {
        MeshClient {
            who: api.server_id().to_owned(),
            limit: api.mesh().request_timeout() + Duration::from_secs(1),
            api: api.clone(),
            trace: trace.clone(),
            tally: MeshTally::default(),
            by_reply: 0,
            next: 0,
            tap: None,
            mops: BTreeMap::new(),
        }
    }

    /// Requests from `api`, recorded in `env`'s trace, with its mesh tap: one-way
    /// operations are required to arrive while no mesh connection changes.
    pub fn for_env(api: &ApiServer, env: &Env) -> MeshClient {
        let mut client = MeshClient::new(api, &env.trace);
        client.tap = Some(env.mesh_tap.clone());
        client
    }

    fn connection_changes(&self, play: &str) -> Option<u64> {
        self.tap.as_ref().map(|tap| tap.changes(&self.who, play))
    }

    /// The API server.
    pub fn api(&self) -> &ApiServer {
        &self.api
    }

    async fn finish(
        &mut self,
        what: String,
        request: impl std::future::Future<Output = Result<Packet, MeshError>>,
    ) -> Answer {
        let start = now();
        let result = match tokio::time::timeout(self.limit, request).await {
            Ok(result) => result,
            Err(_) => {
                self.trace
                    .violation(&self.who, format!("{what} never completed"));
                Err(MeshError::Timeout)
            }
        };
        let took = now() - start;
        self.by_reply += u64::from(matches!(result, Ok(_) | Err(MeshError::Remote { .. })));
        let answer = match result {
            Ok(reply) => Answer {
                code: ErrorCode::SUCCESS,
                took,
                words: String::from_utf8_lossy(&reply.payload)
                    .split(' ')
                    .map(str::to_owned)
                    .collect(),
            },
            Err(error) => Answer {
                code: error.code(),
                took,
                words: Vec::new(),
            },
        };
        self.tally.add(answer.code);
        self.trace.record(
            &self.who,
            format_args!(
                "{what} -> {} {} in {}ms",
                answer.code,
                answer.words.join(" "),
                took.as_millis()
            ),
        );
        answer
    }

    fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Checks that a successful reply's first word is `n`.
    fn own_reply(&self, what: &str, n: u64, answer: &Answer) {
        if answer.is_ok() {
            let own = answer.words.first().is_some_and(|w| *w == n.to_string());
            self.trace.check(&self.who, own, || {
                format!("{what} completed by a stale reply: {:?}", answer.words)
            });
        }
    }

    /// Gets or creates stage `stage_id` on `play`.
    pub async fn ensure_stage(&mut self, play: &str, stage_id: i64) -> Answer {
        let sender = self.api.sender();
        let created =
            sender.get_or_create_stage(play, STAGE_TYPE, stage_id, Packet::empty("Create"));
        let request = async move {
            created
                .await
                .map(|r| Packet::new("Created", format!("{} {}", r.stage_id, r.is_created)))
        };
        self.finish(format!("ensure {play}/{stage_id}"), request)
            .await
    }

    /// Echo request to stage `stage_id` on `play`.
    pub async fn echo(&mut self, play: &str, stage_id: i64) -> Answer {
        let n = self.next();
        let request =
            self.api
                .sender()
                .request_to_stage(play, stage_id, Packet::new("Echo", n.to_string()));
        let what = format!("echo {n} {play}/{stage_id}");
        let answer = self.finish(what.clone(), request).await;
        self.own_reply(&what, n, &answer);
        answer
    }

    /// `count` echo requests at once; each reply must be its own.
    pub async fn echo_pipelined(&mut self, play: &str, stage_id: i64, count: usize) -> Vec<Answer> {
        let sender = self.api.sender();
        let mut requests = Vec::new();
        let mut numbers = Vec::new();
        for _ in 0..count {
            let n = self.next();
            numbers.push(n);
            requests.push(sender.request_to_stage(
                play,
                stage_id,
                Packet::new("Echo", n.to_string()),
            ));
        }
        let what = format!("echo x{count} {play}/{stage_id}");
        let limit = self.limit;
        let all = async move {
            tokio::time::timeout(limit, futures_util::future::join_all(requests)).await
        };
        let start = now();
        let Ok(results) = all.await else {
            self.trace
                .violation(&self.who, format!("{what} never completed"));
            return Vec::new();
        };
        let took = now() - start;
        let mut answers = Vec::new();
        for (n, result) in numbers.into_iter().zip(results) {
            self.by_reply += u64::from(matches!(result, Ok(_) | Err(MeshError::Remote { .. })));
            let answer = match result {
                Ok(reply) => Answer {
                    code: ErrorCode::SUCCESS,
                    took,
                    words: String::from_utf8_lossy(&reply.payload)
                        .split(' ')
                        .map(str::to_owned)
                        .collect(),
                },
                Err(error) => Answer {
                    code: error.code(),
                    took,
                    words: Vec::new(),
                },
            };
            self.tally.add(answer.code);
            let item = format!("echo {n} {play}/{stage_id}");
            self.trace.record(
                &self.who,
                format_args!("{item} -> {} {}", answer.code, answer.words.join(" ")),
            );
            self.own_reply(&item, n, &answer);
            answers.push(answer);
        }
        answers
    }

    /// One-way operation `n` of this server to stage `stage_id` on `play` (`MOp`).
    pub fn mop(&mut self, play: &str, stage_id: i64) -> Result<(), ErrorCode> {
        let n = self.next();
        let packet = Packet::new("MOp", format!("{} {n}", self.who));
        let sent = self.api.sender().send_to_stage(play, stage_id, packet);
        let code = sent
            .as_ref()
            .err()
            .map_or(ErrorCode::SUCCESS, MeshError::code);
        let changes = self.connection_changes(play);
        let mops = self.mops.entry((play.to_owned(), stage_id)).or_default();
        if code.is_success() {
            if changes != Some(mops.epoch) {
                // A connection opened or closed: what was sent before may be missing.
                mops.ledger.epoch_ended();
                mops.epoch = changes.unwrap_or(0);
            }
            mops.ledger.unanswered(n);
        } else {
            mops.ledger.failed(n, code.0);
        }
        self.trace.record(
            &self.who,
            format_args!("mop {n} {play}/{stage_id} -> {code}"),
        );
        sent.map_err(|e| e.code())
    }

    /// Asks stage `stage_id` on `play` which one-way operations of this server it holds and
    /// checks them against the ledger: none twice, none never sent, in order; every one sent
    /// while no mesh connection between the two servers opened or closed, and every one
    /// verified before in the same incarnation, held. A dump that fails is a violation
    /// (callers ask when the stage must answer). Returns whether everything held.
    pub async fn verify_mops(&mut self, play: &str, stage_id: i64) -> bool {
        let request = self.api.sender().request_to_stage(
            play,
            stage_id,
            Packet::new("MDump", self.who.clone()),
        );
        let what = format!("mdump {play}/{stage_id}");
        let answer = self.finish(what.clone(), request).await;
        if !answer.is_ok() {
            self.trace
                .violation(&self.who, format!("{what} failed: {}", answer.code));
            return false;
        }
        let incarnation = answer.words.first().cloned().unwrap_or_default();
        let held: Vec<u64> = answer
            .words
            .get(1)
            .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default();
        let changes = self.connection_changes(play);
        let mops = self.mops.entry((play.to_owned(), stage_id)).or_default();
        let intact = changes.is_some_and(|c| c == mops.epoch);
        let required = mops.ledger.required_count();
        let problems = mops.ledger.compare(&incarnation, &held, intact);
        self.trace.record(
            &self.who,
            format_args!(
                "{what} inc={incarnation} held={} required={required} intact={intact}",
                held.len()
            ),
        );
        for problem in &problems {
            self.trace.violation(&self.who, format!("mop: {problem}"));
        }
        problems.is_empty()
    }

    /// `ApiEcho` request to API server `target`.
    pub async fn api_echo(&mut self, target: &str) -> Answer {
        let n = self.next();
        let request = self
            .api
            .sender()
            .request_to_api(target, Packet::new("ApiEcho", n.to_string()));
        let what = format!("api-echo {n} {target}");
        let answer = self.finish(what.clone(), request).await;
        self.check_api_reply(&what, n, &answer);
        answer
    }

    /// `ApiEcho` request to one API server of `service_id`, round robin; the answer's first
    /// word is the server that handled it.
    pub async fn service_echo(&mut self, service_id: u16) -> Answer {
        let n = self.next();
        let request = self.api.sender().request_to_api_service(
            service_id,
            Packet::new("ApiEcho", n.to_string()),
            RoutingPolicy::RoundRobin,
        );
        let what = format!("service-echo {n} service {service_id}");
        let answer = self.finish(what.clone(), request).await;
        self.check_api_reply(&what, n, &answer);
        answer
    }

    fn check_api_reply(&self, what: &str, n: u64, answer: &Answer) {
        if answer.is_ok() {
            let own = answer.words.get(1).is_some_and(|w| *w == n.to_string());
            self.trace.check(&self.who, own, || {
                format!("{what} completed by a stale reply: {:?}", answer.words)
            });
        }
    }

    /// Checks the node's request cache is empty and late replies are at most the failed
    /// requests (each failed request can be answered late once, never more); with the tap,
    /// exactly: the replies the node took (completing a request or discarded late) are at
    /// most the replies its peers put on the wire to it, each of which answered one request
    /// once (a reply delivered twice counts late without a second reply on the wire).
    pub fn check_queues(&self) {
        let mesh = self.api.mesh();
        let pending = mesh.pending_requests();
        self.trace.check(&self.who, pending == 0, || {
            format!("{pending} mesh requests still pending")
        });
        let late = mesh.late_replies();
        let failed = self.tally.failed();
        self.trace.check(&self.who, late <= failed, || {
            format!("{late} late replies for {failed} failed requests")
        });
        if let Some(tap) = &self.tap {
            let wire = tap.replies_to(&self.who);
            let taken = late + self.by_reply;
            self.trace.check(&self.who, taken <= wire, || {
                format!(
                    "{taken} replies taken ({} completing requests, {late} late) for {wire} on the wire",
                    self.by_reply
                )
            });
        }
        let replies = self.tap.as_ref().map_or(0, |t| t.replies_to(&self.who));
        self.trace.record(
            &self.who,
            format_args!(
                "tally {} late={late} wire replies={replies}",
                self.tally.summary()
            ),
        );
    }
}
