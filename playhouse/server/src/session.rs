//! One client connection: framing, heartbeat echo, auth/idle timeouts, the authentication
//! state machine, and an outbound queue written in batches.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use playhouse_protocol::{ClientFrame, ErrorCode, ServerCodec, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::play_server::PlayShared;
use crate::session_handle::{Outbound, SessionHandle, SessionId};
use crate::stage::registry::{CreateRequest, JoinOutcome, StageHandle, StageMsg};

/// Most queued frames written before one flush.
const WRITE_BATCH: usize = 256;

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
    kill: CancellationToken,
    state: State,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn run<Io>(io: Io, peer: String, transport: &'static str, shared: Arc<PlayShared>)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = shared.next_session_id();
    let span = tracing::info_span!("session", id, %peer, transport);
    async move {
        let codec = ServerCodec::new(shared.config.codec);
        let (read, write) = tokio::io::split(io);
        let (tx, rx) = mpsc::channel(shared.config.session_outbound_capacity);
        let kill = CancellationToken::new();
        let mut session = Session {
            id,
            handle: SessionHandle::new(id, tx, kill.clone()),
            shared,
            reader: FramedRead::new(read, codec.clone()),
            writer: FramedWrite::new(write, codec),
            rx,
            kill,
            state: State::Fresh,
        };
        tracing::debug!("connected");
        let reason = session.serve().await;
        session.close(reason).await;
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
                    Some(Err(error)) => {
                        tracing::warn!(%error, "bad frame; closing the connection");
                        return "protocol error";
                    }
                    Some(Ok(frame)) => {
                        idle_deadline = Instant::now() + self.shared.config.idle_timeout;
                        if let Err(reason) = self.on_frame(frame, auth_deadline).await {
                            return reason;
                        }
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return if deadline == idle_deadline { "idle timeout" } else { "auth timeout" };
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
                Outbound::Frame(frame) => self.feed(frame).await?,
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
        self.writer.flush().await.map_err(|_| "write failed")
    }

    async fn feed(&mut self, frame: ServerFrame) -> Result<(), Reason> {
        match self.writer.feed(frame).await {
            Ok(()) => Ok(()),
            Err(playhouse_protocol::EncodeError::Io(_)) => Err("write failed"),
            Err(error) => {
                // A frame the server cannot encode (too large) is dropped, not the connection.
                tracing::error!(%error, "dropping an outgoing frame");
                Ok(())
            }
        }
    }

    async fn send_now(&mut self, frame: ServerFrame) -> Result<(), Reason> {
        self.feed(frame).await?;
        self.writer.flush().await.map_err(|_| "write failed")
    }

    async fn on_frame(&mut self, frame: ClientFrame, auth_deadline: Instant) -> Result<(), Reason> {
        if frame.is_heartbeat() {
            return self.send_now(ServerFrame::heartbeat()).await;
        }
        let is_auth = frame.msg_id == self.shared.auth_msg_id;
        match &self.state {
            State::Joined { .. } if is_auth => {
                let reply = error_frame(&frame, ErrorCode::ALREADY_AUTHENTICATED);
                self.send_now(reply).await
            }
            State::Joined { stage, actor } => {
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
                Err("message before authentication")
            }
            State::Detached(code) => {
                let code = *code;
                self.reply_error(&frame, code).await
            }
        }
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
                    let (stage, _) = shared.stage_env.registry.get_or_spawn(
                        &shared.stage_env,
                        stage_id,
                        kind.as_ref(),
                        || CreateRequest { packet, done: None },
                    );
                    stage
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
            outcome = done_rx => outcome,
            _ = self.kill.cancelled() => return Err("closed by the server"),
            _ = tokio::time::sleep_until(deadline) => return Err("auth timeout"),
        };
        if let Ok(JoinOutcome::Joined { actor }) = outcome {
            tracing::debug!(stage = stage.stage_id, actor, "authenticated");
            self.state = State::Joined { stage, actor };
        }
        Ok(())
    }

    /// Flushes what is queued (bounded in time), then tells the stage the client is gone.
    async fn close(mut self, reason: Reason) {
        tracing::debug!(reason, "disconnected");
        self.rx.close();
        let flush = async {
            while let Ok(outbound) = self.rx.try_recv() {
                if let Outbound::Frame(frame) = outbound
                    && self.writer.feed(frame).await.is_err()
                {
                    return;
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
        value = fut => Ok(value),
        _ = kill.cancelled() => Err("closed by the server"),
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
