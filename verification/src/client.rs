//! Client-side helpers for verifiers: connector events as a stream to await with a deadline,
//! typed requests, and a frame loop that drains the connector's callback queue.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use playhouse::{ErrorCode, Packet};
use playhouse_connector::{Connector, ConnectorConfig, ConnectorError};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::proto::{AuthenticateReply, AuthenticateRequest};
use crate::servers::TEST_STAGE;

/// How long a verifier waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// One event a connector reported through its `on_*` handlers.
#[derive(Clone, Debug)]
pub enum ClientEvent {
    /// `on_connect(ok)`.
    Connect(bool),
    /// `on_disconnect()`.
    Disconnect,
    /// `on_receive(stage_id, stage_type, packet)`: a push.
    Push {
        /// The stage the push came from.
        stage_id: i64,
        /// The connector's stage type.
        stage_type: String,
        /// The pushed message.
        packet: Packet,
    },
    /// `on_error(stage_id, stage_type, code, request)`.
    Error {
        /// The connector's stage.
        stage_id: i64,
        /// Why the request or send failed.
        code: ErrorCode,
        /// The request that failed.
        request: Packet,
    },
}

/// Installs handlers on a connector that publish every event, so any number of verifiers can
/// [`subscribe`](EventTap::subscribe) and await events instead of sleeping.
#[derive(Clone, Debug)]
pub struct EventTap {
    tx: broadcast::Sender<ClientEvent>,
}

impl EventTap {
    /// Replaces `connector`'s `on_connect`, `on_disconnect`, `on_receive` and `on_error`
    /// handlers with ones that publish to this tap.
    pub fn attach(connector: &Connector) -> EventTap {
        let (tx, _) = broadcast::channel(8192);
        let publish = tx.clone();
        connector.on_connect(move |ok| {
            let _ = publish.send(ClientEvent::Connect(ok));
        });
        let publish = tx.clone();
        connector.on_disconnect(move || {
            let _ = publish.send(ClientEvent::Disconnect);
        });
        let publish = tx.clone();
        connector.on_receive(move |stage_id, stage_type, packet| {
            let _ = publish.send(ClientEvent::Push {
                stage_id,
                stage_type: stage_type.to_owned(),
                packet,
            });
        });
        let publish = tx.clone();
        connector.on_error(move |stage_id, _stage_type, code, request| {
            let _ = publish.send(ClientEvent::Error {
                stage_id,
                code,
                request,
            });
        });
        EventTap { tx }
    }

    /// Events published from now on.
    pub fn subscribe(&self) -> Events {
        Events {
            rx: self.tx.subscribe(),
        }
    }
}

/// A subscriber's view of a connector's events.
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<ClientEvent>,
}

