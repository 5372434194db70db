//! The checks of a drain (the `drain` fault: SIGTERM to a `play-node`, its rooms move to the
//! other Play server, it exits at its deadline and is started again), the real counterpart
//! of the simulation's `rolling_drain` and `drain_strays`:
//!
//! - **drain keeps sessions**: no resumable session is lost while a server drains;
//! - **drain moves rooms**: every resumable player in a room of the drained server follows
//!   its room to the other server (`SessionEvent::Moved`) before the heal;
//! - **drain relays or closes with 25**: a player without resume in a room of the drained
//!   server keeps playing, relayed (its requests succeed), until the drain's deadline closes
//!   its connection with 25 StageDrained; a request failing otherwise, or the connection
//!   ending with another code, is a violation;
//! - **one stage per id**: no stage id is listed by both Play servers' `GET /admin/state`
//!   for longer than [`OVERLAP_MS`] (a move's hand-over is shorter): a stage lives on one
//!   server.
//!
//! The exactly-once and consecutive-push checks of [`crate::check`] cover the moved sessions
//! too: a resumed session that moved is checked strictly like any other.

use std::collections::{BTreeMap, HashMap};

use playhouse_connector::ErrorCode;

use crate::history::Record;
use crate::report::{Fault, Report};

/// Longest time one stage id may be listed by two Play servers at once.
pub const OVERLAP_MS: u64 = 2_000;
/// How long after a drain's heal its effects (a last move, a close) are counted in it.
const AFTER_HEAL_MS: u64 = 2_000;

/// One player's epoch, as far as a drain cares.
#[derive(Debug, Default)]
struct Epoch {
    resumable: bool,
    login: u64,
    play: String,
    /// `(t, to)` of each move followed.
    moves: Vec<(u64, String)>,
    /// When it ended: `lost`, a plain `disconnect`, or `closing` (it left).
    end: Option<u64>,
    lost: Option<u64>,
    closing: Option<u64>,
    /// `(t, code)` of the end's cause.
    ended: Option<(u64, u16)>,
    /// `(seq, sent, failure code)` of each `Add`.
    adds: Vec<(u64, u64, Option<u16>)>,
}

impl Epoch {
    /// The Play server its room was on at `t`.
    fn at(&self, t: u64) -> &str {
        self.moves
            .iter()
            .rfind(|(when, _)| *when <= t)
            .map_or(self.play.as_str(), |(_, to)| to.as_str())
    }

    /// Whether it was playing at `t`.
    fn live(&self, t: u64) -> bool {
        self.login != 0 && self.login < t && self.end.is_none_or(|end| end >= t)
    }
}

fn epochs(records: &[Record]) -> BTreeMap<(String, u64), Epoch> {
    let mut epochs: BTreeMap<(String, u64), Epoch> = BTreeMap::new();
    let first = |slot: &mut Option<u64>, t: u64| {
        if slot.is_none() {
            *slot = Some(t);
        }
    };
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
                (e.resumable, e.login, e.play) = (*resumable, *t, play.clone());
            }
            Record::Moved {
                player,
                epoch,
                to,
                t,
            } => {
                let e = epochs.entry((player.clone(), *epoch)).or_default();
                e.moves.push((*t, to.clone()));
            }
            Record::Session {
                player,
                epoch,
                event,
                t,
            } => {
                let e = epochs.entry((player.clone(), *epoch)).or_default();
                match event.as_str() {
                    "lost" => {
                        first(&mut e.lost, *t);
                        first(&mut e.end, *t);
                    }
                    "disconnect" if !e.resumable => first(&mut e.end, *t),
                    "closing" => {
                        first(&mut e.closing, *t);
                        first(&mut e.end, *t);
                    }
                    _ => {}
                }
            }
            Record::Ended {
                player,
                epoch,
                code,
                t,
            } => {
                let e = epochs.entry((player.clone(), *epoch)).or_default();
                e.ended.get_or_insert((*t, *code));
            }
            Record::Add {
                player,
                epoch,
                seq,
                sent,
                ptally,
                code,
                ..
            } => {
                let e = epochs.entry((player.clone(), *epoch)).or_default();
                let failure = ptally.is_none().then(|| code.unwrap_or(0));
                e.adds.push((*seq, *sent, failure));
            }
            _ => {}
        }
    }
    for e in epochs.values_mut() {
        e.moves.sort();
    }
    epochs
}

