//! Handing pushes to the application: to its [`Pushes`](crate::pushes::Pushes) receiver when
//! one is taken, else to `on_receive`. A full receiver stalls reading (the event loop reads no
//! frame while [`Task::stalled`] holds a push) instead of dropping or buffering without bound.

use std::sync::Arc;

use tokio::sync::mpsc::{self, OwnedPermit};

use super::task::Task;
use crate::callbacks::{Callbacks, Event};
use crate::pushes::{Offer, Push, PushRoute, Stalled};

fn to_on_receive(callbacks: &Callbacks, push: Push) {
    callbacks.emit(Event::Receive {
        stage_id: push.stage_id,
        stage_type: push.stage_type,
        packet: push.packet,
    });
}

/// Room for the stalled push (`None`: its receiver was dropped); never ready without one.
pub(super) async fn room_for_push(sender: Option<mpsc::Sender<Push>>) -> Option<OwnedPermit<Push>> {
    match sender {
        Some(sender) => sender.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

impl Task {
    pub(super) fn deliver_push(&mut self, push: Push) {
        match self.pushes.offer(push) {
            Offer::Delivered => {}
            Offer::Full(stalled) => self.stalled = Some(stalled),
            Offer::NoReceiver(push) => to_on_receive(&self.callbacks, push),
        }
    }

    /// The sender the stalled push waits on, for [`room_for_push`].
    pub(super) fn stalled_sender(&self) -> Option<mpsc::Sender<Push>> {
        self.stalled.as_ref().map(|stalled| stalled.sender.clone())
    }

    /// The receiver made room (`Some`) or was dropped (`None`: the push goes where pushes go
    /// now); reading resumes unless it stalls again.
    pub(super) fn on_push_room(&mut self, permit: Option<OwnedPermit<Push>>) {
        let Some(Stalled { push, .. }) = self.stalled.take() else {
            return;
        };
        match permit {
            Some(permit) => {
                permit.send(push);
            }
            None => self.deliver_push(push),
        }
    }

    /// As the connection ends: a stalled push is still delivered, on a task of its own (the
    /// application may be waiting for the disconnect before it reads again).
    pub(super) fn release_stalled(&mut self) {
        let Some(Stalled { push, sender }) = self.stalled.take() else {
            return;
        };
        let (route, callbacks) = (Arc::clone(&self.pushes), Arc::clone(&self.callbacks));
        drop(tokio::spawn(deliver_later(route, callbacks, push, sender)));
    }
}

async fn deliver_later(
    route: Arc<PushRoute>,
    callbacks: Arc<Callbacks>,
    mut push: Push,
    mut sender: mpsc::Sender<Push>,
) {
    loop {
        let Err(mpsc::error::SendError(unsent)) = sender.send(push).await else {
            return;
        };
        match route.offer(unsent) {
            Offer::Delivered => return,
            Offer::Full(again) => (push, sender) = (again.push, again.sender),
            Offer::NoReceiver(unsent) => return to_on_receive(&callbacks, unsent),
        }
    }
}
