//! The server side of WebSocket (RFC 6455) framed by hand: the opening handshake, then binary
//! messages read straight into the caller's buffer and written with a header in front.
//!
//! A game server's WebSocket traffic is many small messages; a general-purpose library keeps
//! a read buffer per connection (zero-filled before each read), copies each message out of it
//! as its own buffer, and copies each outgoing one into a second buffer. Here an incoming
//! payload is unmasked in place in the buffer the caller reads into, and an outgoing frame is
//! copied once, behind its 2- to 10-byte header. No extension is negotiated; clients (the
//! connectors, browsers, the original's C#, C++ and JavaScript connectors) send masked binary
//! frames, possibly fragmented, with pings and a close at the end.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Most unsent bytes buffered before writers wait.
const MAX_PENDING_WRITE: usize = 4 * 1024 * 1024;
/// Longest opening handshake request accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Most request headers accepted in the opening handshake.
const MAX_HEADERS: usize = 64;
/// Longest frame header: 2 bytes, a 64-bit length, a mask.
const MAX_HEADER: usize = 14;
/// Longest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
const FIN: u8 = 0x80;

/// The client's `Sec-WebSocket-Key` if `headers` (name, value) ask for a version-13
/// WebSocket upgrade (RFC 6455 §4.2.1): `Upgrade: websocket`, `Connection: upgrade` (as one
/// of its tokens), `Sec-WebSocket-Version: 13` and a non-empty key.
pub fn upgrade_key<'a, I>(headers: I) -> Option<&'a [u8]>
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    let has_token = |value: &[u8], token: &str| {
        std::str::from_utf8(value).is_ok_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    };
    let (mut upgrade, mut connection, mut version, mut key) = (false, false, false, None);
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = value == b"13";
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value);
        }
    }
    key.filter(|key| upgrade && connection && version && !key.is_empty())
}

/// Answers the opening handshake on `io` (an HTTP/1.1 `GET` upgrade at `path`, any query)
/// and returns the WebSocket. A request for another path gets `404`, a malformed one `400`;
/// either ends in an error.
pub async fn accept<S>(mut io: S, path: &str, max_message: usize) -> io::Result<WsServerStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = BytesMut::with_capacity(1024);
    loop {
        if io.read_buf(&mut request).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let refusal = match parsed.parse(&request) {
            Ok(httparse::Status::Partial) if request.len() < MAX_REQUEST => continue,
            Ok(httparse::Status::Partial) => Some("431 Request Header Fields Too Large"),
            Err(_) => Some("400 Bad Request"),
            Ok(httparse::Status::Complete(length)) => {
                let requested = parsed.path.unwrap_or("");
                let requested = requested.split('?').next().unwrap_or("");
                let key = upgrade_key(parsed.headers.iter().map(|h| (h.name, h.value)));
                match key {
                    _ if parsed.method != Some("GET") => Some("400 Bad Request"),
                    _ if requested != path => Some("404 Not Found"),
                    None => Some("400 Bad Request"),
                    Some(key) => {
                        let accept = crate::ws_frames::ws_accept_key(key);
                        let response = format!(
                            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                        );
                        io.write_all(response.as_bytes()).await?;
                        io.flush().await?;
                        // Whatever the client sent after its request is WebSocket frames.
                        request.advance(length);
                        None
                    }
                }
            }
        };
        if let Some(status) = refusal {
            let response =
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = io.write_all(response.as_bytes()).await;
            let _ = io.shutdown().await;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("WebSocket handshake refused: {status}"),
            ));
        }
        let mut ws = WsServerStream::new(io, max_message);
        ws.early = request;
        return Ok(ws);
    }
}

/// The frame being read: what its payload is and how much of it is still to come.
#[derive(Debug, Default)]
struct Incoming {
    /// Partial header bytes, while a header is split across reads.
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// Payload bytes of the current frame not read yet (0: a header comes next).
    left: u64,
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    /// Position in the mask of the next payload byte.
    mask_at: usize,
    /// A fragmented data message is in progress.
    in_message: bool,
    /// Bytes of the current data message so far.
    message_len: u64,
    /// The payload of the current control frame.
    control: Vec<u8>,
}

/// A server-side WebSocket seen as a byte stream of PlayHouse frames.
///
/// Reading concatenates the payloads of binary messages (each holds whole frames, so the
/// result is exactly the TCP byte stream); a text message is an error, pings are answered,
/// a close is answered and ends the stream. Writing cuts the byte stream at frame boundaries
/// (the 4-byte little-endian length) and sends each frame as one binary message.
pub struct WsServerStream<S> {
    inner: S,
    max_message: u64,
    incoming: Incoming,
    /// Bytes the client sent right behind its handshake request, read before the socket.
    early: BytesMut,
    /// Outgoing bytes of a frame not written whole yet.
    partial: BytesMut,
    /// WebSocket frames ready for the socket.
    out: BytesMut,
    /// The client's close arrived (or the socket ended): reads see the end of the stream.
    closed: bool,
    /// Our close frame is queued.
    close_sent: bool,
}

