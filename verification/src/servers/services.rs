//! Shared services registered on the verification servers (the original's DI): stage and actor
//! factories fetch them from `Services`, and verifiers observe them only through replies.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Ids for service and actor instances, so a client can tell instances apart.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// A fresh, process-wide unique instance id.
pub(crate) fn next_instance_id() -> u64 {
    NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed)
}

/// A singleton with a value; its instance id proves that stage and actor got the same one.
#[derive(Debug)]
pub struct GreetingService {
    greeting: String,
    instance_id: u64,
}

impl GreetingService {
    /// A service answering with `greeting`.
    pub fn new(greeting: impl Into<String>) -> Self {
        GreetingService {
            greeting: greeting.into(),
            instance_id: next_instance_id(),
        }
    }

    /// The configured greeting.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// Which instance this is.
    pub fn instance_id(&self) -> u64 {
        self.instance_id
    }
}

/// A counter shared by every stage and actor of a server.
#[derive(Debug, Default)]
pub struct SharedCounter {
    value: AtomicU64,
}

impl SharedCounter {
    /// Adds one and returns the new value.
    pub fn increment(&self) -> u64 {
        self.value.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Where destroyed stages leave their callback history, so a client can ask another stage
/// what `on_destroy` saw.
#[derive(Debug, Default)]
pub struct StageJournal {
    closed: Mutex<HashMap<i64, Vec<String>>>,
}

impl StageJournal {
    /// Records the final history of a destroyed stage.
    pub fn record(&self, stage_id: i64, callbacks: Vec<String>) {
        self.lock().insert(stage_id, callbacks);
    }

    /// The history a destroyed stage left, if any.
    pub fn history(&self, stage_id: i64) -> Option<Vec<String>> {
        self.lock().get(&stage_id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Vec<String>>> {
        self.closed.lock().unwrap_or_else(|e| e.into_inner())
    }
}
