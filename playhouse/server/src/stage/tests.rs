//! The stage loop in memory: no sockets, a paused clock, so timings are exact.

use std::sync::Arc;
use std::time::Duration;

use playhouse_protocol::{ErrorCode, Packet, ServerFrame};
use tokio::time::Instant;

use super::actor::{ActorCell, ActorLink};
use super::context::StageContext;
use super::model::{Actor, Stage};
use super::timer::TimerId;
use crate::reply::ErrorReply;
use crate::session::handle::Outbound;
use crate::testing::{HarnessClient, StageHarness};

struct Probe;
struct ProbeActor;

fn push(ctx: &StageContext<Probe>, text: String) {
    ctx.broadcast(Packet::new("Push", text));
}

impl Stage for Probe {
    type Actor = ProbeActor;

    async fn on_create(
        &mut self,
        _: &mut StageContext<Self>,
        _: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_dispatch(
        &mut self,
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<ProbeActor>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "Loop" => ctx.start_game_loop(Duration::from_millis(10), |_, ctx, tick| {
                push(
                    ctx,
                    format!(
                        "tick {} {} {}",
                        tick.tick,
                        tick.delta.as_millis(),
                        tick.total.as_millis()
                    ),
                );
                if tick.tick == 12 {
                    ctx.stop_game_loop();
                }
            }),
            "Broadcast" => push(ctx, "all".into()),
            "Stall" => tokio::time::sleep(Duration::from_millis(100)).await,
            "Count" => {
                ctx.add_count_timer(
                    Duration::from_millis(5),
                    Duration::from_millis(20),
                    3,
                    |_, ctx| {
                        push(ctx, "count".into());
                    },
                );
            }
            "Repeat" => {
                let id =
                    ctx.add_repeat_timer(Duration::ZERO, Duration::from_millis(10), |_, ctx| {
                        push(ctx, "repeat".into());
                    });
                actor.link.reply(Packet::new("Timer", id.get().to_string()));
            }
            "Cancel" => {
                let id = TimerId(String::from_utf8_lossy(&packet.payload).parse().unwrap());
                let cancelled = ctx.cancel_timer(id);
                let still = ctx.has_timer(id);
                actor
                    .link
                    .reply(Packet::new("Cancelled", format!("{cancelled} {still}")));
            }
            "Async" => {
                let target = actor.link.reply_target().unwrap();
                ctx.async_block(
                    async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        21
                    },
                    move |_, ctx, value: i32| {
                        push(ctx, format!("post {}", value * 2));
                        target.reply(Packet::empty("AsyncDone"));
                    },
                );
                push(ctx, "pre started".into());
            }
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

impl Actor for ProbeActor {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        // The login's payload names the account ("probe" if empty).
        let name = String::from_utf8_lossy(&packet.payload);
        link.set_account_id(if name.is_empty() { "probe" } else { &*name });
        Ok(Packet::empty("Ok"))
    }
}

/// The public in-memory harness, plus shortcuts for these tests.
struct Harness {
    client: HarnessClient,
    _stage: StageHarness,
}

impl Harness {
    async fn start() -> Harness {
        let stage =
            StageHarness::start("Probe", |_| Probe, |_| ProbeActor, Packet::empty("Create"))
                .await
                .expect("created");
        let client = stage.join(Packet::empty("Auth")).await.expect("joined");
        Harness {
            client,
            _stage: stage,
        }
    }

    /// Sends `msg_id` as a request with sequence `seq` (0: one-way).
    async fn send(&mut self, msg_id: &'static str, seq: u16, payload: &str) {
        let packet = Packet::new(msg_id, payload.to_owned());
        if seq == 0 {
            self.client.send(packet).await.unwrap();
        } else {
            self.client.request_with_seq(seq, packet).await.unwrap();
        }
    }

    async fn frame(&mut self) -> ServerFrame {
        self.client.frame().await.expect("stage dropped the client")
    }

