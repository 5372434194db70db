//! The stage and actor of the original's connector test server, rebuilt on PlayHouse.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use playhouse::{Actor, ActorCell, ActorLink, ErrorCode, ErrorReply, Packet, Stage, StageContext};

use super::proto::{
    AuthenticateReply, AuthenticateRequest, BenchmarkReply, BroadcastNotify, BroadcastRequest,
    CreateStageReply, EchoReply, EchoRequest, FailReply, FailRequest,
};

/// The stage type name (also the default stage type).
pub const TEST_STAGE: &str = "TestStage";

/// Bytes in the reply to `LargePayloadRequest` (whatever size the request names).
pub const LARGE_PAYLOAD: usize = 1024 * 1024;

/// Account ids are numbers handed out in order, one per authentication attempt, across the
/// process (the original's `Interlocked.Increment`), so `BroadcastNotify.from_account_id`
/// can carry them as integers.
static NEXT_ACCOUNT_ID: AtomicI64 = AtomicI64::new(0);

/// Milliseconds since the Unix epoch (the messages' `processed_at`).
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The test stage: echo, failure details, no reply, 1 MiB reply, broadcast, and an empty
/// `<MsgId>Reply` for anything else.
#[derive(Debug, Default)]
pub struct CompatStage;

/// A player of [`CompatStage`].
#[derive(Debug, Default)]
pub struct CompatActor;

impl Stage for CompatStage {
    type Actor = CompatActor;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        // The original answers with fixed values whatever the creation payload says.
        Ok(Packet::from_message(&CreateStageReply {
            received_stage_name: TEST_STAGE.to_owned(),
            received_max_players: 100,
            created: true,
        }))
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<CompatActor>,
        packet: Packet,
    ) {
        let link = &mut actor.link;
        match &*packet.msg_id {
            "EchoRequest" => match packet.parse::<EchoRequest>() {
                Ok(echo) => link.reply(Packet::from_message(&EchoReply {
                    content: echo.content,
                    sequence: echo.sequence,
                    processed_at: now_millis(),
                })),
                Err(_) => link.reply_error(ErrorCode::INVALID_MESSAGE),
            },
            // Never answered: the client's request timeout is what is under test.
            "NoResponseRequest" => {}
            // An application failure travels as an ordinary reply with the details.
            "FailRequest" => match packet.parse::<FailRequest>() {
                Ok(fail) => link.reply(Packet::from_message(&FailReply {
                    error_code: fail.error_code,
                    message: fail.error_message,
                })),
                Err(_) => link.reply_error(ErrorCode::INVALID_MESSAGE),
            },
            "LargePayloadRequest" => link.reply(Packet::from_message(&BenchmarkReply {
                sequence: 1,
                processed_at: now_millis(),
                payload: large_payload(),
            })),
            "BroadcastRequest" => {
                let Ok(request) = packet.parse::<BroadcastRequest>() else {
                    return link.reply_error(ErrorCode::INVALID_MESSAGE);
                };
                ctx.broadcast(Packet::from_message(&BroadcastNotify {
                    event_type: "TestBroadcast".to_owned(),
                    data: request.content,
                    from_account_id: link.account_id().parse().unwrap_or(0),
                    sender_id: String::new(),
                }));
            }
            other => link.reply(Packet::empty(format!("{other}Reply"))),
        }
    }
}

/// `LARGE_PAYLOAD` bytes counting 0, 1, .., 255, 0, 1, ..
fn large_payload() -> Bytes {
    (0..LARGE_PAYLOAD).map(|i| (i % 256) as u8).collect()
}

impl Actor for CompatActor {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let request: AuthenticateRequest = packet
            .parse()
            .map_err(|_| ErrorCode::AUTHENTICATION_FAILED)?;
        let account_id = NEXT_ACCOUNT_ID.fetch_add(1, Ordering::Relaxed) + 1;
        let valid_token =
            !request.token.is_empty() && !request.token.to_lowercase().contains("invalid");
        if request.user_id.is_empty() || !valid_token {
            // The refusal carries an AuthenticateReply too; the client may try again.
            let refusal = AuthenticateReply {
                account_id: String::new(),
                success: false,
                received_user_id: request.user_id,
                received_token: request.token,
            };
            return Err(ErrorReply::new(ErrorCode::AUTHENTICATION_FAILED)
                .with_packet(Packet::from_message(&refusal)));
        }
        link.set_account_id(account_id.to_string());
        Ok(Packet::from_message(&AuthenticateReply {
            account_id: account_id.to_string(),
            success: true,
            received_user_id: request.user_id,
            received_token: request.token,
        }))
    }
}
