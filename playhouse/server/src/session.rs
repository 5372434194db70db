//! One client connection: framing, heartbeat echo, auth/idle timeouts, the authentication
//! state machine, and an outbound queue written in batches.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use playhouse_protocol::{
    ACK_MSG_ID, Capabilities, ClientFrame, END_MSG_ID, ErrorCode, RESUME_MSG_ID, ResumeRequest,
    SERVER_HEADER_MIN, ServerCodec, ServerFrame, read_count,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::limits::{Slot, TokenBucket};
use crate::metrics::Rejection;
use crate::session_context::SessionContext;
use crate::session_handle::{Outbound, QueuedBytes, SessionHandle, SessionId};
use crate::session_resume::{Attach, AttachSender, BoxRead, BoxWrite, Resumable};
use crate::stage::mailbox::{JoinOutcome, StageHandle, StageMsg};
use crate::stage_host::{Login, PendingJoin, Refused};

/// Most queued frames written before one flush.
const WRITE_BATCH: usize = 256;
/// Most requests whose latency is tracked at once per connection (older ones are forgotten).
const TRACKED_REQUESTS: usize = 256;

/// Initial read and write buffers per session (they grow to fit larger frames and batches).
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 1024;

/// Where a connection stands in the authentication flow.
#[derive(Debug)]
enum State {
    /// Connected, never authenticated: only heartbeats and the authenticate message allowed.
    Fresh,
    /// Authenticated into a stage as an actor.
    Joined { stage: StageHandle, actor: u64 },
    /// Was in a stage that it left or that closed: requests get `code`; authenticate again
    /// by `reauth_by` (the auth timeout after detaching) to join a stage, or be closed.
    Detached { code: ErrorCode, reauth_by: Instant },
}

/// Why a connection ended, for the log.
type Reason = &'static str;

const CLIENT_CLOSED: Reason = "closed by the client";
const TRANSPORT_ERROR: Reason = "transport error";
const IDLE_TIMEOUT: Reason = "idle timeout";
const WRITE_FAILED: Reason = "write failed";
const WRITE_TIMEOUT: Reason = "write timeout: the client does not read";
const PROTOCOL_ERROR: Reason = "protocol error";
/// This connection resumes another session: its socket goes to that session's task.
const HANDED_OVER: Reason = "handed over to the session it resumes";
const REPLAY_OVERFLOW: Reason = "session lost: the client does not acknowledge what it receives";
const WINDOW_PASSED: Reason = "session lost: the client did not come back within the resume window";
const RESUME_IMPOSSIBLE: Reason = "session lost: the client's frame count is impossible";

/// Whether a connection that ended for `reason` may be resumed by the client: the network
/// failed, not the client's conduct nor the server's decision.
fn lost_connection(reason: Reason) -> bool {
    matches!(
        reason,
        CLIENT_CLOSED | TRANSPORT_ERROR | IDLE_TIMEOUT | WRITE_FAILED | WRITE_TIMEOUT
    )
}

/// A resume request on this connection, for the session it names.
struct Handover {
    target: AttachSender,
    seq: u16,
    received: u64,
}

