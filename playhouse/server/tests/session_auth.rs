//! Black-box tests of logging in over real TCP sockets: the authenticate request and its
//! error codes, heartbeats before it, which stage a login lands in, frames sent too early.

mod support;

use bytes::Bytes;
use playhouse::{
    Actor, ActorCell, ActorLink, ErrorCode, ErrorReply, Packet, PlayServer, PlayServerBuilder,
    Stage, StageContext,
};
use playhouse_protocol::ClientFrame;
use support::RawClient;
use support::player::log_in_as_payload;
use support::serve::start;

/// The login the actor refuses: `AUTHENTICATION_FAILED`.
const REJECTED_LOGIN: &str = "fail-me";
/// The account the stage refuses to let join: `JOIN_STAGE_FAILED`.
const REFUSED_ACCOUNT: &str = "nojoin";

/// A stage that echoes "Echo", refuses [`REFUSED_ACCOUNT`] and knows no other message.
struct Gate;

/// Logs in as its payload, unless that is [`REJECTED_LOGIN`]; an empty payload leaves the
/// account id empty.
struct Applicant;

impl Stage for Gate {
    type Actor = Applicant;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_join_stage(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<Applicant>,
    ) -> bool {
        actor.link.account_id() != REFUSED_ACCOUNT
    }

    async fn on_dispatch(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<Applicant>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "Echo" => actor.link.reply(packet),
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

impl Actor for Applicant {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        if packet.payload == REJECTED_LOGIN.as_bytes() {
            return Err(ErrorCode::AUTHENTICATION_FAILED.into());
        }
        Ok(log_in_as_payload(link, &packet))
    }
}

fn gates() -> PlayServerBuilder {
    PlayServer::builder().stage("Gate", |_| Gate, |_| Applicant)
}

async fn default_server() -> (PlayServer, std::net::SocketAddr) {
    start(gates().default_stage_type("Gate")).await
}

#[tokio::test]
async fn authenticate_then_echo_and_heartbeat() {
    let (_server, addr) = default_server().await;
    let mut client = RawClient::connect(addr, 7).await;
    // Heartbeats may precede authentication.
    client.send_frame(ClientFrame::heartbeat()).await;
    assert!(client.recv().await.unwrap().is_heartbeat());

    let reply = client.request("AuthenticateRequest", b"alice").await;
    assert_eq!(reply.error_code, ErrorCode::SUCCESS);
    assert_eq!(reply.msg_id, "AuthenticateReply");
    assert_eq!(reply.payload, Bytes::from_static(b"alice"));
    assert_eq!(reply.stage_id, 7);

    let echo = client.request("Echo", b"hello").await;
    assert_eq!(
        (echo.msg_id.as_ref(), &echo.payload[..]),
        ("Echo", &b"hello"[..])
    );
    assert_eq!(echo.error_code, ErrorCode::SUCCESS);

    client.send_frame(ClientFrame::heartbeat()).await;
    let beat = client.recv().await.unwrap();
    assert!(beat.is_heartbeat());
    assert_eq!((beat.msg_seq, beat.stage_id), (0, 0));
}

#[tokio::test]
async fn authentication_errors_carry_their_codes_and_keep_the_connection() {
    let (_server, addr) = default_server().await;
    let mut client = RawClient::connect(addr, 11).await;
    assert_eq!(
        client.authenticate(REJECTED_LOGIN).await,
        ErrorCode::AUTHENTICATION_FAILED
    );
    assert_eq!(client.authenticate("").await, ErrorCode::INVALID_ACCOUNT_ID);
    assert_eq!(
        client.authenticate(REFUSED_ACCOUNT).await,
        ErrorCode::JOIN_STAGE_FAILED
    );
    assert_eq!(client.authenticate("bob").await, ErrorCode::SUCCESS);
    assert_eq!(
        client.authenticate("bob").await,
        ErrorCode::ALREADY_AUTHENTICATED
    );
    let unknown = client.request("Nope", b"").await;
    assert_eq!(unknown.error_code, ErrorCode::HANDLER_NOT_FOUND);
}

#[tokio::test]
async fn missing_stage_without_default_type_is_stage_not_found() {
    let (_server, addr) = start(gates()).await;
    let mut client = RawClient::connect(addr, 99).await;
    assert_eq!(
        client.authenticate("carol").await,
        ErrorCode::STAGE_NOT_FOUND
    );
}

#[tokio::test]
async fn stage_zero_gets_a_fresh_generated_id() {
    let (_server, addr) = default_server().await;
    let mut a = RawClient::connect(addr, 0).await;
    let mut b = RawClient::connect(addr, 0).await;
    let ra = a.request("AuthenticateRequest", b"a").await;
    let rb = b.request("AuthenticateRequest", b"b").await;
    assert!(ra.error_code.is_success() && rb.error_code.is_success());
    assert_ne!(ra.stage_id, 0);
    assert_ne!(
        ra.stage_id, rb.stage_id,
        "each stage-0 login creates its own stage"
    );
}

#[tokio::test]
async fn a_message_before_authentication_closes_the_connection() {
    let (_server, addr) = default_server().await;
    let mut client = RawClient::connect(addr, 13).await;
    client.request_nowait("Echo", b"too early").await;
    client.expect_closed().await;
}

#[tokio::test]
async fn a_request_before_authentication_is_answered_not_authenticated_then_closed() {
    let (_server, addr) = default_server().await;
    let mut client = RawClient::connect(addr, 13).await;
    client.request_nowait("Echo", b"too early").await;
    let reply = client.recv().await.expect("an answer before the close");
    assert_eq!(&*reply.msg_id, "Echo");
    assert_eq!(reply.error_code, ErrorCode::NOT_AUTHENTICATED);
    client.expect_closed().await;
}
