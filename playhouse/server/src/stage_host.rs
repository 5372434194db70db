//! The stage host: a server's registered stage types, its live stages, and the one policy by
//! which a stage is found or created, whoever asks: a client logging in (the session) or
//! another server's create / get-or-create / destroy command (the mesh).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use playhouse_protocol::{ErrorCode, MsgId, Packet};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::sender::MeshSlot;
use crate::session_handle::SessionHandle;
use crate::stage::env::StageEnv;
use crate::stage::kind::StageKind;
use crate::stage::mailbox::{CreateRequest, JoinOutcome, StageHandle, StageMsg};
use crate::{ServerControl, Services};

/// The stage type a missing stage is created as.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StageType<'a> {
    /// The type the creator names (a mesh command). An unknown name is refused, even when
    /// the stage exists.
    Named(&'a str),
    /// The server's default stage type (a client's login). Without one, only stages that
    /// exist can be joined.
    Default,
}

/// A stage found or created.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) stage: StageHandle,
    /// Whether this call created it (its `on_create` may still be running).
    pub(crate) created: bool,
}

/// Why no stage was found or created, and the stage id to report it under (the generated
/// one, for a request with id 0 that got that far).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) stage_id: i64,
    pub(crate) code: ErrorCode,
}

/// A client's authentication, to be queued as a join in the stage it names.
#[derive(Debug)]
pub(crate) struct Login {
    /// The stage the client names; 0 asks for a fresh stage of the default type.
    pub(crate) stage_id: i64,
    pub(crate) session: SessionHandle,
    /// The authenticate reply id, e.g. `AuthenticateReply`.
    pub(crate) reply_id: MsgId,
    pub(crate) seq: u16,
    /// The authenticate request; it is also the creating packet of a stage it creates.
    pub(crate) packet: Packet,
}

/// A login queued in its stage: where it went, and where the stage answers.
#[derive(Debug)]
pub(crate) struct PendingJoin {
    pub(crate) stage: StageHandle,
    pub(crate) outcome: oneshot::Receiver<JoinOutcome>,
}

/// The default stage type names no registered stage type.
#[derive(Debug)]
pub(crate) struct UnknownStageType(pub(crate) String);

/// A server's stage types and live stages.
pub(crate) struct StageHost {
    kinds: HashMap<String, Arc<dyn StageKind>>,
    default_kind: Option<Arc<dyn StageKind>>,
    env: Arc<StageEnv>,
}

impl fmt::Debug for StageHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageHost")
            .field("stage_types", &self.kinds.keys().collect::<Vec<_>>())
            .field("stages", &self.len())
            .finish_non_exhaustive()
    }
}

impl StageHost {
    pub(crate) fn new(
        kinds: HashMap<String, Arc<dyn StageKind>>,
        default_stage_type: Option<&str>,
        env: StageEnv,
    ) -> Result<StageHost, UnknownStageType> {
        let default_kind = match default_stage_type {
            Some(name) => Some(
                kinds
                    .get(name)
                    .cloned()
                    .ok_or_else(|| UnknownStageType(name.to_owned()))?,
            ),
            None => None,
        };
        Ok(StageHost {
            kinds,
            default_kind,
            env: Arc::new(env),
        })
    }

    /// Finds stage `stage_id`, or creates it as `stage_type`: the one stage creation policy.
    ///
    /// In order: a named type must be registered ([`ErrorCode::INVALID_STAGE_TYPE`]); a
    /// stopping server opens nothing ([`ErrorCode::SYSTEM_ERROR`]); a live stage is returned
    /// as it is; a missing one needs a type to be created as ([`ErrorCode::STAGE_NOT_FOUND`]),
    /// gets a fresh id if it asked for id 0, must be let through by `admit` (the requester's
    /// own rate: [`ErrorCode::STAGE_CREATION_RATE_EXCEEDED`]), and must fit under
    /// `max_stages` ([`ErrorCode::STAGE_LIMIT_REACHED`]). `create` makes its creating request,
    /// only if it is created. A concurrent creation of the same id is joined, never doubled
    /// (see `StageRegistry::get_or_spawn`).
    pub(crate) fn open(
        &self,
        stage_type: StageType<'_>,
        stage_id: i64,
        admit: impl FnOnce() -> bool,
        create: impl FnOnce() -> CreateRequest,
    ) -> Result<Opened, Refused> {
        let refused = |stage_id, code| Refused { stage_id, code };
        let kind = match stage_type {
            StageType::Named(name) => Some(
                self.kinds
                    .get(name)
                    .ok_or(refused(stage_id, ErrorCode::INVALID_STAGE_TYPE))?,
            ),
            StageType::Default => self.default_kind.as_ref(),
        };
        if self.env.control.is_stopping() {
            return Err(refused(stage_id, ErrorCode::SYSTEM_ERROR));
        }
        let registry = &self.env.registry;
        if let Some(stage) = registry.get(stage_id) {
            return Ok(Opened {
                stage,
                created: false,
            });
        }
        let Some(kind) = kind else {
            return Err(refused(stage_id, ErrorCode::STAGE_NOT_FOUND));
        };
        let stage_id = match stage_id {
            0 => registry.generate_id(),
            id => id,
        };
        if !admit() {
            tracing::debug!("stage creation rate exceeded");
            self.env
                .metrics
                .stages_refused
                .fetch_add(1, Ordering::Relaxed);
            return Err(refused(stage_id, ErrorCode::STAGE_CREATION_RATE_EXCEEDED));
        }
        registry
            .get_or_spawn(&self.env, stage_id, kind.as_ref(), create)
            .map(|(stage, created)| Opened { stage, created })
            .map_err(|code| refused(stage_id, code))
    }

