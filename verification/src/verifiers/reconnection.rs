//! Reconnection: a client whose connection dropped authenticates again as the same account and
//! gets its old actor back; the connection changes are visible to it and to the stage's other
//! clients. Another account gets a new actor; a second login replaces the first connection.

use playhouse_connector::Connector;

use crate::check::TestResult;
use crate::client::{self, ClientEvent, EventTap, Events, WAIT};
use crate::context::TestCtx;
use crate::proto::{
    ActorStateReply, ActorStateRequest, BroadcastNotify, BroadcastTrigger, BroadcastTriggerReply,
    ConnectionChangedNotify, StageStateReply, StageStateRequest,
};
use crate::runner::{Category, TestCase};
use crate::{ensure, ensure_eq};

/// The Reconnection category (stage ids 14000..).
pub(super) fn category() -> Category {
    Category {
        name: "Reconnection",
        base: 14_000,
        tests: vec![
            TestCase::new("Reconnect_SameAccount_SameActor", |t| {
                Box::pin(same_actor(t))
            }),
            TestCase::new("Reconnect_ClientSeesConnectionChanges", |t| {
                Box::pin(client_sees_changes(t))
            }),
            TestCase::new("Reconnect_OtherClientSeesDropAndReturn", |t| {
                Box::pin(observer_sees_changes(t))
            }),
            TestCase::new("Reauthenticate_OtherAccount_NewActor", |t| {
                Box::pin(other_account(t))
            }),
            TestCase::new("Reconnect_PushesResume", |t| Box::pin(pushes_resume(t))),
            TestCase::new("SecondLogin_ReplacesFirstConnection", |t| {
                Box::pin(second_login(t))
            }),
        ],
    }
}

/// A stage with a subject (who drops and returns) and an observer.
struct Room {
    offset: i64,
    subject: Connector,
    subject_tap: EventTap,
    observer: Connector,
    observer_events: Events,
    /// The subject's actor before anything happened.
    actor: ActorStateReply,
}

const OBSERVER: &str = "rc_observer";

async fn room(t: &TestCtx, offset: i64, subject_user: &str) -> Result<Room, String> {
    let (subject, subject_tap) = t.joined(offset, subject_user).await?;
    let (observer, observer_tap) = t.joined(offset, OBSERVER).await?;
    let observer_events = observer_tap.subscribe();
    let actor = client::request(&subject, &ActorStateRequest {}).await?;
    Ok(Room {
        offset,
        subject,
        subject_tap,
        observer,
        observer_events,
        actor,
    })
}

/// The next `ConnectionChangedNotify` about `account_id`.
async fn change_of(
    events: &mut Events,
    account_id: &str,
) -> Result<ConnectionChangedNotify, String> {
    let what = format!("ConnectionChangedNotify for {account_id}");
    let packet = events
        .wait_for(WAIT, &what, |event| match event {
            ClientEvent::Push { packet, .. } if packet.is::<ConnectionChangedNotify>() => {
                let notify = packet.parse::<ConnectionChangedNotify>().ok()?;
                (notify.account_id == account_id).then_some(notify)
            }
            _ => None,
        })
        .await?;
    Ok(packet)
}

impl Room {
    /// Drops the subject's connection and waits until the stage has noticed (the observer
    /// hears about it), so the return is a re-attach and not a replacement.
    async fn drop_subject(&mut self) -> Result<ConnectionChangedNotify, String> {
        self.subject.disconnect().await;
        let notify = change_of(&mut self.observer_events, &self.actor.account_id).await?;
        ensure!(
            !notify.connected,
            "first change after the drop says connected"
        );
        Ok(notify)
    }

    /// Connects the subject again and authenticates as `user`.
    async fn return_as(&self, t: &TestCtx, user: &str) -> TestResult {
        client::join(&self.subject, t.addr(), t.stage_id(self.offset), user).await?;
        Ok(())
    }

    async fn subject_state(&self) -> Result<ActorStateReply, String> {
        client::request(&self.subject, &ActorStateRequest {}).await
    }
}

