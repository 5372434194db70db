//! One server's mesh node: addressing, request/reply, directory refresh.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use playhouse_protocol::{ErrorCode, MsgId, Packet};
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::cache::RequestCache;
use crate::directory::{Directory, ServerInfo, ServerInfoCenter, ServerState, ServerType};
use crate::error::MeshError;
use crate::link::{LinkError, LinkEvent, MeshLink};
use crate::liveness::{self, Liveness};
use crate::route::Route;
use crate::wire::RouteHeader;

/// A mesh message: its route and payload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutePacket {
    /// Routing information.
    pub route: Route,
    /// Message body.
    pub payload: Bytes,
}

impl RoutePacket {
    /// The message as a [`Packet`] (id from the header).
    pub fn packet(&self) -> Packet {
        Packet::new(MsgId::from(self.route.msg_id()), self.payload.clone())
    }

    /// The error code of a reply.
    pub fn error_code(&self) -> ErrorCode {
        self.route.error_code()
    }
}

/// Receives every mesh message that is not a reply. Called on the mesh's receive task: it
/// must hand work off (e.g. to a stage mailbox, or a spawned task) rather than await it.
pub trait InboundHandler: Send + Sync + 'static {
    /// One incoming message (`packet.route.from()` is the sender).
    fn handle(&self, mesh: &Mesh, packet: RoutePacket);
}

/// Settings of a mesh node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MeshConfig {
    /// This server's id, e.g. `api-1`.
    pub server_id: String,
    /// Play or API.
    pub server_type: ServerType,
    /// The service this server belongs to. Default: 1 for Play, 2 for API.
    pub service_id: u16,
    /// Share of weighted routing. Default: 100.
    pub weight: u32,
    /// Default request timeout. Default: 30 s.
    pub request_timeout: Duration,
    /// How often the directory is refreshed. Default: 3 s. After a failed refresh the next
    /// attempt comes sooner ([`DIRECTORY_RETRY`], doubling up to [`DIRECTORY_RETRY_MAX`]), so
    /// this server re-publishes itself as soon as the directory answers again.
    pub refresh_interval: Duration,
    /// How long a published entry lives without refresh. Default: 10 s. Also how long a
    /// server missing from the directory stays routable after it was last listed (every
    /// server of a mesh is expected to use the same TTL), unless its connection is down: an
    /// empty directory restart or a lost entry does not cut off a live server. Keep it a few
    /// refresh intervals long.
    pub directory_ttl: Duration,
    /// Requests in flight at once before new ones fail. Default: 100,000.
    pub max_pending_requests: usize,
    /// The largest payload sent to another server, in bytes: a larger request or message
    /// fails at once with [`MeshError::TooLarge`], a larger reply is replaced by an empty one
    /// carrying [`ErrorCode::PACKET_TOO_LARGE`] (the requester learns it at once instead of
    /// timing out). Default: 8 MiB (the TCP link carries frames up to 16 MiB).
    pub max_payload: usize,
    /// How often every connected peer is pinged. [`Duration::ZERO`] turns liveness off
    /// (peers are then known down only when their connection closes). Default: 1 s.
    pub heartbeat_interval: Duration,
    /// A peer that answers no ping sent within this long is down: its requests in flight
    /// fail at once, its connections are reset, and sends to it fail until it answers again.
    /// Default: 5 s.
    pub heartbeat_timeout: Duration,
}

impl MeshConfig {
    /// Defaults for a server of `server_type` named `server_id`.
    pub fn new(server_id: impl Into<String>, server_type: ServerType) -> Self {
        MeshConfig {
            server_id: server_id.into(),
            server_type,
            service_id: match server_type {
                ServerType::Play => 1,
                ServerType::Api => 2,
            },
            weight: 100,
            request_timeout: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(3),
            directory_ttl: Duration::from_secs(10),
            max_pending_requests: 100_000,
            max_payload: 8 * 1024 * 1024,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
        }
    }
}

struct Inner {
    config: MeshConfig,
    link: Arc<dyn MeshLink>,
    directory: Arc<dyn Directory>,
    cache: RequestCache,
    center: ServerInfoCenter,
    state: AtomicU8,
    /// The last directory call failed: the next listing that succeeds restarts every known
    /// server's TTL (nobody could publish meanwhile).
    directory_failed: AtomicBool,
    liveness: Liveness,
    /// Encoded headers of this node's pings and pongs.
    ping_header: Bytes,
    pong_header: Bytes,
    /// A refresh asked for by a ping from an unknown peer is under way.
    refresh_pending: AtomicBool,
    shutdown: CancellationToken,
}