struct Session {
    id: SessionId,
    ctx: Arc<SessionContext>,
    reader: FramedRead<BoxRead, ServerCodec>,
    writer: FramedWrite<BoxWrite, ServerCodec>,
    rx: mpsc::Receiver<Outbound>,
    handle: SessionHandle,
    /// Bytes queued through `handle` and not yet taken by `write_batch`.
    queued: Arc<QueuedBytes>,
    kill: CancellationToken,
    state: State,
    rate: Option<TokenBucket>,
    /// Stages this connection may still create by logging into new ids.
    stage_creations: Option<TokenBucket>,
    /// Arrival times of requests awaiting a reply, oldest first, for the latency histogram.
    in_flight: VecDeque<(u16, Instant)>,
    /// What the capability handshake granted; `None` until the client sent its hello (old
    /// clients never do, and get the original protocol).
    capabilities: Option<Capabilities>,
    /// The numbered streams of a resumable session (`None`: not resumable, the original
    /// protocol; nothing is counted or kept).
    resume: Option<Box<Resumable>>,
    /// The transport of the current connection (a resumed session may change it).
    transport: &'static str,
    /// Whether a connection is attached (a resumable session outlives its connections).
    connected: bool,
    /// Set when this connection asks to resume another session.
    handover: Option<Handover>,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn run<Io>(
    io: Io,
    peer: std::net::SocketAddr,
    transport: &'static str,
    ctx: Arc<SessionContext>,
    slot: Slot,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = ctx.next_session_id();
    let span = tracing::info_span!("session", id, %peer, transport);
    async move {
        let codec = ServerCodec::new(ctx.config().codec);
        let mut read_codec = codec.clone();
        // Small frames only until the client has authenticated.
        read_codec.set_max_incoming(ctx.config().max_unauthenticated_packet_size);
        let (read, write) = tokio::io::split(io);
        let (tx, rx) = mpsc::channel(ctx.config().session_outbound_capacity);
        let queued = Arc::new(QueuedBytes::new(ctx.config().session_outbound_bytes));
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
        let mut session = Session {
            id,
            handle,
            queued,
            rate: ctx.config().rate_limit.map(TokenBucket::new),
            stage_creations: ctx.config().stage_creation_rate.map(TokenBucket::new),
            in_flight: VecDeque::new(),
            capabilities: None,
            resume: None,
            transport,
            connected: true,
            handover: None,
            ctx,
            // Small to start: 10,000 mostly idle sessions must stay cheap.
            reader: FramedRead::with_capacity(Box::new(read), read_codec, READ_BUFFER),
            writer: FramedWrite::with_capacity(Box::new(write), codec, WRITE_BUFFER),
            rx,
            kill,
            state: State::Fresh,
        };
        tracing::debug!("connected");
        let mut reason = session.serve().await;
        loop {
            if reason == HANDED_OVER {
                session.hand_over().await;
                drop(slot);
                return;
            }
            if !session.resumable_after(reason) {
                break;
            }
            reason = match session.park(reason).await {
                Ok(()) => session.serve().await,
                Err(reason) => reason,
            };
        }
        let metrics = Arc::clone(session.ctx.metrics());
        let (connected, transport) = (session.connected, session.transport);
        session.close(reason).await;
        if connected {
            metrics.session_closed(transport);
        }
        drop(slot);
    }
    .instrument(span)
    .await
}

impl Session {
    async fn serve(&mut self) -> Reason {
        let config = self.ctx.config();
        let auth_deadline = Instant::now() + config.auth_timeout;
        let mut idle_deadline = Instant::now() + config.idle_timeout;
        // One cancellation waiter and one timer for the whole connection, not one per
        // message: registering and dropping them took locks shared by every session. `kill`
        // is a child of the server's stop token, so it fires on a stop too.
        let kill = self.kill.clone();
        let killed = kill.cancelled();
        tokio::pin!(killed);
        // Moved lazily: a frame pushes `idle_deadline` back, and the timer, when it fires
        // early, is set to the deadline then due.
        let timer = tokio::time::sleep_until(idle_deadline.min(auth_deadline));
        tokio::pin!(timer);
        loop {
            let deadline = match self.state {
                State::Joined { .. } => idle_deadline,
                State::Fresh => idle_deadline.min(auth_deadline),
                State::Detached { reauth_by, .. } => idle_deadline.min(reauth_by),
            };
            if deadline < timer.deadline() {
                timer.as_mut().reset(deadline);
            }
            tokio::select! {
                biased;
                () = &mut killed => {
                    return if self.ctx.stop_token().is_cancelled() {
                        "server stopping"
                    } else {
                        "closed by the server"
                    };
                }
                Some(attach) = next_attach(&mut self.resume) => {
                    // The client came back on a new connection before this one was noticed
                    // dead: the new one replaces it.
                    if let Err(reason) = self.install(attach).await {
                        return reason;
                    }
                    idle_deadline = Instant::now() + self.ctx.config().idle_timeout;
                }
                Some(outbound) = self.rx.recv() => {
                    if let Err(reason) = self.write_batch(outbound).await {
                        return reason;
                    }
                }
                frame = self.reader.next() => match frame {
                    None => return CLIENT_CLOSED,
                    Some(Err(playhouse_protocol::DecodeError::Io(error))) => {
                        tracing::debug!(%error, "connection error");
                        return TRANSPORT_ERROR;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "bad frame; closing the connection");
                        self.ctx.metrics().reject(Rejection::of(&error));
                        return PROTOCOL_ERROR;
                    }
                    Some(Ok(frame)) => {
                        idle_deadline = Instant::now() + self.ctx.config().idle_timeout;
                        let metrics = &self.ctx.metrics();
                        metrics.messages_in.fetch_add(1, Ordering::Relaxed);
                        let size = 4 + 1 + frame.msg_id.len() + 10 + frame.payload.len();
                        metrics.bytes_in.fetch_add(size as u64, Ordering::Relaxed);
                        if self.rate.as_mut().is_some_and(|bucket| !bucket.take()) {
                            tracing::warn!("message rate limit exceeded; closing the connection");
                            metrics.reject(Rejection::RateLimited);
                            return "rate limited";
                        }
                        if let Err(reason) = self.on_frame(frame, auth_deadline).await {
                            return reason;
                        }
                    }
                },
                () = &mut timer => {
                    if Instant::now() < deadline {
                        // Pushed back by traffic since the timer was set.
                        timer.as_mut().reset(deadline);
                        continue;
                    }
                    let metrics = &self.ctx.metrics();
                    return if deadline == idle_deadline {
                        metrics.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                        IDLE_TIMEOUT
                    } else {
                        metrics.auth_timeouts.fetch_add(1, Ordering::Relaxed);
                        "auth timeout"
                    };
                }
            }
        }
    }

