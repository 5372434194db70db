//! Waiting on a write or a stage mailbox without outliving the connection: a kill (the
//! server closing it, or stopping) ends the wait.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use super::end::End;

/// Awaits `fut` unless the connection is killed meanwhile.
///
/// Most writes and mailbox sends complete at once: those return without registering a
/// cancellation waiter (a kill is then noticed by the serving loop).
pub(super) async fn until_killed<T>(
    kill: &CancellationToken,
    fut: impl Future<Output = T>,
) -> Result<T, End> {
    let mut fut = std::pin::pin!(fut);
    if let Some(value) = poll_once(fut.as_mut()).await {
        return Ok(value);
    }
    tokio::select! {
        biased;
        _ = kill.cancelled() => Err(End::ClosedByServer),
        value = fut => Ok(value),
    }
}

/// Polls `fut` once with the caller's context: its value if it is ready.
async fn poll_once<F: Future>(mut fut: std::pin::Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        std::task::Poll::Ready(value) => std::task::Poll::Ready(Some(value)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// Awaits `fut` for at most `timeout` unless the connection is killed meanwhile; the timer
/// and the cancellation waiter are set up only when `fut` is not ready at once.
pub(super) async fn bounded<T>(
    kill: &CancellationToken,
    timeout: std::time::Duration,
    fut: impl Future<Output = T>,
) -> Result<Result<T, End>, tokio::time::error::Elapsed> {
    let mut fut = std::pin::pin!(fut);
    if let Some(value) = poll_once(fut.as_mut()).await {
        return Ok(Ok(value));
    }
    tokio::time::timeout(timeout, until_killed(kill, fut)).await
}
