//! SessionResume: a connector that opts in to resumable sessions (`ConnectorConfig::resume`)
//! rides out a dropped connection. Over TCP, TLS and WebSocket the socket is cut under it
//! while the stage streams numbered pushes and requests are running, either from the client's
//! side (over TCP the connector's own socket, over TLS and WebSocket the client-facing end of a
//! relay) or from the server's side (the relay closes the server-facing end first). The client
//! must see `Reconnecting` then `Resumed` and no disconnect, every push once and in order,
//! every request answered once with its own reply; and the stage, asked afterwards, must have
//! handled each request once and seen no drop. Two cuts in a row hold too. A resume with a
//! token the server never issued, or a forged one, gets SESSION_LOST (23); a connector that
//! does not opt in never sees a grant or an acknowledgement on the wire; past the resume
//! window (a temporary Play server with a short one) the session is lost on the client:
//! `Lost`, and the pending request fails with SessionLost.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use playhouse::{ErrorCode, Packet, PlayConfig, ResumeConfig};
use playhouse_connector::{Connector, ConnectorConfig, ReconnectPolicy, SessionEvent, TlsTrust};
use playhouse_protocol::{
    ACK_MSG_ID, END_MSG_ID, RESUME_MSG_ID, ResumeGrant, ResumeRequest, SESSION_MSG_ID,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::{self, ClientEvent, Events, WAIT, describe};
use crate::context::TestCtx;
use crate::cut_proxy::{CutProxy, msg_ids};
use crate::proto::{
    EchoRequest, ResumeProbeHistoryReply, ResumeProbeHistoryRequest, ResumeProbeReply,
    ResumeProbeRequest, StageStateReply, StageStateRequest, StartCountTimerRequest,
    StartTimerReply, TimerTickNotify,
};
use crate::raw::RawClient;
use crate::runner::{Category, TestCase};
use crate::servers::{TEST_STAGE, play_server_builder, start_play};
use crate::{TestResult, ensure, ensure_eq};

/// Pushes the stage streams during a cut run (one every [`PUSH_PERIOD_MS`]).
const PUSHES: i32 = 150;
const PUSH_PERIOD_MS: i32 = 3;
/// Requests sent during a cut run (one every [`REQUEST_GAP`]), each answered after
/// [`PROBE_DELAY_MS`] so some are running at the cut.
const REQUESTS: i32 = 30;
const REQUEST_GAP: Duration = Duration::from_millis(4);
const PROBE_DELAY_MS: i32 = 25;
/// The request after which the connection is cut.
const CUT_AT: i32 = 10;
/// How long the relay keeps the other end open after cutting one.
const HOLD: Duration = Duration::from_millis(150);
/// How long to watch for something that must not happen (a duplicate push, a late event).
const QUIET: Duration = Duration::from_millis(300);

/// The capability bits of the hello.
const RESUME: u32 = 2;

/// The SessionResume category (stage ids 27000..).
pub(super) fn category() -> Category {
    let slow = Duration::from_secs(30);
    Category {
        name: "SessionResume",
        base: 27_000,
        tests: vec![
            TestCase::new("Tcp_ClientCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(1, Transport::Tcp, Side::Client)))
            })
            .timeout(slow),
            TestCase::new("Tls_ClientCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(2, Transport::Tls, Side::Client)))
            })
            .timeout(slow),
            TestCase::new("WebSocket_ClientCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(3, Transport::WebSocket, Side::Client)))
            })
            .timeout(slow),
            TestCase::new("Tcp_ServerCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(4, Transport::Tcp, Side::Server)))
            })
            .timeout(slow),
            TestCase::new("Tls_ServerCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(5, Transport::Tls, Side::Server)))
            })
            .timeout(slow),
            TestCase::new("WebSocket_ServerCut_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(t, Run::new(6, Transport::WebSocket, Side::Server)))
            })
            .timeout(slow),
            TestCase::new("Tcp_TwoClientCutsInARow_NothingLostNothingTwice", |t| {
                Box::pin(cut_run(
                    t,
                    Run::new(7, Transport::Tcp, Side::Client).cuts(2),
                ))
            })
            .timeout(slow),
            TestCase::new(
                "WebSocket_TwoServerCutsInARow_NothingLostNothingTwice",
                |t| {
                    Box::pin(cut_run(
                        t,
                        Run::new(8, Transport::WebSocket, Side::Server).cuts(2),
                    ))
                },
            )
            .timeout(slow),
            TestCase::new("Resume_UnknownToken_SessionLost", |t| {
                Box::pin(unknown_token(t))
            }),
            TestCase::new("Resume_ForgedToken_SessionLost_SessionUnharmed", |t| {
                Box::pin(forged_token(t))
            }),
            TestCase::new("NotOptedIn_NoGrantNoAckOnTheWire", |t| {
                Box::pin(wire(t, false))
            }),
            TestCase::new("OptedIn_GrantAndAcksOnTheWire", |t| Box::pin(wire(t, true))),
            TestCase::new("PastTheWindow_Lost_PendingRequestFailsSessionLost", |t| {
                Box::pin(past_the_window(t))
            }),
        ],
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Tcp,
    Tls,
    WebSocket,
}

