//! The task that owns one connection: it writes commands from the API (batched: every ready
//! command is encoded, then written and flushed once), matches replies to pending requests by
//! sequence number, expires requests, sends heartbeats on its own clock, drops a silent
//! connection, and reports what happened through the callbacks.
//!
//! * `handle`: the API's handle on a task ([`ConnectionHandle`](handle::ConnectionHandle)).
//! * `task`: what the task starts from ([`Setup`](task::Setup)), keeps ([`Task`](task::Task)) and
//!   publishes for the API ([`TaskStatus`](task::TaskStatus)).
//! * `command`: what the API asks ([`Command`](command::Command), [`Request`](command::Request))
//!   and where outcomes go ([`Responder`](command::Responder), [`complete`](command::complete)).
//! * `event_loop`: the task itself, one `select!` over deadlines, the socket and commands.
//! * `outbound`: commands and heartbeats into encoded frames; requests into the pending table.
//! * `inbound`: replies, pushes and the control frames of resumable sessions.
//! * `push`: handing pushes to the application's receiver or `on_receive`, stalling reads
//!   while the receiver is full.
//! * `reconnect`: dialing again and resuming a resumable session after a drop.
//! * `moving`: a stage the server moved to another server; the session follows it there.
//! * `close`: why a connection ended, and settling everything when it does.

mod close;
pub(crate) mod command;
mod event_loop;
pub(crate) mod handle;
mod inbound;
mod moving;
mod outbound;
mod push;
mod reconnect;
pub(crate) mod task;
