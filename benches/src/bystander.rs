//! A server that is not draining, under load while another drains: its clients note when
//! each request completed and how long it took, so throughput and latency can be compared
//! between time windows (before, during and after the drain).
//!
//! The bystander server and its clients run on a runtime of their own (one worker thread),
//! as a server in another process would: they share the machine's cores with the rest, not
//! the rest's task queues.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use playhouse::{MemoryDirectory, MeshJoin};
use playhouse_connector::{Connector, ConnectorConfig, Packet};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::bench_server::framework_server;
use crate::ids;

/// A `BenchStage` server of service 2 (so no stage moves to it) joined to `directory`,
/// with `ccu` clients (see [`Bystanders::start`]), on a thread and runtime of its own; it
/// runs until `stop`, then returns what its clients measured.
pub fn spawn(
    directory: &MemoryDirectory,
    ccu: usize,
    rate: Option<f64>,
    stop: &Arc<AtomicBool>,
) -> (
    std::thread::JoinHandle<Samples>,
    std::sync::mpsc::Receiver<()>,
) {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (directory, stop) = (directory.clone(), Arc::clone(stop));
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let server = framework_server(0);
            let port = server
                .listen_tcp("127.0.0.1:0")
                .await
                .expect("listen")
                .port();
            let join = MeshJoin::zmq("127.0.0.1:0", directory)
                .service_id(2)
                .refresh_interval(Duration::from_millis(100));
            server.join_mesh(join).await.expect("join");
            let clients = Bystanders::start(port, ccu, rate, &stop).await;
            let _ = ready_tx.send(());
            let samples = clients.finish().await;
            server.stop().await;
            samples
        })
    });
    (thread, ready)
}

/// One completed request: when, and its latency in microseconds.
type Sample = (Instant, u64);

/// The clients of the bystander server.
#[derive(Debug)]
pub struct Bystanders {
    clients: Vec<JoinHandle<Vec<Sample>>>,
}

/// Throughput and latency in one window.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Requests completed per second.
    pub per_sec: f64,
    /// Median latency (µs).
    pub p50_us: u64,
    /// 99th percentile latency (µs).
    pub p99_us: u64,
}

impl Window {
    /// As JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "msgs_per_sec": self.per_sec.round(),
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
        })
    }
}

impl Bystanders {
    /// `ccu` clients of the `BenchStage` server at `127.0.0.1:port`, 10 to a stage, each
    /// sending 64-byte requests (`rate` a second each, or back to back) until `stop`.
    pub async fn start(port: u16, ccu: usize, rate: Option<f64>, stop: &Arc<AtomicBool>) -> Self {
        let mut clients = Vec::with_capacity(ccu);
        for index in 0..ccu {
            let connector = Connector::new(
                ConnectorConfig::default()
                    .resume(true)
                    .use_main_thread_callbacks(false),
            );
            let stage_id = 1 + (index / 10) as i64;
            connector
                .connect("127.0.0.1", port, stage_id, "")
                .await
                .expect("connect");
            connector
                .authenticate(Packet::new(ids::AUTH, format!("by-{index}")))
                .await
                .expect("authenticate");
            let stop = Arc::clone(stop);
            clients.push(tokio::spawn(client(connector, rate, stop)));
        }
        Bystanders { clients }
    }

    /// Waits for the clients to stop; their samples, in no particular order.
    pub async fn finish(self) -> Samples {
        let mut all = Vec::new();
        for client in self.clients {
            all.extend(client.await.unwrap_or_default());
        }
        Samples(all)
    }
}

/// Every request the bystanders completed.
#[derive(Debug)]
pub struct Samples(Vec<Sample>);

impl Samples {
    /// Throughput and latency of the requests completed in `[from, to)`.
    pub fn window(&self, from: Instant, to: Instant) -> Window {
        let mut latency = Histogram::<u64>::new(3).expect("histogram");
        let mut count = 0u64;
        for (at, micros) in &self.0 {
            if *at >= from && *at < to {
                count += 1;
                let _ = latency.record(*micros);
            }
        }
        let seconds = to.duration_since(from).as_secs_f64().max(1e-9);
        Window {
            per_sec: count as f64 / seconds,
            p50_us: latency.value_at_quantile(0.50),
            p99_us: latency.value_at_quantile(0.99),
        }
    }
}

async fn client(connector: Connector, rate: Option<f64>, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let mut tick = rate.map(|rate| {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick
    });
    let payload = bytes::Bytes::from(vec![7u8; 64]);
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(tick) = &mut tick {
            tick.tick().await;
        }
        let sent = Instant::now();
        let request = Packet::new(ids::REQUEST, payload.clone());
        if connector.request(request).await.is_err() {
            break;
        }
        let now = Instant::now();
        samples.push((now, now.duration_since(sent).as_micros() as u64));
    }
    connector.disconnect().await;
    samples
}
