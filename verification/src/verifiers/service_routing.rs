//! ServiceRouting: a stage sends to and requests *a service* (both API servers share service
//! id 2, api-1 with weight 100, api-2 with 300) with round-robin and weighted routing, awaited
//! and with callbacks. The client sees which server answered each request.

use playhouse::ErrorCode;

use crate::check::TestResult;
use crate::client::{self, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    ServerToStageNotify, TriggerServiceReply, TriggerServiceRequest, TriggerServiceSendReply,
    TriggerServiceSendRequest,
};
use crate::runner::{Category, TestCase};
use crate::servers::{API_1, API_2, API_SERVICE};
use crate::{ensure, ensure_eq};

const USER: &str = "routing_user";

/// The ServiceRouting category (stage ids 21000..).
pub(super) fn category() -> Category {
    Category {
        name: "ServiceRouting",
        base: 21_000,
        tests: vec![
            TestCase::new("RoundRobin_Alternates", |t| Box::pin(round_robin(t))),
            TestCase::new("Weighted_FollowsWeights", |t| Box::pin(weighted(t))),
            TestCase::new("SendToService_ReachesEveryServer", |t| Box::pin(send(t))),
            TestCase::new("RequestToService_Callback", |t| Box::pin(callback(t))),
            TestCase::new("UnknownService_ServerNotFound", |t| {
                Box::pin(unknown_service(t))
            }),
        ],
    }
}

fn service_request(policy: &str, count: i32, use_callback: bool) -> TriggerServiceRequest {
    TriggerServiceRequest {
        service_id: u32::from(API_SERVICE),
        policy: policy.into(),
        count,
        use_callback,
    }
}

fn count_of(responders: &[String], server: &str) -> usize {
    responders.iter().filter(|r| *r == server).count()
}

/// Every responder is an API server of the service and no two in a row are the same.
fn check_alternating(responders: &[String], expected: usize) -> TestResult {
    ensure_eq!(responders.len(), expected, "answers");
    for responder in responders {
        ensure!(
            responder == API_1 || responder == API_2,
            "unexpected responder {responder:?} in {responders:?}"
        );
    }
    ensure!(
        responders.windows(2).all(|pair| pair[0] != pair[1]),
        "round robin did not alternate: {responders:?}"
    );
    ensure_eq!(
        count_of(responders, API_1),
        expected / 2,
        "api-1's share of {responders:?}"
    );
    Ok(())
}

async fn round_robin(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: TriggerServiceReply =
        client::request(&connector, &service_request("round_robin", 6, false)).await?;
    check_alternating(&reply.responders, 6)
}

async fn weighted(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: TriggerServiceReply =
        client::request(&connector, &service_request("weighted", 40, false)).await?;
    ensure_eq!(reply.responders.len(), 40, "answers");
    let (light, heavy) = (
        count_of(&reply.responders, API_1),
        count_of(&reply.responders, API_2),
    );
    ensure_eq!(light + heavy, 40, "answers from the service's servers");
    // Weights 100 : 300, so about 10 : 30.
    ensure!(
        light >= 1 && heavy >= 2 * light,
        "api-1 (weight 100) answered {light}, api-2 (weight 300) {heavy}"
    );
    Ok(())
}

async fn send(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let mut events = t.shared_events();
    let reply: TriggerServiceSendReply = client::request(
        &connector,
        &TriggerServiceSendRequest {
            service_id: u32::from(API_SERVICE),
            policy: "round_robin".into(),
            count: 4,
            tag: "routing-send".into(),
        },
    )
    .await?;
    ensure_eq!(reply.sent, 4, "sends accepted");
    let mut receivers = Vec::new();
    for _ in 0..4 {
        let report: ServerToStageNotify = events
            .push_where(WAIT, |n: &ServerToStageNotify| n.tag == "routing-send")
            .await?;
        receivers.push(report.sender_server_id);
    }
    receivers.sort();
    ensure_eq!(
        receivers,
        vec![API_1, API_1, API_2, API_2],
        "servers that received the sends"
    );
    Ok(())
}

async fn callback(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let reply: TriggerServiceReply =
        client::request(&connector, &service_request("round_robin", 4, true)).await?;
    ensure!(
        reply.answered_from_callback,
        "not answered from a request callback on the stage loop"
    );
    check_alternating(&reply.responders, 4)
}

async fn unknown_service(t: TestCtx) -> TestResult {
    let connector = t.shared(1, USER).await?;
    let request = TriggerServiceRequest {
        service_id: 42,
        ..service_request("weighted", 1, false)
    };
    client::request_fails(&connector, &request, ErrorCode::SERVER_NOT_FOUND).await
}