/// Which end of the connection goes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// One cut run: where, how, how many times in a row.
#[derive(Clone, Copy, Debug)]
struct Run {
    offset: i64,
    transport: Transport,
    side: Side,
    cuts: usize,
}

impl Run {
    fn new(offset: i64, transport: Transport, side: Side) -> Run {
        Run {
            offset,
            transport,
            side,
            cuts: 1,
        }
    }

    fn cuts(self, cuts: usize) -> Run {
        Run { cuts, ..self }
    }

    fn user(&self) -> String {
        format!("resume_user_{}", self.offset)
    }
}

/// A connector config that asks for resumable sessions and reconnects quickly.
fn resumable(base: ConnectorConfig) -> ConnectorConfig {
    base.resume(true)
        .request_timeout(Duration::from_secs(10))
        .reconnect(ReconnectPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            jitter_seed: Some(27),
        })
}

/// The connector settings, host name and play-1 endpoint for `transport`.
fn endpoint(t: &TestCtx, transport: Transport) -> (ConnectorConfig, &'static str, SocketAddr) {
    let servers = t.servers();
    let direct = resumable(client::direct_config());
    match transport {
        Transport::Tcp => (direct, "127.0.0.1", servers.play_tcp),
        Transport::Tls => (
            direct.transport(playhouse_connector::Transport::Tls {
                trust: TlsTrust::Config(servers.tls_client.clone()),
            }),
            // The generated certificate names `localhost`.
            "localhost",
            servers.play_tls,
        ),
        Transport::WebSocket => (
            direct.transport(playhouse_connector::Transport::websocket()),
            "127.0.0.1",
            servers.play_ws,
        ),
    }
}

/// Dials play-1 over TCP for the connector and keeps a second handle on every socket, so a
/// cut closes the connector's own socket (`shutdown(Both)`: its reads end, the server sees
/// the end) while the connector holds it.
#[derive(Clone, Debug, Default)]
struct OwnSockets {
    sockets: Arc<Mutex<Vec<std::net::TcpStream>>>,
    dialed: Arc<AtomicUsize>,
}

type Dialing = Pin<Box<dyn Future<Output = std::io::Result<tokio::net::TcpStream>> + Send>>;

impl OwnSockets {
    fn dialer(&self, addr: SocketAddr) -> impl Fn() -> Dialing + Send + Sync + 'static {
        let this = self.clone();
        move || {
            let this = this.clone();
            Box::pin(async move {
                this.dialed.fetch_add(1, Ordering::SeqCst);
                let stream = tokio::net::TcpStream::connect(addr).await?.into_std()?;
                this.sockets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(stream.try_clone()?);
                tokio::net::TcpStream::from_std(stream)
            })
        }
    }

    /// Shuts down every socket dialed so far; returns how many.
    fn cut(&self) -> usize {
        let sockets: Vec<_> = self
            .sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        for socket in &sockets {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        sockets.len()
    }
}

/// How a run's connection is cut.
enum Cutter {
    /// The connector's own TCP socket.
    Own(OwnSockets),
    /// A relay between the connector and play-1.
    Proxy(CutProxy, Side),
}

impl Cutter {
    async fn cut(&self) -> TestResult {
        let cut = match self {
            Cutter::Own(sockets) => sockets.cut(),
            Cutter::Proxy(proxy, Side::Client) => proxy.cut_client_side(HOLD).await,
            Cutter::Proxy(proxy, Side::Server) => proxy.cut_server_side(HOLD).await,
        };
        ensure!(cut > 0, "there was no live connection to cut");
        Ok(())
    }