impl Events {
    /// The next event already published, if any (a lagging receiver skips what it missed).
    pub fn try_next(&mut self) -> Option<ClientEvent> {
        loop {
            match self.rx.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    }

    /// The next event, waiting at most `within`.
    pub async fn next(&mut self, within: Duration) -> Result<ClientEvent, String> {
        self.next_until(Instant::now() + within)
            .await?
            .ok_or_else(|| format!("no connector event within {within:?}"))
    }

    async fn next_until(&mut self, deadline: Instant) -> Result<Option<ClientEvent>, String> {
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Err(_) => Ok(None),
            Ok(Ok(event)) => Ok(Some(event)),
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                Err(format!("event subscriber lagged; {n} events lost"))
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                // Every sender is gone: nothing more can arrive.
                tokio::time::sleep_until(deadline).await;
                Ok(None)
            }
        }
    }

    /// The events published so far and not yet read, without waiting.
    pub fn drain_now(&mut self) -> Vec<ClientEvent> {
        let mut events = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            events.push(event);
        }
        events
    }

    /// Skips events until `pick` accepts one, waiting at most `within` in all.
    pub async fn wait_for<T>(
        &mut self,
        within: Duration,
        what: &str,
        mut pick: impl FnMut(ClientEvent) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + within;
        while let Some(event) = self.next_until(deadline).await? {
            if let Some(found) = pick(event) {
                return Ok(found);
            }
        }
        Err(format!("no {what} within {within:?}"))
    }

    /// The next push of message type `M`, parsed (other events are skipped).
    pub async fn push<M>(&mut self, within: Duration) -> Result<M, String>
    where
        M: prost::Message + prost::Name + Default,
    {
        let packet = self
            .wait_for(within, &format!("{} push", M::NAME), |event| match event {
                ClientEvent::Push { packet, .. } if packet.is::<M>() => Some(packet),
                _ => None,
            })
            .await?;
        parse::<M>(&packet)
    }

    /// The next push of type `M` that `accept` takes (other events are skipped).
    pub async fn push_where<M>(
        &mut self,
        within: Duration,
        mut accept: impl FnMut(&M) -> bool,
    ) -> Result<M, String>
    where
        M: prost::Message + prost::Name + Default,
    {
        self.wait_for(
            within,
            &format!("matching {} push", M::NAME),
            |event| match event {
                ClientEvent::Push { packet, .. } if packet.is::<M>() => {
                    packet.parse::<M>().ok().filter(|message| accept(message))
                }
                _ => None,
            },
        )
        .await
    }

    /// The next `count` pushes of type `M`, in arrival order.
    pub async fn pushes<M>(&mut self, count: usize, within: Duration) -> Result<Vec<M>, String>
    where
        M: prost::Message + prost::Name + Default,
    {
        let deadline = Instant::now() + within;
        let mut found = Vec::with_capacity(count);
        while found.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = self.push::<M>(left).await.map_err(|_| {
                format!(
                    "only {} of {count} {} pushes within {within:?}",
                    found.len(),
                    M::NAME
                )
            })?;
            found.push(next);
        }
        Ok(found)
    }

    /// Every push of type `M` that arrives within `window` (a bounded wait used to prove that
    /// something does *not* happen).
    pub async fn collect_pushes<M>(&mut self, window: Duration) -> Result<Vec<M>, String>
    where
        M: prost::Message + prost::Name + Default,
    {
        let deadline = Instant::now() + window;
        let mut found = Vec::new();
        while let Some(event) = self.next_until(deadline).await? {
            if let ClientEvent::Push { packet, .. } = event
                && packet.is::<M>()
            {
                found.push(parse::<M>(&packet)?);
            }
        }
        Ok(found)
    }

    /// Waits for `on_disconnect`.
    pub async fn disconnect(&mut self, within: Duration) -> Result<(), String> {
        self.wait_for(within, "on_disconnect", |event| {
            matches!(event, ClientEvent::Disconnect).then_some(())
        })
        .await
    }

    /// Waits for `on_connect` and returns its flag.
    pub async fn connect(&mut self, within: Duration) -> Result<bool, String> {
        self.wait_for(within, "on_connect", |event| match event {
            ClientEvent::Connect(ok) => Some(ok),
            _ => None,
        })
        .await
    }
}

/// Parses a packet as `M`, checking its message id first.
pub fn parse<M>(packet: &Packet) -> Result<M, String>
where
    M: prost::Message + prost::Name + Default,
{
    if !packet.is::<M>() {
        return Err(format!(
            "expected a {} packet, got {:?}",
            M::NAME,
            packet.msg_id
        ));
    }
    packet
        .parse::<M>()
        .map_err(|error| format!("{} does not parse: {error}", M::NAME))
}

/// Describes a connector error with its wire code, for test failure messages.
pub fn describe(error: &ConnectorError) -> String {
    format!("{error} (code {})", error.code())
}

/// Sends `request` and parses the reply as `R`.
pub async fn request<Q, R>(connector: &Connector, request: &Q) -> Result<R, String>
where
    Q: prost::Message + prost::Name,
    R: prost::Message + prost::Name + Default,
{
    let reply = connector
        .request(Packet::from_message(request))
        .await
        .map_err(|error| format!("{} failed: {}", Q::NAME, describe(&error)))?;
    parse::<R>(&reply)
}