impl<S> fmt::Debug for WsServerStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsServerStream")
            .field("unsent", &self.out.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Appends a server frame header (never masked) for a final frame of `opcode`.
fn put_header(out: &mut BytesMut, opcode: u8, len: usize) {
    out.put_u8(FIN | opcode);
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(len);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

/// Unmasks `len` bytes at `from` into `to` (`to <= from`: moved towards the front, as the
/// headers between payloads are cut out), the first byte with mask byte `at`; returns the
/// mask position after them. Eight bytes at a time: a 2 MiB message is 256 Ki steps.
fn unmask_forward(
    data: &mut [u8],
    from: usize,
    to: usize,
    len: usize,
    mask: [u8; 4],
    at: usize,
) -> usize {
    debug_assert!(to <= from);
    let rotated = [
        mask[at & 3],
        mask[(at + 1) & 3],
        mask[(at + 2) & 3],
        mask[(at + 3) & 3],
    ];
    let wide = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut i = 0;
    while i + 8 <= len {
        let mut chunk = [0; 8];
        chunk.copy_from_slice(&data[from + i..from + i + 8]);
        let chunk = u64::from_ne_bytes(chunk) ^ wide;
        // Read before written: with `to <= from` nothing unread is overwritten.
        data[to + i..to + i + 8].copy_from_slice(&chunk.to_ne_bytes());
        i += 8;
    }
    while i < len {
        data[to + i] = data[from + i] ^ rotated[i & 3];
        i += 1;
    }
    (at + len) & 3
}

impl<S> WsServerStream<S> {
    /// A WebSocket whose opening handshake already happened (e.g. an axum/hyper route answered
    /// `101 Switching Protocols`, see [`crate::ws_frames::ws_accept_key`]); messages are capped at
    /// `max_message` bytes.
    pub fn new(inner: S, max_message: usize) -> Self {
        WsServerStream {
            inner,
            max_message: max_message as u64,
            incoming: Incoming::default(),
            early: BytesMut::new(),
            partial: BytesMut::new(),
            out: BytesMut::new(),
            closed: false,
            close_sent: false,
        }
    }

    /// Queues every whole frame at the front of `bytes` as one binary message; returns how
    /// many bytes that took.
    fn frame_out(out: &mut BytesMut, bytes: &[u8]) -> io::Result<usize> {
        let mut at = 0;
        while let Some(total) = crate::ws_frames::whole_frame_len(&bytes[at..])? {
            put_header(out, OP_BINARY, total);
            out.extend_from_slice(&bytes[at..at + total]);
            at += total;
        }
        Ok(at)
    }

    /// The close frame answering the client's (its status code echoed), or ours (1000).
    fn queue_close(&mut self, status: Option<[u8; 2]>) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        let status = status.unwrap_or(1000u16.to_be_bytes());
        put_header(&mut self.out, OP_CLOSE, 2);
        self.out.extend_from_slice(&status);
    }

    /// Acts on a whole control frame.
    fn on_control(&mut self) -> io::Result<()> {
        let payload = std::mem::take(&mut self.incoming.control);
        match self.incoming.opcode {
            OP_PING if !self.close_sent => {
                put_header(&mut self.out, OP_PONG, payload.len());
                self.out.extend_from_slice(&payload);
            }
            OP_CLOSE => {
                if payload.len() == 1 {
                    return Err(invalid("WebSocket close frame with a 1-byte payload"));
                }
                self.closed = true;
                self.queue_close(payload.get(..2).map(|s| [s[0], s[1]]));
            }
            _ => {}
        }
        // Keep the (small) buffer for the next control frame.
        self.incoming.control = payload;
        self.incoming.control.clear();
        Ok(())
    }

    /// Parses a whole frame header.
    fn start_frame(&mut self) -> io::Result<()> {
        let frame = &mut self.incoming;
        let header = &frame.header[..frame.header_len];
        let (first, second) = (header[0], header[1]); // masked: checked as it arrived
        if first & 0x70 != 0 {
            return Err(invalid("WebSocket frame with reserved bits set"));
        }
        let opcode = first & 0x0F;
        let fin = first & FIN != 0;
        let (len, rest) = match second & 0x7F {
            126 => (
                u64::from(u16::from_be_bytes([header[2], header[3]])),
                &header[4..],
            ),
            127 => {
                let mut len = [0; 8];
                len.copy_from_slice(&header[2..10]);
                (u64::from_be_bytes(len), &header[10..])
            }
            len => (u64::from(len), &header[2..]),
        };
        frame.mask.copy_from_slice(&rest[..4]);
        frame.mask_at = 0;
        frame.header_len = 0;
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin || len > MAX_CONTROL as u64 {
                    return Err(invalid("fragmented or oversized WebSocket control frame"));
                }
            }
            OP_TEXT => {
                return Err(invalid(
                    "text WebSocket messages are not part of the protocol",
                ));
            }
            OP_BINARY if !frame.in_message => frame.message_len = 0,
            OP_CONTINUATION if frame.in_message => {}
            OP_BINARY | OP_CONTINUATION => {
                return Err(invalid("WebSocket data frame out of sequence"));
            }
            _ => return Err(invalid("unknown WebSocket opcode")),
        }
        if opcode == OP_BINARY || opcode == OP_CONTINUATION {
            frame.message_len += len;
            if frame.message_len > self.max_message {
                return Err(invalid("WebSocket message too long"));
            }
            frame.in_message = !fin;
        }
        frame.opcode = opcode;
        frame.fin = fin;
        frame.left = len;
        if len == 0 && frame.opcode >= OP_CLOSE {
            self.on_control()?;
        }
        Ok(())
    }

    /// The header length once its first two bytes are known.
    fn header_len(second: u8) -> usize {
        match second & 0x7F {
            126 => 2 + 2 + 4,
            127 => 2 + 8 + 4,
            _ => 2 + 4,
        }
    }

    /// Turns raw bytes read from the socket, `data[..]`, into the payload bytes they carry,
    /// moved to the front of `data`; returns how many there are.
    fn decode_in_place(&mut self, data: &mut [u8]) -> io::Result<usize> {
        let (mut read, mut written) = (0, 0);
        while read < data.len() && !self.closed {
            if self.incoming.left == 0 {
                // A header, possibly split across reads.
                let frame = &mut self.incoming;
                let need = if frame.header_len < 2 {
                    2
                } else {
                    Self::header_len(frame.header[1])
                };
                let take = (need - frame.header_len).min(data.len() - read);
                frame.header[frame.header_len..frame.header_len + take]
                    .copy_from_slice(&data[read..read + take]);
                frame.header_len += take;
                read += take;
                if frame.header_len >= 2 && frame.header[1] & 0x80 == 0 {
                    return Err(invalid("unmasked WebSocket frame from a client"));
                }
                if frame.header_len >= 2 && frame.header_len == Self::header_len(frame.header[1]) {
                    self.start_frame()?;
                }
                continue;
            }
            let frame = &mut self.incoming;
            let take = frame.left.min((data.len() - read) as u64) as usize;
            let mask = frame.mask;
            let mut at = frame.mask_at;
            if frame.opcode < OP_CLOSE {
                at = unmask_forward(data, read, written, take, mask, at);
                written += take;
            } else {
                for &byte in &data[read..read + take] {
                    frame.control.push(byte ^ mask[at & 3]);
                    at += 1;
                }
            }
            frame.mask_at = at & 3;
            frame.left -= take as u64;
            read += take;
            if frame.left == 0 && frame.opcode >= OP_CLOSE {
                self.on_control()?;
            }
        }
        Ok(written)
    }
}

