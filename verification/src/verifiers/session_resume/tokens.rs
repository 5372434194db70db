//! Resume tokens the server never issued, or forged one bit off a real one: SESSION_LOST, and
//! the real session unharmed.

use playhouse::ErrorCode;
use playhouse_protocol::{RESUME_MSG_ID, ResumeGrant, ResumeRequest, SESSION_MSG_ID};

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::EchoRequest;
use crate::raw::RawClient;
use crate::{ensure, ensure_eq};

/// The capability bits of the hello.
const RESUME: u32 = 2;

/// A raw client on play-1 that asked for resumable sessions, authenticated as `user` in
/// stage `offset`, and got its grant.
async fn raw_session(
    t: &TestCtx,
    offset: i64,
    user: &str,
) -> Result<(RawClient, ResumeGrant), String> {
    let mut raw = RawClient::connect(t.addr()).await?;
    let hello = raw.hello(7, RESUME).await?;
    ensure_eq!(hello.error_code, 0, "hello error code");
    let granted = hello
        .payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or("a hello reply without capabilities")?;
    ensure!(granted & RESUME != 0, "resume not granted: {granted:#x}");
    let auth = client::auth_packet(user);
    raw.send(&auth.msg_id, 1, t.stage_id(offset), &auth.payload)
        .await?;
    let grant = raw.frame(WAIT).await?;
    ensure_eq!(
        grant.msg_id.as_str(),
        SESSION_MSG_ID,
        "first frame after authenticating"
    );
    let grant = ResumeGrant::from_payload(&grant.payload).ok_or("a malformed grant")?;
    let reply = raw.reply(1, WAIT).await?;
    ensure_eq!(
        reply.msg_id.as_str(),
        "AuthenticateReply",
        "authenticate reply"
    );
    ensure_eq!(reply.error_code, 0, "authenticate error code");
    Ok((raw, grant))
}

/// Asks play-1 on a new raw connection to resume `token`; returns the answer's error code.
async fn resume_with(t: &TestCtx, token: [u8; 16]) -> Result<u16, String> {
    let mut raw = RawClient::connect(t.addr()).await?;
    let hello = raw.hello(3, RESUME).await?;
    ensure_eq!(hello.error_code, 0, "hello error code");
    let request = ResumeRequest {
        token: playhouse_protocol::ResumeToken(token),
        received: 1,
    };
    raw.send(RESUME_MSG_ID, 9, 0, &request.to_payload()).await?;
    let answer = raw.reply(9, WAIT).await?;
    ensure_eq!(answer.msg_id.as_str(), RESUME_MSG_ID, "answer msg id");
    Ok(answer.error_code)
}

pub(super) async fn unknown_token(t: TestCtx) -> TestResult {
    // Never issued: 128 bits a server would hand out only by a 2^-128 chance.
    let token = *b"never-issued-tok";
    let code = resume_with(&t, token).await?;
    ensure_eq!(
        code,
        ErrorCode::SESSION_LOST.0,
        "resume with an unknown token (SESSION_LOST)"
    );
    Ok(())
}

pub(super) async fn forged_token(t: TestCtx) -> TestResult {
    let (mut raw, grant) = raw_session(&t, 20, "resume_forged").await?;
    let mut forged = grant.token.0;
    forged[15] ^= 1;
    let code = resume_with(&t, forged).await?;
    ensure_eq!(
        code,
        ErrorCode::SESSION_LOST.0,
        "resume with a token one bit off a real one (SESSION_LOST)"
    );
    // The forged attempt neither took the session over nor ended it.
    let echo = EchoRequest {
        content: "still mine".into(),
        sequence: 2,
    };
    raw.send(
        "EchoRequest",
        2,
        t.stage_id(20),
        &prost::Message::encode_to_vec(&echo),
    )
    .await?;
    let reply = raw.reply(2, WAIT).await?;
    ensure_eq!(
        reply.msg_id.as_str(),
        "EchoReply",
        "echo on the real session"
    );
    ensure_eq!(reply.error_code, 0, "echo error code");
    Ok(())
}
