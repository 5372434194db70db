//! The stage host: a server's registered stage types, its live stages, and the one policy by
//! which a stage is found or created, whoever asks: a client logging in (the session) or
//! another server's create / get-or-create / destroy command (the mesh).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use playhouse_protocol::{ErrorCode, MsgId, Packet};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::actor::ActorInit;
use super::context::StageInit;
use super::env::StageEnv;
use super::handle::{CreateRequest, JoinOutcome, StageHandle};
use super::model::{MovableStage, Stage};
use super::moving::{RestoreRequest, StageSnapshot};
use super::registry::StageRegistry;
use super::spawner::{StageSpawner, TypedSpawner};
use crate::config::PlayConfig;
use crate::limits::Admission;
use crate::metrics::Metrics;
use crate::sender::MeshHandle;
use crate::services::{ServerControl, Services};
use crate::session::handle::SessionHandle;

/// The registered stage types by name, their concrete types erased.
#[derive(Default)]
pub(crate) struct StageTypes(HashMap<String, Arc<dyn StageSpawner>>);

impl fmt::Debug for StageTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl StageTypes {
    /// Registers stage type `name` with the user's factories (replacing one of that name).
    pub(crate) fn register<S: Stage>(
        &mut self,
        name: String,
        make_stage: impl Fn(&StageInit<'_>) -> S + Send + Sync + 'static,
        make_actor: impl Fn(&ActorInit<'_>) -> S::Actor + Send + Sync + 'static,
    ) {
        let spawner = TypedSpawner::<S>::new(&name, make_stage, make_actor);
        self.0.insert(name, Arc::new(spawner));
    }

    /// Registers movable stage type `name` (see `MovableStage`).
    pub(crate) fn register_movable<S: MovableStage>(
        &mut self,
        name: String,
        make_stage: impl Fn(&StageInit<'_>) -> S + Send + Sync + 'static,
        make_actor: impl Fn(&ActorInit<'_>) -> S::Actor + Send + Sync + 'static,
    ) {
        let spawner = TypedSpawner::<S>::movable(&name, make_stage, make_actor);
        self.0.insert(name, Arc::new(spawner));
    }

    /// The registered names.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// What a host's stages share with the server that runs them.
#[derive(Debug)]
pub(crate) struct HostParts {
    pub(crate) services: Services,
    pub(crate) control: ServerControl,
    pub(crate) metrics: Arc<Metrics>,
}

/// The stage type a missing stage is created as.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CreateAs<'a> {
    /// The type the creator names (a mesh command). An unknown name is refused, even when
    /// the stage exists.
    Named(&'a str),
    /// The server's default stage type (a client's login that names no type). Without one,
    /// only stages that exist can be joined.
    Default,
    /// The type a client names at login: an unknown name is refused, a live stage must be of
    /// that type, and a missing one is created only if clients may create that type (the
    /// default type and the server's client stage types).
    Client(&'a str),
}

/// Which stage types a client's login may create.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClientTypes<'a> {
    /// The type a login that names none creates.
    pub(crate) default: Option<&'a str>,
    /// The types a login may create by naming them.
    pub(crate) creatable: &'a [String],
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
    /// The stage the client names; 0 asks for a fresh stage.
    pub(crate) stage_id: i64,
    /// The stage type the client names (its hello's), or `None` for the default type.
    pub(crate) stage_type: Option<Arc<str>>,
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

/// A stage type named for clients that is not registered: the default one, or one of the
/// client stage types.
#[derive(Debug)]
pub(crate) enum UnknownStageType {
    /// The default stage type.
    Default(String),
    /// One of the types clients may create by name.
    Client(String),
}

/// A server's stage types and live stages.
pub(crate) struct StageHost {
    types: StageTypes,
    default_type: Option<Arc<dyn StageSpawner>>,
    /// The types a client's login may create by naming them (the default type included).
    client_creatable: HashSet<Arc<str>>,
    /// Where clients reach this server, by transport name (what a moving stage's players are
    /// told when their stage moves here).
    endpoints: Mutex<BTreeMap<String, String>>,
    env: Arc<StageEnv>,
}

impl fmt::Debug for StageHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageHost")
            .field("stage_types", &self.types)
            .field("stages", &self.len())
            .finish_non_exhaustive()
    }
}

impl StageHost {
    /// A host for `types`, with the limits and timeouts of `config`; the types `clients` may
    /// create must be among them.
    pub(crate) fn new(
        types: StageTypes,
        clients: ClientTypes<'_>,
        config: &PlayConfig,
        parts: HostParts,
    ) -> Result<StageHost, UnknownStageType> {
        let HostParts {
            services,
            control,
            metrics,
        } = parts;
        let env = StageEnv {
            services,
            control,
            metrics,
            tracker: TaskTracker::new(),
            mailbox_capacity: config.stage_mailbox_capacity.max(1),
            registry: StageRegistry::default(),
            mesh: MeshHandle::default(),
            actor_ttl: config.disconnected_actor_ttl,
            idle_timeout: config.stage_idle_timeout,
            max_stages: config.max_stages,
        };
        let default_type = match clients.default {
            Some(name) => Some(
                types
                    .0
                    .get(name)
                    .cloned()
                    .ok_or_else(|| UnknownStageType::Default(name.to_owned()))?,
            ),
            None => None,
        };
        let mut client_creatable: HashSet<Arc<str>> = HashSet::new();
        for name in clients.creatable {
            let spawner = types
                .0
                .get(name)
                .ok_or_else(|| UnknownStageType::Client(name.clone()))?;
            client_creatable.insert(Arc::clone(spawner.name()));
        }
        if let Some(default) = &default_type {
            client_creatable.insert(Arc::clone(default.name()));
        }
        Ok(StageHost {
            types,
            default_type,
            client_creatable,
            endpoints: Mutex::default(),
            env: Arc::new(env),
        })
    }

    /// A host outside any server, for the stage harness and tests: no mesh, no limits,
    /// actors and stages stay until they leave or close.
    pub(crate) fn standalone(types: StageTypes, server_id: &str) -> StageHost {
        StageHost {
            types,
            default_type: None,
            client_creatable: HashSet::new(),
            endpoints: Mutex::default(),
            env: Arc::new(StageEnv::standalone(server_id)),
        }
    }

    /// Finds stage `stage_id`, or creates it as `stage_type`: the one stage creation policy.
    ///
    /// In order: a named type must be registered ([`ErrorCode::INVALID_STAGE_TYPE`]); a
    /// stopping server opens nothing ([`ErrorCode::SYSTEM_ERROR`]); a live stage is returned
    /// as it is (to a client naming a type, only if it is of that type:
    /// [`ErrorCode::INVALID_STAGE_TYPE`]); a missing one needs a type to be created as
    /// ([`ErrorCode::STAGE_NOT_FOUND`]), and a draining server creates none
    /// ([`ErrorCode::SERVER_DRAINING`]),
    /// gets a fresh id if it asked for id 0, must be let through by `admit` (the requester's
    /// own rate, a client's source quota: the code it gives; the new stage keeps the permit
    /// it hands out until it closes), and must fit under
    /// `max_stages` ([`ErrorCode::STAGE_LIMIT_REACHED`]). `create` makes its creating request,
    /// only if it is created. A concurrent creation of the same id is joined, never doubled
    /// (see `StageRegistry::get_or_spawn`).
    pub(crate) fn open(
        &self,
        create_as: CreateAs<'_>,
        stage_id: i64,
        admit: impl Admission,
        create: impl FnOnce() -> CreateRequest,
    ) -> Result<Opened, Refused> {
        let refused = |stage_id, code| Refused { stage_id, code };
        let named = |name| {
            self.types
                .0
                .get(name)
                .ok_or(refused(stage_id, ErrorCode::INVALID_STAGE_TYPE))
        };
        let spawner = match create_as {
            CreateAs::Named(name) => Some(named(name)?),
            CreateAs::Default => self.default_type.as_ref(),
            CreateAs::Client(name) => {
                Some(named(name)?).filter(|_| self.client_creatable.contains(name))
            }
        };
        if self.env.control.is_stopping() {
            return Err(refused(stage_id, ErrorCode::SYSTEM_ERROR));
        }
        let registry = &self.env.registry;
        // A client naming a type joins only a stage of that type.
        let of_type = |stage: StageHandle| match create_as {
            CreateAs::Client(name) if stage.stage_type() != name => {
                Err(refused(stage_id, ErrorCode::INVALID_STAGE_TYPE))
            }
            _ => Ok(stage),
        };
        if let Some(stage) = registry.get(stage_id) {
            return Ok(Opened {
                stage: of_type(stage)?,
                created: false,
            });
        }
        let Some(spawner) = spawner else {
            return Err(refused(stage_id, ErrorCode::STAGE_NOT_FOUND));
        };
        if self.env.control.is_draining() {
            return Err(refused(stage_id, ErrorCode::SERVER_DRAINING));
        }
        let stage_id = match stage_id {
            0 => registry.generate_id(),
            id => id,
        };
        let permit = admit.admit().map_err(|code| {
            tracing::debug!(%code, "stage creation refused");
            self.env.metrics.stage_refused();
            refused(stage_id, code)
        })?;
        let env = &self.env;
        let spawn = |incarnation| spawner.spawn(env, stage_id, incarnation, create());
        match registry.get_or_spawn(stage_id, spawner.name(), env.max_stages, permit, spawn) {
            Ok((stage, created)) => {
                if created {
                    env.metrics.stage_created();
                }
                let stage = of_type(stage)?;
                Ok(Opened { stage, created })
            }
            Err(code) => {
                env.metrics.stage_refused();
                Err(refused(stage_id, code))
            }
        }
    }

    /// A client's login: the stage it names (when missing, created as the type the client
    /// names, or the default stage type, when `admit` lets it; see [`CreateAs::Client`]), with
    /// the join queued in its mailbox. Waits while the mailbox is
    /// full.
    pub(crate) async fn login(
        &self,
        login: Login,
        admit: impl Admission,
    ) -> Result<PendingJoin, Refused> {
        let Login {
            stage_id,
            stage_type,
            session,
            reply_id,
            seq,
            packet,
        } = login;
        let create = || CreateRequest {
            packet: packet.clone(),
            done: None,
        };
        let create_as = match stage_type.as_deref() {
            Some(name) => CreateAs::Client(name),
            None => CreateAs::Default,
        };
        let Opened { stage, .. } = self.open(create_as, stage_id, admit, create)?;
        match stage.join(session, reply_id, seq, packet).await {
            Some(outcome) => Ok(PendingJoin { stage, outcome }),
            // The stage closed between the lookup and now.
            None => Err(Refused {
                stage_id: stage.stage_id(),
                code: ErrorCode::STAGE_NOT_FOUND,
            }),
        }
    }

    /// Runs stage `stage_id` of `stage_type`, moved here from another server, from
    /// `snapshot`: its handle and where the restore answers. Refused when the type is not
    /// registered or not movable ([`ErrorCode::INVALID_STAGE_TYPE`]), the server stops
    /// ([`ErrorCode::SYSTEM_ERROR`]) or drains ([`ErrorCode::SERVER_DRAINING`]), the id is
    /// taken ([`ErrorCode::STAGE_ALREADY_EXISTS`]) or `max_stages` is reached.
    pub(crate) fn restore(
        &self,
        stage_type: &str,
        stage_id: i64,
        snapshot: StageSnapshot,
    ) -> Result<(StageHandle, oneshot::Receiver<Result<(), ErrorCode>>), ErrorCode> {
        let spawner = self
            .types
            .0
            .get(stage_type)
            .filter(|spawner| spawner.is_movable())
            .ok_or(ErrorCode::INVALID_STAGE_TYPE)?;
        if self.env.control.is_stopping() {
            return Err(ErrorCode::SYSTEM_ERROR);
        }
        if self.env.control.is_draining() {
            return Err(ErrorCode::SERVER_DRAINING);
        }
        let (done, restored) = oneshot::channel();
        let request = RestoreRequest { snapshot, done };
        let env = &self.env;
        let spawn = |incarnation| spawner.restore(env, stage_id, incarnation, request);
        match env
            .registry
            .get_or_spawn(stage_id, spawner.name(), env.max_stages, None, spawn)
        {
            Ok((stage, true)) => {
                env.metrics.stage_created();
                Ok((stage, restored))
            }
            Ok((_, false)) => Err(ErrorCode::STAGE_ALREADY_EXISTS),
            Err(code) => Err(code),
        }
    }

    /// Where stage `stage_id` went, if it moved away from this server.
    pub(crate) fn moved_to(&self, stage_id: i64) -> Option<Arc<str>> {
        self.env.registry.moved_to(stage_id)
    }

    /// Whether stages of type `stage_type` can move.
    pub(crate) fn is_movable(&self, stage_type: &str) -> bool {
        self.types.0.get(stage_type).is_some_and(|s| s.is_movable())
    }

    /// Every live stage.
    pub(crate) fn stages(&self) -> Vec<StageHandle> {
        self.env.registry.all()
    }

    /// Records where clients reach this server over `transport`.
    pub(crate) fn set_endpoint(&self, transport: &str, endpoint: String) {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        endpoints.insert(transport.to_owned(), endpoint);
    }

    /// Where clients reach this server, by transport.
    pub(crate) fn endpoints(&self) -> BTreeMap<String, String> {
        let endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        endpoints.clone()
    }

    /// Asks stage `stage_id` to close, without waiting: `Ok(false)` when there is no such
    /// stage; [`ErrorCode::STAGE_BUSY`] when its mailbox is full (the caller must never be
    /// parked on a stage).
    pub(crate) fn destroy(&self, stage_id: i64) -> Result<bool, ErrorCode> {
        match self.env.registry.get(stage_id) {
            Some(stage) => stage.try_close(),
            None => Ok(false),
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
        self.types.names()
    }

    /// The services stage code and handlers see.
    pub(crate) fn services(&self) -> &Services {
        &self.env.services
    }

    /// Where the server's mesh node lives once it has joined one.
    pub(crate) fn mesh(&self) -> &MeshHandle {
        &self.env.mesh
    }

    /// The server's control handle (whether it is stopping).
    pub(crate) fn control(&self) -> &ServerControl {
        &self.env.control
    }

    /// Waits until every stage has ended, or `deadline`; whether they all did. For a draining
    /// server, which creates no stage meanwhile.
    pub(crate) async fn all_ended(&self, deadline: Instant) -> bool {
        let tracker = &self.env.tracker;
        tracker.close();
        tokio::time::timeout_at(deadline, tracker.wait())
            .await
            .is_ok()
    }

    /// Closes every stage by `deadline` whatever stage code does: all are asked at once (one
    /// stalled stage must not hold up the others), and those still running at the deadline
    /// are aborted. With a `farewell`, the clients' connections are closed with that code.
    pub(crate) async fn close_all(&self, deadline: Instant, farewell: Option<ErrorCode>) {
        let env = &self.env;
        let closes = env.registry.all().into_iter().map(|stage| async move {
            let _ = tokio::time::timeout_at(deadline, stage.close(farewell)).await;
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
mod tests;
