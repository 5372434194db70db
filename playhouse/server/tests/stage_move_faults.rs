//! A move whose target dies mid-transfer: the target takes the stage's snapshot and never
//! answers, neither the move nor the question whether it runs the stage. The stage must stay
//! where it was, its players thawed and its queued messages handled there, and then move to
//! the next server: nothing lost, nothing run twice. The dead target is a real mesh node
//! listed in the directory as a running Play server, whose handler swallows what it gets.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use playhouse::{ErrorCode, MemoryDirectory, MeshJoin, PlayServer};
use playhouse_mesh::proto::{MoveStageReq, MoveStatusReq};
use playhouse_mesh::{
    InboundHandler, Mesh, MeshConfig, RoutePacket, ServerType, TcpLink, TcpLinkConfig,
};
use playhouse_protocol::ServerFrame;
use prost::Name;
use support::RawClient;
use support::movable::{Counter, Mover, metric, play, sees};

const WAIT: Duration = Duration::from_secs(10);

/// A Play server that dies as a stage moves to it: whatever it is sent goes unanswered.
#[derive(Default)]
struct Swallowed {
    moves: AtomicU32,
    questions: AtomicU32,
}

struct DeadTarget(Arc<Swallowed>);

impl InboundHandler for DeadTarget {
    fn handle(&self, _: &Mesh, packet: RoutePacket) {
        let id = packet.route.msg_id();
        if id == MoveStageReq::NAME {
            self.0.moves.fetch_add(1, Ordering::SeqCst);
        } else if id == MoveStatusReq::NAME {
            self.0.questions.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn counts(reply: &ServerFrame) -> (u64, u64) {
    assert_eq!(reply.error_code, ErrorCode::SUCCESS, "{reply:?}");
    let text = String::from_utf8(reply.payload.to_vec()).unwrap();
    let mut parts = text.split(' ').skip(1);
    let mut next = || parts.next().unwrap().parse().unwrap();
    (next(), next())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_target_dies_mid_transfer_stays_then_moves_to_the_next_server() {
    let directory = MemoryDirectory::new();
    // The draining server gives up on an unanswered mesh request after 300 ms.
    let play1 = PlayServer::builder()
        .server_id("play-1")
        .movable_stage("Counter", |_| Counter { count: 0 }, |_| Mover::default())
        .default_stage_type("Counter")
        .build()
        .unwrap();
    let addr1 = play1.listen_tcp("127.0.0.1:0").await.unwrap();
    let join = MeshJoin::memory("127.0.0.1:0", &directory)
        .refresh_interval(Duration::from_millis(50))
        .request_timeout(Duration::from_millis(300));
    play1.join_mesh(join).await.unwrap();
    // play-2 comes first among the targets (they are tried in id order for a lone stage).
    let dead = Arc::new(Swallowed::default());
    let link = TcpLink::bind("play-2", "127.0.0.1:0", None, TcpLinkConfig::default())
        .await
        .unwrap();
    let mut config = MeshConfig::new("play-2", ServerType::Play);
    config.refresh_interval = Duration::from_millis(50);
    let _dead_node = Mesh::start(
        config,
        Arc::new(link),
        Arc::new(directory.clone()),
        Arc::new(DeadTarget(Arc::clone(&dead))),
    )
    .await;
    let (play3, _) = play("play-3", &directory).await;
    sees(&play1, "play-2").await;
    sees(&play1, "play-3").await;

    let mut alice = RawClient::connect(addr1, 11).await;
    assert_eq!(alice.authenticate("alice").await, ErrorCode::SUCCESS);
    assert_eq!(counts(&alice.request("Add", b"").await), (1, 1));
    let in_flight = alice.request_nowait("Add", b"").await;
    let drain = tokio::spawn({
        let play1 = play1.clone();
        async move { play1.drain(Duration::from_secs(30)).await }
    });
    // Answered once, wherever the stage was when it was handled.
    let reply = alice.recv().await.expect("the in-flight reply");
    assert_eq!(reply.msg_seq, in_flight);
    assert_eq!(counts(&reply), (2, 2));
    tokio::time::timeout(WAIT, async {
        while play3.stage_count() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stage reaches play-3");
    // The dead target got the stage and was asked about it; the stage moved once, to play-3.
    assert_eq!(dead.moves.load(Ordering::SeqCst), 1);
    assert_eq!(dead.questions.load(Ordering::SeqCst), 1);
    assert_eq!(metric(&play1, "playhouse_stage_moves_failed_total"), 1);
    assert_eq!(metric(&play1, "playhouse_stages_moved_total"), 1);
    // Alice plays on (relayed to play-3): the state is continuous.
    for n in 3..6 {
        assert_eq!(counts(&alice.request("Add", b"").await), (n, n));
    }
    drop(alice);
    let report = tokio::time::timeout(WAIT, drain).await.unwrap().unwrap();
    assert_eq!((report.moved, report.closed_at_deadline), (1, 0));
    play3.stop().await;
}
