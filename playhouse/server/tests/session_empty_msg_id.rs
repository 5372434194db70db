//! A client frame whose message id is empty (the original's codec allows it) is no protocol
//! error: a request gets `INVALID_MESSAGE` in a reply with an id of its own (the original's
//! connectors reject a frame with an empty id), a one-way message is dropped, and the
//! connection stays, over TCP and WebSocket, before and after login.

mod support;

use playhouse::ErrorCode;
use playhouse::testing::{EchoActor, EchoStage};
use playhouse_protocol::{INVALID_MSG_ID, ServerFrame};
use support::RawClient;
use support::serve::one_stage_type;
use tokio::io::AsyncWriteExt;

/// A client frame with an empty id: `[len][0][seq][stage]`.
fn empty_id_frame(seq: u16, stage_id: i64) -> Vec<u8> {
    let mut frame = 11i32.to_le_bytes().to_vec();
    frame.push(0);
    frame.extend_from_slice(&seq.to_le_bytes());
    frame.extend_from_slice(&stage_id.to_le_bytes());
    frame
}

fn assert_refused(reply: &ServerFrame, seq: u16) {
    assert_eq!(reply.msg_seq, seq, "{reply:?}");
    assert_eq!(reply.msg_id, INVALID_MSG_ID);
    assert_eq!(reply.error_code, ErrorCode::INVALID_MESSAGE);
}

#[tokio::test]
async fn an_empty_id_gets_invalid_message_and_the_connection_stays_over_tcp() {
    let server = one_stage_type("Room", |_| EchoStage, |_| EchoActor)
        .build()
        .unwrap();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let mut client = RawClient::connect(addr, 1).await;
    // Before login: answered, not closed.
    client
        .stream_mut()
        .write_all(&empty_id_frame(40, 1))
        .await
        .unwrap();
    assert_refused(&client.recv().await.expect("a reply"), 40);
    assert!(client.authenticate("tcp").await.is_success());
    // After login: a one-way message is dropped (nothing comes back), a request refused.
    client
        .stream_mut()
        .write_all(&empty_id_frame(0, 1))
        .await
        .unwrap();
    client
        .stream_mut()
        .write_all(&empty_id_frame(41, 1))
        .await
        .unwrap();
    assert_refused(&client.recv().await.expect("a reply"), 41);
    // The connection and the session go on.
    assert_eq!(
        &client.request("Echo", b"still here").await.payload[..],
        b"still here"
    );
}

#[cfg(feature = "ws")]
#[tokio::test]
async fn an_empty_id_gets_invalid_message_and_the_connection_stays_over_websocket() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let server = one_stage_type("Room", |_| EchoStage, |_| EchoActor)
        .build()
        .unwrap();
    let addr = server.listen_ws("127.0.0.1:0", "/ws").await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let auth = support::client_frame_bytes("AuthenticateRequest", 1, 1, b"ws");
    ws.send(Message::binary(auth)).await.unwrap();
    let reply = recv(&mut ws).await;
    assert!(reply.error_code.is_success(), "{reply:?}");
    ws.send(Message::binary(empty_id_frame(0, 1)))
        .await
        .unwrap();
    ws.send(Message::binary(empty_id_frame(42, 1)))
        .await
        .unwrap();
    assert_refused(&recv(&mut ws).await, 42);
    let echo = support::client_frame_bytes("Echo", 43, 1, b"still here");
    ws.send(Message::binary(echo)).await.unwrap();
    let reply = recv(&mut ws).await;
    assert_eq!(
        (reply.msg_seq, &reply.payload[..]),
        (43, &b"still here"[..])
    );
}

#[cfg(feature = "ws")]
async fn recv<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> ServerFrame
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    match tokio::time::timeout(support::WAIT, ws.next()).await {
        Ok(Some(Ok(Message::Binary(bytes)))) => support::decode_server_frame(&bytes),
        other => panic!("no frame: {other:?}"),
    }
}
