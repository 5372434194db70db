//! Draining a Play server before a deploy: no new stages or players, the stages it holds play
//! on until they end, and what is left at the deadline is closed with a code the client sees.
//! Real sockets, the real Connector, and a mesh whose directory shows the draining state.

mod support;

use std::sync::Arc;
use std::time::Duration;

use playhouse::{
    ActorCell, ApiServer, ErrorCode, MemoryDirectory, MeshJoin, Packet, PlayServer, ServerState,
    Stage, StageContext,
};
use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, SessionEvent};
use support::destroys::Destroys;
use support::player::Player;
use support::serve::{one_stage_type, start};
use tokio::sync::mpsc;

/// A room that answers `Echo` and closes itself on `End`.
struct Room {
    destroys: Arc<Destroys>,
}

impl Stage for Room {
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
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        packet: Packet,
    ) {
        if packet.msg_id == "End" {
            ctx.close_stage();
        }
        actor.link.reply(packet);
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        if packet.msg_id == "End" {
            ctx.close_stage();
        }
    }

    async fn on_destroy(&mut self, _: &mut StageContext<Self>) {
        self.destroys.stage_destroyed();
    }
}

async fn server(destroys: &Arc<Destroys>) -> (PlayServer, u16) {
    let (stages, actors) = (Arc::clone(destroys), Arc::clone(destroys));
    let builder = one_stage_type(
        "Room",
        move |_| Room {
            destroys: Arc::clone(&stages),
        },
        move |_| Player::counted_by(&actors),
    );
    let (server, addr) = start(builder).await;
    (server, addr.port())
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A connector logged in as `user` to `stage_id`, or the login's error.
async fn log_in(
    port: u16,
    stage_id: i64,
    user: &str,
    config: ConnectorConfig,
) -> (Connector, Result<(), ConnectorError>) {
    let connector = Connector::new(config.use_main_thread_callbacks(false));
    connector
        .connect("127.0.0.1", port, stage_id, "")
        .await
        .expect("connect");
    let login = connector
        .authenticate(Packet::new("AuthenticateRequest", user.to_owned()))
        .await
        .map(|_| ());
    (connector, login)
}

/// The server's `playhouse_stages_drained_total`.
fn drained_total(server: &PlayServer) -> Option<u64> {
    let metrics = server.metrics();
    let line = metrics
        .lines()
        .find(|line| line.starts_with("playhouse_stages_drained_total"))?;
    line.rsplit(' ').next()?.parse().ok()
}

fn refusal(login: Result<(), ConnectorError>) -> ErrorCode {
    match login {
        Err(ConnectorError::Server { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_admits_no_one_new_lets_stages_end_then_stops() {
    let destroys = Arc::new(Destroys::default());
    let (server, port) = server(&destroys).await;
    let (alice, login) = log_in(port, 1, "alice", ConnectorConfig::default()).await;
    login.unwrap();

    let draining = tokio::spawn({
        let server = server.clone();
        async move { server.drain(Duration::from_secs(60)).await }
    });
    within("the draining flag", async {
        while !server.control().is_draining() {
            tokio::task::yield_now().await;
        }
    })
    .await;

    // No new stage, no new player in a stage that exists.
    let (_, fresh) = log_in(port, 2, "bob", ConnectorConfig::default()).await;
    assert_eq!(refusal(fresh), ErrorCode::SERVER_DRAINING);
    let (_, newcomer) = log_in(port, 1, "carol", ConnectorConfig::default()).await;
    assert_eq!(refusal(newcomer), ErrorCode::SERVER_DRAINING);
    // A returning player gets its actor back; the stage plays on.
    let (back, again) = log_in(port, 1, "alice", ConnectorConfig::default()).await;
    again.unwrap();
    let echo = back
        .request(Packet::new("Echo", "still here"))
        .await
        .unwrap();
    assert_eq!(echo.payload, "still here");
    assert!(!draining.is_finished());

    // The stage ends by itself: the drain is over, long before its deadline.
    back.request(Packet::empty("End")).await.unwrap();
    let report = within("the drain", draining).await.unwrap();
    assert_eq!(
        (report.stages, report.ended, report.closed_at_deadline),
        (1, 1, 0)
    );
    within("the stop", server.stopped()).await;
    assert_eq!(destroys.stages(), 1);
    assert_eq!(drained_total(&server), Some(0));
    drop(alice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_left_at_the_deadline_close_and_their_clients_are_told_why() {
    let destroys = Arc::new(Destroys::default());
    let (server, port) = server(&destroys).await;
    let plain = ConnectorConfig::default();
    let (dave, login) = log_in(port, 1, "dave", plain).await;
    login.unwrap();
    // A resumable session does not try to resume a connection closed on purpose.
    let (sessions_tx, mut sessions) = mpsc::unbounded_channel();
    let resumable = ConnectorConfig::default().resume(true);
    let (erin, login) = log_in(port, 2, "erin", resumable).await;
    login.unwrap();
    erin.on_session(move |event| {
        let _ = sessions_tx.send(event);
    });

    let report = within("the drain", server.drain(Duration::from_millis(200))).await;
    assert_eq!(
        (report.stages, report.ended, report.closed_at_deadline),
        (2, 0, 2)
    );
    // Both stages and both actors ran on_destroy.
    assert_eq!((destroys.stages(), destroys.actors()), (2, 2));
    assert_eq!(drained_total(&server), Some(2));

    for connector in [&dave, &erin] {
        let after = connector.request(Packet::new("Echo", "late")).await;
        match after {
            Err(ConnectorError::Closed { code }) => assert_eq!(code, ErrorCode::STAGE_DRAINED),
            other => panic!("expected Closed(STAGE_DRAINED) for {connector:?}, got {other:?}"),
        }
        assert!(!connector.is_connected());
    }
    let error = ConnectorError::Closed {
        code: ErrorCode::STAGE_DRAINED,
    };
    assert!(error.to_string().contains("drained"), "{error}");
    let event = within("the session's end", sessions.recv()).await;
    assert!(matches!(event, Some(SessionEvent::Lost)), "{event:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_shows_a_draining_server_and_it_creates_no_stage_for_others() {
    let directory = MemoryDirectory::new();
    let join =
        || MeshJoin::memory("127.0.0.1:0", &directory).refresh_interval(Duration::from_millis(50));
    let destroys = Arc::new(Destroys::default());
    let (play, _) = server(&destroys).await;
    play.join_mesh(join()).await.unwrap();
    let api = ApiServer::builder()
        .server_id("api-1")
        .start(join())
        .await
        .unwrap();
    let sender = api.sender();
    within("the mesh", async {
        while sender
            .get_or_create_stage("play-1", "Room", 7, Packet::empty("Make"))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let draining = tokio::spawn({
        let play = play.clone();
        async move { play.drain(Duration::from_secs(60)).await }
    });
    let center = api.mesh().servers().clone();
    within("the draining state in the API server's view", async {
        while center.get("play-1").map(|info| info.state) != Some(ServerState::Draining) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The stage it holds is still there for others; a new one is refused with the code.
    let existing = sender
        .get_or_create_stage("play-1", "Room", 7, Packet::empty("Make"))
        .await
        .unwrap();
    assert!(!existing.is_created);
    let fresh = sender
        .get_or_create_stage("play-1", "Room", 8, Packet::empty("Make"))
        .await;
    assert_eq!(fresh.unwrap_err().code(), ErrorCode::SERVER_DRAINING);

    // The last stage closes: the drain is over.
    sender
        .send_to_stage("play-1", 7, Packet::empty("End"))
        .unwrap();
    let report = within("the drain", draining).await.unwrap();
    assert_eq!((report.stages, report.closed_at_deadline), (1, 0));
    api.stop().await;
}
