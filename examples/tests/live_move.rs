//! A deploy no player notices, in real processes: two `play-node`s and an `api-node` meet
//! through a real Redis over the ZeroMQ mesh; 200 resumable Connector clients play in 20
//! `TallyRoom`s created on play-1 through the API node's HTTP. SIGTERM to play-1: it drains,
//! every room moves live to play-2 with its players, and play-1 exits before its deadline.
//! No client saw a disconnect, every request was answered once and every one-way message
//! pushed back once, each room's tally went on without a gap or a repeat, and every client
//! ends up connected to play-2.
//!
//! Needs a Redis server: `bash ci/redis.sh` starts one (the test command runs it).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nodes::{WAIT, create_stage, fresh_prefix, start, start_with};
use playhouse_connector::{Connector, ConnectorConfig, Packet, SessionEvent};
use tokio::time::MissedTickBehavior;

const STAGES: i64 = 20;
const PLAYERS_PER_STAGE: usize = 10;
/// How long play-1's drain may take (its deadline); it must exit in half of it: stages that
/// did not move would be closed at the deadline.
const DRAIN_SECS: u64 = 20;
/// Each player sends one `Bump` and one `Add` this often (100 messages a second: half the
/// server's per-connection rate limit), so that many requests are in flight as rooms move.
const ROUND: Duration = Duration::from_millis(20);
/// Rounds every player plays before the SIGTERM, and again after play-1 has exited.
const ROUNDS_AROUND: u64 = 5;

/// One client and what it saw.
struct Player {
    stage_id: i64,
    connector: Connector,
    /// `(room tally, player tally)` of every reply and push, in the order they arrived.
    tallies: Arc<Mutex<Vec<(u64, u64)>>>,
    /// What happened to its resumable session.
    events: Arc<Mutex<Vec<SessionEvent>>>,
    /// `on_disconnect` calls.
    disconnects: Arc<AtomicUsize>,
    /// Rounds played (a `Bump` sent and an `Add` answered).
    rounds: AtomicU64,
    /// `Add`s sent to play-1 and answered by play-2: in flight across the move.
    across: AtomicU64,
    /// Why it stopped playing before it was told to.
    failure: Mutex<Option<String>>,
}

/// `"<room> <player>"`, as `TallyRoom` answers.
fn tallies_of(packet: &Packet) -> (u64, u64) {
    let text = String::from_utf8_lossy(&packet.payload);
    let (room, player) = text.split_once(' ').expect("two tallies");
    (room.parse().unwrap(), player.parse().unwrap())
}

/// A resumable client logged in as `user` to `TallyRoom` `stage_id` on play-1 at `tcp`.
async fn log_in(tcp: &str, stage_id: i64, user: String) -> Player {
    let config = ConnectorConfig::default()
        .resume(true)
        .use_main_thread_callbacks(false);
    let connector = Connector::new(config);
    let tallies = Arc::new(Mutex::new(Vec::new()));
    let events = Arc::new(Mutex::new(Vec::new()));
    let disconnects = Arc::new(AtomicUsize::new(0));
    connector.on_receive({
        let tallies = Arc::clone(&tallies);
        move |_, _, packet| tallies.lock().unwrap().push(tallies_of(&packet))
    });
    connector.on_session({
        let events = Arc::clone(&events);
        move |event| events.lock().unwrap().push(event)
    });
    connector.on_disconnect({
        let disconnects = Arc::clone(&disconnects);
        move || {
            disconnects.fetch_add(1, Ordering::SeqCst);
        }
    });
    let (host, port) = tcp.rsplit_once(':').unwrap();
    connector
        .connect(host, port.parse().unwrap(), stage_id, "TallyRoom")
        .await
        .unwrap();
    connector
        .authenticate(Packet::new("AuthenticateRequest", user))
        .await
        .unwrap();
    Player {
        stage_id,
        connector,
        tallies,
        events,
        disconnects,
        rounds: AtomicU64::new(0),
        across: AtomicU64::new(0),
        failure: Mutex::new(None),
    }
}

/// Plays rounds (a one-way `Bump`, then an `Add` request) until `stop`; the messages sent.
/// The `Bump`'s push arrives before the `Add`'s reply (one ordered stream), so the recorded
/// tallies stay in the order the room applied them.
async fn play(player: Arc<Player>, stop: Arc<AtomicBool>) -> Result<u64, String> {
    let played = play_rounds(&player, &stop).await;
    if let Err(error) = &played {
        *player.failure.lock().unwrap() = Some(error.clone());
    }
    played
}

async fn play_rounds(player: &Player, stop: &AtomicBool) -> Result<u64, String> {
    let mut sent = 0;
    let mut tick = tokio::time::interval(ROUND);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        player
            .connector
            .send(Packet::empty("Bump"))
            .map_err(|e| format!("Bump {sent}: {e}"))?;
        sent += 1;
        let before = player.connector.endpoint();
        let reply = player
            .connector
            .request(Packet::empty("Add"))
            .await
            .map_err(|e| format!("Add {sent}: {e}"))?;
        sent += 1;
        if player.connector.endpoint() != before {
            player.across.fetch_add(1, Ordering::SeqCst);
        }
        player.tallies.lock().unwrap().push(tallies_of(&reply));
        player.rounds.fetch_add(1, Ordering::SeqCst);
    }
    Ok(sent)
}

