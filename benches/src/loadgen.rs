//! The load generator: `ccu` clients, each authenticating into a stage (`per_stage` clients
//! per stage) and then keeping `inflight` messages outstanding (or sending at `rate` per
//! second), for `duration` after a `ramp`. Latency is measured per message into an HDR
//! histogram (microseconds); the server's RSS is sampled from `/proc`.
//!
//! Clients speak the codec directly (no connector) so the generator stays cheap next to the
//! server on the same cores.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use playhouse_protocol::{ClientCodec, ClientFrame, CodecConfig};
use playhouse_transport::dial::{DialOptions, dial};
use tokio_util::codec::Framed;

use crate::ids;
use crate::report::Report;

/// Request/reply, or one-way messages answered by pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Each message is a request; its reply completes it.
    Request,
    /// Each message is one-way; the push the server sends back completes it.
    Send,
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
}

/// Raises this process's open-file limit as far as allowed (10K clients need 10K sockets).
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// The resident set size of `pid` in bytes, from `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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
            client(index, &host, port, &options, &client_plan, &shared).await
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
) -> Option<Histogram<u64>> {
    let Ok(io) = dial(host, port, options).await else {
        shared.connect_failures.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let config = CodecConfig {
        compression_threshold: None,
        ..CodecConfig::default()
    };
    let mut framed = Framed::new(io, ClientCodec::new(config));
    let stage_id = (index / plan.per_stage.max(1)) as i64 + 1;
    let account = format!("bench-{index}");
    let auth = ClientFrame::new(ids::AUTH, 1, stage_id, account.into_bytes());
    if framed.send(auth).await.is_err() {
        shared.connect_failures.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    match framed.next().await {
        Some(Ok(reply)) if reply.error_code.is_success() => {
            shared.authenticated.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            shared.connect_failures.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    }

    let mut latency = Histogram::<u64>::new(3).expect("histogram");
    let payload = Bytes::from(vec![0x5Au8; plan.size]);
    // Send times of outstanding messages, oldest first (replies and pushes come in order).
    let mut outstanding: VecDeque<Instant> = VecDeque::new();
    let window = if plan.rate.is_some() {
        usize::MAX
    } else {
        plan.inflight.max(1)
    };
    let mut ticker = plan
        .rate
        .map(|rate| tokio::time::interval(Duration::from_secs_f64(1.0 / rate)));
    if let Some(ticker) = ticker.as_mut() {
        // Desynchronise clients so they do not all fire in the same millisecond.
        let offset = (index as f64 * 0.618_033_988_7).fract();
        tokio::time::sleep(ticker.period().mul_f64(offset)).await;
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut seq: u16 = 1;
    loop {
        if shared.done.load(Ordering::Acquire) {
            return Some(latency);
        }
        // Fill the window (or wait for the next tick in rate mode).
        let may_send = match ticker.as_mut() {
            Some(ticker) => {
                tokio::select! {
                    biased;
                    reply = framed.next() => {
                        if !on_frame(reply, &mut outstanding, &mut latency, shared) {
                            return Some(latency);
                        }
                        false
                    }
                    _ = ticker.tick() => true,
                }
            }
            None => outstanding.len() < window,
        };
        if may_send {
            while outstanding.len() < window {
                seq = seq.wrapping_add(1).max(1);
                let frame = match plan.mode {
                    Mode::Request => ClientFrame::new(ids::REQUEST, seq, stage_id, payload.clone()),
                    Mode::Send => ClientFrame::new(ids::SEND, 0, stage_id, payload.clone()),
                };
                if framed.feed(frame).await.is_err() {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    return Some(latency);
                }
                outstanding.push_back(Instant::now());
                if ticker.is_some() {
                    break;
                }
            }
            if framed.flush().await.is_err() {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                return Some(latency);
            }
            continue;
        }
        if ticker.is_none() {
            let reply = framed.next().await;
            if !on_frame(reply, &mut outstanding, &mut latency, shared) {
                return Some(latency);
            }
        }
    }
}

/// Accounts one received frame; `false` when the connection is gone.
fn on_frame<E>(
    frame: Option<Result<playhouse_protocol::ServerFrame, E>>,
    outstanding: &mut VecDeque<Instant>,
    latency: &mut Histogram<u64>,
    shared: &Shared,
) -> bool {
    let Some(Ok(frame)) = frame else {
        if !shared.done.load(Ordering::Acquire) {
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        return false;
    };
    if frame.is_heartbeat() {
        return true;
    }
    if !frame.error_code.is_success() {
        shared.errors.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(sent) = outstanding.pop_front()
        && shared.measuring.load(Ordering::Relaxed)
    {
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = latency.record(micros.max(1));
        shared.completed.fetch_add(1, Ordering::Relaxed);
    }
    true
}
