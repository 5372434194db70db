//! The Play server's connection cap fits under the process's file-descriptor limit, so the
//! cap can be reached and clients over it are refused at once (not left in the kernel's
//! queue once `accept` runs out of descriptors), and a flood of refusals writes one log line
//! a second, not one per connection.
//!
//! A test binary of its own: it lowers this process's `RLIMIT_NOFILE`, hard limit included.

mod support;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use playhouse::PlayServer;
use playhouse::testing::{EchoActor, EchoStage};
use support::RawClient;
use tokio::io::AsyncReadExt;
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

#[tokio::test]
async fn the_cap_fits_under_the_descriptor_limit_and_a_refusal_flood_logs_once_a_second() {
    // A process allowed 1,000 descriptors, and a server that must leave 700 of them to the
    // rest of the process: room for 300 clients, whatever `max_connections` (20,000) says.
    rlimit::Resource::NOFILE.set(1_000, 1_000).unwrap();
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = PlayServer::builder()
        .stage("Room", |_| EchoStage, |_| EchoActor)
        .default_stage_type("Room")
        .configure(|c| {
            c.fd_reserve = 700;
            c.auth_timeout = Duration::from_secs(120);
        })
        .build()
        .unwrap();
    assert_eq!(server.max_connections(), 300);
    // Lowering the default cap is the documented behaviour: one INFO line, not a warning.
    let lowered = log.lines_with("connection cap lowered");
    assert_eq!(lowered.len(), 1);
    assert!(lowered[0].contains("INFO"), "{lowered:?}");
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();

    // The cap is reachable: 300 clients are accepted and served.
    let mut admitted = Vec::new();
    for _ in 0..300 {
        admitted.push(TcpStream::connect(addr).await.unwrap());
    }
    // Everyone above it is refused at once (accepted and closed), not left waiting.
    let flood = Instant::now();
    for _ in 0..50 {
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(2), refused.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "a connection over the cap was not refused"
        );
    }
    let seconds = flood.elapsed().as_secs();
    // The admitted ones are live sessions: the last one authenticates and gets replies.
    let mut last = RawClient::over(admitted.pop().unwrap(), 1);
    assert!(last.authenticate("last").await.is_success());
    assert_eq!(&last.request("Echo", b"hi").await.payload[..], b"hi");
    assert!(server.metrics().contains("reason=\"connection_limit\"} 50"));

    let warnings = log.lines_with("connection refused by limit");
    assert!(
        !warnings.is_empty() && warnings.len() as u64 <= 1 + seconds,
        "{} WARN lines for 50 refusals in {seconds} s",
        warnings.len()
    );

    // A cap someone set by hand that cannot be kept is worth a warning.
    let asked = PlayServer::builder()
        .stage("Room", |_| EchoStage, |_| EchoActor)
        .configure(|c| {
            c.fd_reserve = 700;
            c.max_connections = 5_000;
        })
        .build()
        .unwrap();
    assert_eq!(asked.max_connections(), 300);
    let lowered = log.lines_with("connection cap lowered");
    assert_eq!(lowered.len(), 2);
    assert!(lowered[1].contains("WARN"), "{lowered:?}");
}
