//! Black-box tests over real loopback TCP against a fake server built on `ServerCodec`.
//! Every wait is on an event (a frame, a reply, a channel); `within` only bounds a test that
//! would otherwise hang when it fails.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use playhouse_connector::{Connector, ConnectorConfig, ConnectorError, ErrorCode, Packet};
use playhouse_protocol::{Capabilities, ClientFrame, CodecConfig, Hello, ServerCodec, ServerFrame};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

type Server = Framed<TcpStream, ServerCodec>;

const STAGE: i64 = 42;

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn quiet() -> ConnectorConfig {
    ConnectorConfig::default().heartbeat_interval(Duration::ZERO)
}

async fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

async fn accept(listener: &TcpListener) -> Server {
    let (stream, _) = within("accept", listener.accept()).await.unwrap();
    Framed::new(stream, ServerCodec::new(CodecConfig::default()))
}

/// Connects `connector` to a fresh fake server and returns the server side.
async fn connected(connector: &Connector) -> Server {
    connected_as(connector, "GameRoom").await
}

async fn connected_as(connector: &Connector, stage_type: &str) -> Server {
    let (listener, port) = listen().await;
    let (result, server) = tokio::join!(
        connector.connect("127.0.0.1", port, STAGE, stage_type),
        accept(&listener)
    );
    result.unwrap();
    server
}

/// The next client frame, skipping the capability hello the connector opens with.
async fn next(server: &mut Server) -> ClientFrame {
    loop {
        let frame = next_raw(server).await;
        if !frame.is_hello() {
            return frame;
        }
    }
}

async fn next_raw(server: &mut Server) -> ClientFrame {
    within("a client frame", server.next())
        .await
        .expect("client hung up")
        .expect("valid client frame")
}

fn reply(to: &ClientFrame, msg_id: &str, payload: impl Into<Bytes>) -> ServerFrame {
    ServerFrame::new(
        msg_id.to_owned(),
        to.msg_seq,
        to.stage_id,
        ErrorCode::SUCCESS,
        payload,
    )
}

/// Connects and authenticates against a fresh fake server.
async fn authenticated(connector: &Connector) -> Server {
    let mut server = connected(connector).await;
    let (result, ()) = tokio::join!(
        connector.authenticate(Packet::new("AuthenticateRequest", &b"user-1"[..])),
        async {
            let request = next(&mut server).await;
            assert_eq!(request.msg_id, "AuthenticateRequest");
            assert_eq!(request.stage_id, STAGE);
            assert_ne!(request.msg_seq, 0);
            server
                .send(reply(&request, "AuthenticateReply", &b"ok"[..]))
                .await
                .unwrap();
        }
    );
    assert_eq!(result.unwrap().payload, "ok");
    assert!(connector.is_authenticated());
    server
}

type Seen<T> = Arc<Mutex<Vec<T>>>;

fn recorder<T>() -> Seen<T> {
    Arc::new(Mutex::new(Vec::new()))
}

#[tokio::test]
async fn pipelined_requests_answered_out_of_order_match_by_seq() {
    let connector = Connector::new(quiet());
    let mut server = authenticated(&connector).await;
    let requests = (0..100u32).map(|n| {
        let connector = connector.clone();
        async move {
            let reply = connector
                .request(Packet::new("EchoRequest", n.to_le_bytes().to_vec()))
                .await
                .unwrap();
            (n, reply)
        }
    });
    let (replies, ()) = tokio::join!(futures_util::future::join_all(requests), async {
        let mut frames = Vec::new();
        for _ in 0..100 {
            frames.push(next(&mut server).await);
        }
        let mut seqs: Vec<u16> = frames.iter().map(|f| f.msg_seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), 100, "distinct sequence numbers");
        assert!(!seqs.contains(&0));
        // Answer in reverse, then swap neighbours, so no reply arrives in request order.
        frames.reverse();
        for pair in frames.chunks_mut(2) {
            pair.swap(0, 1);
        }
        for frame in &frames {
            assert_eq!(frame.stage_id, STAGE);
            let answer = reply(frame, "EchoReply", frame.payload.clone());
            server.feed(answer).await.unwrap();
        }
        server.flush().await.unwrap();
    });
    for (n, reply) in replies {
        assert_eq!(reply.msg_id, "EchoReply");
        assert_eq!(reply.payload, n.to_le_bytes().to_vec());
    }
    assert_eq!(connector.pending_requests(), 0);
}