/// A server's node in the mesh. Cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    inner: Arc<Inner>,
}

impl fmt::Debug for Mesh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mesh")
            .field("server_id", &self.inner.config.server_id)
            .field("address", &self.inner.link.address())
            .field("pending", &self.inner.cache.in_flight())
            .finish()
    }
}

/// How long a reply to a requester this server is not yet connected to keeps retrying.
pub const REPLY_RETRY: Duration = Duration::from_secs(2);

/// The first retry after a failed directory refresh.
pub const DIRECTORY_RETRY: Duration = Duration::from_millis(100);

/// Retries after failed directory refreshes double up to this (or the refresh interval, if
/// shorter).
pub const DIRECTORY_RETRY_MAX: Duration = Duration::from_secs(1);

const RUNNING: u8 = 0;
const DISABLED: u8 = 1;

impl Mesh {
    /// Starts the node: starts `link` with the node's event sink, and the directory refresh
    /// and liveness loops. The first refresh runs before this returns, so known peers start
    /// connecting at once.
    pub async fn start(
        config: MeshConfig,
        link: Arc<dyn MeshLink>,
        directory: Arc<dyn Directory>,
        handler: Arc<dyn InboundHandler>,
    ) -> Mesh {
        let center = ServerInfoCenter::default();
        Mesh::start_with_center(config, link, directory, handler, center).await
    }

    /// [`Mesh::start`], keeping the directory view in `center` (e.g. one already handed to
    /// stage factories as a shared service).
    pub async fn start_with_center(
        config: MeshConfig,
        link: Arc<dyn MeshLink>,
        directory: Arc<dyn Directory>,
        handler: Arc<dyn InboundHandler>,
        center: ServerInfoCenter,
    ) -> Mesh {
        // Pings and pongs carry only their kind: the link names the sender of everything it
        // delivers (the header's `from` is overwritten on receipt).
        let liveness_header = |liveness| {
            let header = RouteHeader {
                liveness,
                ..RouteHeader::default()
            };
            Bytes::from(header.encode_to_vec())
        };
        let mesh = Mesh {
            inner: Arc::new(Inner {
                cache: RequestCache::new(config.max_pending_requests),
                liveness: Liveness::new(config.heartbeat_interval, config.heartbeat_timeout),
                ping_header: liveness_header(liveness::PING),
                pong_header: liveness_header(liveness::PONG),
                refresh_pending: AtomicBool::new(false),
                config,
                link,
                directory,
                center,
                state: AtomicU8::new(RUNNING),
                directory_failed: AtomicBool::new(false),
                shutdown: CancellationToken::new(),
            }),
        };
        // The link hands events to the node on its own tasks (no task hop per message).
        // Started before the first refresh publishes this server, so nothing is missed.
        let weak = Arc::downgrade(&mesh.inner);
        mesh.inner.link.start(Arc::new(move |event: LinkEvent| {
            if let Some(inner) = weak.upgrade()
                && !inner.shutdown.is_cancelled()
            {
                Mesh { inner }.on_event(event, handler.as_ref());
            }
        }));
        let first = mesh.refresh().await;
        if let Err(error) = &first {
            tracing::warn!(%error, "first directory refresh failed");
        }
        tokio::spawn(refresh_loop(mesh.clone(), first.is_ok()));
        if mesh.inner.liveness.enabled() {
            tokio::spawn(liveness_loop(mesh.clone()));
        }
        mesh
    }

    /// This server's id.
    pub fn server_id(&self) -> &str {
        &self.inner.config.server_id
    }

    /// This server's service id.
    pub fn service_id(&self) -> u16 {
        self.inner.config.service_id
    }

    /// This server's mesh address.
    pub fn address(&self) -> &str {
        self.inner.link.address()
    }

    /// The live directory view.
    pub fn servers(&self) -> &ServerInfoCenter {
        &self.inner.center
    }

    /// Requests awaiting replies.
    pub fn pending_requests(&self) -> usize {
        self.inner.cache.in_flight()
    }

    /// Replies that arrived after their request ended (discarded).
    pub fn late_replies(&self) -> u64 {
        self.inner.cache.late_replies()
    }

    /// How many times a peer was declared down for answering no ping within
    /// [`MeshConfig::heartbeat_timeout`].
    pub fn peers_declared_down(&self) -> u64 {
        self.inner.liveness.declared()
    }

