//! The arena sample game end to end: its HTTP listener finds rooms (`POST /join`, through the
//! mesh), players log in over TCP with the Rust Connector, steer, see each other in the
//! snapshots pushed 20 times a second, collect coins (bots chase them), and leave.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use playhouse_connector::{Connector, ConnectorConfig, Packet};
use playhouse_examples::arena::app::{ArenaConfig, start};
use playhouse_examples::arena::bot::{Joined, join_room, play};
use playhouse_examples::arena::messages::{Snapshot, Steer, Welcome};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

fn config() -> ArenaConfig {
    ArenaConfig {
        http: "127.0.0.1:0".into(),
        tcp: "127.0.0.1:0".into(),
        ..ArenaConfig::default()
    }
}

/// A player: a connector, and the snapshots it received.
struct Player {
    connector: Connector,
    snapshots: Arc<Mutex<Vec<Snapshot>>>,
}

impl Player {
    async fn log_in(joined: &Joined, name: &str) -> Player {
        let connector = Connector::new(
            ConnectorConfig::default()
                .resume(true)
                .use_main_thread_callbacks(false),
        );
        let snapshots: Arc<Mutex<Vec<Snapshot>>> = Arc::default();
        let seen = Arc::clone(&snapshots);
        connector.on_receive(move |_, _, packet| {
            if packet.msg_id == "Snapshot" {
                seen.lock()
                    .unwrap()
                    .push(Snapshot::decode(packet.payload).unwrap());
            }
        });
        let host = joined.tcp.ip().to_string();
        connector
            .connect(&host, joined.tcp.port(), joined.room, "")
            .await
            .unwrap();
        let reply = connector
            .authenticate(Packet::new("AuthenticateRequest", name.to_owned()))
            .await
            .unwrap();
        assert_eq!(&reply.payload[..], name.as_bytes());
        Player {
            connector,
            snapshots,
        }
    }

    /// Waits for a snapshot that satisfies `check`.
    async fn sees(&self, what: &str, check: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let hit = self
                    .snapshots
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .find(|s| check(s))
                    .cloned();
                if let Some(snapshot) = hit {
                    return snapshot;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("never saw: {what}"))
    }
}

fn x_of(snapshot: &Snapshot, name: &str) -> Option<f32> {
    snapshot
        .avatars
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.x)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_players_share_a_room_see_each_other_move_and_leave() {
    let arena = start(config()).await.unwrap();
    let joined = join_room(arena.http, 1).await.unwrap();
    assert_eq!(joined.room, 1);
    assert_eq!(joined.tcp, arena.tcp);
    let ann = Player::log_in(&joined, "ann").await;
    let bob = Player::log_in(&joined, "bob").await;
    let welcome = ann.connector.request(Packet::empty("Hello")).await.unwrap();
    let welcome = Welcome::decode(welcome.payload).unwrap();
    assert_eq!((welcome.name.as_str(), welcome.width), ("ann", 800.0));

    // Both are in bob's view; ann steers right and bob sees her move.
    let before = bob.sees("ann and bob", |s| s.avatars.len() == 2).await;
    let start_x = x_of(&before, "ann").unwrap();
    let steer = Steer { dx: 1, dy: 0 };
    ann.connector.send(Packet::from_message(&steer)).unwrap();
    let moved = bob
        .sees("ann moving right", |s| {
            x_of(s, "ann").is_some_and(|x| x > start_x + 20.0 || x >= 800.0 - 16.0)
        })
        .await;
    assert!(moved.tick > before.tick);
    assert_eq!(moved.server, "arena-play-1");

    // Ann leaves: she is gone from bob's view.
    ann.connector.send(Packet::empty("Leave")).unwrap();
    bob.sees("ann gone", |s| s.avatars.iter().all(|a| a.name != "ann"))
        .await;
    bob.connector.disconnect().await;
    ann.connector.disconnect().await;
    arena.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_collect_coins_and_the_page_is_served() {
    let arena = start(config()).await.unwrap();
    let joined = join_room(arena.http, 2).await.unwrap();
    let watcher = Player::log_in(&joined, "watcher").await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let bots: Vec<_> = (1..=3)
        .map(|k| {
            let (joined, mut stopped) = (joined.clone(), stopped.clone());
            tokio::spawn(async move {
                let until = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                play(&joined, &format!("bot-{k}"), until).await
            })
        })
        .collect();
    // Chasing coins, the bots score.
    let scored = watcher
        .sees("a bot scoring", |s| {
            s.avatars
                .iter()
                .any(|a| a.name.starts_with("bot-") && a.score > 0)
        })
        .await;
    assert_eq!(scored.coins.len(), 6);
    let _ = stop.send(true);
    for bot in bots {
        let snapshots = bot.await.unwrap().unwrap();
        assert!(snapshots > 0);
    }

    // The page, over plain HTTP.
    let mut http = tokio::net::TcpStream::connect(arena.http).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: arena\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("arena"), "{page}");
    // A malformed room is refused.
    assert!(join_room(arena.http, 0).await.is_err());
    watcher.connector.disconnect().await;
    arena.stop().await;
}
