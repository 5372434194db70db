//! The connector over an in-memory stream (`connect_with` and a `tokio::io::duplex`) on a
//! paused clock: what it accepts from the server, what it buffers for a server that stops
//! reading, what it reports in flight, that with heartbeats off silence drops nothing, and
//! when a resumable connector does not resume.
//! Everything waits on an event; the paused clock makes "nothing happened for a minute"
//! exact.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use playhouse_connector::{
    Connector, ConnectorConfig, ConnectorError, ErrorCode, Packet, ReconnectPolicy, SessionEvent,
};
use playhouse_protocol::{
    ClientFrame, CodecConfig, ResumeGrant, ResumeToken, ServerCodec, ServerFrame,
};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

type Server = Framed<DuplexStream, ServerCodec>;

const STAGE: i64 = 7;

fn config() -> ConnectorConfig {
    ConnectorConfig::default()
        .heartbeat_interval(Duration::ZERO)
        .compression(false)
        .use_main_thread_callbacks(false)
}

/// Connects `connector` over an in-memory stream of `buffer` bytes each way; returns the
/// server's end, unread.
async fn connected_raw(connector: &Connector, buffer: usize) -> DuplexStream {
    connected_dialing(connector, buffer, |_| Redial::Connect)
        .await
        .0
}

/// How a dial after the first (a resumable session reconnecting) ends.
enum Redial {
    Connect,
    Refuse,
    Hang,
}

/// [`connected_raw`], with dial `n` (from 1) after the first ending as `redial(n)` says;
/// also returns the count of dials so far.
async fn connected_dialing(
    connector: &Connector,
    buffer: usize,
    redial: fn(usize) -> Redial,
) -> (DuplexStream, Arc<AtomicUsize>) {
    let (far_tx, mut far_rx) = mpsc::unbounded_channel();
    let dials = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&dials);
    let dial = move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        let (near, far) = tokio::io::duplex(buffer);
        let _ = far_tx.send(far);
        async move {
            match if n == 0 { Redial::Connect } else { redial(n) } {
                Redial::Connect => Ok(near),
                Redial::Refuse => Err(io::ErrorKind::ConnectionRefused.into()),
                Redial::Hang => std::future::pending().await,
            }
        }
    };
    connector
        .connect_with(dial, STAGE, "Room")
        .await
        .expect("connected");
    (far_rx.recv().await.expect("dialed"), dials)
}

/// The next client frame, skipping the capability hello a resumable connector opens with.
async fn next(server: &mut Server) -> ClientFrame {
    loop {
        let frame = server
            .next()
            .await
            .expect("client hung up")
            .expect("valid client frame");
        if !frame.is_hello() {
            return frame;
        }
    }
}

fn reply(to: &ClientFrame, payload: Vec<u8>) -> ServerFrame {
    ServerFrame::new(
        to.msg_id.to_string(),
        to.msg_seq,
        to.stage_id,
        ErrorCode::SUCCESS,
        payload,
    )
}

/// Sends `packet` as a request and, if it reaches the server, answers it with `payload`. A
/// request the connector fails before writing it comes back as it is (no waiting for a frame
/// that will never come).
async fn ask(
    connector: &Connector,
    server: &mut Server,
    packet: Packet,
    payload: &[u8],
) -> Result<Packet, ConnectorError> {
    let asking = connector.clone();
    let mut request = tokio::spawn(async move { asking.request(packet).await });
    let frame = tokio::select! {
        result = &mut request => return result.unwrap(),
        frame = next(server) => frame,
    };
    server.send(reply(&frame, payload.to_vec())).await.unwrap();
    request.await.unwrap()
}

/// Connected and authenticated; the server end framed.
async fn authenticated(connector: &Connector) -> Server {
    authenticated_granting(connector, None).await
}

