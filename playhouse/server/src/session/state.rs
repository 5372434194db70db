//! A session's state: the connection it runs on, where it stands in the authentication flow,
//! and what it keeps across connections when it is resumable.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use playhouse_protocol::{Capabilities, ErrorCode, ServerCodec};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::context::SessionContext;
use super::handle::{Outbound, QueuedBytes, SessionHandle, SessionId};
use super::resume::buffer::Resumable;
use super::resume::registry::{BoxRead, Handover};
use super::stage_ref::StageRef;
use super::write_codec::Writer;
use crate::limits::TokenBucket;

/// Where a connection stands in the authentication flow.
#[derive(Debug)]
pub(super) enum State {
    /// Connected, never authenticated: only heartbeats and the authenticate message allowed.
    Fresh,
    /// Authenticated into a stage as an actor (the stage here, or relayed to another server).
    Joined { stage: StageRef, actor: u64 },
    /// Was in a stage that it left or that closed: requests get `code`; authenticate again
    /// by `reauth_by` (the auth timeout after detaching) to join a stage, or be closed.
    Detached { code: ErrorCode, reauth_by: Instant },
}

/// One client session: its connection, its state, and its share of the server.
pub(super) struct Session {
    pub(super) id: SessionId,
    /// The address of the connection that opened the session: the stages its logins create
    /// count against this source's quota.
    pub(super) source: IpAddr,
    pub(super) ctx: Arc<SessionContext>,
    pub(super) reader: FramedRead<BoxRead, ServerCodec>,
    pub(super) writer: Writer,
    pub(super) rx: mpsc::Receiver<Outbound>,
    pub(super) handle: SessionHandle,
    /// Bytes queued through `handle` and not yet taken by `write_batch`.
    pub(super) queued: Arc<QueuedBytes>,
    pub(super) kill: CancellationToken,
    pub(super) state: State,
    pub(super) rate: Option<TokenBucket>,
    /// Stages this connection may still create by logging into new ids.
    pub(super) stage_creations: Option<TokenBucket>,
    /// Arrival times of requests awaiting a reply, oldest first, for the latency histogram.
    pub(super) in_flight: VecDeque<(u16, Instant)>,
    /// When the replies written since the last flush were written (read once per batch).
    pub(super) write_clock: Option<Instant>,
    /// What the capability handshake granted; `None` until the client sent its hello (old
    /// clients never do, and get the original protocol).
    pub(super) capabilities: Option<Capabilities>,
    /// The stage type the client's hello named for its logins (`None`: the default type).
    pub(super) stage_type: Option<Arc<str>>,
    /// The numbered streams of a resumable session (`None`: not resumable, the original
    /// protocol; nothing is counted or kept).
    pub(super) resume: Option<Box<Resumable>>,
    /// The transport of the current connection (a resumed session may change it).
    pub(super) transport: &'static str,
    /// Whether a connection is attached (a resumable session outlives its connections).
    pub(super) connected: bool,
    /// Set when this connection asks to resume another session.
    pub(super) handover: Option<Handover>,
    /// When the session began here (for `playhouse_session_duration_seconds`).
    pub(super) opened: Instant,
    /// Its span (`session`: server, id, peer, transport). Entered by its cold paths (`cold!`)
    /// and around its log lines, not on every poll of the loop that carries its messages:
    /// a span entered per poll costs every message.
    pub(super) span: tracing::Span,
}

impl Session {
    /// The actor left its stage or the stage closed: requests get `code` from now on, and
    /// the connection has the auth timeout, counted from now, to join a stage again.
    pub(super) fn detach(&mut self, code: ErrorCode) {
        if matches!(
            self.state,
            State::Joined {
                stage: StageRef::Relayed(_),
                ..
            }
        ) {
            self.ctx.relayed().remove(self.id);
        }
        let reauth_by = Instant::now() + self.ctx.config().auth_timeout;
        self.state = State::Detached { code, reauth_by };
    }

    /// Whether the capability handshake granted `capability`.
    pub(super) fn granted(&self, capability: Capabilities) -> bool {
        self.capabilities.is_some_and(|c| c.contains(capability))
    }
}
