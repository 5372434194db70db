//! The serving loop's wait for a kill, polled on every turn of the loop without taking a lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Resolves when its token is cancelled.
///
/// The token's own future takes two locks each time it is polled (the token's state, then its
/// waiter list), and the serving loop polls it on every turn, once per message or more. This
/// one polls it only until it has registered, with a waker of its own that raises a flag and
/// wakes the session; after that, a poll reads the flag.
pub(super) struct Killed {
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    signal: Arc<Signal>,
    /// Wakes through `signal`: what `cancelled` holds.
    waker: Waker,
    /// `cancelled` holds `waker`: until the flag is raised, it has nothing new to say.
    registered: bool,
}

/// Raised by the token's wake-up, which it passes on to the session's task.
#[derive(Default)]
struct Signal {
    raised: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.raised.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Killed {
    pub(super) fn new(token: CancellationToken) -> Self {
        let signal = Arc::new(Signal::default());
        Killed {
            cancelled: Box::pin(token.cancelled_owned()),
            waker: Waker::from(Arc::clone(&signal)),
            signal,
            registered: false,
        }
    }
}

impl Future for Killed {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.signal.task.register(cx.waker());
        if this.registered && !this.signal.raised.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.registered = true;
        this.cancelled
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn resolves_on_a_cancel_of_the_token_or_its_parent_and_not_before() {
        let parent = CancellationToken::new();
        let token = parent.child_token();
        let mut killed = Killed::new(token.clone());
        for _ in 0..3 {
            assert!((&mut killed).now_or_never().is_none());
        }
        let task = tokio::spawn(killed);
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        parent.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("woken by the cancel")
            .unwrap();

        let token = CancellationToken::new();
        token.cancel();
        tokio::time::timeout(Duration::from_secs(5), Killed::new(token))
            .await
            .expect("ready at once when cancelled before");
    }
}