impl<S: AsyncWrite + Unpin> WsServerStream<S> {
    /// Writes queued WebSocket frames to the socket until they are all out.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsServerStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                // A pong, a close answer or frames the writer left: out as soon as the socket
                // takes them, even if nothing else is written meanwhile.
                if let Poll::Ready(Err(error)) = this.poll_write_out(cx) {
                    return Poll::Ready(Err(error));
                }
            }
            if this.closed || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let start = buf.filled().len();
            if this.early.is_empty() {
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            } else {
                let n = buf.remaining().min(this.early.len());
                buf.put_slice(&this.early[..n]);
                this.early.advance(n);
            }
            let end = buf.filled().len();
            if end == start {
                this.closed = true; // the socket ended
                return Poll::Ready(Ok(()));
            }
            let payload = this.decode_in_place(&mut buf.filled_mut()[start..end])?;
            buf.set_filled(start + payload);
            if payload > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsServerStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() >= MAX_PENDING_WRITE {
            ready!(this.poll_write_out(cx))?;
        }
        if this.partial.is_empty() {
            let taken = Self::frame_out(&mut this.out, buf)?;
            this.partial.extend_from_slice(&buf[taken..]);
        } else {
            this.partial.extend_from_slice(buf);
            let taken = Self::frame_out(&mut this.out, &this.partial)?;
            this.partial.advance(taken);
        }
        if this.partial.len() > MAX_PENDING_WRITE {
            // A single frame larger than the buffer cap: the codec never produces one.
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame larger than the WebSocket write buffer",
            )));
        }
        // Out now if the socket takes it; if it is busy, at the next flush.
        if let Poll::Ready(Err(error)) = this.poll_write_out(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    /// Sends our close frame, then shuts the stream underneath down too (for TLS:
    /// `close_notify`, so the client sees a clean end rather than a truncated stream).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.queue_close(None);
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