    /// Connections opened so far.
    fn dialed(&self) -> usize {
        match self {
            Cutter::Own(sockets) => sockets.dialed.load(Ordering::SeqCst),
            Cutter::Proxy(proxy, _) => proxy.accepted(),
        }
    }
}

/// The session events a connector reported, in order.
fn session_events(connector: &Connector) -> mpsc::UnboundedReceiver<SessionEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    connector.on_session(move |event| {
        let _ = tx.send(event);
    });
    rx
}

async fn next_session_event(
    events: &mut mpsc::UnboundedReceiver<SessionEvent>,
    expected: SessionEvent,
) -> TestResult {
    let event = tokio::time::timeout(WAIT, events.recv())
        .await
        .map_err(|_| format!("no session event within {WAIT:?} (expected {expected:?})"))?
        .ok_or("the session event handler is gone")?;
    ensure_eq!(event, expected, "session event");
    Ok(())
}

/// A connector joined to stage `run.offset` over `run.transport`, and what cuts it.
async fn open(t: &TestCtx, run: &Run) -> Result<(Connector, client::EventTap, Cutter), String> {
    let (config, host, server) = endpoint(t, run.transport);
    let (connector, tap) = t.connector(config);
    let stage_id = t.stage_id(run.offset);
    let cutter = if run.transport == Transport::Tcp && run.side == Side::Client {
        let sockets = OwnSockets::default();
        connector
            .connect_with(sockets.dialer(server), stage_id, TEST_STAGE)
            .await
            .map_err(|e| format!("connect_with failed: {}", describe(&e)))?;
        Cutter::Own(sockets)
    } else {
        let proxy = CutProxy::start(server).await?;
        connector
            .connect(host, proxy.addr.port(), stage_id, TEST_STAGE)
            .await
            .map_err(|e| format!("connect through the relay failed: {}", describe(&e)))?;
        Cutter::Proxy(proxy, run.side)
    };
    client::authenticate(&connector, &run.user()).await?;
    Ok((connector, tap, cutter))
}

fn probe(connector: &Connector, id: i32) -> JoinHandle<Result<ResumeProbeReply, String>> {
    let connector = connector.clone();
    tokio::spawn(async move {
        let request = ResumeProbeRequest {
            id,
            delay_ms: PROBE_DELAY_MS,
        };
        client::request(&connector, &request).await
    })
}

/// What the application saw of a push stream: the ticks of `timer_id` in arrival order, and
/// whether `on_disconnect` fired meanwhile.
struct Seen {
    ticks: Vec<i32>,
    disconnected: bool,
}

/// Reads events until `count` ticks of `timer_id` arrived (or `within` passed), then `quiet`
/// longer to catch a duplicate.
async fn watch_stream(events: &mut Events, timer_id: u64, count: usize, within: Duration) -> Seen {
    let mut seen = Seen {
        ticks: Vec::new(),
        disconnected: false,
    };
    let record = |event: ClientEvent, seen: &mut Seen| match event {
        ClientEvent::Push { packet, .. } if packet.is::<TimerTickNotify>() => {
            if let Ok(tick) = packet.parse::<TimerTickNotify>()
                && tick.timer_id == timer_id
            {
                seen.ticks.push(tick.tick);
            }
        }
        ClientEvent::Disconnect => seen.disconnected = true,
        _ => {}
    };
    let deadline = tokio::time::Instant::now() + within;
    while seen.ticks.len() < count {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match events.next(left).await {
            Ok(event) => record(event, &mut seen),
            Err(_) => break,
        }
    }
    let quiet_until = tokio::time::Instant::now() + QUIET;
    loop {
        let left = quiet_until.saturating_duration_since(tokio::time::Instant::now());
        match events.next(left).await {
            Ok(event) => record(event, &mut seen),
            Err(_) => break,
        }
    }
    seen
}

/// Streams pushes and runs requests, cuts the connection `run.cuts` times in a row after
/// request [`CUT_AT`], then checks what the client saw and asks the stage what it handled.
async fn cut_run(t: TestCtx, run: Run) -> TestResult {
    let (connector, tap, cutter) = open(&t, &run).await?;
    let mut sessions = session_events(&connector);
    let mut events = tap.subscribe();
    let result = cut_run_on(&connector, &mut events, &mut sessions, &cutter, &run).await;
    connector.disconnect().await;
    result
}

