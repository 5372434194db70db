//! The server under load: the framework, or a raw baseline with the same framing (over TCP, or
//! over WebSocket with one frame per binary message).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use futures_util::{FutureExt, SinkExt, StreamExt};
use playhouse::testing::EchoActor;
use playhouse::{ActorCell, ErrorCode, Packet, PlayServer, Stage, StageContext};
use playhouse_protocol::{
    ClientFrame, DEFAULT_MAX_PACKET_SIZE, ServerCodec, ServerFrame, max_frame_len,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

use crate::ids;

/// A stage that answers `BenchRequest` with its payload, `BenchSend` with a push to the sender
/// and `BenchBroadcast` with a push to every client in the stage. Its players are the shared
/// [`EchoActor`] (the authenticate payload is the account id).
#[derive(Debug)]
pub struct BenchStage;

impl Stage for BenchStage {
    type Actor = EchoActor;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<EchoActor>,
        packet: Packet,
    ) {
        if packet.msg_id == ids::SEND {
            actor
                .link
                .send_to_client(Packet::new(ids::PUSH, packet.payload));
        } else if packet.msg_id == ids::BROADCAST {
            ctx.broadcast(Packet::new(ids::PUSH, packet.payload));
        } else {
            actor.link.reply(packet);
        }
    }
}

/// A Play server with `BenchStage` as its default stage type, limits raised for load tests;
/// `actor_ttl_ms` > 0 removes actors disconnected that long.
pub fn framework_server(actor_ttl_ms: u64) -> PlayServer {
    bench_play_server(actor_ttl_ms, true)
}

/// [`framework_server`] keeping no per-message metric (`PlayConfig::collect_metrics` off):
/// the baseline of what metrics cost.
pub fn without_metrics(actor_ttl_ms: u64) -> PlayServer {
    bench_play_server(actor_ttl_ms, false)
}

fn bench_play_server(actor_ttl_ms: u64, collect_metrics: bool) -> PlayServer {
    PlayServer::builder()
        .server_id("bench-play")
        .stage("BenchStage", |_| BenchStage, |_| EchoActor)
        .default_stage_type("BenchStage")
        .configure(|c| {
            c.max_connections = 100_000;
            c.session_outbound_capacity = 4096;
            // The load generator is one address sending as fast as it can on purpose.
            c.rate_limit = None;
            c.max_stages_per_source = None;
            c.stage_creation_rate_per_source = None;
            c.disconnected_actor_ttl =
                (actor_ttl_ms > 0).then(|| std::time::Duration::from_millis(actor_ttl_ms));
            c.collect_metrics = collect_metrics;
        })
        .build()
        .expect("valid configuration")
}

/// The raw baseline: accepts TCP connections and answers the same frames with no stages,
/// no actors, no queues — one task per connection reading, answering and batching writes.
pub async fn raw_server(bind: &str) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(raw_connection(stream));
        }
    });
    Ok(addr)
}

async fn raw_connection(stream: TcpStream) {
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, ServerCodec::default());
    let mut writer = FramedWrite::new(write, ServerCodec::default());
    while let Some(Ok(frame)) = reader.next().await {
        let mut next = Some(frame);
        // Answer everything already received, then flush once.
        while let Some(frame) = next {
            let reply = raw_reply(frame);
            if writer.feed(reply).await.is_err() {
                return;
            }
            next = match reader.next().now_or_never() {
                Some(Some(Ok(frame))) => Some(frame),
                Some(_) => return,
                None => None,
            };
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}

/// The raw baseline with the framework's hops, and nothing else of it: each connection's
/// task (the framework's session) hands every frame but a heartbeat through a bounded channel
/// to the task of the stage its authentication named (one task per stage id, as many clients
/// per stage as the load generator puts there), which answers through the connection's own
/// bounded channel; the connection's task writes what is queued in batches with one flush.
/// The same frames and answers as [`raw_server`]: what the framework spends beyond this is
/// its own work, not the hop its programming model needs.
pub async fn raw_hop_server(bind: &str) -> io::Result<SocketAddr> {
    serve_hop(bind, raw_hop_connection).await
}

/// Accepts connections on `bind`, each served by `connection` with an id of its own and the
/// stage tasks all connections share.
async fn serve_hop<F, C>(bind: &str, connection: F) -> io::Result<SocketAddr>
where
    F: Fn(TcpStream, HopSession) -> C + Send + 'static,
    C: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let stages = Arc::new(Mutex::new(HashMap::new()));
    tokio::spawn(async move {
        let mut next_id = 0u64;
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            next_id += 1;
            let (out, outbound) = mpsc::channel(HOP_QUEUE);
            let session = HopSession {
                id: next_id,
                stages: Arc::clone(&stages),
                out,
                outbound,
                stage: None,
            };
            tokio::spawn(connection(stream, session));
        }
    });
    Ok(addr)
}

