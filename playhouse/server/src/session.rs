//! One client connection: framing, heartbeat echo, auth/idle timeouts, the authentication
//! state machine, and an outbound queue written in batches.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use playhouse_protocol::{
    Capabilities, ClientFrame, ErrorCode, SERVER_HEADER_MIN, ServerCodec, ServerFrame,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::limits::{Slot, TokenBucket};
use crate::metrics::Rejection;
use crate::play_server::PlayShared;
use crate::session_handle::{Outbound, QueuedBytes, SessionHandle, SessionId};
use crate::stage::registry::{CreateRequest, JoinOutcome, StageHandle, StageMsg};

/// Most queued frames written before one flush.
const WRITE_BATCH: usize = 256;
/// Most requests whose latency is tracked at once per connection (older ones are forgotten).
const TRACKED_REQUESTS: usize = 256;

/// Initial read and write buffers per session (they grow to fit larger frames and batches).
const READ_BUFFER: usize = 2048;
const WRITE_BUFFER: usize = 2048;

/// Where a connection stands in the authentication flow.
#[derive(Debug)]
enum State {
    /// Connected, never authenticated: only heartbeats and the authenticate message allowed.
    Fresh,
    /// Authenticated into a stage as an actor.
    Joined { stage: StageHandle, actor: u64 },
    /// Was in a stage that it left or that closed: requests get `code`, authenticate again
    /// to join a stage.
    Detached(ErrorCode),
}

/// Why a connection ended, for the log.
type Reason = &'static str;

struct Session<R, W> {
    id: SessionId,
    shared: Arc<PlayShared>,
    reader: FramedRead<R, ServerCodec>,
    writer: FramedWrite<W, ServerCodec>,
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
}

/// Serves one accepted connection until it closes.
pub(crate) async fn run<Io>(
    io: Io,
    peer: std::net::SocketAddr,
    transport: &'static str,
    shared: Arc<PlayShared>,
    slot: Slot,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = shared.next_session_id();
    let span = tracing::info_span!("session", id, %peer, transport);
    async move {
        let codec = ServerCodec::new(shared.config.codec);
        let mut read_codec = codec.clone();
        // Small frames only until the client has authenticated.
        read_codec.set_max_incoming(shared.config.max_unauthenticated_packet_size);
        let (read, write) = tokio::io::split(io);
        let (tx, rx) = mpsc::channel(shared.config.session_outbound_capacity);
        let queued = Arc::new(QueuedBytes::new(shared.config.session_outbound_bytes));
        // A child of the server's stop token: a stop reaches even a session that waits on a
        // full stage mailbox.
        let kill = shared.session_stop.child_token();
        shared.metrics.session_opened(transport);
        let handle = SessionHandle::new(
            id,
            tx,
            kill.clone(),
            Arc::clone(&shared.metrics),
            Arc::clone(&queued),
        );
        let mut session = Session {
            id,
            handle,
            queued,
            rate: shared.config.rate_limit.map(TokenBucket::new),
            stage_creations: shared.config.stage_creation_rate.map(TokenBucket::new),
            in_flight: VecDeque::new(),
            capabilities: None,
            shared,
            // Small to start: 10,000 mostly idle sessions must stay cheap.
            reader: FramedRead::with_capacity(read, read_codec, READ_BUFFER),
            writer: FramedWrite::with_capacity(write, codec, WRITE_BUFFER),
            rx,
            kill,
            state: State::Fresh,
        };
        tracing::debug!("connected");
        let reason = session.serve().await;
        let metrics = Arc::clone(&session.shared.metrics);
        session.close(reason).await;
        metrics.session_closed(transport);
        drop(slot);
    }
    .instrument(span)
    .await
}