/// Waits until every player has played at least `floor(player)` rounds.
async fn until_rounds(players: &[Arc<Player>], floor: impl Fn(usize) -> u64) {
    let started = Instant::now();
    while players
        .iter()
        .enumerate()
        .any(|(i, p)| p.rounds.load(Ordering::SeqCst) < floor(i))
    {
        if let Some(failure) = players
            .iter()
            .find_map(|p| p.failure.lock().unwrap().clone())
        {
            panic!("a player stopped: {failure}");
        }
        assert!(started.elapsed() < WAIT, "the players stopped playing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_play_node_moves_200_playing_clients_without_one_noticing() {
    let prefix = fresh_prefix();
    let play_bin = env!("CARGO_BIN_EXE_play-node");
    let drain = DRAIN_SECS.to_string();
    let mut play1 = start_with(
        play_bin,
        "play-1",
        &prefix,
        &[("PLAYHOUSE_DRAIN_SECS", &drain)],
    );
    let play2 = start(play_bin, "play-2", &prefix);
    let api = start(env!("CARGO_BIN_EXE_api-node"), "api-1", &prefix);
    let http = api.endpoint("http");
    let (tcp1, tcp2) = (play1.endpoint("tcp"), play2.endpoint("tcp"));
    for stage_id in 1..=STAGES {
        let created = create_stage(&http, "TallyRoom", stage_id).await;
        assert_eq!(created["stage_id"], stage_id);
    }

    let mut logins = Vec::new();
    for stage_id in 1..=STAGES {
        for k in 0..PLAYERS_PER_STAGE {
            let tcp = tcp1.clone();
            logins.push(tokio::spawn(async move {
                log_in(&tcp, stage_id, format!("p{stage_id}-{k}")).await
            }));
        }
    }
    let mut players = Vec::new();
    for login in logins {
        players.push(Arc::new(login.await.unwrap()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let games: Vec<_> = players
        .iter()
        .map(|player| tokio::spawn(play(Arc::clone(player), Arc::clone(&stop))))
        .collect();
    until_rounds(&players, |_| ROUNDS_AROUND).await;

    // The deploy: play-1 drains while everyone plays, and exits once its rooms have moved.
    let terminated = Instant::now();
    play1.terminate();
    let status = play1.exits(Duration::from_secs(DRAIN_SECS / 2)).await;
    let drained_in = terminated.elapsed();
    assert!(status.success(), "{status}");
    // Play on against play-2 alone, then stop.
    let played: Vec<u64> = players
        .iter()
        .map(|p| p.rounds.load(Ordering::SeqCst))
        .collect();
    until_rounds(&players, |i| played[i] + ROUNDS_AROUND).await;
    stop.store(true, Ordering::SeqCst);

    let mut sent_to_stage: BTreeMap<i64, u64> = BTreeMap::new();
    let mut room_tallies: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for (player, game) in players.iter().zip(games) {
        let sent = game
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a player: {e}"));
        *sent_to_stage.entry(player.stage_id).or_default() += sent;
        let tallies = player.tallies.lock().unwrap().clone();
        // One answer per message, in order: nothing lost, nothing repeated, and the player's
        // own state carried across the move.
        let own: Vec<u64> = tallies.iter().map(|t| t.1).collect();
        assert_eq!(
            own,
            (1..=sent).collect::<Vec<_>>(),
            "player of {}",
            player.stage_id
        );
        room_tallies
            .entry(player.stage_id)
            .or_default()
            .extend(tallies.iter().map(|t| t.0));
        let events = player.events.lock().unwrap().clone();
        assert!(!events.contains(&SessionEvent::Lost), "{events:?}");
        let moves = events.iter().filter(|e| **e == SessionEvent::Moved).count();
        assert_eq!(moves, 1, "{events:?}");
        assert_eq!(player.disconnects.load(Ordering::SeqCst), 0);
        assert_eq!(player.connector.endpoint().as_deref(), Some(tcp2.as_str()));
    }
    // Each room's tally went up by exactly one per message, across the move.
    for (stage_id, mut tallies) in room_tallies {
        tallies.sort_unstable();
        let total = sent_to_stage[&stage_id];
        assert_eq!(tallies, (1..=total).collect::<Vec<_>>(), "room {stage_id}");
    }
    // Some requests were in flight as their room moved (sent before the client followed the
    // move, answered after): the move happened mid-play, not between rounds only.
    let across: u64 = players
        .iter()
        .map(|p| p.across.load(Ordering::SeqCst))
        .sum();
    assert!(across > 0, "no request was in flight across a move");
    eprintln!(
        "play-1 drained 200 playing clients in {drained_in:?}; {across} requests in flight across the move"
    );
    for player in &players {
        player.connector.disconnect().await;
    }
}
