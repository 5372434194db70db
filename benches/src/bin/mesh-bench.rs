//! Server-to-server throughput in one run: raw `zeromq` ROUTER ping-pong (the ceiling) against
//! the framework's mesh (API → stage requests, and stage → stage requests from a stage on
//! play-1 to a stage on play-2), all over ZeroMQ links on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
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
    let (api_to_stage, stage_to_stage) = framework(&args).await;
    eprintln!("raw zeromq ROUTER ping-pong  {raw:>10.0} msg/s");
    eprintln!(
        "API → stage (framework)      {api_to_stage:>10.0} msg/s  ({:.0}% of raw)",
        api_to_stage / raw * 100.0
    );
    eprintln!(
        "stage → stage (framework)    {stage_to_stage:>10.0} msg/s  ({:.0}% of raw)",
        stage_to_stage / raw * 100.0
    );
    println!(
        "{}",
        serde_json::json!({
            "link": args.link, "inflight": args.inflight, "size": args.size, "seconds": args.duration,
            "raw_zmq_msgs_per_sec": raw.round(),
            "api_to_stage_msgs_per_sec": api_to_stage.round(),
            "stage_to_stage_msgs_per_sec": stage_to_stage.round(),
            "api_to_stage_ratio": (api_to_stage / raw * 100.0).round() / 100.0,
            "stage_to_stage_ratio": (stage_to_stage / raw * 100.0).round() / 100.0,
        })
    );
    std::process::exit(0);
}
