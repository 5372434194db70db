//! Moving live stages (issue 27): a movable stage with a configurable amount of state, Play
//! servers in one process joined over a real mesh link on loopback, and clients (the real
//! Connector, resumable) that notice when their stage has moved.
//!
//! The stage ([`MoveRoom`]) counts requests and how many times it has moved; every reply
//! carries both (`"<count> <moves>"`), so a client knows the first reply it gets from the new
//! server. The [`Recorder`] (a server service) notes when each stage's snapshot was taken on
//! the source and when it ran again on the target.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use playhouse::testing::EchoActor;
use playhouse::{
    Actor, ActorCell, ActorInit, ActorLink, ErrorCode, ErrorReply, MemoryDirectory, MeshJoin,
    MovableActor, MovableStage, Packet, PlayServer, ServerInfoCenter, Stage, StageContext,
    StageInit,
};
use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, SessionEvent};
use tokio::time::{Instant, MissedTickBehavior};

/// The stage type's name.
pub const ROOM: &str = "MoveRoom";

/// When each stage's move started and ended, keyed by `(stage id, moves before)`.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The snapshot was taken on the source (`MovableStage::save`).
    saved: Mutex<HashMap<(i64, u64), Instant>>,
    /// The stage ran on the target (`MovableStage::on_moved`).
    moved_in: Mutex<HashMap<(i64, u64), Instant>>,
}

impl Recorder {
    /// When stage `stage_id`'s snapshot was taken before its move number `moves + 1`.
    pub fn saved(&self, stage_id: i64, moves: u64) -> Option<Instant> {
        lock(&self.saved).get(&(stage_id, moves)).copied()
    }

    /// When the last stage of a move numbered `moves + 1` ran on its target.
    pub fn last_moved_in(&self, moves: u64) -> Option<Instant> {
        lock(&self.moved_in)
            .iter()
            .filter(|((_, m), _)| *m == moves)
            .map(|(_, at)| *at)
            .max()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A movable stage holding `state` bytes (one changes with every request), a request count
/// and how many times it has moved.
#[derive(Debug)]
pub struct MoveRoom {
    stage_id: i64,
    count: u64,
    moves: u64,
    state: Vec<u8>,
    recorder: Arc<Recorder>,
}

impl MoveRoom {
    /// A new room with `state_bytes` of state.
    pub fn new(init: &StageInit<'_>, state_bytes: usize) -> MoveRoom {
        MoveRoom {
            stage_id: init.stage_id,
            count: 0,
            moves: 0,
            state: vec![7; state_bytes],
            recorder: init.services.get::<Recorder>().unwrap_or_default(),
        }
    }
}

impl Stage for MoveRoom {
    type Actor = Mover;

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
        actor: &mut ActorCell<Mover>,
        _: Packet,
    ) {
        self.count += 1;
        if !self.state.is_empty() {
            let at = (self.count as usize) % self.state.len();
            self.state[at] = self.state[at].wrapping_add(1);
        }
        let text = format!("{} {}", self.count, self.moves);
        actor.link.reply(Packet::new("Count", text));
    }
}

impl MovableStage for MoveRoom {
    fn save(&self) -> Bytes {
        lock(&self.recorder.saved).insert((self.stage_id, self.moves), Instant::now());
        let mut out = BytesMut::with_capacity(16 + self.state.len());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.moves.to_le_bytes());
        out.extend_from_slice(&self.state);
        out.freeze()
    }

    fn restore(init: &StageInit<'_>, saved: Bytes) -> Result<Self, ErrorCode> {
        if saved.len() < 16 {
            return Err(ErrorCode::INVALID_MESSAGE);
        }
        let word = |at: usize| {
            let bytes: [u8; 8] = saved[at..at + 8].try_into().unwrap_or_default();
            u64::from_le_bytes(bytes)
        };
        Ok(MoveRoom {
            stage_id: init.stage_id,
            count: word(0),
            moves: word(8),
            state: saved[16..].to_vec(),
            recorder: init.services.get::<Recorder>().unwrap_or_default(),
        })
    }

    async fn on_moved(&mut self, _: &mut StageContext<Self>) {
        lock(&self.recorder.moved_in).insert((self.stage_id, self.moves), Instant::now());
        self.moves += 1;
    }
}

