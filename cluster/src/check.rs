//! The history checker. After a run it checks, over every operation recorded:
//!
//! - **exactly once, in order**: in each player's epoch (one login), every `Bump` and `Add`
//!   carries its sequence number and every answer names it, with the player's tally. The
//!   tally minus the sequence number stays constant while every message is applied once; it
//!   may only drop by the messages that were not sent or whose request failed, and never
//!   rises (a message applied twice). A push arrives at most once, in order.
//! - **nothing lost silently**: in an epoch whose connection never dropped (or whose
//!   resumable session was never lost) every `Bump` gets its push: a resumed session's
//!   pushes are consecutive.
//! - **no hang**: every request ends within its timeout, a failure with a wire code.
//! - **stage-to-stage**: a room's mesh request (`Ask`) ends within the player's request
//!   timeout, a failure with a wire code, and a success carries the answer of the room asked.
//! - **one stage per id**: of the get-or-create calls racing for a fresh id, one created it,
//!   unless its Play server was killed meanwhile.
//! - **liveness**: a mesh request to a silent Play server fails within the liveness bound
//!   (heartbeat timeout plus interval), not at the request timeout.
//! - **recovery**: after each heal, every player and the mesh requests to each Play server
//!   succeed again within the recovery bound.
//! - the checks of a drain, and one stage per id from the Play servers' stage lists: see
//!   [`crate::moves`].
//!
//! The summary has one row per fault (the time from its application to the next fault's),
//! and one for the time before the first.

use std::collections::{BTreeMap, HashMap};

use playhouse_connector::ErrorCode;

use crate::history::Record;
use crate::report::{Fault, Report, Row};

/// A wire code by name, e.g. `SERVER_NOT_FOUND (2)`.
fn code_name(code: u16) -> String {
    let name = ErrorCode(code).name().unwrap_or("?");
    format!("{name} ({code})")
}

/// A mesh request must fail within this after its peer went silent: heartbeat timeout (5 s)
/// plus one interval (1 s) plus scheduling slack.
pub const LIVENESS_BOUND_MS: u64 = 7_500;
/// Every player and every Play server's mesh requests succeed again within this after a
/// heal (a killed Play server: [`RESTART_BOUND_MS`]).
pub const RECOVERY_BOUND_MS: u64 = 10_000;
/// Recovery bound after a killed or drained Play server is started again (its clients log
/// in again; a drained one's rooms are started afresh there, see `rooms::REHOME`).
pub const RESTART_BOUND_MS: u64 = 15_000;
/// Request timeout plus slack (see `driver`).
const ADD_BOUND_MS: u64 = 7_000;
/// HTTP timeout plus slack (see `driver`).
const HTTP_BOUND_MS: u64 = 17_000;

/// Get-or-create calls racing for one `(Play server, stage id)`: `(sent, done, created)`.
type Races = BTreeMap<(String, i64), Vec<(u64, u64, bool)>>;

#[derive(Debug, Default)]
struct Epoch {
    resumable: bool,
    play: String,
    login: u64,
    /// seq -> (is add, sent, failed: not sent or request failed)
    ops: BTreeMap<u64, (bool, u64, bool)>,
    /// seq -> player tally, of replies and pushes
    answers: BTreeMap<u64, u64>,
    pushes: Vec<u64>,
    broken: bool,
    closing: Option<u64>,
}

