//! The connector over TLS, WebSocket and WebSocket over TLS, against a small echo server
//! built on the same listeners the Play server uses.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use playhouse_connector::{
    Connector, ConnectorConfig, ConnectorError, ErrorCode, Packet, TlsTrust, Transport,
};
use playhouse_protocol::{ServerCodec, ServerFrame};
use playhouse_transport::{Listener, TlsListener, WsListener, tls};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

/// Answers every request with its payload (authenticate included).
fn spawn_echo<L: Listener>(mut listener: L) {
    tokio::spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut framed = Framed::new(io, ServerCodec::default());
                while let Some(Ok(frame)) = framed.next().await {
                    if frame.is_hello() {
                        // The connector asks for LZ4: large echoes travel compressed.
                        framed.codec_mut().set_compression(true);
                        continue;
                    }
                    let reply_id = if frame.msg_id == "AuthenticateRequest" {
                        "AuthenticateReply".to_owned()
                    } else {
                        frame.msg_id.to_string()
                    };
                    let reply = ServerFrame::new(
                        reply_id,
                        frame.msg_seq,
                        frame.stage_id,
                        ErrorCode::SUCCESS,
                        frame.payload,
                    );
                    if framed.send(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn config(transport: Transport) -> ConnectorConfig {
    ConnectorConfig::default()
        .transport(transport)
        .heartbeat_interval(Duration::ZERO)
        .request_timeout(Duration::from_secs(5))
}

async fn round_trip(connector: &Connector, port: u16) {
    connector
        .connect("localhost", port, 9, "Room")
        .await
        .expect("connect");
    let auth = connector
        .authenticate(Packet::new("AuthenticateRequest", "me"))
        .await
        .unwrap();
    assert_eq!(auth.msg_id, "AuthenticateReply");
    assert!(connector.is_authenticated());
    // Large and compressible: goes through every layer in one piece.
    let big = "x".repeat(100_000);
    let echo = connector
        .request(Packet::new("Echo", big.clone()))
        .await
        .unwrap();
    assert_eq!(echo.payload, big.as_bytes());
    connector.disconnect().await;
}

#[tokio::test]
async fn tls_with_a_trusted_certificate_and_with_verification_skipped() {
    let certs = tls::self_signed(&["localhost"]).unwrap();
    let listener = TlsListener::new(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        certs.server,
    );
    let port = listener.local_addr().unwrap().port();
    spawn_echo(listener);

    let trust = TlsTrust::Config(tls::client_config_trusting(certs.cert).unwrap());
    let trusted = config(Transport::Tls { trust });
    round_trip(&Connector::new(trusted), port).await;
    let skipping = config(Transport::tls().with_trust(TlsTrust::SkipVerification));
    round_trip(&Connector::new(skipping), port).await;

    // The public roots do not trust a self-signed certificate.
    let strict = Connector::new(config(Transport::tls()));
    assert!(matches!(
        strict.connect("localhost", port, 9, "Room").await,
        Err(ConnectorError::Connect(_))
    ));
}

#[tokio::test]
async fn websocket_and_websocket_over_tls() {
    let ws = WsListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), "/ws");
    let ws_port = ws.local_addr().unwrap().port();
    spawn_echo(ws);
    round_trip(&Connector::new(config(Transport::websocket())), ws_port).await;

    let certs = tls::self_signed(&["localhost"]).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wss = WsListener::new(TlsListener::new(tcp, certs.server), "/ws");
    let wss_port = wss.local_addr().unwrap().port();
    spawn_echo(wss);
    let trust = TlsTrust::Config(tls::client_config_trusting(certs.cert).unwrap());
    let secure = config(Transport::websocket_tls().with_trust(trust));
    round_trip(&Connector::new(secure), wss_port).await;

    let wrong_path = config(Transport::WebSocket {
        path: "/nope".to_owned(),
    });
    assert!(
        Connector::new(wrong_path)
            .connect("localhost", ws_port, 9, "Room")
            .await
            .is_err()
    );
}
