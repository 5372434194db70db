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
    Capabilities, ClientCodec, ClientFrame, CodecConfig, DecodeError, Encoder, Packet, ServerFrame,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::FramedRead;

use crate::ConnectorError;
use crate::callbacks::{Callbacks, Event, ReplyCallback};
use crate::pending::Pending;

/// Commands the API may queue before the task catches up.
pub(crate) const COMMAND_CAPACITY: usize = 4096;
/// Stop taking commands while this many encoded bytes wait for the socket.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// Most commands encoded in one batch before the task looks at the socket again.
const BATCH: usize = 1024;

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
    pub(crate) fn spawn<S>(stream: S, setup: Setup, runtime: &Handle) -> Link
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
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
    /// Encoded frames waiting for the socket.
    out: BytesMut,
}

/// A deadline `after` from `now`, saturating instead of overflowing.
fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
}

async fn run<S>(
    stream: S,
    setup: Setup,
    state: Arc<LinkState>,
    mut commands: mpsc::Receiver<Command>,
    mut close: oneshot::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
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
        out: BytesMut::new(),
    };

    if !setup.capabilities.is_empty() {
        // First on the wire, before authentication; seq 0: nothing this connector does depends
        // on the answer (it decodes compressed and plain payloads alike).
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

    let end = loop {
        let next_timeout = task.pending.next_deadline();
        if let Some(next) = next_timeout
            && request_timer.deadline() != next
        {
            request_timer.as_mut().reset(next);
        }
        let room = task.out.len() < OUT_HIGH_WATER;

        // Biased, so a seed replays the same choices (tokio's default picks a branch at
        // random). Deadlines first (each is ready once, so none can starve the rest), then
        // draining output, then replies and pushes, then new commands (natural backpressure).
        tokio::select! {
            biased;
            _ = &mut close => break End::Client,
            _ = &mut heartbeat, if heartbeats => {
                // Skip a beat rather than grow a backlog the socket is not draining.
                if room {
                    task.encode(ClientFrame::heartbeat());
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

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Send(packet) => {
                let frame = ClientFrame::new(packet.msg_id, 0, self.stage_id, packet.payload);
                self.encode(frame);
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
        if !self.encode(frame)
            && let Some(in_flight) = self.pending.remove(seq)
        {
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
        // Heartbeat echoes and the answer to our hello (seq 0 asked for none, but a server
        // may send one) are the connection's business, not the application's.
        if frame.is_heartbeat() || frame.is_hello() {
            return;
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

        // on_disconnect first: by the time a failed request is observed, it is queued.
        self.callbacks.emit(Event::Disconnect);

        let error = || match &end {
            End::Protocol(error) => ConnectorError::Protocol(error.to_string()),
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