/// Checks `records` (the driver's and the orchestrator's histories together).
pub fn check(records: &[Record]) -> Report {
    let mut report = Report::default();
    let start = records.iter().filter_map(time).min().unwrap_or(0);
    let end = records.iter().filter_map(time).max().unwrap_or(0);
    report.rows.push(Row {
        name: "baseline".to_owned(),
        from: start,
        ..Row::default()
    });
    let mut faults: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Fault {
                id,
                kind,
                target,
                applied,
                healed,
            } => Some((*applied, *healed, *id, kind.clone(), target.clone())),
            _ => None,
        })
        .collect();
    faults.sort_unstable();
    for (applied, healed, id, kind, target) in &faults {
        report.rows.push(Row {
            name: format!("{id} {kind} {target}"),
            from: *applied,
            healed: Some(*healed),
            target: target.clone(),
            kind: kind.clone(),
            ..Row::default()
        });
    }
    let mut epochs: HashMap<(String, u64), Epoch> = HashMap::new();
    let mut races: Races = BTreeMap::new();
    for record in records {
        match record {
            Record::Login {
                player,
                epoch,
                resumable,
                play,
                t,
                ..
            } => {
                let e = epochs.entry((player.clone(), *epoch)).or_default();
                e.resumable = *resumable;
                e.play = play.clone();
                e.login = *t;
            }
            Record::Bump {
                player,
                epoch,
                seq,
                sent,
                code,
            } => {
                let e = epochs.entry((player.clone(), *epoch)).or_default();
                e.ops.insert(*seq, (false, *sent, code.is_some()));
                report.outcome(*sent, code.map(code_name));
            }
            Record::Add {
                player,
                epoch,
                seq,
                sent,
                done,
                ptally,
                code,
            } => {
                let e = epochs.entry((player.clone(), *epoch)).or_default();
                e.ops.insert(*seq, (true, *sent, ptally.is_none()));
                if let Some(p) = ptally {
                    e.answers.insert(*seq, *p);
                }
                report.outcome(*sent, code.map(code_name));
                if done - sent > ADD_BOUND_MS {
                    let detail =
                        format!("{player} epoch {epoch} Add {seq} took {} ms", done - sent);
                    report.violate(*sent, "no hang", detail);
                }
                if ptally.is_none() && code.is_none_or(|c| c == 0) {
                    let detail = format!("{player} epoch {epoch} Add {seq} failed without a code");
                    report.violate(*sent, "failure has a code", detail);
                }
            }
            Record::Push {
                player,
                epoch,
                seq,
                ptally,
                t,
            } => {
                let e = epochs.entry((player.clone(), *epoch)).or_default();
                if e.answers.insert(*seq, *ptally).is_some() {
                    let detail = format!("{player} epoch {epoch}: message {seq} answered twice");
                    report.violate(*t, "exactly once", detail);
                }
                if e.pushes.last().is_some_and(|last| *last >= *seq) {
                    let detail = format!(
                        "{player} epoch {epoch}: push {seq} after {:?}",
                        e.pushes.last()
                    );
                    report.violate(*t, "in order", detail);
                }
                e.pushes.push(*seq);
            }
            Record::Session {
                player,
                epoch,
                event,
                t,
            } => {
                let e = epochs.entry((player.clone(), *epoch)).or_default();
                let counted = match event.as_str() {
                    "resumed" => Some("resumed"),
                    "lost" => Some("lost"),
                    "disconnect" if !e.resumable && e.closing.is_none() => Some("dropped"),
                    _ => None,
                };
                let segment = report.segment(*t);
                let row = &mut report.rows[segment];
                let dropped = matches!(event.as_str(), "reconnecting" | "disconnect");
                if segment > 0 && dropped && e.closing.is_none() && row.client_detect_ms.is_none() {
                    row.client_detect_ms = Some(t.saturating_sub(row.from));
                }
                if let Some(name) = counted {
                    *report.rows[segment].sessions.entry(name).or_default() += 1;
                }
                match event.as_str() {
                    "closing" => e.closing = Some(*t),
                    "lost" => e.broken = true,
                    "disconnect" if !e.resumable && e.closing.is_none() => e.broken = true,
                    _ => {}
                }
            }
            Record::Http {
                op,
                play,
                stage,
                sent,
                done,
                status,
                created,
                code,
                error,
            } => {
                let failure = match (status, code, error) {
                    (200, _, _) => None,
                    (_, Some(c), _) => Some(code_name(*c)),
                    (0, _, Some(e)) => Some(format!("http {}", e.split(':').next().unwrap_or(e))),
                    (s, _, _) => Some(format!("status {s}")),
                };
                if *status != 200 && *status != 0 && code.is_none() {
                    let detail = format!("{op} {play}/{stage}: HTTP {status} without a code");
                    report.violate(*sent, "failure has a code", detail);
                }
                report.outcome(*sent, failure.clone());
                if done - sent > HTTP_BOUND_MS {
                    let detail = format!("{op} {play}/{stage} took {} ms", done - sent);
                    report.violate(*sent, "no hang", detail);
                }
                if op == "request" && failure.is_some() && *status != 0 {
                    let took = done - sent;
                    if took > LIVENESS_BOUND_MS {
                        let detail = format!(
                            "mesh request to {play}/{stage} failed after {took} ms ({failure:?})"
                        );
                        report.violate(*sent, "liveness", detail);
                    }
                    let segment = report.segment(*sent);
                    let row = &mut report.rows[segment];
                    if row.target == *play && row.detect_ms.is_none() && *done >= row.from {
                        row.detect_ms = Some(done - row.from);
                    }
                }
                if op == "race" {
                    races.entry((play.clone(), *stage)).or_default().push((
                        *sent,
                        *done,
                        *created == Some(true),
                    ));
                }
            }
            Record::Ask {
                player,
                epoch,
                tag,
                play,
                stage,
                sent,
                done,
                answered,
                code,
            } => {
                report.outcome(*sent, code.map(code_name));
                let what = format!("{player} epoch {epoch} Ask {tag} of {play}/{stage}");
                if done - sent > ADD_BOUND_MS {
                    let detail = format!("{what} took {} ms", done - sent);
                    report.violate(*sent, "no hang", detail);
                }
                if code.is_none() && *answered != Some(*stage) {
                    let detail = format!("{what} answered by {answered:?}");
                    report.violate(*sent, "stage-to-stage answer", detail);
                }
            }
            Record::Fault { .. }
            | Record::Moved { .. }
            | Record::Ended { .. }
            | Record::Stages { .. } => {}
        }
    }
    check_epochs(&mut report, &epochs);
    check_races(&mut report, &races, &faults);
    crate::moves::check(&mut report, records, &faults);
    check_recovery(&mut report, records, end);
    report
}

