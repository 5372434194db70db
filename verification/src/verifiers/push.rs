//! Push: broadcasts reach every client of the stage, in order, tagged with the stage.

use crate::check::TestResult;
use crate::client::{self, ClientEvent, WAIT};
use crate::context::TestCtx;
use crate::ensure_eq;
use crate::proto::{BroadcastNotify, BroadcastTrigger, BroadcastTriggerReply};
use crate::runner::{Category, TestCase};
use crate::servers::TEST_STAGE;

/// The Push category (stage ids 3000..).
pub(super) fn category() -> Category {
    Category {
        name: "Push",
        base: 3000,
        tests: vec![
            TestCase::new("Push_ReachesEveryClient", |t| Box::pin(push_one(t))),
            TestCase::new("Push_OrderPreserved", |t| Box::pin(order_preserved(t))),
            TestCase::new("Push_CarriesStageIdAndType", |t| Box::pin(stage_tagged(t))),
        ],
    }
}

fn trigger(event_type: &str, count: i32) -> BroadcastTrigger {
    BroadcastTrigger {
        event_type: event_type.to_owned(),
        data: format!("{event_type} data"),
        count,
    }
}

async fn push_one(t: TestCtx) -> TestResult {
    let sender = t.shared(1, "push_sender").await?;
    let mut sender_events = t.shared_events();
    let (_listener, listener_tap) = t.joined(1, "push_listener").await?;
    let mut listener_events = listener_tap.subscribe();
    let reply: BroadcastTriggerReply = client::request(&sender, &trigger("push_one", 1)).await?;
    ensure_eq!(reply.pushed, 1, "pushes announced");
    for (who, events) in [
        ("sender", &mut sender_events),
        ("listener", &mut listener_events),
    ] {
        let notify: BroadcastNotify = events.push(WAIT).await.map_err(|e| format!("{who}: {e}"))?;
        ensure_eq!(notify.event_type.as_str(), "push_one", "{who} event_type");
        ensure_eq!(
            notify.from_account_id.as_str(),
            "push_sender",
            "{who} from_account_id"
        );
    }
    Ok(())
}

async fn order_preserved(t: TestCtx) -> TestResult {
    let sender = t.shared(1, "push_sender").await?;
    let mut events = t.shared_events();
    let _: BroadcastTriggerReply = client::request(&sender, &trigger("push_order", 10)).await?;
    let pushes: Vec<BroadcastNotify> = events.pushes(10, WAIT).await?;
    let order: Vec<i32> = pushes.iter().map(|p| p.sequence).collect();
    ensure_eq!(order, (1..=10).collect::<Vec<_>>(), "push order");
    Ok(())
}

async fn stage_tagged(t: TestCtx) -> TestResult {
    let sender = t.shared(1, "push_sender").await?;
    let mut events = t.shared_events();
    let _: BroadcastTriggerReply = client::request(&sender, &trigger("push_tagged", 1)).await?;
    let (stage_id, stage_type) = events
        .wait_for(WAIT, "BroadcastNotify push", |event| match event {
            ClientEvent::Push {
                stage_id,
                stage_type,
                packet,
            } if packet.is::<BroadcastNotify>() => Some((stage_id, stage_type)),
            _ => None,
        })
        .await?;
    ensure_eq!(stage_id, t.stage_id(1), "push stage id");
    ensure_eq!(stage_type.as_str(), TEST_STAGE, "push stage type");
    Ok(())
}
