//! In-memory tests on tokio's virtual clock: the connector talks to a fake server over a
//! `tokio::io::duplex` pipe, so heartbeat and timeout timings are exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use playhouse_protocol::{ClientFrame, ServerCodec, ServerFrame};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::*;

type Server = Framed<DuplexStream, ServerCodec>;

/// Fails a test that would hang: the clock is virtual, so this costs no real time.
async fn within(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(3600), test)
        .await
        .expect("test hung");
}

fn quiet_config() -> ConnectorConfig {
    ConnectorConfig {
        heartbeat_interval: Duration::ZERO,
        ..ConnectorConfig::default()
    }
}

fn pair(connector: &Connector, stage_id: i64) -> Server {
    let (client, server) = tokio::io::duplex(1 << 16);
    connector.connect_stream(client, stage_id, "Room").unwrap();
    Framed::new(server, ServerCodec::default())
}

/// The next client frame, skipping the capability hello every connection opens with.
async fn next(server: &mut Server) -> ClientFrame {
    loop {
        let frame = server
            .next()
            .await
            .expect("stream open")
            .expect("valid frame");
        if !frame.is_hello() {
            return frame;
        }
    }
}

fn reply(to: &ClientFrame, msg_id: &'static str, payload: &'static [u8]) -> ServerFrame {
    ServerFrame::new(
        msg_id,
        to.msg_seq,
        to.stage_id,
        ErrorCode::SUCCESS,
        Bytes::from_static(payload),
    )
}

async fn authenticate(connector: &Connector, server: &mut Server, reply_stage: i64) {
    let (result, ()) = tokio::join!(
        connector.authenticate(Packet::empty("AuthenticateRequest")),
        async {
            let request = next(server).await;
            assert_eq!(request.msg_id, "AuthenticateRequest");
            let mut answer = reply(&request, "AuthenticateReply", b"");
            answer.stage_id = reply_stage;
            server.send(answer).await.unwrap();
        }
    );
    result.unwrap();
    assert!(connector.is_authenticated());
}

fn counter() -> (Arc<AtomicUsize>, impl FnMut() + Send + 'static) {
    let count = Arc::new(AtomicUsize::new(0));
    let handle = Arc::clone(&count);
    (count, move || {
        handle.fetch_add(1, Ordering::SeqCst);
    })
}

