//! What clients from one source address can hold of a server's stages: however many
//! connections they use, they cannot fill `max_stages` (another address can still create a
//! stage), they create stages at a bounded rate, and a stage they created frees its place in
//! their count when it closes. Refusals carry a code and are counted in the metrics.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use playhouse::ErrorCode;
use playhouse::testing::{EchoActor, EchoStage};
use support::serve::{one_stage_type, start};
use support::{RawClient, WAIT};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// A TCP connection to `addr` from the loopback address `source` (any of 127.0.0.0/8).
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// One connection that logs into stage `stage_id` as a fresh account and goes; the code.
async fn one_shot(addr: SocketAddr, stage_id: i64) -> ErrorCode {
    let mut client = RawClient::connect(addr, stage_id).await;
    client.authenticate(&format!("one-shot-{stage_id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_from_one_address_leave_room_for_another() {
    // 64 connections at a time, both ends in this process.
    playhouse::raise_fd_limit().expect("RLIMIT_NOFILE");
    // Every setting at its default: max_stages 10,000, actors kept 60 s after their client
    // left, 2 stage creations a second per connection.
    let builder = one_stage_type("Room", |_| EchoStage, |_| EchoActor);
    let (server, addr) = start(builder).await;

    // 10,500 one-shot connections from 127.0.0.1, each logging into a new stage: without a
    // bound per source they fill max_stages for as long as their actors stay.
    const FLOOD: i64 = 10_500;
    let started = Instant::now();
    let codes: Vec<ErrorCode> = futures_util::stream::iter(0..FLOOD)
        .map(|i| one_shot(addr, 1_000_000 + i))
        .buffer_unordered(64)
        .collect()
        .await;
    let took = started.elapsed();
    let count = |code| codes.iter().filter(|c| **c == code).count();
    let (created, too_fast) = (
        count(ErrorCode::SUCCESS),
        count(ErrorCode::STAGE_CREATION_RATE_EXCEEDED),
    );

    // Another address creates a stage, and is served in it.
    let mut other = RawClient::over(connect_from([127, 0, 0, 2], addr).await, 7);
    assert_eq!(
        other.authenticate("other").await,
        ErrorCode::SUCCESS,
        "{created} of {FLOOD} one-shot logins from 127.0.0.1 created a stage"
    );
    assert_eq!(&other.request("Echo", b"hi").await.payload[..], b"hi");

    // What the flood got: its source's burst and rate (20 a second, bursts of 200; the
    // live cap of 1,000 is not even reached), the rest refused with a code.
    let allowed = 200 + 20 * took.as_secs_f64().ceil() as usize;
    assert!(
        created <= allowed,
        "{created} stages created in {took:?} (at most {allowed})"
    );
    assert_eq!(created + too_fast, FLOOD as usize, "every login answered");
    assert_eq!(server.stage_count(), created + 1);
    let metrics = server.metrics();
    let refused = format!(
        "playhouse_stages_refused_per_source_total{{server=\"play-1\",limit=\"rate\"}} {too_fast}"
    );
    assert!(metrics.contains(&refused), "{metrics}");
}

#[tokio::test]
async fn stages_a_source_created_free_their_places_when_they_close() {
    let builder = one_stage_type("Room", |_| EchoStage, |_| EchoActor).configure(|c| {
        c.max_stages_per_source = Some(2);
        c.stage_creation_rate_per_source = None;
        c.disconnected_actor_ttl = Some(Duration::from_millis(100));
        c.stage_idle_timeout = Some(Duration::from_millis(100));
    });
    let (server, addr) = start(builder).await;
    let login = |source, stage_id, user: &'static str| async move {
        let mut client = RawClient::over(connect_from(source, addr).await, stage_id);
        let code = client.authenticate(user).await;
        (client, code)
    };
    let (_a, a) = login([127, 0, 0, 1], 1, "a").await;
    let (b_client, b) = login([127, 0, 0, 1], 2, "b").await;
    assert_eq!((a, b), (ErrorCode::SUCCESS, ErrorCode::SUCCESS));
    // A third stage from the same address: refused, on a connection of its own.
    let (_, third) = login([127, 0, 0, 1], 3, "c").await;
    assert_eq!(third, ErrorCode::STAGE_LIMIT_REACHED);
    // Joining a stage that exists creates nothing; another address creates its own.
    let (_, joins) = login([127, 0, 0, 1], 1, "d").await;
    let (_, elsewhere) = login([127, 0, 0, 3], 4, "e").await;
    assert_eq!((joins, elsewhere), (ErrorCode::SUCCESS, ErrorCode::SUCCESS));
    assert!(
        server.metrics().contains(
            "playhouse_stages_refused_per_source_total{server=\"play-1\",limit=\"live\"} 1"
        )
    );

    // b's player goes, its stage empties and closes: the address may create one again.
    drop(b_client);
    let deadline = Instant::now() + WAIT;
    while server.stage_count() > 2 {
        assert!(Instant::now() < deadline, "b's stage never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_c, again) = login([127, 0, 0, 1], 5, "f").await;
    assert_eq!(again, ErrorCode::SUCCESS);
}
