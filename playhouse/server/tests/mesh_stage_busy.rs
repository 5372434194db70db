//! A stage whose mailbox is full, flooded over the mesh (real sockets: TCP link, in-memory
//! directory). The mesh path never queues on the side: a request the stage cannot take is
//! answered at once with `STAGE_BUSY`, a one-way message is dropped and counted, what the stage
//! takes keeps each sender's order, no task is spawned per message, and the server's other
//! stages keep answering.

use std::future::{Future, poll_fn};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use playhouse::{
    Actor, ActorCell, ActorLink, ApiServer, ErrorCode, ErrorReply, MemoryDirectory, MeshError,
    MeshJoin, Packet, PlayServer, Stage, StageContext,
};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// Mailbox capacity of every stage in these tests.
const CAPACITY: usize = 4;
/// The gated stage and the healthy one on the same server.
const GATED: i64 = 1;
const HEALTHY: i64 = 2;
const SLOW: i64 = 3;

/// What the stages saw, in order: (stage id, payload).
type Log = Arc<Mutex<Vec<(i64, String)>>>;

/// `Seq` reports its arrival, waits for a permit of the shared gate, then logs its payload and
/// echoes it (`SeqClose` also closes the stage then); `Slow` takes a millisecond, logs and
/// echoes; `Ping` answers at once.
struct Gated {
    gate: Arc<Semaphore>,
    arrived: mpsc::UnboundedSender<String>,
    log: Log,
}

struct Nobody;

impl Stage for Gated {
    type Actor = Nobody;

    async fn on_create(
        &mut self,
        _ctx: &mut StageContext<Self>,
        _packet: Packet,
    ) -> Result<Packet, ErrorCode> {
        Ok(Packet::empty("Created"))
    }

    async fn on_dispatch(
        &mut self,
        _ctx: &mut StageContext<Self>,
        _actor: &mut ActorCell<Nobody>,
        _packet: Packet,
    ) {
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        match &*packet.msg_id {
            "Seq" | "SeqClose" => {
                let text = String::from_utf8_lossy(&packet.payload).into_owned();
                let _ = self.arrived.send(text);
                if let Ok(permit) = self.gate.acquire().await {
                    permit.forget();
                }
            }
            "Slow" => tokio::time::sleep(Duration::from_millis(1)).await,
            "Ping" => return ctx.reply(Packet::new("Pong", packet.payload)),
            _ => return ctx.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
        let text = String::from_utf8_lossy(&packet.payload).into_owned();
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((ctx.stage_id(), text));
        if packet.msg_id == "SeqClose" {
            ctx.close_stage();
        }
        ctx.reply(Packet::new("Done", packet.payload));
    }
}

impl Actor for Nobody {
    async fn on_authenticate(
        &mut self,
        _link: &mut ActorLink,
        _packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        Err(ErrorReply::from(ErrorCode::AUTHENTICATION_FAILED))
    }
}

fn join(directory: &MemoryDirectory) -> MeshJoin {
    MeshJoin::memory("127.0.0.1:0", directory).refresh_interval(Duration::from_millis(50))
}

struct Cluster {
    play: PlayServer,
    apis: Vec<ApiServer>,
    gate: Arc<Semaphore>,
    /// `Seq` messages as the stage takes them out of its mailbox.
    arrived: mpsc::UnboundedReceiver<String>,
    log: Log,
}

impl Cluster {
    async fn start() -> Cluster {
        let directory = MemoryDirectory::new();
        let gate = Arc::new(Semaphore::new(0));
        let log: Log = Arc::default();
        let (arrived_tx, arrived) = mpsc::unbounded_channel();
        let (stage_gate, stage_log) = (Arc::clone(&gate), Arc::clone(&log));
        let play = PlayServer::builder()
            .server_id("play-1")
            .configure(|config| config.stage_mailbox_capacity = CAPACITY)
            .stage(
                "Gated",
                move |_| Gated {
                    gate: Arc::clone(&stage_gate),
                    arrived: arrived_tx.clone(),
                    log: Arc::clone(&stage_log),
                },
                |_| Nobody,
            )
            .build()
            .unwrap();
        play.join_mesh(join(&directory)).await.unwrap();
        let mut apis = Vec::new();
        for id in ["api-1", "api-2"] {
            let api = ApiServer::builder()
                .server_id(id)
                .start(join(&directory))
                .await
                .unwrap();
            apis.push(api);
        }
        let cluster = Cluster {
            play,
            apis,
            gate,
            arrived,
            log,
        };
        for api in &cluster.apis {
            cluster.settle(api).await;
        }
        for stage in [GATED, HEALTHY, SLOW] {
            cluster.apis[0]
                .sender()
                .create_stage("play-1", "Gated", stage, Packet::empty("Make"))
                .await
                .unwrap();
        }
        cluster
    }