#[tokio::test(start_paused = true)]
async fn heartbeats_come_from_the_task_on_its_own_clock() {
    within(async {
        let connector = Connector::new(ConnectorConfig {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            ..ConnectorConfig::default()
        });
        let mut server = pair(&connector, 5);
        let t0 = Instant::now();
        for beat in 1..=5 {
            let frame = next(&mut server).await;
            assert!(frame.is_heartbeat(), "{frame:?}");
            assert_eq!((frame.msg_seq, frame.stage_id), (0, 0));
            assert!(frame.payload.is_empty());
            assert_eq!(t0.elapsed(), Duration::from_secs(10) * beat);
            server.send(ServerFrame::heartbeat()).await.unwrap();
        }
        // The echoes kept the connection alive well past the 30 s silence limit, and nobody ever
        // called main_thread_action.
        assert!(connector.is_connected());
        assert_eq!(connector.main_thread_action(), 1, "only on_connect(true)");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_dropped_after_the_heartbeat_timeout() {
    within(async {
        let connector = Connector::new(ConnectorConfig {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            ..ConnectorConfig::default()
        });
        let (disconnects, on_disconnect) = counter();
        connector.on_disconnect(on_disconnect);
        let mut server = pair(&connector, 5);
        let t0 = Instant::now();
        let (result, heartbeats) = tokio::join!(
            connector.request_with_timeout(
                Packet::empty("AuthenticateRequest"),
                Duration::from_secs(120)
            ),
            async {
                // Read everything, answer nothing, until the client hangs up.
                let mut heartbeats = 0;
                while let Some(frame) = server.next().await {
                    heartbeats += usize::from(frame.unwrap().is_heartbeat());
                }
                assert_eq!(t0.elapsed(), Duration::from_secs(30));
                heartbeats
            }
        );
        assert!(
            matches!(result, Err(ConnectorError::Disconnected)),
            "{result:?}"
        );
        assert_eq!(t0.elapsed(), Duration::from_secs(30));
        assert!((2..=3).contains(&heartbeats), "{heartbeats}");
        assert!(!connector.is_connected());
        assert_eq!(connector.pending_requests(), 0);
        assert_eq!(disconnects.load(Ordering::SeqCst), 0, "queued, not run yet");
        assert_eq!(
            connector.main_thread_action(),
            2,
            "on_connect + on_disconnect"
        );
        assert_eq!(disconnects.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_request_leaves_nothing_behind() {
    within(async {
        let connector = Connector::new(quiet_config());
        let mut server = pair(&connector, 5);
        authenticate(&connector, &mut server, 5).await;
        let t0 = Instant::now();
        let (result, slow) = tokio::join!(
            connector.request_with_timeout(Packet::empty("Slow"), Duration::from_secs(5)),
            next(&mut server)
        );
        assert!(
            matches!(result, Err(ConnectorError::RequestTimeout)),
            "{result:?}"
        );
        assert_eq!(
            result.unwrap_err().code(),
            ErrorCode::CONNECTOR_REQUEST_TIMEOUT
        );
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
        assert_eq!(connector.pending_requests(), 0);

        // The late reply is discarded; the next request gets its own answer.
        server
            .send(reply(&slow, "SlowReply", b"late"))
            .await
            .unwrap();
        let (result, ()) = tokio::join!(connector.request(Packet::empty("Fast")), async {
            let fast = next(&mut server).await;
            assert_ne!(fast.msg_seq, slow.msg_seq);
            server
                .send(reply(&fast, "FastReply", b"fast"))
                .await
                .unwrap();
        });
        assert_eq!(result.unwrap().payload, "fast");
        assert_eq!(connector.pending_requests(), 0);
        assert!(connector.is_connected());
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn set_request_timeout_applies_to_later_requests() {
    within(async {
        let connector = Connector::new(quiet_config());
        let mut server = pair(&connector, 5);
        authenticate(&connector, &mut server, 5).await;
        connector.set_request_timeout(Duration::from_millis(1500));
        assert_eq!(
            connector.config().request_timeout,
            Duration::from_millis(1500)
        );
        let t0 = Instant::now();
        let (result, _) = tokio::join!(connector.request(Packet::empty("Slow")), next(&mut server));
        assert!(matches!(result, Err(ConnectorError::RequestTimeout)));
        assert_eq!(t0.elapsed(), Duration::from_millis(1500));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn every_frame_carries_the_stage_and_stage_zero_adopts_the_servers() {
    within(async {
        let connector = Connector::new(quiet_config());
        let mut server = pair(&connector, 0);
        assert_eq!(connector.stage_id(), 0);
        authenticate(&connector, &mut server, 77).await;
        assert_eq!(connector.stage_id(), 77);
        connector.send(Packet::empty("Move")).unwrap();
        let frame = next(&mut server).await;
        assert_eq!(
            (frame.msg_id.as_ref(), frame.msg_seq, frame.stage_id),
            ("Move", 0, 77)
        );

        let other = Connector::new(quiet_config());
        let mut server = pair(&other, 9);
        authenticate(&other, &mut server, 1234).await;
        assert_eq!(other.stage_id(), 9, "a bound stage is never replaced");
        other.send(Packet::empty("Move")).unwrap();
        assert_eq!(next(&mut server).await.stage_id, 9);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_bad_frame_from_the_server_closes_the_connection() {
    within(async {
        let connector = Connector::new(quiet_config());
        let (disconnects, on_disconnect) = counter();
        connector.on_disconnect(on_disconnect);
        let mut server = pair(&connector, 5);
        authenticate(&connector, &mut server, 5).await;

        let (result, ()) = tokio::join!(connector.request(Packet::empty("Echo")), async {
            let request = next(&mut server).await;
            // A reply claiming a 100-byte LZ4 payload that is garbage.
            let mut bad = BytesMut::new();
            bad.put_i32_le(1 + 1 + 2 + 8 + 2 + 4 + 20);
            bad.put_u8(1);
            bad.put_u8(b'R');
            bad.put_u16_le(request.msg_seq);
            bad.put_i64_le(5);
            bad.put_u16_le(0);
            bad.put_i32_le(100);
            bad.put_slice(&[0xFF; 20]);
            server.get_mut().write_all(&bad).await.unwrap();
            assert!(server.next().await.is_none(), "client hung up");
        });
        let error = result.unwrap_err();
        assert!(matches!(error, ConnectorError::Protocol(_)), "{error:?}");
        assert_eq!(error.code(), ErrorCode::CONNECTOR_DISCONNECTED);
        assert!(!connector.is_connected());
        assert!(!connector.is_authenticated());
        connector.main_thread_action();
        assert_eq!(disconnects.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn disconnect_flushes_queued_sends_and_allows_reconnecting() {
    within(async {
        let connector = Connector::new(quiet_config());
        let connects = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&connects);
        connector.on_connect(move |ok| log.lock().unwrap().push(ok));
        let (disconnects, on_disconnect) = counter();
        connector.on_disconnect(on_disconnect);

        let mut server = pair(&connector, 5);
        authenticate(&connector, &mut server, 5).await;
        let (client, _other) = tokio::io::duplex(64);
        assert!(matches!(
            connector.connect_stream(client, 5, "Room"),
            Err(ConnectorError::AlreadyConnected)
        ));
        for n in 0..3u8 {
            connector.send(Packet::new("Chat", vec![n])).unwrap();
        }
        connector.disconnect().await;
        assert!(!connector.is_connected());
        assert!(!connector.is_authenticated());
        for n in 0..3u8 {
            assert_eq!(next(&mut server).await.payload, vec![n]);
        }
        assert!(server.next().await.is_none());
        assert!(matches!(
            connector.send(Packet::empty("Chat")),
            Err(ConnectorError::Disconnected)
        ));

        // Same connector, new connection, authenticate again.
        let mut server = pair(&connector, 5);
        assert!(connector.is_connected());
        assert!(!connector.is_authenticated());
        authenticate(&connector, &mut server, 5).await;
        connector.disconnect().await;
        connector.disconnect().await; // a second call is a no-op

        connector.main_thread_action();
        assert_eq!(*connects.lock().unwrap(), vec![true, true]);
        assert_eq!(disconnects.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn invalid_packets_are_refused_before_they_reach_the_task() {
    within(async {
        let connector = Connector::new(ConnectorConfig {
            max_packet_size: 64,
            ..quiet_config()
        });
        let mut server = pair(&connector, 5);
        authenticate(&connector, &mut server, 5).await;
        let long_id = "x".repeat(256);
        assert!(matches!(
            connector.send(Packet::empty(long_id)),
            Err(ConnectorError::Unsupported(_))
        ));
        assert!(matches!(
            connector.request(Packet::new("Big", vec![0u8; 64])).await,
            Err(ConnectorError::Unsupported(_))
        ));
        // Exactly at the limit is fine: 1 + 3 + 2 + 8 + 50 = 64.
        connector.send(Packet::new("Big", vec![0u8; 50])).unwrap();
        assert_eq!(next(&mut server).await.payload.len(), 50);
    })
    .await;
}

#[test]
fn the_connector_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let connector = Connector::new(quiet_config());
    send_sync(&connector);
    send(&connector.connect("127.0.0.1", 1, 1, "Room"));
    send(&connector.authenticate(Packet::empty("A")));
    send(&connector.request(Packet::empty("R")));
    send(&connector.disconnect());
    let error = ConnectorError::Disconnected;
    send_sync(&error);
}
