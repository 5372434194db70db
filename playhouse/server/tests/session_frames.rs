//! Black-box tests of the frames a session reads and writes: pipelined requests, malformed
//! input, replies written together, the latency each request records.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use playhouse::{ActorCell, ErrorCode, Packet, PlayServer, PlayServerBuilder, Stage, StageContext};
use support::RawClient;
use support::player::Player;
use support::serve::{in_memory, one_stage_type, start};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

/// A stage that answers "Echo" with the request, and "Burst" with as many one-byte-id
/// pushes ("T") as the payload's first byte says, then the reply.
struct Mirror;

impl Stage for Mirror {
    type Actor = Player;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_dispatch(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "Echo" => actor.link.reply(packet),
            "Burst" => {
                for _ in 0..packet.payload[0] {
                    actor.link.send_to_client(Packet::empty("T"));
                }
                actor.link.reply(Packet::empty("Burst"));
            }
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

fn mirrors() -> PlayServerBuilder {
    one_stage_type("Mirror", |_| Mirror, |_| Player::default())
}

#[tokio::test]
async fn a_hundred_pipelined_requests_match_by_sequence() {
    let (_server, addr) = start(mirrors()).await;
    let mut client = RawClient::connect(addr, 12).await;
    assert!(client.authenticate("dave").await.is_success());
    let mut sent = Vec::new();
    for i in 0..100u32 {
        let payload = format!("msg-{i}");
        let seq = client.request_nowait("Echo", payload.as_bytes()).await;
        sent.push((seq, payload));
    }
    for (seq, payload) in sent {
        let reply = client.recv().await.expect("reply");
        assert_eq!(reply.msg_seq, seq, "replies of one stage come in order");
        assert_eq!(reply.payload, payload.as_bytes());
    }
}

#[tokio::test]
async fn malformed_frames_close_only_their_own_connection() {
    let (_server, addr) = start(mirrors()).await;
    let mut healthy = RawClient::connect(addr, 14).await;
    assert!(healthy.authenticate("healthy").await.is_success());

    let bad_inputs: Vec<Vec<u8>> = vec![
        (-1i32).to_le_bytes().to_vec(),
        0i32.to_le_bytes().to_vec(),
        i32::MAX.to_le_bytes().to_vec(),
        // a body shorter than the smallest frame (an empty id is answered, not closed: see
        // session_empty_msg_id.rs)
        [&10i32.to_le_bytes()[..], &[0u8; 10]].concat(),
        // msg id past the body
        [&12i32.to_le_bytes()[..], &[200u8], &[b'x'; 11]].concat(),
        // invalid UTF-8 id
        [&12i32.to_le_bytes()[..], &[1u8, 0xFF], &[0u8; 10]].concat(),
    ];
    for bad in bad_inputs {
        let mut attacker = RawClient::connect(addr, 14).await;
        assert!(
            attacker
                .authenticate(&format!("attacker{}", bad.len()))
                .await
                .is_success()
        );
        attacker.stream_mut().write_all(&bad).await.unwrap();
        attacker.expect_closed().await;
        let echo = healthy.request("Echo", b"still here").await;
        assert_eq!(echo.payload, Bytes::from_static(b"still here"));
    }
}

/// A byte stream that counts the writes the server makes to it.
struct CountingWrites {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for CountingWrites {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingWrites {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// One thread: the stage queues the whole burst before the session runs.
#[tokio::test(flavor = "current_thread")]
async fn frames_queued_together_go_out_in_one_write() {
    const PUSHES: u8 = 30;
    let server = mirrors().build().expect("build");
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let writes = Arc::new(AtomicUsize::new(0));
    let io = CountingWrites {
        inner: server_end,
        writes: Arc::clone(&writes),
    };
    server.serve_connection(io, "127.0.0.1:9".parse().unwrap(), "test");
    let mut client = RawClient::over(client_end, 22);
    assert!(client.authenticate("bursty").await.is_success());

    let before = writes.load(Ordering::SeqCst);
    let seq = client.request_nowait("Burst", &[PUSHES]).await;
    for n in 0..PUSHES {
        let push = client.recv().await.expect("a push");
        assert_eq!((push.msg_id.as_ref(), push.msg_seq), ("T", 0), "push {n}");
    }
    let reply = client.recv().await.expect("the reply");
    assert_eq!((reply.msg_id.as_ref(), reply.msg_seq), ("Burst", seq));
    // 31 frames of 22–26 bytes: under the 1 KiB write buffer, so one write.
    assert_eq!(writes.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn pipelined_requests_each_count_in_the_latency_histogram() {
    fn latency_count(server: &PlayServer) -> u64 {
        let metrics = server.metrics();
        let line = metrics
            .lines()
            .find(|line| line.starts_with("playhouse_request_latency_seconds_count"))
            .expect("a latency count");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }
    let server = mirrors().build().expect("build");
    let mut client = in_memory(&server, 26);
    assert!(client.authenticate("piper").await.is_success());
    let before = latency_count(&server);
    // All five are read before the first reply goes out (one thread, in-memory stream).
    for _ in 0..5 {
        client.request_nowait("Echo", b"p").await;
    }
    for _ in 0..5 {
        assert!(
            client
                .recv()
                .await
                .expect("a reply")
                .error_code
                .is_success()
        );
    }
    assert_eq!(latency_count(&server) - before, 5);
}