/// Connected and authenticated, the server granting `grant` (a resumable session) first.
async fn authenticated_granting(connector: &Connector, grant: Option<ResumeGrant>) -> Server {
    authenticate_over(connector, connected_raw(connector, 64 * 1024).await, grant).await
}

/// Authenticates `connector` over its connection's server end `far`, the server granting
/// `grant` first; the server end framed.
async fn authenticate_over(
    connector: &Connector,
    far: DuplexStream,
    grant: Option<ResumeGrant>,
) -> Server {
    let mut server = Framed::new(far, ServerCodec::new(CodecConfig::default()));
    let (result, ()) = tokio::join!(
        connector.authenticate(Packet::new("AuthenticateRequest", "u")),
        async {
            let request = next(&mut server).await;
            if let Some(grant) = &grant {
                server
                    .send(ServerFrame::session_grant(grant))
                    .await
                    .unwrap();
            }
            server.send(reply(&request, b"ok".to_vec())).await.unwrap();
        }
    );
    result.expect("authenticated");
    server
}

/// A connector asking for resumable sessions, recording its session events.
fn resumable() -> (Connector, Arc<Mutex<Vec<SessionEvent>>>) {
    let connector = Connector::new(config().resume(true));
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    connector.on_session(move |event| seen.lock().unwrap().push(event));
    (connector, events)
}

fn grant() -> ResumeGrant {
    ResumeGrant {
        token: ResumeToken([7; 16]),
        window: Duration::from_secs(30),
        ack_every: 8,
        max_unacked: 1024,
    }
}

/// Leaving on purpose ends a resumable session: the server is told (`end_session`), and the
/// connector does not try to resume it.
#[tokio::test(start_paused = true)]
async fn disconnecting_ends_a_resumable_session_without_resuming_it() {
    let (connector, events) = resumable();
    let mut server = authenticated_granting(&connector, Some(grant())).await;
    connector.disconnect().await;
    let mut frames = Vec::new();
    while let Some(frame) = server.next().await {
        frames.push(frame.expect("valid client frame"));
    }
    assert!(
        frames
            .iter()
            .any(|frame| *frame == ClientFrame::end_session()),
        "{frames:?}"
    );
    assert!(events.lock().unwrap().is_empty(), "{events:?}");
}

/// A connector that asked for resumable sessions but was granted none behaves as a plain
/// one when the server goes: requests fail with `Disconnected`, no session is reported lost.
#[tokio::test(start_paused = true)]
async fn without_a_granted_session_a_drop_is_a_plain_disconnect() {
    let (connector, events) = resumable();
    let mut server = authenticated_granting(&connector, None).await;
    let asking = connector.clone();
    let request = tokio::spawn(async move { asking.request(Packet::new("Ask", "?")).await });
    next(&mut server).await;
    drop(server);
    let result = request.await.unwrap();
    assert!(
        matches!(result, Err(ConnectorError::Disconnected)),
        "{result:?}"
    );
    assert!(events.lock().unwrap().is_empty(), "{events:?}");
}

/// A reply longer than the configured `max_packet_size` (smaller than the default) is a
/// protocol error: the request fails with it and the connection ends.
#[tokio::test(start_paused = true)]
async fn a_reply_over_the_configured_max_packet_size_ends_the_connection() {
    let connector = Connector::new(config().max_packet_size(4096));
    let mut server = authenticated(&connector).await;
    let (result, ()) = tokio::join!(connector.request(Packet::new("Ask", "?")), async {
        let request = next(&mut server).await;
        server.send(reply(&request, vec![0; 8192])).await.unwrap();
    });
    assert!(
        matches!(result, Err(ConnectorError::Protocol(_))),
        "{result:?}"
    );
    assert!(!connector.is_connected());
}

