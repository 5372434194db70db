//! A client flooding a stage with messages the stage broadcasts pays for it, not the other
//! players: with the default message rate limit the flooder is cut after its burst, which
//! fits in a bystander's outbound queue, so a bystander that stops reading for a moment (a
//! phone in a tunnel) keeps its connection and every reply.

mod support;

use playhouse::testing::EchoActor;
use playhouse::{ActorCell, ErrorCode, Packet, PlayServer, Stage, StageContext};
use support::{RawClient, WAIT, client_frame_bytes, noise};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Broadcasts `Shout` to everyone in the room; echoes anything else.
struct Room;

impl Stage for Room {
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
        match &*packet.msg_id {
            "Shout" => ctx.broadcast(packet),
            _ => actor.link.reply(packet),
        }
    }
}

/// Broadcasts the flooder sends: 40 MB for every player, far more than a player's outbound
/// queue (1,024 frames, 8 MiB) and its socket buffers hold.
const SHOUTS: usize = 10_000;

#[tokio::test]
async fn a_broadcast_flooder_is_cut_and_a_bystander_keeps_every_reply() {
    // Default settings: the message rate limit is on (200 a second, bursts of 500).
    let server = PlayServer::builder()
        .stage("Room", |_| Room, |_| EchoActor)
        .default_stage_type("Room")
        .build()
        .unwrap();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let mut bystander = RawClient::connect(addr, 1).await;
    assert!(bystander.authenticate("bystander").await.is_success());
    let mut flooder = RawClient::connect(addr, 1).await;
    assert!(flooder.authenticate("flooder").await.is_success());

    // The bystander asks for an echo, then reads nothing while the flood lasts.
    let seq = bystander.request_nowait("Echo", b"before").await;

    // The flooder reads (and drops) everything it gets, so only the rate limit can cut it,
    // and shouts as fast as it can.
    let (mut from_server, mut to_server) = flooder.into_stream().into_split();
    let drained = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(from_server.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let shout = client_frame_bytes("Shout", 0, 1, &noise(4 * 1024));
    let mut shouted = 0;
    for _ in 0..SHOUTS {
        if to_server.write_all(&shout).await.is_err() {
            break;
        }
        shouted += 1;
    }

    // Back in range: the bystander gets its reply after whatever was broadcast meanwhile,
    // and is served on.
    let mut heard = 0;
    let reply = loop {
        let frame = bystander
            .recv()
            .await
            .unwrap_or_else(|| panic!("the bystander was cut after {heard} broadcasts"));
        if frame.msg_seq == seq {
            break frame;
        }
        heard += 1;
    };
    assert_eq!(&reply.payload[..], b"before");
    for i in 0..20 {
        let text = format!("after {i}");
        let echo = bystander.request("Echo", text.as_bytes()).await;
        assert_eq!(&echo.payload[..], text.as_bytes());
    }

    // The flooder was cut for its rate, long before it got through its shouts.
    tokio::time::timeout(WAIT, drained)
        .await
        .expect("the flooder was not cut")
        .unwrap();
    assert!(shouted < SHOUTS, "all {shouted} shouts were taken");
    assert!(heard <= 500, "{heard} broadcasts reached the bystander");
    let metrics = server.metrics();
    assert!(metrics.contains("reason=\"rate_limited\"} 1"), "{metrics}");
    assert!(metrics.contains("reason=\"slow_consumer\"} 0"), "{metrics}");
}