async fn same_actor(t: TestCtx) -> TestResult {
    let mut room = room(&t, 1, "rc_same").await?;
    room.drop_subject().await?;
    room.return_as(&t, "rc_same").await?;
    let state = room.subject_state().await?;
    ensure_eq!(
        state.actor_instance_id,
        room.actor.actor_instance_id,
        "actor instance after reconnect"
    );
    // The existing actor was re-attached: no second on_create/on_authenticate on it.
    ensure_eq!(
        state.callbacks,
        vec!["on_create", "on_authenticate", "on_post_authenticate"],
        "actor callbacks after reconnect"
    );
    ensure_eq!(
        state.connection_history,
        vec![false, true],
        "connection history"
    );
    Ok(())
}

async fn client_sees_changes(t: TestCtx) -> TestResult {
    let mut room = room(&t, 2, "rc_self").await?;
    room.drop_subject().await?;
    let mut events = room.subject_tap.subscribe();
    room.return_as(&t, "rc_self").await?;
    let back = change_of(&mut events, "rc_self").await?;
    ensure!(
        back.connected,
        "the returning client was told connected = false"
    );
    ensure_eq!(
        back.actor_instance_id,
        room.actor.actor_instance_id,
        "actor in the notification"
    );
    let stage: StageStateReply = client::request(&room.subject, &StageStateRequest {}).await?;
    let changes: Vec<&str> = stage
        .callbacks
        .iter()
        .filter(|c| c.starts_with("on_connection_changed:rc_self"))
        .map(String::as_str)
        .collect();
    ensure_eq!(
        changes,
        vec![
            "on_connection_changed:rc_self:false",
            "on_connection_changed:rc_self:true"
        ],
        "stage connection callbacks"
    );
    let joins = stage
        .callbacks
        .iter()
        .filter(|c| *c == "on_join_stage:rc_self")
        .count();
    ensure_eq!(joins, 1, "on_join_stage calls for the returning account");
    Ok(())
}

async fn observer_sees_changes(t: TestCtx) -> TestResult {
    let mut room = room(&t, 3, "rc_watched").await?;
    let dropped = room.drop_subject().await?;
    ensure_eq!(
        dropped.actor_instance_id,
        room.actor.actor_instance_id,
        "actor in the drop notification"
    );
    room.return_as(&t, "rc_watched").await?;
    let back = change_of(&mut room.observer_events, "rc_watched").await?;
    ensure!(back.connected, "second change is not connected = true");
    ensure_eq!(
        back.actor_instance_id,
        room.actor.actor_instance_id,
        "actor in the return notification"
    );
    ensure!(
        room.observer.is_connected(),
        "the observer lost its connection"
    );
    Ok(())
}

async fn other_account(t: TestCtx) -> TestResult {
    let mut room = room(&t, 4, "rc_first").await?;
    room.drop_subject().await?;
    room.return_as(&t, "rc_second").await?;
    let state = room.subject_state().await?;
    ensure!(
        state.actor_instance_id != room.actor.actor_instance_id,
        "another account got the old actor {}",
        room.actor.actor_instance_id
    );
    ensure_eq!(state.account_id.as_str(), "rc_second", "account id");
    ensure!(
        state.connection_history.is_empty(),
        "the new actor has a connection history: {:?}",
        state.connection_history
    );
    Ok(())
}

async fn pushes_resume(t: TestCtx) -> TestResult {
    let mut room = room(&t, 5, "rc_pushed").await?;
    room.drop_subject().await?;
    room.return_as(&t, "rc_pushed").await?;
    let mut events = room.subject_tap.subscribe();
    let trigger = BroadcastTrigger {
        event_type: "after_return".into(),
        data: String::new(),
        count: 1,
    };
    let _: BroadcastTriggerReply = client::request(&room.observer, &trigger).await?;
    let notify: BroadcastNotify = events.push(WAIT).await?;
    ensure_eq!(
        notify.event_type.as_str(),
        "after_return",
        "push after return"
    );
    ensure_eq!(notify.from_account_id.as_str(), OBSERVER, "push sender");
    Ok(())
}

async fn second_login(t: TestCtx) -> TestResult {
    let room = room(&t, 6, "rc_twice").await?;
    let mut first_events = room.subject_tap.subscribe();
    // Same account, new connection, while the first is still connected.
    let (second, _tap) = t.joined(6, "rc_twice").await?;
    first_events.disconnect(WAIT).await?;
    ensure!(
        !room.subject.is_connected(),
        "the first connection is still up"
    );
    let state: ActorStateReply = client::request(&second, &ActorStateRequest {}).await?;
    ensure_eq!(
        state.actor_instance_id,
        room.actor.actor_instance_id,
        "actor behind the second login"
    );
    Ok(())
}
