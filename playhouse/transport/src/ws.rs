use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::ws_frames::whole_frame_len;

/// Most unsent bytes buffered before writers wait.
const MAX_PENDING_WRITE: usize = 4 * 1024 * 1024;

/// tungstenite's read buffer per connection. Its default (128 KiB, allocated and zero-filled
/// up front) made an idle WebSocket client cost ~140 KB of server memory; frames are small,
/// and a larger message still arrives whole (the buffer is refilled as it is read).
const READ_BUFFER: usize = 4 * 1024;

pub(crate) fn ws_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// The client side of a WebSocket (tungstenite) seen as a byte stream of PlayHouse frames;
/// the server side is [`crate::WsServerStream`].
///
/// Reading concatenates binary messages (each holds whole frames, so the result is exactly
/// the TCP byte stream); a text message is an error. Writing cuts the byte stream at frame
/// boundaries (the 4-byte little-endian length) and sends each frame as one binary message.
pub struct WsStream<S> {
    inner: WebSocketStream<S>,
    read: Bytes,
    write: BytesMut,
    closed: bool,
    /// Our Close frame went out; what is left of a shutdown is the stream underneath.
    close_sent: bool,
}

impl<S> fmt::Debug for WsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsStream")
            .field("buffered_read", &self.read.len())
            .field("buffered_write", &self.write.len())
            .finish_non_exhaustive()
    }
}

impl<S> WsStream<S> {
    /// Wraps an established WebSocket.
    pub fn new(inner: WebSocketStream<S>) -> Self {
        WsStream {
            inner,
            read: Bytes::new(),
            write: BytesMut::new(),
            closed: false,
            close_sent: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// Sends every whole buffered frame as its own message.
    fn poll_send_frames(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(total) = whole_frame_len(&self.write)? {
            ready!(Pin::new(&mut self.inner).poll_ready(cx)).map_err(io::Error::other)?;
            let frame = self.write.split_to(total).freeze();
            Pin::new(&mut self.inner)
                .start_send(Message::Binary(frame))
                .map_err(io::Error::other)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.read.is_empty() {
            if this.closed {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.read = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket messages are not part of the protocol",
                    )));
                }
                // Pings are answered by tungstenite itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => this.closed = true,
                Some(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
            }
        }
        let n = buf.remaining().min(this.read.len());
        buf.put_slice(&this.read[..n]);
        this.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write.len() >= MAX_PENDING_WRITE {
            ready!(this.poll_send_frames(cx))?;
            if this.write.len() >= MAX_PENDING_WRITE {
                // A single frame larger than the buffer cap: the codec never produces one.
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "frame larger than the WebSocket write buffer",
                )));
            }
        }
        this.write.extend_from_slice(buf);
        // Hand whole frames on now; if the socket is busy they go at the next flush.
        if let Poll::Ready(Err(error)) = this.poll_send_frames(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_frames(cx))?;
        Pin::new(&mut this.inner)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }

    /// Sends the WebSocket Close frame, then shuts the stream underneath down too (for TLS:
    /// `close_notify`, so the client sees a clean end rather than a truncated stream).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        use tokio_tungstenite::tungstenite::Error;
        let this = self.get_mut();
        if !this.close_sent {
            ready!(this.poll_send_frames(cx))?;
            match ready!(Pin::new(&mut this.inner).poll_close(cx)) {
                Ok(()) | Err(Error::ConnectionClosed | Error::AlreadyClosed) => {}
                Err(error) => return Poll::Ready(Err(io::Error::other(error))),
            }
            this.close_sent = true;
        }
        Pin::new(this.inner.get_mut()).poll_shutdown(cx)
    }
}
