//! Clients cannot write the server's log: every line a client can cause (a bad frame, a
//! message before authentication, an oversized reply, ...) goes through a throttle of one line
//! a second per call site, carrying how many it held back; the metrics count every event.
//!
//! A test binary of its own: the throttles are per call site and process-wide.

mod support;

use std::io;
use std::sync::{Arc, Mutex};

use playhouse::testing::EchoActor;
use playhouse::{ActorCell, ErrorCode, Packet, PlayServer, Stage, StageContext};
use support::{RawClient, closed};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Log output, captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, text: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains(text))
            .map(str::to_owned)
            .collect()
    }
}

/// Answers `Big` with a reply larger than the server's `max_packet_size`.
struct Oversized;

impl Stage for Oversized {
    type Actor = EchoActor;
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
        actor: &mut ActorCell<EchoActor>,
        _: Packet,
    ) {
        actor
            .link
            .reply(Packet::new("BigReply", vec![0u8; 2 * MAX_PACKET]));
    }
}

const MAX_PACKET: usize = 4 * 1024;
/// Connections per kind of bad frame, and oversized replies asked for.
const EACH: usize = 400;

/// A frame of `body` (its length prefix in front).
fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as i32).to_le_bytes().to_vec();
    frame.extend(body);
    frame
}

/// A client frame body with msg id bytes `msg_id`, sequence 1, stage 1.
fn body(msg_id: &[u8]) -> Vec<u8> {
    let mut body = vec![msg_id.len() as u8];
    body.extend(msg_id);
    body.extend(1u16.to_le_bytes());
    body.extend(1i64.to_le_bytes());
    body
}

#[tokio::test]
async fn two_thousand_bad_frames_write_a_few_lines() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = PlayServer::builder()
        .stage("Room", |_| Oversized, |_| EchoActor)
        .default_stage_type("Room")
        .configure(|c| c.codec.max_packet_size = MAX_PACKET)
        .build()
        .unwrap();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let started = Instant::now();

    // 1,600 connections, each cut for one bad frame before authenticating: a frame over
    // the pre-auth limit, a negative length, an id that is not UTF-8, a message before
    // authentication.
    let kinds: [Vec<u8>; 4] = [
        (100_000i32).to_le_bytes().to_vec(),
        (-5i32).to_le_bytes().to_vec(),
        framed(&body(&[0xFF, 0xFE])),
        framed(&body(b"Echo")),
    ];
    for bytes in &kinds {
        for _ in 0..EACH {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(bytes).await.unwrap();
            closed(&mut client).await;
        }
    }
    // 400 requests whose replies are over max_packet_size, from one authenticated client.
    let mut asker = RawClient::connect(addr, 1).await;
    assert!(asker.authenticate("asker").await.is_success());
    for _ in 0..EACH {
        let reply = asker.request("Big", b"").await;
        assert_eq!(reply.error_code, ErrorCode::PACKET_TOO_LARGE);
    }
    let seconds = started.elapsed().as_secs();

    let metrics = server.metrics();
    for reason in [
        "too_large",
        "invalid_length",
        "invalid_utf8",
        "message_before_auth",
        "oversized_outgoing_frame",
    ] {
        let counted = format!("reason=\"{reason}\"}} {EACH}");
        assert!(metrics.contains(&counted), "{reason}: {metrics}");
    }
    // Three call sites wrote about it: at most one line a second each, every one carrying
    // the count it held back.
    for (text, events) in [
        ("bad frame; closing the connection", 3 * EACH),
        ("message before authentication", EACH),
        ("outgoing frame over max_packet_size", EACH),
    ] {
        let lines = log.lines_with(text);
        assert!(
            !lines.is_empty() && lines.len() as u64 <= 1 + seconds,
            "{} lines for {events} events in {seconds} s: {text}",
            lines.len()
        );
        assert!(lines.iter().all(|line| line.contains("suppressed=")));
        let held_back: usize = lines
            .iter()
            .filter_map(|line| line.split("suppressed=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<usize>().ok())
            .sum();
        assert!(lines.len() + held_back <= events, "{text}: {lines:?}");
    }
}