/// `pending_requests` counts requests written and not answered yet.
#[tokio::test(start_paused = true)]
async fn pending_requests_counts_what_awaits_a_reply() {
    let connector = Connector::new(config());
    let mut server = authenticated(&connector).await;
    assert_eq!(connector.pending_requests(), 0);
    let asking = connector.clone();
    let first = tokio::spawn(async move { asking.request(Packet::new("Ask", "1")).await });
    let asking = connector.clone();
    let second = tokio::spawn(async move { asking.request(Packet::new("Ask", "2")).await });
    let (a, b) = (next(&mut server).await, next(&mut server).await);
    assert_eq!(connector.pending_requests(), 2);
    server.send(reply(&a, b"a".to_vec())).await.unwrap();
    first.await.unwrap().expect("answered");
    assert_eq!(connector.pending_requests(), 1);
    server.send(reply(&b, b"b".to_vec())).await.unwrap();
    second.await.unwrap().expect("answered");
    assert_eq!(connector.pending_requests(), 0);
}

/// With heartbeats off, a silent server is not dropped, however long it stays silent (the
/// heartbeat timeout applies only to heartbeats).
#[tokio::test(start_paused = true)]
async fn without_heartbeats_a_silent_server_is_never_dropped() {
    let connector = Connector::new(config().heartbeat_timeout(Duration::from_secs(1)));
    let mut server = authenticated(&connector).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(connector.is_connected());
    let (result, ()) = tokio::join!(connector.request(Packet::new("Ask", "?")), async {
        let request = next(&mut server).await;
        server
            .send(reply(&request, b"still here".to_vec()))
            .await
            .unwrap();
    });
    assert_eq!(result.expect("answered").payload, "still here");
}

/// A server that stops reading: the connector buffers up to 256 KiB of encoded frames beyond
/// what the stream took, then stops taking commands, so its bounded command queue fills and
/// `send` fails at once instead of memory growing without bound.
#[tokio::test(start_paused = true)]
async fn a_server_that_stops_reading_makes_sends_fail_once_the_buffers_are_full() {
    let connector = Connector::new(config());
    let server = authenticated(&connector).await;
    let payload = vec![0u8; 1000];
    let mut accepted = 0usize;
    let error = loop {
        match connector.send(Packet::new("Note", payload.clone())) {
            Ok(()) => accepted += 1,
            Err(error) => break error,
        }
        if accepted.is_multiple_of(64) {
            // Let the connection task take what it will.
            tokio::task::yield_now().await;
        }
        assert!(
            accepted < 100_000,
            "sends never fail: the buffer grows without bound"
        );
    };
    assert!(
        matches!(error, ConnectorError::Unsupported(why) if why.contains("queue is full")),
        "{error:?}"
    );
    // The stream's 64 KiB, the 256 KiB buffer and the 4,096-command queue, in frames of
    // about 1 KiB.
    assert!(accepted >= 256 + 4096, "{accepted}");
    drop(server);
}

/// In a resumable session the connector keeps each data frame until the server acknowledges
/// it, and stops taking commands while 4,096 wait. A server that acknowledges as it reads
/// (here every 8 frames) gets any number of messages through: acknowledged frames are let go.
#[tokio::test(start_paused = true)]
async fn acknowledged_frames_are_let_go_so_sending_never_stalls() {
    const MESSAGES: u64 = 10_000;
    let (connector, events) = resumable();
    let mut server = authenticated_granting(&connector, Some(grant())).await;
    let reader = tokio::spawn(async move {
        let mut received = 0u64;
        while received < MESSAGES {
            let frame = next(&mut server).await;
            if frame.is_control() {
                continue;
            }
            received += 1;
            if received.is_multiple_of(8) {
                server.send(ServerFrame::ack(received)).await.unwrap();
            }
        }
        // Kept open: a dropped stream would be a lost connection.
        (received, server)
    });
    let (mut sent, mut refused) = (0, 0);
    while sent < MESSAGES && refused < 100_000 {
        match connector.send(Packet::new("Note", vec![0u8; 16])) {
            Ok(()) => sent += 1,
            // The queue is full: let the connection task and the server catch up.
            Err(ConnectorError::Unsupported(_)) => {
                refused += 1;
                tokio::task::yield_now().await;
            }
            Err(error) => panic!("send {sent}: {error:?}"),
        }
    }
    assert_eq!(sent, MESSAGES, "sending stalled");
    let (received, _server) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the server got every message: sending stalled")
        .unwrap();
    assert_eq!(received, MESSAGES);
    assert!(events.lock().unwrap().is_empty(), "{events:?}");
}

