//! Pushes through the async API ([`Connector::pushes`]) from a real Play server over real TCP,
//! with `use_main_thread_callbacks` at its default and no `main_thread_action` call: plain,
//! through a receiver too small to keep up, and across cuts of a resumable session.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use playhouse::testing::EchoActor;
use playhouse::{ActorCell, ErrorCode, Packet, PlayServer, ResumeConfig, Stage, StageContext};
use playhouse_connector::{Connector, ConnectorConfig, Pushes, ReconnectPolicy, SessionEvent};

/// Bounds a wait that only a failing test would exceed.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// `"Burst"` (count): that many numbered pushes at once; `"Stream"` (count): one every 2 ms.
/// Anything else is echoed.
struct Room {
    next_push: u32,
}

fn count(packet: &Packet) -> u32 {
    u32::from_le_bytes(packet.payload[..4].try_into().unwrap())
}

fn numbered(n: u32) -> Packet {
    Packet::new("Push", n.to_le_bytes().to_vec())
}

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
        let account = actor.link.account_id().to_owned();
        match &*packet.msg_id {
            "Burst" => {
                for _ in 0..count(&packet) {
                    self.next_push += 1;
                    ctx.send_to_account(&account, numbered(self.next_push));
                }
            }
            "Stream" => {
                let period = Duration::from_millis(2);
                let pushes = count(&packet);
                ctx.add_count_timer(period, period, pushes, move |room: &mut Room, ctx| {
                    room.next_push += 1;
                    ctx.send_to_account(&account, numbered(room.next_push));
                });
            }
            _ => actor.link.reply(packet),
        }
    }
}

async fn server(resume: Option<ResumeConfig>) -> (PlayServer, SocketAddr) {
    let server = PlayServer::builder()
        .stage("Room", |_| Room { next_push: 0 }, |_| EchoActor)
        .default_stage_type("Room")
        .configure(|config| config.resume = resume)
        .build()
        .expect("build");
    let addr = server.listen_tcp("127.0.0.1:0").await.expect("listen");
    (server, addr)
}

fn ask(msg_id: &str, n: u32) -> Packet {
    Packet::new(msg_id, n.to_le_bytes().to_vec())
}

/// The next push's number.
async fn next_push(pushes: &mut Pushes) -> u32 {
    let push = within("a push", pushes.recv()).await.expect("pushes open");
    assert_eq!(push.packet.msg_id, "Push");
    count(&push.packet)
}

/// Counts `on_receive` calls: none may happen while a `Pushes` receiver exists.
fn count_on_receive(connector: &Connector) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    connector.on_receive(move |_, _, _| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_arrive_without_main_thread_action() {
    let (server, addr) = server(None).await;
    let config = ConnectorConfig::default();
    assert!(config.use_main_thread_callbacks, "the default under test");
    let connector = Connector::new(config);
    let on_receive = count_on_receive(&connector);
    let mut pushes = connector.pushes();
    log_in(&connector, addr, "alice").await;

    connector.send(ask("Burst", 20)).unwrap();
    for expected in 1..=20 {
        assert_eq!(next_push(&mut pushes).await, expected, "once and in order");
    }
    let push_stage = connector.stage_id();
    connector.send(ask("Burst", 1)).unwrap();
    let push = within("a push", pushes.recv()).await.unwrap();
    assert_eq!((push.stage_id, &*push.stage_type), (push_stage, "Room"));

    // Nothing went to the callback queue meanwhile.
    connector.main_thread_action();
    assert_eq!(on_receive.load(Ordering::SeqCst), 0);

    // Dropping the receiver hands pushes back to on_receive.
    drop(pushes);
    connector.send(ask("Burst", 1)).unwrap();
    // A request answered after the push: by then the push is queued for on_receive.
    connector.request(ask("Echo", 0)).await.unwrap();
    connector.main_thread_action();
    assert_eq!(on_receive.load(Ordering::SeqCst), 1);
    connector.disconnect().await;
    server.stop().await;
}

/// A receiver of 4 pushes and a burst of 1000 (within the server's outbound queue of 1024):
/// the connection waits for the reader instead of dropping anything, and stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_receiver_holds_reading_back_and_loses_nothing() {
    let (server, addr) = server(None).await;
    let connector = Connector::new(ConnectorConfig::default().push_queue_capacity(4));
    let mut pushes = connector.pushes();
    log_in(&connector, addr, "bob").await;

    const PUSHES: u32 = 1000;
    connector.send(ask("Burst", PUSHES)).unwrap();
    let echo = {
        let connector = connector.clone();
        tokio::spawn(async move { connector.request(ask("Echo", 7)).await })
    };
    for expected in 1..=PUSHES {
        if expected % 100 == 0 {
            // A slow reader: let the connection fill the receiver again.
            tokio::task::yield_now().await;
        }
        assert_eq!(next_push(&mut pushes).await, expected, "once and in order");
    }
    // The reply came after the pushes, so it waited for them.
    let echo = within("the echo", echo).await.unwrap().unwrap();
    assert_eq!(count(&echo), 7);
    assert!(pushes.try_recv().is_none(), "no push twice");
    assert!(connector.is_connected());
    connector.disconnect().await;
    server.stop().await;
}

