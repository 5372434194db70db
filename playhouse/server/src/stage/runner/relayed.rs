//! A relayed client's message at the stage loop: handled in its home's order (see
//! `stage::relay_order`), or kept until its turn.

use tokio::time::Instant;

use super::StageRunner;
use crate::session::handle::SessionId;
use crate::stage::model::Stage;
use crate::stage::relay_order::{Relayed, Turn};

impl<S: Stage> StageRunner<S> {
    /// A relayed client's message numbered `order` (by its home; never 0).
    pub(super) async fn relayed(&mut self, session: SessionId, order: u64, message: Relayed) {
        match self.relay_order.arrive(session, order) {
            Turn::Now => {
                self.dispatch_relayed(session, message).await;
                self.take_ready(session).await;
            }
            Turn::Waits => {
                self.relay_order.wait(session, order, message);
                self.take_ready(session).await; // when waiting too many gave the gap up
            }
            Turn::Repeat => {}
        }
    }

    /// Handles session `session`'s waiting messages whose turn has come.
    async fn take_ready(&mut self, session: SessionId) {
        while let Some(message) = self.relay_order.ready(session) {
            self.dispatch_relayed(session, message).await;
        }
    }

    /// Gives up the gaps open too long, handling what waited behind them.
    pub(super) async fn release_overdue(&mut self) {
        for session in self.relay_order.give_up_overdue(Instant::now()) {
            self.take_ready(session).await;
        }
    }

    async fn dispatch_relayed(&mut self, session: SessionId, message: Relayed) {
        let Relayed {
            actor,
            seq,
            packet,
            queued,
        } = message;
        self.dispatch(actor, session, seq, packet, queued).await;
    }
}

#[cfg(test)]
mod tests {
    use playhouse_protocol::Packet;
    use tokio::time::Instant;

    use crate::stage::relay_order::{GAP_WAIT, MAX_WAITING};
    use crate::testing::{EchoActor, EchoStage, HarnessClient, StageHarness};

    async fn alice() -> (StageHarness, HarnessClient) {
        let stage = StageHarness::start("Echo", |_| EchoStage, |_| EchoActor, Packet::empty("C"))
            .await
            .unwrap();
        let alice = stage.join(Packet::new("Auth", "alice")).await.unwrap();
        (stage, alice)
    }

    /// Relays message number `order` as request `seq = order`, its payload the number.
    fn relay(client: &HarnessClient, order: u64) {
        let packet = Packet::new("Echo", order.to_string());
        let seq = u16::try_from(order).unwrap();
        client.relayed(seq, packet, order).unwrap();
    }

    /// The sequences of the next `n` replies, in the order the stage handled them.
    async fn handled(client: &mut HarnessClient, n: usize) -> Vec<u16> {
        let mut seqs = Vec::new();
        for _ in 0..n {
            seqs.push(client.frame().await.unwrap().msg_seq);
        }
        seqs
    }

    #[tokio::test(start_paused = true)]
    async fn relayed_messages_are_handled_in_their_homes_order() {
        let (_stage, mut alice) = alice().await;
        // 3 and 2 took a faster way than 1.
        relay(&alice, 3);
        relay(&alice, 2);
        relay(&alice, 1);
        relay(&alice, 4);
        assert_eq!(handled(&mut alice, 4).await, [1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeated_message_is_handled_once() {
        let (_stage, mut alice) = alice().await;
        relay(&alice, 1);
        relay(&alice, 1);
        relay(&alice, 3);
        relay(&alice, 3);
        relay(&alice, 2);
        assert_eq!(handled(&mut alice, 3).await, [1, 2, 3]);
        relay(&alice, 4);
        assert_eq!(
            handled(&mut alice, 1).await,
            [4],
            "the repeats were dropped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_message_is_waited_for_until_the_gap_wait() {
        let (_stage, mut alice) = alice().await;
        relay(&alice, 1);
        assert_eq!(handled(&mut alice, 1).await, [1]);
        let start = Instant::now();
        relay(&alice, 3); // 2 never comes
        relay(&alice, 4);
        assert_eq!(handled(&mut alice, 2).await, [3, 4]);
        assert!(start.elapsed() >= GAP_WAIT, "waited {:?}", start.elapsed());
        relay(&alice, 2);
        relay(&alice, 5);
        assert_eq!(handled(&mut alice, 1).await, [5], "2 came too late");
    }

    #[tokio::test(start_paused = true)]
    async fn too_many_waiting_give_the_gap_up_at_once() {
        let (_stage, mut alice) = alice().await;
        let start = Instant::now();
        let last = MAX_WAITING as u64 + 2;
        for order in 2..=last {
            relay(&alice, order);
        }
        let seqs = handled(&mut alice, MAX_WAITING + 1).await;
        assert_eq!(seqs.first(), Some(&2));
        assert_eq!(seqs.last(), Some(&u16::try_from(last).unwrap()));
        assert!(start.elapsed() < GAP_WAIT, "waited {:?}", start.elapsed());
    }
}