/// Resume attempts that fail at once (the server refuses connections) are spaced by the
/// reconnect policy's backoff, not made back to back.
#[tokio::test(start_paused = true)]
async fn failed_resume_attempts_back_off() {
    let policy = ReconnectPolicy {
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        jitter_seed: Some(1),
    };
    let connector = Connector::new(config().resume(true).reconnect(policy));
    // Refused at once; a broken backoff would spin, so stop answering at all after a
    // thousand and let the assertion below say so.
    let redial = |n| {
        if n < 1000 {
            Redial::Refuse
        } else {
            Redial::Hang
        }
    };
    let (far, dials) = connected_dialing(&connector, 64 * 1024, redial).await;
    let server = authenticate_over(&connector, far, Some(grant())).await;
    drop(server);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // At once, then after 100–150, 200–300, 400–600, 800–1200 ms, ... : 5 or 6 in 3 s.
    let attempts = dials.load(Ordering::SeqCst) - 1;
    assert!(
        (4..=7).contains(&attempts),
        "{attempts} resume attempts in 3 s"
    );
}

/// A request's timeout holds while its session reconnects: the server got it, the connection
/// dropped, and no new one comes; the request fails with `RequestTimeout` at its timeout, not
/// at the end of the resume window (found on the real cluster: a frozen Play server held
/// requests for as long as it was frozen).
#[tokio::test(start_paused = true)]
async fn a_request_times_out_while_its_session_reconnects() {
    let connector = Connector::new(config().resume(true));
    let (far, dials) = connected_dialing(&connector, 64 * 1024, |_| Redial::Refuse).await;
    let mut server = authenticate_over(&connector, far, Some(grant())).await;
    let timeout = Duration::from_secs(2);
    let asking = connector.clone();
    let started = tokio::time::Instant::now();
    let request = tokio::spawn(async move {
        let result = asking
            .request_with_timeout(Packet::empty("Add"), timeout)
            .await;
        (result, started.elapsed())
    });
    let _received = next(&mut server).await;
    drop(server);
    let (result, took) = request.await.unwrap();
    assert!(
        matches!(result, Err(ConnectorError::RequestTimeout)),
        "{result:?} after {took:?}"
    );
    assert_eq!(
        took, timeout,
        "the request's timeout, not the resume window"
    );
    assert!(
        dials.load(Ordering::SeqCst) > 1,
        "the session was reconnecting"
    );
    // A request made while the session reconnects waits for the connection task, which is
    // busy dialing: its timeout runs from the call all the same (found on the real cluster:
    // requests made during a partition answered 7 s later on a 5 s timeout).
    let started = tokio::time::Instant::now();
    let result = connector
        .request_with_timeout(Packet::empty("Add"), timeout)
        .await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(ConnectorError::RequestTimeout)),
        "{result:?} after {took:?}"
    );
    assert_eq!(took, timeout, "made while reconnecting");
}

/// A connector configured with its own login message id lets that message through before
/// authentication (and only that one), and its success authenticates the connection.
#[tokio::test(start_paused = true)]
async fn a_configured_login_message_id_authenticates() {
    let connector = Connector::new(config().authenticate_msg_id("LoginRequest"));
    let far = connected_raw(&connector, 64 * 1024).await;
    let mut server = Framed::new(far, ServerCodec::new(CodecConfig::default()));
    let early = ask(&connector, &mut server, Packet::new("Ask", "?"), b"no").await;
    assert!(
        matches!(early, Err(ConnectorError::Unauthenticated)),
        "{early:?}"
    );
    let login = ask(
        &connector,
        &mut server,
        Packet::new("LoginRequest", "u"),
        b"ok",
    )
    .await;
    login.expect("logged in");
    let result = ask(&connector, &mut server, Packet::new("Ask", "?"), b"yes").await;
    assert_eq!(result.expect("answered").payload, "yes");
}

