//! Every resource a client can make the server hold has a bound, refused with a clear code or
//! a closed connection, while a healthy client beside it keeps its replies: stages (idle
//! disposal, a per-server limit, a per-connection creation rate), oversized replies, the
//! frame size before authentication, the outbound queue in bytes, and the stop deadline.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use playhouse::testing::EchoActor;
use playhouse::{
    ActorCell, ErrorCode, Packet, PlayConfig, PlayServer, RateLimit, Stage, StageContext,
};
#[cfg(feature = "zmq")]
use playhouse::{ApiServer, MemoryDirectory, MeshError, MeshJoin};
use playhouse_protocol::ClientFrame;
use support::{RawClient, WAIT, closed, noise};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Counts `Stage::on_destroy` calls.
#[derive(Debug, Default)]
struct Destroyed(AtomicUsize);

struct Room {
    destroyed: Arc<Destroyed>,
}

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
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<EchoActor>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            // A reply of the size the payload names (u32 LE), of incompressible bytes.
            "Big" => {
                let size = u32::from_le_bytes(packet.payload[..4].try_into().unwrap()) as usize;
                actor.link.reply(Packet::new("BigReply", noise(size)));
            }
            "Leave" => {
                actor.link.leave_stage();
                actor.link.reply(Packet::empty("LeaveReply"));
            }
            // Stage code that never returns.
            "Stall" => std::future::pending::<()>().await,
            _ => actor.link.reply(packet),
        }
    }

    async fn on_destroy(&mut self, _: &mut StageContext<Self>) {
        self.destroyed.0.fetch_add(1, Ordering::SeqCst);
    }

    /// From another server: a reply of the size the payload names (u32 LE).
    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        let size = u32::from_le_bytes(packet.payload[..4].try_into().unwrap()) as usize;
        ctx.reply(Packet::new("BigReply", noise(size)));
    }
}

async fn server(
    change: impl FnOnce(&mut PlayConfig),
) -> (PlayServer, std::net::SocketAddr, Arc<Destroyed>) {
    let destroyed = Arc::new(Destroyed::default());
    let counter = Arc::clone(&destroyed);
    let server = PlayServer::builder()
        .stage(
            "Room",
            move |_| Room {
                destroyed: Arc::clone(&counter),
            },
            |_| EchoActor,
        )
        .default_stage_type("Room")
        .configure(change)
        .build()
        .unwrap();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    (server, addr, destroyed)
}

async fn joined(addr: std::net::SocketAddr, stage_id: i64, user: &str) -> RawClient {
    let mut client = RawClient::connect(addr, stage_id).await;
    assert_eq!(
        client.authenticate(user).await,
        ErrorCode::SUCCESS,
        "{user}"
    );
    client
}

async fn still_healthy(client: &mut RawClient) {
    let echo = client.request("Echo", b"ping").await;
    assert_eq!(
        (echo.error_code, &echo.payload[..]),
        (ErrorCode::SUCCESS, &b"ping"[..])
    );
}

/// Polls `condition` until it holds, failing after [`WAIT`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_empty_stage_closes_after_the_idle_timeout() {
    let (server, addr, destroyed) =
        server(|c| c.stage_idle_timeout = Some(Duration::from_millis(200))).await;
    let mut stays = joined(addr, 10, "stays").await;
    let mut leaves = joined(addr, 11, "leaves").await;
    assert_eq!(server.stage_count(), 2);
    let left = leaves.request("Leave", b"").await;
    assert_eq!(left.error_code, ErrorCode::SUCCESS);

    eventually("the empty stage closed", || server.stage_count() == 1).await;
    assert_eq!(destroyed.0.load(Ordering::SeqCst), 1, "on_destroy ran once");
    let metrics = server.metrics();
    assert!(
        metrics.contains("playhouse_stages_idle_closed_total{server=\"play-1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("playhouse_actors{server=\"play-1\"} 1"),
        "{metrics}"
    );
    // The occupied stage lives on and answers.
    still_healthy(&mut stays).await;
}

