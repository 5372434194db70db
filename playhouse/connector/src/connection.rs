//! The task that owns one connection: it writes commands from the API (batched: every ready
//! command is encoded, then written and flushed once), matches replies to pending requests by
//! sequence number, expires requests, sends heartbeats on its own clock, drops a silent
//! connection, and reports what happened through the callbacks.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use playhouse_protocol::{
    ACK_MSG_ID, Capabilities, ClientCodec, ClientFrame, CodecConfig, DecodeError, Encoder, Packet,
    ResumeGrant, ResumeRequest, SESSION_MSG_ID, ServerFrame, read_count,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::FramedRead;

use crate::ConnectorError;
use crate::callbacks::{Callbacks, Event, ReplyCallback, SessionEvent};
use crate::pending::Pending;
use crate::resume::{
    Backoff, BoxIo, ClientSession, Handshake, Reader, ResumeSetup, Writer, handshake,
};

/// Commands the API may queue before the task catches up.
pub(crate) const COMMAND_CAPACITY: usize = 4096;
/// Stop taking commands while this many encoded bytes wait for the socket.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// Most commands encoded in one batch before the task looks at the socket again.
const BATCH: usize = 1024;
/// Stop taking commands while this many frames of a resumable session wait for the server's
/// acknowledgement (it acknowledges every few frames, so only a stalled server gets here).
const MAX_UNACKED: usize = 4096;

/// What the API asks the connection task to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// A one-way message (seq 0).
    Send(Packet),
    /// A request awaiting a reply.
    Request(Request),
}

/// A request on its way to the task.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) packet: Packet,
    pub(crate) timeout: Duration,
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

/// Connection state the API reads without asking the task.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    /// Cleared by the task as it ends.
    pub(crate) alive: AtomicBool,
    pub(crate) authenticated: AtomicBool,
    /// Requests written and awaiting a reply.
    pub(crate) pending: AtomicUsize,
}

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
    /// How to dial again for a resumable session (`None`: sessions are not resumable).
    pub(crate) resume: Option<ResumeSetup>,
}

/// The API's handle on one connection task.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) state: Arc<LinkState>,
    close: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Link {
    /// Starts the task that owns `stream`.
    pub(crate) fn spawn(stream: BoxIo, setup: Setup, runtime: &Handle) -> Link {
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (close, close_rx) = oneshot::channel();
        let state = Arc::new(LinkState::default());
        state.alive.store(true, Ordering::SeqCst);
        let task = runtime.spawn(run(stream, setup, Arc::clone(&state), command_rx, close_rx));
        Link {
            commands,
            state,
            close: Mutex::new(Some(close)),
            task: Mutex::new(Some(task)),
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.state.alive.load(Ordering::SeqCst)
    }

    /// Asks the task to close the connection and waits until it has ended.
    pub(crate) async fn close(&self) {
        let close = self
            .close
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(close) = close {
            let _ = close.send(());
        }
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "connector connection task failed");
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// `disconnect()`.
    Client,
    /// Every connector handle was dropped.
    Dropped,
    /// The server closed the stream at a frame boundary.
    ServerClosed,
    /// The transport failed (including a stream cut inside a frame).
    Io(io::Error),
    /// The server sent an undecodable frame.
    Protocol(DecodeError),
    /// Nothing arrived for the heartbeat timeout.
    Silent(Duration),
    /// The resumable session could not be resumed.
    SessionLost,
}

impl End {
    /// Whether the network (or the server's end of it) failed, so a session may resume.
    fn lost_connection(&self) -> bool {
        matches!(self, End::ServerClosed | End::Io(_) | End::Silent(_))
    }
}

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

/// A deadline `after` from `now`, saturating instead of overflowing.
fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
}

