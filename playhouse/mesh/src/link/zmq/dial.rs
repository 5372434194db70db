//! The sending side of a [`ZmqLink`](super::ZmqLink): each wanted peer gets a dialing ROUTER
//! of its own, owned by a task that connects, checks the peer's identity, then writes what
//! senders queued in the peer's outbox, a batch per turn, and re-dials when the connection
//! is lost.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use zeromq::util::PeerIdentity;
use zeromq::{
    RouterRecvHalf, RouterSendHalf, RouterSocket, Socket, SocketEvent, SocketOptions, SocketRecv,
    SocketSend, ZmqMessage,
};

use super::outbox::Outbox;
use super::shared::{Connection, Shared};
use crate::link::LinkEvent;
use crate::link::address::endpoint;

/// Opens the connection to `target` at `address`: spawns the task that keeps it, which stops
/// on `cancel`, and returns what senders keep of it.
pub(super) fn open(
    shared: &Arc<Shared>,
    target: &str,
    address: &str,
    cancel: CancellationToken,
) -> Connection {
    let outbox = Arc::new(Outbox::default());
    let task = PeerTask {
        shared: Arc::clone(shared),
        id: Arc::from(target),
        address: address.to_owned(),
        outbox: Arc::clone(&outbox),
        cancel,
    };
    shared.peers.spawn(task.run());
    Connection {
        identity: Bytes::copy_from_slice(target.as_bytes()),
        outbox,
    }
}

/// Dials one peer on a socket of its own, publishes the connection's send half, watches the
/// connection, and re-dials it when lost, until cancelled (peer replaced, removed, or the
/// link closed).
struct PeerTask {
    shared: Arc<Shared>,
    id: Arc<str>,
    address: String,
    /// What senders queued for the connection ([`Connection::outbox`]).
    outbox: Arc<Outbox>,
    cancel: CancellationToken,
}

impl PeerTask {
    async fn run(self) {
        let endpoint = endpoint(&self.address);
        let mut failures = 0u32;
        loop {
            if failures > 0 {
                let delay = self.shared.config.backoff(failures);
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            let mut options = SocketOptions::default();
            options.peer_identity(self.shared.identity.clone());
            options.connect_timeout(self.shared.config.handshake_timeout);
            let mut socket = RouterSocket::with_options(options);
            let mut monitor = socket.monitor().boxed();
            let connected = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                connected = socket.connect(&endpoint) => connected,
            };
            if let Err(error) = connected {
                tracing::debug!(peer = %self.id, %endpoint, %error, "mesh connect failed");
                failures = failures.saturating_add(1);
                continue;
            }
            if let Some(identity) = connected_identity(&mut monitor)
                && identity[..] != *self.id.as_bytes()
            {
                tracing::warn!(
                    peer = %self.id,
                    %endpoint,
                    identity = %String::from_utf8_lossy(&identity),
                    "mesh peer answered with another identity; retrying"
                );
                failures = failures.saturating_add(1);
                continue;
            }
            let (send, mut receive) = socket.split();
            // Replaced or removed meanwhile: nobody would send on this connection.
            if self.cancel.is_cancelled() {
                return;
            }
            self.outbox.open();
            tracing::debug!(peer = %self.id, %endpoint, "mesh peer connected");
            let cancelled = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => true,
                _ = until_lost(&mut monitor, &mut receive) => false,
                _ = self.write(send) => false,
            };
            // Frames the connection did not take: their requests fail now.
            for message in self.outbox.close() {
                self.failed(&message);
            }
            // Dropping both halves (the send half went with `write`) closes it.
            drop(receive);
            if self.shared.peers.is_closed() {
                return;
            }
            if !cancelled {
                tracing::info!(peer = %self.id, "mesh peer connection lost; reconnecting");
            }
            // Whatever was written to the connection may be lost.
            let target = Arc::clone(&self.id);
            self.shared.peers.emit(LinkEvent::PeerDown { target });
            if cancelled {
                return;
            }
            failures = 1;
        }
    }
}

impl PeerTask {
    /// Hands queued frames to the connection a batch at a time, in order; returns when the
    /// connection fails a write (the crate dropped it).
    async fn write(&self, mut send: RouterSendHalf) {
        let mut batch = VecDeque::new();
        loop {
            self.outbox.ready().await;
            self.outbox.take(&mut batch);
            while let Some(message) = batch.pop_front() {
                let header = message.get(1).cloned();
                match send.send(message).now_or_never() {
                    Some(Ok(())) => {}
                    Some(Err(error)) => {
                        tracing::warn!(peer = %self.id, %error, "mesh send failed");
                        self.failed_header(header);
                        for message in batch.drain(..) {
                            self.failed(&message);
                        }
                        return;
                    }
                    // The crate's own queue (100,000 frames) is full: this frame is refused.
                    None => self.failed_header(header),
                }
            }
        }
    }

    /// `message` was not written: its request, if it was one, fails now.
    fn failed(&self, message: &ZmqMessage) {
        self.failed_header(message.get(1).cloned());
    }

    fn failed_header(&self, header: Option<Bytes>) {
        let target = Arc::clone(&self.id);
        let header = header.unwrap_or_default();
        self.shared
            .peers
            .emit(LinkEvent::SendFailed { target, header });
    }
}

/// The identity of the connection `connect` just made, from the monitor's `Connected` event
/// (which the crate raises before `connect` returns). `None` if it was lost.
fn connected_identity(monitor: &mut BoxStream<'static, SocketEvent>) -> Option<PeerIdentity> {
    while let Some(Some(event)) = monitor.next().now_or_never() {
        if let SocketEvent::Connected(_, identity) = event {
            return Some(identity);
        }
    }
    tracing::warn!("mesh connect reported no identity; assuming the expected one");
    None
}

/// Returns when the socket's one connection is gone.
async fn until_lost(monitor: &mut BoxStream<'static, SocketEvent>, receive: &mut RouterRecvHalf) {
    loop {
        tokio::select! {
            event = monitor.next() => match event {
                Some(SocketEvent::Disconnected(_)) | None => return,
                Some(_) => {}
            },
            // Peers never send on this connection, but polling it is what notices its read
            // side ending (the crate then reports `Disconnected`).
            received = receive.recv() => {
                if let Err(error) = received {
                    tracing::debug!(%error, "mesh send socket receive failed");
                    return;
                }
            }
        }
    }
}
