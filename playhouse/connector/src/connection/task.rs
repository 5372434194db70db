//! The connection task's state: what it starts from ([`Setup`]), what it keeps ([`Task`]) and
//! what it publishes for the API to read without asking ([`TaskStatus`]).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use playhouse_protocol::{Capabilities, ClientCodec, ClientFrame, CodecConfig, ErrorCode};

use super::command::Responder;
use crate::callbacks::Callbacks;
use crate::error::{CloseCause, ConnectorError};
use crate::pending::Pending;
use crate::pushes::{PushRoute, Stalled};
use crate::resume::{ClientSession, ResumeSetup};

/// What a connection task starts from.
#[derive(Debug)]
pub(crate) struct Setup {
    /// The stage every frame carries; shared with the connector, which reports it.
    pub(crate) stage_id: Arc<AtomicI64>,
    pub(crate) stage_type: Arc<str>,
    pub(crate) max_packet_size: usize,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    /// Bounds the flush of queued messages on a client-initiated close.
    pub(crate) close_timeout: Duration,
    /// Protocol extensions asked for in a hello sent before anything else (none: no hello).
    pub(crate) capabilities: Capabilities,
    pub(crate) callbacks: Arc<Callbacks>,
    /// Where pushes go: the application's receiver, if taken, else `on_receive`.
    pub(crate) pushes: Arc<PushRoute>,
    /// The endpoint dialed (`host:port`), when the connector knows it.
    pub(crate) endpoint: Option<Arc<str>>,
    /// How to dial again for a resumable session (`None`: sessions are not resumable).
    pub(crate) resume: Option<ResumeSetup>,
}

/// Connection state the API reads without asking the task.
#[derive(Debug, Default)]
pub(crate) struct TaskStatus {
    /// Cleared by the task as it ends.
    pub(crate) alive: AtomicBool,
    pub(crate) authenticated: AtomicBool,
    /// Requests written and awaiting a reply.
    pub(crate) pending: AtomicUsize,
    /// Set (before `alive` is cleared) when the end has a likely cause worth naming.
    pub(crate) cause: Mutex<Option<CloseCause>>,
    /// The endpoint the connection dials, if known; updated when the session follows a move.
    pub(crate) endpoint: Mutex<Option<Arc<str>>>,
}

impl TaskStatus {
    /// The error for using the connection after it ended.
    pub(crate) fn closed_error(&self) -> ConnectorError {
        let cause = self.cause.lock().unwrap_or_else(PoisonError::into_inner);
        cause
            .clone()
            .map_or(ConnectorError::Disconnected, CloseCause::error)
    }

    /// The endpoint the connection dials, if known.
    pub(crate) fn endpoint(&self) -> Option<Arc<str>> {
        self.endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A request written to the socket, awaiting its reply.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) authenticate: bool,
    pub(super) responder: Responder,
}

/// The connection task's own state (everything but the socket halves).
pub(super) struct Task {
    pub(super) stage_id: i64,
    pub(super) shared_stage_id: Arc<AtomicI64>,
    pub(super) stage_type: Arc<str>,
    pub(super) status: Arc<TaskStatus>,
    pub(super) callbacks: Arc<Callbacks>,
    pub(super) pushes: Arc<PushRoute>,
    /// A push the full receiver had no room for; reading waits until it is delivered.
    pub(super) stalled: Option<Stalled>,
    pub(super) pending: Pending<InFlight>,
    pub(super) encoder: ClientCodec,
    pub(super) codec: CodecConfig,
    /// Encoded frames waiting for the socket.
    pub(super) out: BytesMut,
    pub(super) capabilities: Capabilities,
    pub(super) resume: Option<ResumeSetup>,
    /// Frames sent since an authenticate request, until the server grants a resumable
    /// session (they are its first frames) or the authentication ends without one.
    pub(super) forming: Option<Vec<ClientFrame>>,
    /// The resumable session, once granted.
    pub(super) session: Option<ClientSession>,
    /// Why the server said it is closing the connection (its `@Close@` frame), if it did.
    pub(super) closing: Option<ErrorCode>,
    /// Where the server said the stage moved (its `@Move@` frame on this connection), until
    /// the connection ends and the session follows it (or cannot).
    pub(super) moving: Option<Arc<str>>,
    /// A move being followed: reported (`SessionEvent::Moved`) once the session resumes.
    pub(super) moved: bool,
}