async fn run(
    stream: BoxIo,
    setup: Setup,
    state: Arc<LinkState>,
    mut commands: mpsc::Receiver<Command>,
    mut close: oneshot::Receiver<()>,
) {
    let codec = CodecConfig {
        max_packet_size: setup.max_packet_size,
        ..CodecConfig::default()
    };
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = FramedRead::new(read, ClientCodec::new(codec));
    let mut task = Task {
        stage_id: setup.stage_id.load(Ordering::SeqCst),
        shared_stage_id: setup.stage_id,
        stage_type: setup.stage_type,
        state,
        callbacks: setup.callbacks,
        pending: Pending::default(),
        encoder: ClientCodec::new(codec),
        codec,
        out: BytesMut::new(),
        capabilities: setup.capabilities,
        resume: setup.resume,
        forming: None,
        session: None,
    };

    if !setup.capabilities.is_empty() {
        // First on the wire, before authentication; seq 0: nothing this connector does depends
        // on the answer (it decodes compressed and plain payloads alike, and a server that
        // grants no resumable session simply sends no grant).
        task.encode(ClientFrame::hello(0, setup.capabilities));
    }

    let heartbeat_every = setup.heartbeat_interval;
    let heartbeats = !heartbeat_every.is_zero();
    let silence_limit = setup.heartbeat_timeout;
    let check_silence = heartbeats && !silence_limit.is_zero();
    let start = Instant::now();
    let mut last_received = start;
    let heartbeat = tokio::time::sleep_until(deadline(start, heartbeat_every));
    let silence = tokio::time::sleep_until(deadline(start, silence_limit));
    let request_timer = sleep_until(start);
    tokio::pin!(heartbeat, silence, request_timer);
    let mut need_flush = false;

    let end = 'connection: loop {
        let end = loop {
            let next_timeout = task.pending.next_deadline();
            if let Some(next) = next_timeout
                && request_timer.deadline() != next
            {
                request_timer.as_mut().reset(next);
            }
            let room = task.out.len() < OUT_HIGH_WATER
                && task
                    .session
                    .as_ref()
                    .is_none_or(|s| s.streams.unacked().len() < MAX_UNACKED);

            // Biased, so a seed replays the same choices (tokio's default picks a branch at
            // random). Deadlines first (each is ready once, so none can starve the rest), then
            // draining output, then replies and pushes, then new commands (natural backpressure).
            tokio::select! {
                biased;
                _ = &mut close => break End::Client,
                _ = &mut heartbeat, if heartbeats => {
                    // Skip a beat rather than grow a backlog the socket is not draining.
                    if room {
                        task.heartbeat();
                    }
                    let now = Instant::now();
                    heartbeat.as_mut().reset(deadline(now, heartbeat_every));
                }
                _ = &mut silence, if check_silence => {
                    let due = deadline(last_received, silence_limit);
                    if Instant::now() >= due {
                        break End::Silent(silence_limit);
                    }
                    silence.as_mut().reset(due);
                }
                _ = &mut request_timer, if next_timeout.is_some() => task.expire(Instant::now()),
                written = write_some(&mut write, &mut task.out, &mut need_flush),
                    if !task.out.is_empty() || need_flush =>
                {
                    if let Err(error) = written {
                        break End::Io(error);
                    }
                }
                frame = reader.next() => match frame {
                    Some(Ok(frame)) => {
                        last_received = Instant::now();
                        task.on_frame(frame);
                    }
                    Some(Err(DecodeError::Io(error))) => break End::Io(error),
                    Some(Err(error)) => break End::Protocol(error),
                    None => break End::ServerClosed,
                },
                command = commands.recv(), if room => {
                    let Some(command) = command else { break End::Dropped };
                    task.on_command(command);
                    // Batch: take whatever else is ready, then write once.
                    for _ in 0..BATCH {
                        if task.out.len() >= OUT_HIGH_WATER {
                            break;
                        }
                        match commands.try_recv() {
                            Ok(command) => task.on_command(command),
                            Err(_) => break,
                        }
                    }
                }
            }
        };
        if !(end.lost_connection() && task.session.is_some() && task.resume.is_some()) {
            break end;
        }
        tracing::info!(?end, "connection lost; resuming the session");
        match task.resume_session(&mut close).await {
            Ok((new_reader, new_writer)) => {
                (reader, write) = (new_reader, new_writer);
                need_flush = false;
                let now = Instant::now();
                last_received = now;
                silence.as_mut().reset(deadline(now, silence_limit));
                heartbeat.as_mut().reset(deadline(now, heartbeat_every));
                continue 'connection;
            }
            Err(end) => break 'connection end,
        }
    };

    task.finish(end, &mut commands, &mut write, setup.close_timeout)
        .await;
}