    /// The actor left its stage or the stage closed: requests get `code` from now on, and
    /// the connection has the auth timeout, counted from now, to join a stage again.
    fn detach(&mut self, code: ErrorCode) {
        let reauth_by = Instant::now() + self.ctx.config().auth_timeout;
        self.state = State::Detached { code, reauth_by };
    }

    /// Writes `first` and whatever else is queued, then flushes once.
    async fn write_batch(&mut self, first: Outbound) -> Result<(), Reason> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(outbound) = next {
            match outbound {
                Outbound::Frame(frame) => {
                    self.queued.release(&frame);
                    self.feed(frame).await?;
                }
                Outbound::Detached(code) => {
                    if matches!(self.state, State::Joined { .. }) {
                        self.detach(code);
                    }
                }
            }
            written += 1;
            next = if written < WRITE_BATCH {
                self.rx.try_recv().ok()
            } else {
                None
            };
        }
        self.flush().await
    }

    /// Flushes, unless the client stops reading for `write_timeout` or the server kills us.
    async fn flush(&mut self) -> Result<(), Reason> {
        let timeout = self.ctx.config().write_timeout;
        match bounded(&self.kill, timeout, self.writer.flush()).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(_))) => Err(WRITE_FAILED),
            Ok(Err(reason)) => Err(reason),
            Err(_) => {
                self.ctx.metrics().reject(Rejection::SlowConsumer);
                Err(WRITE_TIMEOUT)
            }
        }
    }

    /// A frame as it may go out: one over `max_packet_size` is dropped (`None`), or, for a
    /// reply, turned into a `PACKET_TOO_LARGE` error reply, so the requester learns it at once
    /// instead of waiting for its timeout.
    fn checked(&self, mut frame: ServerFrame) -> Option<ServerFrame> {
        // The body as the codec would write it uncompressed (its limit applies to that).
        let body = SERVER_HEADER_MIN - 1 + frame.msg_id.len() + frame.payload.len();
        if body > self.ctx.config().codec.max_packet_size {
            tracing::error!(msg_id = %frame.msg_id, body, "outgoing frame over max_packet_size; dropped");
            self.ctx.metrics().reject(Rejection::OversizedFrame);
            if frame.msg_seq == 0 {
                return None;
            }
            frame.error_code = ErrorCode::PACKET_TOO_LARGE;
            frame.payload = Bytes::new();
        }
        Some(frame)
    }

    /// Numbers a data frame of a resumable session and keeps it until acknowledged.
    fn record(&mut self, frame: &ServerFrame) -> Result<(), Reason> {
        let Some(resume) = self.resume.as_mut() else {
            return Ok(());
        };
        if frame.is_control() {
            return Ok(());
        }
        resume.record(frame).map_err(|overflow| {
            tracing::warn!(?overflow, "resume buffer full; session lost");
            self.ctx
                .metrics()
                .sessions_lost
                .fetch_add(1, Ordering::Relaxed);
            REPLAY_OVERFLOW
        })
    }

    async fn feed(&mut self, frame: ServerFrame) -> Result<(), Reason> {
        let Some(frame) = self.checked(frame) else {
            return Ok(());
        };
        self.record(&frame)?;
        self.feed_raw(frame).await
    }

    /// Writes a frame as it is (checked and numbered already, or a replay).
    async fn feed_raw(&mut self, frame: ServerFrame) -> Result<(), Reason> {
        let metrics = &self.ctx.metrics();
        metrics.messages_out.fetch_add(1, Ordering::Relaxed);
        metrics
            .bytes_out
            .fetch_add(frame.payload.len() as u64, Ordering::Relaxed);
        if frame.msg_seq != 0
            && let Some(at) = self
                .in_flight
                .iter()
                .position(|(seq, _)| *seq == frame.msg_seq)
            && let Some((_, arrived)) = self.in_flight.remove(at)
        {
            metrics.observe_latency(Instant::now() - arrived);
        }
        // `feed` writes out when the buffer is full, so it can block on a non-reading client.
        let timeout = self.ctx.config().write_timeout;
        let fed = match bounded(&self.kill, timeout, self.writer.feed(frame)).await {
            Ok(fed) => fed?,
            Err(_) => {
                self.ctx.metrics().reject(Rejection::SlowConsumer);
                return Err(WRITE_TIMEOUT);
            }
        };
        match fed {
            Ok(()) => Ok(()),
            Err(playhouse_protocol::EncodeError::Io(_)) => Err(WRITE_FAILED),
            Err(error) => {
                // Sizes are checked above; this is a frame no client could read.
                tracing::error!(%error, "dropping an outgoing frame");
                Ok(())
            }
        }
    }

    async fn send_now(&mut self, frame: ServerFrame) -> Result<(), Reason> {
        self.feed(frame).await?;
        self.flush().await
    }

    async fn on_frame(&mut self, frame: ClientFrame, auth_deadline: Instant) -> Result<(), Reason> {
        if frame.is_heartbeat() {
            if let Some(count) = self.resume.as_mut().and_then(|r| r.pending_ack()) {
                self.feed(ServerFrame::ack(count)).await?;
            }
            return self.send_now(ServerFrame::heartbeat()).await;
        }
        if frame.is_hello() {
            return self.hello(frame).await;
        }
        if self.granted(Capabilities::RESUME) && frame.is_control() {
            return self.resume_control(frame).await;
        }
        // A data frame of a resumable session (not the authentication that starts one).
        let counted = self.resume.is_some();
        self.on_data(frame, auth_deadline).await?;
        if counted && let Some(count) = self.resume.as_mut().and_then(|r| r.received_one()) {
            self.send_now(ServerFrame::ack(count)).await?;
        }
        Ok(())
    }

    fn granted(&self, capability: Capabilities) -> bool {
        self.capabilities.is_some_and(|c| c.contains(capability))
    }

    /// The control frames of resumable sessions.
    async fn resume_control(&mut self, frame: ClientFrame) -> Result<(), Reason> {
        match &*frame.msg_id {
            RESUME_MSG_ID => self.resume_request(frame).await,
            ACK_MSG_ID => {
                let count = read_count(&frame.payload);
                let Some(resume) = self.resume.as_mut() else {
                    return Ok(()); // an ack that raced the end of the session
                };
                if count.is_some_and(|count| resume.acknowledge(count)) {
                    return Ok(());
                }
                tracing::warn!(?count, "impossible acknowledgement; closing the connection");
                Err(PROTOCOL_ERROR)
            }
            END_MSG_ID => {
                self.end_resume();
                Ok(())
            }
            _ => self.reply_error(&frame, ErrorCode::INVALID_MESSAGE).await,
        }
    }

    /// A new connection asks to take over a session: checked here, carried out by the
    /// session's own task once this one hands its socket over.
    async fn resume_request(&mut self, frame: ClientFrame) -> Result<(), Reason> {
        let request = ResumeRequest::from_payload(&frame.payload);
        let (Some(request), State::Fresh, true) = (request, &self.state, frame.msg_seq != 0) else {
            tracing::debug!("resume request malformed, without seq, or not first");
            return self.reply_error(&frame, ErrorCode::INVALID_MESSAGE).await;
        };
        let Some(target) = self.ctx.resumes().find(&request.token) else {
            tracing::debug!(token = ?request.token, "resume of an unknown or lost session");
            return self.reply_error(&frame, ErrorCode::SESSION_LOST).await;
        };
        self.handover = Some(Handover {
            target,
            seq: frame.msg_seq,
            received: request.received,
        });
        Err(HANDED_OVER)
    }

    /// Makes the session resumable if the client asked and the server offers it: registers
    /// a token and sends the grant (before the authentication reply, already queued).
    async fn start_resume(&mut self) -> Result<(), Reason> {
        let Some(config) = self.ctx.config().resume else {
            return Ok(());
        };
        if !self.granted(Capabilities::RESUME) {
            return Ok(());
        }
        let (tx, rx) = mpsc::channel(1);
        let Some(token) = self.ctx.resumes().register(tx) else {
            return Ok(());
        };
        let resume = Resumable::new(token, config, rx);
        let grant = ServerFrame::session_grant(&resume.grant());
        self.resume = Some(Box::new(resume));
        self.send_now(grant).await
    }

    /// Forgets the resumable session (the client ended it, or authenticates anew).
    fn end_resume(&mut self) {
        if let Some(resume) = self.resume.take() {
            self.ctx.resumes().remove(&resume.token);
        }
    }

    fn resumable_after(&self, reason: Reason) -> bool {
        self.resume.is_some()
            && matches!(self.state, State::Joined { .. })
            && lost_connection(reason)
    }

    /// The connection is gone but the session stays, for the resume window: frames for the
    /// client are numbered and kept, the stage notices nothing. `Ok` once a new connection
    /// has taken over.
    async fn park(&mut self, why: Reason) -> Result<(), Reason> {
        tracing::debug!(why, "connection lost; session kept for the resume window");
        if self.connected {
            self.connected = false;
            self.ctx.metrics().session_closed(self.transport);
        }
        // Let the old socket go now (its peer sees it end), not when a new one replaces it.
        let codec = self.writer.encoder().clone();
        self.reader = FramedRead::new(Box::new(tokio::io::empty()), codec.clone());
        self.writer = FramedWrite::new(Box::new(tokio::io::sink()), codec);
        let window = self
            .resume
            .as_ref()
            .map_or_else(Default::default, |r| r.config.window);
        let deadline = Instant::now() + window;
        let stop = self.ctx.stop_token().clone();
        loop {
            tokio::select! {
                biased;
                _ = self.kill.cancelled() => return Err("closed by the server"),
                _ = stop.cancelled() => return Err("server stopping"),
                Some(attach) = next_attach(&mut self.resume) => return self.install(attach).await,
                Some(outbound) = self.rx.recv() => match outbound {
                    Outbound::Frame(frame) => {
                        self.queued.release(&frame);
                        if let Some(frame) = self.checked(frame) {
                            self.record(&frame)?;
                        }
                    }
                    Outbound::Detached(code) => self.detach(code),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    self.ctx.metrics().sessions_lost.fetch_add(1, Ordering::Relaxed);
                    return Err(WINDOW_PASSED);
                }
            }
        }
    }

    /// Takes a resuming connection: replies with what the server received, replays what the
    /// client missed, and goes on with live traffic on it.
    async fn install(&mut self, attach: Box<Attach>) -> Result<(), Reason> {
        let Attach {
            mut reader,
            writer,
            seq,
            received,
            capabilities,
            transport,
        } = *attach;
        let max = self.ctx.config().codec.max_packet_size;
        reader.decoder_mut().set_max_incoming(max);
        // The old connection, if still open, closes here.
        self.reader = reader;
        self.writer = writer;
        self.capabilities = Some(capabilities);
        if self.connected {
            self.ctx.metrics().session_closed(self.transport);
        }
        self.connected = true; // the new connection counted itself when it opened
        self.transport = transport;
        let Some(resume) = self.resume.as_mut() else {
            return Err(RESUME_IMPOSSIBLE);
        };
        let ours = resume.received();
        let Some(replay) = resume.replay_after(received) else {
            tracing::warn!(received, "resume with an impossible count; session lost");
            self.ctx
                .metrics()
                .sessions_lost
                .fetch_add(1, Ordering::Relaxed);
            let lost =
                ServerFrame::new(RESUME_MSG_ID, seq, 0, ErrorCode::SESSION_LOST, Bytes::new());
            let _ = self.send_now(lost).await;
            return Err(RESUME_IMPOSSIBLE);
        };
        tracing::debug!(received, replayed = replay.len(), "session resumed");
        self.feed_raw(ServerFrame::resumed(seq, ours)).await?;
        for frame in replay {
            self.feed_raw(frame).await?;
        }
        self.flush().await?;
        self.ctx
            .metrics()
            .sessions_resumed
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Gives this connection to the session it resumes (see `resume_request`).
    async fn hand_over(self) {
        let Session {
            reader,
            writer,
            handover,
            capabilities,
            transport,
            ctx,
            ..
        } = self;
        let Some(Handover {
            target,
            seq,
            received,
        }) = handover
        else {
            return;
        };
        let attach = Box::new(Attach {
            reader,
            writer,
            seq,
            received,
            capabilities: capabilities.unwrap_or_default(),
            transport,
        });
        let sent = tokio::select! {
            biased;
            _ = ctx.stop_token().cancelled() => None,
            sent = target.send(attach) => Some(sent),
        };
        match sent {
            // The socket lives on in the session that took it, which counts it from now on.
            Some(Ok(())) => return,
            Some(Err(mpsc::error::SendError(attach))) => {
                // The session ended between the lookup and now.
                let mut writer = attach.writer;
                let lost =
                    ServerFrame::new(RESUME_MSG_ID, seq, 0, ErrorCode::SESSION_LOST, Bytes::new());
                let _ = tokio::time::timeout(ctx.config().write_timeout, writer.send(lost)).await;
            }
            None => {}
        }
        ctx.metrics().session_closed(transport);
    }

    async fn on_data(&mut self, frame: ClientFrame, auth_deadline: Instant) -> Result<(), Reason> {
        let is_auth = frame.msg_id == *self.ctx.auth_msg_id();
        match &self.state {
            State::Joined { .. } if is_auth => {
                let reply = error_frame(&frame, ErrorCode::ALREADY_AUTHENTICATED);
                self.send_now(reply).await
            }
            State::Joined { stage, actor } => {
                if frame.msg_seq != 0 {
                    if self.in_flight.len() == TRACKED_REQUESTS {
                        self.in_flight.pop_front();
                    }
                    self.in_flight.push_back((frame.msg_seq, Instant::now()));
                }
                let stage_id = frame.stage_id;
                let msg = StageMsg::Client {
                    actor: *actor,
                    session: self.id,
                    seq: frame.msg_seq,
                    packet: frame.into_packet(),
                };
                match until_killed(&self.kill, stage.tx.send(msg)).await? {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::SendError(msg)) => {
                        // The stage is gone (closed or panicked).
                        let code = ErrorCode::STAGE_NOT_FOUND;
                        self.detach(code);
                        match msg {
                            StageMsg::Client { seq, packet, .. } if seq != 0 => {
                                let reply = ServerFrame::new(
                                    packet.msg_id,
                                    seq,
                                    stage_id,
                                    code,
                                    Bytes::new(),
                                );
                                self.send_now(reply).await
                            }
                            _ => Ok(()),
                        }
                    }
                }
            }
            _ if is_auth => self.authenticate(frame, auth_deadline).await,
            State::Fresh => {
                tracing::warn!(msg_id = %frame.msg_id, "message before authentication");
                self.ctx.metrics().reject(Rejection::BeforeAuth);
                Err("message before authentication")
            }
            State::Detached { code, .. } => {
                let code = *code;
                self.reply_error(&frame, code).await
            }
        }
    }

    /// The capability handshake (see `playhouse_protocol::Capabilities`): once, before
    /// authentication; grants what was asked for and this server offers.
    async fn hello(&mut self, frame: ClientFrame) -> Result<(), Reason> {
        let requested = Capabilities::from_payload(&frame.payload);
        let (Some(requested), State::Fresh, None) = (requested, &self.state, self.capabilities)
        else {
            tracing::debug!("late, repeated or malformed hello");
            return self.reply_error(&frame, ErrorCode::INVALID_MESSAGE).await;
        };
        let granted = requested & self.ctx.offered_capabilities();
        self.capabilities = Some(granted);
        self.writer
            .encoder_mut()
            .set_compression(granted.contains(Capabilities::LZ4));
        tracing::debug!(?requested, ?granted, "capabilities");
        if frame.msg_seq == 0 {
            return Ok(());
        }
        self.send_now(ServerFrame::hello(frame.msg_seq, granted))
            .await
    }

    async fn reply_error(&mut self, frame: &ClientFrame, code: ErrorCode) -> Result<(), Reason> {
        if frame.msg_seq == 0 {
            return Ok(());
        }
        self.send_now(error_frame(frame, code)).await
    }

    async fn authenticate(
        &mut self,
        frame: ClientFrame,
        auth_deadline: Instant,
    ) -> Result<(), Reason> {
        self.authenticate_with(frame, auth_deadline, 1).await
    }

    async fn authenticate_with(
        &mut self,
        frame: ClientFrame,
        auth_deadline: Instant,
        retries_left: u8,
    ) -> Result<(), Reason> {
        let requested_stage = frame.stage_id;
        if self.ctx.is_stopping() {
            return Err("server stopping");
        }
        // A new authentication ends the resumable session of the last one.
        self.end_resume();
        let reply_id = self.ctx.auth_reply_id().clone();
        let seq = frame.msg_seq;
        let login = Login {
            stage_id: frame.stage_id,
            session: self.handle.clone(),
            reply_id: reply_id.clone(),
            seq,
            packet: frame.into_packet(),
        };
        // A login that would create a stage spends this connection's creation allowance.
        let creations = &mut self.stage_creations;
        let admit = || creations.as_mut().is_none_or(TokenBucket::take);
        let login = self.ctx.host().login(login, admit);
        let PendingJoin { stage, outcome } = match until_killed(&self.kill, login).await? {
            Ok(pending) => pending,
            Err(Refused { stage_id, code }) => {
                let reply = ServerFrame::new(reply_id, seq, stage_id, code, Bytes::new());
                return self.send_now(reply).await;
            }
        };
        // Fresh connections must finish authenticating in time, however slow the stage is.
        let deadline = match self.state {
            State::Fresh => auth_deadline,
            _ => Instant::now() + self.ctx.config().auth_timeout,
        };
        let outcome = tokio::select! {
            biased;
            _ = self.kill.cancelled() => return Err("closed by the server"),
            outcome = outcome => outcome,
            _ = tokio::time::sleep_until(deadline) => return Err("auth timeout"),
        };
        match outcome {
            Ok(JoinOutcome::Joined { actor }) => {
                tracing::debug!(stage = stage.stage_id, actor, "authenticated");
                self.state = State::Joined { stage, actor };
                let max = self.ctx.config().codec.max_packet_size;
                self.reader.decoder_mut().set_max_incoming(max);
                self.start_resume().await?;
            }
            Ok(JoinOutcome::StageGone { packet }) if retries_left > 0 => {
                // The stage closed under us: the login goes to a fresh stage (or gets
                // StageNotFound without a default stage type).
                let frame = ClientFrame {
                    msg_id: packet.msg_id,
                    msg_seq: seq,
                    stage_id: requested_stage,
                    payload: packet.payload,
                };
                let retry = self.authenticate_with(frame, auth_deadline, retries_left - 1);
                return Box::pin(retry).await;
            }
            Ok(JoinOutcome::StageGone { .. }) => {
                let code = ErrorCode::STAGE_NOT_FOUND;
                let reply = ServerFrame::new(reply_id, seq, requested_stage, code, Bytes::new());
                return self.send_now(reply).await;
            }
            _ => {}
        }
        Ok(())
    }

    /// Flushes what is queued (bounded in time), then tells the stage the client is gone.
    async fn close(mut self, reason: Reason) {
        tracing::debug!(reason, "disconnected");
        self.end_resume();
        self.rx.close();
        let flush = async {
            while let Ok(outbound) = self.rx.try_recv() {
                if let Outbound::Frame(frame) = outbound {
                    self.queued.release(&frame);
                    if self.writer.feed(frame).await.is_err() {
                        return;
                    }
                }
            }
            let _ = self.writer.flush().await;
            let _ = self.writer.close().await;
        };
        if reason != PROTOCOL_ERROR && self.connected {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), flush).await;
        }
        if let State::Joined { stage, actor } = self.state {
            let _ = stage
                .tx
                .send(StageMsg::Disconnected {
                    actor,
                    session: self.id,
                })
                .await;
        }
    }
}