#[tokio::test]
async fn stages_over_the_server_limit_are_refused_with_a_code() {
    let (server, addr, _) = server(|c| c.max_stages = 2).await;
    let mut first = joined(addr, 1, "first").await;
    let _second = joined(addr, 2, "second").await;

    let mut third = RawClient::connect(addr, 3).await;
    assert_eq!(
        third.authenticate("third").await,
        ErrorCode::STAGE_LIMIT_REACHED
    );
    assert_eq!(server.stage_count(), 2);
    // The limit counts stages, not players: an existing stage still takes them.
    third.stage_id = 1;
    assert_eq!(third.authenticate("third").await, ErrorCode::SUCCESS);
    still_healthy(&mut first).await;
    still_healthy(&mut third).await;
    assert!(
        server
            .metrics()
            .contains("playhouse_stages_refused_total{server=\"play-1\"} 1")
    );
}

#[tokio::test]
async fn a_connection_creating_stages_too_fast_is_refused_with_a_code() {
    let limit = RateLimit::new(1, 3);
    let (server, addr, _) = server(|c| c.stage_creation_rate = Some(limit)).await;
    let mut healthy = joined(addr, 1, "healthy").await;
    let mut hopper = RawClient::connect(addr, 100).await;
    // Log into a fresh stage, leave, log into the next: three creations fit the burst.
    let mut codes = Vec::new();
    for stage_id in 100..104 {
        hopper.stage_id = stage_id;
        let code = hopper.authenticate("hopper").await;
        codes.push(code);
        if code.is_success() {
            assert_eq!(
                hopper.request("Leave", b"").await.error_code,
                ErrorCode::SUCCESS
            );
        }
    }
    assert_eq!(
        codes,
        [
            ErrorCode::SUCCESS,
            ErrorCode::SUCCESS,
            ErrorCode::SUCCESS,
            ErrorCode::STAGE_CREATION_RATE_EXCEEDED
        ]
    );
    // Joining a stage that exists creates nothing and is not limited.
    hopper.stage_id = 1;
    assert_eq!(hopper.authenticate("hopper").await, ErrorCode::SUCCESS);
    still_healthy(&mut healthy).await;
    assert!(server.stage_count() <= 4);
}

#[tokio::test]
async fn an_oversized_reply_becomes_an_error_code_at_once() {
    const MAX: u32 = 64 * 1024;
    let (server, addr, _) = server(|c| c.codec.max_packet_size = MAX as usize).await;
    let mut client = joined(addr, 1, "big").await;
    // A reply's body: 17 fixed header bytes, the msg id and the payload. One exactly at the
    // limit goes out; one byte more does not.
    let at_limit = MAX - 17 - "BigReply".len() as u32;
    let fits = client.request("Big", &at_limit.to_le_bytes()).await;
    assert_eq!(
        (fits.error_code, fits.payload.len()),
        (ErrorCode::SUCCESS, at_limit as usize)
    );
    let started = Instant::now();
    let too_big = client.request("Big", &(at_limit + 1).to_le_bytes()).await;
    assert_eq!(too_big.error_code, ErrorCode::PACKET_TOO_LARGE);
    assert_eq!(too_big.msg_id, "BigReply");
    assert!(too_big.payload.is_empty());
    assert!(
        started.elapsed() < WAIT,
        "the error took the request timeout"
    );
    // The connection carries on.
    still_healthy(&mut client).await;
    assert!(
        server
            .metrics()
            .contains("reason=\"oversized_outgoing_frame\"} 1")
    );
}

#[tokio::test]
async fn before_authentication_only_small_frames_are_accepted() {
    let (_server, addr, _) = server(|c| c.max_unauthenticated_packet_size = 1024).await;
    let mut healthy = joined(addr, 1, "healthy").await;

    // A frame announcing 100 KB before authenticating: closed at its length prefix, before
    // the server buffers any of it (not at the auth timeout).
    let mut greedy = TcpStream::connect(addr).await.unwrap();
    greedy.write_all(&100_000i32.to_le_bytes()).await.unwrap();
    closed(&mut greedy).await;

    // After authenticating, the full limit applies: a 100 KB request goes through.
    let payload = noise(100_000);
    let echo = healthy.request("Echo", &payload).await;
    assert_eq!(
        (echo.error_code, echo.payload.len()),
        (ErrorCode::SUCCESS, 100_000)
    );
}