/// Writes some of `out`, or flushes once it is empty. Cancel-safe: a cancelled write wrote
/// nothing.
async fn write_some<W>(write: &mut W, out: &mut BytesMut, need_flush: &mut bool) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if out.is_empty() {
        write.flush().await?;
        *need_flush = false;
        return Ok(());
    }
    if write.write_buf(out).await? == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    *need_flush = true;
    Ok(())
}

impl Task {
    fn encode(&mut self, frame: ClientFrame) -> bool {
        match self.encoder.encode(frame, &mut self.out) {
            Ok(()) => true,
            Err(error) => {
                // The API validates packets first, so this is a bug, not bad input.
                tracing::warn!(%error, "connector could not encode a frame; dropped");
                false
            }
        }
    }

    /// Encodes a data frame, numbering it in the resumable session (or the one forming).
    fn send_data(&mut self, frame: ClientFrame) -> bool {
        let kept = (self.session.is_some() || self.forming.is_some()).then(|| frame.clone());
        if !self.encode(frame) {
            return false;
        }
        if let Some(frame) = kept {
            match (&mut self.session, &mut self.forming) {
                (Some(session), _) => session.streams.sent(frame),
                (None, Some(forming)) => forming.push(frame),
                (None, None) => {}
            }
        }
        true
    }

