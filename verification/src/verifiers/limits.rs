//! Limits: a client that breaks the wire protocol loses its own connection — an oversized
//! frame, a negative length, a message before authentication, an invalid msg id — while a
//! healthy client beside it keeps getting its replies.

use playhouse_connector::Connector;
use prost::Message;

use crate::check::TestResult;
use crate::client::{self, ClientEvent, Events, WAIT};
use crate::context::TestCtx;
use crate::proto::{EchoReply, EchoRequest};
use crate::raw::{RawClient, client_frame};
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

/// The server's default `max_packet_size` (2 MiB).
const MAX_PACKET: usize = 2 * 1024 * 1024;

/// The Limits category (stage ids 26000..).
pub(super) fn category() -> Category {
    Category {
        name: "Limits",
        base: 26_000,
        tests: vec![
            TestCase::new("OversizedFrame_ClosesOnlyThatConnection", |t| {
                Box::pin(oversized(t))
            }),
            TestCase::new("NegativeLength_ClosesOnlyThatConnection", |t| {
                Box::pin(negative_length(t))
            }),
            TestCase::new("MessageBeforeAuth_ClosesOnlyThatConnection", |t| {
                Box::pin(before_auth(t))
            }),
            TestCase::new("InvalidUtf8MsgId_ClosesOnlyThatConnection", |t| {
                Box::pin(invalid_msg_id(t))
            }),
        ],
    }
}

/// A healthy client in its own stage, and its events.
async fn healthy(t: &TestCtx, offset: i64, user: &str) -> Result<(Connector, Events), String> {
    let (connector, tap) = t.joined(offset, user).await?;
    let events = tap.subscribe();
    echo(&connector, "before").await?;
    Ok((connector, events))
}

async fn echo(connector: &Connector, content: &str) -> TestResult {
    let reply: EchoReply = client::request(
        connector,
        &EchoRequest {
            content: content.into(),
            sequence: 1,
        },
    )
    .await?;
    ensure_eq!(reply.content.as_str(), content, "healthy client's echo");
    Ok(())
}

/// The healthy client still answers and never saw a disconnect.
async fn still_healthy(connector: Connector, mut events: Events) -> TestResult {
    echo(&connector, "after").await?;
    let dropped = events
        .drain_now()
        .into_iter()
        .any(|event| matches!(event, ClientEvent::Disconnect));
    connector.disconnect().await;
    ensure!(!dropped, "the healthy client was disconnected too");
    Ok(())
}

/// Runs `offend` on a raw client (authenticated first when `authenticate`), expects the server
/// to close that connection, and checks a healthy client beside it.
async fn offender_is_cut(
    t: &TestCtx,
    offset: i64,
    authenticate: bool,
    offending: Vec<u8>,
) -> TestResult {
    let (connector, events) = healthy(t, offset, &format!("limits_healthy_{offset}")).await?;
    let mut raw = RawClient::connect(t.addr()).await?;
    if authenticate {
        raw.authenticate(t.stage_id(offset + 50), &format!("limits_raw_{offset}"))
            .await?;
    }
    // The server may close before it has read everything: a failed write is fine.
    let _ = raw.write(&offending).await;
    // The healthy client is served while the offender is being cut.
    echo(&connector, "during").await?;
    raw.closed_within(WAIT).await?;
    still_healthy(connector, events).await
}

async fn oversized(t: TestCtx) -> TestResult {
    // Announces one byte more than the limit, followed by the start of a body.
    let announced = i32::try_from(MAX_PACKET + 1).map_err(|e| e.to_string())?;
    let mut frame = announced.to_le_bytes().to_vec();
    frame.extend(std::iter::repeat_n(0x41, 64 * 1024));
    offender_is_cut(&t, 1, true, frame).await
}

async fn negative_length(t: TestCtx) -> TestResult {
    let frame = (-5i32).to_le_bytes().to_vec();
    offender_is_cut(&t, 2, true, frame).await
}

async fn before_auth(t: TestCtx) -> TestResult {
    let echo = EchoRequest {
        content: "too early".into(),
        sequence: 1,
    };
    let frame = client_frame(b"EchoRequest", 1, t.stage_id(3), &echo.encode_to_vec());
    offender_is_cut(&t, 3, false, frame).await
}

async fn invalid_msg_id(t: TestCtx) -> TestResult {
    let frame = client_frame(&[0xFF, 0xFE, 0xFD], 2, t.stage_id(54), b"");
    offender_is_cut(&t, 4, true, frame).await
}
