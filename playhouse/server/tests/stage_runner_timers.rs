//! Black-box tests of the stage runner's clocks, on a paused clock: a due timer before the
//! queued messages, a game loop that keeps to its step grid after a late wake.

mod support;

use std::sync::Arc;
use std::time::Duration;

use playhouse::{ActorCell, ErrorCode, Packet, PlayServerBuilder, Stage, StageContext};
use support::RawClient;
use support::player::Player;
use support::serve::{in_memory, one_stage_type};
use tokio::io::DuplexStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The game loop's step.
const STEP: Duration = Duration::from_millis(100);

/// A stage with a timer and a game loop, and a way to hold its loop: "StartTimer" starts a
/// one-shot timer 100 ms out that counts its firing, "Fired" answers that count, "StartLoop"
/// starts a game loop of [`STEP`]s that broadcasts each tick's number as "Tick", and "Hold"
/// blocks the stage until `release`.
struct Clockwork {
    release: Arc<Notify>,
    fired: u32,
}

impl Stage for Clockwork {
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
        ctx: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "StartTimer" => {
                ctx.add_count_timer(
                    Duration::from_millis(100),
                    Duration::from_millis(100),
                    1,
                    |stage: &mut Clockwork, _| stage.fired += 1,
                );
            }
            "Fired" => actor
                .link
                .reply(Packet::new("Fired", self.fired.to_string())),
            "StartLoop" => ctx.start_game_loop(STEP, |_, ctx, tick| {
                ctx.broadcast(Packet::new("Tick", tick.tick.to_string()));
            }),
            "Hold" => self.release.notified().await,
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

fn clockworks(release: &Arc<Notify>) -> PlayServerBuilder {
    let release = Arc::clone(release);
    one_stage_type(
        "Clockwork",
        move |_| Clockwork {
            release: Arc::clone(&release),
            fired: 0,
        },
        |_| Player::default(),
    )
}

#[tokio::test(start_paused = true)]
async fn due_timers_run_before_the_rest_of_a_mailbox_batch() {
    let release: Arc<Notify> = Arc::default();
    let server = clockworks(&release).build().expect("build");
    let mut client = in_memory(&server, 30);
    assert!(client.authenticate("timed").await.is_success());
    // A one-shot timer 100 ms out, then the stage held past it with requests queued behind.
    client.send("StartTimer", b"").await;
    client.send("Hold", b"").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(client.request_nowait("Fired", b"").await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    release.notify_one();
    for seq in seqs {
        let reply = client.recv().await.expect("an answer");
        assert_eq!(reply.msg_seq, seq);
        assert_eq!(&reply.payload[..], b"1", "the due timer ran first");
    }
}

#[tokio::test(start_paused = true)]
async fn after_a_late_wake_the_game_loop_keeps_to_its_step_grid() {
    /// The next frame, a game-loop tick: its number and when it arrived.
    async fn tick(client: &mut RawClient<DuplexStream>) -> (String, Instant) {
        let frame = client.recv().await.expect("a tick");
        assert_eq!(frame.msg_id, "Tick");
        let number = String::from_utf8(frame.payload.to_vec()).unwrap();
        (number, Instant::now())
    }
    let release: Arc<Notify> = Arc::default();
    let server = clockworks(&release).build().expect("build");
    let mut client = in_memory(&server, 31);
    assert!(client.authenticate("looper").await.is_success());
    let started = Instant::now();
    client.send("StartLoop", b"").await;
    let (first, first_at) = tick(&mut client).await;
    assert_eq!((first.as_str(), first_at - started), ("1", STEP));
    // The stage is held past its next step: that wake comes half a step late.
    client.send("Hold", b"").await;
    tokio::time::sleep(STEP * 3 / 2).await;
    release.notify_one();
    let (second, second_at) = tick(&mut client).await;
    assert_eq!((second.as_str(), second_at - first_at), ("2", STEP * 3 / 2));
    // The step after a late one comes on time, not a step after the late wake.
    let (third, third_at) = tick(&mut client).await;
    assert_eq!((third.as_str(), third_at - first_at), ("3", STEP * 2));
    let (fourth, fourth_at) = tick(&mut client).await;
    assert_eq!((fourth.as_str(), fourth_at - first_at), ("4", STEP * 3));
}
