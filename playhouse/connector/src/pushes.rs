//! Server pushes as an async stream: [`Pushes`], taken with
//! [`Connector::pushes`](crate::Connector::pushes), and the [`PushRoute`] that decides where
//! each push goes (the receiver when one is taken, else `on_receive`).
//!
//! The receiver is bounded. When it is full the connection task keeps the push and stops
//! reading the socket until the application makes room (TCP backpressure towards the server);
//! heartbeats, request timeouts and sends go on. So a push is never dropped on the client and
//! memory stays bounded; a reader that never catches up stalls its own connection instead.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::Stream;
use playhouse_protocol::Packet;
use tokio::sync::mpsc;

/// One server push (a frame with sequence number 0), as received.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Push {
    /// The stage that sent it (the connection's stage).
    pub stage_id: i64,
    /// The stage type the connector connected with.
    pub stage_type: Arc<str>,
    /// The message.
    pub packet: Packet,
}

/// The server's pushes, in arrival order, whatever
/// [`use_main_thread_callbacks`](crate::ConnectorConfig::use_main_thread_callbacks) says.
/// Taken with [`Connector::pushes`](crate::Connector::pushes); a [`Stream`] of [`Push`], or
/// read with [`recv`](Self::recv).
///
/// While it exists, every push goes here and none to `on_receive`; it spans reconnections.
/// It ends ([`recv`](Self::recv) returns `None`) once every clone of the connector is dropped,
/// or after a later [`Connector::pushes`](crate::Connector::pushes) call took the pushes over
/// (what it already holds is still returned first). Dropping it hands later pushes back to
/// `on_receive`; pushes it still held are discarded, with a warning that counts them.
pub struct Pushes {
    receiver: mpsc::Receiver<Push>,
}

impl fmt::Debug for Pushes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pushes")
            .field("buffered", &self.receiver.len())
            .finish()
    }
}

impl Pushes {
    /// The next push; `None` once the pushes end (see [`Pushes`]). Cancel-safe.
    pub async fn recv(&mut self) -> Option<Push> {
        self.receiver.recv().await
    }

    /// The next push if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Push> {
        self.receiver.try_recv().ok()
    }
}

impl Stream for Pushes {
    type Item = Push;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Push>> {
        self.get_mut().receiver.poll_recv(cx)
    }
}

impl Drop for Pushes {
    fn drop(&mut self) {
        self.receiver.close();
        let mut discarded = 0_usize;
        while self.receiver.try_recv().is_ok() {
            discarded += 1;
        }
        if discarded > 0 {
            tracing::warn!(
                discarded,
                "pushes left unread in a dropped `Pushes` were discarded"
            );
        }
    }
}

/// A push waiting for room in the receiver it was offered to.
#[derive(Debug)]
pub(crate) struct Stalled {
    pub(crate) push: Push,
    pub(crate) sender: mpsc::Sender<Push>,
}

/// Where a push went.
pub(crate) enum Offer {
    /// Into the receiver.
    Delivered,
    /// The receiver is full: wait for room on its sender, then deliver.
    Full(Stalled),
    /// No receiver is taken (or it was dropped): the push is for `on_receive`.
    NoReceiver(Push),
}

/// The receiver's sending end, if one is taken; shared by the API and connection tasks.
#[derive(Debug)]
pub(crate) struct PushRoute {
    sender: Mutex<Option<mpsc::Sender<Push>>>,
    capacity: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PushRoute {
    pub(crate) fn new(capacity: usize) -> Self {
        PushRoute {
            sender: Mutex::new(None),
            // mpsc panics on zero.
            capacity: capacity.max(1),
        }
    }

    /// A new receiver; from now on pushes go to it (a previous one ends).
    pub(crate) fn take(&self) -> Pushes {
        let (sender, receiver) = mpsc::channel(self.capacity);
        *lock(&self.sender) = Some(sender);
        Pushes { receiver }
    }

    /// Hands `push` to the receiver, if one is taken. Under the lock, so a receiver taken or
    /// dropped meanwhile sees pushes in order.
    pub(crate) fn offer(&self, push: Push) -> Offer {
        let mut slot = lock(&self.sender);
        let Some(sender) = slot.as_ref() else {
            return Offer::NoReceiver(push);
        };
        match sender.try_send(push) {
            Ok(()) => Offer::Delivered,
            Err(mpsc::error::TrySendError::Full(push)) => Offer::Full(Stalled {
                push,
                sender: sender.clone(),
            }),
            Err(mpsc::error::TrySendError::Closed(push)) => {
                *slot = None;
                Offer::NoReceiver(push)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(n: u8) -> Push {
        Push {
            stage_id: 1,
            stage_type: Arc::from("Room"),
            packet: Packet::new("P", vec![n]),
        }
    }

    #[test]
    fn without_a_receiver_pushes_are_for_on_receive() {
        let route = PushRoute::new(2);
        assert!(matches!(route.offer(push(1)), Offer::NoReceiver(_)));
    }

    #[test]
    fn a_full_receiver_hands_the_push_back_with_its_sender() {
        let route = PushRoute::new(1);
        let mut pushes = route.take();
        assert!(matches!(route.offer(push(1)), Offer::Delivered));
        let Offer::Full(stalled) = route.offer(push(2)) else {
            panic!("expected Full");
        };
        assert_eq!(stalled.push, push(2));
        assert_eq!(pushes.try_recv(), Some(push(1)));
        stalled.sender.try_send(stalled.push).unwrap();
        assert_eq!(pushes.try_recv(), Some(push(2)));
    }

    #[tokio::test]
    async fn pushes_is_a_stream_that_ends_with_the_route() {
        use futures_util::StreamExt;
        let route = PushRoute::new(4);
        let pushes = route.take();
        assert!(matches!(route.offer(push(1)), Offer::Delivered));
        assert!(matches!(route.offer(push(2)), Offer::Delivered));
        drop(route);
        let all: Vec<Push> = pushes.collect().await;
        assert_eq!(all, vec![push(1), push(2)]);
    }

    #[test]
    fn a_dropped_receiver_returns_pushes_to_on_receive() {
        let route = PushRoute::new(4);
        drop(route.take());
        assert!(matches!(route.offer(push(1)), Offer::NoReceiver(_)));
        assert!(matches!(route.offer(push(2)), Offer::NoReceiver(_)));
    }

    #[test]
    fn a_later_take_ends_the_earlier_receiver_after_what_it_holds() {
        let route = PushRoute::new(4);
        let mut first = route.take();
        assert!(matches!(route.offer(push(1)), Offer::Delivered));
        let mut second = route.take();
        assert!(matches!(route.offer(push(2)), Offer::Delivered));
        assert_eq!(first.try_recv(), Some(push(1)));
        assert!(first.receiver.is_closed() || first.try_recv().is_none());
        assert_eq!(second.try_recv(), Some(push(2)));
    }
}
