//! Typed stage dispatch of server messages (`StageRoutes::server`, `server_async`): another
//! server's request is decoded, routed and answered with the handler's message; an unknown
//! id reaches the string path; an undecodable payload is answered `INVALID_MESSAGE`.

use std::sync::LazyLock;
use std::time::Duration;

use playhouse::testing::EchoActor;
use playhouse::{
    ActorCell, ApiServer, ErrorCode, MemoryDirectory, MeshError, MeshJoin, Packet, PlayServer,
    Stage, StageContext, StageRoutes,
};

#[derive(Clone, PartialEq, prost::Message)]
struct Deposit {
    #[prost(int64, tag = "1")]
    amount: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Balance {
    #[prost(int64, tag = "1")]
    total: i64,
    #[prost(int64, tag = "2")]
    stage_id: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Forward {
    #[prost(string, tag = "1")]
    server_id: String,
}

macro_rules! named {
    ($($name:ident),*) => {$(
        impl prost::Name for $name {
            const NAME: &'static str = stringify!($name);
            const PACKAGE: &'static str = "test";
        }
    )*};
}
named!(Deposit, Balance, Forward);

struct Bank {
    total: i64,
}

impl Bank {
    fn deposit(
        &mut self,
        ctx: &mut StageContext<Self>,
        deposit: Deposit,
    ) -> Result<Balance, ErrorCode> {
        self.total += deposit.amount;
        Ok(Balance {
            total: self.total,
            stage_id: ctx.stage_id(),
        })
    }

    /// Asks `server_id` for the time of day; `?` answers the requester with the failure's code.
    async fn forward(
        &mut self,
        ctx: &mut StageContext<Self>,
        forward: Forward,
    ) -> Result<Balance, ErrorCode> {
        ctx.sender()
            .request_to_api(&forward.server_id, Packet::empty("Time"))
            .await?;
        Ok(Balance::default())
    }
}

static ROUTES: LazyLock<StageRoutes<Bank>> = LazyLock::new(|| {
    StageRoutes::new()
        .server(Bank::deposit)
        .server_async(Bank::forward)
});

impl Stage for Bank {
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
        _: &mut StageContext<Self>,
        actor: &mut ActorCell<EchoActor>,
        packet: Packet,
    ) {
        actor.link.reply(packet);
    }

    async fn on_dispatch_server(&mut self, ctx: &mut StageContext<Self>, packet: Packet) {
        let Some(packet) = ROUTES.dispatch_server(self, ctx, packet).await else {
            return;
        };
        match &*packet.msg_id {
            "Legacy" => ctx.reply(Packet::new("LegacyReply", self.total.to_string())),
            _ => ctx.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

fn fast(directory: &MemoryDirectory) -> MeshJoin {
    MeshJoin::memory("127.0.0.1:0", directory)
        .refresh_interval(Duration::from_millis(50))
        .request_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn server_messages_are_routed_by_type() {
    let directory = MemoryDirectory::new();
    let play = PlayServer::builder()
        .server_id("play-1")
        .stage("Bank", |_| Bank { total: 0 }, |_| EchoActor)
        .build()
        .unwrap();
    play.join_mesh(fast(&directory)).await.unwrap();
    let api = ApiServer::builder()
        .server_id("api-1")
        .start(fast(&directory))
        .await
        .unwrap();
    let sender = api.sender();
    // The mesh connects after a directory refresh or two.
    let mut created = None;
    for _ in 0..250 {
        match sender
            .create_stage("play-1", "Bank", 7, Packet::empty("Open"))
            .await
        {
            Err(MeshError::ServerNotFound(_)) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => {
                created = Some(other.unwrap());
                break;
            }
        }
    }
    assert_eq!(created.expect("play-1 reachable").stage_id, 7);

    for (amount, total) in [(5, 5), (10, 15)] {
        let reply = sender
            .request_to_stage("play-1", 7, Packet::from_message(&Deposit { amount }))
            .await
            .unwrap();
        let balance = reply.decode::<Balance>().unwrap();
        assert_eq!((balance.total, balance.stage_id), (total, 7));
    }

    // Not registered: the stage's own string path answers.
    let legacy = sender
        .request_to_stage("play-1", 7, Packet::empty("Legacy"))
        .await
        .unwrap();
    assert_eq!(
        (&*legacy.msg_id, &legacy.payload[..]),
        ("LegacyReply", &b"15"[..])
    );

    // Registered, but the payload is not a `Deposit`: refused, and the total is untouched.
    let garbage = sender
        .request_to_stage("play-1", 7, Packet::new("Deposit", &[0x08][..]))
        .await;
    assert_eq!(garbage.unwrap_err().code(), ErrorCode::INVALID_MESSAGE);
    let legacy = sender
        .request_to_stage("play-1", 7, Packet::empty("Legacy"))
        .await
        .unwrap();
    assert_eq!(legacy.payload, "15");

    // An async handler whose own request fails: `?` sends that code back.
    let forward = Forward {
        server_id: "api-9".into(),
    };
    let failed = sender
        .request_to_stage("play-1", 7, Packet::from_message(&forward))
        .await;
    assert_eq!(failed.unwrap_err().code(), ErrorCode::SERVER_NOT_FOUND);

    api.stop().await;
    play.stop().await;
}
