//! The session's one timer (idle, authentication or re-authentication deadline), polled only
//! when it can have fired.
//!
//! A `Sleep`'s state is shared with the runtime's timer driver, which runs on any worker: a
//! poll is a cache miss more often than not, and the session loop turns once or twice per
//! message (a profile of 1,000 WebSocket clients put 0.17 µs per message in `Sleep::poll`).
//! A sleep cannot complete before its deadline, and the waker it registered stays with it
//! until it fires, so once it has been polled it needs polling again only from its deadline
//! on; a clock read (the vDSO, no shared line) tells when that is.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// A `Sleep` that skips the poll while it is not due.
#[derive(Debug)]
pub(super) struct DueTimer {
    sleep: Pin<Box<Sleep>>,
    /// Polled since it was last set: its waker is registered.
    armed: bool,
}

impl DueTimer {
    pub(super) fn new(deadline: Instant) -> Self {
        DueTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            armed: false,
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }

    /// Sets the deadline; the next poll registers the waker again.
    pub(super) fn reset(&mut self, deadline: Instant) {
        self.sleep.as_mut().reset(deadline);
        self.armed = false;
    }

    /// Ready once the deadline has passed and the runtime's timer says so.
    pub(super) fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.armed && Instant::now() < self.sleep.deadline() {
            return Poll::Pending;
        }
        self.armed = true;
        self.sleep.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::future::poll_fn;

    use super::*;

    /// Waits for `timer` (false: not within a minute, as a timer never armed would).
    async fn fires(timer: &mut DueTimer) -> bool {
        let due = poll_fn(|cx| timer.poll_due(cx));
        tokio::time::timeout(Duration::from_secs(60), due)
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn fires_at_its_deadline_and_again_after_a_reset() {
        let start = Instant::now();
        let mut timer = DueTimer::new(start + Duration::from_secs(5));
        assert!(fires(&mut timer).await);
        assert_eq!(Instant::now() - start, Duration::from_secs(5));

        timer.reset(Instant::now() + Duration::from_secs(3));
        assert!(fires(&mut timer).await);
        assert_eq!(Instant::now() - start, Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_task_is_woken_by_it_though_later_polls_are_skipped() {
        let start = Instant::now();
        let mut timer = DueTimer::new(start + Duration::from_secs(2));
        // Polled three times before the deadline (the task wakes itself twice, as a frame
        // would wake it): the later two are skipped, and the task, with nothing else to wake
        // it, is still woken at the deadline by what the first poll registered.
        let mut polls = 0;
        let fired = poll_fn(|cx| {
            polls += 1;
            let due = timer.poll_due(cx);
            if polls < 3 {
                cx.waker().wake_by_ref();
            }
            due
        });
        let fired = tokio::time::timeout(Duration::from_secs(60), fired).await;
        assert!(fired.is_ok(), "never woken");
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        assert_eq!(polls, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_before_the_first_deadline_moves_it() {
        let start = Instant::now();
        let mut timer = DueTimer::new(start + Duration::from_secs(10));
        assert!(futures_util::FutureExt::now_or_never(poll_fn(|cx| timer.poll_due(cx))).is_none());
        timer.reset(start + Duration::from_secs(1));
        assert!(fires(&mut timer).await);
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }
}