/// Dials `addr` keeping a second handle on every socket, so the test can cut the live
/// connection under the connector.
#[derive(Clone, Default)]
struct Cutter {
    sockets: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

type Dialing = Pin<Box<dyn Future<Output = std::io::Result<tokio::net::TcpStream>> + Send>>;

impl Cutter {
    fn dialer(&self, addr: SocketAddr) -> impl Fn() -> Dialing + Send + Sync + 'static {
        let sockets = Arc::clone(&self.sockets);
        move || {
            let sockets = Arc::clone(&sockets);
            Box::pin(async move {
                let stream = tokio::net::TcpStream::connect(addr).await?.into_std()?;
                sockets.lock().unwrap().push(stream.try_clone()?);
                tokio::net::TcpStream::from_std(stream)
            })
        }
    }

    fn cut(&self) {
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_delivers_each_push_once_through_the_receiver() {
    let (server, addr) = server(Some(ResumeConfig::default())).await;
    let connector = Connector::new(
        ConnectorConfig::default()
            .resume(true)
            .push_queue_capacity(16)
            .reconnect(ReconnectPolicy {
                initial_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
                jitter_seed: Some(1),
            }),
    );
    let on_receive = count_on_receive(&connector);
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    connector.on_session(move |event| log.lock().unwrap().push(event));
    let resumed = Arc::new(AtomicBool::new(false));
    let mut pushes = connector.pushes();
    let cutter = Cutter::default();
    connector
        .connect_with(cutter.dialer(addr), 1, "Room")
        .await
        .unwrap();
    connector
        .authenticate(Packet::new("AuthenticateRequest", "carol"))
        .await
        .unwrap();

    const PUSHES: u32 = 300;
    connector.send(ask("Stream", PUSHES)).unwrap();
    for expected in 1..=PUSHES {
        if expected % 100 == 0 {
            // Cut with pushes streaming; the session resumes by itself.
            cutter.cut();
            resumed.store(true, Ordering::SeqCst);
        }
        assert_eq!(next_push(&mut pushes).await, expected, "once and in order");
    }
    // Answered after every push the server sent: a duplicate would be waiting by now.
    connector.request(ask("Echo", 1)).await.unwrap();
    assert!(pushes.try_recv().is_none(), "no push twice");

    connector.main_thread_action();
    assert_eq!(on_receive.load(Ordering::SeqCst), 0);
    let events = events.lock().unwrap().clone();
    assert!(resumed.load(Ordering::SeqCst));
    assert!(
        events.contains(&SessionEvent::Resumed) && !events.contains(&SessionEvent::Lost),
        "the cuts were resumed: {events:?}"
    );
    connector.disconnect().await;
    server.stop().await;
}

/// Connects `connector` to room 1 at `addr` and logs in as `user`.
async fn log_in(connector: &Connector, addr: SocketAddr, user: &str) {
    connector
        .connect("127.0.0.1", addr.port(), 1, "Room")
        .await
        .unwrap();
    connector
        .authenticate(Packet::new("AuthenticateRequest", user.to_owned()))
        .await
        .unwrap();
}