#[tokio::test]
async fn the_outbound_queue_is_bounded_in_bytes() {
    let (server, addr, _) = server(|c| {
        c.session_outbound_bytes = 256 * 1024;
        // Only the byte bound can cut the reader below within the test.
        c.session_outbound_capacity = 100_000;
        c.write_timeout = Duration::from_secs(60);
        c.rate_limit = None;
    })
    .await;
    let mut healthy = joined(addr, 1, "healthy").await;
    let mut never_reads = joined(addr, 2, "never-reads").await;
    // Requests for 64 KiB replies, never read: they pile up in the server.
    let stream = never_reads.stream_mut();
    let flood = async {
        for seq in 1..=4000u16 {
            let frame = support::client_frame_bytes("Big", seq, 2, &(64u32 * 1024).to_le_bytes());
            if stream.write_all(&frame).await.is_err() {
                return; // cut by the server
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), flood).await;
    eventually("the slow consumer was cut", || {
        server.metrics().contains("reason=\"slow_consumer\"} 1")
    })
    .await;
    closed(never_reads.stream_mut()).await;
    still_healthy(&mut healthy).await;
}

#[tokio::test]
async fn stop_returns_within_the_shutdown_timeout_whatever_stages_do() {
    let timeout = Duration::from_millis(500);
    let (server, addr, _) = server(|c| {
        c.shutdown_timeout = timeout;
        c.stage_mailbox_capacity = 1;
    })
    .await;
    // Six stages stuck in a callback, each with a full mailbox and a client blocked on it.
    let mut stuck = Vec::new();
    for stage_id in 1..=6 {
        let mut client = joined(addr, stage_id, &format!("stuck-{stage_id}")).await;
        client.send("Stall", b"").await;
        for _ in 0..8 {
            client
                .send_frame(ClientFrame::new("Echo", 0, stage_id, &b"queued"[..]))
                .await;
        }
        stuck.push(client);
    }
    // Let the server take in what it can.
    let mut probe = joined(addr, 99, "probe").await;
    still_healthy(&mut probe).await;

    tokio::time::timeout(timeout + Duration::from_millis(1500), server.stop())
        .await
        .expect("stop() outlived shutdown_timeout plus its margin");
    // Every connection is closed, the ones blocked on a full mailbox included.
    for client in &mut stuck {
        closed(client.stream_mut()).await;
    }
    assert_eq!(server.stage_count(), 0);
}

#[cfg(feature = "zmq")]
#[tokio::test]
async fn an_oversized_mesh_reply_becomes_an_error_code_at_once() {
    let directory = MemoryDirectory::new();
    let join = || {
        MeshJoin::zmq("127.0.0.1:0", directory.clone())
            .refresh_interval(Duration::from_millis(100))
            .request_timeout(Duration::from_secs(30))
            .max_payload(64 * 1024)
    };
    let (play, addr, _) = server(|_| {}).await;
    play.join_mesh(join()).await.unwrap();
    let api = ApiServer::builder()
        .server_id("api-1")
        .start(join())
        .await
        .unwrap();
    let _player = joined(addr, 7, "player").await;
    let sender = api.sender();
    // Wait for the mesh: a small request goes through.
    let deadline = Instant::now() + WAIT;
    let fits = loop {
        let request = Packet::new("Big", 1000u32.to_le_bytes().to_vec());
        match sender.request_to_stage("play-1", 7, request).await {
            Ok(reply) => break reply,
            Err(error)
                if error.code() == ErrorCode::SERVER_NOT_FOUND && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("small mesh request failed: {error}"),
        }
    };
    assert_eq!(fits.payload.len(), 1000);

    // A reply over the limit: an error code at once, not the 30 s request timeout.
    let started = Instant::now();
    let request = Packet::new("Big", 100_000u32.to_le_bytes().to_vec());
    let error = match sender.request_to_stage("play-1", 7, request).await {
        Ok(reply) => panic!(
            "an oversized reply of {} bytes arrived",
            reply.payload.len()
        ),
        Err(error) => error,
    };
    assert_eq!(error.code(), ErrorCode::PACKET_TOO_LARGE, "{error}");
    assert!(started.elapsed() < WAIT);

    // A request over the limit fails before it is sent.
    let oversized = Packet::new("Big", noise(100_000));
    let error = match sender.request_to_stage("play-1", 7, oversized).await {
        Ok(reply) => panic!(
            "an oversized request was answered ({} bytes)",
            reply.payload.len()
        ),
        Err(error) => error,
    };
    assert!(matches!(error, MeshError::TooLarge { .. }), "{error}");
    assert_eq!(error.code(), ErrorCode::PACKET_TOO_LARGE);
    api.stop().await;
    play.stop().await;
}
