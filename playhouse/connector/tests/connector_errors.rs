//! The errors a client gets for the wrong port, transport or login id name the likely cause:
//! against a real Play server over real sockets, and (for what a real server does not do
//! today) a scripted server over an in-memory stream.

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use playhouse::PlayServer;
use playhouse::testing::{EchoActor, EchoStage};
use playhouse_connector::{
    Connector, ConnectorConfig, ConnectorError, ErrorCode, Packet, PayloadError, Transport,
};
use playhouse_protocol::{ClientFrame, ServerCodec, ServerFrame};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A Play server listening for plain TCP and for WebSocket at `/ws`; their ports.
async fn server() -> (PlayServer, u16, u16) {
    let server = PlayServer::builder()
        .stage("Room", |_| EchoStage, |_| EchoActor)
        .default_stage_type("Room")
        .build()
        .expect("build");
    let tcp = server.listen_tcp("127.0.0.1:0").await.expect("tcp");
    let ws = server.listen_ws("127.0.0.1:0", "/ws").await.expect("ws");
    (server, tcp.port(), ws.port())
}

fn config() -> ConnectorConfig {
    ConnectorConfig::default()
        .heartbeat_interval(Duration::ZERO)
        // No LZ4: replies arrive as the server wrote them.
        .compression(false)
}