async fn cut_run_on(
    connector: &Connector,
    events: &mut Events,
    sessions: &mut mpsc::UnboundedReceiver<SessionEvent>,
    cutter: &Cutter,
    run: &Run,
) -> TestResult {
    let stream = StartCountTimerRequest {
        initial_delay_ms: 10,
        period_ms: PUSH_PERIOD_MS,
        count: PUSHES,
    };
    let timer: StartTimerReply = client::request(connector, &stream).await?;
    let dialed_before = cutter.dialed();

    let mut replies = Vec::new();
    for id in 1..=REQUESTS {
        replies.push((id, probe(connector, id)));
        if id == CUT_AT {
            for cut in 1..=run.cuts {
                cutter.cut().await?;
                if cut < run.cuts {
                    // Cut again right after resuming.
                    next_session_event(sessions, SessionEvent::Reconnecting).await?;
                    next_session_event(sessions, SessionEvent::Resumed).await?;
                }
            }
        }
        tokio::time::sleep(REQUEST_GAP).await;
    }
    if run.cuts > 0 {
        next_session_event(sessions, SessionEvent::Reconnecting).await?;
        next_session_event(sessions, SessionEvent::Resumed).await?;
    }

    // Every request answered exactly once, with its own reply.
    for (id, reply) in replies {
        let reply = tokio::time::timeout(WAIT, reply)
            .await
            .map_err(|_| format!("request {id} not answered within {WAIT:?}"))?
            .map_err(|e| format!("request {id}: {e}"))?
            .map_err(|e| format!("request {id}: {e}"))?;
        ensure_eq!(reply.id, id, "the reply to request {id}");
    }

    // Every push once and in order, and no disconnect seen by the application.
    let count = usize::try_from(PUSHES).unwrap_or(0);
    let seen = watch_stream(events, timer.timer_id, count, WAIT).await;
    ensure!(
        !seen.disconnected,
        "on_disconnect fired during a drop the session resumed from"
    );
    let expected: Vec<i32> = (1..=PUSHES).collect();
    if seen.ticks != expected {
        return Err(format!(
            "pushes not delivered exactly once and in order: {} received, {}",
            seen.ticks.len(),
            first_difference(&seen.ticks, &expected)
        ));
    }

    // No further session event (no Lost), and the connector really dialed again.
    ensure!(
        sessions.try_recv().is_err(),
        "an extra session event after Resumed"
    );
    let redials = cutter.dialed() - dialed_before;
    ensure!(
        redials >= run.cuts,
        "{redials} new connections for {} cuts: the cut did not take",
        run.cuts
    );

    // The stage ran each request exactly once and saw no drop.
    let history: ResumeProbeHistoryReply =
        client::request(connector, &ResumeProbeHistoryRequest {}).await?;
    let runs = |id: i32| history.handled_ids.iter().filter(|h| **h == id).count();
    let twice: Vec<i32> = (1..=REQUESTS).filter(|id| runs(*id) > 1).collect();
    let never: Vec<i32> = (1..=REQUESTS).filter(|id| runs(*id) == 0).collect();
    ensure!(
        twice.is_empty() && never.is_empty() && history.handled_ids.len() == (1..=REQUESTS).count(),
        "the stage did not handle each request exactly once: more than once {twice:?}, \
         never {never:?}, handled {:?}",
        history.handled_ids
    );
    let stage: StageStateReply = client::request(connector, &StageStateRequest {}).await?;
    let changes: Vec<&String> = stage
        .callbacks
        .iter()
        .filter(|c| c.starts_with("on_connection_changed:"))
        .collect();
    ensure!(changes.is_empty(), "the stage saw the drop: {changes:?}");
    Ok(())
}

/// Describes where `actual` first departs from `expected`.
fn first_difference(actual: &[i32], expected: &[i32]) -> String {
    let at = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .unwrap_or(actual.len().min(expected.len()));
    format!(
        "first difference at index {at}: got {:?}, expected {:?}",
        actual.get(at..(at + 5).min(actual.len())).unwrap_or(&[]),
        expected
            .get(at..(at + 5).min(expected.len()))
            .unwrap_or(&[]),
    )
}

