//! Arena bots: each asks the arena's HTTP listener for a room (`POST /join`), logs in over
//! TCP with a resumable Rust Connector, and chases the coin nearest to it, steering as the
//! snapshots come in (20 a second).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use playhouse_connector::{Connector, ConnectorConfig, Packet};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::messages::{Snapshot, Steer};
use super::room::unix_micros;
use super::world::RADIUS;

/// What `POST /join` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// The room's stage id.
    pub room: i64,
    /// The Play server's TCP address.
    pub tcp: SocketAddr,
}

/// Asks the arena at `http` for room `room` (a tiny HTTP/1.1 client: the bots need nothing
/// more).
pub async fn join_room(http: SocketAddr, room: i64) -> Result<Joined, String> {
    let mut stream = tokio::net::TcpStream::connect(http)
        .await
        .map_err(|e| format!("connect {http}: {e}"))?;
    let request = format!(
        "POST /join?room={room} HTTP/1.1\r\nHost: {http}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("a malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("join refused: {head} {body}"));
    }
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let room = value["room"].as_i64().ok_or("no room")?;
    let tcp = value["tcp"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or("no tcp address")?;
    Ok(Joined { room, tcp })
}

/// One bot, logged in to `joined.room` as `name`: steers towards the nearest coin until
/// `stop` resolves, then leaves. How many snapshots it saw.
pub async fn play(
    joined: &Joined,
    name: &str,
    stop: impl std::future::Future<Output = ()>,
) -> Result<u64, String> {
    play_measured(joined, name, stop, None).await
}

/// [`play`], adding each snapshot's push latency (microseconds from the server's send to this
/// callback, by the wall clock: meaningful on one machine) to `latencies`.
pub async fn play_measured(
    joined: &Joined,
    name: &str,
    stop: impl std::future::Future<Output = ()>,
    latencies: Option<Arc<Mutex<Vec<u64>>>>,
) -> Result<u64, String> {
    let config = ConnectorConfig::default()
        .resume(true)
        .use_main_thread_callbacks(false);
    let connector = Connector::new(config);
    let latest: Arc<Mutex<Option<Snapshot>>> = Arc::default();
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (latest, seen) = (Arc::clone(&latest), Arc::clone(&seen));
        connector.on_receive(move |_, _, packet| {
            if packet.msg_id == "Snapshot"
                && let Ok(snapshot) = Snapshot::decode(packet.payload)
            {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(latencies) = &latencies {
                    let latency = unix_micros().saturating_sub(snapshot.sent_at_us);
                    latencies
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(latency);
                }
                *latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(snapshot);
            }
        });
    }
    let (host, port) = (joined.tcp.ip().to_string(), joined.tcp.port());
    connector
        .connect(&host, port, joined.room, "")
        .await
        .map_err(|e| format!("{name}: connect: {e}"))?;
    connector
        .authenticate(Packet::new("AuthenticateRequest", name.to_owned()))
        .await
        .map_err(|e| format!("{name}: login: {e}"))?;
    let steering = async {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        let mut last = (0, 0);
        loop {
            every.tick().await;
            let snapshot = latest.lock().unwrap_or_else(PoisonError::into_inner).take();
            let Some(snapshot) = snapshot else { continue };
            let steer = towards_coin(&snapshot, name);
            if steer != last {
                last = steer;
                let message = Steer {
                    dx: steer.0,
                    dy: steer.1,
                };
                let _ = connector.send(Packet::from_message(&message));
            }
        }
    };
    tokio::select! {
        () = steering => {}
        () = stop => {}
    }
    connector.disconnect().await;
    Ok(seen.load(std::sync::atomic::Ordering::Relaxed))
}

/// The steering (each axis -1, 0 or 1) from `name`'s avatar towards the nearest coin.
pub fn towards_coin(snapshot: &Snapshot, name: &str) -> (i32, i32) {
    let Some(me) = snapshot.avatars.iter().find(|a| a.name == name) else {
        return (0, 0);
    };
    let nearest = snapshot.coins.iter().min_by(|a, b| {
        let da = (a.x - me.x).powi(2) + (a.y - me.y).powi(2);
        let db = (b.x - me.x).powi(2) + (b.y - me.y).powi(2);
        da.total_cmp(&db)
    });
    let Some(coin) = nearest else { return (0, 0) };
    let axis = |d: f32| {
        if d > RADIUS / 4.0 {
            1
        } else if d < -RADIUS / 4.0 {
            -1
        } else {
            0
        }
    };
    (axis(coin.x - me.x), axis(coin.y - me.y))
}

#[cfg(test)]
mod tests {
    use super::super::messages::{Avatar, Coin};
    use super::*;

    #[test]
    fn a_bot_steers_towards_the_nearest_coin() {
        let snapshot = Snapshot {
            avatars: vec![Avatar {
                name: "bot".into(),
                x: 100.0,
                y: 100.0,
                ..Avatar::default()
            }],
            coins: vec![
                Coin {
                    id: 1,
                    x: 500.0,
                    y: 500.0,
                },
                Coin {
                    id: 2,
                    x: 50.0,
                    y: 101.0,
                },
            ],
            ..Snapshot::default()
        };
        assert_eq!(towards_coin(&snapshot, "bot"), (-1, 0));
        assert_eq!(towards_coin(&snapshot, "nobody"), (0, 0));
    }
}
