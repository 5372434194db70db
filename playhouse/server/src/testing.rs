//! Test helpers: drive a stage in memory ([`StageHarness`]: no sockets, works under a paused
//! tokio clock), and the echo stage tests and benchmarks share ([`EchoStage`], [`EchoActor`]).
//! For unit tests of your own stages, and for benchmarks of stage dispatch.
//!
//! ```
//! use playhouse::testing::StageHarness;
//! use playhouse::{Actor, ActorCell, ActorLink, ErrorCode, ErrorReply, Packet, Stage, StageContext};
//!
//! struct Echo;
//! struct Player;
//! impl Stage for Echo {
//!     type Actor = Player;
//!     async fn on_create(&mut self, _: &mut StageContext<Self>, _: Packet) -> Result<Packet, ErrorCode> {
//!         Ok(Packet::empty("Created"))
//!     }
//!     async fn on_dispatch(&mut self, _: &mut StageContext<Self>, actor: &mut ActorCell<Player>, packet: Packet) {
//!         actor.link.reply(packet);
//!     }
//! }
//! impl Actor for Player {
//!     async fn on_authenticate(&mut self, link: &mut ActorLink, packet: Packet) -> Result<Packet, ErrorReply> {
//!         link.set_account_id("alice");
//!         Ok(packet)
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let stage = StageHarness::start("Echo", |_| Echo, |_| Player, Packet::empty("Create")).await.unwrap();
//! let mut alice = stage.join(Packet::empty("Auth")).await.unwrap();
//! let reply = alice.request(Packet::new("Hello", "hi")).await.unwrap();
//! assert_eq!(reply.payload, "hi");
//! # });
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use playhouse_protocol::{ErrorCode, MsgId, Packet, ServerFrame};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::reply::ErrorReply;
use crate::session::handle::{Outbound, QueuedBytes, SessionHandle};
use crate::stage::actor::{ActorCell, ActorInit, ActorLink};
use crate::stage::context::{StageContext, StageInit};
use crate::stage::handle::{CreateRequest, JoinOutcome, StageHandle};
use crate::stage::host::{CreateAs, StageHost, StageTypes};
use crate::stage::model::{Actor, Stage};

/// Frames queued for one harness client before the stage treats it as a slow consumer.
const CLIENT_QUEUE: usize = 65_536;

/// One stage running on its own loop, fed directly.
pub struct StageHarness {
    stage: StageHandle,
    stage_id: i64,
    next_session: AtomicU64,
    _host: StageHost,
}

impl fmt::Debug for StageHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageHarness")
            .field("stage_id", &self.stage_id)
            .finish()
    }
}

impl StageHarness {
    /// Creates stage 1 of type `name` with `create` as its creating packet; returns the
    /// harness, or the code `on_create` refused with.
    pub async fn start<S: Stage>(
        name: &str,
        make_stage: impl Fn(&StageInit<'_>) -> S + Send + Sync + 'static,
        make_actor: impl Fn(&ActorInit<'_>) -> S::Actor + Send + Sync + 'static,
        create: Packet,
    ) -> Result<StageHarness, ErrorCode> {
        let mut types = StageTypes::default();
        types.register(name.to_owned(), make_stage, make_actor);
        let host = StageHost::standalone(types, "harness");
        let (done, created) = oneshot::channel();
        let request = || CreateRequest {
            packet: create,
            done: Some(done),
        };
        let opened = host
            .open(CreateAs::Named(name), 1, || true, request)
            .map_err(|refused| refused.code)?;
        created
            .await
            .map_err(|_| ErrorCode::STAGE_CREATION_FAILED)??;
        Ok(StageHarness {
            stage: opened.stage,
            stage_id: 1,
            next_session: AtomicU64::new(1),
            _host: host,
        })
    }

    /// Authenticates a new client with `auth`; the client, or the refusal's code.
    pub async fn join(&self, auth: Packet) -> Result<HarnessClient, ErrorCode> {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let queued = Arc::new(QueuedBytes::new(usize::MAX));
        let handle = SessionHandle::new(
            session,
            tx,
            CancellationToken::new(),
            Arc::default(),
            queued,
        );
        let reply_id = MsgId::from_static("AuthenticateReply");
        let joined = self
            .stage
            .join(handle, reply_id, 1, auth)
            .await
            .ok_or(ErrorCode::STAGE_NOT_FOUND)?;
        let mut client = HarnessClient {
            stage: self.stage.clone(),
            actor: 0,
            session,
            rx,
            next_seq: 2,
        };
        let outcome = joined.await.map_err(|_| ErrorCode::STAGE_NOT_FOUND)?;
        if let JoinOutcome::StageGone { .. } = outcome {
            return Err(ErrorCode::STAGE_NOT_FOUND);
        }
        let reply = client.frame().await.ok_or(ErrorCode::STAGE_NOT_FOUND)?;
        match outcome {
            JoinOutcome::Joined { actor } => {
                client.actor = actor;
                Ok(client)
            }
            _ => Err(reply.error_code),
        }
    }
}

/// A client of a [`StageHarness`]: sends what a connection would, sees every frame the stage
/// sends it.
pub struct HarnessClient {
    stage: StageHandle,
    actor: u64,
    session: u64,
    rx: mpsc::Receiver<Outbound>,
    next_seq: u16,
}

impl fmt::Debug for HarnessClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HarnessClient")
            .field("actor", &self.actor)
            .finish()
    }
}