/// A player of [`MoveRoom`] (no state of its own); the authenticate payload is its account.
#[derive(Debug)]
pub struct Mover;

impl Actor for Mover {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        EchoActor.on_authenticate(link, packet).await
    }
}

impl MovableActor for Mover {
    fn save(&self) -> Bytes {
        Bytes::new()
    }

    fn restore(_: &ActorInit<'_>, _: Bytes) -> Result<Self, ErrorCode> {
        Ok(Mover)
    }
}

/// Which mesh link the servers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Link {
    /// ZeroMQ ROUTER sockets (`MeshJoin::zmq`, the default link).
    Zmq,
    /// Length-delimited TCP (`MeshJoin::tcp`).
    Tcp,
}

/// A Play server `id` of service `service` hosting [`MoveRoom`]s of `state_bytes` (created
/// by the first login), limits off for load, joined to `directory` over `link`, serving TCP
/// clients; returns it and its TCP port.
pub async fn play_server(
    id: &str,
    service: u16,
    link: Link,
    directory: &MemoryDirectory,
    recorder: &Arc<Recorder>,
    state_bytes: usize,
) -> (PlayServer, u16) {
    let server = PlayServer::builder()
        .server_id(id)
        .service(Arc::clone(recorder))
        .movable_stage(
            ROOM,
            move |init| MoveRoom::new(init, state_bytes),
            |_| Mover,
        )
        .default_stage_type(ROOM)
        .configure(|c| {
            c.max_connections = 100_000;
            c.rate_limit = None;
            c.max_stages_per_source = None;
            c.stage_creation_rate = None;
            c.stage_creation_rate_per_source = None;
        })
        .build()
        .expect("valid configuration");
    let tcp = server.listen_tcp("127.0.0.1:0").await.expect("listen");
    let join = match link {
        Link::Zmq => MeshJoin::zmq("127.0.0.1:0", directory.clone()),
        Link::Tcp => MeshJoin::tcp("127.0.0.1:0", directory.clone()),
    };
    let join = join
        .service_id(service)
        .refresh_interval(Duration::from_millis(100));
    server.join_mesh(join).await.expect("join the mesh");
    (server, tcp.port())
}

