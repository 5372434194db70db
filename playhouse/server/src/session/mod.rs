//! One client session: a connection's framing, heartbeats, timeouts, the authentication state
//! machine and a batched write path, and, for a resumable session, the life it keeps across
//! connections.
//!
//! `run` is the lifecycle; each concern lives next to it:
//! * `state`: what a session holds, and where it stands in the authentication flow;
//! * `event_loop`: the `select!` loop over the connection, its queue and its deadlines;
//!   `frame_deadline`: the time a frame that has started has to finish;
//! * `inbound`: each frame from the client, by kind; `auth`: logging into a stage;
//! * `outbound`: the batched, size-checked, latency-timed write path; `write_codec`: the
//!   codec it writes with (broadcasts encoded once);
//! * `resume`: parking a lost connection's session, taking it over from a new one, replay;
//! * `end`: why a connection ended ([`End`](end::End)), and closing the session;
//! * `killable`: waits that a kill or a stop ends;
//! * `handle`: the stage's view of a connection; `context`: what all sessions share.

/// Runs a cold path of a session (logging in, resuming, moving, closing, an error reply):
/// boxed, so the session's future holds only a pointer to it (what an idle connection
/// costs), and inside the session's span (which the hot loop does not enter, see
/// `Session::span`). `cold!(self.method(args))` evaluates to the path's output.
macro_rules! cold {
    ($session:ident . $($call:tt)+) => {{
        let span = $session.span.clone();
        ::tracing::Instrument::instrument(::std::boxed::Box::pin($session.$($call)+), span).await
    }};
}

mod auth;
pub(crate) mod context;
mod due_timer;
mod end;
mod event_loop;
mod frame_deadline;
mod halves;
pub(crate) mod handle;
mod inbound;
mod killable;
mod killed;
pub(crate) mod moved_state;
pub(crate) mod moving;
mod outbound;
pub(crate) mod relay;
pub(crate) mod relay_proxy;
pub(crate) mod resume;
mod stage_ref;
mod state;
mod write_codec;

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use self::context::SessionContext;
use self::end::End;
use self::halves::halves;
use self::handle::{QueuedBytes, SessionHandle};
use self::resume::registry::BoxRead;
use self::state::{Session, State};
use self::write_codec::Writer;
use crate::limits::{ConnectionPermit, TokenBucket};
use playhouse_protocol::ServerCodec;

/// Initial read and write buffers per session (they grow to fit larger frames and batches).
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 1024;

pub(crate) async fn run<Io>(
    io: Io,
    peer: std::net::SocketAddr,
    transport: &'static str,
    ctx: Arc<SessionContext>,
    permit: ConnectionPermit,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = ctx.next_session_id();
    let server = ctx.host().control().server_id();
    let span = tracing::info_span!("session", server, id, %peer, transport);
    let mut session = span.in_scope(|| {
        let codec = ServerCodec::new(ctx.config().codec);
        let mut read_codec = codec.clone();
        // Small frames only until the client has authenticated.
        read_codec.set_max_incoming(ctx.config().max_unauthenticated_packet_size);
        let (read, write) = halves(io);
        let (tx, rx) = mpsc::channel(ctx.config().session_outbound_capacity);
        let queued = QueuedBytes::new(ctx.config().session_outbound_bytes);
        let queued = Arc::new(queued.counted(Arc::clone(ctx.metrics())));
        // A child of the server's stop token: a stop reaches even a session that waits on a
        // full stage mailbox.
        let kill = ctx.stop_token().child_token();
        ctx.metrics().session_opened(transport);
        let handle = SessionHandle::new(
            id,
            tx,
            kill.clone(),
            Arc::clone(ctx.metrics()),
            Arc::clone(&queued),
        );
        // Small to start: 10,000 mostly idle sessions must stay cheap.
        let reader = FramedRead::with_capacity(read, read_codec, READ_BUFFER);
        let writer = FramedWrite::with_capacity(write, codec.into(), WRITE_BUFFER);
        tracing::debug!("connected");
        Session::new(
            id,
            ctx,
            reader,
            writer,
            rx,
            handle,
            queued,
            kill,
            transport,
            peer.ip(),
        )
    });
    session.span = span;
    // The loop is not inside the span: see `Session::span`.
    let end = session.serve().await;
    // Boxed with the other cold paths (logging in, resuming, moving, closing): what a
    // session's future holds inline is what every idle connection costs.
    Box::pin(session.go_on(end)).await;
    drop(permit);
}

impl Session {
    /// A session on its connection (or, adopted from a moved stage, without one yet), before
    /// it authenticates.
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: handle::SessionId,
        ctx: Arc<SessionContext>,
        reader: FramedRead<BoxRead, ServerCodec>,
        writer: Writer,
        rx: mpsc::Receiver<handle::Outbound>,
        handle: SessionHandle,
        queued: Arc<QueuedBytes>,
        kill: tokio_util::sync::CancellationToken,
        transport: &'static str,
        source: std::net::IpAddr,
    ) -> Session {
        Session {
            id,
            source,
            handle,
            queued,
            rate: ctx.config().rate_limit.map(TokenBucket::new),
            stage_creations: ctx.config().stage_creation_rate.map(TokenBucket::new),
            in_flight: VecDeque::new(),
            write_clock: None,
            capabilities: None,
            stage_type: None,
            resume: None,
            transport,
            connected: true,
            handover: None,
            opened: tokio::time::Instant::now(),
            span: tracing::Span::none(),
            ctx,
            reader,
            writer,
            rx,
            kill,
            state: State::Fresh,
        }
    }

    /// From the end of a connection on: a resumable session parks and serves the connection
    /// that resumes it, a connection that resumes another session hands its socket over, and
    /// anything else closes the session.
    async fn go_on(mut self, mut end: End) {
        loop {
            if end == End::HandedOver {
                cold!(self.hand_over());
                return;
            }
            if !self.resumable_after(end) {
                break;
            }
            end = match cold!(self.park(end)) {
                Ok(()) => self.serve().await,
                Err(end) => end,
            };
        }
        let metrics = Arc::clone(self.ctx.metrics());
        let (connected, transport) = (self.connected, self.transport);
        metrics.session_ended(self.opened.elapsed());
        cold!(self.close(end));
        if connected {
            metrics.session_closed(transport);
        }
    }
}
