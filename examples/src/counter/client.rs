//! One player's session of the counter game, as a game client runs it with the Connector.

use std::time::Duration;

use playhouse::Packet;
use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, Pushes};

use super::messages::{Click, Clicked, Login, Tick};
use super::room::ROOM;

/// What one player saw.
#[derive(Debug, Default)]
pub struct Played {
    /// The counts its own clicks were answered with.
    pub replies: Vec<u64>,
    /// Clicks the room broadcast (its own and others'), as `(by, count)`.
    pub heard: Vec<(String, u64)>,
    /// Ticks heard.
    pub ticks: usize,
}

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    /// The connector failed (connecting, logging in, a request).
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// A push or reply did not decode.
    #[error(transparent)]
    Payload(#[from] playhouse::PayloadError),
    /// Nothing arrived in time.
    #[error("no {0} within the wait")]
    Timeout(&'static str),
}

/// Logs `name` into room `room_id` at `host:port`, clicks `clicks` times, waits for one
/// tick, then leaves.
pub async fn play(
    host: &str,
    port: u16,
    room_id: i64,
    name: &str,
    clicks: usize,
) -> Result<Played, PlayError> {
    let client = Connector::new(ConnectorConfig::default());
    client.connect(host, port, room_id, ROOM).await?;
    let mut pushes = client.pushes();
    client
        .authenticate_message(&Login { name: name.into() })
        .await?;
    let mut played = Played::default();
    for _ in 0..clicks {
        let reply = client.request(Packet::from_message(&Click {})).await?;
        played.replies.push(reply.decode::<Clicked>()?.count);
    }
    // Every push up to the first tick after this player's last click.
    loop {
        let push = next(&mut pushes).await?;
        match &*push.msg_id {
            "Clicked" => {
                let clicked: Clicked = push.decode()?;
                played.heard.push((clicked.by, clicked.count));
            }
            "Tick" => {
                push.decode::<Tick>()?;
                played.ticks += 1;
                break;
            }
            _ => {}
        }
    }
    client.request(Packet::empty("Leave")).await?;
    client.disconnect().await;
    Ok(played)
}

async fn next(pushes: &mut Pushes) -> Result<Packet, PlayError> {
    match tokio::time::timeout(Duration::from_secs(5), pushes.recv()).await {
        Ok(Some(push)) => Ok(push.packet),
        _ => Err(PlayError::Timeout("push")),
    }
}