/// A connection's side of the hop: its id, the stages, its own answer queue and, once its
/// first frame named one, its stage.
struct HopSession {
    id: u64,
    stages: Stages,
    out: mpsc::Sender<ServerFrame>,
    outbound: mpsc::Receiver<ServerFrame>,
    stage: Option<mpsc::Sender<HopMsg>>,
}

impl HopSession {
    /// Passes `frame` on (a heartbeat is answered here, as the framework's session does);
    /// `false` once the stage is gone.
    async fn forward(&mut self, frame: ClientFrame) -> bool {
        if frame.is_heartbeat() {
            let _ = self.out.try_send(ServerFrame::heartbeat());
            return true;
        }
        let stage = match &self.stage {
            Some(stage) => stage,
            None => {
                let stage = hop_stage(&self.stages, frame.stage_id);
                let join = HopMsg::Join(self.id, self.out.clone());
                if stage.send(join).await.is_err() {
                    return false;
                }
                self.stage.insert(stage)
            }
        };
        stage.send(HopMsg::Frame(self.id, frame)).await.is_ok()
    }

    /// Tells the stage the connection ended.
    async fn leave(self) {
        if let Some(stage) = self.stage {
            let _ = stage.send(HopMsg::Leave(self.id)).await;
        }
    }
}

/// What a connection's task sends a stage's.
enum HopMsg {
    Join(u64, mpsc::Sender<ServerFrame>),
    Frame(u64, ClientFrame),
    Leave(u64),
}

/// The framework's queue lengths as the bench server sets them.
const HOP_QUEUE: usize = 4096;

type Stages = Arc<Mutex<HashMap<i64, mpsc::Sender<HopMsg>>>>;

/// The stage `stage_id`'s task, started on first use.
fn hop_stage(stages: &Stages, stage_id: i64) -> mpsc::Sender<HopMsg> {
    let mut stages = stages.lock().expect("stage map");
    stages
        .entry(stage_id)
        .or_insert_with(|| {
            let (tx, mut mailbox) = mpsc::channel(HOP_QUEUE);
            tokio::spawn(async move {
                let mut members = HashMap::new();
                while let Some(msg) = mailbox.recv().await {
                    match msg {
                        HopMsg::Join(id, out) => {
                            members.insert(id, out);
                        }
                        HopMsg::Frame(id, frame) => {
                            if let Some(out) = members.get(&id) {
                                let _ = out.try_send(raw_reply(frame));
                            }
                        }
                        HopMsg::Leave(id) => {
                            members.remove(&id);
                        }
                    }
                }
            });
            tx
        })
        .clone()
}

async fn raw_hop_connection(stream: TcpStream, mut session: HopSession) {
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, ServerCodec::default());
    let mut writer = FramedWrite::new(write, ServerCodec::default());
    loop {
        tokio::select! {
            biased;
            Some(reply) = session.outbound.recv() => {
                let mut next = Some(reply);
                while let Some(reply) = next {
                    if writer.feed(reply).await.is_err() {
                        break;
                    }
                    next = session.outbound.try_recv().ok();
                }
                if writer.flush().await.is_err() {
                    break;
                }
            }
            frame = reader.next() => {
                let Some(Ok(frame)) = frame else { break };
                if !session.forward(frame).await {
                    break;
                }
            }
        }
    }
    session.leave().await;
}

