//! SelfConnection: a server messages itself through the same mesh path it uses for others
//! (API handler → its own server, a Play server's stage → its own system handlers).

use crate::check::TestResult;
use crate::client;
use crate::context::TestCtx;
use crate::ensure_eq;
use crate::proto::{TriggerRequestToSystemReply, TriggerRequestToSystemRequest};
use crate::runner::{Category, TestCase};
use crate::servers::{API_1, API_2, PLAY_1};
use crate::verifiers::api_to_api::{request_between, send_between};

const USER: &str = "self_user";

/// The SelfConnection category (stage ids 20000..).
pub(super) fn category() -> Category {
    Category {
        name: "SelfConnection",
        base: 20_000,
        tests: vec![
            TestCase::new("SendToApi_Self", |t| Box::pin(send_self(t))),
            TestCase::new("RequestToApi_Self", |t| Box::pin(request_self(t))),
            TestCase::new("PlayServer_RequestsItself", |t| Box::pin(play_self(t))),
        ],
    }
}

async fn send_self(t: TestCtx) -> TestResult {
    send_between(&t, USER, API_1, API_1).await
}

async fn request_self(t: TestCtx) -> TestResult {
    request_between(&t, USER, API_2, API_2).await.map(|_| ())
}

async fn play_self(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: TriggerRequestToSystemReply = client::request(
        &connector,
        &TriggerRequestToSystemRequest {
            server_id: PLAY_1.into(),
            content: "myself".into(),
            fail_code: 0,
            as_regular_message: false,
        },
    )
    .await?;
    ensure_eq!(reply.server_id.as_str(), PLAY_1, "answering server");
    ensure_eq!(reply.content.as_str(), "myself", "content");
    Ok(())
}
