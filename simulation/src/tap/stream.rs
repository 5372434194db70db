//! The tapped stream itself: reads and writes pass through unchanged, and an observer sees
//! every byte.

use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a tapped stream tells its observer.
pub(super) trait Observer: Send {
    /// Bytes the local side wrote.
    fn written(&mut self, bytes: &[u8]);
    /// Bytes the local side read.
    fn read(&mut self, bytes: &[u8]);
    /// The stream is gone.
    fn closed(&mut self);
}

/// A stream whose traffic an observer sees, frame by frame.
pub struct Tapped<S> {
    pub(super) inner: S,
    pub(super) observer: Box<dyn Observer>,
}

impl<S> std::fmt::Debug for Tapped<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tapped").finish_non_exhaustive()
    }
}

impl<S> Tapped<S> {
    /// `stream`, watched by nobody.
    pub fn untapped(stream: S) -> Tapped<S> {
        Tapped {
            inner: stream,
            observer: Box::new(Untapped),
        }
    }
}

struct Untapped;

impl Observer for Untapped {
    fn written(&mut self, _: &[u8]) {}
    fn read(&mut self, _: &[u8]) {}
    fn closed(&mut self) {}
}

impl<S> Drop for Tapped<S> {
    fn drop(&mut self) {
        self.observer.closed();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tapped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            this.observer.read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tapped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            this.observer.written(&buf[..*n]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
