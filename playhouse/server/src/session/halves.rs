//! A connection's read and write halves, so the session can read and write without one
//! waiting on the other.

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, WriteHalf};
use tokio::net::TcpStream;

use super::resume::registry::BoxRead;
use super::write_codec::BoxWrite;

/// A TCP stream's own halves, which share nothing, or, for any other stream (WebSocket, TLS),
/// `tokio::io::split`'s, which take a lock on every read and write (a few percent of a busy
/// server's CPU). Its write half answers `is_write_vectored` from a copy taken at the split:
/// the framed writer asks on every write, and the split half would take its lock for that
/// too (0.12 µs per message in a profile of 1,000 WebSocket clients).
pub(super) fn halves<Io>(io: Io) -> (BoxRead, BoxWrite)
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut io = Some(io);
    if let Some(tcp) = (&mut io as &mut dyn Any).downcast_mut::<Option<TcpStream>>()
        && let Some(tcp) = tcp.take()
    {
        let (read, write) = tcp.into_split();
        return (Box::new(read), Box::new(write));
    }
    let io = io.expect("not taken: it is no TCP stream");
    let vectored = io.is_write_vectored();
    let (read, write) = tokio::io::split(io);
    (Box::new(read), Box::new(SplitWrite { write, vectored }))
}

/// `tokio::io::split`'s write half, with the stream's `is_write_vectored` kept.
struct SplitWrite<Io> {
    write: WriteHalf<Io>,
    vectored: bool,
}

impl<Io: AsyncWrite> AsyncWrite for SplitWrite<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.write).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn split_halves_carry_bytes_both_ways_and_keep_the_vectored_answer() {
        let (client, server) = tokio::io::duplex(64);
        let duplex_vectored = client.is_write_vectored();
        let (mut read, mut write) = halves(server);
        assert_eq!(write.is_write_vectored(), duplex_vectored);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        write.write_all(b"to client").await.unwrap();
        write.flush().await.unwrap();
        let mut got = [0; 9];
        client_read.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"to client");
        client_write.write_all(b"to server").await.unwrap();
        read.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"to server");
        write.shutdown().await.unwrap();
        assert_eq!(client_read.read(&mut got).await.unwrap(), 0);
    }
}