/// Sends `request`, expecting it to fail with error code `code`.
pub async fn request_fails<Q>(
    connector: &Connector,
    request: &Q,
    code: ErrorCode,
) -> Result<(), String>
where
    Q: prost::Message + prost::Name,
{
    match connector.request(Packet::from_message(request)).await {
        Ok(reply) => Err(format!(
            "{} succeeded with {:?}; expected error {code}",
            Q::NAME,
            reply.msg_id
        )),
        Err(error) if error.code() == code => Ok(()),
        Err(error) => Err(format!(
            "{} failed with {}; expected error {code}",
            Q::NAME,
            describe(&error)
        )),
    }
}

/// The authenticate request for `user_id`.
pub fn auth_packet(user_id: &str) -> Packet {
    Packet::from_message(&AuthenticateRequest {
        user_id: user_id.to_owned(),
        token: format!("token-{user_id}"),
    })
}

/// Authenticates as `user_id` and checks the reply's basics.
pub async fn authenticate(
    connector: &Connector,
    user_id: &str,
) -> Result<AuthenticateReply, String> {
    let reply = connector
        .authenticate(auth_packet(user_id))
        .await
        .map_err(|error| format!("authenticate as {user_id:?} failed: {}", describe(&error)))?;
    let reply = parse::<AuthenticateReply>(&reply)?;
    crate::ensure!(reply.success, "AuthenticateReply.success is false");
    crate::ensure_eq!(
        reply.account_id.as_str(),
        user_id,
        "AuthenticateReply.account_id"
    );
    Ok(reply)
}

/// Connects `connector` to `addr`, bound to `stage_id` of type `TestStage`.
pub async fn connect(connector: &Connector, addr: SocketAddr, stage_id: i64) -> Result<(), String> {
    connector
        .connect(&addr.ip().to_string(), addr.port(), stage_id, TEST_STAGE)
        .await
        .map_err(|error| format!("connect to {addr} failed: {}", describe(&error)))
}

/// Connects and authenticates in one go.
pub async fn join(
    connector: &Connector,
    addr: SocketAddr,
    stage_id: i64,
    user_id: &str,
) -> Result<AuthenticateReply, String> {
    connect(connector, addr, stage_id).await?;
    authenticate(connector, user_id).await
}

/// A connector configuration whose callbacks run directly on the connector's task (events
/// are then awaited through an [`EventTap`] instead of a game loop).
pub fn direct_config() -> ConnectorConfig {
    ConnectorConfig::default().use_main_thread_callbacks(false)
}

/// A game-loop stand-in: calls `main_thread_action` once per `frame` until `done` resolves
/// (callbacks queued by the connector run here, on this task), failing after `within`.
pub async fn pump_until<T>(
    connector: &Connector,
    frame: Duration,
    within: Duration,
    done: impl Future<Output = T>,
) -> Result<T, String> {
    let deadline = Instant::now() + within;
    let mut frames = tokio::time::interval(frame);
    tokio::pin!(done);
    loop {
        connector.main_thread_action();
        tokio::select! {
            biased;
            value = &mut done => return Ok(value),
            _ = frames.tick() => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Err(format!("not done within {within:?} of main_thread_action frames"));
            }
        }
    }
}

/// A minimal HTTP/1.1 client: POSTs `body` (JSON) to `path` on `addr` and returns the status
/// code and the response body (`Connection: close`, read to the end).
pub async fn http_post(addr: SocketAddr, path: &str, body: &str) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write the request: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read the response: {e}"))?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(WAIT, exchange)
        .await
        .map_err(|_| format!("no HTTP response from {addr}{path} within {WAIT:?}"))??;
    let text = String::from_utf8(response).map_err(|_| "the response is not UTF-8".to_owned())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed HTTP response: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// [`http_post`] of a JSON value, expecting a JSON response body.
pub async fn http_post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> Result<(u16, serde_json::Value), String> {
    let (status, body) = http_post(addr, path, &body.to_string()).await?;
    let json = serde_json::from_str(&body)
        .map_err(|e| format!("response body {body:?} (status {status}) is not JSON: {e}"))?;
    Ok((status, json))
}
