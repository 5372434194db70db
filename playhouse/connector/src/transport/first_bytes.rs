//! What a server first answered: a stream wrapper that keeps the first bytes it reads, so a
//! failed WebSocket handshake can tell "not HTTP at all" (a plain TCP port) from an HTTP
//! refusal (a wrong path).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Enough to recognise `HTTP/`.
const KEEP: usize = 5;

/// The first bytes read through a [`FirstBytes`] stream.
pub(super) type Seen = Arc<Mutex<Vec<u8>>>;

/// A stream that copies the first [`KEEP`] bytes it reads into a shared buffer.
#[derive(Debug)]
pub(super) struct FirstBytes<S> {
    inner: S,
    seen: Seen,
    /// How many bytes were kept; past [`KEEP`] reads pass straight through.
    kept: usize,
}

impl<S> FirstBytes<S> {
    pub(super) fn new(inner: S) -> (Self, Seen) {
        let seen = Seen::default();
        let stream = FirstBytes {
            inner,
            seen: Arc::clone(&seen),
            kept: 0,
        };
        (stream, seen)
    }
}

/// Whether what was read so far starts like an HTTP response.
pub(super) fn looks_like_http(seen: &Seen) -> bool {
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    !seen.is_empty() && b"HTTP/".starts_with(&seen[..seen.len().min(KEEP)])
}

/// A short description of what was read, for an error message.
pub(super) fn describe(seen: &Seen) -> String {
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    if seen.is_empty() {
        "the server closed the connection without an HTTP answer".to_owned()
    } else {
        format!(
            "the server answered {:?}, not HTTP",
            seen.escape_ascii().to_string()
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.kept < KEEP {
            let new = &buf.filled()[before..];
            let take = new.len().min(KEEP - this.kept);
            if take > 0 {
                let mut seen = this.seen.lock().unwrap_or_else(PoisonError::into_inner);
                seen.extend_from_slice(&new[..take]);
                this.kept += take;
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytes<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn keeps_the_first_bytes_and_passes_everything_through() {
        let (near, mut far) = tokio::io::duplex(64);
        let (mut stream, seen) = FirstBytes::new(near);
        far.write_all(b"HTTP/1.1 400 Bad Request").await.unwrap();
        drop(far);
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"HTTP/1.1 400 Bad Request");
        assert_eq!(*seen.lock().unwrap(), b"HTTP/");
        assert!(looks_like_http(&seen));
    }

    #[test]
    fn only_an_http_start_looks_like_http() {
        let seen = |bytes: &[u8]| Seen::new(Mutex::new(bytes.to_vec()));
        assert!(!looks_like_http(&seen(b"")));
        assert!(!looks_like_http(&seen(b"\x10\0\0\0\x0b")));
        assert!(looks_like_http(&seen(b"HT")));
        assert!(describe(&seen(b"")).contains("without an HTTP answer"));
        assert!(describe(&seen(b"\x10\0")).contains("not HTTP"));
    }
}
