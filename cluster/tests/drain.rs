//! The drain checks (`playhouse_cluster::moves`) on hand-written histories: a drain whose
//! rooms moved and whose plain players were closed with 25 passes; a session lost, a room
//! not followed, a plain player dropped otherwise, a relayed request failing, and a stage
//! listed by both servers are each reported under their own name.

use playhouse_cluster::check::check;
use playhouse_cluster::history::Record;
use playhouse_cluster::report::Report;

mod support;

use support::{T0, login};

/// The drain's SIGTERM.
const A: u64 = T0 + 10_000;
/// Its heal (the restart).
const H: u64 = A + 9_000;

fn add(player: &str, seq: u64, sent: u64, ok: bool, code: u16) -> Record {
    support::add(
        player,
        seq,
        sent,
        5,
        ok.then_some(seq),
        (!ok).then_some(code),
    )
}

fn session(player: &str, event: &str, t: u64) -> Record {
    Record::Session {
        player: player.to_owned(),
        epoch: 1,
        event: event.to_owned(),
        t,
    }
}

fn stages(play: &str, ids: &[i64], t: u64) -> Record {
    Record::Stages {
        play: play.to_owned(),
        ids: ids.to_vec(),
        t,
    }
}

/// A drain of play-1: p1r follows its room to play-2 10 ms in; p1n is relayed (its requests
/// succeed) and closed with 25 at the 6 s deadline; the stage lists show room 1 move.
fn drain() -> Vec<Record> {
    let mut history = vec![
        Record::Fault {
            id: 1,
            kind: "drain".to_owned(),
            target: "play-1".to_owned(),
            applied: A,
            healed: H,
        },
        login("p1r", true),
        login("p1n", false),
        Record::Moved {
            player: "p1r".to_owned(),
            epoch: 1,
            to: "play-2".to_owned(),
            t: A + 10,
        },
        session("p1n", "disconnect", A + 6_000),
        Record::Ended {
            player: "p1n".to_owned(),
            epoch: 1,
            code: 25,
            t: A + 6_010,
        },
        session("p1n", "closing", A + 6_011),
    ];
    for (i, t) in (T0..A + 6_000).step_by(1_000).enumerate() {
        let seq = 2 * i as u64 + 2;
        history.push(add("p1r", seq, t, true, 0));
        history.push(add("p1n", seq, t, true, 0));
    }
    for t in (T0..H + 3_000).step_by(500) {
        let moved = t > A + 10;
        history.push(stages("play-1", if moved { &[] } else { &[1] }, t));
        history.push(stages("play-2", if moved { &[1, 101] } else { &[101] }, t));
    }
    history
}

fn checks(report: &Report) -> Vec<&'static str> {
    report.violations.iter().map(|v| v.check).collect()
}

#[test]
fn a_drain_that_moved_its_rooms_passes() {
    let report = check(&drain());
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let row = &report.rows[1];
    assert_eq!(row.follow_ms, Some(10));
    assert_eq!(row.sessions.get("moved"), Some(&1));
    assert_eq!(row.sessions.get("drained"), Some(&1));
}

#[test]
fn a_session_lost_in_a_drain_and_a_room_not_followed_are_reported() {
    let mut history = drain();
    history.retain(|r| !matches!(r, Record::Moved { .. }));
    history.push(session("p1r", "lost", A + 6_000));
    let report = check(&history);
    assert_eq!(
        checks(&report),
        ["drain keeps sessions", "drain moves rooms"],
        "{:?}",
        report.violations
    );
}

#[test]
fn a_plain_player_dropped_without_25_or_a_relayed_request_failing_is_reported() {
    let mut history = drain();
    for record in &mut history {
        if let Record::Ended { code, .. } = record {
            *code = 60201;
        }
    }
    let report = check(&history);
    assert_eq!(checks(&report), ["drain relays or closes with 25"]);
    let mut history = drain();
    history.push(add("p1n", 1001, A + 2_500, false, 5));
    let report = check(&history);
    assert_eq!(checks(&report), ["drain relays or closes with 25"]);
    // Failing with 25 at the deadline is the close, not a loss.
    let mut history = drain();
    history.push(add("p1n", 1001, A + 5_990, false, 25));
    assert!(check(&history).violations.is_empty());
}

#[test]
fn a_stage_listed_by_both_servers_is_reported_past_a_hand_over() {
    let mut history = drain();
    // A hand-over seen by one pair of lists: not a second stage.
    history.push(stages("play-1", &[1], A + 600));
    assert!(check(&history).violations.is_empty());
    // Room 1 started afresh on the restarted play-1 while it lives on play-2.
    for t in (H..H + 3_000).step_by(500) {
        history.push(stages("play-1", &[1], t + 1));
    }
    history.retain(|r| !matches!(r, Record::Stages { play, ids, t } if play == "play-1" && ids.is_empty() && *t > H));
    let report = check(&history);
    assert_eq!(
        checks(&report),
        ["one stage per id"],
        "{:?}",
        report.violations
    );
}