/// A raw client on play-1 that asked for resumable sessions, authenticated as `user` in
/// stage `offset`, and got its grant.
async fn raw_session(
    t: &TestCtx,
    offset: i64,
    user: &str,
) -> Result<(RawClient, ResumeGrant), String> {
    let mut raw = RawClient::connect(t.addr()).await?;
    let hello = raw.hello(7, RESUME).await?;
    ensure_eq!(hello.error_code, 0, "hello error code");
    let granted = hello
        .payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or("a hello reply without capabilities")?;
    ensure!(granted & RESUME != 0, "resume not granted: {granted:#x}");
    let auth = client::auth_packet(user);
    raw.send(&auth.msg_id, 1, t.stage_id(offset), &auth.payload)
        .await?;
    let grant = raw.frame(WAIT).await?;
    ensure_eq!(
        grant.msg_id.as_str(),
        SESSION_MSG_ID,
        "first frame after authenticating"
    );
    let grant = ResumeGrant::from_payload(&grant.payload).ok_or("a malformed grant")?;
    let reply = raw.reply(1, WAIT).await?;
    ensure_eq!(
        reply.msg_id.as_str(),
        "AuthenticateReply",
        "authenticate reply"
    );
    ensure_eq!(reply.error_code, 0, "authenticate error code");
    Ok((raw, grant))
}

/// Asks play-1 on a new raw connection to resume `token`; returns the answer's error code.
async fn resume_with(t: &TestCtx, token: [u8; 16]) -> Result<u16, String> {
    let mut raw = RawClient::connect(t.addr()).await?;
    let hello = raw.hello(3, RESUME).await?;
    ensure_eq!(hello.error_code, 0, "hello error code");
    let request = ResumeRequest {
        token: playhouse_protocol::ResumeToken(token),
        received: 1,
    };
    raw.send(RESUME_MSG_ID, 9, 0, &request.to_payload()).await?;
    let answer = raw.reply(9, WAIT).await?;
    ensure_eq!(answer.msg_id.as_str(), RESUME_MSG_ID, "answer msg id");
    Ok(answer.error_code)
}

async fn unknown_token(t: TestCtx) -> TestResult {
    // Never issued: 128 bits a server would hand out only by a 2^-128 chance.
    let token = *b"never-issued-tok";
    let code = resume_with(&t, token).await?;
    ensure_eq!(
        code,
        ErrorCode::SESSION_LOST.0,
        "resume with an unknown token (SESSION_LOST)"
    );
    Ok(())
}

async fn forged_token(t: TestCtx) -> TestResult {
    let (mut raw, grant) = raw_session(&t, 20, "resume_forged").await?;
    let mut forged = grant.token.0;
    forged[15] ^= 1;
    let code = resume_with(&t, forged).await?;
    ensure_eq!(
        code,
        ErrorCode::SESSION_LOST.0,
        "resume with a token one bit off a real one (SESSION_LOST)"
    );
    // The forged attempt neither took the session over nor ended it.
    let echo = EchoRequest {
        content: "still mine".into(),
        sequence: 2,
    };
    raw.send(
        "EchoRequest",
        2,
        t.stage_id(20),
        &prost::Message::encode_to_vec(&echo),
    )
    .await?;
    let reply = raw.reply(2, WAIT).await?;
    ensure_eq!(
        reply.msg_id.as_str(),
        "EchoReply",
        "echo on the real session"
    );
    ensure_eq!(reply.error_code, 0, "echo error code");
    Ok(())
}

