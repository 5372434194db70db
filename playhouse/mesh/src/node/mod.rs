//! One server's mesh node, [`Mesh`]: addressing, request/reply, directory refresh, liveness.
//!
//! The handle is this module; what it shares with its tasks is in [`shared`], and the node's
//! work is split by concern: [`outbound`] (sending, replying), [`inbound`] (what the link
//! delivers), [`refresh`] (the directory) and [`heartbeat`] (peer liveness).

mod heartbeat;
mod inbound;
mod outbound;
mod refresh;
mod shared;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use playhouse_protocol::{ErrorCode, Packet};

use self::heartbeat::liveness_loop;
use self::refresh::refresh_loop;
use self::shared::Shared;
use crate::config::MeshConfig;
use crate::directory::{Directory, DirectoryError, ServerInfoCenter, ServerState};
use crate::error::MeshError;
use crate::link::{LinkEvent, MeshLink};
use crate::route::{Route, RoutePacket};

/// Receives every mesh message that is not a reply. Called on the mesh's receive task: it
/// must hand work off (e.g. to a stage mailbox, or a spawned task) rather than await it.
pub trait InboundHandler: Send + Sync + 'static {
    /// One incoming message (`packet.route.from()` is the sender).
    fn handle(&self, mesh: &Mesh, packet: RoutePacket);
}

/// Most moves a request follows before giving up (a stage moves once per drain).
const MAX_STAGE_HOPS: usize = 4;

/// A server's node in the mesh. Cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    shared: Arc<Shared>,
}