impl<R, W> Session<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    async fn serve(&mut self) -> Reason {
        let config = &self.shared.config;
        let auth_deadline = Instant::now() + config.auth_timeout;
        let mut idle_deadline = Instant::now() + config.idle_timeout;
        let stop = self.shared.session_stop.clone();
        loop {
            let deadline = match self.state {
                State::Joined { .. } => idle_deadline,
                _ => idle_deadline.min(auth_deadline),
            };
            tokio::select! {
                biased;
                _ = self.kill.cancelled() => return "closed by the server",
                _ = stop.cancelled() => return "server stopping",
                Some(outbound) = self.rx.recv() => {
                    if let Err(reason) = self.write_batch(outbound).await {
                        return reason;
                    }
                }
                frame = self.reader.next() => match frame {
                    None => return "closed by the client",
                    Some(Err(playhouse_protocol::DecodeError::Io(error))) => {
                        tracing::debug!(%error, "connection error");
                        return "transport error";
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "bad frame; closing the connection");
                        self.shared.metrics.reject(Rejection::of(&error));
                        return "protocol error";
                    }
                    Some(Ok(frame)) => {
                        idle_deadline = Instant::now() + self.shared.config.idle_timeout;
                        let metrics = &self.shared.metrics;
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
                _ = tokio::time::sleep_until(deadline) => {
                    let metrics = &self.shared.metrics;
                    return if deadline == idle_deadline {
                        metrics.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                        "idle timeout"
                    } else {
                        metrics.auth_timeouts.fetch_add(1, Ordering::Relaxed);
                        "auth timeout"
                    };
                }
            }
        }
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
                        self.state = State::Detached(code);
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
        let timeout = self.shared.config.write_timeout;
        let flush = until_killed(&self.kill, self.writer.flush());
        match tokio::time::timeout(timeout, flush).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(_))) => Err("write failed"),
            Ok(Err(reason)) => Err(reason),
            Err(_) => {
                self.shared.metrics.reject(Rejection::SlowConsumer);
                Err("write timeout: the client does not read")
            }
        }
    }

    async fn feed(&mut self, mut frame: ServerFrame) -> Result<(), Reason> {
        let metrics = &self.shared.metrics;
        // The body as the codec would write it uncompressed (its limit applies to that).
        let body = SERVER_HEADER_MIN - 1 + frame.msg_id.len() + frame.payload.len();
        if body > self.shared.config.codec.max_packet_size {
            // Dropped, not the connection; a reply becomes an error reply, so the requester
            // learns it at once instead of waiting for its timeout.
            tracing::error!(msg_id = %frame.msg_id, body, "outgoing frame over max_packet_size; dropped");
            metrics.reject(Rejection::OversizedFrame);
            if frame.msg_seq == 0 {
                return Ok(());
            }
            frame.error_code = ErrorCode::PACKET_TOO_LARGE;
            frame.payload = Bytes::new();
        }
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
        let timeout = self.shared.config.write_timeout;
        let feed = until_killed(&self.kill, self.writer.feed(frame));
        let fed = match tokio::time::timeout(timeout, feed).await {
            Ok(fed) => fed?,
            Err(_) => {
                self.shared.metrics.reject(Rejection::SlowConsumer);
                return Err("write timeout: the client does not read");
            }
        };
        match fed {
            Ok(()) => Ok(()),
            Err(playhouse_protocol::EncodeError::Io(_)) => Err("write failed"),
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
            return self.send_now(ServerFrame::heartbeat()).await;
        }
        if frame.is_hello() {
            return self.hello(frame).await;
        }
        let is_auth = frame.msg_id == self.shared.auth_msg_id;
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
                let msg = StageMsg::Client {
                    actor: *actor,
                    session: self.id,
                    seq: frame.msg_seq,
                    packet: playhouse_protocol::Packet {
                        msg_id: frame.msg_id.clone(),
                        payload: frame.payload.clone(),
                    },
                };
                let tx = stage.tx.clone();
                match until_killed(&self.kill, tx.send(msg)).await? {
                    Ok(()) => Ok(()),
                    Err(_) => {
                        // The stage is gone (closed or panicked).
                        self.state = State::Detached(ErrorCode::STAGE_NOT_FOUND);
                        self.reply_error(&frame, ErrorCode::STAGE_NOT_FOUND).await
                    }
                }
            }
            _ if is_auth => self.authenticate(frame, auth_deadline).await,
            State::Fresh => {
                tracing::warn!(msg_id = %frame.msg_id, "message before authentication");
                self.shared.metrics.reject(Rejection::BeforeAuth);
                Err("message before authentication")
            }
            State::Detached(code) => {
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
        let granted = requested & self.shared.offered_capabilities();
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
        let shared = Arc::clone(&self.shared);
        if shared.control.is_stopping() {
            return Err("server stopping");
        }
        let reply_id = shared.auth_reply_id.clone();
        let seq = frame.msg_seq;
        let stage = match shared.stage_env.registry.get(frame.stage_id) {
            Some(stage) => stage,
            None => match &shared.default_kind {
                Some(kind) => {
                    let stage_id = match frame.stage_id {
                        0 => shared.stage_env.registry.generate_id(),
                        id => id,
                    };
                    let packet = playhouse_protocol::Packet {
                        msg_id: frame.msg_id.clone(),
                        payload: frame.payload.clone(),
                    };
                    if let Some(bucket) = self.stage_creations.as_mut()
                        && !bucket.take()
                    {
                        tracing::debug!("stage creation rate exceeded");
                        shared
                            .metrics
                            .stages_refused
                            .fetch_add(1, Ordering::Relaxed);
                        let code = ErrorCode::STAGE_CREATION_RATE_EXCEEDED;
                        let reply = ServerFrame::new(reply_id, seq, stage_id, code, Bytes::new());
                        return self.send_now(reply).await;
                    }
                    let spawned = shared.stage_env.registry.get_or_spawn(
                        &shared.stage_env,
                        stage_id,
                        kind.as_ref(),
                        || CreateRequest { packet, done: None },
                    );
                    match spawned {
                        Ok((stage, _)) => stage,
                        Err(code) => {
                            let reply =
                                ServerFrame::new(reply_id, seq, stage_id, code, Bytes::new());
                            return self.send_now(reply).await;
                        }
                    }
                }
                None => {
                    let reply = ServerFrame::new(
                        reply_id,
                        seq,
                        frame.stage_id,
                        ErrorCode::STAGE_NOT_FOUND,
                        Bytes::new(),
                    );
                    return self.send_now(reply).await;
                }
            },
        };

        let (done_tx, done_rx) = oneshot::channel();
        let join = StageMsg::Join {
            session: self.handle.clone(),
            reply_id: reply_id.clone(),
            seq,
            packet: frame.into_packet(),
            done: done_tx,
        };
        if until_killed(&self.kill, stage.tx.send(join))
            .await?
            .is_err()
        {
            let reply = ServerFrame::new(
                reply_id,
                seq,
                stage.stage_id,
                ErrorCode::STAGE_NOT_FOUND,
                Bytes::new(),
            );
            return self.send_now(reply).await;
        }
        // Fresh connections must finish authenticating in time, however slow the stage is.
        let deadline = match self.state {
            State::Fresh => auth_deadline,
            _ => Instant::now() + self.shared.config.auth_timeout,
        };
        let outcome = tokio::select! {
            biased;
            _ = self.kill.cancelled() => return Err("closed by the server"),
            outcome = done_rx => outcome,
            _ = tokio::time::sleep_until(deadline) => return Err("auth timeout"),
        };
        match outcome {
            Ok(JoinOutcome::Joined { actor }) => {
                tracing::debug!(stage = stage.stage_id, actor, "authenticated");
                self.state = State::Joined { stage, actor };
                let max = self.shared.config.codec.max_packet_size;
                self.reader.decoder_mut().set_max_incoming(max);
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
        if reason != "protocol error" {
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

/// Awaits `fut` unless the connection is killed meanwhile.
async fn until_killed<T>(
    kill: &CancellationToken,
    fut: impl Future<Output = T>,
) -> Result<T, Reason> {
    tokio::select! {
        biased;
        _ = kill.cancelled() => Err("closed by the server"),
        value = fut => Ok(value),
    }
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