/// A connector with `resume` on or off, through a relay that keeps the bytes: pushes and
/// requests enough for acknowledgements to be due (more than 32 each way). Off, no control
/// frame of resumable sessions may cross; on, the grant and acknowledgements must (so the
/// check above can tell).
async fn wire(t: TestCtx, resume: bool) -> TestResult {
    let offset = if resume { 31 } else { 30 };
    let proxy = CutProxy::start(t.addr()).await?;
    let config = client::direct_config().resume(resume);
    let (connector, tap) = t.connector(config);
    let mut events = tap.subscribe();
    client::connect(&connector, proxy.addr, t.stage_id(offset)).await?;
    let user = format!("resume_wire_{resume}");
    client::authenticate(&connector, &user).await?;
    let stream = StartCountTimerRequest {
        initial_delay_ms: 0,
        period_ms: 1,
        count: 40,
    };
    let timer: StartTimerReply = client::request(&connector, &stream).await?;
    for id in 1..=40 {
        let reply: ResumeProbeReply =
            client::request(&connector, &ResumeProbeRequest { id, delay_ms: 0 }).await?;
        ensure_eq!(reply.id, id, "probe reply");
    }
    let seen = watch_stream(&mut events, timer.timer_id, 40, WAIT).await;
    ensure_eq!(seen.ticks.len(), 40, "pushes received");

    let control = [SESSION_MSG_ID, ACK_MSG_ID, RESUME_MSG_ID, END_MSG_ID];
    let deadline = tokio::time::Instant::now() + WAIT;
    let (to_client, to_server) = loop {
        let carried = proxy.carried();
        ensure_eq!(carried.len(), 1, "connections through the relay");
        let to_client = msg_ids(&carried[0].to_client)?;
        let to_server = msg_ids(&carried[0].to_server)?;
        let client_acked = to_server.iter().any(|id| id == ACK_MSG_ID);
        // On: wait until the connector's acknowledgement crossed the relay.
        if !resume || client_acked || tokio::time::Instant::now() >= deadline {
            break (to_client, to_server);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    connector.disconnect().await;
    ensure!(
        to_client.len() >= 80 && to_server.len() >= 40,
        "too few frames on the wire to judge: {} from the server, {} from the client",
        to_client.len(),
        to_server.len()
    );
    let count = |ids: &[String], wanted: &str| ids.iter().filter(|id| *id == wanted).count();
    if resume {
        ensure_eq!(
            count(&to_client, SESSION_MSG_ID),
            1,
            "grants from the server"
        );
        ensure!(
            count(&to_client, ACK_MSG_ID) >= 1,
            "the server never acknowledged the client's frames"
        );
        ensure!(
            count(&to_server, ACK_MSG_ID) >= 1,
            "the connector never acknowledged the server's frames"
        );
    } else {
        for id in control {
            ensure_eq!(count(&to_client, id), 0, "{id} frames from the server");
            ensure_eq!(count(&to_server, id), 0, "{id} frames from the connector");
        }
    }
    Ok(())
}

/// A temporary Play server whose resume window is short; the server becomes unreachable
/// with a request pending, and stays so past the window.
async fn past_the_window(t: TestCtx) -> TestResult {
    let window = Duration::from_millis(400);
    let builder = play_server_builder("play-resume-window").configure(|config: &mut PlayConfig| {
        let mut resume = ResumeConfig::default();
        resume.window = window;
        config.resume = Some(resume);
    });
    let (server, addr) = start_play(builder)
        .await
        .map_err(|e| format!("start the temporary server: {e}"))?;
    let result = lost_on(&t, addr, window).await;
    server.stop().await;
    result
}

async fn lost_on(t: &TestCtx, addr: SocketAddr, window: Duration) -> TestResult {
    let proxy = CutProxy::start(addr).await?;
    let (connector, tap) = t.connector(resumable(client::direct_config()));
    let mut sessions = session_events(&connector);
    let mut events = tap.subscribe();
    client::join(&connector, proxy.addr, t.stage_id(40), "resume_lost").await?;
    // Answered long after the window: still pending when the session is lost.
    let pending = {
        let connector = connector.clone();
        tokio::spawn(async move {
            let request = ResumeProbeRequest {
                id: 1,
                delay_ms: 5_000,
            };
            connector.request(Packet::from_message(&request)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.set_down(true);
    ensure!(
        proxy.cut_server_side(Duration::ZERO).await > 0,
        "there was no live connection to cut"
    );
    let started = tokio::time::Instant::now();
    next_session_event(&mut sessions, SessionEvent::Reconnecting).await?;
    next_session_event(&mut sessions, SessionEvent::Lost).await?;
    let lost_after = started.elapsed();
    let outcome = tokio::time::timeout(WAIT, pending)
        .await
        .map_err(|_| "the pending request never ended".to_owned())?
        .map_err(|e| format!("the pending request: {e}"))?;
    match outcome {
        Ok(reply) => return Err(format!("the pending request got {:?}", reply.msg_id)),
        Err(error) => ensure_eq!(
            error.code(),
            ErrorCode::SESSION_LOST,
            "the pending request's error ({})",
            describe(&error)
        ),
    }
    events.disconnect(WAIT).await?;
    ensure!(!connector.is_connected(), "still connected after Lost");
    ensure!(
        lost_after + Duration::from_millis(50) >= window,
        "lost after {lost_after:?}, before the {window:?} window passed"
    );
    ensure!(
        proxy.accepted() >= 2,
        "the connector never tried to reconnect ({} connections)",
        proxy.accepted()
    );
    Ok(())
}
