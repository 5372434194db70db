//! Players who cannot follow their stage (clients without resumable sessions, such as the
//! original's connectors) when it moves: their connection stays at the draining server, which
//! relays it to the stage's new server over the mesh, until they leave or the drain deadline
//! closes it with `STAGE_DRAINED`. The clients speak raw frames, so the test sees exactly
//! what they would.

mod support;

use std::time::Duration;

use playhouse::{ErrorCode, MemoryDirectory};
use playhouse_protocol::{Capabilities, ClientFrame, ServerFrame};
use support::RawClient;
use support::movable::{metric, play, play_with, sees};

const WAIT: Duration = Duration::from_secs(10);

/// "<msg id> <stage count> <actor adds>" of a `Count` reply.
fn counts(reply: &ServerFrame) -> (u64, u64) {
    assert_eq!(reply.error_code, ErrorCode::SUCCESS, "{reply:?}");
    let text = String::from_utf8(reply.payload.to_vec()).unwrap();
    let mut parts = text.split(' ').skip(1);
    let mut next = || parts.next().unwrap().parse().unwrap();
    (next(), next())
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never: {what}"));
}

/// The value of metric `name` in `text`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_resume_plays_on_relayed_until_the_drain_deadline_closes_it() {
    let directory = MemoryDirectory::new();
    let (play1, addr1) = play("play-1", &directory).await;
    let (play2, _) = play("play-2", &directory).await;
    sees(&play1, "play-2").await;

    // Alice speaks the original protocol (no hello); Bob says hello without asking to resume.
    let mut alice = RawClient::connect(addr1, 5).await;
    assert_eq!(alice.authenticate("alice").await, ErrorCode::SUCCESS);
    let mut bob = RawClient::connect(addr1, 5).await;
    bob.send_frame(ClientFrame::hello(0, Capabilities::NONE))
        .await;
    assert_eq!(bob.authenticate("bob").await, ErrorCode::SUCCESS);
    assert_eq!(counts(&alice.request("Add", b"").await), (1, 1));
    assert_eq!(counts(&bob.request("Add", b"").await), (2, 1));

    // A request in flight as the drain starts: answered once, here or there.
    let in_flight = alice.request_nowait("Add", b"").await;
    let drain = tokio::spawn({
        let play1 = play1.clone();
        async move { play1.drain(Duration::from_secs(3)).await }
    });
    let reply = alice.recv().await.expect("the in-flight reply");
    assert_eq!(reply.msg_seq, in_flight);
    assert_eq!(counts(&reply), (3, 2));
    eventually("the stage runs at play-2", || {
        play2.stage_count() == 1 && play1.stage_count() == 0
    })
    .await;

    // Both play on over their old connections: the stage's state and their own go on.
    for n in 0..5 {
        assert_eq!(counts(&alice.request("Add", b"").await), (4 + 2 * n, 3 + n));
        assert_eq!(counts(&bob.request("Add", b"").await), (5 + 2 * n, 2 + n));
    }
    assert_eq!(metric(&play1, "playhouse_clients_relayed_total"), 2);
    assert_eq!(metric(&play1, "playhouse_clients_moved_total"), 0);

    // At the deadline both are closed: Bob, who said hello, is told why.
    let close = bob.recv().await.expect("a close notice");
    assert!(close.is_close(), "{close:?}");
    assert_eq!(close.error_code, ErrorCode::STAGE_DRAINED);
    bob.expect_closed().await;
    alice.expect_closed().await;
    let report = tokio::time::timeout(WAIT, drain).await.unwrap().unwrap();
    assert_eq!((report.moved, report.relayed_at_deadline), (1, 2));
    // The stage lives on at play-2, its players now disconnected.
    assert_eq!(play2.stage_count(), 1);
    play2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_when_its_relayed_clients_leave_without_waiting_for_the_deadline() {
    let directory = MemoryDirectory::new();
    let (play1, addr1) = play("play-1", &directory).await;
    // At play-2 a disconnected player's actor is removed at once.
    let (play2, addr2) = play_with("play-2", &directory, |config| {
        config.disconnected_actor_ttl = Some(Duration::from_millis(1));
    })
    .await;
    sees(&play1, "play-2").await;
    sees(&play2, "play-1").await;

    let mut alice = RawClient::connect(addr1, 7).await;
    assert_eq!(alice.authenticate("alice").await, ErrorCode::SUCCESS);
    let drain = tokio::spawn({
        let play1 = play1.clone();
        async move { play1.drain(Duration::from_secs(60)).await }
    });
    eventually("the stage runs at play-2", || play2.stage_count() == 1).await;
    assert_eq!(counts(&alice.request("Add", b"").await), (1, 1));
    assert_eq!(metric(&play2, "playhouse_actors"), 1);
    // Alice leaves: the drain ends long before its deadline, and the stage at play-2 learns
    // she is gone (her actor is removed), so she logs in there afresh.
    drop(alice);
    let report = tokio::time::timeout(WAIT, drain)
        .await
        .expect("the drain ends once its relayed clients left")
        .unwrap();
    assert_eq!((report.moved, report.relayed_at_deadline), (1, 0));
    eventually("play-2 removes alice's actor", || {
        metric(&play2, "playhouse_actors") == 0
    })
    .await;
    let mut again = RawClient::connect(addr2, 7).await;
    assert_eq!(again.authenticate("alice").await, ErrorCode::SUCCESS);
    assert_eq!(counts(&again.request("Add", b"").await), (2, 1));
    play2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_client_follows_its_stage_moving_on_again() {
    let directory = MemoryDirectory::new();
    let (play1, addr1) = play("play-1", &directory).await;
    let (play2, _) = play("play-2", &directory).await;
    sees(&play1, "play-2").await;

    let mut alice = RawClient::connect(addr1, 9).await;
    assert_eq!(alice.authenticate("alice").await, ErrorCode::SUCCESS);
    assert_eq!(counts(&alice.request("Add", b"").await), (1, 1));
    let drain1 = tokio::spawn({
        let play1 = play1.clone();
        async move { play1.drain(Duration::from_secs(30)).await }
    });
    eventually("the stage runs at play-2", || play2.stage_count() == 1).await;
    assert_eq!(counts(&alice.request("Add", b"").await), (2, 2));

    // play-3 comes up, play-2 drains in turn: the stage moves on, and alice, still connected
    // to play-1, with it. Requests sent meanwhile are answered once each.
    let (play3, _) = play("play-3", &directory).await;
    sees(&play2, "play-3").await;
    // Requests stream while play-2 drains: some reach the stage before its move, some while
    // it moves (they go after it), some after (play-2 passes them on, or play-1 sends them
    // to play-3 directly). Each is answered once, in order, the state continuous.
    let mut sent = Vec::new();
    for _ in 0..5 {
        sent.push(alice.request_nowait("Add", b"").await);
    }
    let drain2 = tokio::spawn({
        let play2 = play2.clone();
        async move { play2.drain(Duration::from_secs(30)).await }
    });
    for _ in 0..45 {
        sent.push(alice.request_nowait("Add", b"").await);
        tokio::task::yield_now().await;
    }
    // (Replies from play-2 and play-3 take different links to play-1: they may cross.)
    let mut replies = std::collections::BTreeMap::new();
    for _ in 0..sent.len() {
        let reply = alice.recv().await.expect("a reply to each request");
        assert!(
            replies.insert(reply.msg_seq, reply).is_none(),
            "answered twice"
        );
    }
    for (k, seq) in sent.iter().enumerate() {
        let n = 3 + k as u64;
        assert_eq!(counts(&replies[seq]), (n, n), "handled once, in order");
    }
    eventually("the stage runs at play-3", || play3.stage_count() == 1).await;
    let report2 = tokio::time::timeout(WAIT, drain2).await.unwrap().unwrap();
    assert_eq!((report2.moved, report2.relayed_at_deadline), (1, 0));
    assert_eq!(counts(&alice.request("Add", b"").await), (53, 53));
    drop(alice);
    let report1 = tokio::time::timeout(WAIT, drain1).await.unwrap().unwrap();
    assert_eq!(report1.moved, 1);
    play3.stop().await;
}