/// Waits until `server` sees every server of `others` in its directory view.
pub async fn until_sees(server: &PlayServer, others: &[&str]) {
    let center = server.services().get::<ServerInfoCenter>().expect("joined");
    while others.iter().any(|id| center.get(id).is_none()) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One client's view of a move: its last reply from the old server and its first from the
/// new one.
#[derive(Clone, Copy, Debug)]
pub struct Switch {
    /// How many times the stage had moved before this move.
    pub moves_before: u64,
    /// The last reply carrying `moves_before`.
    pub last_old: Instant,
    /// The first reply carrying a higher move count.
    pub first_new: Instant,
}

/// A resumable client playing in one stage.
#[derive(Debug)]
pub struct Player {
    /// Its stage.
    pub stage_id: i64,
    connector: Connector,
    /// The stage's move count in the last reply.
    moves_seen: AtomicU64,
    /// Requests answered.
    answered: AtomicU64,
    switches: Mutex<Vec<Switch>>,
    /// When the connector reported each move followed ([`SessionEvent::Moved`]: the session
    /// resumed on the new server).
    resumed: Arc<Mutex<Vec<Instant>>>,
    /// Why it stopped before it was told to.
    failure: Mutex<Option<ConnectorError>>,
}

impl Player {
    /// Connects and logs in to `stage_id` on the server at `127.0.0.1:port` (the login
    /// creates the stage if needed).
    pub async fn join(port: u16, stage_id: i64, account: String) -> Player {
        let config = ConnectorConfig::default()
            .resume(true)
            .use_main_thread_callbacks(false);
        let connector = Connector::new(config);
        let resumed = Arc::new(Mutex::new(Vec::new()));
        connector.on_session({
            let resumed = Arc::clone(&resumed);
            move |event| {
                if event == SessionEvent::Moved {
                    lock(&resumed).push(Instant::now());
                }
            }
        });
        connector
            .connect("127.0.0.1", port, stage_id, ROOM)
            .await
            .expect("connect");
        connector
            .authenticate(Packet::new("AuthenticateRequest", account))
            .await
            .expect("authenticate");
        Player {
            stage_id,
            connector,
            moves_seen: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            switches: Mutex::new(Vec::new()),
            resumed,
            failure: Mutex::new(None),
        }
    }

    /// Issues requests until `stop`: back to back, or `rate` a second.
    pub async fn play(&self, stop: &AtomicBool, rate: Option<f64>) {
        let mut tick = rate.map(|rate| {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tick
        });
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if let Some(tick) = &mut tick {
                tick.tick().await;
            }
            let reply = match self.connector.request(Packet::empty("Add")).await {
                Ok(reply) => reply,
                Err(error) => {
                    *lock(&self.failure) = Some(error);
                    return;
                }
            };
            let now = Instant::now();
            let text = String::from_utf8_lossy(&reply.payload);
            let moves: u64 = text
                .split_once(' ')
                .and_then(|(_, m)| m.parse().ok())
                .unwrap_or(0);
            let before = self.moves_seen.swap(moves, Ordering::Relaxed);
            if moves > before {
                lock(&self.switches).push(Switch {
                    moves_before: before,
                    last_old: last,
                    first_new: now,
                });
            }
            last = now;
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The stage's move count in the last reply.
    pub fn moves_seen(&self) -> u64 {
        self.moves_seen.load(Ordering::Relaxed)
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// The moves it has seen.
    pub fn switches(&self) -> Vec<Switch> {
        lock(&self.switches).clone()
    }

    /// When its session resumed on the server its stage moved to, for each move followed.
    pub fn resumed(&self) -> Vec<Instant> {
        lock(&self.resumed).clone()
    }

    /// Why it stopped playing, if it did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).as_ref().map(ToString::to_string)
    }

    /// Where it is connected now.
    pub fn endpoint(&self) -> Option<String> {
        self.connector.endpoint()
    }

    /// Ends the session.
    pub async fn leave(&self) {
        self.connector.disconnect().await;
    }
}

/// `stages` × `per_stage` players on the server at `port`, stage ids from `first_stage`,
/// each playing on its own task until `stop`.
pub async fn players(
    port: u16,
    first_stage: i64,
    stages: usize,
    per_stage: usize,
    stop: &Arc<AtomicBool>,
    rate: Option<f64>,
) -> Vec<Arc<Player>> {
    let seats: Vec<(i64, usize)> = (0..stages)
        .flat_map(|s| (0..per_stage).map(move |k| (first_stage + s as i64, k)))
        .collect();
    let mut players = Vec::with_capacity(seats.len());
    // Logins in waves of 100: a thousand connects at once overflow the listener's backlog.
    for wave in seats.chunks(100) {
        let joins: Vec<_> = wave
            .iter()
            .map(|&(stage_id, k)| {
                tokio::spawn(Player::join(port, stage_id, format!("p{stage_id}-{k}")))
            })
            .collect();
        for join in joins {
            let player = Arc::new(join.await.expect("a player joined"));
            let (playing, stop) = (Arc::clone(&player), Arc::clone(stop));
            tokio::spawn(async move { playing.play(&stop, rate).await });
            players.push(player);
        }
    }
    players
}

/// Waits until every player has seen `moves` moves of its stage (or one failed: its error).
pub async fn until_moved(players: &[Arc<Player>], moves: u64) -> Result<(), String> {
    loop {
        if let Some(failure) = players.iter().find_map(|p| p.failure()) {
            return Err(failure);
        }
        if players.iter().all(|p| p.moves_seen() >= moves) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The `q` quantile (0..=1) of `samples` (sorted here), nearest rank.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// `{"p50": .., "p99": .., "max": .., "n": ..}` in milliseconds, rounded to 0.01.
pub fn summary(samples: &mut [f64]) -> serde_json::Value {
    let round = |x: f64| (x * 100.0).round() / 100.0;
    serde_json::json!({
        "p50_ms": round(quantile(samples, 0.50)),
        "p99_ms": round(quantile(samples, 0.99)),
        "max_ms": round(quantile(samples, 1.0)),
        "n": samples.len(),
    })
}
