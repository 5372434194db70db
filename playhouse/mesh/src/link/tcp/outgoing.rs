//! The sending side of a [`TcpLink`](super::TcpLink): one connection per peer, owned by a task
//! that dials it, greets it with this server's id, writes what is queued for it in batches,
//! and dials again when the connection ends.
//!
//! The acceptor never writes, so the task reads its connection only to notice it ending.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;

use super::shared::{Outgoing, Shared};
use crate::link::LinkEvent;
use crate::link::address::parse_address;
use crate::link::dialer::Dialer;
use crate::link::frame::{Frame, FrameEncoder};
use crate::link::peers::PeerTable;

/// Opens the outgoing connection to `target` at `address`: spawns the task that keeps it,
/// which stops on `cancel`, and returns what senders keep of it.
pub(super) fn open<D: Dialer>(
    shared: &Arc<Shared<D>>,
    target: &str,
    address: &str,
    cancel: CancellationToken,
) -> Outgoing {
    let (tx, rx) = mpsc::channel(shared.config.send_queue);
    let up = Arc::new(AtomicBool::new(false));
    let task = run_peer(
        Arc::clone(shared),
        Arc::from(target),
        address.to_owned(),
        rx,
        Arc::clone(&up),
        cancel,
    );
    shared.peers.spawn(task);
    Outgoing { tx, up }
}

/// Owns the outgoing connection to one peer: dial, hello, write batches, reconnect.
async fn run_peer<D: Dialer>(
    shared: Arc<Shared<D>>,
    target: Arc<str>,
    address: String,
    mut rx: mpsc::Receiver<Frame>,
    up: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let config = shared.config;
    let Some((host, port)) = parse_address(&address) else {
        tracing::error!(%target, %address, "bad mesh address");
        return;
    };
    loop {
        let dialed = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            dialed = tokio::time::timeout(config.connect_timeout, shared.dialer.dial(&host, port)) => dialed,
        };
        if let Ok(Ok(io)) = dialed {
            let (mut read, write) = tokio::io::split(io);
            let mut write = FramedWrite::new(write, FrameEncoder);
            let hello = (
                Bytes::copy_from_slice(shared.server_id.as_bytes()),
                Bytes::new(),
            );
            let greeted = tokio::time::timeout(config.send_timeout, write.send(hello)).await;
            if matches!(greeted, Ok(Ok(()))) {
                up.store(true, Ordering::Release);
                tracing::debug!(%target, %address, "mesh peer connected");
                let mut batch = Vec::new();
                // The acceptor never writes: a read returning is the connection ending.
                let mut ended = [0u8; 1];
                loop {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => {
                            up.store(false, Ordering::Release);
                            return;
                        }
                        _ = read.read(&mut ended) => {
                            up.store(false, Ordering::Release);
                            tracing::debug!(%target, "mesh peer went away; reconnecting");
                            shared.peers.emit(LinkEvent::PeerDown { target: Arc::clone(&target) });
                            break;
                        }
                        frame = rx.recv() => {
                            let Some(frame) = frame else { return };
                            batch.clear();
                            batch.push(frame);
                            // One scheduler turn for the other tasks that are ready to queue
                            // theirs: woken by the first frame, this task would otherwise
                            // write each frame with a system call of its own.
                            tokio::task::yield_now().await;
                            while batch.len() < 256 {
                                match rx.try_recv() {
                                    Ok(frame) => batch.push(frame),
                                    Err(_) => break,
                                }
                            }
                            if !write_batch(&mut write, &batch, config.send_timeout).await {
                                up.store(false, Ordering::Release);
                                tracing::warn!(%target, "mesh send failed; reconnecting");
                                fail(&shared.peers, &target, batch.drain(..).map(|(h, _)| h));
                                shared.peers.emit(LinkEvent::PeerDown { target: Arc::clone(&target) });
                                break;
                            }
                        }
                    }
                }
            }
        }
        up.store(false, Ordering::Release);
        // Whatever was queued for the dead connection fails now.
        let mut queued = Vec::new();
        while let Ok((header, _)) = rx.try_recv() {
            queued.push(header);
        }
        fail(&shared.peers, &target, queued.into_iter());
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(config.reconnect_backoff) => {}
        }
    }
}

/// Writes `batch` and flushes it; false when that fails or takes longer than `timeout`.
async fn write_batch<W: AsyncWrite + Unpin>(
    write: &mut FramedWrite<W, FrameEncoder>,
    batch: &[Frame],
    timeout: Duration,
) -> bool {
    let send = async {
        for frame in batch {
            write.feed(frame.clone()).await?;
        }
        write.flush().await
    };
    matches!(tokio::time::timeout(timeout, send).await, Ok(Ok(())))
}

/// Reports every frame of `headers` undelivered.
fn fail(peers: &PeerTable<Outgoing>, target: &Arc<str>, headers: impl Iterator<Item = Bytes>) {
    for header in headers {
        peers.emit(LinkEvent::SendFailed {
            target: Arc::clone(target),
            header,
        });
    }
}
