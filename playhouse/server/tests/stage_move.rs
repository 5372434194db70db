//! A live stage moves, with its players, to another Play server when its server drains: the
//! player's resumable session follows the `@Move@` notice to the new server, where the
//! stage's state goes on (nothing lost, nothing applied twice) and every request is answered
//! once. Two servers in one mesh over real sockets; the client speaks raw frames, so the test
//! sees exactly what travels.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use playhouse::{ErrorCode, MemoryDirectory, MeshJoin, Packet, PlayServer};
use playhouse_protocol::{
    Capabilities, ClientFrame, MOVE_MSG_ID, MoveNotice, RESUME_MSG_ID, ResumeGrant, ResumeRequest,
    SESSION_MSG_ID, ServerFrame, read_count,
};
use support::RawClient;
use support::movable::{metric, play, play_with, sees};

const WAIT: Duration = Duration::from_secs(10);

/// A resumable client speaking raw frames, keeping what it sent for a replay.
struct Player {
    client: RawClient,
    grant: ResumeGrant,
    /// Data frames sent after the authentication (the streams count from there).
    sent: Vec<ClientFrame>,
    /// Data frames received (the authentication reply is the first).
    received: u64,
    next_seq: u16,
}

impl Player {
    async fn log_in(addr: SocketAddr, stage_id: i64, user: &str) -> Player {
        let mut client = RawClient::connect(addr, stage_id).await;
        client
            .send_frame(ClientFrame::hello(0, Capabilities::RESUME))
            .await;
        let login = ClientFrame::new("AuthenticateRequest", 1, stage_id, user.to_owned());
        client.send_frame(login).await;
        let grant = client.recv().await.expect("grant");
        assert_eq!(grant.msg_id, SESSION_MSG_ID);
        let grant = ResumeGrant::from_payload(&grant.payload).unwrap();
        let reply = client.recv().await.expect("auth reply");
        assert_eq!(reply.error_code, ErrorCode::SUCCESS);
        Player {
            client,
            grant,
            sent: Vec::new(),
            received: 1,
            next_seq: 2,
        }
    }

    /// Sends an `Add` request; its sequence number.
    async fn add(&mut self, stage_id: i64) -> u16 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = ClientFrame::new(format!("Add{seq}"), seq, stage_id, Bytes::new());
        self.sent.push(frame.clone());
        self.client.send_frame(frame).await;
        seq
    }

    /// The next data frame (control frames other than `@Move@` skipped); `None` at the end.
    async fn next(&mut self) -> Option<ServerFrame> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.client.recv())
                .await
                .expect("a frame")?;
            if frame.msg_id == MOVE_MSG_ID {
                return Some(frame);
            }
            if frame.msg_id.starts_with('@') {
                continue;
            }
            self.received += 1;
            return Some(frame);
        }
    }

    /// Resumes at `addr`: the server's count of our frames, after which we replay the rest.
    async fn resume_at(&mut self, addr: SocketAddr, stage_id: i64) -> u64 {
        let mut client = RawClient::connect(addr, stage_id).await;
        client
            .send_frame(ClientFrame::hello(0, Capabilities::RESUME))
            .await;
        let request = ResumeRequest {
            token: self.grant.token,
            received: self.received,
        };
        client.send_frame(ClientFrame::resume(999, request)).await;
        let answer = client.recv().await.expect("resume answer");
        assert_eq!(answer.msg_id, RESUME_MSG_ID);
        assert_eq!(answer.error_code, ErrorCode::SUCCESS, "{answer:?}");
        let theirs = read_count(&answer.payload).unwrap();
        for frame in &self.sent[usize::try_from(theirs).unwrap()..] {
            client.send_frame(frame.clone()).await;
        }
        self.client = client;
        theirs
    }
}