    /// A heartbeat, with the acknowledgement of a resumable session when it moved.
    fn heartbeat(&mut self) {
        if let Some(count) = self.session.as_mut().and_then(|s| s.streams.pending_ack()) {
            self.encode(ClientFrame::ack(count));
        }
        self.encode(ClientFrame::heartbeat());
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Send(packet) => {
                let frame = ClientFrame::new(packet.msg_id, 0, self.stage_id, packet.payload);
                self.send_data(frame);
            }
            Command::Request(request) => self.start_request(request),
        }
    }

    fn start_request(&mut self, request: Request) {
        let Request {
            packet,
            timeout,
            authenticate,
            responder,
        } = request;
        let in_flight = InFlight {
            authenticate,
            responder,
        };
        let seq = match self
            .pending
            .insert(in_flight, deadline(Instant::now(), timeout))
        {
            Ok(seq) => seq,
            Err(in_flight) => {
                let error =
                    ConnectorError::Unsupported("all 65535 request sequence numbers are in use");
                self.complete(in_flight.responder, Err(error));
                return;
            }
        };
        self.publish_pending();
        let frame = ClientFrame::new(packet.msg_id, seq, self.stage_id, packet.payload);
        let sent = if authenticate && self.resume.is_some() {
            // A new authentication starts a new session: the last one ends on both sides,
            // and what follows the request is counted in case the server grants one.
            if self.session.take().is_some() {
                self.encode(ClientFrame::end_session());
            }
            let sent = self.encode(frame);
            self.forming = sent.then(Vec::new);
            sent
        } else {
            self.send_data(frame)
        };
        if !sent && let Some(in_flight) = self.pending.remove(seq) {
            self.publish_pending();
            let error = ConnectorError::Unsupported("packet cannot be encoded");
            self.complete(in_flight.responder, Err(error));
        }
    }

    fn publish_pending(&self) {
        self.state
            .pending
            .store(self.pending.len(), Ordering::SeqCst);
    }

    fn complete(&self, responder: Responder, result: Result<Packet, ConnectorError>) {
        complete(
            &self.callbacks,
            self.stage_id,
            &self.stage_type,
            responder,
            result,
            None,
        );
    }

    fn on_frame(&mut self, frame: ServerFrame) {
        // Heartbeat echoes, the answer to our hello (seq 0 asked for none, but a server may
        // send one) and the frames of resumable sessions are the connection's business, not
        // the application's.
        if frame.is_control() {
            self.on_control(frame);
            return;
        }
        if let Some(count) = self.session.as_mut().and_then(|s| s.streams.received_one()) {
            self.encode(ClientFrame::ack(count));
        }
        if frame.msg_seq == 0 {
            self.callbacks.emit(Event::Receive {
                stage_id: frame.stage_id,
                stage_type: Arc::clone(&self.stage_type),
                packet: frame.into_packet(),
            });
            return;
        }
        let Some(in_flight) = self.pending.remove(frame.msg_seq) else {
            tracing::debug!(
                seq = frame.msg_seq,
                msg_id = %frame.msg_id,
                "reply to no pending request (timed out?); discarded"
            );
            return;
        };
        self.publish_pending();
        let (code, reply_stage) = (frame.error_code, frame.stage_id);
        if in_flight.authenticate {
            // Granted or not, the session (if any) formed before this reply.
            self.forming = None;
        }
        let packet = frame.into_packet();
        let result = if code.is_success() {
            if in_flight.authenticate {
                self.state.authenticated.store(true, Ordering::SeqCst);
                // Connected with stage 0 ("create one for me"): adopt the stage the server chose.
                if self.stage_id == 0 && reply_stage != 0 {
                    self.stage_id = reply_stage;
                    self.shared_stage_id.store(reply_stage, Ordering::SeqCst);
                }
            }
            Ok(packet)
        } else {
            Err(ConnectorError::Server { code, packet })
        };
        self.complete(in_flight.responder, result);
    }

    fn on_control(&mut self, frame: ServerFrame) {
        match &*frame.msg_id {
            SESSION_MSG_ID => {
                let grant = ResumeGrant::from_payload(&frame.payload);
                if let (Some(grant), Some(logged)) = (grant, self.forming.take()) {
                    tracing::debug!(window = ?grant.window, "resumable session granted");
                    self.session = Some(ClientSession::start(grant, logged));
                }
            }
            ACK_MSG_ID => {
                let count = read_count(&frame.payload);
                if let Some(session) = self.session.as_mut()
                    && count.and_then(|c| session.streams.acknowledge(c)).is_none()
                {
                    tracing::warn!(?count, "the server acknowledged an impossible count");
                }
            }
            _ => {}
        }
    }

    /// Dials again until the session resumes, the server says it is lost, the resume window
    /// passes, or `disconnect()` is called. On success the frames the server did not receive
    /// are queued again, in order.
    async fn resume_session(
        &mut self,
        close: &mut oneshot::Receiver<()>,
    ) -> Result<(Reader, Writer), End> {
        let (Some(setup), Some(session)) = (self.resume.clone(), self.session.as_ref()) else {
            return Err(End::SessionLost);
        };
        self.callbacks
            .emit(Event::Session(SessionEvent::Reconnecting));
        // What was encoded for the dead connection is either in the session's unacknowledged
        // frames (data) or not worth resending (heartbeats, acknowledgements).
        self.out.clear();
        let grant = session.grant;
        let seed = setup.policy.jitter_seed.unwrap_or_else(|| {
            u64::from_le_bytes(grant.token.0[..8].try_into().unwrap_or_default())
        });
        let mut backoff = Backoff::new(setup.policy, seed);
        let give_up = Instant::now() + grant.window;
        let capabilities = self.capabilities;
        loop {
            if Instant::now() >= give_up {
                tracing::info!("resume window passed; session lost");
                return Err(End::SessionLost);
            }
            let request = ResumeRequest {
                token: grant.token,
                received: self.session.as_ref().map_or(0, |s| s.streams.received()),
            };
            let attempt = handshake(&setup.dial, self.codec, capabilities, request);
            let attempt = async {
                if setup.attempt_timeout.is_zero() {
                    return attempt.await;
                }
                tokio::time::timeout(setup.attempt_timeout, attempt)
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            };
            let outcome = tokio::select! {
                biased;
                _ = &mut *close => return Err(End::Client),
                outcome = tokio::time::timeout_at(give_up, attempt) => outcome,
            };
            match outcome {
                Err(_) => {
                    tracing::info!("resume window passed; session lost");
                    return Err(End::SessionLost);
                }
                Ok(Ok(Handshake::Lost)) => return Err(End::SessionLost),
                Ok(Ok(Handshake::Resumed {
                    reader,
                    writer,
                    server_received,
                })) => {
                    let Some(session) = self.session.as_mut() else {
                        return Err(End::SessionLost);
                    };
                    if session.streams.acknowledge(server_received).is_none() {
                        tracing::warn!(server_received, "the server's count is impossible");
                        return Err(End::SessionLost);
                    }
                    let resend: Vec<ClientFrame> =
                        session.streams.unacked().iter().cloned().collect();
                    tracing::info!(resent = resend.len(), "session resumed");
                    for frame in resend {
                        self.encode(frame);
                    }
                    self.callbacks.emit(Event::Session(SessionEvent::Resumed));
                    return Ok((reader, writer));
                }
                Ok(Err(error)) => {
                    let delay = backoff.next_delay();
                    tracing::debug!(%error, ?delay, "resume attempt failed");
                    let wake = (Instant::now() + delay).min(give_up);
                    tokio::select! {
                        biased;
                        _ = &mut *close => return Err(End::Client),
                        _ = sleep_until(wake) => {}
                    }
                }
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(in_flight) = self.pending.pop_expired(now) {
            self.publish_pending();
            self.complete(in_flight.responder, Err(ConnectorError::RequestTimeout));
        }
    }

    /// Marks the link dead, settles every request, reports the disconnect and, for a
    /// client-initiated close, flushes what was queued before it.
    async fn finish<W>(
        mut self,
        end: End,
        commands: &mut mpsc::Receiver<Command>,
        write: &mut W,
        close_timeout: Duration,
    ) where
        W: AsyncWrite + Unpin,
    {
        match &end {
            End::Protocol(error) => {
                tracing::warn!(%error, "protocol error from the server; connection closed");
            }
            End::Silent(limit) => {
                tracing::warn!(
                    ?limit,
                    "nothing received from the server; connection dropped"
                );
            }
            End::Io(error) => tracing::info!(%error, "connection lost"),
            End::SessionLost => tracing::info!("resumable session lost"),
            End::ServerClosed => tracing::debug!("server closed the connection"),
            End::Client | End::Dropped => tracing::debug!("connection closed by the client"),
        }
        self.state.alive.store(false, Ordering::SeqCst);
        self.state.authenticated.store(false, Ordering::SeqCst);

        // Nothing new gets in; what is already queued is settled here.
        commands.close();
        let graceful = matches!(end, End::Client);
        let mut unsent = Vec::new();
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Send(packet) if graceful => {
                    let frame = ClientFrame::new(packet.msg_id, 0, self.stage_id, packet.payload);
                    self.encode(frame);
                }
                Command::Send(_) => {}
                Command::Request(request) => unsent.push(request.responder),
            }
        }
        if graceful && self.session.take().is_some() {
            // Leaving on purpose: the server need not keep the session.
            self.encode(ClientFrame::end_session());
        }
        if matches!(end, End::SessionLost) {
            self.callbacks.emit(Event::Session(SessionEvent::Lost));
        }

        // on_disconnect first: by the time a failed request is observed, it is queued.
        self.callbacks.emit(Event::Disconnect);

        let error = || match &end {
            End::Protocol(error) => ConnectorError::Protocol(error.to_string()),
            End::SessionLost => ConnectorError::SessionLost,
            _ => ConnectorError::Disconnected,
        };
        let in_flight: Vec<Responder> = self.pending.drain().map(|p| p.responder).collect();
        self.publish_pending();
        for responder in in_flight.into_iter().chain(unsent) {
            self.complete(responder, Err(error()));
        }

        if graceful {
            let flush = async {
                write.write_all_buf(&mut self.out).await?;
                write.shutdown().await
            };
            let flushed = if close_timeout.is_zero() {
                flush.await
            } else {
                tokio::time::timeout(close_timeout, flush)
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            };
            if let Err(error) = flushed {
                tracing::debug!(%error, "could not flush before closing");
            }
        }
    }
}
