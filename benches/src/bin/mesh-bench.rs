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
}

fn router(identity: &str) -> RouterSocket {
    let mut options = SocketOptions::default();
    options.peer_identity(PeerIdentity::try_from(identity.as_bytes().to_vec()).expect("identity"));
    RouterSocket::with_options(options)
}

/// Raw ping-pong: `b` keeps `inflight` requests outstanding to `a`, which echoes each.
async fn raw_zmq(args: &Args) -> f64 {
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
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < duration {
        b.recv().await.expect("recv");
        done += 1;
        b.send(message()).await.expect("send");
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// Raw zeromq in the framework's topology (see `ZmqLink`): each side receives on a bound
/// ROUTER and sends on a ROUTER of the same identity that dialed the other side's bound one,
/// so requests and replies take two TCP connections. `b` keeps `inflight` requests
/// outstanding to `a`, which echoes each.
async fn raw_zmq_topology(args: &Args) -> f64 {
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
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < duration {
        b_in.recv().await.expect("recv");
        done += 1;
        b_out.send(message()).await.expect("send");
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// The least any actor framework on this crate does per request, in the mesh's topology: raw
/// zeromq plus the framework's task hops and nothing else. On `b`, `inflight` caller tasks
/// each send a request (the sequence as its header) from a shared send half without waiting,
/// as `ZmqLink::send` does, and await a oneshot; a receive task completes them by sequence.
/// On `a`, the receive task queues each request for a stage task, which answers it. No route
/// header, no node, no metrics: what the framework adds on top of this is ours.
async fn raw_zmq_hops(args: &Args) -> f64 {
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
    let started = Instant::now();
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
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
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

async fn framework(args: &Args) -> (f64, f64) {
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
    let started = Instant::now();
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
    let api_to_stage = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();

    // Stage → stage, driven from a stage on play-1.
    let drive = format!("{},{},{}", args.inflight, duration.as_millis(), args.size);
    let timed = Instant::now();
    let driven = sender
        .request_to_stage("play-1", 1, Packet::new("Drive", drive))
        .await
        .expect("drive");
    let stage_to_stage = String::from_utf8_lossy(&driven.payload)
        .parse::<f64>()
        .unwrap_or(0.0)
        / timed
            .elapsed()
            .as_secs_f64()
            .min(args.duration + 0.5)
            .max(args.duration);
    (api_to_stage, stage_to_stage)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let raw = raw_zmq(&args).await;
    let topology = raw_zmq_topology(&args).await;
    let hops = raw_zmq_hops(&args).await;
    let (api_to_stage, stage_to_stage) = framework(&args).await;
    let of = |x: f64, of: f64| (x / of * 100.0).round() / 100.0;
    eprintln!("raw zeromq ROUTER ping-pong  {raw:>10.0} msg/s");
    eprintln!(
        "raw zeromq, mesh topology    {topology:>10.0} msg/s  ({:.0}% of raw)",
        topology / raw * 100.0
    );
    eprintln!(
        "raw zeromq + the hops        {hops:>10.0} msg/s  ({:.0}% of raw)",
        hops / raw * 100.0
    );
    eprintln!(
        "API → stage (framework)      {api_to_stage:>10.0} msg/s  ({:.0}% of raw, {:.0}% of raw + the hops)",
        api_to_stage / raw * 100.0,
        api_to_stage / hops * 100.0
    );
    eprintln!(
        "stage → stage (framework)    {stage_to_stage:>10.0} msg/s  ({:.0}% of raw, {:.0}% of raw + the hops)",
        stage_to_stage / raw * 100.0,
        stage_to_stage / hops * 100.0
    );
    println!(
        "{}",
        serde_json::json!({
            "link": args.link, "inflight": args.inflight, "size": args.size, "seconds": args.duration,
            "raw_zmq_msgs_per_sec": raw.round(),
            "raw_zmq_topology_msgs_per_sec": topology.round(),
            "raw_zmq_hops_msgs_per_sec": hops.round(),
            "api_to_stage_msgs_per_sec": api_to_stage.round(),
            "stage_to_stage_msgs_per_sec": stage_to_stage.round(),
            "topology_ratio": of(topology, raw),
            "hops_ratio": of(hops, raw),
            "api_to_stage_ratio": of(api_to_stage, raw),
            "stage_to_stage_ratio": of(stage_to_stage, raw),
            "api_to_stage_hops_ratio": of(api_to_stage, hops),
            "stage_to_stage_hops_ratio": of(stage_to_stage, hops),
        })
    );
    std::process::exit(0);
}
