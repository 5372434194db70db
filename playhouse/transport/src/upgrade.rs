use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<S>> + Send>>;

enum State<S> {
    Handshaking(Handshake<S>),
    Ready(S),
    Failed,
}

/// A stream that first completes a handshake (TLS, WebSocket upgrade) when it is first read
/// or written. The handshake thus runs in the connection's task, under its timeouts.
pub struct Upgrading<S> {
    state: State<S>,
}

impl<S> fmt::Debug for Upgrading<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Handshaking(_) => "handshaking",
            State::Ready(_) => "ready",
            State::Failed => "failed",
        };
        f.debug_struct("Upgrading").field("state", &state).finish()
    }
}

impl<S> Upgrading<S> {
    /// A stream that becomes usable once `handshake` resolves.
    pub fn new(handshake: impl Future<Output = io::Result<S>> + Send + 'static) -> Self {
        Upgrading {
            state: State::Handshaking(Box::pin(handshake)),
        }
    }

    fn poll_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut S>> {
        if let State::Handshaking(handshake) = &mut self.state {
            match ready!(handshake.as_mut().poll(cx)) {
                Ok(stream) => self.state = State::Ready(stream),
                Err(error) => {
                    self.state = State::Failed;
                    return Poll::Ready(Err(error));
                }
            }
        }
        match &mut self.state {
            State::Ready(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "handshake failed",
            ))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Upgrading<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_stream(cx))?;
        Pin::new(stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Upgrading<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_stream(cx))?;
        Pin::new(stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_stream(cx))?;
        Pin::new(stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Ready(stream) => Pin::new(stream).poll_shutdown(cx),
            // Nothing was established; dropping the stream closes the socket.
            _ => Poll::Ready(Ok(())),
        }
    }
}