    /// A client's login: the stage it names (created with the default stage type if missing,
    /// when `admit` lets it), with the join queued in its mailbox. Waits while the mailbox is
    /// full.
    pub(crate) async fn login(
        &self,
        login: Login,
        admit: impl FnOnce() -> bool,
    ) -> Result<PendingJoin, Refused> {
        let Login {
            stage_id,
            session,
            reply_id,
            seq,
            packet,
        } = login;
        let create = || CreateRequest {
            packet: packet.clone(),
            done: None,
        };
        let Opened { stage, .. } = self.open(StageType::Default, stage_id, admit, create)?;
        let (done, outcome) = oneshot::channel();
        let join = StageMsg::Join {
            session,
            reply_id,
            seq,
            packet,
            done,
        };
        if stage.tx.send(join).await.is_err() {
            // The stage closed between the lookup and now.
            return Err(Refused {
                stage_id: stage.stage_id,
                code: ErrorCode::STAGE_NOT_FOUND,
            });
        }
        Ok(PendingJoin { stage, outcome })
    }

    /// Asks stage `stage_id` to close, without waiting: `Ok(false)` when there is no such
    /// stage; [`ErrorCode::STAGE_BUSY`] when its mailbox is full (the caller must never be
    /// parked on a stage).
    pub(crate) fn destroy(&self, stage_id: i64) -> Result<bool, ErrorCode> {
        let Some(stage) = self.env.registry.get(stage_id) else {
            return Ok(false);
        };
        match stage.tx.try_send(StageMsg::Close) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(_)) => Err(ErrorCode::STAGE_BUSY),
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(false),
        }
    }

    /// The live stage `stage_id`.
    pub(crate) fn get(&self, stage_id: i64) -> Option<StageHandle> {
        self.env.registry.get(stage_id)
    }

    /// How many stages are live.
    pub(crate) fn len(&self) -> usize {
        self.env.registry.len()
    }

    /// Messages waiting in every stage mailbox right now.
    pub(crate) fn queued(&self) -> usize {
        self.env.registry.queued()
    }

    /// The registered stage type names.
    pub(crate) fn stage_types(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }

    /// The services stage code and handlers see.
    pub(crate) fn services(&self) -> &Services {
        &self.env.services
    }

    /// Where the server's mesh node lives once it has joined one.
    pub(crate) fn mesh(&self) -> &MeshSlot {
        &self.env.mesh
    }

    /// The server's control handle (whether it is stopping).
    pub(crate) fn control(&self) -> &ServerControl {
        &self.env.control
    }

    /// Closes every stage by `deadline` whatever stage code does: all are asked at once (one
    /// stalled stage must not hold up the others), and those still running at the deadline
    /// are aborted.
    pub(crate) async fn close_all(&self, deadline: Instant) {
        let env = &self.env;
        let closes = env.registry.all().into_iter().map(|stage| async move {
            let _ = tokio::time::timeout_at(deadline, stage.tx.send(StageMsg::Close)).await;
        });
        futures_util::future::join_all(closes).await;
        env.tracker.close();
        if tokio::time::timeout_at(deadline, env.tracker.wait())
            .await
            .is_err()
        {
            let abandoned = env.registry.abort_all();
            tracing::warn!(
                abandoned,
                "stages still running at the shutdown deadline; their tasks were aborted"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use playhouse_protocol::ServerFrame;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::session_handle::{Outbound, QueuedBytes};
    use crate::stage::StageInit;
    use crate::stage::kind::TypedKind;
    use crate::testing::{EchoActor, EchoStage};

    fn host(
        default: Option<&str>,
        factory: impl Fn(&StageInit<'_>) -> EchoStage + Send + Sync + 'static,
    ) -> StageHost {
        let kind: Arc<dyn StageKind> = Arc::new(TypedKind::new("Room", factory, |_| EchoActor));
        let kinds = HashMap::from([("Room".to_owned(), kind)]);
        StageHost::new(kinds, default, StageEnv::standalone("test")).unwrap()
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

        let unknown = refusal(host.open(StageType::Named("Nope"), 3, || true, create));
        assert_eq!(unknown.code, ErrorCode::INVALID_STAGE_TYPE);
        // Without a default stage type a login only joins stages that exist.
        let missing = refusal(host.open(StageType::Default, 3, || true, create));
        assert_eq!(
            missing,
            Refused {
                stage_id: 3,
                code: ErrorCode::STAGE_NOT_FOUND
            }
        );
        // The caller's creation rate is asked only when a stage would be created, after the
        // fresh id is chosen.
        let limited = refusal(host.open(StageType::Named("Room"), 0, || false, create));
        assert_eq!(limited.code, ErrorCode::STAGE_CREATION_RATE_EXCEEDED);
        assert!(limited.stage_id >= generated);
        assert_eq!(host.len(), 0);

        let opened = host
            .open(StageType::Named("Room"), 0, || true, create)
            .unwrap();
        assert!(opened.created);
        let stage_id = opened.stage.stage_id;
        assert!(stage_id > limited.stage_id);
        let again = host
            .open(StageType::Default, stage_id, || unreachable!(), create)
            .unwrap();
        assert!(!again.created);
        assert!(again.stage.tx.same_channel(&opened.stage.tx));

        host.control().stop();
        let stopping = refusal(host.open(StageType::Named("Room"), stage_id, || true, create));
        assert_eq!(stopping.code, ErrorCode::SYSTEM_ERROR);
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
}