/// A connector whose `on_disconnect` is observable (callbacks run on its task).
fn observed(config: ConnectorConfig) -> (Connector, mpsc::UnboundedReceiver<()>) {
    let connector = Connector::new(config.use_main_thread_callbacks(false));
    let (tx, rx) = mpsc::unbounded_channel();
    connector.on_disconnect(move || {
        let _ = tx.send(());
    });
    (connector, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_connector_on_a_websocket_port_is_told_it_is_an_http_port() {
    let (server, _, ws_port) = server().await;
    let (connector, mut disconnected) = observed(config());
    // TCP connects; the WebSocket listener answers our frames with an HTTP error.
    connector
        .connect("127.0.0.1", ws_port, 1, "Room")
        .await
        .unwrap();
    let login = connector
        .authenticate(Packet::new("AuthenticateRequest", "alice"))
        .await;
    assert!(matches!(login, Err(ConnectorError::HttpPort)), "{login:?}");
    let message = login.unwrap_err().to_string();
    assert!(message.contains("Transport::websocket()"), "{message}");
    assert_eq!(
        ConnectorError::HttpPort.code(),
        ErrorCode::CONNECTOR_DISCONNECTED
    );

    // The closed connection keeps saying why.
    within("on_disconnect", disconnected.recv()).await;
    let after = connector.request(Packet::empty("Echo")).await;
    assert!(matches!(after, Err(ConnectorError::HttpPort)), "{after:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_connector_on_a_tcp_port_is_told_the_port_does_not_speak_websocket() {
    let (server, tcp_port, ws_port) = server().await;
    let connector = Connector::new(config().transport(Transport::websocket()));
    let refused = connector.connect("127.0.0.1", tcp_port, 1, "Room").await;
    let Err(ConnectorError::NotWebSocket(source)) = &refused else {
        panic!("expected NotWebSocket, got {refused:?}");
    };
    let message = refused.as_ref().unwrap_err().to_string();
    assert!(
        message.contains("does not speak WebSocket") && message.contains("Transport::Tcp"),
        "{message}"
    );
    assert!(
        source
            .to_string()
            .contains(&format!("ws://127.0.0.1:{tcp_port}/ws")),
        "{source}"
    );
    assert!(!connector.is_connected());

    // A wrong path on a WebSocket port is an HTTP refusal, not "no WebSocket".
    let wrong_path = Connector::new(config().transport(Transport::WebSocket {
        path: "/nope".into(),
    }));
    let refused = wrong_path.connect("127.0.0.1", ws_port, 1, "Room").await;
    let Err(ConnectorError::Connect(error)) = &refused else {
        panic!("expected Connect, got {refused:?}");
    };
    assert!(error.to_string().contains("refused"), "{error}");

    // And the right transport on the right port works.
    let right = Connector::new(config().transport(Transport::websocket()));
    right
        .connect("127.0.0.1", ws_port, 1, "Room")
        .await
        .unwrap();
    right
        .authenticate(Packet::new("AuthenticateRequest", "bob"))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_under_another_message_id_is_told_the_server_closed_before_authentication() {
    let (server, tcp_port, _) = server().await;
    let (connector, mut disconnected) = observed(config());
    connector
        .connect("127.0.0.1", tcp_port, 1, "Room")
        .await
        .unwrap();
    let login = connector.authenticate(Packet::new("Login", "carol")).await;
    match &login {
        Err(ConnectorError::ClosedBeforeAuthentication) => {}
        // A server that answers with a code before closing.
        Err(error @ ConnectorError::Server { code, .. }) => {
            assert_eq!(*code, ErrorCode::NOT_AUTHENTICATED);
            let message = error.to_string();
            assert!(message.contains("authenticate_msg_id"), "{message}");
        }
        other => panic!("expected the server's refusal, got {other:?}"),
    }
    let message = ConnectorError::ClosedBeforeAuthentication.to_string();
    assert!(message.contains("authenticate_msg_id"), "{message}");

    // Whatever the login got, the close that follows says why.
    within("on_disconnect", disconnected.recv()).await;
    let after = connector.request(Packet::empty("Echo")).await;
    assert!(
        matches!(after, Err(ConnectorError::ClosedBeforeAuthentication)),
        "{after:?}"
    );
    server.stop().await;
}

/// A scripted server over an in-memory stream; its end, framed.
async fn scripted(connector: &Connector) -> Framed<tokio::io::DuplexStream, ServerCodec> {
    let (near, far) = tokio::io::duplex(64 * 1024);
    // No stage type: no hello, so the login is the first frame the script reads.
    connector.connect_stream(near, 1, "").unwrap();
    Framed::new(far, ServerCodec::default())
}

async fn next(server: &mut Framed<tokio::io::DuplexStream, ServerCodec>) -> ClientFrame {
    within("a client frame", server.next())
        .await
        .expect("client hung up")
        .expect("valid frame")
}

/// What a server that answers before closing looks like: the pending request gets the code,
/// the close that follows its cause.
#[tokio::test]
async fn an_error_reply_before_the_close_reaches_the_request_and_the_close_its_cause() {
    let (connector, mut disconnected) = observed(config());
    let mut server = scripted(&connector).await;
    let (login, ()) = tokio::join!(
        connector.authenticate(Packet::new("Login", "dave")),
        async {
            let request = next(&mut server).await;
            let refusal = ServerFrame::new(
                request.msg_id.to_string(),
                request.msg_seq,
                request.stage_id,
                ErrorCode(9),
                "",
            );
            server.send(refusal).await.unwrap();
            drop(server);
        }
    );
    let Err(ConnectorError::Server { code, .. }) = login else {
        panic!("expected the server's code, got {login:?}");
    };
    assert_eq!(code, ErrorCode(9));
    within("on_disconnect", disconnected.recv()).await;
    let after = connector.request(Packet::empty("Echo")).await;
    assert!(
        matches!(after, Err(ConnectorError::ClosedBeforeAuthentication)),
        "{after:?}"
    );
}

/// After authentication a server's close is a plain disconnect, as before.
#[tokio::test]
async fn a_close_after_authentication_stays_disconnected() {
    let (connector, mut disconnected) = observed(config());
    let mut server = scripted(&connector).await;
    let (login, ()) = tokio::join!(
        connector.authenticate(Packet::new("AuthenticateRequest", "erin")),
        async {
            let request = next(&mut server).await;
            let ok = ServerFrame::new(
                "AuthenticateReply",
                request.msg_seq,
                request.stage_id,
                ErrorCode::SUCCESS,
                "",
            );
            server.send(ok).await.unwrap();
        }
    );
    login.unwrap();
    let (pending, ()) = tokio::join!(connector.request(Packet::empty("Echo")), async {
        next(&mut server).await;
        drop(server);
    });
    assert!(
        matches!(pending, Err(ConnectorError::Disconnected)),
        "{pending:?}"
    );
    within("on_disconnect", disconnected.recv()).await;
    let after = connector.request(Packet::empty("Echo")).await;
    assert!(
        matches!(after, Err(ConnectorError::Disconnected)),
        "{after:?}"
    );
}

#[derive(Clone, PartialEq, prost::Message)]
struct Login {
    #[prost(string, tag = "1")]
    token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Welcome {
    #[prost(uint32, tag = "1")]
    player: u32,
}

impl prost::Name for Welcome {
    const NAME: &'static str = "Welcome";
    const PACKAGE: &'static str = "game";
}

/// `authenticate_message` sends the typed login under the configured id, and a reply that is
/// not the message asked for converts into `ConnectorError` with `?`.
#[tokio::test]
async fn a_typed_login_and_a_reply_that_does_not_decode() {
    let connector = Connector::new(config().authenticate_msg_id("LoginRequest"));
    let mut server = scripted(&connector).await;
    let (welcome, ()) = tokio::join!(
        async {
            let reply = connector
                .authenticate_message(&Login {
                    token: "t-1".into(),
                })
                .await?;
            let welcome: Welcome = reply.decode()?;
            Ok::<_, ConnectorError>(welcome)
        },
        async {
            let request = next(&mut server).await;
            assert_eq!(request.msg_id, "LoginRequest");
            let login = <Login as prost::Message>::decode(request.payload).unwrap();
            assert_eq!(login.token, "t-1");
            // Renamed on the way: decode checks the id.
            let reply = ServerFrame::new(
                "AuthenticateReply",
                request.msg_seq,
                request.stage_id,
                ErrorCode::SUCCESS,
                prost::Message::encode_to_vec(&Welcome { player: 3 }),
            );
            server.send(reply).await.unwrap();
        }
    );
    let error = welcome.unwrap_err();
    assert!(
        matches!(
            &error,
            ConnectorError::Payload(PayloadError::WrongMessage {
                expected: "Welcome",
                ..
            })
        ),
        "{error:?}"
    );
    assert_eq!(error.code(), ErrorCode::INVALID_MESSAGE);
    assert!(connector.is_authenticated());
}
