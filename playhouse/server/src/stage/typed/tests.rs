//! Typed dispatch through a stage in memory (client messages; the server half is covered by
//! `tests/stage_routes.rs`, which needs a mesh).

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use playhouse_protocol::{ErrorCode, Packet};

use super::StageRoutes;
use crate::reply::ErrorReply;
use crate::stage::actor::ActorCell;
use crate::stage::context::StageContext;
use crate::stage::model::Stage;
use crate::testing::{EchoActor, HarnessClient, StageHarness};

#[derive(Clone, PartialEq, prost::Message)]
struct AddRequest {
    #[prost(int64, tag = "1")]
    amount: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AddReply {
    #[prost(int64, tag = "1")]
    total: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AskApi {
    #[prost(string, tag = "1")]
    api_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Refuse {
    #[prost(string, tag = "1")]
    why: String,
}

macro_rules! named {
    ($($name:ident),*) => {$(
        impl prost::Name for $name {
            const NAME: &'static str = stringify!($name);
            const PACKAGE: &'static str = "test";
        }
    )*};
}
named!(AddRequest, AddReply, AskApi, Refuse);

struct Counter {
    total: i64,
    /// Packets the string path saw.
    fell_through: u32,
}

type Player = ActorCell<EchoActor>;

impl Counter {
    fn add(
        &mut self,
        _: &mut StageContext<Self>,
        _: &mut Player,
        request: AddRequest,
    ) -> Result<AddReply, ErrorCode> {
        if request.amount < 0 {
            return Err(ErrorCode(1001));
        }
        self.total += request.amount;
        Ok(AddReply { total: self.total })
    }

    /// Awaits another server (there is no mesh here: `ServerNotFound`) and lets `?` turn the
    /// failure into the reply's code.
    async fn ask_api(
        &mut self,
        ctx: &mut StageContext<Self>,
        _: &mut Player,
        request: AskApi,
    ) -> Result<AddReply, ErrorCode> {
        tokio::task::yield_now().await;
        let answer = ctx
            .sender()
            .request_to_api(&request.api_id, Packet::empty("Ping"))
            .await?;
        Ok(answer.decode::<AddReply>()?)
    }

    /// Fails with a code and a packet telling why.
    fn refuse(
        &mut self,
        _: &mut StageContext<Self>,
        _: &mut Player,
        request: Refuse,
    ) -> Result<AddReply, ErrorReply> {
        Err(ErrorReply::new(ErrorCode(1002)).with_packet(Packet::new("Refused", request.why)))
    }
}

static ROUTES: LazyLock<StageRoutes<Counter>> = LazyLock::new(|| {
    StageRoutes::new()
        .client(Counter::add)
        .client_async(Counter::ask_api)
        .client(Counter::refuse)
});

impl Stage for Counter {
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
        actor: &mut Player,
        packet: Packet,
    ) {
        let Some(packet) = ROUTES.dispatch(self, ctx, actor, packet).await else {
            return;
        };
        self.fell_through += 1;
        match &*packet.msg_id {
            "Legacy" => {
                let seen = format!(
                    "{} {}",
                    self.fell_through,
                    String::from_utf8_lossy(&packet.payload)
                );
                actor.link.reply(Packet::new("LegacyReply", seen));
            }
            _ => actor.link.reply_error(ErrorCode::HANDLER_NOT_FOUND),
        }
    }
}

/// `f`, failing the test instead of hanging when the stage never answers.
async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("no answer within 5 s")
}

async fn counter() -> (StageHarness, HarnessClient) {
    let stage = StageHarness::start(
        "Counter",
        |_| Counter {
            total: 0,
            fell_through: 0,
        },
        |_| EchoActor,
        Packet::empty("Create"),
    )
    .await
    .unwrap();
    let client = stage.join(Packet::new("Auth", "alice")).await.unwrap();
    (stage, client)
}

async fn add(client: &mut HarnessClient, amount: i64) -> Result<i64, ErrorCode> {
    let reply = within(client.request(Packet::from_message(&AddRequest { amount }))).await?;
    assert_eq!(reply.msg_id, "AddReply");
    Ok(reply.into_packet().decode::<AddReply>().unwrap().total)
}

#[tokio::test]
async fn a_registered_message_is_decoded_routed_and_answered_with_the_reply_message() {
    let (_stage, mut client) = counter().await;
    assert_eq!(add(&mut client, 2).await, Ok(2));
    assert_eq!(add(&mut client, 5).await, Ok(7));
    // The handler's `Err` is the reply's code.
    assert_eq!(add(&mut client, -1).await, Err(ErrorCode(1001)));
    // None of them reached the string path.
    let legacy = within(client.request(Packet::new("Legacy", "old")))
        .await
        .unwrap();
    assert_eq!(legacy.payload, "1 old");
}

#[tokio::test]
async fn an_unregistered_id_falls_through_to_the_string_path() {
    let (_stage, mut client) = counter().await;
    let reply = within(client.request(Packet::new("Legacy", "old")))
        .await
        .unwrap();
    assert_eq!(
        (&*reply.msg_id, &reply.payload[..]),
        ("LegacyReply", &b"1 old"[..])
    );
    let unknown = within(client.request(Packet::empty("Nobody"))).await;
    assert_eq!(unknown.unwrap_err(), ErrorCode::HANDLER_NOT_FOUND);
}

#[tokio::test]
async fn an_undecodable_payload_is_answered_invalid_message_and_reaches_no_handler() {
    let (_stage, mut client) = counter().await;
    // Field 1 as a varint that never ends.
    let garbage = Packet::new("AddRequest", &[0x08, 0xff][..]);
    assert_eq!(
        within(client.request(garbage)).await.unwrap_err(),
        ErrorCode::INVALID_MESSAGE
    );
    let garbage = Packet::new("AskApi", &[0x0a, 0x09, b'x'][..]);
    assert_eq!(
        within(client.request(garbage)).await.unwrap_err(),
        ErrorCode::INVALID_MESSAGE
    );
    assert_eq!(add(&mut client, 1).await, Ok(1), "the handler never ran");
}

#[tokio::test]
async fn an_async_handler_awaits_and_question_mark_keeps_the_mesh_error_code() {
    let (_stage, mut client) = counter().await;
    let ask = AskApi {
        api_id: "api-9".into(),
    };
    let failed = within(client.request(Packet::from_message(&ask))).await;
    assert_eq!(failed.unwrap_err(), ErrorCode::SERVER_NOT_FOUND);
    assert_eq!(add(&mut client, 3).await, Ok(3), "the stage goes on");
}

#[tokio::test]
async fn an_error_reply_carries_its_packet() {
    let (_stage, mut client) = counter().await;
    let seq = client
        .request_nowait(Packet::from_message(&Refuse { why: "full".into() }))
        .await
        .unwrap();
    let frame = within(client.frame()).await.unwrap();
    assert_eq!(frame.msg_seq, seq);
    assert_eq!(frame.error_code, ErrorCode(1002));
    assert_eq!(
        (&*frame.msg_id, &frame.payload[..]),
        ("Refused", &b"full"[..])
    );
}

#[tokio::test]
async fn a_one_way_message_runs_its_handler_and_gets_no_reply() {
    let (_stage, mut client) = counter().await;
    client
        .send(Packet::from_message(&AddRequest { amount: 4 }))
        .await
        .unwrap();
    // The next frame is this request's reply: the one-way message got none.
    let seq = client
        .request_nowait(Packet::from_message(&AddRequest { amount: 1 }))
        .await
        .unwrap();
    let frame = within(client.frame()).await.unwrap();
    assert_eq!(frame.msg_seq, seq);
    assert_eq!(frame.into_packet().decode::<AddReply>().unwrap().total, 5);
}

#[test]
fn routes_list_their_ids() {
    assert!(ROUTES.handles_client("AddRequest"));
    assert!(!ROUTES.handles_client("Legacy"));
    assert!(!ROUTES.handles_server("AddRequest"));
    assert_eq!(
        format!("{:?}", *ROUTES),
        r#"StageRoutes { client: ["AddRequest", "AskApi", "Refuse"], server: [] }"#
    );
}
