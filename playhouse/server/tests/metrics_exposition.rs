//! The metrics exposition read as Prometheus reads it (`prometheus-parse`, a text-format
//! parser): every histogram of a live game moves when the thing it measures happens, the
//! gauges are there, and names and labels follow Prometheus conventions with bounded label
//! values. Real sockets, a real mesh (TCP link, in-memory directory), a real API server.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use playhouse::testing::EchoActor;
use playhouse::{
    ActorCell, ApiServer, ErrorCode, MemoryDirectory, MeshJoin, Packet, PlayServer, ResumeConfig,
    Stage, StageContext,
};
use playhouse_protocol::{Capabilities, ClientFrame, ResumeGrant, ResumeRequest, SESSION_MSG_ID};
use prometheus_parse::{Scrape, Value};
use support::{RawClient, WAIT};
use tokio::time::Instant;

/// `Echo` answers at once; `AskApi` asks the API server over the mesh and answers with its
/// reply; `Loop` starts a 1 ms game loop whose steps take 2 ms (each one an overrun).
struct Room;

impl Stage for Room {
    type Actor = EchoActor;

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
        actor: &mut ActorCell<EchoActor>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "AskApi" => {
                let asked = ctx.sender().request_to_api("api-1", Packet::empty("Ping"));
                let reply = asked.await;
                let answer = reply.unwrap_or_else(|_| Packet::empty("Failed"));
                actor.link.reply(answer);
            }
            "Loop" => {
                ctx.start_game_loop(Duration::from_millis(1), |_, ctx, tick| {
                    std::thread::sleep(Duration::from_millis(2));
                    if tick.tick >= 3 {
                        ctx.stop_game_loop();
                    }
                });
                actor.link.reply(Packet::empty("Looping"));
            }
            _ => actor.link.reply(packet),
        }
    }
}

/// Labels whose values are bounded (never a stage id, an account or a client's message id).
const BOUNDED_LABELS: [&str; 6] = ["server", "transport", "reason", "limit", "kind", "peer"];

struct Cluster {
    play: PlayServer,
    _api: ApiServer,
    addr: SocketAddr,
}

async fn cluster() -> Cluster {
    let directory = MemoryDirectory::new();
    let join =
        || MeshJoin::memory("127.0.0.1:0", &directory).refresh_interval(Duration::from_millis(50));
    let play = PlayServer::builder()
        .server_id("play-1")
        .configure(|config| config.resume = Some(ResumeConfig::default()))
        .stage("Room", |_| Room, |_| EchoActor)
        .default_stage_type("Room")
        .build()
        .unwrap();
    play.join_mesh(join()).await.unwrap();
    let api = ApiServer::builder()
        .server_id("api-1")
        .handlers(|h| {
            h.add("Ping", |_: Packet, _sender| async move {
                Ok::<_, ErrorCode>(Packet::empty("Pong"))
            });
        })
        .start(join())
        .await
        .unwrap();
    let addr = play.listen_tcp("127.0.0.1:0").await.unwrap();
    Cluster {
        play,
        _api: api,
        addr,
    }
}

fn scrape(play: &PlayServer) -> Scrape {
    let text = play.metrics();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("a Prometheus exposition")
}

/// The sample `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<Value> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| s.value.clone())
}

/// Observations of histogram `name` (its `+Inf` bucket), 0 if it has no such series yet.
fn observed(play: &PlayServer, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(&scrape(play), name, labels) {
        Some(Value::Histogram(buckets)) => buckets
            .iter()
            .find(|b| b.less_than.is_infinite())
            .map_or(0.0, |b| b.count),
        None => 0.0,
        Some(other) => panic!("{name} is not a histogram: {other:?}"),
    }
}

fn gauge(play: &PlayServer, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(&scrape(play), name, labels) {
        Some(Value::Gauge(v)) => v,
        other => panic!("{name} is not a gauge: {other:?}"),
    }
}

fn counter(play: &PlayServer, name: &str) -> f64 {
    match value(&scrape(play), name, &[]) {
        Some(Value::Counter(v)) => v,
        other => panic!("{name} is not a counter: {other:?}"),
    }
}