#[tokio::test]
async fn a_server_error_code_surfaces_to_the_caller() {
    let connector = Connector::new(quiet());
    let mut server = authenticated(&connector).await;
    let (result, ()) = tokio::join!(connector.request(Packet::empty("BuyItem")), async {
        let request = next(&mut server).await;
        let mut answer = reply(&request, "BuyItemReply", &b"why"[..]);
        answer.error_code = ErrorCode(1007);
        server.send(answer).await.unwrap();
    });
    match result {
        Err(ConnectorError::Server { code, packet }) => {
            assert_eq!(code, ErrorCode(1007));
            assert_eq!(packet.payload, "why");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    assert!(
        connector.is_connected(),
        "an error reply keeps the connection"
    );
}

#[tokio::test]
async fn a_failed_authentication_leaves_the_connection_unauthenticated() {
    let connector = Connector::new(quiet());
    let mut server = connected(&connector).await;
    let (result, ()) = tokio::join!(
        connector.authenticate(Packet::empty("AuthenticateRequest")),
        async {
            let request = next(&mut server).await;
            let mut answer = reply(&request, "AuthenticateReply", Bytes::new());
            answer.error_code = ErrorCode::AUTHENTICATION_FAILED;
            server.send(answer).await.unwrap();
        }
    );
    assert_eq!(result.unwrap_err().code(), ErrorCode::AUTHENTICATION_FAILED);
    assert!(!connector.is_authenticated());
}

#[tokio::test]
async fn a_request_timeout_frees_its_entry_and_ignores_the_late_reply() {
    let connector = Connector::new(quiet());
    let mut server = authenticated(&connector).await;
    let timeout = Duration::from_millis(100);
    let (result, slow) = tokio::join!(
        connector.request_with_timeout(Packet::empty("Slow"), timeout),
        next(&mut server)
    );
    let error = result.unwrap_err();
    assert!(matches!(error, ConnectorError::RequestTimeout), "{error:?}");
    assert_eq!(error.code().0, 60202);
    assert_eq!(connector.pending_requests(), 0);

    let (result, ()) = tokio::join!(connector.request(Packet::empty("Next")), async {
        let request = next(&mut server).await;
        // The late reply first, then the real one.
        server
            .send(reply(&slow, "SlowReply", &b"late"[..]))
            .await
            .unwrap();
        server
            .send(reply(&request, "NextReply", &b"fresh"[..]))
            .await
            .unwrap();
    });
    assert_eq!(result.unwrap().payload, "fresh");
    assert_eq!(connector.pending_requests(), 0);
}

#[tokio::test]
async fn sending_before_authentication_is_refused() {
    let connector = Connector::new(quiet());
    let errors = recorder();
    let log = Arc::clone(&errors);
    connector.on_error(move |stage, stage_type: &str, code, request: Packet| {
        log.lock().unwrap().push((
            stage,
            stage_type.to_owned(),
            code,
            request.msg_id.to_string(),
        ));
    });
    let mut server = connected(&connector).await;

    let error = connector.send(Packet::empty("Move")).unwrap_err();
    assert!(matches!(error, ConnectorError::Unauthenticated));
    assert_eq!(error.code().0, 60203);
    assert!(matches!(
        connector.request(Packet::empty("EchoRequest")).await,
        Err(ConnectorError::Unauthenticated)
    ));
    let callback_result = recorder();
    let log = Arc::clone(&callback_result);
    connector.request_with_callback(Packet::empty("EchoRequest"), move |result| {
        log.lock()
            .unwrap()
            .push(result.map(|p| p.msg_id.to_string()));
    });
    assert!(callback_result.lock().unwrap().is_empty(), "not run inline");
    connector.main_thread_action();
    assert!(matches!(
        callback_result.lock().unwrap().as_slice(),
        [Err(ConnectorError::Unauthenticated)]
    ));
    let expected = |id: &str| {
        (
            STAGE,
            "GameRoom".to_owned(),
            ErrorCode(60203),
            id.to_owned(),
        )
    };
    assert_eq!(
        *errors.lock().unwrap(),
        vec![expected("Move"), expected("EchoRequest")]
    );

    // The authenticate id itself is allowed, and nothing refused reached the server.
    connector
        .send(Packet::empty("AuthenticateRequest"))
        .unwrap();
    assert_eq!(next(&mut server).await.msg_id, "AuthenticateRequest");
}

#[tokio::test]
async fn using_a_disconnected_connector_fails_with_disconnected() {
    let connector = Connector::new(quiet());
    assert!(!connector.is_connected());
    assert_eq!(connector.pending_requests(), 0);
    let error = connector.send(Packet::empty("Move")).unwrap_err();
    assert!(matches!(error, ConnectorError::Disconnected));
    assert_eq!(error.code().0, 60201);
    assert!(matches!(
        connector
            .authenticate(Packet::empty("AuthenticateRequest"))
            .await,
        Err(ConnectorError::Disconnected)
    ));
}

#[tokio::test]
async fn the_server_closing_fires_on_disconnect_and_fails_pending_requests() {
    let connector = Connector::new(quiet());
    let disconnects = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&disconnects);
    connector.on_disconnect(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    let mut server = authenticated(&connector).await;
    let (result, ()) = tokio::join!(connector.request(Packet::empty("Echo")), async {
        next(&mut server).await;
        drop(server);
    });
    assert!(
        matches!(result, Err(ConnectorError::Disconnected)),
        "{result:?}"
    );
    assert!(!connector.is_connected());
    assert!(!connector.is_authenticated());
    assert_eq!(connector.pending_requests(), 0);
    assert_eq!(
        disconnects.load(Ordering::SeqCst),
        0,
        "waits for the game loop"
    );
    assert_eq!(
        connector.main_thread_action(),
        2,
        "on_connect + on_disconnect"
    );
    assert_eq!(disconnects.load(Ordering::SeqCst), 1);
    assert_eq!(connector.main_thread_action(), 0);
}

#[tokio::test]
async fn heartbeats_flow_without_main_thread_action() {
    let connector = Connector::new(
        ConnectorConfig::default()
            .heartbeat_interval(Duration::from_millis(30))
            .heartbeat_timeout(Duration::from_secs(5)),
    );
    let mut server = connected(&connector).await;
    for _ in 0..3 {
        let frame = next(&mut server).await;
        assert!(frame.is_heartbeat(), "{frame:?}");
        server.send(ServerFrame::heartbeat()).await.unwrap();
    }
    assert!(connector.is_connected());
}

#[tokio::test]
async fn a_silent_server_is_dropped_after_the_heartbeat_timeout() {
    let connector = Connector::new(
        ConnectorConfig::default()
            .heartbeat_interval(Duration::from_millis(20))
            .heartbeat_timeout(Duration::from_millis(150))
            .use_main_thread_callbacks(false),
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    connector.on_disconnect(move || {
        let _ = tx.send(());
    });
    let mut server = connected(&connector).await;
    // Read heartbeats, never echo; the client hangs up on its own.
    let mut heartbeats = 0;
    while let Some(frame) = within("the client to hang up", server.next()).await {
        let frame = frame.unwrap();
        if frame.is_hello() {
            continue;
        }
        assert!(frame.is_heartbeat());
        heartbeats += 1;
    }
    assert!(heartbeats >= 1, "{heartbeats}");
    within("on_disconnect", rx.recv()).await.unwrap();
    assert!(!connector.is_connected());
}

#[tokio::test]
async fn callback_requests_run_only_in_main_thread_action() {
    let connector = Connector::new(quiet());
    let mut server = authenticated(&connector).await;
    let results = recorder();
    let log = Arc::clone(&results);
    connector.request_with_callback(Packet::empty("First"), move |result| {
        log.lock().unwrap().push(result.unwrap().payload);
    });
    // An async request behind it: when it completes, the first reply has been handled too.
    let (second, ()) = tokio::join!(connector.request(Packet::empty("Second")), async {
        for payload in ["one", "two"] {
            let request = next(&mut server).await;
            server
                .send(reply(&request, "Reply", payload))
                .await
                .unwrap();
        }
    });
    assert_eq!(second.unwrap().payload, "two");
    assert!(results.lock().unwrap().is_empty(), "queued, not run");
    assert_eq!(
        connector.main_thread_action(),
        2,
        "on_connect + the callback"
    );
    assert_eq!(*results.lock().unwrap(), vec![Bytes::from("one")]);
}

#[tokio::test]
async fn callbacks_run_directly_without_the_main_thread_queue() {
    let connector = Connector::new(quiet().use_main_thread_callbacks(false));
    let errors = recorder();
    let log = Arc::clone(&errors);
    connector.on_error(move |_, _: &str, code, request: Packet| {
        log.lock().unwrap().push((code, request.msg_id.to_string()));
    });
    let mut server = authenticated(&connector).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ok = tx.clone();
    connector.request_with_callback(Packet::empty("Good"), move |result| {
        let _ = ok.send(result.map(|p| p.payload));
    });
    connector.request_with_callback(Packet::empty("Bad"), move |result| {
        let _ = tx.send(result.map(|p| p.payload));
    });
    for _ in 0..2 {
        let request = next(&mut server).await;
        let mut answer = reply(&request, "Reply", &b"fine"[..]);
        if request.msg_id == "Bad" {
            answer.error_code = ErrorCode(1500);
        }
        server.send(answer).await.unwrap();
    }
    let first = within("the first callback", rx.recv()).await.unwrap();
    let second = within("the second callback", rx.recv()).await.unwrap();
    assert_eq!(first.unwrap(), "fine");
    assert_eq!(second.unwrap_err().code(), ErrorCode(1500));
    assert_eq!(connector.main_thread_action(), 0, "nothing was queued");
    // on_error ran right after the failing callback, on the same task.
    assert_eq!(
        *errors.lock().unwrap(),
        vec![(ErrorCode(1500), "Bad".to_owned())]
    );
}

#[tokio::test]
async fn pushes_reach_on_receive_and_heartbeat_echoes_do_not() {
    let connector = Connector::new(quiet());
    let pushes = recorder();
    let log = Arc::clone(&pushes);
    connector.on_receive(move |stage, stage_type: &str, packet: Packet| {
        log.lock()
            .unwrap()
            .push((stage, stage_type.to_owned(), packet));
    });
    let mut server = authenticated(&connector).await;
    let (pong, ()) = tokio::join!(connector.request(Packet::empty("Ping")), async {
        let request = next(&mut server).await;
        server.feed(ServerFrame::heartbeat()).await.unwrap();
        let push = ServerFrame::new("Chat", 0, STAGE, ErrorCode::SUCCESS, &b"hi"[..]);
        server.feed(push).await.unwrap();
        server
            .feed(reply(&request, "Pong", Bytes::new()))
            .await
            .unwrap();
        server.flush().await.unwrap();
    });
    pong.unwrap();
    assert_eq!(connector.main_thread_action(), 2, "on_connect + one push");
    assert_eq!(
        *pushes.lock().unwrap(),
        vec![(
            STAGE,
            "GameRoom".to_owned(),
            Packet::new("Chat", &b"hi"[..])
        )]
    );
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_and_reports_on_connect_false() {
    let (listener, port) = listen().await;
    drop(listener);
    let connector = Connector::new(quiet());
    let outcomes = recorder();
    let log = Arc::clone(&outcomes);
    connector.on_connect(move |ok| log.lock().unwrap().push(ok));
    let error = connector
        .connect("127.0.0.1", port, STAGE, "GameRoom")
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Connect(_)), "{error:?}");
    assert_eq!(error.code(), ErrorCode::CONNECTOR_DISCONNECTED);
    assert!(!connector.is_connected());
    assert_eq!(connector.main_thread_action(), 1);
    assert_eq!(*outcomes.lock().unwrap(), vec![false]);
}

#[tokio::test]
async fn connect_with_callback_reports_through_on_connect() {
    let (listener, port) = listen().await;
    let connector = Connector::new(quiet().use_main_thread_callbacks(false));
    let (tx, mut rx) = mpsc::unbounded_channel();
    connector.on_connect(move |ok| {
        let _ = tx.send(ok);
    });
    connector.connect_with_callback("127.0.0.1", port, STAGE, "GameRoom");
    let _server = accept(&listener).await;
    assert!(within("on_connect", rx.recv()).await.unwrap());
    assert!(connector.is_connected());
    assert_eq!(connector.stage_id(), STAGE);

    drop(listener);
    connector.disconnect().await;
    connector.connect_with_callback("127.0.0.1", port, STAGE, "GameRoom");
    assert!(!within("on_connect", rx.recv()).await.unwrap());
}

#[tokio::test]
async fn a_large_compressed_reply_is_decompressed() {
    let connector = Connector::new(quiet());
    let mut server = authenticated(&connector).await;
    let big: Bytes = b"playhouse ".repeat(1000).into();
    // The fake server really compresses it on the wire (the connector asked for LZ4).
    server.codec_mut().set_compression(true);
    let mut wire = bytes::BytesMut::new();
    let frame = ServerFrame::new("MapReply", 1, STAGE, ErrorCode::SUCCESS, big.clone());
    playhouse_protocol::Encoder::encode(server.codec_mut(), frame, &mut wire).unwrap();
    assert!(
        wire.len() < big.len() / 4,
        "{} bytes on the wire",
        wire.len()
    );
    let (result, ()) = tokio::join!(connector.request(Packet::empty("Map")), async {
        let request = next(&mut server).await;
        server
            .send(reply(&request, "MapReply", big.clone()))
            .await
            .unwrap();
    });
    assert_eq!(result.unwrap().payload, big);
}

#[tokio::test]
async fn every_connection_opens_with_a_hello_asking_for_lz4_and_naming_its_stage_type() {
    let connector = Connector::new(quiet());
    let mut server = connected(&connector).await;
    let (result, ()) = tokio::join!(
        connector.authenticate(Packet::new("AuthenticateRequest", &b"user-1"[..])),
        async {
            let hello = next_raw(&mut server).await;
            assert!(hello.is_hello(), "first frame is {:?}", hello.msg_id);
            assert_eq!(hello.msg_seq, 0, "the hello expects no reply");
            assert_eq!(
                Hello::from_payload(&hello.payload),
                Some(Hello::from(Capabilities::LZ4).naming("GameRoom"))
            );
            let request = next_raw(&mut server).await;
            assert_eq!(request.msg_id, "AuthenticateRequest");
            server
                .send(reply(&request, "AuthenticateReply", &b"ok"[..]))
                .await
                .unwrap();
        }
    );
    result.unwrap();
}

#[tokio::test]
async fn without_compression_nor_a_stage_type_the_connector_speaks_the_original_protocol() {
    let connector = Connector::new(quiet().compression(false));
    let mut server = connected_as(&connector, "").await;
    let (result, ()) = tokio::join!(
        connector.authenticate(Packet::new("AuthenticateRequest", &b"user-1"[..])),
        async {
            // No hello: the first frame is the authentication, as from the original's clients.
            let request = next_raw(&mut server).await;
            assert_eq!(request.msg_id, "AuthenticateRequest");
            server
                .send(reply(&request, "AuthenticateReply", &b"ok"[..]))
                .await
                .unwrap();
        }
    );
    result.unwrap();
}

#[tokio::test]
async fn the_connector_reconnects_and_authenticates_again() {
    let connector = Connector::new(quiet());
    let server = authenticated(&connector).await;
    assert!(matches!(
        connector.connect("127.0.0.1", 1, STAGE, "GameRoom").await,
        Err(ConnectorError::AlreadyConnected)
    ));
    // The server drops the connection while a request is pending.
    let (result, ()) = tokio::join!(connector.request(Packet::empty("Echo")), async move {
        let mut server = server;
        next(&mut server).await;
    });
    assert!(matches!(result, Err(ConnectorError::Disconnected)));
    assert!(!connector.is_connected());
    let mut server = authenticated(&connector).await;
    connector.send(Packet::empty("Hello")).unwrap();
    assert_eq!(next(&mut server).await.msg_id, "Hello");
}