/// With main-thread callbacks, the queue holds at most `callback_queue_capacity` events; the
/// rest are dropped (and logged) rather than growing without bound while the game does not
/// drain it.
#[tokio::test(start_paused = true)]
async fn the_callback_queue_keeps_to_its_configured_capacity() {
    let connector = Connector::new(
        config()
            .use_main_thread_callbacks(true)
            .callback_queue_capacity(3),
    );
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    connector.on_receive(move |_, _, _| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let mut server = authenticated(&connector).await;
    // Whatever authenticating queued (the connect event) goes first.
    connector.main_thread_action();
    let (result, ()) = tokio::join!(connector.request(Packet::new("Ask", "?")), async {
        let request = next(&mut server).await;
        for _ in 0..10 {
            let push = ServerFrame::new("Push".to_owned(), 0, STAGE, ErrorCode::SUCCESS, vec![1]);
            server.send(push).await.unwrap();
        }
        // Handled after the pushes: once it is answered, all ten have been queued or dropped.
        server
            .send(reply(&request, b"done".to_vec()))
            .await
            .unwrap();
    });
    result.expect("answered");
    assert_eq!(connector.main_thread_action(), 3);
    assert_eq!(received.load(Ordering::SeqCst), 3);
}

/// Message ids are 1..=255 bytes on the wire (one length byte): an empty or longer id is
/// refused before anything is written; one of exactly 255 bytes goes through.
#[tokio::test(start_paused = true)]
async fn message_ids_must_be_one_to_255_bytes() {
    let connector = Connector::new(config());
    let mut server = authenticated(&connector).await;
    for id in [String::new(), "m".repeat(256), "m".repeat(300)] {
        let result = ask(&connector, &mut server, Packet::new(id.clone(), "?"), b"no").await;
        assert!(
            matches!(result, Err(ConnectorError::Unsupported(why)) if why.contains("message ids")),
            "a {}-byte id: {result:?}",
            id.len()
        );
    }
    let longest = Packet::new("m".repeat(255), "?");
    let result = ask(&connector, &mut server, longest, b"ok").await;
    result.expect("a 255-byte id is answered");
}

/// The callback forms authenticate as the async ones do: `authenticate_with_callback` with
/// any id, `request_with_callback` with the configured login id.
#[tokio::test(start_paused = true)]
async fn the_callback_forms_authenticate_the_connection() {
    for with_login_id in [false, true] {
        let connector = Connector::new(config().authenticate_msg_id("LoginRequest"));
        let far = connected_raw(&connector, 64 * 1024).await;
        let mut server = Framed::new(far, ServerCodec::new(CodecConfig::default()));
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        let callback = move |result| {
            let _ = done.send(result);
        };
        if with_login_id {
            connector.request_with_callback(Packet::new("LoginRequest", "u"), callback);
        } else {
            connector.authenticate_with_callback(Packet::new("Hello", "u"), callback);
        }
        let request = tokio::select! {
            result = &mut outcome => panic!("failed before reaching the server: {result:?}"),
            frame = tokio::time::timeout(Duration::from_secs(60), next(&mut server)) => {
                frame.expect("nothing was sent")
            }
        };
        server.send(reply(&request, b"ok".to_vec())).await.unwrap();
        outcome
            .await
            .expect("the callback ran")
            .expect("authenticated");
        let result = ask(&connector, &mut server, Packet::new("Ask", "?"), b"yes").await;
        assert_eq!(
            result.expect("answered once authenticated").payload,
            "yes",
            "login id: {with_login_id}"
        );
    }
}
