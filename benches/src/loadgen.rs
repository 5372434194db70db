//! The load generator: `ccu` clients, each authenticating into a stage (`per_stage` clients
//! per stage) and then keeping `inflight` messages outstanding (or sending at `rate` per
//! second), for `duration` after a `ramp`. Latency is measured per message into an HDR
//! histogram (microseconds); the server's RSS is sampled from `/proc`, and the bytes the
//! clients read and write are counted while measuring.
//!
//! Clients speak the codec directly (no connector) so the generator stays cheap next to the
//! server on the same cores. With `resume` each client is a resumable client (issue 12): it
//! asks for [`Capabilities::RESUME`] in its hello, reads the [`ResumeGrant`], counts the data
//! frames it receives and acknowledges every `ack_every` (and with its heartbeats), keeps what
//! it sent until the server acknowledges it (at most [`MAX_UNACKED`] frames: a full buffer
//! holds further sends back), and ends its session with `@End@` when the run is over.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use playhouse_protocol::{
    ACK_MSG_ID, Capabilities, ClientCodec, ClientFrame, CodecConfig, DecodeError, ResumeGrant,
    ResumeStreams, SESSION_MSG_ID, ServerFrame, read_count,
};
use playhouse_transport::dial::{ClientIo, DialOptions};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Interval;
use tokio_util::codec::Framed;

use crate::ids;
use crate::process::{cpu_seconds, rss_bytes};
use crate::report::Report;
use crate::spread::{dial_from, is_active, source_for};

/// Most frames a resumable client keeps sent and unacknowledged, as the connector does: a
/// full buffer holds further sends back until the server acknowledges.
pub const MAX_UNACKED: usize = 4096;

/// How often an idle client wakes up to see whether the run is over.
const IDLE_WAKE: Duration = Duration::from_millis(250);

/// Request/reply, one-way messages answered by pushes, or nothing at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Each message is a request; its reply completes it.
    Request,
    /// Each message is one-way; the push the server sends back completes it.
    Send,
    /// Clients authenticate and then send nothing but heartbeats (with `heartbeat`): for the
    /// server's memory per idle session.
    Idle,
}

/// Client transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// Raw frames over TCP.
    Tcp,
    /// Binary WebSocket messages at `/ws`.
    Ws,
    /// TLS (any certificate accepted: benchmarks use self-signed servers).
    Tls,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `host:port` of the server.
    pub target: String,
    /// Concurrent clients.
    pub ccu: usize,
    /// Clients sharing one stage.
    pub per_stage: usize,
    /// Request or send.
    pub mode: Mode,
    /// Messages outstanding per client (ignored when `rate` is set).
    pub inflight: usize,
    /// Messages per second per client; `None`: as fast as the window allows.
    pub rate: Option<f64>,
    /// Payload bytes.
    pub size: usize,
    /// Measured time.
    pub duration: Duration,
    /// Time to connect everyone and warm up (not measured).
    pub ramp: Duration,
    /// Transport.
    pub transport: Transport,
    /// The server's pid, for RSS sampling.
    pub server_pid: Option<u32>,
    /// Be a resumable client: ask for [`Capabilities::RESUME`] and pay its client-side cost.
    pub resume: bool,
    /// Send a heartbeat (preceded by a pending acknowledgement when resumable) this often;
    /// `None`: never.
    pub heartbeat: Option<Duration>,
    /// Client source addresses: 127.0.0.1 up to 127.0.0.`sources` in turn (1: the kernel's
    /// choice), for more connections than one source address has ports.
    pub sources: u8,
    /// Only this many clients (spread evenly) run `mode`; the others stay idle. `None`: all.
    pub active: Option<usize>,
}

/// Counters shared by every client.
#[derive(Default)]
struct Shared {
    measuring: AtomicBool,
    done: AtomicBool,
    completed: AtomicU64,
    errors: AtomicU64,
    connect_failures: AtomicU64,
    authenticated: AtomicU64,
    /// When the last client to authenticate did, in ms from the first connection.
    all_in_ms: AtomicU64,
    /// Clients the server granted a resumable session.
    granted: AtomicU64,
    /// Counted while measuring, added once per client when it ends.
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    acks_in: AtomicU64,
    acks_out: AtomicU64,
}

