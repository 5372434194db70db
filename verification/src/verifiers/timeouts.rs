//! Timeouts: heartbeats keep an idle connection alive; the server closes silent and
//! unauthenticated connections; the connector drops a server that stops answering. Each test
//! runs its own short-timeout server.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use playhouse::{PlayConfig, PlayServer};

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{EchoReply, EchoRequest};
use crate::runner::{Category, TestCase};
use crate::servers::{play_server_builder, start_play};
use crate::{ensure, ensure_eq};

const IDLE_TIMEOUT: Duration = Duration::from_secs(1);
const AUTH_TIMEOUT: Duration = Duration::from_millis(500);

/// The Timeouts category (stage ids 15000..).
pub(super) fn category() -> Category {
    Category {
        name: "Timeouts",
        base: 15_000,
        tests: vec![
            TestCase::new("Heartbeat_KeepsIdleConnectionAlive", |t| {
                Box::pin(heartbeat_keeps_alive(t))
            }),
            TestCase::new("IdleTimeout_ClosesSilentConnection", |t| {
                Box::pin(idle_timeout(t))
            }),
            TestCase::new("AuthTimeout_ClosesUnauthenticatedConnection", |t| {
                Box::pin(auth_timeout(t))
            }),
            TestCase::new("HeartbeatTimeout_DropsSilentServer", |t| {
                Box::pin(heartbeat_timeout(t))
            }),
        ],
    }
}

/// Runs `body` against a server with short idle and auth timeouts, then stops the server.
async fn with_strict_server<F, Fut>(name: &str, body: F) -> TestResult
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let builder = play_server_builder(name).configure(|config: &mut PlayConfig| {
        config.idle_timeout = IDLE_TIMEOUT;
        config.auth_timeout = AUTH_TIMEOUT;
    });
    let (server, addr): (PlayServer, SocketAddr) = start_play(builder)
        .await
        .map_err(|e| format!("temporary server did not start: {e}"))?;
    let result = body(addr).await;
    server.stop().await;
    result
}

async fn heartbeat_keeps_alive(t: TestCtx) -> TestResult {
    with_strict_server("play-heartbeat", |addr| async move {
        let config = client::direct_config().heartbeat_interval(Duration::from_millis(200));
        let (connector, tap) = t.connector(config);
        let mut events = tap.subscribe();
        client::join(&connector, addr, t.stage_id(1), "timeout_heartbeat").await?;
        // Idle for more than twice the server's idle timeout: only heartbeats flow.
        let dropped = events.disconnect(IDLE_TIMEOUT * 5 / 2).await.is_ok();
        ensure!(
            !dropped,
            "the idle connection was dropped despite heartbeats"
        );
        ensure!(connector.is_connected(), "is_connected is false");
        let echo: EchoReply = client::request(
            &connector,
            &EchoRequest {
                content: "still here".into(),
                sequence: 1,
            },
        )
        .await?;
        ensure_eq!(echo.content.as_str(), "still here", "echo after idling");
        Ok(())
    })
    .await
}

async fn idle_timeout(t: TestCtx) -> TestResult {
    with_strict_server("play-idle", |addr| async move {
        let config = client::direct_config().heartbeat_interval(Duration::ZERO);
        let (connector, tap) = t.connector(config);
        let mut events = tap.subscribe();
        client::join(&connector, addr, t.stage_id(2), "timeout_idle").await?;
        let started = Instant::now();
        events.disconnect(WAIT).await?;
        let after = started.elapsed();
        ensure!(
            after >= IDLE_TIMEOUT * 3 / 4,
            "closed after {after:?}, before the idle timeout"
        );
        ensure!(!connector.is_connected(), "is_connected is true");
        Ok(())
    })
    .await
}

async fn auth_timeout(t: TestCtx) -> TestResult {
    with_strict_server("play-auth", |addr| async move {
        let (connector, tap) = t.connector(client::direct_config());
        let mut events = tap.subscribe();
        let started = Instant::now();
        client::connect(&connector, addr, t.stage_id(3)).await?;
        // Never authenticates (heartbeats do not count).
        events.disconnect(WAIT).await?;
        let after = started.elapsed();
        ensure!(
            after >= AUTH_TIMEOUT * 3 / 4,
            "closed after {after:?}, before the auth timeout"
        );
        ensure!(!connector.is_connected(), "is_connected is true");
        Ok(())
    })
    .await
}

async fn heartbeat_timeout(t: TestCtx) -> TestResult {
    // A "server" that accepts and then never says anything, not even heartbeat echoes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let silent = tokio::spawn(async move {
        let accepted = listener.accept().await;
        // Hold the socket open until the test ends.
        std::future::pending::<()>().await;
        drop(accepted);
    });
    let config = client::direct_config()
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_timeout(Duration::from_millis(500));
    let (connector, tap) = t.connector(config);
    let mut events = tap.subscribe();
    let result = async {
        client::connect(&connector, addr, t.stage_id(4)).await?;
        let started = Instant::now();
        events.disconnect(WAIT).await?;
        let after = started.elapsed();
        ensure!(
            after >= Duration::from_millis(400),
            "dropped after {after:?}, before the heartbeat timeout"
        );
        ensure!(!connector.is_connected(), "is_connected is true");
        Ok(())
    }
    .await;
    silent.abort();
    result
}
