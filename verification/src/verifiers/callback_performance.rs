//! ConnectorCallbackPerformance: callback-form requests complete through the callback queue
//! that a game loop drains with `main_thread_action`, quickly and only when drained.

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use playhouse::Packet;
use playhouse_connector::{Connector, ConnectorConfig};
use tokio::sync::mpsc;

use crate::check::TestResult;
use crate::client::{self, WAIT, describe};
use crate::context::TestCtx;
use crate::proto::{EchoReply, EchoRequest};
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

/// The ConnectorCallbackPerformance category (stage ids 12000..).
pub(super) fn category() -> Category {
    Category {
        name: "ConnectorCallbackPerformance",
        base: 12_000,
        tests: vec![
            TestCase::new("Callback50x8KB_Within1s", |t| Box::pin(fifty_8kb(t))),
            TestCase::new("Callback10_DrainedByGameLoop", |t| {
                Box::pin(game_loop_drain(t))
            }),
        ],
    }
}

/// A connector whose callbacks wait for `main_thread_action`, joined to stage `offset`.
async fn queued(t: &TestCtx, offset: i64, user: &str) -> Result<Connector, String> {
    let (connector, _tap) = t.connector(ConnectorConfig::default());
    client::join(&connector, t.addr(), t.stage_id(offset), user).await?;
    Ok(connector)
}

type Replies = mpsc::UnboundedReceiver<(i32, Result<Packet, String>)>;

/// Sends `count` callback-form echo requests whose content is `content(i)`.
fn send_callbacks(
    connector: &Connector,
    count: i32,
    content: impl Fn(i32) -> String,
    on_reply: impl Fn() + Clone + Send + 'static,
) -> Replies {
    let (tx, rx) = mpsc::unbounded_channel();
    for sequence in 0..count {
        let tx = tx.clone();
        let on_reply = on_reply.clone();
        let request = EchoRequest {
            content: content(sequence),
            sequence,
        };
        connector.request_with_callback(Packet::from_message(&request), move |result| {
            on_reply();
            let _ = tx.send((sequence, result.map_err(|e| describe(&e))));
        });
    }
    rx
}

fn check_reply(sequence: i32, result: Result<Packet, String>, content: &str) -> TestResult {
    let reply = result.map_err(|e| format!("request {sequence}: {e}"))?;
    let reply = client::parse::<EchoReply>(&reply)?;
    ensure_eq!(reply.sequence, sequence, "reply sequence");
    ensure!(
        reply.content == content,
        "reply {sequence}: content changed"
    );
    Ok(())
}

async fn fifty_8kb(t: TestCtx) -> TestResult {
    let connector = queued(&t, 1, "perf_8kb").await?;
    let content = |i: i32| {
        let mut text = format!("{i:05}:").repeat(1366);
        text.truncate(8 * 1024);
        text
    };
    let started = Instant::now();
    let mut rx = send_callbacks(&connector, 50, content, || {});
    let mut replies = Vec::new();
    // The game loop: drain the queue, then wait for the next frame (here: 1 ms).
    client::pump_until(&connector, Duration::from_millis(1), WAIT, async {
        while replies.len() < 50 {
            match rx.recv().await {
                Some(reply) => replies.push(reply),
                None => break,
            }
        }
    })
    .await?;
    let elapsed = started.elapsed();
    ensure_eq!(replies.len(), 50, "callbacks run");
    for (sequence, result) in replies {
        check_reply(sequence, result, &content(sequence))?;
    }
    ensure!(
        elapsed < Duration::from_secs(1),
        "50 × 8 KB callback requests took {elapsed:?}"
    );
    Ok(())
}

async fn game_loop_drain(t: TestCtx) -> TestResult {
    let connector = queued(&t, 2, "perf_loop").await?;
    let frame_thread: Arc<Mutex<Option<ThreadId>>> = Arc::new(Mutex::new(None));
    let off_frame = Arc::new(Mutex::new(0_usize));
    let on_reply = {
        let frame_thread = Arc::clone(&frame_thread);
        let off_frame = Arc::clone(&off_frame);
        move || {
            let frame = *frame_thread.lock().unwrap_or_else(|e| e.into_inner());
            if frame != Some(std::thread::current().id()) {
                *off_frame.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
        }
    };
    let content = |i: i32| format!("frame request {i}");
    let mut rx = send_callbacks(&connector, 10, content, on_reply);
    // An async request after them: when it is answered, so are the ten (same stage, in
    // order) — yet their callbacks must still be waiting in the queue.
    let marker: EchoReply = client::request(
        &connector,
        &EchoRequest {
            content: "marker".into(),
            sequence: 100,
        },
    )
    .await?;
    ensure_eq!(marker.sequence, 100, "marker reply");
    ensure!(
        rx.try_recv().is_err(),
        "a callback ran before main_thread_action"
    );
    // A 60 FPS game loop: one main_thread_action per 16 ms frame.
    let mut frames = tokio::time::interval(Duration::from_millis(16));
    let mut replies = Vec::new();
    let mut frame_count = 0;
    while replies.len() < 10 {
        frames.tick().await;
        frame_count += 1;
        ensure!(
            frame_count <= 30,
            "10 callbacks not drained within 30 frames"
        );
        *frame_thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current().id());
        connector.main_thread_action();
        while let Ok(reply) = rx.try_recv() {
            replies.push(reply);
        }
    }
    ensure_eq!(
        frame_count,
        1,
        "frames needed to drain the queued callbacks"
    );
    ensure_eq!(
        *off_frame.lock().unwrap_or_else(|e| e.into_inner()),
        0,
        "callbacks run outside the game loop's frame"
    );
    replies.sort_by_key(|(sequence, _)| *sequence);
    for (sequence, result) in replies {
        check_reply(sequence, result, &content(sequence))?;
    }
    Ok(())
}