impl fmt::Debug for Mesh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mesh")
            .field("server_id", &self.shared.config.server_id)
            .field("address", &self.shared.link.address())
            .field("pending", &self.shared.cache.in_flight())
            .finish()
    }
}

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
        let mesh = Mesh {
            shared: Arc::new(Shared::new(config, link, directory, center)),
        };
        // The link hands events to the node on its own tasks (no task hop per message).
        // Started before the first refresh publishes this server, so nothing is missed.
        let weak = Arc::downgrade(&mesh.shared);
        mesh.shared.link.start(Arc::new(move |event: LinkEvent| {
            if let Some(shared) = weak.upgrade()
                && !shared.is_closed()
                && let Some(packet) = shared.on_event(event)
            {
                handler.handle(&Mesh { shared }, packet);
            }
        }));
        let first = mesh.refresh().await;
        if let Err(error) = &first {
            tracing::warn!(%error, "first directory refresh failed");
        }
        tokio::spawn(refresh_loop(Arc::clone(&mesh.shared), first.is_ok()));
        if mesh.shared.liveness.enabled() {
            tokio::spawn(liveness_loop(Arc::clone(&mesh.shared)));
        }
        mesh
    }

    /// This server's id.
    pub fn server_id(&self) -> &str {
        self.shared.server_id()
    }

    /// This server's service id.
    pub fn service_id(&self) -> u16 {
        self.shared.config.service_id
    }

    /// This server's mesh address.
    pub fn address(&self) -> &str {
        self.shared.link.address()
    }

    /// The live directory view.
    pub fn servers(&self) -> &ServerInfoCenter {
        &self.shared.center
    }

    /// Requests awaiting replies.
    pub fn pending_requests(&self) -> usize {
        self.shared.cache.in_flight()
    }

    /// Replies that arrived after their request ended (discarded).
    pub fn late_replies(&self) -> u64 {
        self.shared.cache.late_replies()
    }

    /// How many times a peer was declared down for answering no ping within
    /// [`MeshConfig::heartbeat_timeout`].
    pub fn peers_declared_down(&self) -> u64 {
        self.shared.liveness.declared()
    }

    /// Tells `observer` of every answered request and liveness ping from now on. Only the
    /// first observer is kept: `false` if one was set already.
    pub fn observe(&self, observer: Arc<dyn crate::observer::MeshObserver>) -> bool {
        self.shared.observer.set(observer).is_ok()
    }

    /// The default request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.shared.config.request_timeout
    }

    /// Marks this server running, disabled or draining (both excluded from service routing)
    /// at the next refresh.
    pub fn set_state(&self, state: ServerState) {
        self.shared.set_state(state);
    }

    /// Publishes this server, reads the directory and (re)connects or drops peers.
    ///
    /// A peer missing from the listing is dropped only when nothing vouches for it any more:
    /// its entry's TTL since it was last listed has run out, or its connection is down (a
    /// graceful stop removes the entry and closes the connection, so such a peer goes at
    /// once). Otherwise it stays routable: an empty directory restart, or a lost entry its
    /// owner will re-publish, does not cut a live server off.
    pub async fn refresh(&self) -> Result<(), DirectoryError> {
        self.shared.refresh().await
    }

    /// Sends a one-way message to `target` (to a stage that moved away from `target`, where
    /// it lives now, as far as this node has learned).
    pub fn send(&self, target: &str, route: Route, payload: Bytes) -> Result<(), MeshError> {
        let mut header = route.header;
        header.msg_seq = 0;
        header.is_reply = false;
        let target = self.locate(target, header.stage_id);
        self.shared.send_raw(&target, header, payload)
    }

    /// Records that stage `stage_id` moved here from server `from`: this server's directory
    /// entry lists it for a while, so senders that address it at `from` find it here once
    /// `from` is gone.
    pub fn stage_moved_in(&self, from: &str, stage_id: i64) {
        self.shared.moved_here(from, stage_id);
    }

    /// Where stage `stage_id` of server `target` lives, as far as this node knows: learned
    /// from a redirect, or, when `target` is no longer in the directory, from the entry of the
    /// server it moved to.
    fn locate<'a>(&self, target: &'a str, stage_id: i64) -> Cow<'a, str> {
        let shared = &self.shared;
        let target = match shared.locations.resolve(target, stage_id) {
            Some(moved) => Cow::Owned(moved),
            None => Cow::Borrowed(target),
        };
        if stage_id == 0 || shared.center.contains(&target) {
            return target;
        }
        match shared.center.moved_to(&target, stage_id) {
            Some(to) => {
                shared.locations.record(&target, stage_id, &to);
                Cow::Owned(to)
            }
            None => target,
        }
    }

    /// Sends a request and waits for its reply (default timeout). A reply with a non-zero
    /// error code is [`MeshError::Remote`].
    pub async fn request(
        &self,
        target: &str,
        route: Route,
        payload: Bytes,
    ) -> Result<RoutePacket, MeshError> {
        self.request_with_timeout(target, route, payload, self.shared.config.request_timeout)
            .await
    }

    /// Sends a request and waits up to `timeout` for its reply. A request to a stage that
    /// moved goes where it lives now: a `STAGE_MOVED` answer (carrying the new server's id)
    /// is remembered and the request sent again there, within the same timeout.
    pub async fn request_with_timeout(
        &self,
        target: &str,
        route: Route,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<RoutePacket, MeshError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let stage_id = route.header.stage_id;
        let asked = target;
        let mut target = self.locate(asked, stage_id);
        // Sent elsewhere than asked: to a server this node may not have met yet. So is one
        // the directory lists whose link is still connecting (it just started, or so did we).
        let mut redirected = target != asked || self.connecting(&target);
        for _ in 0..MAX_STAGE_HOPS {
            let header = Route::from_header(route.header.clone());
            let reply = if redirected {
                // Boxed: the rare path's future (a directory read in it) would otherwise
                // make every request's future, moved on each call, several times larger.
                Box::pin(self.request_new_peer(&target, header, payload.clone(), deadline)).await
            } else {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                self.request_once(&target, header, payload.clone(), left)
                    .await
            };
            if stage_id != 0 && !redirected && matches!(reply, Err(MeshError::ServerNotFound(_))) {
                // The stage's server is gone: if the stage moved, the directory says where.
                let _ = Box::pin(self.refresh()).await;
                let moved = self.locate(asked, stage_id);
                if moved != target {
                    target = moved;
                    redirected = true;
                    continue;
                }
            }
            match reply {
                Err(MeshError::Remote { code, packet })
                    if code == ErrorCode::STAGE_MOVED && stage_id != 0 =>
                {
                    let Ok(to) = std::str::from_utf8(&packet.payload) else {
                        return Err(MeshError::Remote { code, packet });
                    };
                    tracing::debug!(stage_id, from = %target, to, "stage moved; request sent there");
                    self.shared.locations.record(&target, stage_id, to);
                    target = Cow::Owned(to.to_owned());
                    redirected = true;
                }
                other => return other,
            }
        }
        Err(MeshError::ServerNotFound(target.into_owned()))
    }

    /// Whether `target` is listed in the directory and its link is not up yet, with no sign
    /// it failed (its connection did not break since the directory gave its address, and
    /// it was not declared down): a request waits for it (for up to `REPLY_RETRY`) instead
    /// of failing at once.
    fn connecting(&self, target: &str) -> bool {
        let shared = &self.shared;
        !shared.link.is_connected(target)
            && shared.center.contains(target)
            && !shared.liveness.is_down(target)
            && !shared.lost().contains(target)
    }

    /// A request to a server this node may not have met yet (a stage moved there): while it
    /// is not reachable, the directory is read (once) and the send retried, for up to
    /// [`REPLY_RETRY`](crate::config::REPLY_RETRY) or `deadline`.
    async fn request_new_peer(
        &self,
        target: &str,
        route: Route,
        payload: Bytes,
        deadline: tokio::time::Instant,
    ) -> Result<RoutePacket, MeshError> {
        let give_up = deadline.min(tokio::time::Instant::now() + crate::config::REPLY_RETRY);
        let mut refreshed = false;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let header = Route::from_header(route.header.clone());
            match self
                .request_once(target, header, payload.clone(), left)
                .await
            {
                Err(MeshError::ServerNotFound(_)) if tokio::time::Instant::now() < give_up => {
                    if !refreshed {
                        refreshed = self.refresh().await.is_ok();
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
    }

    async fn request_once(
        &self,
        target: &str,
        route: Route,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<RoutePacket, MeshError> {
        let cache = &self.shared.cache;
        let (seq, reply) = cache
            .register(target)
            .ok_or_else(|| MeshError::Invalid("too many requests in flight".to_owned()))?;
        // Whatever happens to this future (timeout, drop), the entry goes.
        let mut entry = cache.forget_on_drop(seq);
        let mut header = route.header;
        header.msg_seq = seq;
        header.is_reply = false;
        let sent = tokio::time::Instant::now();
        self.shared.send_raw(target, header, payload)?;
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(result)) => {
                entry.disarm();
                if let Some(observer) = self.shared.observer.get() {
                    observer.request_round_trip(target, sent.elapsed());
                }
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
    ///
    /// [`REPLY_RETRY`]: crate::config::REPLY_RETRY
    pub fn reply(&self, request: &Route, code: ErrorCode, packet: Packet) -> Result<(), MeshError> {
        self.shared.reply(request, code, packet)
    }

    /// Leaves the directory, fails pending requests and closes the link.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        if !shared.close() {
            return;
        }
        let _ = shared.directory.remove(shared.server_id()).await;
        shared.cache.fail_all(MeshError::Closed);
        shared.link.close();
    }
}
