//! Black-box tests of the session's clocks: the auth deadline (from the connect, or from
//! leaving a stage) and the idle timeout.

mod support;

use std::time::Duration;

use playhouse::{ActorCell, ErrorCode, Packet, PlayServer, PlayServerBuilder, Stage, StageContext};
use playhouse_protocol::ClientFrame;
use support::RawClient;
use support::player::Player;
use support::serve::{in_memory, one_stage_type, start};
use tokio::io::DuplexStream;
use tokio::time::Instant;

/// A stage that answers "Echo", lets a player go on "Leave" (answering "Left"), and on
/// "Freeze" never finishes the message, so nothing queued behind it is taken.
struct Lounge;

impl Stage for Lounge {
    type Actor = Player;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_dispatch(
        &mut self,
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "Echo" => actor.link.reply(packet),
            "Leave" => {
                actor.link.reply(Packet::empty("Left"));
                actor.link.leave_stage();
            }
            "Freeze" => std::future::pending().await,
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

fn lounges() -> PlayServerBuilder {
    one_stage_type("Lounge", |_| Lounge, |_| Player::default())
}

#[tokio::test]
async fn unauthenticated_connections_are_closed_after_the_auth_timeout() {
    let builder = lounges().configure(|c| c.auth_timeout = Duration::from_millis(200));
    let (_server, addr) = start(builder).await;
    let mut client = RawClient::connect(addr, 15).await;
    // Heartbeats do not count as authentication.
    client.send_frame(ClientFrame::heartbeat()).await;
    assert!(client.recv().await.unwrap().is_heartbeat());
    client.expect_closed().await;
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_idle_timeout() {
    let builder = lounges().configure(|c| c.idle_timeout = Duration::from_millis(300));
    let (_server, addr) = start(builder).await;
    let mut client = RawClient::connect(addr, 16).await;
    assert!(client.authenticate("quiet").await.is_success());
    client.expect_closed().await;
}

#[tokio::test]
async fn a_detached_connection_has_the_auth_timeout_from_detaching_to_join_again() {
    const AUTH_TIMEOUT: Duration = Duration::from_millis(300);
    let builder = lounges().configure(|c| {
        c.auth_timeout = AUTH_TIMEOUT;
        // Longer than the support's wait: an idle close would fail the test.
        c.idle_timeout = Duration::from_secs(60);
    });
    let (_server, addr) = start(builder).await;
    let mut client = RawClient::connect(addr, 21).await;
    assert!(client.authenticate("grace").await.is_success());
    // The connection is now older than the auth timeout: what counts is when it detaches.
    tokio::time::sleep(AUTH_TIMEOUT * 2).await;
    assert_eq!(client.request("Leave", b"").await.msg_id, "Left");
    let after = client.request("Echo", b"x").await;
    assert_eq!(after.error_code, ErrorCode::NOT_AUTHENTICATED);
    assert!(
        client.authenticate("grace").await.is_success(),
        "may join again"
    );

    assert_eq!(client.request("Leave", b"").await.msg_id, "Left");
    let detached = Instant::now();
    client.expect_closed().await;
    assert!(
        detached.elapsed() >= AUTH_TIMEOUT - Duration::from_millis(50),
        "closed {:?} after detaching, before the auth timeout",
        detached.elapsed()
    );
}

/// Joins stage `stage_id` and freezes it; returns the connection, to keep open.
async fn freeze(server: &PlayServer, stage_id: i64) -> RawClient<DuplexStream> {
    let mut freezer = in_memory(server, stage_id);
    assert!(freezer.authenticate("freezer").await.is_success());
    freezer.send("Freeze", b"").await;
    freezer
}

#[tokio::test(start_paused = true)]
async fn a_slow_login_still_ends_at_the_auth_deadline_counted_from_the_connect() {
    const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
    let server = lounges()
        .configure(|c| c.auth_timeout = AUTH_TIMEOUT)
        .build()
        .expect("build");
    let _freezer = freeze(&server, 25).await;
    let connected = Instant::now();
    let mut slow = in_memory(&server, 25);
    tokio::time::sleep(AUTH_TIMEOUT * 6 / 10).await;
    // The login waits in the frozen stage's mailbox past the connection's deadline.
    slow.request_nowait("AuthenticateRequest", b"slow").await;
    slow.expect_closed().await;
    assert_eq!(connected.elapsed(), AUTH_TIMEOUT);
}