/// What both raw baselines answer to a client frame: heartbeats echoed, authentication
/// accepted, `BenchSend` answered by a `BenchPush`, anything else echoed as a reply.
fn raw_reply(frame: ClientFrame) -> ServerFrame {
    if frame.is_heartbeat() {
        ServerFrame::heartbeat()
    } else if frame.msg_id == ids::AUTH {
        ServerFrame::new(
            ids::AUTH_REPLY,
            frame.msg_seq,
            frame.stage_id,
            ErrorCode::SUCCESS,
            bytes::Bytes::new(),
        )
    } else if frame.msg_id == ids::SEND {
        ServerFrame::new(
            ids::PUSH,
            0,
            frame.stage_id,
            ErrorCode::SUCCESS,
            frame.payload,
        )
    } else {
        ServerFrame::new(
            frame.msg_id,
            frame.msg_seq,
            frame.stage_id,
            ErrorCode::SUCCESS,
            frame.payload,
        )
    }
}

/// The raw WebSocket baseline: accepts WebSocket upgrades (any path) and answers the same
/// frames as [`raw_server`], one frame per binary message each way, with no stages, no actors,
/// no queues — one task per connection reading, answering and flushing once per batch.
///
/// tungstenite is configured as the framework's WebSocket listener configured it before its
/// server side was framed by hand (`playhouse_transport::ws_server`): 4 KiB read buffer,
/// 2 MiB + 4 message limit.
pub async fn raw_ws_server(bind: &str) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(raw_ws_connection(stream));
        }
    });
    Ok(addr)
}

/// The largest WebSocket message accepted: the codec's 2 MiB body limit plus the 4-byte length
/// prefix (the framework sets the same).
const MAX_MESSAGE: usize = max_frame_len(DEFAULT_MAX_PACKET_SIZE);

async fn raw_ws_connection(stream: TcpStream) {
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let mut codec = ServerCodec::default();
    let mut out = BytesMut::new();
    while let Some(Ok(message)) = ws.next().await {
        let mut next = Some(message);
        // Answer every message already received, then flush once.
        while let Some(message) = next {
            let mut src = match message {
                Message::Binary(data) => BytesMut::from(data),
                Message::Close(_) | Message::Text(_) => return,
                // Pings are answered by tungstenite itself.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => BytesMut::new(),
            };
            loop {
                match codec.decode(&mut src) {
                    Ok(Some(frame)) => {
                        if codec.encode(raw_reply(frame), &mut out).is_err() {
                            return;
                        }
                        let reply = Message::Binary(out.split().freeze());
                        if ws.feed(reply).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            next = match ws.next().now_or_never() {
                Some(Some(Ok(message))) => Some(message),
                Some(_) => return,
                None => None,
            };
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

/// [`raw_ws_server`] with the framework's hops, as [`raw_hop_server`] has them over TCP: each
/// connection's task hands the frames of every binary message to its stage's task and writes
/// what that answers, one frame per binary message, flushing once per batch.
pub async fn raw_ws_hop_server(bind: &str) -> io::Result<SocketAddr> {
    serve_hop(bind, raw_ws_hop_connection).await
}

async fn raw_ws_hop_connection(stream: TcpStream, mut session: HopSession) {
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut messages) = ws.split();
    let mut codec = ServerCodec::default();
    let mut encoded = BytesMut::new();
    'connection: loop {
        tokio::select! {
            biased;
            Some(reply) = session.outbound.recv() => {
                let mut next = Some(reply);
                while let Some(reply) = next {
                    if codec.encode(reply, &mut encoded).is_err()
                        || sink.feed(Message::Binary(encoded.split().freeze())).await.is_err()
                    {
                        break 'connection;
                    }
                    next = session.outbound.try_recv().ok();
                }
                if sink.flush().await.is_err() {
                    break;
                }
            }
            message = messages.next() => {
                let mut src = match message {
                    Some(Ok(Message::Binary(data))) => BytesMut::from(data),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    _ => break,
                };
                loop {
                    let frame = match codec.decode(&mut src) {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        Err(_) => break 'connection,
                    };
                    if !session.forward(frame).await {
                        break 'connection;
                    }
                }
            }
        }
    }
    session.leave().await;
}