/// Runs the plan and reports.
pub async fn run(plan: Plan) -> Report {
    let shared = Arc::new(Shared::default());
    let (host, port) = plan.target.rsplit_once(':').expect("target is host:port");
    let port: u16 = port.parse().expect("a port number");
    let options = Arc::new(match plan.transport {
        Transport::Tcp => DialOptions::default(),
        Transport::Ws => DialOptions {
            websocket_path: Some("/ws".to_owned()),
            ..DialOptions::default()
        },
        Transport::Tls => DialOptions {
            tls: Some(playhouse_transport::tls::insecure_client_config().expect("tls config")),
            ..DialOptions::default()
        },
    });
    let mut clients = Vec::with_capacity(plan.ccu);
    let start = Instant::now();
    for index in 0..plan.ccu {
        let client_plan = plan.clone();
        let shared = Arc::clone(&shared);
        let options = Arc::clone(&options);
        let host = host.to_owned();
        clients.push(tokio::spawn(async move {
            client(index, &host, port, &options, &client_plan, &shared, start).await
        }));
        // Spread connection setup over the first half of the ramp.
        if plan.ccu > 100 && index % 100 == 99 {
            let spread = plan.ramp.as_secs_f64() / 2.0 / (plan.ccu as f64 / 100.0);
            tokio::time::sleep(Duration::from_secs_f64(spread)).await;
        }
    }
    let until_ramp = plan.ramp.saturating_sub(start.elapsed());
    tokio::time::sleep(until_ramp).await;

    shared.measuring.store(true, Ordering::Release);
    let measured_from = Instant::now();
    let cpu_from = plan.server_pid.map(cpu_seconds);
    let mut peak_rss = 0;
    let sampler = async {
        loop {
            if let Some(rss) = plan.server_pid.and_then(rss_bytes) {
                peak_rss = peak_rss.max(rss);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let _ = tokio::time::timeout(plan.duration, sampler).await;
    shared.measuring.store(false, Ordering::Release);
    let elapsed = measured_from.elapsed();
    let completed = shared.completed.load(Ordering::Acquire);
    let server_cpu_seconds = match (plan.server_pid, cpu_from) {
        (Some(pid), Some(from)) => cpu_seconds(pid) - from,
        _ => 0.0,
    };
    shared.done.store(true, Ordering::Release);

    let mut latency = Histogram::<u64>::new(3).expect("histogram");
    for handle in clients {
        if let Ok(Some(histogram)) = handle.await {
            let _ = latency.add(histogram);
        }
    }
    Report {
        mode: format!("{:?}", plan.mode).to_lowercase(),
        transport: format!("{:?}", plan.transport).to_lowercase(),
        ccu: plan.ccu,
        authenticated: shared.authenticated.load(Ordering::Acquire),
        all_in_seconds: shared.all_in_ms.load(Ordering::Acquire) as f64 / 1000.0,
        inflight: plan.inflight,
        size: plan.size,
        seconds: elapsed.as_secs_f64(),
        messages: completed,
        msgs_per_sec: completed as f64 / elapsed.as_secs_f64(),
        p50_us: latency.value_at_quantile(0.50),
        p95_us: latency.value_at_quantile(0.95),
        p99_us: latency.value_at_quantile(0.99),
        max_us: latency.max(),
        errors: shared.errors.load(Ordering::Acquire),
        connect_failures: shared.connect_failures.load(Ordering::Acquire),
        server_rss_mb: peak_rss as f64 / (1024.0 * 1024.0),
        server_cpu_seconds,
        resume: plan.resume,
        granted: shared.granted.load(Ordering::Acquire),
        bytes_in: shared.bytes_in.load(Ordering::Acquire),
        bytes_out: shared.bytes_out.load(Ordering::Acquire),
        acks_in: shared.acks_in.load(Ordering::Acquire),
        acks_out: shared.acks_out.load(Ordering::Acquire),
    }
}

/// One client: connect, authenticate, then load until told to stop. Returns its latencies.
async fn client(
    index: usize,
    host: &str,
    port: u16,
    options: &DialOptions,
    plan: &Plan,
    shared: &Shared,
    start: Instant,
) -> Option<Histogram<u64>> {
    let source = source_for(index, plan.sources);
    let Ok(io) = dial_from(source, host, port, options).await else {
        shared.connect_failures.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let config = CodecConfig {
        compression_threshold: None,
        ..CodecConfig::default()
    };
    let io = Counted {
        io,
        measuring: &shared.measuring,
        read: 0,
        written: 0,
    };
    let mut client = Client {
        framed: Framed::new(io, ClientCodec::new(config)),
        plan,
        shared,
        stage_id: (index / plan.per_stage.max(1)) as i64 + 1,
        mode: if is_active(index, plan.ccu, plan.active) {
            plan.mode
        } else {
            Mode::Idle
        },
        streams: None,
        outstanding: VecDeque::new(),
        latency: Histogram::<u64>::new(3).expect("histogram"),
        acks_in: 0,
        acks_out: 0,
        unflushed: false,
    };
    if !client.authenticate(index).await {
        shared.connect_failures.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let in_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    shared.all_in_ms.fetch_max(in_ms, Ordering::Relaxed);
    client.load(index).await;
    let io = client.framed.get_ref();
    shared.bytes_in.fetch_add(io.read, Ordering::Relaxed);
    shared.bytes_out.fetch_add(io.written, Ordering::Relaxed);
    shared.acks_in.fetch_add(client.acks_in, Ordering::Relaxed);
    shared
        .acks_out
        .fetch_add(client.acks_out, Ordering::Relaxed);
    Some(client.latency)
}

/// One client's connection and bookkeeping.
struct Client<'a> {
    framed: Framed<Counted<'a>, ClientCodec>,
    plan: &'a Plan,
    shared: &'a Shared,
    stage_id: i64,
    /// `plan.mode`, or idle for a client that is not one of the active ones.
    mode: Mode,
    /// The resumable session's streams, once granted.
    streams: Option<ResumeStreams<ClientFrame>>,
    /// Send times of outstanding messages, oldest first (replies and pushes come in order).
    outstanding: VecDeque<Instant>,
    latency: Histogram<u64>,
    /// `@Ack@` frames received and sent while measuring.
    acks_in: u64,
    acks_out: u64,
    /// Whether frames were fed since the last flush.
    unflushed: bool,
}

/// What woke a client up.
enum Event {
    Frame(Option<Result<ServerFrame, DecodeError>>),
    Tick,
    Heartbeat,
}

impl Client<'_> {
    /// Hello (when resumable), authenticate, and the grant; `false` on failure.
    async fn authenticate(&mut self, index: usize) -> bool {
        if self.plan.resume && !self.feed(ClientFrame::hello(0, Capabilities::RESUME)).await {
            return false;
        }
        let account = format!("bench-{index}");
        let auth = ClientFrame::new(ids::AUTH, 1, self.stage_id, account.into_bytes());
        if self.framed.send(auth).await.is_err() {
            return false;
        }
        self.unflushed = false;
        loop {
            match self.framed.next().await {
                Some(Ok(frame)) if frame.msg_id == SESSION_MSG_ID => {
                    if let Some(grant) = ResumeGrant::from_payload(&frame.payload) {
                        self.streams = Some(ResumeStreams::new(grant.ack_every));
                        self.shared.granted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(frame)) if frame.is_control() => {}
                Some(Ok(reply)) if reply.error_code.is_success() => {
                    self.shared.authenticated.fetch_add(1, Ordering::Relaxed);
                    // The reply is the session's first server data frame.
                    return self.received_data().await;
                }
                _ => return false,
            }
        }
    }

    /// Loads until the run is over.
    async fn load(&mut self, index: usize) {
        let plan = self.plan;
        let payload = Bytes::from(vec![0x5Au8; plan.size]);
        let window = match (self.mode, plan.rate) {
            (Mode::Idle, _) => 0,
            (_, Some(_)) => usize::MAX,
            (_, None) => plan.inflight.max(1),
        };
        let mut ticker = match (self.mode, plan.rate) {
            (Mode::Idle, _) => Some(tokio::time::interval(IDLE_WAKE)),
            (_, Some(rate)) => Some(tokio::time::interval(Duration::from_secs_f64(1.0 / rate))),
            (_, None) => None,
        };
        if let Some(ticker) = ticker.as_mut() {
            // Desynchronise clients so they do not all fire in the same millisecond.
            let offset = (index as f64 * 0.618_033_988_7).fract();
            tokio::time::sleep(ticker.period().mul_f64(offset)).await;
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut heartbeat = plan.heartbeat.map(|period| {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        let rated = plan.rate.is_some() && self.mode != Mode::Idle;
        let mut seq: u16 = 1;
        let mut tick_due = !rated;
        loop {
            if self.shared.done.load(Ordering::Acquire) {
                self.end_session().await;
                return;
            }
            // Fill the window (in rate mode, one message per tick).
            while tick_due && self.outstanding.len() < window && self.has_room() {
                seq = seq.wrapping_add(1).max(1);
                let frame = match self.mode {
                    Mode::Request => {
                        ClientFrame::new(ids::REQUEST, seq, self.stage_id, payload.clone())
                    }
                    _ => ClientFrame::new(ids::SEND, 0, self.stage_id, payload.clone()),
                };
                if !self.send_data(frame).await {
                    self.shared.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                self.outstanding.push_back(Instant::now());
                if rated {
                    tick_due = false;
                }
            }
            if self.unflushed && !self.flush().await {
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let event = if ticker.is_none() && heartbeat.is_none() {
                Event::Frame(self.framed.next().await)
            } else {
                tokio::select! {
                    biased;
                    frame = self.framed.next() => Event::Frame(frame),
                    _ = tick(&mut ticker) => Event::Tick,
                    _ = tick(&mut heartbeat) => Event::Heartbeat,
                }
            };
            let alive = match event {
                Event::Frame(frame) => self.on_frame(frame).await,
                Event::Tick => {
                    tick_due = rated;
                    true
                }
                Event::Heartbeat => self.heartbeat().await,
            };
            if !alive {
                return;
            }
        }
    }

    /// Whether the replay buffer has room for another data frame.
    fn has_room(&self) -> bool {
        self.streams
            .as_ref()
            .is_none_or(|streams| streams.unacked().len() < MAX_UNACKED)
    }

    async fn feed(&mut self, frame: ClientFrame) -> bool {
        self.unflushed = true;
        self.framed.feed(frame).await.is_ok()
    }

    async fn flush(&mut self) -> bool {
        self.unflushed = false;
        self.framed.flush().await.is_ok()
    }

    /// Feeds a data frame, numbered and kept until acknowledged when resumable.
    async fn send_data(&mut self, frame: ClientFrame) -> bool {
        if let Some(streams) = self.streams.as_mut() {
            streams.sent(frame.clone());
        }
        self.feed(frame).await
    }

    /// Counts a server data frame; acknowledges when `ack_every` arrived since the last one.
    async fn received_data(&mut self) -> bool {
        let Some(count) = self.streams.as_mut().and_then(ResumeStreams::received_one) else {
            return true;
        };
        if self.shared.measuring.load(Ordering::Relaxed) {
            self.acks_out += 1;
        }
        self.feed(ClientFrame::ack(count)).await
    }

    /// Accounts one received frame; `false` when the connection is gone.
    async fn on_frame(&mut self, frame: Option<Result<ServerFrame, DecodeError>>) -> bool {
        let shared = self.shared;
        let Some(Ok(frame)) = frame else {
            if !shared.done.load(Ordering::Acquire) {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
            return false;
        };
        if frame.is_control() {
            if frame.msg_id == ACK_MSG_ID {
                self.on_ack(&frame.payload);
            }
            return true;
        }
        if !self.received_data().await {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if !frame.error_code.is_success() {
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(sent) = self.outstanding.pop_front()
            && shared.measuring.load(Ordering::Relaxed)
        {
            let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            let _ = self.latency.record(micros.max(1));
            shared.completed.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// The server received `count` of our frames: they leave the replay buffer.
    fn on_ack(&mut self, payload: &[u8]) {
        if self.shared.measuring.load(Ordering::Relaxed) {
            self.acks_in += 1;
        }
        let Some(streams) = self.streams.as_mut() else {
            return;
        };
        let dropped =
            read_count(payload).and_then(|count| streams.acknowledge(count).map(Iterator::count));
        if dropped.is_none() {
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A heartbeat, after the acknowledgement of what arrived since the last one.
    async fn heartbeat(&mut self) -> bool {
        if let Some(count) = self.streams.as_mut().and_then(ResumeStreams::pending_ack) {
            if self.shared.measuring.load(Ordering::Relaxed) {
                self.acks_out += 1;
            }
            if !self.feed(ClientFrame::ack(count)).await {
                return false;
            }
        }
        self.feed(ClientFrame::heartbeat()).await && self.flush().await
    }

    /// Ends a resumable session on purpose, as a client that disconnects does, so the server
    /// does not keep it for the resume window.
    async fn end_session(&mut self) {
        if self.streams.is_some() {
            let end = self.framed.send(ClientFrame::end_session());
            let _ = tokio::time::timeout(Duration::from_secs(1), end).await;
        }
    }
}

/// The next tick of `interval`; never without one.
async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A client's connection, counting the bytes read and written while the run measures.
struct Counted<'a> {
    io: Box<dyn ClientIo>,
    measuring: &'a AtomicBool,
    read: u64,
    written: u64,
}

impl AsyncRead for Counted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && self.measuring.load(Ordering::Relaxed) {
            self.read += (buf.filled().len() - before) as u64;
        }
        polled
    }
}

impl AsyncWrite for Counted<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && self.measuring.load(Ordering::Relaxed)
        {
            self.written += n as u64;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
