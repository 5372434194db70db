//! Server-to-server throughput in one run: raw `zeromq` ROUTER ping-pong (the ceiling), raw
//! `zeromq` in the mesh's topology (one connection each way per server pair), against
//! the framework's mesh (API → stage requests, and stage → stage requests from a stage on
//! play-1 to a stage on play-2), all over ZeroMQ links on loopback.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_util::FutureExt;
use playhouse::{
    Actor, ActorCell, ActorLink, ApiServer, ErrorCode, ErrorReply, MemoryDirectory, MeshJoin,
    Packet, PlayServer, Stage, StageContext,
};
use zeromq::util::PeerIdentity;
use zeromq::{RouterSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

#[derive(Parser)]
struct Args {
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    inflight: usize,
    /// Payload bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Measured seconds per case.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// The framework's link: `zmq` (ZeroMQ ROUTER) or `tcp` (length-delimited).
    #[arg(long, default_value = "zmq")]
    link: String,
    /// Only the framework's cases (for a profile of them alone); the ratios are then left out.
    #[arg(long)]
    framework_only: bool,
}

fn router(identity: &str) -> RouterSocket {
    let mut options = SocketOptions::default();
    options.peer_identity(PeerIdentity::try_from(identity.as_bytes().to_vec()).expect("identity"));
    RouterSocket::with_options(options)
}

/// One measured window's result: messages per second, and this process's CPU time (user and
/// system; both ends of every case run in this one process) per message.
#[derive(Clone, Copy)]
struct Rate {
    per_sec: f64,
    cpu_us: f64,
}

/// A window being measured: when it started and the CPU time used until then.
struct Window {
    started: Instant,
    cpu: f64,
}

impl Window {
    fn start() -> Self {
        Window {
            cpu: playhouse_benches::process::cpu_seconds(std::process::id()),
            started: Instant::now(),
        }
    }

    /// `messages` completed in the window, over `seconds` (the window's own length when `None`).
    fn end(self, messages: u64, seconds: Option<f64>) -> Rate {
        let cpu = playhouse_benches::process::cpu_seconds(std::process::id()) - self.cpu;
        let seconds = seconds.unwrap_or_else(|| self.started.elapsed().as_secs_f64());
        let n = messages.max(1) as f64;
        Rate {
            per_sec: messages as f64 / seconds,
            cpu_us: cpu * 1e6 / n,
        }
    }
}

/// Raw ping-pong: `b` keeps `inflight` requests outstanding to `a`, which echoes each.
async fn raw_zmq(args: &Args) -> Rate {
    let mut a = router("raw-a");
    let endpoint = a.bind("tcp://127.0.0.1:0").await.expect("bind").to_string();
    tokio::spawn(async move {
        while let Ok(message) = a.recv().await {
            // [sender][header][payload] back to the sender.
            if a.send(message).await.is_err() {
                return;
            }
        }
    });
    let mut b = router("raw-b");
    b.connect(&endpoint).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let payload = Bytes::from(vec![7u8; args.size]);
    let header = Bytes::from_static(b"hdr");
    let message = || {
        ZmqMessage::try_from(vec![
            Bytes::from_static(b"raw-a"),
            header.clone(),
            payload.clone(),
        ])
        .expect("frames")
    };
    for _ in 0..args.inflight {
        b.send(message()).await.expect("send");
    }
    let duration = Duration::from_secs_f64(args.duration);
    let window = Window::start();
    let mut done = 0u64;
    while window.started.elapsed() < duration {
        b.recv().await.expect("recv");
        done += 1;
        b.send(message()).await.expect("send");
    }
    window.end(done, None)
}

/// Raw zeromq in the framework's topology (see `ZmqLink`): each side receives on a bound
/// ROUTER and sends on a ROUTER of the same identity that dialed the other side's bound one,
/// so requests and replies take two TCP connections. `b` keeps `inflight` requests
/// outstanding to `a`, which echoes each.
async fn raw_zmq_topology(args: &Args) -> Rate {
    let mut a_in = router("topo-a");
    let a_endpoint = a_in
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind")
        .to_string();
    let mut b_in = router("topo-b");
    let b_endpoint = b_in
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind")
        .to_string();
    let mut a_out = router("topo-a");
    a_out.connect(&b_endpoint).await.expect("connect");
    let mut b_out = router("topo-b");
    b_out.connect(&a_endpoint).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::spawn(async move {
        while let Ok(message) = a_in.recv().await {
            // [sender][header][payload] back to the sender, over a's own connection to it.
            if a_out.send(message).await.is_err() {
                return;
            }
        }
    });
    let payload = Bytes::from(vec![7u8; args.size]);
    let header = Bytes::from_static(b"hdr");
    let message = || {
        ZmqMessage::try_from(vec![
            Bytes::from_static(b"topo-a"),
            header.clone(),
            payload.clone(),
        ])
        .expect("frames")
    };
    for _ in 0..args.inflight {
        b_out.send(message()).await.expect("send");
    }
    let duration = Duration::from_secs_f64(args.duration);
    let window = Window::start();
    let mut done = 0u64;
    while window.started.elapsed() < duration {
        b_in.recv().await.expect("recv");
        done += 1;
        b_out.send(message()).await.expect("send");
    }
    window.end(done, None)
}

/// The least any actor framework on this crate does per request, in the mesh's topology: raw
/// zeromq plus the framework's task hops and nothing else. On `b`, `inflight` caller tasks
/// each send a request (the sequence as its header) from a shared send half without waiting,
/// as `ZmqLink::send` does, and await a oneshot; a receive task completes them by sequence.
/// On `a`, the receive task queues each request for a stage task, which answers it. No route
/// header, no node, no metrics: what the framework adds on top of this is ours.
async fn raw_zmq_hops(args: &Args) -> Rate {
    let mut a_in = router("hops-a");
    let a_endpoint = a_in
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind")
        .to_string();
    let mut b_in = router("hops-b");
    let b_endpoint = b_in
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind")
        .to_string();
    let mut a_out = router("hops-a");
    a_out.connect(&b_endpoint).await.expect("connect");
    let mut b_out = router("hops-b");
    b_out.connect(&a_endpoint).await.expect("connect");
    let (a_out, _) = a_out.split();
    let (b_out, _) = b_out.split();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // a: receive task -> stage task (a bounded mailbox) -> reply.
    let (mailbox, mut stage) = tokio::sync::mpsc::channel::<ZmqMessage>(1024);
    tokio::spawn(async move {
        while let Ok(message) = a_in.recv().await {
            if mailbox.send(message).await.is_err() {
                return;
            }
        }
    });
    let a_out = Arc::new(Mutex::new(a_out));
    tokio::spawn(async move {
        while let Some(message) = stage.recv().await {
            let mut frames = message.into_vec();
            frames[0] = Bytes::from_static(b"hops-b"); // [sender] -> [target]
            let reply = ZmqMessage::try_from(frames).expect("frames");
            let mut socket = a_out.lock().expect("lock").clone();
            let _ = socket.send(reply).now_or_never();
        }
    });

    // b: callers awaiting oneshots, completed by a receive task.
    type Pending = Arc<Mutex<HashMap<u64, tokio::sync::oneshot::Sender<()>>>>;
    let pending: Pending = Arc::default();
    tokio::spawn({
        let pending = Arc::clone(&pending);
        async move {
            while let Ok(reply) = b_in.recv().await {
                let seq = reply.get(1).map_or(0, |h| {
                    u64::from_le_bytes(h[..8].try_into().unwrap_or_default())
                });
                if let Some(done) = pending.lock().expect("lock").remove(&seq) {
                    let _ = done.send(());
                }
            }
        }
    });
    let b_out = Arc::new(Mutex::new(b_out));
    let next_seq = Arc::new(AtomicU64::new(1));
    let count = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs_f64(args.duration);
    let window = Window::start();
    let started = window.started;
    let mut callers = Vec::new();
    for _ in 0..args.inflight {
        let (pending, b_out) = (Arc::clone(&pending), Arc::clone(&b_out));
        let (next_seq, count) = (Arc::clone(&next_seq), Arc::clone(&count));
        let payload = Bytes::from(vec![7u8; args.size]);
        callers.push(tokio::spawn(async move {
            while started.elapsed() < duration {
                let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                let (done, reply) = tokio::sync::oneshot::channel();
                pending.lock().expect("lock").insert(seq, done);
                let request = ZmqMessage::try_from(vec![
                    Bytes::from_static(b"hops-a"),
                    Bytes::copy_from_slice(&seq.to_le_bytes()),
                    payload.clone(),
                ])
                .expect("frames");
                let mut socket = b_out.lock().expect("lock").clone();
                let _ = socket.send(request).now_or_never();
                if reply.await.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for caller in callers {
        let _ = caller.await;
    }
    window.end(count.load(Ordering::Relaxed), None)
}

struct Echo;
struct Nobody;

impl Stage for Echo {
    type Actor = Nobody;
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
        _: &mut ActorCell<Nobody>,
        _: Packet,
    ) {
    }
    /// `Drive` (payload: in-flight count) runs stage → stage requests to play-2 for the
    /// requested time from this stage and replies with how many completed; anything else is
    /// echoed.
    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        if packet.msg_id != "Drive" {
            ctx.reply(packet);
            return;
        }
        let text = String::from_utf8_lossy(&packet.payload).into_owned();
        let (inflight, millis, size) = {
            let mut parts = text.split(',').map(|p| p.parse::<u64>().unwrap_or(1));
            (
                parts.next().unwrap_or(1),
                parts.next().unwrap_or(1000),
                parts.next().unwrap_or(64),
            )
        };
        let sender = ctx.sender();
        let reply = ctx.server_reply_target();
        ctx.async_block(
            async move {
                let count = Arc::new(AtomicU64::new(0));
                let until = tokio::time::Instant::now() + Duration::from_millis(millis);
                let mut loops = Vec::new();
                for _ in 0..inflight {
                    let (sender, count) = (sender.clone(), Arc::clone(&count));
                    loops.push(tokio::spawn(async move {
                        let payload = Bytes::from(vec![7u8; size as usize]);
                        while tokio::time::Instant::now() < until {
                            let ping = Packet::new("Ping", payload.clone());
                            if sender.request_to_stage("play-2", 1, ping).await.is_ok() {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }));
                }
                for task in loops {
                    let _ = task.await;
                }
                count.load(Ordering::Relaxed)
            },
            move |_, _, count| {
                if let Some(reply) = reply {
                    reply.reply(Packet::new("Driven", count.to_string()));
                }
            },
        );
    }
}

impl Actor for Nobody {
    async fn on_authenticate(
        &mut self,
        _: &mut ActorLink,
        _: Packet,
    ) -> Result<Packet, ErrorReply> {
        Err(ErrorCode::AUTHENTICATION_FAILED.into())
    }
}

async fn join(directory: &MemoryDirectory, kind: &str) -> MeshJoin {
    let join = if kind == "tcp" {
        MeshJoin::tcp("127.0.0.1:0", directory.clone())
    } else {
        MeshJoin::zmq("127.0.0.1:0", directory.clone())
    };
    join.refresh_interval(Duration::from_millis(100))
}

async fn framework(args: &Args) -> (Rate, Rate) {
    let directory = MemoryDirectory::new();
    let mut plays = Vec::new();
    for id in ["play-1", "play-2"] {
        let play = PlayServer::builder()
            .server_id(id)
            .stage("Echo", |_| Echo, |_| Nobody)
            .build()
            .expect("build");
        play.join_mesh(join(&directory, &args.link).await)
            .await
            .expect("join");
        plays.push(play);
    }
    let api = ApiServer::builder()
        .server_id("api-1")
        .start(join(&directory, &args.link).await)
        .await
        .expect("api");
    let sender = api.sender();
    // Wait for the mesh, then create a stage on each Play server.
    loop {
        let a = sender
            .create_stage("play-1", "Echo", 1, Packet::empty("C"))
            .await;
        let b = sender
            .create_stage("play-2", "Echo", 1, Packet::empty("C"))
            .await;
        if a.is_ok() && b.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // API → stage.
    let duration = Duration::from_secs_f64(args.duration);
    let count = Arc::new(AtomicU64::new(0));
    let window = Window::start();
    let started = window.started;
    let mut tasks = Vec::new();
    for _ in 0..args.inflight {
        let (sender, count) = (sender.clone(), Arc::clone(&count));
        let payload = Bytes::from(vec![7u8; args.size]);
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < duration {
                if sender
                    .request_to_stage("play-1", 1, Packet::new("Ping", payload.clone()))
                    .await
                    .is_ok()
                {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let api_to_stage = window.end(count.load(Ordering::Relaxed), None);

    // Stage → stage, driven from a stage on play-1.
    let drive = format!("{},{},{}", args.inflight, duration.as_millis(), args.size);
    let window = Window::start();
    let driven = sender
        .request_to_stage("play-1", 1, Packet::new("Drive", drive))
        .await
        .expect("drive");
    let seconds = window
        .started
        .elapsed()
        .as_secs_f64()
        .min(args.duration + 0.5)
        .max(args.duration);
    let driven = String::from_utf8_lossy(&driven.payload)
        .parse::<u64>()
        .unwrap_or(0);
    (api_to_stage, window.end(driven, Some(seconds)))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.framework_only {
        let (api_to_stage, stage_to_stage) = framework(&args).await;
        for (name, r) in [
            ("API → stage", api_to_stage),
            ("stage → stage", stage_to_stage),
        ] {
            eprintln!(
                "{name:<30}{:>10.0} msg/s  {:>6.2} µs CPU/msg",
                r.per_sec, r.cpu_us
            );
        }
        std::process::exit(0);
    }
    let raw = raw_zmq(&args).await;
    let topology = raw_zmq_topology(&args).await;
    let hops = raw_zmq_hops(&args).await;
    let (api_to_stage, stage_to_stage) = framework(&args).await;
    let of = |x: f64, of: f64| (x / of * 100.0).round() / 100.0;
    let cpu = |r: Rate| (r.cpu_us * 100.0).round() / 100.0;
    let line = |name: &str, r: Rate, rest: String| {
        eprintln!(
            "{name:<30}{:>10.0} msg/s  {:>6.2} µs CPU/msg{rest}",
            r.per_sec, r.cpu_us
        );
    };
    line("raw zeromq ROUTER ping-pong", raw, String::new());
    line(
        "raw zeromq, mesh topology",
        topology,
        format!("  ({:.0}% of raw)", topology.per_sec / raw.per_sec * 100.0),
    );
    line(
        "raw zeromq + the hops",
        hops,
        format!("  ({:.0}% of raw)", hops.per_sec / raw.per_sec * 100.0),
    );
    for (name, r) in [
        ("API → stage (framework)", api_to_stage),
        ("stage → stage (framework)", stage_to_stage),
    ] {
        line(
            name,
            r,
            format!(
                "  ({:.0}% of raw, {:.0}% of raw + the hops; CPU: raw ÷ this {:.0}%)",
                r.per_sec / raw.per_sec * 100.0,
                r.per_sec / hops.per_sec * 100.0,
                raw.cpu_us / r.cpu_us * 100.0
            ),
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "link": args.link, "inflight": args.inflight, "size": args.size, "seconds": args.duration,
            "raw_zmq_msgs_per_sec": raw.per_sec.round(),
            "raw_zmq_topology_msgs_per_sec": topology.per_sec.round(),
            "raw_zmq_hops_msgs_per_sec": hops.per_sec.round(),
            "api_to_stage_msgs_per_sec": api_to_stage.per_sec.round(),
            "stage_to_stage_msgs_per_sec": stage_to_stage.per_sec.round(),
            "raw_zmq_cpu_us_per_msg": cpu(raw),
            "raw_zmq_topology_cpu_us_per_msg": cpu(topology),
            "raw_zmq_hops_cpu_us_per_msg": cpu(hops),
            "api_to_stage_cpu_us_per_msg": cpu(api_to_stage),
            "stage_to_stage_cpu_us_per_msg": cpu(stage_to_stage),
            "topology_ratio": of(topology.per_sec, raw.per_sec),
            "hops_ratio": of(hops.per_sec, raw.per_sec),
            "api_to_stage_ratio": of(api_to_stage.per_sec, raw.per_sec),
            "stage_to_stage_ratio": of(stage_to_stage.per_sec, raw.per_sec),
            "api_to_stage_hops_ratio": of(api_to_stage.per_sec, hops.per_sec),
            "stage_to_stage_hops_ratio": of(stage_to_stage.per_sec, hops.per_sec),
            "api_to_stage_cpu_ratio": of(raw.cpu_us, api_to_stage.cpu_us),
            "stage_to_stage_cpu_ratio": of(raw.cpu_us, stage_to_stage.cpu_us),
        })
    );
    std::process::exit(0);
}