/// The next connection that resumes this session; never, for a session that is not
/// resumable.
async fn next_attach(resume: &mut Option<Box<Resumable>>) -> Option<Box<Attach>> {
    match resume {
        Some(resume) => resume.attach.recv().await,
        None => std::future::pending().await,
    }
}

/// Awaits `fut` unless the connection is killed meanwhile.
///
/// Most writes and mailbox sends complete at once: those return without registering a
/// cancellation waiter (a kill is then noticed by the serving loop).
async fn until_killed<T>(
    kill: &CancellationToken,
    fut: impl Future<Output = T>,
) -> Result<T, Reason> {
    let mut fut = std::pin::pin!(fut);
    if let Some(value) = poll_once(fut.as_mut()).await {
        return Ok(value);
    }
    tokio::select! {
        biased;
        _ = kill.cancelled() => Err("closed by the server"),
        value = fut => Ok(value),
    }
}

/// Polls `fut` once with the caller's context: its value if it is ready.
async fn poll_once<F: Future>(mut fut: std::pin::Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        std::task::Poll::Ready(value) => std::task::Poll::Ready(Some(value)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// Awaits `fut` for at most `timeout` unless the connection is killed meanwhile; the timer
/// and the cancellation waiter are set up only when `fut` is not ready at once.
async fn bounded<T>(
    kill: &CancellationToken,
    timeout: std::time::Duration,
    fut: impl Future<Output = T>,
) -> Result<Result<T, Reason>, tokio::time::error::Elapsed> {
    let mut fut = std::pin::pin!(fut);
    if let Some(value) = poll_once(fut.as_mut()).await {
        return Ok(Ok(value));
    }
    tokio::time::timeout(timeout, until_killed(kill, fut)).await
}

fn error_frame(frame: &ClientFrame, code: ErrorCode) -> ServerFrame {
    ServerFrame::new(
        frame.msg_id.clone(),
        frame.msg_seq,
        frame.stage_id,
        code,
        Bytes::new(),
    )
}