/// Waits until histogram `name` counts more than `before`.
async fn moves(play: &PlayServer, name: &str, labels: &[(&str, &str)], before: f64) {
    let deadline = Instant::now() + WAIT;
    while observed(play, name, labels) <= before {
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} never moved:\n{}",
            play.metrics()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A client that asks for resume, authenticates, and returns its grant.
async fn resumable(addr: SocketAddr, user: &str) -> (RawClient, ResumeGrant) {
    let mut client = RawClient::connect(addr, 1).await;
    client
        .send_frame(ClientFrame::hello(0, Capabilities::RESUME))
        .await;
    client
        .request_nowait("AuthenticateRequest", user.as_bytes())
        .await;
    let grant = client.recv().await.expect("grant");
    assert_eq!(grant.msg_id, SESSION_MSG_ID);
    let grant = ResumeGrant::from_payload(&grant.payload).expect("a grant");
    client.recv().await.expect("auth reply");
    (client, grant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_histogram_moves_when_its_event_happens() {
    let Cluster { play, addr, .. } = cluster().await;
    const LATENCY: &str = "playhouse_request_latency_seconds";
    const WAITED: &str = "playhouse_stage_mailbox_wait_seconds";
    const HANDLER: &str = "playhouse_stage_handler_seconds";
    const TICK: &str = "playhouse_stage_tick_seconds";
    const MESH: &str = "playhouse_mesh_request_seconds";
    const LIVENESS: &str = "playhouse_mesh_liveness_rtt_seconds";
    const GAP: &str = "playhouse_session_resume_gap_seconds";
    const LIFETIME: &str = "playhouse_session_duration_seconds";

    // Liveness pings start as soon as the mesh connects.
    moves(&play, LIVENESS, &[("peer", "api-1")], 0.0).await;

    let (mut client, grant) = resumable(addr, "alice").await;
    let before = [LATENCY, WAITED, HANDLER].map(|name| observed(&play, name, &[]));
    client.request("Echo", b"hi").await;
    for (name, before) in [LATENCY, WAITED, HANDLER].into_iter().zip(before) {
        moves(&play, name, &[], before).await;
    }

    let before = observed(&play, MESH, &[("peer", "api-1")]);
    let reply = client.request("AskApi", b"").await;
    assert_eq!(&*reply.msg_id, "Pong");
    moves(&play, MESH, &[("peer", "api-1")], before).await;

    let (ticks, overruns) = (
        observed(&play, TICK, &[]),
        counter(&play, "playhouse_stage_tick_overruns_total"),
    );
    client.request("Loop", b"").await;
    moves(&play, TICK, &[], ticks).await;
    assert!(
        counter(&play, "playhouse_stage_tick_overruns_total") > overruns,
        "2 ms steps of a 1 ms loop overrun"
    );

    // The connection drops; the session waits; a new connection takes it over: the gap is
    // observed.
    let before = observed(&play, GAP, &[]);
    drop(client);
    let deadline = Instant::now() + WAIT;
    while gauge(&play, "playhouse_sessions", &[("transport", "tcp")]) > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the dropped connection is never noticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut again = RawClient::connect(addr, 1).await;
    again
        .send_frame(ClientFrame::hello(0, Capabilities::RESUME))
        .await;
    let request = ResumeRequest {
        token: grant.token,
        received: 4,
    };
    again.send_frame(ClientFrame::resume(9, request)).await;
    let answer = again.recv().await.expect("an answer");
    assert_eq!(answer.error_code, ErrorCode::SUCCESS);
    moves(&play, GAP, &[], before).await;

    // The gauges: one session, one stage, one actor; nothing queued now.
    assert_eq!(
        gauge(&play, "playhouse_sessions", &[("transport", "tcp")]),
        1.0
    );
    assert_eq!(gauge(&play, "playhouse_stages", &[]), 1.0);
    assert_eq!(gauge(&play, "playhouse_actors", &[]), 1.0);
    gauge(&play, "playhouse_stage_queued_messages", &[]);
    gauge(&play, "playhouse_outbound_queued_bytes", &[]);

    // A session that ends (not resumable: it ends with its connection).
    let before = observed(&play, LIFETIME, &[]);
    let mut plain = RawClient::connect(addr, 2).await;
    assert_eq!(plain.authenticate("bob").await, ErrorCode::SUCCESS);
    drop(plain);
    moves(&play, LIFETIME, &[], before).await;
    play.stop().await;
}

#[tokio::test]
async fn names_types_and_labels_follow_prometheus_conventions() {
    let play = PlayServer::builder()
        .server_id("play-1")
        .stage("Room", |_| Room, |_| EchoActor)
        .build()
        .unwrap();
    let text = play.metrics();
    let scrape = scrape(&play);
    let mut families = BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').unwrap();
        assert!(families.insert(name.to_owned()), "{name} declared twice");
        assert!(name.starts_with("playhouse_"), "{name}");
        match kind {
            "counter" => assert!(name.ends_with("_total"), "counter {name}"),
            "histogram" => assert!(name.ends_with("_seconds"), "histogram {name}"),
            "gauge" => assert!(!name.ends_with("_total"), "gauge {name}"),
            other => panic!("{name} of type {other}"),
        }
    }
    assert!(families.len() >= 30, "{families:?}");
    // The Grafana dashboard in docs/ reads only series the server exposes (per-peer families
    // appear with their first peer, so they are named here).
    let dashboard = include_str!("../../../docs/grafana-dashboard.json");
    let known = |name: &str| {
        let base = name.strip_suffix("_bucket").unwrap_or(name);
        families.contains(base)
            || [
                "playhouse_mesh_request_seconds",
                "playhouse_mesh_liveness_rtt_seconds",
            ]
            .contains(&base)
    };
    let mut read = 0;
    for (at, _) in dashboard.match_indices("playhouse_") {
        let name: String = dashboard[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name != "playhouse_" {
            assert!(
                known(&name),
                "the dashboard reads {name}, which the server does not expose"
            );
            read += 1;
        }
    }
    assert!(read >= 12, "{read} series read by the dashboard");
    for sample in &scrape.samples {
        assert_eq!(
            sample.labels.get("server"),
            Some("play-1"),
            "{}",
            sample.metric
        );
        for (label, _) in sample.labels.iter() {
            assert!(
                BOUNDED_LABELS.contains(&label.as_str()),
                "{} has label {label}",
                sample.metric
            );
        }
    }
    play.stop().await;
}
