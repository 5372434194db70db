//! The task that owns one connection: it writes commands from the API (batched: every ready
//! command is encoded, then written and flushed once), matches replies to pending requests by
//! sequence number, expires requests, sends heartbeats on its own clock, drops a silent
//! connection, and reports what happened through the callbacks.
//!
//! * `link`: the API's handle on a task ([`Link`], [`Setup`], [`LinkState`]).
//! * `command`: what the API asks ([`Command`], [`Request`]) and where outcomes go
//!   ([`Responder`], [`complete`]).
//! * `event_loop`: the task itself, one `select!` over deadlines, the socket and commands.
//! * `outbound`: commands and heartbeats into encoded frames; requests into the pending table.
//! * `inbound`: replies, pushes and the control frames of resumable sessions.
//! * `reconnect`: dialing again and resuming a resumable session after a drop.
//! * `close`: why a connection ended, and settling everything when it does.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use bytes::BytesMut;
use playhouse_protocol::{Capabilities, ClientCodec, ClientFrame, CodecConfig};

use crate::callbacks::Callbacks;
use crate::pending::Pending;
use crate::resume::{ClientSession, ResumeSetup};

mod close;
mod command;
mod event_loop;
mod inbound;
mod link;
mod outbound;
mod reconnect;

pub(crate) use command::{Command, Request, Responder, complete};
use link::LinkState;
pub(crate) use link::{Link, Setup};

/// A request written to the socket, awaiting its reply.
#[derive(Debug)]
struct InFlight {
    authenticate: bool,
    responder: Responder,
}

/// The connection task's own state (everything but the socket halves).
struct Task {
    stage_id: i64,
    shared_stage_id: Arc<AtomicI64>,
    stage_type: Arc<str>,
    state: Arc<LinkState>,
    callbacks: Arc<Callbacks>,
    pending: Pending<InFlight>,
    encoder: ClientCodec,
    codec: CodecConfig,
    /// Encoded frames waiting for the socket.
    out: BytesMut,
    capabilities: Capabilities,
    resume: Option<ResumeSetup>,
    /// Frames sent since an authenticate request, until the server grants a resumable
    /// session (they are its first frames) or the authentication ends without one.
    forming: Option<Vec<ClientFrame>>,
    /// The resumable session, once granted.
    session: Option<ClientSession>,
}
