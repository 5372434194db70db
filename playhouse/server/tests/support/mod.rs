//! Plumbing for black-box tests: a raw client (the wire codec over a real socket, nothing
//! else), starting a server, a player actor and destroy counts.

#![allow(dead_code, unreachable_pub)]

pub mod destroys;
pub mod movable;
pub mod player;
pub mod serve;
pub mod trace_room;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use playhouse::{ErrorCode, Packet};
use playhouse_protocol::{ClientCodec, ClientFrame, Decoder, Encoder, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// One encoded client frame.
pub fn client_frame_bytes(msg_id: &str, seq: u16, stage_id: i64, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let frame = ClientFrame::new(msg_id, seq, stage_id, payload.to_vec());
    ClientCodec::default()
        .encode(frame, &mut out)
        .expect("encode");
    out.to_vec()
}

/// Decodes one whole server frame.
pub fn decode_server_frame(bytes: &[u8]) -> ServerFrame {
    let mut src = BytesMut::from(bytes);
    ClientCodec::default()
        .decode(&mut src)
        .expect("decode")
        .expect("a whole frame")
}

pub struct RawClient<S = TcpStream> {
    framed: Framed<S, ClientCodec>,
    pub stage_id: i64,
    next_seq: u16,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr, stage_id: i64) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        RawClient::over(stream, stage_id)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawClient<S> {
    /// A client over any byte stream (TLS, WebSocket, ...).
    pub fn over(stream: S, stage_id: i64) -> RawClient<S> {
        RawClient {
            framed: Framed::new(stream, ClientCodec::default()),
            stage_id,
            next_seq: 1,
        }
    }

    pub fn stream_mut(&mut self) -> &mut S {
        self.framed.get_mut()
    }

    /// The byte stream, once nothing more is expected on it as frames.
    pub fn into_stream(self) -> S {
        self.framed.into_inner()
    }

    pub async fn send_frame(&mut self, frame: ClientFrame) {
        self.framed.send(frame).await.expect("send");
    }

    /// Sends a one-way message.
    pub async fn send(&mut self, msg_id: &str, payload: &[u8]) {
        let frame = ClientFrame::new(msg_id, 0, self.stage_id, payload.to_vec());
        self.send_frame(frame).await;
    }

    /// Sends a request and returns its sequence without waiting.
    pub async fn request_nowait(&mut self, msg_id: &str, payload: &[u8]) -> u16 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        let frame = ClientFrame::new(msg_id, seq, self.stage_id, payload.to_vec());
        self.send_frame(frame).await;
        seq
    }

    /// Sends a request and waits for the frame with its sequence (pushes before it are skipped).
    pub async fn request(&mut self, msg_id: &str, payload: &[u8]) -> ServerFrame {
        let seq = self.request_nowait(msg_id, payload).await;
        loop {
            let frame = self
                .recv()
                .await
                .expect("connection closed before the reply");
            if frame.msg_seq == seq {
                return frame;
            }
        }
    }

    /// Authenticates as `user`; returns the reply's error code.
    pub async fn authenticate(&mut self, user: &str) -> ErrorCode {
        let reply = self.request("AuthenticateRequest", user.as_bytes()).await;
        if reply.error_code.is_success() {
            assert_eq!(reply.msg_id, "AuthenticateReply");
        }
        reply.error_code
    }

    /// The next frame, or `None` when the server closed the connection.
    pub async fn recv(&mut self) -> Option<ServerFrame> {
        match tokio::time::timeout(WAIT, self.framed.next()).await {
            Ok(Some(Ok(frame))) => Some(frame),
            Ok(Some(Err(_))) | Ok(None) => None,
            Err(_) => panic!("no frame within {WAIT:?}"),
        }
    }

    /// Waits for the next push (seq 0) with this id.
    pub async fn push(&mut self, msg_id: &str) -> Packet {
        loop {
            let frame = self.recv().await.expect("closed while waiting for a push");
            if frame.msg_seq == 0 && frame.msg_id == msg_id {
                return frame.into_packet();
            }
        }
    }

    /// Asserts the server closes the connection (within [`WAIT`]); other frames are skipped.
    pub async fn expect_closed(&mut self) {
        while self.recv().await.is_some() {}
    }
}

/// Reads until the server closes the stream (end or reset) and returns when; fails after
/// `within`.
pub async fn closed_within(
    stream: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> tokio::time::Instant {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    let until_closed = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return tokio::time::Instant::now(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, until_closed)
        .await
        .expect("the server did not close the connection in time")
}

/// Reads until the server closes the stream, failing after [`WAIT`].
pub async fn closed(stream: &mut (impl AsyncRead + Unpin)) {
    closed_within(stream, WAIT).await;
}

/// `len` pseudo-random bytes (xorshift, fixed seed): LZ4 cannot shrink them.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
