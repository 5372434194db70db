//! Model-based property test of the session state machine: random sequences of client
//! actions against a real server over TCP, each step checked against a model of what the
//! client must see (the reply code, a silence, or the connection closing).

mod support;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use playhouse::{
    Actor, ActorCell, ActorLink, ErrorCode, ErrorReply, Packet, PlayServer, Stage, StageContext,
};
use playhouse_protocol::ClientFrame;
use proptest::prelude::*;
use support::RawClient;
use tokio::io::AsyncWriteExt;

struct Room;
struct Player;

impl Stage for Room {
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
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<Player>,
        packet: Packet,
    ) {
        match &*packet.msg_id {
            "Echo" => actor.link.reply(packet),
            "Leave" => {
                actor.link.reply(Packet::empty("Left"));
                actor.link.leave_stage();
            }
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

impl Actor for Player {
    async fn on_authenticate(
        &mut self,
        link: &mut ActorLink,
        packet: Packet,
    ) -> Result<Packet, ErrorReply> {
        let user = String::from_utf8_lossy(&packet.payload).into_owned();
        if user.starts_with("fail") {
            return Err(ErrorCode::AUTHENTICATION_FAILED.into());
        }
        link.set_account_id(user);
        Ok(Packet::empty("Ok"))
    }
}

/// One server for every case, on its own runtime.
fn server() -> (&'static tokio::runtime::Runtime, SocketAddr) {
    static SERVER: OnceLock<(tokio::runtime::Runtime, SocketAddr)> = OnceLock::new();
    let (rt, addr) = SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let addr = rt.block_on(async {
            let server = PlayServer::builder()
                .stage("Room", |_| Room, |_| Player)
                .default_stage_type("Room")
                .build()
                .unwrap();
            let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
            std::mem::forget(server); // lives as long as the test process
            addr
        });
        (rt, addr)
    });
    (rt, *addr)
}

#[derive(Clone, Debug)]
enum Action {
    Heartbeat,
    Auth,
    AuthFail,
    AuthEmpty,
    Echo { request: bool },
    Unknown,
    Leave,
    Garbage,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => Just(Action::Heartbeat),
        3 => Just(Action::Auth),
        1 => Just(Action::AuthFail),
        1 => Just(Action::AuthEmpty),
        4 => any::<bool>().prop_map(|request| Action::Echo { request }),
        1 => Just(Action::Unknown),
        1 => Just(Action::Leave),
        1 => Just(Action::Garbage),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Model {
    Fresh,
    Joined,
    /// Left the stage: requests get NotAuthenticated.
    Detached,
}

/// What the client must see after an action.
enum Expect {
    Reply(ErrorCode, &'static str),
    Heartbeat,
    Nothing,
    Closed,
}

fn step(model: &mut Model, action: &Action) -> Expect {
    use Action::*;
    match (*model, action) {
        (_, Garbage) => Expect::Closed,
        (_, Heartbeat) => Expect::Heartbeat,
        (Model::Joined, Auth | AuthFail | AuthEmpty) => {
            Expect::Reply(ErrorCode::ALREADY_AUTHENTICATED, "")
        }
        (_, Auth) => {
            *model = Model::Joined;
            Expect::Reply(ErrorCode::SUCCESS, "AuthenticateReply")
        }
        (_, AuthFail) => Expect::Reply(ErrorCode::AUTHENTICATION_FAILED, ""),
        (_, AuthEmpty) => Expect::Reply(ErrorCode::INVALID_ACCOUNT_ID, ""),
        (Model::Fresh, _) => Expect::Closed,
        (Model::Joined, Echo { request: true }) => Expect::Reply(ErrorCode::SUCCESS, "Echo"),
        (_, Echo { request: false }) => Expect::Nothing,
        (Model::Joined, Unknown) => Expect::Reply(ErrorCode::HANDLER_NOT_FOUND, ""),
        (Model::Joined, Leave) => {
            *model = Model::Detached;
            Expect::Reply(ErrorCode::SUCCESS, "Left")
        }
        (Model::Detached, Echo { request: true } | Unknown | Leave) => {
            Expect::Reply(ErrorCode::NOT_AUTHENTICATED, "")
        }
    }
}

async fn run_case(addr: SocketAddr, stage: i64, actions: &[Action]) -> Result<(), String> {
    let mut client = RawClient::connect(addr, stage).await;
    let mut model = Model::Fresh;
    let user = format!("user-{stage}");
    for (i, action) in actions.iter().enumerate() {
        let expect = step(&mut model, action);
        let seq = match action {
            Action::Heartbeat => {
                client.send_frame(ClientFrame::heartbeat()).await;
                0
            }
            Action::Auth => {
                client
                    .request_nowait("AuthenticateRequest", user.as_bytes())
                    .await
            }
            Action::AuthFail => {
                client
                    .request_nowait("AuthenticateRequest", b"fail-x")
                    .await
            }
            Action::AuthEmpty => client.request_nowait("AuthenticateRequest", b"").await,
            Action::Echo { request: true } => client.request_nowait("Echo", b"e").await,
            Action::Echo { request: false } => {
                client.send("Echo", b"e").await;
                0
            }
            Action::Unknown => client.request_nowait("Nope", b"").await,
            Action::Leave => client.request_nowait("Leave", b"").await,
            Action::Garbage => {
                client
                    .stream_mut()
                    .write_all(&(-7i32).to_le_bytes())
                    .await
                    .ok();
                0
            }
        };
        match expect {
            Expect::Closed => {
                client.expect_closed().await;
                return Ok(());
            }
            Expect::Nothing => {}
            Expect::Heartbeat => {
                let frame = client.recv().await.ok_or(format!("step {i}: closed"))?;
                if !frame.is_heartbeat() {
                    return Err(format!(
                        "step {i} {action:?}: expected a heartbeat, got {frame:?}"
                    ));
                }
            }
            Expect::Reply(code, msg_id) => {
                let frame = client
                    .recv()
                    .await
                    .ok_or(format!("step {i} {action:?}: closed"))?;
                if frame.msg_seq != seq || frame.error_code != code {
                    return Err(format!(
                        "step {i} {action:?} in {model:?}: expected seq {seq} code {code}, got seq {} code {}",
                        frame.msg_seq, frame.error_code
                    ));
                }
                if !msg_id.is_empty() && frame.msg_id != msg_id {
                    return Err(format!("step {i}: expected {msg_id}, got {}", frame.msg_id));
                }
            }
        }
    }
    // Whatever happened, the connection still answers a heartbeat.
    client.send_frame(ClientFrame::heartbeat()).await;
    match client.recv().await {
        Some(frame) if frame.is_heartbeat() => Ok(()),
        other => Err(format!("final heartbeat: {other:?}")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn sessions_follow_the_model(actions in proptest::collection::vec(action(), 1..24)) {
        static NEXT_STAGE: AtomicI64 = AtomicI64::new(900_000);
        let (rt, addr) = server();
        let stage = NEXT_STAGE.fetch_add(1, Ordering::Relaxed);
        let outcome = rt.block_on(run_case(addr, stage, &actions));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