    /// The default request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.inner.config.request_timeout
    }

    /// Marks this server running or disabled (excluded from service routing) at the next
    /// refresh.
    pub fn set_state(&self, state: ServerState) {
        let value = match state {
            ServerState::Running => RUNNING,
            ServerState::Disabled => DISABLED,
        };
        self.inner.state.store(value, Ordering::Relaxed);
    }

    fn info(&self) -> ServerInfo {
        let config = &self.inner.config;
        ServerInfo {
            server_type: config.server_type,
            service_id: config.service_id,
            server_id: config.server_id.clone(),
            address: self.inner.link.address().to_owned(),
            state: match self.inner.state.load(Ordering::Relaxed) {
                RUNNING => ServerState::Running,
                _ => ServerState::Disabled,
            },
            weight: config.weight,
        }
    }

    /// Publishes this server, reads the directory and (re)connects or drops peers.
    ///
    /// A peer missing from the listing is dropped only when nothing vouches for it any more:
    /// its entry's TTL since it was last listed has run out, or its connection is down (a
    /// graceful stop removes the entry and closes the connection, so such a peer goes at
    /// once). Otherwise it stays routable: an empty directory restart, or a lost entry its
    /// owner will re-publish, does not cut a live server off.
    pub async fn refresh(&self) -> Result<(), crate::DirectoryError> {
        let inner = &self.inner;
        let ttl = inner.config.directory_ttl;
        let info = self.info();
        let listed = async {
            inner.directory.publish(&info, ttl).await?;
            inner.directory.list().await
        };
        let list = match listed.await {
            Ok(list) => list,
            Err(error) => {
                inner.directory_failed.store(true, Ordering::Relaxed);
                return Err(error);
            }
        };
        let now = tokio::time::Instant::now();
        if inner.directory_failed.swap(false, Ordering::Relaxed) {
            inner.center.directory_back(now);
        }
        let link = &inner.link;
        let (changed, removed) = inner
            .center
            .update(list, now, ttl, |id| link.is_connected(id));
        for server in removed {
            tracing::info!(peer = %server.server_id, "mesh peer left the directory");
            self.inner.link.disconnect(&server.server_id);
            self.inner.cache.fail_target(&server.server_id);
        }
        for server in changed {
            tracing::debug!(peer = %server.server_id, address = %server.address, "mesh peer");
            self.inner.link.connect(&server.server_id, &server.address);
        }
        Ok(())
    }

    fn send_raw(&self, target: &str, header: RouteHeader, payload: Bytes) -> Result<(), MeshError> {
        let max = self.inner.config.max_payload;
        if payload.len() > max {
            return Err(MeshError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let encoded = self.encode(header);
        self.send_encoded(target, encoded, payload)
    }

    /// The header as sent by this server.
    fn encode(&self, mut header: RouteHeader) -> Bytes {
        header.from.clear();
        header.from.push_str(self.server_id());
        header.service_id = u32::from(self.service_id());
        Bytes::from(header.encode_to_vec())
    }

    fn send_encoded(&self, target: &str, header: Bytes, payload: Bytes) -> Result<(), MeshError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(MeshError::Closed);
        }
        if self.inner.liveness.is_down(target) {
            return Err(MeshError::ServerNotFound(target.to_owned()));
        }
        self.inner
            .link
            .send(target, header, payload)
            .map_err(|error| match error {
                LinkError::Closed => MeshError::Closed,
                _ => MeshError::ServerNotFound(target.to_owned()),
            })
    }

    /// Sends a one-way message to `target`.
    pub fn send(&self, target: &str, route: Route, payload: Bytes) -> Result<(), MeshError> {
        let mut header = route.header;
        header.msg_seq = 0;
        header.is_reply = false;
        self.send_raw(target, header, payload)
    }

    /// Sends a request and waits for its reply (default timeout). A reply with a non-zero
    /// error code is [`MeshError::Remote`].
    pub async fn request(
        &self,
        target: &str,
        route: Route,
        payload: Bytes,
    ) -> Result<RoutePacket, MeshError> {
        self.request_with_timeout(target, route, payload, self.inner.config.request_timeout)
            .await
    }

    /// Sends a request and waits up to `timeout` for its reply.
    pub async fn request_with_timeout(
        &self,
        target: &str,
        route: Route,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<RoutePacket, MeshError> {
        let cache = &self.inner.cache;
        let (seq, reply) = cache
            .register(target)
            .ok_or_else(|| MeshError::Invalid("too many requests in flight".to_owned()))?;
        // Whatever happens to this future (timeout, drop), the entry goes.
        let mut entry = Forget {
            cache,
            seq,
            armed: true,
        };
        let mut header = route.header;
        header.msg_seq = seq;
        header.is_reply = false;
        self.send_raw(target, header, payload)?;
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(result)) => {
                // Completed: the cache already removed the entry; skip a second lock.
                entry.armed = false;
                result
            }
            Ok(Err(_)) => Err(MeshError::Closed),
            Err(_) => Err(MeshError::Timeout),
        }
    }

    /// Answers `request` (the route of a message this server received) with `code` and a
    /// packet. A message that is not a request needs no answer: nothing is sent.
    ///
    /// A requester this server has not connected to yet (it joined since the last directory
    /// refresh) is not an error: the directory is refreshed and delivery retried on a task
    /// for up to [`REPLY_RETRY`], so the reply is not lost to a race.
    pub fn reply(&self, request: &Route, code: ErrorCode, packet: Packet) -> Result<(), MeshError> {
        let request = &request.header;
        if request.msg_seq == 0 {
            return Ok(());
        }
        let max = self.inner.config.max_payload;
        let (code, packet) = if packet.payload.len() > max {
            tracing::warn!(
                len = packet.payload.len(),
                max,
                msg_id = %packet.msg_id,
                "mesh reply too large; the requester gets PACKET_TOO_LARGE"
            );
            (
                ErrorCode::PACKET_TOO_LARGE,
                Packet::empty(packet.msg_id.clone()),
            )
        } else {
            (code, packet)
        };
        // The requester matches a reply by its sequence alone (its request cache), so the
        // reply carries nothing of the request's routing (stage, session, system flags).
        let header = RouteHeader {
            msg_seq: request.msg_seq,
            msg_id: packet.msg_id.to_string(),
            error_code: u32::from(code.0),
            is_reply: true,
            ..RouteHeader::default()
        };
        let header = self.encode(header);
        // Cheap clones (reference counts): the retry needs them only if the requester is
        // not connected yet.
        match self.send_encoded(&request.from, header.clone(), packet.payload.clone()) {
            Err(MeshError::ServerNotFound(_)) => {
                let mesh = self.clone();
                let target = request.from.clone();
                tokio::spawn(async move { mesh.retry_reply(target, header, packet.payload).await });
                Ok(())
            }
            other => other,
        }
    }

    async fn retry_reply(&self, target: String, header: Bytes, payload: Bytes) {
        let deadline = tokio::time::Instant::now() + REPLY_RETRY;
        let mut refreshed = false;
        while tokio::time::Instant::now() < deadline {
            if !refreshed && self.servers().get(&target).is_none() {
                refreshed = self.refresh().await.is_ok();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            match self.send_encoded(&target, header.clone(), payload.clone()) {
                Err(MeshError::ServerNotFound(_)) => continue,
                _ => return,
            }
        }
        tracing::warn!(%target, "reply undeliverable: the requester is unreachable");
    }

    /// Leaves the directory, fails pending requests and closes the link.
    pub async fn shutdown(&self) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        self.inner.shutdown.cancel();
        let _ = self.inner.directory.remove(self.server_id()).await;
        self.inner.cache.fail_all(MeshError::Closed);
        self.inner.link.close();
    }

    /// A ping is answered at once (whatever else is queued for the peer); a pong restarts
    /// the peer's silence clock.
    fn on_liveness(&self, from: &str, kind: u32, payload: Bytes) {
        let inner = &self.inner;
        match kind {
            liveness::PING => {
                let pong = inner.link.send(from, inner.pong_header.clone(), payload);
                if let Err(LinkError::Unknown(_)) = pong {
                    // A peer that joined since the last refresh: learn it now rather than
                    // let it declare this server down for a directory interval.
                    self.refresh_soon();
                }
            }
            liveness::PONG => inner.liveness.pong(from, &payload),
            _ => tracing::debug!(%from, kind, "unknown liveness message; dropped"),
        }
    }

    /// Refreshes the directory on a task, unless such a refresh is already under way.
    fn refresh_soon(&self) {
        if self.inner.refresh_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let mesh = self.clone();
        tokio::spawn(async move {
            let _ = mesh.refresh().await;
            mesh.inner.refresh_pending.store(false, Ordering::Release);
        });
    }

    fn on_event(&self, event: LinkEvent, handler: &dyn InboundHandler) {
        match event {
            LinkEvent::Message {
                from,
                header,
                payload,
            } => {
                let Ok(mut header) = RouteHeader::decode(header) else {
                    tracing::warn!(%from, "undecodable route header; dropped");
                    return;
                };
                if header.liveness != 0 {
                    self.on_liveness(&from, header.liveness, payload);
                    return;
                }
                header.from.clear();
                header.from.push_str(&from);
                let is_reply = header.is_reply;
                let seq = header.msg_seq;
                let packet = RoutePacket {
                    route: Route::from_header(header),
                    payload,
                };
                if is_reply {
                    let code = packet.error_code();
                    let result = if code.is_success() {
                        Ok(packet)
                    } else {
                        Err(MeshError::Remote {
                            code,
                            packet: packet.packet(),
                        })
                    };
                    if !self.inner.cache.complete(seq, result) {
                        tracing::debug!(seq, %from, "late reply discarded");
                    }
                } else {
                    handler.handle(self, packet);
                }
            }
            LinkEvent::PeerDown { target } => {
                let failed = self.inner.cache.fail_target(&target);
                if failed > 0 {
                    tracing::warn!(%target, failed, "peer connection lost; its requests failed");
                }
                // Kept only on trust after it went missing from the directory: with its
                // connection gone too, it is gone (e.g. it stopped gracefully).
                if self.inner.center.forget_unlisted(&target).is_some() {
                    tracing::info!(peer = %target, "mesh peer left the directory");
                    self.inner.link.disconnect(&target);
                }
            }
            LinkEvent::SendFailed { target, header } => {
                if let Ok(header) = RouteHeader::decode(header)
                    && !header.is_reply
                    && header.msg_seq != 0
                {
                    let error = MeshError::ServerNotFound(target.to_string());
                    self.inner.cache.complete(header.msg_seq, Err(error));
                }
            }
        }
    }
}

