//! Drain: a Play server drained before a deploy, as its clients see it. Each verifier starts
//! its own Play servers (a mesh of their own, in memory) so the shared ones keep serving.
//! A movable stage moves with its players (they follow over TCP and WebSocket, once or
//! twice, with requests and pushes streaming); a client without a resumable session stays
//! connected to the drained server, relayed to its stage's new home, until the deadline
//! closes it with `StageDrained`, as it does a stage that cannot move; a new stage on a
//! draining server is refused with `ServerDraining`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use playhouse::{
    Actor, ActorCell, ActorInit, ActorLink, ErrorCode, ErrorReply, MemoryDirectory, MeshJoin,
    MovableActor, MovableStage, Packet, PlayServer, ServerInfoCenter, Stage, StageContext,
    StageInit,
};
use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, SessionEvent, Transport};

use crate::check::TestResult;
use crate::client::{ClientEvent, EventTap};
use crate::context::TestCtx;
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

/// The Drain category (stage ids 28000..).
pub(super) fn category() -> Category {
    Category {
        name: "Drain",
        base: 28_000,
        tests: vec![
            TestCase::new("Tcp_ResumableClientFollowsItsStage", |t| {
                Box::pin(follows(t, Transport::Tcp, 1))
            }),
            TestCase::new("WebSocket_ResumableClientFollowsItsStage", |t| {
                Box::pin(follows(t, Transport::websocket(), 2))
            }),
            TestCase::new("MovedTwice_FollowsBothMoves", |t| Box::pin(moved_twice(t))),
            TestCase::new("WithoutResume_RelayedUntilTheDeadline", |t| {
                Box::pin(without_resume(t))
            }),
            TestCase::new("NonMovableStage_ClosedAtDeadline", |t| {
                Box::pin(non_movable(t))
            }),
            TestCase::new("NewStage_RefusedServerDraining", |t| {
                Box::pin(new_stage_refused(t))
            }),
        ],
    }
}

const WAIT: Duration = Duration::from_secs(10);

/// A stage counting `Add` requests: each pushes `Pushed <n>`, then answers `<n>`.
struct Tally {
    count: u64,
}

/// A player: the login payload is its account id.
struct Player;

impl Stage for Tally {
    type Actor = Player;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_dispatch(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        _: Packet,
    ) {
        self.count += 1;
        let count = self.count.to_string();
        actor
            .link
            .send_to_client(Packet::new("Pushed", count.clone()));
        actor.link.reply(Packet::new("Count", count));
    }
}

impl Actor for Player {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        link.set_account_id(String::from_utf8_lossy(&packet.payload).into_owned());
        Ok(Packet::empty("Welcome"))
    }
}

impl MovableStage for Tally {
    fn save(&self) -> Bytes {
        Bytes::copy_from_slice(&self.count.to_le_bytes())
    }

    fn restore(_: &StageInit<'_>, state: Bytes) -> Result<Self, ErrorCode> {
        let count = state[..]
            .try_into()
            .map_err(|_| ErrorCode::INVALID_MESSAGE)?;
        Ok(Tally {
            count: u64::from_le_bytes(count),
        })
    }
}

impl MovableActor for Player {
    fn save(&self) -> Bytes {
        Bytes::new()
    }

    fn restore(_: &ActorInit<'_>, _: Bytes) -> Result<Self, ErrorCode> {
        Ok(Player)
    }
}