    async fn text(&mut self) -> (String, Instant) {
        let frame = self.frame().await;
        (
            String::from_utf8(frame.payload.to_vec()).unwrap(),
            Instant::now(),
        )
    }
}

#[tokio::test(start_paused = true)]
async fn game_loop_ticks_at_fixed_steps_and_stops() {
    let mut h = Harness::start().await;
    let start = Instant::now();
    h.send("Loop", 0, "").await;
    for n in 1..=12u64 {
        let (text, at) = h.text().await;
        assert_eq!(text, format!("tick {n} 10 {}", n * 10));
        assert_eq!(
            at - start,
            Duration::from_millis(n * 10),
            "tick {n} on time"
        );
    }
    // Stopped from inside the callback at tick 12: nothing more arrives.
    h.send("Repeat", 5, "").await;
    assert_eq!(h.frame().await.msg_id, "Timer");
}

#[tokio::test(start_paused = true)]
async fn game_loop_catches_up_at_most_five_steps_after_a_stall() {
    let mut h = Harness::start().await;
    h.send("Loop", 0, "").await;
    let (first, t1) = h.text().await;
    assert_eq!(first, "tick 1 10 10");
    // Block the stage for 100 ms: 10 steps are due, only 5 run at once, the rest is dropped.
    h.send("Stall", 0, "").await;
    let mut burst = Vec::new();
    for _ in 0..5 {
        burst.push(h.text().await);
    }
    let burst_at = burst[0].1;
    assert!(
        burst.iter().all(|(_, at)| *at == burst_at),
        "catch-up runs in one wake-up"
    );
    assert_eq!(burst_at - t1, Duration::from_millis(100));
    let ticks: Vec<_> = burst.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!(
        ticks,
        (2..=6)
            .map(|n| format!("tick {n} 10 {}", n * 10))
            .collect::<Vec<_>>()
    );
    let (next, at) = h.text().await;
    assert_eq!(next, "tick 7 10 70");
    assert_eq!(
        at - burst_at,
        Duration::from_millis(10),
        "backlog dropped, cadence resumes"
    );
}

#[tokio::test(start_paused = true)]
async fn count_timer_fires_exactly_count_times() {
    let mut h = Harness::start().await;
    let start = Instant::now();
    h.send("Count", 0, "").await;
    for expected in [5, 25, 45] {
        let (text, at) = h.text().await;
        assert_eq!(text, "count");
        assert_eq!(at - start, Duration::from_millis(expected));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.send("Repeat", 9, "").await;
    assert_eq!(
        h.frame().await.msg_id,
        "Timer",
        "no fourth count tick before this reply"
    );
}

#[tokio::test(start_paused = true)]
async fn repeat_timer_runs_until_cancelled() {
    let mut h = Harness::start().await;
    h.send("Repeat", 2, "").await;
    let frame = h.frame().await;
    assert_eq!(frame.msg_seq, 2);
    let id = String::from_utf8(frame.payload.to_vec()).unwrap();
    for _ in 0..3 {
        assert_eq!(h.text().await.0, "repeat");
    }
    h.send("Cancel", 3, &id).await;
    loop {
        let frame = h.frame().await;
        if frame.msg_id == "Cancelled" {
            assert_eq!(frame.payload, "true false");
            break;
        }
    }
    h.send("Cancel", 4, &id).await;
    let again = h.frame().await;
    assert_eq!(
        again.payload, "false false",
        "no tick after the cancel reply"
    );
}

#[tokio::test(start_paused = true)]
async fn async_block_runs_pre_off_the_loop_and_post_on_it() {
    let mut h = Harness::start().await;
    let start = Instant::now();
    h.send("Async", 7, "").await;
    assert_eq!(h.text().await.0, "pre started");
    // While `pre` sleeps the loop keeps serving.
    h.send("Nope", 8, "").await;
    let busy = h.frame().await;
    assert_eq!(
        (busy.msg_seq, busy.error_code),
        (8, ErrorCode::HANDLER_NOT_FOUND)
    );
    assert_eq!(Instant::now() - start, Duration::ZERO);
    let (post, at) = h.text().await;
    assert_eq!(post, "post 42");
    assert_eq!(at - start, Duration::from_millis(50));
    let reply = h.frame().await;
    assert_eq!((reply.msg_id.as_ref(), reply.msg_seq), ("AsyncDone", 7));
}

/// A broadcast is one frame shared by every client's queue (written in the encoding the first
/// connection of each kind made: see `SharedFrame`), not a copy per client.
#[tokio::test(start_paused = true)]
async fn a_broadcast_is_one_shared_frame_for_every_client() {
    let stage = StageHarness::start("Probe", |_| Probe, |_| ProbeActor, Packet::empty("Create"))
        .await
        .expect("created");
    let mut ann = stage.join(Packet::new("Auth", "ann")).await.expect("ann");
    let mut bob = stage.join(Packet::new("Auth", "bob")).await.expect("bob");
    ann.send(Packet::empty("Broadcast")).await.unwrap();
    let (Some(Outbound::Shared(to_ann)), Some(Outbound::Shared(to_bob))) =
        (ann.outbound().await, bob.outbound().await)
    else {
        panic!("each client is queued a shared frame");
    };
    assert!(Arc::ptr_eq(&to_ann, &to_bob), "the same frame");
    assert_eq!(&*to_ann.frame().msg_id, "Push");
}
