//! Tests of the stage host: the one find-or-create policy, client stage types, a failed
//! factory.

use std::sync::atomic::{AtomicUsize, Ordering};

use playhouse_protocol::ServerFrame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::session::handle::{Outbound, QueuedBytes, SessionHandle};
use crate::testing::{EchoActor, EchoStage};

fn host(
    default: Option<&str>,
    factory: impl Fn(&StageInit<'_>) -> EchoStage + Send + Sync + 'static,
) -> StageHost {
    let clients = ClientTypes {
        default,
        creatable: &[],
    };
    host_for(clients, factory)
}

/// A host with the types `Room` (made by `factory`), `Lobby` and `Match`.
fn host_for(
    clients: ClientTypes<'_>,
    factory: impl Fn(&StageInit<'_>) -> EchoStage + Send + Sync + 'static,
) -> StageHost {
    let mut types = StageTypes::default();
    types.register("Room".to_owned(), factory, |_| EchoActor);
    types.register("Lobby".to_owned(), |_| EchoStage, |_| EchoActor);
    types.register("Match".to_owned(), |_| EchoStage, |_| EchoActor);
    let parts = HostParts {
        services: Services::default(),
        control: ServerControl::new(Arc::from("test")),
        metrics: Arc::default(),
    };
    StageHost::new(types, clients, &PlayConfig::default(), parts).unwrap()
}

fn create() -> CreateRequest {
    CreateRequest {
        packet: Packet::empty("Create"),
        done: None,
    }
}

fn refusal(opened: Result<Opened, Refused>) -> Refused {
    opened.map(|_| ()).unwrap_err()
}

#[tokio::test]
async fn open_applies_one_policy_in_order() {
    let host = host(None, |_| EchoStage);
    let generated = 1 << 32;

    let unknown = refusal(host.open(CreateAs::Named("Nope"), 3, || true, create));
    assert_eq!(unknown.code, ErrorCode::INVALID_STAGE_TYPE);
    // Without a default stage type a login only joins stages that exist.
    let missing = refusal(host.open(CreateAs::Default, 3, || true, create));
    assert_eq!(
        missing,
        Refused {
            stage_id: 3,
            code: ErrorCode::STAGE_NOT_FOUND
        }
    );
    // The caller's creation rate is asked only when a stage would be created, after the
    // fresh id is chosen.
    let limited = refusal(host.open(CreateAs::Named("Room"), 0, || false, create));
    assert_eq!(limited.code, ErrorCode::STAGE_CREATION_RATE_EXCEEDED);
    assert!(limited.stage_id >= generated);
    assert_eq!(host.len(), 0);

    let opened = host
        .open(CreateAs::Named("Room"), 0, || true, create)
        .unwrap();
    assert!(opened.created);
    let stage_id = opened.stage.stage_id();
    assert!(stage_id > limited.stage_id);
    let again = host
        .open(
            CreateAs::Default,
            stage_id,
            || -> bool { unreachable!() },
            create,
        )
        .unwrap();
    assert!(!again.created);
    assert!(again.stage.same_stage(&opened.stage));

    host.control().stop();
    let stopping = refusal(host.open(CreateAs::Named("Room"), stage_id, || true, create));
    assert_eq!(stopping.code, ErrorCode::SYSTEM_ERROR);
}

#[tokio::test]
async fn a_client_naming_a_type_gets_that_type_or_a_code() {
    let creatable = ["Lobby".to_owned()];
    let clients = ClientTypes {
        default: Some("Room"),
        creatable: &creatable,
    };
    let host = host_for(clients, |_| EchoStage);
    let code = |opened| refusal(opened).code;

    // Unregistered: refused whether or not the stage exists.
    let nope = host.open(CreateAs::Client("Nope"), 5, || true, create);
    assert_eq!(code(nope), ErrorCode::INVALID_STAGE_TYPE);
    // Creatable by clients: the named type, and the default type too.
    let lobby = host.open(CreateAs::Client("Lobby"), 5, || true, create);
    let lobby = lobby.unwrap();
    assert!(lobby.created);
    assert_eq!(lobby.stage.stage_type(), "Lobby");
    let room = host.open(CreateAs::Client("Room"), 6, || true, create);
    assert_eq!(room.unwrap().stage.stage_type(), "Room");
    // Registered but not creatable by clients: joined when it exists, never created.
    let hidden = host.open(CreateAs::Client("Match"), 7, || true, create);
    assert_eq!(code(hidden), ErrorCode::STAGE_NOT_FOUND);
    let made = host.open(CreateAs::Named("Match"), 7, || true, create);
    assert!(made.unwrap().created);
    let joined = host.open(
        CreateAs::Client("Match"),
        7,
        || -> bool { unreachable!() },
        create,
    );
    assert_eq!(joined.unwrap().stage.stage_type(), "Match");
    // A live stage of another type is not joined under a different name.
    let other = host.open(CreateAs::Client("Lobby"), 7, || true, create);
    assert_eq!(code(other), ErrorCode::INVALID_STAGE_TYPE);
    // Naming no type keeps the old rule: any live stage, else the default type.
    let any = host.open(CreateAs::Default, 5, || -> bool { unreachable!() }, create);
    assert_eq!(any.unwrap().stage.stage_type(), "Lobby");
    assert_eq!(host.len(), 3);
}

#[test]
fn client_types_must_be_registered() {
    let parts = || HostParts {
        services: Services::default(),
        control: ServerControl::new(Arc::from("test")),
        metrics: Arc::default(),
    };
    let types = || {
        let mut types = StageTypes::default();
        types.register("Room".to_owned(), |_| EchoStage, |_| EchoActor);
        types
    };
    let config = PlayConfig::default();
    let creatable = ["Lobby".to_owned()];
    let clients = ClientTypes {
        default: Some("Room"),
        creatable: &creatable,
    };
    let built = StageHost::new(types(), clients, &config, parts());
    assert!(matches!(built, Err(UnknownStageType::Client(name)) if name == "Lobby"));
    let clients = ClientTypes {
        default: Some("Lobby"),
        creatable: &[],
    };
    let built = StageHost::new(types(), clients, &config, parts());
    assert!(matches!(built, Err(UnknownStageType::Default(name)) if name == "Lobby"));
}

#[tokio::test]
async fn a_login_into_a_stage_whose_factory_panics_is_refused_and_frees_the_id() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let host = host(Some("Room"), move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("the first stage factory call fails");
        }
        EchoStage
    });
    let (tx, mut rx) = mpsc::channel(16);
    let session = SessionHandle::new(
        1,
        tx,
        CancellationToken::new(),
        Arc::default(),
        Arc::new(QueuedBytes::new(usize::MAX)),
    );
    let login = |seq| Login {
        stage_id: 9,
        stage_type: None,
        session: session.clone(),
        reply_id: MsgId::from_static("AuthenticateReply"),
        seq,
        packet: Packet::new("Authenticate", "alice"),
    };

    let pending = host.login(login(1), || true).await.unwrap();
    assert!(matches!(pending.outcome.await, Ok(JoinOutcome::Rejected)));
    let Some(Outbound::Frame(reply)) = rx.recv().await else {
        panic!("the client is answered");
    };
    let refused = ServerFrame::new(
        "AuthenticateReply",
        1,
        9,
        ErrorCode::STAGE_CREATION_FAILED,
        bytes::Bytes::new(),
    );
    assert_eq!(reply, refused);
    assert!(host.get(9).is_none());

    // The id is free: the next login creates the stage and joins it.
    let pending = host.login(login(2), || true).await.unwrap();
    assert!(matches!(
        pending.outcome.await,
        Ok(JoinOutcome::Joined { .. })
    ));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}