/// Checks every drain of `faults` against `records`, and the stage lists for one stage per
/// id.
pub fn check(report: &mut Report, records: &[Record], faults: &[Fault]) {
    let epochs = epochs(records);
    let drained = ErrorCode::STAGE_DRAINED.0;
    for (applied, healed, _, kind, target) in faults {
        if kind != "drain" {
            continue;
        }
        let (a, w) = (*applied, healed + AFTER_HEAL_MS);
        let row = report.segment(a);
        let mut follow: Option<u64> = None;
        for ((player, epoch), e) in &epochs {
            if !e.live(a) {
                continue;
            }
            if let Some(lost) = e.lost.filter(|t| (a..=w).contains(t)) {
                let detail = format!(
                    "{player} epoch {epoch}: session lost {} ms into the drain of {target}",
                    lost - a
                );
                report.violate(lost, "drain keeps sessions", detail);
            }
            if e.at(a) != target {
                continue;
            }
            if e.resumable {
                let moved = e
                    .moves
                    .iter()
                    .find(|(t, to)| (a..=w).contains(t) && to != target);
                match moved {
                    Some((t, _)) => {
                        follow = follow.max(Some(t - a));
                        *report.rows[row].sessions.entry("moved").or_default() += 1;
                    }
                    None if e.closing.is_some_and(|t| t < w) && e.lost.is_none() => {}
                    None => {
                        let detail = format!(
                            "{player} epoch {epoch}: its room on {target} drained, and it never followed it"
                        );
                        report.violate(a, "drain moves rooms", detail);
                    }
                }
                continue;
            }
            // Without resume: relayed until it leaves or the deadline closes it with 25.
            let until = e.end.unwrap_or(w).min(w);
            for (seq, sent, failure) in &e.adds {
                if let Some(code) = failure.filter(|c| *c != drained)
                    && (a..until).contains(sent)
                {
                    let detail = format!(
                        "{player} epoch {epoch}: Add {seq} during the drain of {target} failed with {}",
                        ErrorCode(code).name().unwrap_or("?")
                    );
                    report.violate(*sent, "drain relays or closes with 25", detail);
                }
            }
            match (e.end, e.ended) {
                (Some(end), _) if end > w => {}
                (Some(_), Some((_, code))) if code == drained => {
                    *report.rows[row].sessions.entry("drained").or_default() += 1;
                }
                (Some(end), _) if e.closing == Some(end) => {}
                (end, ended) => {
                    let how = match ended {
                        Some((_, code)) => {
                            format!("ended with {}", ErrorCode(code).name().unwrap_or("?"))
                        }
                        None if end.is_some() => "dropped without a code".to_owned(),
                        None => "never closed".to_owned(),
                    };
                    let detail = format!(
                        "{player} epoch {epoch}: in a room of drained {target}, {how}, not 25 StageDrained"
                    );
                    report.violate(a, "drain relays or closes with 25", detail);
                }
            }
        }
        report.rows[row].follow_ms = follow;
    }
    one_stage_per_id(report, records);
}

/// No stage id listed by two Play servers for longer than [`OVERLAP_MS`].
fn one_stage_per_id(report: &mut Report, records: &[Record]) {
    // (server, id) -> intervals of consecutive lists showing it.
    let mut lists: BTreeMap<&str, Vec<(u64, &[i64])>> = BTreeMap::new();
    for record in records {
        if let Record::Stages { play, ids, t } = record {
            lists.entry(play.as_str()).or_default().push((*t, ids));
        }
    }
    let mut spans: HashMap<i64, Vec<(&str, u64, u64)>> = HashMap::new();
    for (play, mut snapshots) in lists {
        snapshots.sort_by_key(|s| s.0);
        let mut open: HashMap<i64, (u64, u64)> = HashMap::new();
        for (t, ids) in snapshots {
            open.retain(|id, (from, to)| {
                let still = ids.contains(id);
                if !still {
                    spans.entry(*id).or_default().push((play, *from, *to));
                }
                still
            });
            for id in ids {
                open.entry(*id).or_insert((t, t)).1 = t;
            }
        }
        for (id, (from, to)) in open {
            spans.entry(id).or_default().push((play, from, to));
        }
    }
    let mut ids: Vec<_> = spans.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let spans = &spans[&id];
        let overlap = spans.iter().enumerate().find_map(|(i, x)| {
            spans[i + 1..].iter().find_map(|y| {
                let (from, to) = (x.1.max(y.1), x.2.min(y.2));
                (x.0 != y.0 && to > from + OVERLAP_MS).then_some((x.0, y.0, from, to))
            })
        });
        if let Some((p, q, from, to)) = overlap {
            let detail = format!("stage {id} listed by both {p} and {q} for {} ms", to - from);
            report.violate(from, "one stage per id", detail);
        }
    }
}
