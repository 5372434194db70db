//! What the API asks the connection task to do, and where each request's outcome goes.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use playhouse_protocol::Packet;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::callbacks::{Callbacks, Event, ReplyCallback};
use crate::error::ConnectorError;

/// What the API asks the connection task to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// A one-way message (seq 0).
    Send(Packet),
    /// A request awaiting a reply.
    Request(Request),
}

/// `timeout` from now, saturating instead of overflowing.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
}

/// A request on its way to the task.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) packet: Packet,
    /// When it times out: its timeout from the call, however long it waits for the task.
    pub(crate) deadline: Instant,
    /// Set by the task when it takes the request (after that, the task times it out).
    pub(crate) taken: Option<Arc<AtomicBool>>,
    /// A successful reply marks the connection authenticated.
    pub(crate) authenticate: bool,
    pub(crate) responder: Responder,
}

/// Where a request's outcome goes.
pub(crate) enum Responder {
    /// An `async` request's future.
    Future(oneshot::Sender<Result<Packet, ConnectorError>>),
    /// A callback-form request: the callback, and the request for `on_error`.
    Callback {
        callback: ReplyCallback,
        request: Packet,
    },
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Responder::Future(_) => f.write_str("Future"),
            Responder::Callback { request, .. } => f
                .debug_struct("Callback")
                .field("msg_id", &request.msg_id)
                .finish_non_exhaustive(),
        }
    }
}

/// Hands a request's outcome to its future or (with an `on_error` event on failure) its callback.
pub(crate) fn complete(
    callbacks: &Callbacks,
    stage_id: i64,
    stage_type: &Arc<str>,
    responder: Responder,
    result: Result<Packet, ConnectorError>,
    deferred: Option<&Arc<Callbacks>>,
) {
    match responder {
        Responder::Future(sender) => {
            // The caller may have stopped waiting; nothing to do then.
            let _ = sender.send(result);
        }
        Responder::Callback { callback, request } => {
            let error = result.as_ref().err().map(|error| Event::Error {
                stage_id,
                stage_type: Arc::clone(stage_type),
                code: error.code(),
                request,
            });
            let events = std::iter::once(Event::Reply { callback, result }).chain(error);
            for event in events {
                match deferred {
                    Some(callbacks) => callbacks.emit_deferred(event),
                    None => callbacks.emit(event),
                }
            }
        }
    }
}
