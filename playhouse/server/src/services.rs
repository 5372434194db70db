//! Shared services (the original's dependency injection): a typed map of `Arc<T>` that stage
//! and actor factories and API handlers can fetch.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

/// A read-only, cheaply cloned map from a type to one shared instance of it.
///
/// ```
/// use std::sync::Arc;
/// use playhouse::Services;
///
/// struct Greeting(&'static str);
/// let services = Services::builder().with(Arc::new(Greeting("hello"))).build();
/// assert_eq!(services.get::<Greeting>().unwrap().0, "hello");
/// assert!(services.get::<String>().is_none());
/// ```
#[derive(Clone, Default)]
pub struct Services {
    map: Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Services {
    /// Starts an empty set of services.
    pub fn builder() -> ServicesBuilder {
        ServicesBuilder::default()
    }

    /// The registered instance of `T`, if any.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|service| Arc::clone(service).downcast::<T>().ok())
    }

    /// How many services are registered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no service is registered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services")
            .field("len", &self.map.len())
            .finish()
    }
}

/// Collects services before a server starts.
#[derive(Default)]
pub struct ServicesBuilder {
    map: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl ServicesBuilder {
    /// Registers `service` as the instance of `T`, replacing any earlier one.
    #[must_use]
    pub fn with<T: Any + Send + Sync>(mut self, service: Arc<T>) -> Self {
        self.insert(service);
        self
    }

    /// Registers `service` as the instance of `T`, replacing any earlier one.
    pub fn insert<T: Any + Send + Sync>(&mut self, service: Arc<T>) {
        self.map.insert(TypeId::of::<T>(), service);
    }

    /// Freezes the map.
    pub fn build(self) -> Services {
        Services {
            map: Arc::new(self.map),
        }
    }
}

impl fmt::Debug for ServicesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServicesBuilder")
            .field("len", &self.map.len())
            .finish()
    }
}

/// The server's own control handle: its id, and a way to ask it to stop gracefully.
/// Reachable from stage and actor factories like any shared service.
#[derive(Clone, Debug)]
pub struct ServerControl {
    server_id: Arc<str>,
    shutdown: CancellationToken,
    draining: Arc<AtomicBool>,
}

impl ServerControl {
    pub(crate) fn new(server_id: Arc<str>) -> Self {
        ServerControl {
            server_id,
            shutdown: CancellationToken::new(),
            draining: Arc::default(),
        }
    }

    /// Whether the server is draining (see `PlayServer::drain`): it creates no stage and
    /// admits no new player, and stops once its stages are gone.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the server draining; whether this call did (`false`: it already was).
    pub(crate) fn start_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }

    /// The server's id (e.g. `play-1`).
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Asks the server to stop; the owner of the server sees it through `stopped()`.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Resolves once a stop is requested.
    pub async fn stop_requested(&self) {
        self.shutdown.cancelled().await;
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.shutdown
    }
}