    /// Waits until `api` reaches the Play server (connections follow directory refreshes).
    async fn settle(&self, api: &ApiServer) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = api
                .sender()
                .request_to_system("play-1", Packet::empty("Status"))
                .await;
            if !matches!(probe, Err(MeshError::ServerNotFound(_))) {
                return;
            }
            assert!(Instant::now() < deadline, "play-1 never reachable");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn logged(&self, stage: i64) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(id, _)| *id == stage)
            .map(|(_, text)| text.clone())
            .collect()
    }

    /// The value of `playhouse_stage_busy_total{kind}`.
    fn busy_metric(&self, kind: &str) -> u64 {
        let prefix = format!("playhouse_stage_busy_total{{server=\"play-1\",kind=\"{kind}\"}} ");
        let metrics = self.play.metrics();
        let line = metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"));
        line.parse().unwrap()
    }

    /// A healthy stage on the same server answers, quickly.
    async fn healthy_answers(&self) {
        let started = Instant::now();
        let pong = tokio::time::timeout(
            Duration::from_secs(2),
            self.apis[1].sender().request_to_stage(
                "play-1",
                HEALTHY,
                Packet::new("Ping", "still here"),
            ),
        )
        .await
        .expect("the healthy stage must answer while another stage is flooded")
        .unwrap();
        assert_eq!(pong.payload, "still here");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

/// One finished request of a flood: its index, its outcome and when it ended.
type Finished = (usize, Result<Packet, MeshError>, Instant);

/// Sends `count` requests `msg_id` with payloads `{tag}:{i}` to `stage`, strictly in order,
/// `batch` at a time with a `pause` between batches (no pause: all at once), reporting each
/// request as it ends. One task drives them all.
fn flood(
    api: &ApiServer,
    stage: i64,
    msg_id: &'static str,
    tag: &str,
    count: usize,
    (batch, pause): (usize, Duration),
) -> mpsc::UnboundedReceiver<Finished> {
    let (done_tx, done) = mpsc::unbounded_channel();
    let sender = api.sender();
    let tag = tag.to_owned();
    tokio::spawn(async move {
        let mut pending = FuturesUnordered::new();
        for i in 0..count {
            let request =
                sender.request_to_stage("play-1", stage, Packet::new(msg_id, format!("{tag}:{i}")));
            let done_tx = done_tx.clone();
            let mut request = Box::pin(async move {
                let result = request.await;
                let _ = done_tx.send((i, result, Instant::now()));
            });
            // A request is written to the mesh when first polled: poll it now, so the
            // requests leave in order.
            let first = poll_fn(|cx| Poll::Ready(request.as_mut().poll(cx))).await;
            if first.is_pending() {
                pending.push(request);
            }
            if !pause.is_zero() && (i + 1) % batch == 0 {
                tokio::time::sleep(pause).await;
            }
        }
        while pending.next().await.is_some() {}
    });
    done
}

/// All at once.
const BURST: (usize, Duration) = (usize::MAX, Duration::ZERO);

fn is_busy(result: &Result<Packet, MeshError>) -> bool {
    matches!(result, Err(error) if error.code() == ErrorCode::STAGE_BUSY)
}

#[tokio::test]
async fn a_full_stage_mailbox_refuses_mesh_messages_at_once_and_in_order() {
    let mut cluster = Cluster::start().await;
    cluster.healthy_answers().await;
    let api = &cluster.apis[0];

    // The gated stage takes a first `Seq` and blocks on it: its mailbox is empty and stays
    // unserved.
    let mut held = flood(api, GATED, "Seq", "hold", 1, BURST);
    assert_eq!(cluster.arrived.recv().await.as_deref(), Some("hold:0"));
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();

    // The mailbox takes CAPACITY more; everything beyond is refused with STAGE_BUSY at once,
    // while the stage is still blocked.
    const FLOOD: usize = 200;
    let started = Instant::now();
    let mut done = flood(api, GATED, "Seq", "api-1", FLOOD, BURST);
    let mut busy = Vec::new();
    while busy.len() < FLOOD - CAPACITY {
        let (i, result, at) = tokio::time::timeout(Duration::from_secs(5), done.recv())
            .await
            .expect("refusals must arrive at once, not at the 30 s request timeout")
            .unwrap();
        assert!(
            is_busy(&result),
            "request {i} ended while the stage was blocked: {result:?}"
        );
        assert!(
            at - started < Duration::from_secs(3),
            "request {i} refused late"
        );
        busy.push(i);
    }
    // The first CAPACITY (in sending order) were taken, the rest refused.
    busy.sort_unstable();
    assert_eq!(busy, (CAPACITY..FLOOD).collect::<Vec<_>>());
    // No task per refused message (the old code parked one per message on the mailbox).
    let tasks_now = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert!(
        tasks_now < tasks_before + 20,
        "tasks grew from {tasks_before} to {tasks_now} with a flood of {FLOOD}"
    );
    assert_eq!(cluster.busy_metric("request"), (FLOOD - CAPACITY) as u64);
    cluster.healthy_answers().await;

    // One-way messages to the full stage are dropped and counted.
    for i in 0..50 {
        api.sender()
            .send_to_stage("play-1", GATED, Packet::new("Seq", format!("send:{i}")))
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.busy_metric("send") < 50 {
        assert!(Instant::now() < deadline, "dropped sends not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cluster.busy_metric("send"), 50);
    cluster.healthy_answers().await;

    // Destroying the full stage is refused the same way (no task parked on its mailbox).
    let destroyed = api.sender().destroy_stage("play-1", GATED).await;
    assert!(
        matches!(&destroyed, Err(error) if error.code() == ErrorCode::STAGE_BUSY),
        "{destroyed:?}"
    );

    // Released, the stage handles exactly what it took, in the order it was sent.
    cluster.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let held = held.recv().await.unwrap();
    assert_eq!(held.1.unwrap().payload, "hold:0");
    let mut completed = Vec::new();
    for _ in 0..CAPACITY {
        let (i, result, _) = tokio::time::timeout(Duration::from_secs(5), done.recv())
            .await
            .expect("accepted requests complete once the stage is released")
            .unwrap();
        let reply = result.unwrap_or_else(|e| panic!("accepted request {i} failed: {e}"));
        assert_eq!(reply.payload, format!("api-1:{i}"));
        completed.push(i);
    }
    assert_eq!(completed, (0..CAPACITY).collect::<Vec<_>>());
    let mut expected = vec!["hold:0".to_owned()];
    expected.extend((0..CAPACITY).map(|i| format!("api-1:{i}")));
    assert_eq!(cluster.logged(GATED), expected);
    cluster.healthy_answers().await;
}

#[tokio::test]
async fn mesh_requests_queued_at_a_stage_that_closes_are_refused_at_once() {
    let mut cluster = Cluster::start().await;
    let api = &cluster.apis[0];
    let mut closer = flood(api, GATED, "SeqClose", "closer", 1, BURST);
    assert_eq!(cluster.arrived.recv().await.as_deref(), Some("closer:0"));
    // The mailbox takes CAPACITY; the one beyond is refused at once, so the others wait in it.
    let mut queued = flood(api, GATED, "Seq", "queued", CAPACITY + 1, BURST);
    let (i, result, _) = tokio::time::timeout(Duration::from_secs(5), queued.recv())
        .await
        .expect("the refusal comes at once")
        .unwrap();
    assert!(i == CAPACITY && is_busy(&result), "request {i}: {result:?}");
    // Released, the stage answers the closer and closes with the others still queued.
    cluster.gate.add_permits(1);
    let (_, closed, _) = closer.recv().await.unwrap();
    assert_eq!(closed.unwrap().payload, "closer:0");
    for _ in 0..CAPACITY {
        let (i, result, _) = tokio::time::timeout(Duration::from_secs(5), queued.recv())
            .await
            .expect("queued requests are refused at once, not at the 30 s request timeout")
            .unwrap();
        assert!(
            matches!(&result, Err(error) if error.code() == ErrorCode::STAGE_NOT_FOUND),
            "request {i}: {result:?}"
        );
    }
    cluster.healthy_answers().await;
}

#[tokio::test]
async fn two_senders_flooding_a_slow_stage_keep_their_order() {
    let cluster = Cluster::start().await;
    cluster.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    const FLOOD: usize = 300;
    let floods: Vec<_> = cluster
        .apis
        .iter()
        .map(|api| {
            let tag = api.server_id().to_owned();
            let done = flood(
                api,
                SLOW,
                "Slow",
                &tag,
                FLOOD,
                (5, Duration::from_millis(5)),
            );
            (tag, done)
        })
        .collect();
    let probe = async {
        for _ in 0..5 {
            cluster.healthy_answers().await;
        }
    };
    let mut outcomes = Vec::new();
    let collect = async {
        for (tag, mut done) in floods {
            let mut ok = Vec::new();
            let mut busy = 0;
            for _ in 0..FLOOD {
                let (i, result, _) = tokio::time::timeout(Duration::from_secs(10), done.recv())
                    .await
                    .expect("every request ends")
                    .unwrap();
                match result {
                    Ok(reply) => {
                        assert_eq!(reply.payload, format!("{tag}:{i}"));
                        ok.push(i);
                    }
                    Err(error) => {
                        assert_eq!(error.code(), ErrorCode::STAGE_BUSY, "{tag}:{i}");
                        busy += 1;
                    }
                }
            }
            outcomes.push((tag, ok, busy));
        }
    };
    tokio::join!(probe, collect);

    let logged = cluster.logged(SLOW);
    let mut total_busy = 0;
    for (tag, mut ok, busy) in outcomes {
        // What the stage handled from one sender is exactly what that sender saw succeed, in
        // the order it was sent.
        let from_sender: Vec<usize> = logged
            .iter()
            .filter_map(|text| text.strip_prefix(&format!("{tag}:")))
            .map(|i| i.parse().unwrap())
            .collect();
        assert!(
            from_sender.is_sorted_by(|a, b| a < b),
            "{tag}'s messages overtook each other: {from_sender:?}"
        );
        ok.sort_unstable();
        assert_eq!(from_sender, ok, "{tag}");
        total_busy += busy;
    }
    // The flood did overflow the mailbox (else this test checks nothing).
    assert!(total_busy > 0, "the mailbox never filled");
    assert_eq!(cluster.busy_metric("request"), total_busy as u64);
}