/// Removes a request's cache entry when its waiting future ends, however it ends.
struct Forget<'a> {
    cache: &'a RequestCache,
    seq: u32,
    armed: bool,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.cache.forget(self.seq);
        }
    }
}

/// Pings every connected peer and declares down those silent for the heartbeat timeout
/// (see [`liveness`](crate::liveness)). Wakes at the next ping or the next deadline, so a
/// silent peer is declared down at its deadline, not at the next ping after it.
async fn liveness_loop(mesh: Mesh) {
    let inner = &mesh.inner;
    let mut wake = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = tokio::time::Instant::now();
        let servers = inner.center.all();
        let peers = servers
            .iter()
            .map(|server| server.server_id.as_str())
            .filter(|id| *id != mesh.server_id())
            .map(|id| (id, inner.link.is_connected(id)));
        let tick = inner.liveness.tick(now, peers);
        for peer in &tick.declare_down {
            let failed = inner.cache.fail_target(peer);
            tracing::warn!(%peer, failed, "mesh peer answers no pings; declared down, connections reset");
            inner.link.reset(peer);
        }
        if !tick.ping.is_empty() {
            let payload = inner.liveness.ping_payload(now);
            for peer in &tick.ping {
                // A full queue or a connection going down: the next ping, or the deadline,
                // tells.
                let _ = inner
                    .link
                    .send(peer, inner.ping_header.clone(), payload.clone());
            }
        }
        wake = tick.next;
    }
}

/// Refreshes every `refresh_interval`; after a failure, sooner (from [`DIRECTORY_RETRY`],
/// doubling up to [`DIRECTORY_RETRY_MAX`]) until the directory answers, so the server is
/// back in it within one retry step of the directory coming back (e.g. an empty Redis
/// restart), not a whole interval later.
async fn refresh_loop(mesh: Mesh, mut healthy: bool) {
    let period = mesh.inner.config.refresh_interval;
    let max_retry = DIRECTORY_RETRY_MAX.min(period);
    let mut retry = DIRECTORY_RETRY.min(max_retry);
    loop {
        let wait = if healthy { period } else { retry };
        tokio::select! {
            biased;
            _ = mesh.inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match mesh.refresh().await {
            Ok(()) => {
                if !healthy {
                    tracing::info!("directory reachable again; this server is published");
                }
                healthy = true;
                retry = DIRECTORY_RETRY.min(max_retry);
            }
            Err(error) => {
                if healthy {
                    tracing::warn!(%error, "directory refresh failed; retrying");
                } else {
                    tracing::debug!(%error, "directory refresh failed again");
                    retry = (retry * 2).min(max_retry);
                }
                healthy = false;
            }
        }
    }
}