/// "Add<seq> <stage count> <actor adds>"
fn count_of(reply: &ServerFrame) -> (String, u64, u64) {
    let text = String::from_utf8(reply.payload.to_vec()).unwrap();
    let mut parts = text.split(' ');
    let id = parts.next().unwrap().to_owned();
    let count = parts.next().unwrap().parse().unwrap();
    let adds = parts.next().unwrap().parse().unwrap();
    (id, count, adds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_servers_stage_moves_with_its_player_and_its_state() {
    let directory = MemoryDirectory::new();
    let (play1, addr1) = play("play-1", &directory).await;
    let (play2, addr2) = play("play-2", &directory).await;
    sees(&play1, "play-2").await;

    let mut player = Player::log_in(addr1, 5, "alice").await;
    for n in 1..=3 {
        player.add(5).await;
        let reply = player.next().await.unwrap();
        assert_eq!(count_of(&reply).1, n);
    }
    // One more request in flight as the drain starts: it runs once, here or there.
    let in_flight = player.add(5).await;
    let drain = tokio::spawn({
        let play1 = play1.clone();
        async move { play1.drain(Duration::from_secs(10)).await }
    });

    // The player reads until told where its stage went.
    let mut replies = Vec::new();
    let notice = loop {
        let frame = player
            .next()
            .await
            .expect("the move notice before the close");
        if frame.msg_id == MOVE_MSG_ID {
            break MoveNotice::from_payload(&frame.payload).unwrap();
        }
        replies.push(frame);
    };
    assert_eq!(notice.endpoint, addr2.to_string());
    let report = tokio::time::timeout(WAIT, drain).await.unwrap().unwrap();
    assert_eq!(
        (report.stages, report.moved, report.closed_at_deadline),
        (1, 1, 0)
    );

    // Resume there: same token, same counts; what either side missed is replayed.
    // Three adds answered, and the one in flight if the old server read it first.
    let theirs = player.resume_at(addr2, 5).await;
    assert!(
        theirs == 3 || theirs == 4,
        "the server's count of our frames: {theirs}"
    );
    // The state went on: the stage's count and the actor's own. Every reply up to the next
    // request's is read, so a request that ran twice would show.
    let last = player.add(5).await;
    while replies.iter().all(|r| r.msg_seq != last) {
        replies.push(player.next().await.expect("a reply"));
    }
    let answered: Vec<_> = replies.iter().filter(|r| r.msg_seq == in_flight).collect();
    assert_eq!(answered.len(), 1, "the in-flight request is answered once");
    assert_eq!(count_of(answered[0]).1, 4);
    let reply = replies.last().unwrap();
    assert_eq!((count_of(reply).1, count_of(reply).2), (5, 5));
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(play2.stage_count(), 1);
    play2.stop().await;
}

/// Two servers with TCP and WebSocket listeners; play-1's addresses by transport.
async fn pair(directory: &MemoryDirectory) -> (PlayServer, PlayServer, SocketAddr, SocketAddr) {
    let (play1, tcp1) = play("play-1", directory).await;
    let ws1 = play1.listen_ws("127.0.0.1:0", "/ws").await.unwrap();
    let (play2, _) = play("play-2", directory).await;
    play2.listen_ws("127.0.0.1:0", "/ws").await.unwrap();
    sees(&play1, "play-2").await;
    (play1, play2, tcp1, ws1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_follows_its_stage_over_tcp_and_websocket() {
    use playhouse_connector::{Connector, ConnectorConfig, SessionEvent, Transport};

    for transport in [Transport::Tcp, Transport::websocket()] {
        let directory = MemoryDirectory::new();
        let (play1, play2, tcp1, ws1) = pair(&directory).await;
        let addr = if matches!(transport, Transport::Tcp) {
            tcp1
        } else {
            ws1
        };
        let config = ConnectorConfig::default()
            .resume(true)
            .transport(transport.clone())
            .use_main_thread_callbacks(false);
        let connector = Connector::new(config);
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        connector.on_session(move |event| {
            let _ = events_tx.send(event);
        });
        connector
            .connect("127.0.0.1", addr.port(), 9, "")
            .await
            .unwrap();
        connector
            .authenticate(Packet::new("AuthenticateRequest", "bob"))
            .await
            .unwrap();
        let add = |n: u64| {
            let connector = connector.clone();
            async move {
                let reply = connector.request(Packet::empty(format!("Add{n}"))).await;
                let reply = reply.unwrap_or_else(|e| panic!("Add{n}: {e}"));
                String::from_utf8(reply.payload.to_vec()).unwrap()
            }
        };
        assert_eq!(add(1).await, "Add1 1 1");
        // Requests keep going while the server drains; each is answered once, in order.
        let drain = tokio::spawn({
            let play1 = play1.clone();
            async move { play1.drain(Duration::from_secs(10)).await }
        });
        for n in 2..=20 {
            assert_eq!(add(n).await, format!("Add{n} {n} {n}"), "{transport:?}");
        }
        let report = tokio::time::timeout(WAIT, drain).await.unwrap().unwrap();
        assert_eq!(report.moved, 1, "{transport:?}");
        assert_eq!(add(21).await, "Add21 21 21");
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(event);
        }
        assert!(
            seen.contains(&SessionEvent::Moved),
            "{transport:?}: {seen:?}"
        );
        assert!(
            !seen.contains(&SessionEvent::Lost),
            "{transport:?}: {seen:?}"
        );
        let (_, port2) = connector
            .endpoint()
            .unwrap()
            .rsplit_once(':')
            .map(|(h, p)| (h.to_owned(), p.to_owned()))
            .unwrap();
        assert_ne!(port2.parse::<u16>().unwrap(), addr.port());
        assert_eq!(play2.stage_count(), 1);
        connector.disconnect().await;
        play2.stop().await;
    }
}

async fn api(id: &str, directory: &MemoryDirectory) -> playhouse::ApiServer {
    let join =
        MeshJoin::memory("127.0.0.1:0", directory).refresh_interval(Duration::from_millis(50));
    playhouse::ApiServer::builder()
        .server_id(id)
        .start(join)
        .await
        .unwrap()
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_messages_to_a_moved_stage_find_it_before_and_after_its_old_server_goes() {
    let directory = MemoryDirectory::new();
    let (play1, _) = play("play-1", &directory).await;
    let (play2, _) = play("play-2", &directory).await;
    let api1 = api("api-1", &directory).await;
    let sender = api1.sender();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .try_init();
    let peek = |sender: playhouse::ApiSender| async move {
        let reply = sender
            .request_to_stage("play-1", 5, Packet::empty("Peek"))
            .await;
        String::from_utf8(reply.expect("the stage answers").payload.to_vec()).unwrap()
    };
    sees(&play1, "play-2").await;
    eventually("api-1 sees play-1", || {
        api1.mesh().servers().get("play-1").is_some()
    })
    .await;
    sender
        .create_stage("play-1", "Counter", 5, Packet::empty("Make"))
        .await
        .unwrap();
    assert_eq!(peek(sender.clone()).await, "0");

    let drain = tokio::spawn({
        let play1 = play1.clone();
        async move { play1.drain(Duration::from_secs(10)).await }
    });
    eventually("the stage on play-2", || play2.stage_count() == 1).await;
    // play-1 still forwards: a request is redirected (and the sender remembers), a one-way
    // message passed on.
    sender
        .send_to_stage("play-1", 5, Packet::empty("Bump"))
        .unwrap();
    assert_eq!(peek(sender.clone()).await, "1");
    // A new stage asked of the draining server lands on another one of its service.
    let placed = sender
        .get_or_create_stage("play-1", "Counter", 9, Packet::empty("Make"))
        .await
        .unwrap();
    assert_eq!(
        (placed.play_id.as_str(), placed.is_created),
        ("play-2", true)
    );
    let report = tokio::time::timeout(WAIT, drain).await.unwrap().unwrap();
    assert_eq!(report.moved, 1);

    // play-1 is gone. A server that never talked to the stage finds it through play-2's
    // directory entry; never ServerNotFound.
    let api2 = api("api-2", &directory).await;
    eventually(
        "play-1 out of the directory, play-2 listing the stage",
        || {
            let servers = api2.mesh().servers();
            servers.get("play-1").is_none()
                && servers.moved_to("play-1", 5).as_deref() == Some("play-2")
        },
    )
    .await;
    assert_eq!(peek(api2.sender()).await, "1");
    api2.sender()
        .send_to_stage("play-1", 5, Packet::empty("Bump"))
        .unwrap();
    assert_eq!(peek(api2.sender()).await, "2");
    assert_eq!(peek(sender).await, "2");
    assert_eq!(play2.stage_count(), 2);
    play2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_away_during_the_move_learns_where_its_stage_went() {
    let directory = MemoryDirectory::new();
    // A short resume window: the old server stays up for it, for players away at the move.
    let window = |c: &mut playhouse::PlayConfig| {
        if let Some(resume) = c.resume.as_mut() {
            resume.window = Duration::from_secs(3);
        }
    };
    let (play1, addr1) = play_with("play-1", &directory, window).await;
    let (play2, addr2) = play("play-2", &directory).await;
    sees(&play1, "play-2").await;
    let mut player = Player::log_in(addr1, 6, "carol").await;
    player.add(6).await;
    let reply = player.next().await.unwrap();
    assert_eq!(count_of(&reply).1, 1);
    // The connection drops; the session waits for its client, and the stage moves meanwhile.
    drop(std::mem::replace(
        &mut player.client,
        RawClient::connect(addr1, 6).await,
    ));
    let drain = tokio::spawn({
        let play1 = play1.clone();
        async move { play1.drain(Duration::from_secs(10)).await }
    });
    eventually("the stage on play-2", || play2.stage_count() == 1).await;

    // Back at the old server: told where the session went.
    let mut back = RawClient::connect(addr1, 6).await;
    back.send_frame(ClientFrame::hello(0, Capabilities::RESUME))
        .await;
    let request = ResumeRequest {
        token: player.grant.token,
        received: player.received,
    };
    back.send_frame(ClientFrame::resume(77, request)).await;
    let notice = back.recv().await.expect("an answer");
    assert_eq!(notice.msg_id, MOVE_MSG_ID);
    let notice = MoveNotice::from_payload(&notice.payload).unwrap();
    assert_eq!(notice.endpoint, addr2.to_string());
    // Resumed there: the count goes on.
    let theirs = player.resume_at(addr2, 6).await;
    assert_eq!(theirs, 1);
    player.add(6).await;
    let reply = player.next().await.unwrap();
    assert_eq!((count_of(&reply).1, count_of(&reply).2), (2, 2));
    let report = tokio::time::timeout(Duration::from_secs(40), drain)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.moved, 1);
    play2.stop().await;
}

/// `playhouse_stage_queued_messages` of `server`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_reach_a_stage_during_its_move_are_handled_once_at_its_new_server() {
    let directory = MemoryDirectory::new();
    let (play1, _) = play("play-1", &directory).await;
    let (play2, _) = play("play-2", &directory).await;
    let api1 = api("api-1", &directory).await;
    let sender = api1.sender();
    sees(&play1, "play-2").await;
    eventually("api-1 sees play-1", || {
        api1.mesh().servers().get("play-1").is_some()
    })
    .await;
    sender
        .create_stage("play-1", "Counter", 11, Packet::empty("Make"))
        .await
        .unwrap();
    // The stage is busy; the move waits in its mailbox, and three messages behind it.
    sender
        .send_to_stage("play-1", 11, Packet::empty("Nap"))
        .unwrap();
    eventually("the nap to start", || {
        support::movable::NAPPING.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    let drain = tokio::spawn({
        let play1 = play1.clone();
        async move { play1.drain(Duration::from_secs(10)).await }
    });
    eventually("the move queued", || {
        metric(&play1, "playhouse_stage_queued_messages") == 1
    })
    .await;
    for _ in 0..3 {
        sender
            .send_to_stage("play-1", 11, Packet::empty("Bump"))
            .unwrap();
    }
    eventually("the bumps queued", || {
        metric(&play1, "playhouse_stage_queued_messages") == 4
    })
    .await;
    let report = tokio::time::timeout(WAIT, drain).await.unwrap().unwrap();
    assert_eq!(report.moved, 1);
    // Held, moved, and handled there once each: the nap and three bumps.
    let reply = sender
        .request_to_stage("play-1", 11, Packet::empty("Peek"))
        .await
        .unwrap();
    assert_eq!(reply.payload, "4");
    play2.stop().await;
}
