//! The receiving side of a [`ZmqLink`](super::ZmqLink): the bound ROUTER, whose messages name
//! their sender by its ZMTP identity (its server id).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use zeromq::util::PeerIdentity;
use zeromq::{RouterSocket, Socket, SocketRecv};

use crate::link::{EventSink, LinkEvent};

/// Owns the bound ROUTER: every `[sender id][header][payload]` becomes a
/// [`LinkEvent::Message`].
pub(super) async fn receive(
    shutdown: CancellationToken,
    mut socket: RouterSocket,
    sink: EventSink,
) {
    let backend = socket.backend();
    let mut names = SenderNames::default();
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = socket.recv() => received,
        };
        let message = match received {
            Ok(message) => message,
            Err(error) => {
                // Only `NoMessage`, which a ROUTER with no peers never returns; do not spin.
                tracing::warn!(%error, "mesh receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let frames: Result<[Bytes; 3], _> = message.into_vec().try_into();
        let [id, header, payload] = match frames {
            Ok(frames) => frames,
            Err(frames) => {
                let Some(id) = frames.first() else { continue };
                tracing::warn!(
                    peer = %String::from_utf8_lossy(id),
                    frames = frames.len(),
                    "malformed mesh message (expected [id][header][payload]); dropping the connection"
                );
                if let Ok(peer) = PeerIdentity::try_from(id.clone()) {
                    backend.peer_disconnected(&peer);
                }
                continue;
            }
        };
        let from = match names.name(id) {
            Ok(from) => from,
            Err(id) => {
                tracing::warn!(peer = ?id, "mesh peer without a server id; dropping the connection");
                if let Ok(peer) = PeerIdentity::try_from(id) {
                    backend.peer_disconnected(&peer);
                }
                continue;
            }
        };
        sink(LinkEvent::Message {
            from,
            header,
            payload,
        });
    }
}

/// The most sender ids [`SenderNames`] keeps; past it, it starts afresh.
const MAX_SENDER_NAMES: usize = 4096;

/// Interned sender ids: one allocation per peer, not per message, and a bounded number of
/// them however many identities connect.
#[derive(Default)]
struct SenderNames {
    names: HashMap<Bytes, Arc<str>>,
}

impl SenderNames {
    /// The server id a ZMTP identity names; the identity back when it is not UTF-8.
    fn name(&mut self, id: Bytes) -> Result<Arc<str>, Bytes> {
        if let Some(name) = self.names.get(&id) {
            return Ok(Arc::clone(name));
        }
        let Ok(name) = std::str::from_utf8(&id) else {
            return Err(id);
        };
        let name: Arc<str> = Arc::from(name);
        if self.names.len() >= MAX_SENDER_NAMES {
            self.names.clear();
        }
        self.names.insert(id, Arc::clone(&name));
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_names_are_interned_and_bounded() {
        let mut names = SenderNames::default();
        let first = names.name(Bytes::from_static(b"play-1")).unwrap();
        assert_eq!(&*first, "play-1");
        names.name(Bytes::from_static(b"play-2")).unwrap();
        let again = names.name(Bytes::from_static(b"play-1")).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one allocation per sender");
        let not_utf8 = Bytes::from_static(&[0xff, 0xfe]);
        assert_eq!(names.name(not_utf8.clone()), Err(not_utf8));
        for n in 0..MAX_SENDER_NAMES * 2 {
            names.name(Bytes::from(format!("s-{n}"))).unwrap();
            assert!(names.names.len() <= MAX_SENDER_NAMES);
        }
    }
}
