//! SharedServices (the original's DI): stage and actor factories get the server's shared
//! services, the same singleton instance everywhere, and the server's control handle; API
//! handlers get their server's services, control handle and server-info centre the same way,
//! and so do stages (the directory view).

use crate::check::TestResult;
use crate::client;
use crate::context::TestCtx;
use crate::ensure_eq;
use crate::proto::{
    GetApiServerInfoReply, GetApiServerInfoRequest, GetDirectoryReply, GetDirectoryRequest,
    GetServerInfoReply, GetServerInfoRequest, GetServiceValueReply, GetServiceValueRequest,
    IncrementCounterReply, IncrementCounterRequest,
};
use crate::runner::{Category, TestCase};
use crate::servers::{API_1, API_2, API_GREETING, GREETING, PLAY_1, PLAY_2};

const USER: &str = "di_user";

/// The SharedServices category (stage ids 13000..).
pub(super) fn category() -> Category {
    Category {
        name: "SharedServices",
        base: 13_000,
        tests: vec![
            TestCase::new("Stage_GetsService", |t| Box::pin(stage_service(t))),
            TestCase::new("Actor_GetsService", |t| Box::pin(actor_service(t))),
            TestCase::new("Singleton_SameForStageAndActor", |t| {
                Box::pin(same_instance(t))
            }),
            TestCase::new("Singleton_SharedAcrossStages", |t| {
                Box::pin(across_stages(t))
            }),
            TestCase::new("ControlHandle_ServerId", |t| Box::pin(control_handle(t))),
            TestCase::new("ApiHandler_ControlHandleAndService", |t| {
                Box::pin(api_control_handle(t))
            }),
            TestCase::new("ApiHandler_ServerInfoCenter", |t| {
                Box::pin(api_info_center(t))
            }),
            TestCase::new("Stage_ServerInfoCenter", |t| Box::pin(stage_info_center(t))),
        ],
    }
}

fn value_of(source: &str) -> GetServiceValueRequest {
    GetServiceValueRequest {
        source: source.to_owned(),
    }
}

async fn stage_service(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: GetServiceValueReply = client::request(&connector, &value_of("stage")).await?;
    ensure_eq!(reply.source.as_str(), "stage", "source");
    ensure_eq!(
        reply.greeting.as_str(),
        GREETING,
        "greeting seen by the stage"
    );
    Ok(())
}

async fn actor_service(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: GetServiceValueReply = client::request(&connector, &value_of("actor")).await?;
    ensure_eq!(reply.source.as_str(), "actor", "source");
    ensure_eq!(
        reply.greeting.as_str(),
        GREETING,
        "greeting seen by the actor"
    );
    Ok(())
}

async fn same_instance(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let stage: GetServiceValueReply = client::request(&connector, &value_of("stage")).await?;
    let actor: GetServiceValueReply = client::request(&connector, &value_of("actor")).await?;
    ensure_eq!(
        actor.service_instance_id,
        stage.service_instance_id,
        "service instance seen by the actor vs the stage"
    );
    // Another stage's actor sees the same instance too.
    let (other, _tap) = t.joined(2, "di_other").await?;
    let elsewhere: GetServiceValueReply = client::request(&other, &value_of("actor")).await?;
    ensure_eq!(
        elsewhere.service_instance_id,
        stage.service_instance_id,
        "service instance seen in another stage"
    );
    Ok(())
}

async fn across_stages(t: TestCtx) -> TestResult {
    let first = t.shared(1, USER).await?;
    let (second, _tap) = t.joined(3, "di_counter").await?;
    let via = |via: &str| IncrementCounterRequest {
        via: via.to_owned(),
    };
    let a: IncrementCounterReply = client::request(&first, &via("stage")).await?;
    let b: IncrementCounterReply = client::request(&second, &via("actor")).await?;
    let c: IncrementCounterReply = client::request(&first, &via("actor")).await?;
    let d: IncrementCounterReply = client::request(&second, &via("stage")).await?;
    ensure_eq!(
        vec![b.value, c.value, d.value],
        vec![a.value + 1, a.value + 2, a.value + 3],
        "one counter behind every stage and actor"
    );
    Ok(())
}

async fn control_handle(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: GetServerInfoReply = client::request(&connector, &GetServerInfoRequest {}).await?;
    ensure_eq!(
        reply.server_id.as_str(),
        "play-1",
        "server id from the control handle"
    );
    Ok(())
}

/// Every server of the run as `id:type:state`, sorted.
fn everyone() -> Vec<String> {
    let mut all = vec![
        format!("{API_1}:api:running"),
        format!("{API_2}:api:running"),
        format!("{PLAY_1}:play:running"),
        format!("{PLAY_2}:play:running"),
    ];
    all.sort();
    all
}

async fn api_info(t: &TestCtx, api_id: &str) -> Result<GetApiServerInfoReply, String> {
    let connector = t.shared(1, USER).await?;
    client::request(
        &connector,
        &GetApiServerInfoRequest {
            api_id: api_id.into(),
        },
    )
    .await
}

async fn api_control_handle(t: TestCtx) -> TestResult {
    for api_id in [API_1, API_2] {
        let info = api_info(&t, api_id).await?;
        ensure_eq!(
            info.server_id.as_str(),
            api_id,
            "server id from {api_id}'s control handle"
        );
        ensure_eq!(
            info.greeting.as_str(),
            API_GREETING,
            "greeting from {api_id}'s registered service"
        );
    }
    Ok(())
}

async fn api_info_center(t: TestCtx) -> TestResult {
    let info = api_info(&t, API_2).await?;
    ensure_eq!(info.known_servers, everyone(), "api-2's directory view");
    Ok(())
}

async fn stage_info_center(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: GetDirectoryReply = client::request(&connector, &GetDirectoryRequest {}).await?;
    ensure_eq!(reply.known_servers, everyone(), "play-1's directory view");
    Ok(())
}
