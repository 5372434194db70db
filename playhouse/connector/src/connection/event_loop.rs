//! The connection task: one biased `select!` over deadlines, the socket and the API's commands,
//! until the connection ends (or, for a resumable session, until it cannot be resumed).

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{FutureExt, StreamExt};
use playhouse_protocol::{ClientCodec, ClientFrame, CodecConfig, DecodeError, Hello};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::FramedRead;

use super::close::End;
use super::command::Command;
use super::push::room_for_push;
use super::task::{Setup, Task, TaskStatus};
use crate::pending::Pending;
use crate::resume::BoxIo;

/// Stop taking commands while this many encoded bytes wait for the socket.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// Most commands encoded in one batch before the task looks at the socket again.
const BATCH: usize = 1024;
/// Stop taking commands while this many frames of a resumable session wait for the server's
/// acknowledgement (it acknowledges every few frames, so only a stalled server gets here).
const MAX_UNACKED: usize = 4096;
/// Most frames already received that are read after the connection failed.
const LEFTOVER_FRAMES: usize = 256;

/// A deadline `after` from `now`, saturating instead of overflowing.
pub(super) fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
}

pub(super) async fn run(
    stream: BoxIo,
    setup: Setup,
    status: Arc<TaskStatus>,
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
        status,
        callbacks: setup.callbacks,
        pushes: setup.pushes,
        stalled: None,
        pending: Pending::default(),
        encoder: ClientCodec::new(codec),
        codec,
        out: BytesMut::new(),
        capabilities: setup.capabilities,
        resume: setup.resume,
        forming: None,
        session: None,
        closing: None,
        moving: None,
        moved: false,
    };

    let hello = Hello::from(setup.capabilities).naming(&task.stage_type);
    if !hello.requested.is_empty() {
        // First on the wire, before authentication; seq 0: nothing this connector does depends
        // on the answer (it decodes compressed and plain payloads alike, a server that grants
        // no resumable session simply sends no grant, and one that refuses the stage type
        // answers the login with the code).
        task.encode(ClientFrame::hello(0, hello));
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
            let stalled_sender = task.stalled_sender();
            let room = task.out.len() < OUT_HIGH_WATER
                && task
                    .session
                    .as_ref()
                    .is_none_or(|s| s.streams.unacked().len() < MAX_UNACKED);

            // Biased, so a seed replays the same choices (tokio's default picks a branch at
            // random). Deadlines first (each is ready once, so none can starve the rest), then
            // draining output, then room for a stalled push, then replies and pushes (not while
            // a push is stalled), then new commands (natural backpressure).
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
                    // Not reading while a full push receiver stalls us: that quiet is ours.
                    if task.stalled.is_some() {
                        last_received = Instant::now();
                    }
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
                permit = room_for_push(stalled_sender), if task.stalled.is_some() => {
                    task.on_push_room(permit);
                }
                frame = reader.next(), if task.stalled.is_none() => match frame {
                    Some(Ok(frame)) => {
                        last_received = Instant::now();
                        task.on_frame(frame);
                        if task.moving.is_some() {
                            // The server's last frame here: follow without waiting for it to
                            // close the connection.
                            break End::MoveNotice;
                        }
                    }
                    Some(Err(DecodeError::Io(error))) => break End::Io(error),
                    // "HTTP/1.1 400 ...": a WebSocket port answering our frames.
                    Some(Err(_)) if reader.read_buffer().starts_with(b"HTTP") => {
                        break End::HttpPort;
                    }
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
        if end.lost_connection() && task.closing.is_none() && task.moving.is_none() {
            // A failed write can win the race with frames already received: read what is
            // here (the server may have said why it closes, or where the stage moved) before
            // deciding.
            for _ in 0..LEFTOVER_FRAMES {
                if task.stalled.is_some() || task.moving.is_some() {
                    break;
                }
                match reader.next().now_or_never() {
                    Some(Some(Ok(frame))) => task.on_frame(frame),
                    _ => break,
                }
            }
        }
        // A server that said why it closes meant it: nothing to resume.
        let end = match task.closing {
            Some(code) if end.lost_connection() => End::Closed(code),
            _ => end,
        };
        // A moved stage: resume where it is now, or end saying where it went.
        let end = task.follow_move(end);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A timeout too long to add to the clock (e.g. `Duration::MAX`: "never") becomes a
    /// deadline decades away, not a panic and not one already due.
    #[test]
    fn an_unrepresentable_deadline_saturates_decades_away() {
        let now = Instant::now();
        let year = Duration::from_secs(60 * 60 * 24 * 365);
        assert_eq!(deadline(now, year), now + year);
        let never = deadline(now, Duration::MAX);
        assert!(never >= now + year * 30, "{:?}", never - now);
    }
}
