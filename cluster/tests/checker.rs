//! The history checker on hand-written histories: a clean one passes, and each invariant,
//! broken once, is reported under its own name.

use playhouse_cluster::check::check;
use playhouse_cluster::history::Record;
use playhouse_cluster::report::Report;

mod support;

use support::{T0, login};

fn bump(player: &str, seq: u64) -> Record {
    Record::Bump {
        player: player.to_owned(),
        epoch: 1,
        seq,
        sent: T0 + seq * 100,
        code: None,
    }
}

fn push(player: &str, seq: u64, ptally: u64) -> Record {
    Record::Push {
        player: player.to_owned(),
        epoch: 1,
        seq,
        ptally,
        t: T0 + seq * 100 + 10,
    }
}

fn add(player: &str, seq: u64, ptally: Option<u64>, took: u64) -> Record {
    let code = ptally.is_none().then_some(60202);
    support::add(player, seq, T0 + seq * 100, took, ptally, code)
}

/// Rounds 1..=rounds of a player whose every message was applied once and answered.
fn clean(player: &str, resumable: bool, rounds: u64) -> Vec<Record> {
    let mut history = vec![login(player, resumable)];
    for round in 0..rounds {
        let (b, a) = (2 * round + 1, 2 * round + 2);
        history.extend([
            bump(player, b),
            push(player, b, b),
            add(player, a, Some(a), 5),
        ]);
    }
    history
}

fn mesh(sent: u64, took: u64, status: u16, code: Option<u16>) -> Record {
    Record::Http {
        op: "request".to_owned(),
        play: "play-1".to_owned(),
        stage: 1,
        sent,
        done: sent + took,
        status,
        created: None,
        code,
        error: None,
    }
}

/// A stage-to-stage `Ask` of room `stage` on play-2, answered by `answered` or failed with
/// `code`.
fn ask(tag: u64, took: u64, answered: Option<i64>, code: Option<u16>) -> Record {
    Record::Ask {
        player: "a".to_owned(),
        epoch: 1,
        tag,
        play: "play-2".to_owned(),
        stage: 102,
        sent: T0 + tag * 300,
        done: T0 + tag * 300 + took,
        answered,
        code,
    }
}

fn race(sent: u64, created: bool) -> Record {
    Record::Http {
        op: "race".to_owned(),
        play: "play-1".to_owned(),
        stage: 10_001,
        sent,
        done: sent + 20,
        status: 200,
        created: Some(created),
        code: None,
        error: None,
    }
}

fn checks(report: &Report) -> Vec<&'static str> {
    report.violations.iter().map(|v| v.check).collect()
}

#[test]
fn a_clean_history_passes() {
    let mut history = clean("a", true, 10);
    history.extend(clean("b", false, 10));
    history.push(mesh(T0, 30, 200, None));
    history.extend([ask(1, 8, Some(102), None), ask(2, 4_000, None, Some(2))]);
    history.extend([race(T0, true), race(T0, false), race(T0, false)]);
    assert_eq!(checks(&check(&history)), Vec::<&str>::new());
}

#[test]
fn a_push_missing_from_a_resumed_session_is_reported() {
    let history: Vec<Record> = clean("a", true, 10)
        .into_iter()
        .filter(|r| !matches!(r, Record::Push { seq: 5, .. }))
        .collect();
    assert_eq!(checks(&check(&history)), ["resumed session complete"]);
}