fn time(record: &Record) -> Option<u64> {
    Some(match record {
        Record::Login { t, .. }
        | Record::Push { t, .. }
        | Record::Session { t, .. }
        | Record::Moved { t, .. }
        | Record::Ended { t, .. }
        | Record::Stages { t, .. } => *t,
        Record::Add { done, .. } | Record::Http { done, .. } | Record::Ask { done, .. } => *done,
        Record::Bump { sent, .. } => *sent,
        Record::Fault { healed, .. } => *healed,
    })
}

fn check_epochs(report: &mut Report, epochs: &HashMap<(String, u64), Epoch>) {
    let mut keys: Vec<_> = epochs.keys().collect();
    keys.sort();
    for key in keys {
        let e = &epochs[key];
        let (player, epoch) = key;
        if e.login == 0 {
            continue;
        }
        let strict = !e.broken;
        let mut last: Option<(u64, i64)> = None;
        for (&seq, &ptally) in &e.answers {
            let offset = ptally as i64 - seq as i64;
            let t = e.ops.get(&seq).map_or(e.login, |o| o.1);
            if let Some((prev, prev_offset)) = last {
                let delta = offset - prev_offset;
                let between = e.ops.range(prev + 1..seq);
                let excused = between
                    .filter(|(s, (is_add, _, failed))| {
                        *failed || (!strict && !*is_add && !e.answers.contains_key(s))
                    })
                    .count() as i64;
                if delta > 0 {
                    let detail = format!(
                        "{player} epoch {epoch}: message {seq} answered with tally {ptally}, {delta} more than the messages before it"
                    );
                    report.violate(t, "exactly once", detail);
                } else if -delta > excused {
                    let detail = format!(
                        "{player} epoch {epoch}: {} message(s) before {seq} never applied, {excused} failed",
                        -delta
                    );
                    let check = if e.resumable {
                        "resumed session complete"
                    } else {
                        "no silent loss"
                    };
                    report.violate(t, check, detail);
                }
            }
            last = Some((seq, offset));
        }
        if strict {
            for (seq, (is_add, sent, failed)) in &e.ops {
                if !*is_add && !*failed && !e.answers.contains_key(seq) {
                    let detail = format!("{player} epoch {epoch}: Bump {seq} never pushed back");
                    let check = if e.resumable {
                        "resumed session complete"
                    } else {
                        "no silent loss"
                    };
                    report.violate(*sent, check, detail);
                }
            }
        }
    }
}

fn check_races(report: &mut Report, races: &Races, faults: &[Fault]) {
    for ((play, stage), calls) in races {
        let created = calls.iter().filter(|c| c.2).count();
        let from = calls.iter().map(|c| c.0).min().unwrap_or(0);
        let to = calls.iter().map(|c| c.1).max().unwrap_or(0);
        let killed = faults
            .iter()
            .any(|f| f.3 == "kill" && f.4 == *play && f.0 <= to && f.1 >= from);
        if created > 1 && !killed {
            let detail =
                format!("stage {stage} on {play} created {created} times by racing get-or-create");
            report.violate(from, "one stage per id", detail);
        }
    }
}

fn check_recovery(report: &mut Report, records: &[Record], end: u64) {
    for i in 1..report.rows.len() {
        let row = report.rows[i].clone();
        let Some(healed) = row.healed else { continue };
        let bound = if row.kind == "kill" || row.kind == "drain" {
            RESTART_BOUND_MS
        } else {
            RECOVERY_BOUND_MS
        };
        if healed + bound + 2_000 > end {
            continue;
        }
        // Per player and per Play server's mesh requests: the first success after the heal.
        let mut first: BTreeMap<String, Option<u64>> = BTreeMap::new();
        for record in records {
            match record {
                Record::Login { player, t, .. } if *t < row.from => {
                    first.entry(format!("player {player}")).or_insert(None);
                }
                Record::Http {
                    op,
                    play,
                    status,
                    done,
                    ..
                } if op == "request" => {
                    let slot = first.entry(format!("mesh to {play}")).or_insert(None);
                    if *status == 200 && *done >= healed && slot.is_none_or(|f| *done < f) {
                        *slot = Some(*done);
                    }
                }
                Record::Ask {
                    play, code, done, ..
                } => {
                    let slot = first.entry(format!("stage mesh to {play}")).or_insert(None);
                    if code.is_none() && *done >= healed && slot.is_none_or(|f| *done < f) {
                        *slot = Some(*done);
                    }
                }
                _ => {}
            }
        }
        for record in records {
            if let Record::Add {
                player,
                done,
                ptally: Some(_),
                ..
            } = record
                && let Some(slot) = first.get_mut(&format!("player {player}"))
                && *done >= healed
                && slot.is_none_or(|f| *done < f)
            {
                *slot = Some(*done);
            }
        }
        let mut slowest = 0;
        for (who, at) in first {
            let took = at.map(|at| at - healed);
            slowest = slowest.max(took.unwrap_or(u64::MAX));
            if took.is_none_or(|took| took > bound) {
                let detail =
                    format!("{who}: no success within {bound} ms of the heal ({took:?} ms)");
                report.violate(row.from, "recovery", detail);
            }
        }
        report.rows[i].recover_ms = Some(slowest);
    }
}
