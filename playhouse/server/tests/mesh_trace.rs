//! One call across the mesh keeps one trace id: an API server asks a stage, the stage asks an
//! API server in turn, and the log lines of both servers (the sender's, the receiver's, the
//! stage's and the handler's) carry the same `trace_id`. Real sockets (TCP link), in-memory
//! directory; the servers share this process, so their lines are told apart by `server`.
//! A request a stage makes with a callback, in an async block or on a spawned task continues
//! the trace of the message it handles too.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use playhouse::Packet;
use tokio::sync::mpsc;

mod support;

use support::trace_room::cluster;

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
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Captures this thread's log lines (the test's current-thread runtime runs every task here).
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("playhouse=debug,playhouse_mesh=debug,mesh_trace=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (log, tracing::subscriber::set_default(subscriber))
}

/// The trace id api-1 logged sending `msg_id`.
fn sent_trace_id(lines: &[String], msg_id: &str) -> String {
    let sent = lines
        .iter()
        .find(|l| {
            l.contains("mesh message sent")
                && l.contains("server=\"api-1\"")
                && l.contains(&format!("msg_id={msg_id} "))
        })
        .unwrap_or_else(|| panic!("api-1 logged no send of {msg_id}:\n{}", lines.join("\n")));
    sent.split("trace_id=").nth(1).unwrap()[..32].to_owned()
}

#[tokio::test]
async fn one_mesh_call_has_one_trace_id_in_both_servers_logs() {
    let (log, _guard) = capture();
    let (looked_up, _) = mpsc::channel(8);
    let (play, api) = cluster(looked_up).await;

    let reply = api
        .sender()
        .request_to_stage("play-1", 9, Packet::empty("Ask"))
        .await
        .unwrap();
    assert_eq!(&*reply.msg_id, "Found");

    let lines = log.lines();
    let trace_id = sent_trace_id(&lines, "Ask");
    let traced: Vec<&String> = lines.iter().filter(|l| l.contains(&trace_id)).collect();
    let has = |what: &str, server: &str| {
        traced
            .iter()
            .any(|l| l.contains(what) && l.contains(server))
    };
    let all = traced
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        has("mesh message received", "server=\"play-1\""),
        "play-1 receives Ask:\n{all}"
    );
    assert!(
        has("stage asks the API server", "play-1"),
        "the stage's line:\n{all}"
    );
    assert!(
        has("mesh message sent", "server=\"play-1\""),
        "play-1 sends Lookup:\n{all}"
    );
    assert!(
        has("mesh message received", "server=\"api-1\""),
        "api-1 receives Lookup:\n{all}"
    );
    assert!(
        has("the API handler runs", "api-1"),
        "the handler's line:\n{all}"
    );
    play.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn a_request_made_with_a_callback_in_a_block_or_spawned_continues_the_trace() {
    let (log, _guard) = capture();
    let (looked_up, mut handled) = mpsc::channel(8);
    let (play, api) = cluster(looked_up).await;

    let asks = [
        ("AskWithCallback", "callback"),
        ("AskInBlock", "block"),
        ("AskSpawned", "spawned"),
    ];
    for (msg_id, variant) in asks {
        api.sender()
            .send_to_stage("play-1", 9, Packet::empty(msg_id))
            .unwrap();
        let ran = tokio::time::timeout(Duration::from_secs(10), handled.recv()).await;
        assert_eq!(ran.unwrap().as_deref(), Some(variant));
    }

    let lines = log.lines();
    let mut broken = Vec::new();
    for (msg_id, variant) in asks {
        let trace_id = sent_trace_id(&lines, msg_id);
        let handler_line = lines
            .iter()
            .find(|l| {
                l.contains("the API handler runs") && l.contains(&format!("variant={variant}"))
            })
            .unwrap();
        if !handler_line.contains(&trace_id) {
            broken.push(format!("{msg_id}: trace {trace_id} not in {handler_line}"));
        }
    }
    assert!(broken.is_empty(), "traces lost:\n{}", broken.join("\n"));
    play.stop().await;
    api.stop().await;
}
