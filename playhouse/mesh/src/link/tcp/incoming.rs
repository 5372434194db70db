//! The receiving side of a [`TcpLink`](super::TcpLink): the accept loop, and one task per
//! incoming connection, which reads the peer's hello (its server id) and then hands every
//! frame to the node. The newest connection from a peer replaces the older one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use playhouse_transport::Listener;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;

use super::shared::{Incoming, Shared};
use crate::link::dialer::Dialer;
use crate::link::frame::{codec, split_frame};
use crate::link::peers::lock;
use crate::link::{EventSink, LinkEvent};

/// Accepts connections, once the link is started (its sink arrives through `started`), until
/// the link closes.
pub(super) async fn accept_loop<L: Listener, D: Dialer>(
    mut listener: L,
    started: oneshot::Receiver<EventSink>,
    shared: Arc<Shared<D>>,
) {
    let sink = tokio::select! {
        biased;
        _ = shared.peers.shutdown().cancelled() => return,
        sink = started => match sink {
            Ok(sink) => sink,
            Err(_) => return,
        },
    };
    loop {
        tokio::select! {
            biased;
            _ = shared.peers.shutdown().cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((io, _)) => {
                    shared.peers.spawn(receive(io, Arc::clone(&shared), Arc::clone(&sink)));
                }
                Err(error) => {
                    tracing::warn!(%error, "mesh accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Reads one incoming connection: a hello frame with the peer's id, then messages, until it
/// ends, the peer connects again (the newer connection wins) or the node resets the peer.
async fn receive<Io, D>(io: Io, shared: Arc<Shared<D>>, sink: EventSink)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    D: Dialer,
{
    let config = shared.config;
    let mut frames = FramedRead::new(io, codec(config.max_frame));
    // The first frame is a hello whose header is the peer's server id.
    let hello = tokio::select! {
        biased;
        _ = shared.peers.shutdown().cancelled() => return,
        hello = tokio::time::timeout(config.connect_timeout, frames.next()) => hello,
    };
    let Ok(Some(Ok(hello))) = hello else {
        return;
    };
    let Some((id, _)) = split_frame(hello.freeze()) else {
        return;
    };
    let Ok(from) = std::str::from_utf8(&id) else {
        return;
    };
    let from: Arc<str> = Arc::from(from);
    let generation = shared.next_incoming.fetch_add(1, Ordering::Relaxed);
    let cancel = shared.peers.shutdown().child_token();
    let replaced = lock(&shared.incoming).insert(
        Arc::clone(&from),
        Incoming {
            generation,
            cancel: cancel.clone(),
        },
    );
    if let Some(old) = replaced {
        old.cancel.cancel();
    }
    loop {
        let frame = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            frame = frames.next() => frame,
        };
        let Some(Ok(frame)) = frame else {
            break;
        };
        let Some((header, payload)) = split_frame(frame.freeze()) else {
            tracing::warn!(%from, "malformed mesh frame; dropping the connection");
            break;
        };
        sink(LinkEvent::Message {
            from: Arc::clone(&from),
            header,
            payload,
        });
    }
    let mut incoming = lock(&shared.incoming);
    if incoming
        .get(&from)
        .is_some_and(|current| current.generation == generation)
    {
        incoming.remove(&from);
    }
}
