//! The server under load: the framework, or the raw baseline with the same framing.

use std::io;
use std::net::SocketAddr;

use futures_util::{FutureExt, SinkExt, StreamExt};
use playhouse::{
    Actor, ActorCell, ActorLink, ErrorCode, ErrorReply, Packet, PlayServer, Stage, StageContext,
};
use playhouse_protocol::{ServerCodec, ServerFrame};
use tokio::net::TcpListener;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::ids;

/// A stage that answers `BenchRequest` with its payload and `BenchSend` with a push.
#[derive(Debug)]
pub struct BenchStage;

/// A player of [`BenchStage`].
#[derive(Debug)]
pub struct BenchActor;

impl Stage for BenchStage {
    type Actor = BenchActor;

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
        actor: &mut ActorCell<BenchActor>,
        packet: Packet,
    ) {
        if packet.msg_id == ids::SEND {
            actor
                .link
                .send_to_client(Packet::new(ids::PUSH, packet.payload));
        } else {
            actor.link.reply(packet);
        }
    }
}

impl Actor for BenchActor {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        link.set_account_id(String::from_utf8_lossy(&packet.payload).into_owned());
        Ok(Packet::empty("Ok"))
    }
}

/// A Play server with `BenchStage` as its default stage type, limits raised for load tests;
/// `actor_ttl_ms` > 0 removes actors disconnected that long.
pub fn framework_server(actor_ttl_ms: u64) -> PlayServer {
    PlayServer::builder()
        .server_id("bench-play")
        .stage("BenchStage", |_| BenchStage, |_| BenchActor)
        .default_stage_type("BenchStage")
        .configure(|c| {
            c.max_connections = 100_000;
            c.session_outbound_capacity = 4096;
            c.disconnected_actor_ttl =
                (actor_ttl_ms > 0).then(|| std::time::Duration::from_millis(actor_ttl_ms));
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

async fn raw_connection(stream: tokio::net::TcpStream) {
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, ServerCodec::default());
    let mut writer = FramedWrite::new(write, ServerCodec::default());
    while let Some(Ok(frame)) = reader.next().await {
        let mut next = Some(frame);
        // Answer everything already received, then flush once.
        while let Some(frame) = next {
            let reply = if frame.is_heartbeat() {
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
            };
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