impl HarnessClient {
    /// Sends a one-way message.
    pub async fn send(&self, packet: Packet) -> Result<(), ErrorCode> {
        self.dispatch(0, packet).await
    }

    /// Sends a request with a sequence of your choosing (1..=65535) without waiting.
    pub async fn request_with_seq(&self, seq: u16, packet: Packet) -> Result<(), ErrorCode> {
        self.dispatch(seq.max(1), packet).await
    }

    /// Sends a request without waiting; returns its sequence.
    pub async fn request_nowait(&mut self, packet: Packet) -> Result<u16, ErrorCode> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        self.dispatch(seq, packet).await?;
        Ok(seq)
    }

    /// Sends a request and waits for its reply (pushes before it are skipped); a reply with
    /// an error code is `Err(code)`.
    pub async fn request(&mut self, packet: Packet) -> Result<ServerFrame, ErrorCode> {
        let seq = self.request_nowait(packet).await?;
        loop {
            let frame = self.frame().await.ok_or(ErrorCode::STAGE_NOT_FOUND)?;
            if frame.msg_seq == seq {
                return match frame.error_code {
                    ErrorCode::SUCCESS => Ok(frame),
                    code => Err(code),
                };
            }
        }
    }

    /// Sends a request as a relayed client's message numbered `order` by its home.
    #[cfg(test)]
    pub(crate) fn relayed(&self, seq: u16, packet: Packet, order: u64) -> Result<(), ErrorCode> {
        self.stage
            .try_client(self.actor, self.session, seq, packet, order)
    }

    /// The next thing the stage queued for this client, as it queued it.
    #[cfg(test)]
    pub(crate) async fn outbound(&mut self) -> Option<Outbound> {
        self.rx.recv().await
    }

    /// The next frame the stage sent this client (`None` once the stage is gone).
    pub async fn frame(&mut self) -> Option<ServerFrame> {
        loop {
            match self.rx.recv().await? {
                Outbound::Frame(frame) => return Some(frame),
                Outbound::Shared(shared) => return Some(shared.frame().clone()),
                Outbound::Detached(_) => continue,
                Outbound::Close(_) => return None,
                Outbound::Freeze(reply) => {
                    let _ = reply.send(None);
                }
                Outbound::Moved(_) | Outbound::Relay(_) => return None,
                Outbound::Thaw => {}
            }
        }
    }

    async fn dispatch(&self, seq: u16, packet: Packet) -> Result<(), ErrorCode> {
        self.stage
            .client(self.actor, self.session, seq, packet)
            .await
            .map_err(|_| ErrorCode::STAGE_NOT_FOUND)
    }
}

/// The echo stage: every request is answered with the request itself (same id, same payload),
/// from a client ([`Stage::on_dispatch`]) or from another server
/// ([`Stage::on_dispatch_server`]); one-way messages are dropped. `on_create` answers
/// `Created`. For tests and benchmarks that need a stage, not a particular one.
///
/// ```
/// use playhouse::testing::{EchoActor, EchoStage, StageHarness};
/// use playhouse::Packet;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let stage = StageHarness::start("Echo", |_| EchoStage, |_| EchoActor, Packet::empty("Create"))
///     .await
///     .unwrap();
/// let mut alice = stage.join(Packet::new("Auth", "alice")).await.unwrap();
/// let reply = alice.request(Packet::new("Hello", "hi")).await.unwrap();
/// assert_eq!((&*reply.msg_id, &reply.payload[..]), ("Hello", &b"hi"[..]));
/// # });
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoStage;

/// The player of [`EchoStage`] (usable with any stage): the authenticate payload, as UTF-8,
/// is its account id (an empty one is refused with `INVALID_ACCOUNT_ID`); the authenticate
/// reply is an empty `Ok`.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoActor;

impl Stage for EchoStage {
    type Actor = EchoActor;

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
        actor: &mut ActorCell<EchoActor>,
        packet: Packet,
    ) {
        actor.link.reply(packet);
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        ctx.reply(packet);
    }
}

impl Actor for EchoActor {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        link.set_account_id(String::from_utf8_lossy(&packet.payload).into_owned());
        Ok(Packet::empty("Ok"))
    }
}