/// A Play server of the category's own mesh: `Tally` (movable, the default type) and
/// `Fixed` (the same stage, not movable); its TCP and WebSocket addresses.
async fn play(
    id: &str,
    directory: &MemoryDirectory,
) -> Result<(PlayServer, SocketAddr, SocketAddr), String> {
    let server = PlayServer::builder()
        .server_id(id)
        .movable_stage("Tally", |_| Tally { count: 0 }, |_| Player)
        .stage("Fixed", |_| Tally { count: 0 }, |_| Player)
        .default_stage_type("Tally")
        .client_stage_types(["Fixed"])
        .build()
        .map_err(|e| e.to_string())?;
    let tcp = server
        .listen_tcp("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let ws = server
        .listen_ws("127.0.0.1:0", "/ws")
        .await
        .map_err(|e| e.to_string())?;
    let join =
        MeshJoin::memory("127.0.0.1:0", directory).refresh_interval(Duration::from_millis(50));
    server.join_mesh(join).await.map_err(|e| e.to_string())?;
    Ok((server, tcp, ws))
}

/// `verification --serve-drain`: two Play servers of this category's kind (`Tally`, movable,
/// each `Add` pushes `Pushed <n>` and answers `<n>`) in a mesh of their own, for a client of
/// another language to follow a real move: `POST /drain` (bearer `admin_token`) on
/// `drain-1`'s admin listener moves its stages to `drain-2`. Returns the servers and the JSON
/// line describing them (`{"servers":[{"id","tcp","ws","admin","admin_token"},{"id","tcp","ws"}]}`).
pub async fn serve_pair() -> Result<(Vec<PlayServer>, serde_json::Value), String> {
    let directory = MemoryDirectory::new();
    let (first, tcp1, ws1) = play("drain-1", &directory).await?;
    let (second, tcp2, ws2) = play("drain-2", &directory).await?;
    let admin = first
        .listen_metrics("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    sees(&first, &["drain-2"]).await?;
    let json = serde_json::json!({"servers": [
        {"id": "drain-1", "tcp": tcp1.to_string(), "ws": ws1.to_string(),
         "admin": admin.to_string(), "admin_token": &*first.admin_token()},
        {"id": "drain-2", "tcp": tcp2.to_string(), "ws": ws2.to_string()},
    ]});
    Ok((vec![first, second], json))
}

/// Waits until `server` sees every one of `peers` in its directory view.
async fn sees(server: &PlayServer, peers: &[&str]) -> TestResult {
    let center = server
        .services()
        .get::<ServerInfoCenter>()
        .ok_or("no directory view")?;
    tokio::time::timeout(WAIT, async {
        while !peers.iter().all(|p| center.get(p).is_some()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .map_err(|_| format!("{} never saw {peers:?}", server.server_id()))
}

/// A resumable (or not) connector over `transport`, logged into `stage_id` of type
/// `stage_type` at `addr`; its session events.
async fn player(
    addr: SocketAddr,
    transport: Transport,
    resume: bool,
    stage_id: i64,
    stage_type: &str,
) -> Result<(Connector, EventTap, Arc<Mutex<Vec<SessionEvent>>>), String> {
    let config = ConnectorConfig::default()
        .resume(resume)
        .transport(transport)
        .use_main_thread_callbacks(false);
    let connector = Connector::new(config);
    let tap = EventTap::attach(&connector);
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sessions);
    connector.on_session(move |event| seen.lock().unwrap().push(event));
    connector
        .connect("127.0.0.1", addr.port(), stage_id, stage_type)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    connector
        .authenticate(Packet::new("AuthenticateRequest", "drain_user"))
        .await
        .map_err(|e| format!("login: {e}"))?;
    Ok((connector, tap, sessions))
}

/// Sends `Add`; the count it answers.
async fn add(connector: &Connector) -> Result<u64, ConnectorError> {
    let reply = connector.request(Packet::empty("Add")).await?;
    Ok(String::from_utf8_lossy(&reply.payload).parse().unwrap_or(0))
}

/// Adds while `drain` runs, then some more: every answer one more than the last.
async fn add_through(
    connector: &Connector,
    from: u64,
    drain: tokio::task::JoinHandle<playhouse::DrainReport>,
) -> Result<(u64, playhouse::DrainReport), String> {
    let mut expected = from;
    // Paced well under the server's message rate limit (200 a second).
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    while !drain.is_finished() {
        pace.tick().await;
        expected += 1;
        let got = add(connector)
            .await
            .map_err(|e| format!("Add #{expected}: {e}"))?;
        ensure_eq!(got, expected, "the stage's count across the move");
    }
    let report = drain.await.map_err(|e| e.to_string())?;
    for _ in 0..3 {
        expected += 1;
        let got = add(connector)
            .await
            .map_err(|e| format!("Add #{expected}: {e}"))?;
        ensure_eq!(got, expected, "the stage's count after the move");
    }
    Ok((expected, report))
}

/// The pushes received, in order, as numbers.
fn pushes(events: &mut crate::client::Events) -> Vec<u64> {
    let mut seen = Vec::new();
    while let Some(event) = events.try_next() {
        if let ClientEvent::Push { packet, .. } = event
            && packet.msg_id == "Pushed"
        {
            seen.push(
                String::from_utf8_lossy(&packet.payload)
                    .parse()
                    .unwrap_or(0),
            );
        }
    }
    seen
}

fn spawn_drain(
    server: &PlayServer,
    within: Duration,
) -> tokio::task::JoinHandle<playhouse::DrainReport> {
    let server = server.clone();
    tokio::spawn(async move { server.drain(within).await })
}

async fn follows(t: TestCtx, transport: Transport, offset: i64) -> TestResult {
    let directory = MemoryDirectory::new();
    let (play1, tcp1, ws1) = play("drain-a1", &directory).await?;
    let (play2, _, _) = play("drain-a2", &directory).await?;
    sees(&play1, &["drain-a2"]).await?;
    let addr = if matches!(transport, Transport::Tcp) {
        tcp1
    } else {
        ws1
    };
    let (connector, tap, sessions) = player(addr, transport, true, t.stage_id(offset), "").await?;
    let mut events = tap.subscribe();
    let first = add(&connector).await.map_err(|e| e.to_string())?;
    let (last, report) = add_through(&connector, first, spawn_drain(&play1, WAIT)).await?;
    ensure_eq!(report.moved, 1, "stages moved");
    let seen = sessions.lock().unwrap().clone();
    ensure!(
        seen.contains(&SessionEvent::Moved),
        "no Moved event: {seen:?}"
    );
    ensure!(
        !seen.contains(&SessionEvent::Lost),
        "the session was lost: {seen:?}"
    );
    ensure_eq!(
        pushes(&mut events),
        (1..=last).collect::<Vec<_>>(),
        "pushes, each once, in order"
    );
    connector.disconnect().await;
    play2.stop().await;
    Ok(())
}

async fn moved_twice(t: TestCtx) -> TestResult {
    let directory = MemoryDirectory::new();
    let (play1, tcp1, _) = play("drain-b1", &directory).await?;
    let (play2, _, _) = play("drain-b2", &directory).await?;
    sees(&play1, &["drain-b2"]).await?;
    let (connector, tap, sessions) = player(tcp1, Transport::Tcp, true, t.stage_id(3), "").await?;
    let mut events = tap.subscribe();
    let first = add(&connector).await.map_err(|e| e.to_string())?;
    let (after_one, _) = add_through(&connector, first, spawn_drain(&play1, WAIT)).await?;
    // A third server joins; the second drains in turn.
    let (play3, _, _) = play("drain-b3", &directory).await?;
    sees(&play2, &["drain-b3"]).await?;
    let (last, report) = add_through(&connector, after_one, spawn_drain(&play2, WAIT)).await?;
    ensure_eq!(report.moved, 1, "stages moved the second time");
    let moves = sessions
        .lock()
        .unwrap()
        .iter()
        .filter(|e| **e == SessionEvent::Moved)
        .count();
    ensure_eq!(moves, 2, "Moved events");
    ensure_eq!(
        pushes(&mut events),
        (1..=last).collect::<Vec<_>>(),
        "pushes, each once, in order"
    );
    ensure_eq!(play3.stage_count(), 1, "stages on the third server");
    connector.disconnect().await;
    play3.stop().await;
    Ok(())
}

/// Waits for `connector`'s next request to fail as closed by the server; the code.
async fn closed_code(connector: &Connector) -> Result<ErrorCode, String> {
    tokio::time::timeout(WAIT, async {
        loop {
            match connector.request(Packet::empty("Add")).await {
                Err(ConnectorError::Closed { code }) => return Ok(code),
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(other) => return Err(format!("expected Closed, got {other}")),
            }
        }
    })
    .await
    .map_err(|_| "never closed".to_owned())?
}

async fn without_resume(t: TestCtx) -> TestResult {
    let directory = MemoryDirectory::new();
    let (play1, tcp1, _) = play("drain-c1", &directory).await?;
    let (play2, _, _) = play("drain-c2", &directory).await?;
    sees(&play1, &["drain-c2"]).await?;
    let (connector, tap, sessions) = player(tcp1, Transport::Tcp, false, t.stage_id(4), "").await?;
    let mut events = tap.subscribe();
    let mut expected = add(&connector).await.map_err(|e| e.to_string())?;
    let drain = spawn_drain(&play1, Duration::from_millis(1500));
    // It plays on over its connection to the draining server, across the move and after.
    let mut after_move = 0;
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    let played = tokio::time::timeout(WAIT, async {
        while after_move < 5 {
            pace.tick().await;
            if play2.stage_count() == 1 {
                after_move += 1;
            }
            expected += 1;
            let got = add(&connector)
                .await
                .map_err(|e| format!("Add #{expected}: {e}"))?;
            ensure_eq!(got, expected, "the stage's count across the move");
        }
        Ok(())
    })
    .await;
    played.map_err(|_| "the stage never moved".to_owned())??;
    ensure_eq!(play1.stage_count(), 0, "stages left on the drained server");
    ensure_eq!(
        pushes(&mut events),
        (1..=expected).collect::<Vec<_>>(),
        "pushes, each once, in order"
    );
    // At the drain deadline the connection closes, and the client is told why.
    ensure_eq!(
        closed_code(&connector).await?,
        ErrorCode::STAGE_DRAINED,
        "close code"
    );
    let report = drain.await.map_err(|e| e.to_string())?;
    ensure_eq!(
        (report.moved, report.relayed_at_deadline),
        (1, 1),
        "stages moved, relayed clients closed at the deadline"
    );
    let seen = sessions.lock().unwrap().clone();
    ensure!(
        !seen.contains(&SessionEvent::Moved),
        "a client without resume cannot follow: {seen:?}"
    );
    play2.stop().await;
    Ok(())
}

async fn non_movable(t: TestCtx) -> TestResult {
    let directory = MemoryDirectory::new();
    let (play1, tcp1, _) = play("drain-d1", &directory).await?;
    let (play2, _, _) = play("drain-d2", &directory).await?;
    sees(&play1, &["drain-d2"]).await?;
    let (connector, _, _) = player(tcp1, Transport::Tcp, true, t.stage_id(5), "Fixed").await?;
    add(&connector).await.map_err(|e| e.to_string())?;
    let drain = spawn_drain(&play1, Duration::from_millis(300));
    // It plays on until the deadline, then its players are told why it closed.
    ensure_eq!(
        closed_code(&connector).await?,
        ErrorCode::STAGE_DRAINED,
        "close code"
    );
    let report = drain.await.map_err(|e| e.to_string())?;
    ensure_eq!(
        (report.moved, report.closed_at_deadline),
        (0, 1),
        "moved and closed stages"
    );
    play2.stop().await;
    Ok(())
}

async fn new_stage_refused(t: TestCtx) -> TestResult {
    let directory = MemoryDirectory::new();
    let (play1, tcp1, _) = play("drain-e1", &directory).await?;
    // One stage that will not move (no other server), so the drain lasts.
    let (keeper, _, _) = player(tcp1, Transport::Tcp, false, t.stage_id(6), "Fixed").await?;
    let drain = spawn_drain(&play1, WAIT);
    let login = tokio::time::timeout(WAIT, async {
        loop {
            let attempt = player(tcp1, Transport::Tcp, false, t.stage_id(7), "").await;
            match attempt {
                Err(why) if why.contains("24") => return Ok(()),
                Err(why) => return Err(why),
                Ok((connector, _, _)) => {
                    // The drain had not begun yet: that stage will close at the deadline.
                    connector.disconnect().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    })
    .await
    .map_err(|_| "a new stage was never refused".to_owned())?;
    login?;
    keeper.disconnect().await;
    play1.stop().await;
    drop(drain);
    Ok(())
}