#[test]
fn a_message_applied_twice_is_reported() {
    let mut history = clean("a", false, 10);
    // From message 7 on, every tally is one higher: message 6 ran twice.
    for record in &mut history {
        match record {
            Record::Push { seq, ptally, .. }
            | Record::Add {
                seq,
                ptally: Some(ptally),
                ..
            } if *seq >= 7 => {
                *ptally += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checks(&check(&history)), ["exactly once"]);
}

#[test]
fn a_gap_is_excused_only_by_a_failed_request() {
    // Request 6 failed (it may not have run) and did not: later tallies are one lower.
    let shifted = |failed: bool| {
        let mut history = clean("a", false, 10);
        for record in &mut history {
            match record {
                Record::Add {
                    seq: 6,
                    ptally,
                    code,
                    ..
                } if failed => {
                    *ptally = None;
                    *code = Some(60202);
                }
                Record::Add { seq: 6, ptally, .. } => *ptally = Some(5),
                Record::Push { seq, ptally, .. }
                | Record::Add {
                    seq,
                    ptally: Some(ptally),
                    ..
                } if *seq >= 7 => {
                    *ptally -= 1;
                }
                _ => {}
            }
        }
        history
    };
    assert_eq!(checks(&check(&shifted(true))), Vec::<&str>::new());
    // The same gap after a request that succeeded: a message was lost.
    let lost = checks(&check(&shifted(false)));
    assert!(lost.contains(&"no silent loss"), "{lost:?}");
}

#[test]
fn a_request_past_its_timeout_is_a_hang() {
    let mut history = clean("a", true, 3);
    history.push(add("a", 8, None, 8_000));
    assert_eq!(checks(&check(&history)), ["no hang"]);
}

#[test]
fn a_mesh_request_failing_at_its_timeout_means_liveness_was_late() {
    let history = vec![
        mesh(T0, 4_900, 502, Some(2)),
        mesh(T0, 10_000, 502, Some(1)),
    ];
    assert_eq!(checks(&check(&history)), ["liveness"]);
}

#[test]
fn two_creations_of_one_id_are_reported_unless_its_server_was_killed() {
    let history = vec![race(T0, true), race(T0, true), race(T0, false)];
    assert_eq!(checks(&check(&history)), ["one stage per id"]);
    let mut killed = history;
    killed.push(Record::Fault {
        id: 1,
        kind: "kill".to_owned(),
        target: "play-1".to_owned(),
        applied: T0 - 10,
        healed: T0 + 5,
    });
    assert_eq!(checks(&check(&killed)), Vec::<&str>::new());
}

#[test]
fn a_player_that_never_succeeds_after_the_heal_has_not_recovered() {
    let mut history = clean("a", true, 3);
    history.push(Record::Fault {
        id: 1,
        kind: "partition".to_owned(),
        target: "play-1".to_owned(),
        applied: T0 + 1_000,
        healed: T0 + 2_000,
    });
    // The run goes on for a minute; the player's only later request fails.
    history.push(add("a", 8, None, 5_000));
    history.push(mesh(T0 + 60_000, 10, 200, None));
    let found = checks(&check(&history));
    assert!(found.contains(&"recovery"), "{found:?}");
}

#[test]
fn a_stage_to_stage_answer_from_another_room_or_past_the_timeout_is_reported() {
    let mut history = clean("a", true, 3);
    history.push(ask(1, 8, Some(101), None));
    assert_eq!(checks(&check(&history)), ["stage-to-stage answer"]);
    // A success whose answer did not carry the tag back names no room.
    *history.last_mut().expect("an ask") = ask(1, 8, None, None);
    assert_eq!(checks(&check(&history)), ["stage-to-stage answer"]);
    let mut history = clean("a", true, 3);
    history.push(ask(1, 8_000, None, Some(3)));
    assert_eq!(checks(&check(&history)), ["no hang"]);
}

#[test]
fn room_to_room_requests_that_never_succeed_after_the_heal_have_not_recovered() {
    let mut history = clean("a", true, 3);
    history.push(ask(1, 8, Some(102), None));
    history.push(Record::Fault {
        id: 1,
        kind: "mesh-partition".to_owned(),
        target: "play-2".to_owned(),
        applied: T0 + 1_000,
        healed: T0 + 2_000,
    });
    history.push(add("a", 60, Some(60), 5));
    history.push(ask(200, 10, None, Some(2)));
    assert_eq!(checks(&check(&history)), ["recovery"]);
    history.push(ask(20, 10, Some(102), None));
    assert_eq!(checks(&check(&history)), Vec::<&str>::new());
}
