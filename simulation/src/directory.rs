//! The server directory of a simulated cluster: the role Redis plays in production (a store
//! outside every server), with entries expiring on the *simulation's* clock.
//!
//! `MemoryDirectory` cannot be shared between simulated hosts: each host has its own tokio
//! clock (turmoil models clock skew), so an expiry instant written by one host means nothing
//! to another. Here time is turmoil's global simulated time. Scenarios can also make the
//! directory lose a server's entry ([`SimDirectory::suppress`]), as an operator or an expired
//! Redis key would, or every entry at once ([`SimDirectory::wipe`]), as an empty Redis restart
//! would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use playhouse_mesh::{Directory, DirectoryError, ServerInfo};

use crate::trace::now;

#[derive(Debug, Default)]
struct Inner {
    /// Entries by server id, with their expiry in simulated time.
    entries: BTreeMap<String, (ServerInfo, Duration)>,
    /// Servers whose entry is hidden and whose publishes are ignored.
    suppressed: BTreeSet<String>,
}

/// A directory shared by every host of one simulation. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct SimDirectory {
    inner: Arc<Mutex<Inner>>,
}

impl SimDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        SimDirectory::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops `server_id`'s entry and ignores its publishes until [`SimDirectory::restore`].
    pub fn suppress(&self, server_id: &str) {
        let mut inner = self.lock();
        inner.entries.remove(server_id);
        inner.suppressed.insert(server_id.to_owned());
    }

    /// Lets `server_id` publish again.
    pub fn restore(&self, server_id: &str) {
        self.lock().suppressed.remove(server_id);
    }

    /// Drops every entry, as an empty restart of the store would; servers publish again at
    /// their next refresh.
    pub fn wipe(&self) {
        self.lock().entries.clear();
    }

    /// The live entries, by id.
    pub fn ids(&self) -> Vec<String> {
        let now = now();
        self.lock()
            .entries
            .iter()
            .filter(|(_, (_, expires))| *expires > now)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

impl Directory for SimDirectory {
    fn publish<'a>(
        &'a self,
        info: &'a ServerInfo,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), DirectoryError>> {
        let expires = now() + ttl;
        let mut inner = self.lock();
        if !inner.suppressed.contains(&info.server_id) {
            inner
                .entries
                .insert(info.server_id.clone(), (info.clone(), expires));
        }
        Box::pin(async { Ok(()) })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ServerInfo>, DirectoryError>> {
        let now = now();
        let mut inner = self.lock();
        inner.entries.retain(|_, (_, expires)| *expires > now);
        let list = inner
            .entries
            .values()
            .map(|(info, _)| info.clone())
            .collect();
        Box::pin(async move { Ok(list) })
    }

    fn remove<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, Result<(), DirectoryError>> {
        self.lock().entries.remove(server_id);
        Box::pin(async { Ok(()) })
    }
}
