//! The registry a new connection looks a resume token up in, and what it hands over to the
//! session it resumes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use playhouse_protocol::{Capabilities, ResumeToken, ServerCodec};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use crate::session::write_codec::Writer;

use crate::limits::throttled;

/// The read half of a connection, whatever its transport.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// A new connection handed to the session it resumes.
pub(crate) struct Attach {
    pub(crate) reader: FramedRead<BoxRead, ServerCodec>,
    pub(crate) writer: Writer,
    /// The `@Resume@` request's sequence, for the reply.
    pub(crate) seq: u16,
    /// Server frames the client says it received.
    pub(crate) received: u64,
    /// What the new connection's hello granted.
    pub(crate) capabilities: Capabilities,
    pub(crate) transport: &'static str,
}

/// Where a session waits for a connection that resumes it. Boxed: a channel allocates room
/// for a block of messages up front, and an idle resumable session should cost little.
pub(crate) type AttachSender = mpsc::Sender<Box<Attach>>;

/// Tokens of the resumable sessions alive on this server, and of those that moved away with
/// their stage (a client that was away during the move is told where to resume).
#[derive(Debug, Default)]
pub(crate) struct ResumeRegistry {
    sessions: Mutex<HashMap<ResumeToken, AttachSender>>,
    moved: Mutex<HashMap<ResumeToken, (Endpoints, Instant)>>,
    /// Until when a session that moved while its client was away may still come back here.
    away_until: Mutex<Option<Instant>>,
}

/// A server's client endpoints by transport name.
pub(crate) type Endpoints = Arc<BTreeMap<String, String>>;

/// Most moved sessions remembered (the oldest are forgotten first).
const MAX_MOVED: usize = 100_000;

impl ResumeRegistry {
    /// A fresh token for `sender`'s session (128 bits from the OS's generator).
    pub(crate) fn register(&self, sender: AttachSender) -> Option<ResumeToken> {
        let mut token = [0u8; 16];
        if let Err(error) = getrandom::fill(&mut token) {
            throttled!(error, %error, "no randomness for a resume token; session not resumable");
            return None;
        }
        let token = ResumeToken(token);
        self.lock().insert(token, sender);
        Some(token)
    }

    /// Registers `sender`'s session under `token`, a token issued elsewhere (a session that
    /// moved here with its stage).
    pub(crate) fn register_as(&self, token: ResumeToken, sender: AttachSender) {
        self.lock().insert(token, sender);
    }

    /// Remembers that session `token` moved to the server at `endpoints`, for `window` (its
    /// resume window: a client away longer has lost it anyway).
    pub(crate) fn moved_away(&self, token: ResumeToken, endpoints: Endpoints, window: Duration) {
        let mut moved = self.moved.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        moved.retain(|_, (_, until)| *until > now);
        if moved.len() >= MAX_MOVED
            && let Some(oldest) = moved
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(t, _)| *t)
        {
            moved.remove(&oldest);
        }
        moved.insert(token, (endpoints, now + window));
    }

    /// Notes that a session moved while its client was away: it may come back here to learn
    /// where, until `until`.
    pub(crate) fn moved_while_away(&self, until: Instant) {
        let mut away = self
            .away_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *away = Some(away.map_or(until, |at| at.max(until)));
    }

    /// Until when a client that was away during its stage's move may come back here.
    pub(crate) fn away_until(&self) -> Option<Instant> {
        *self
            .away_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Where session `token` moved, if it did (within its window).
    pub(crate) fn moved_to(&self, token: &ResumeToken) -> Option<Endpoints> {
        let moved = self.moved.lock().unwrap_or_else(PoisonError::into_inner);
        moved
            .get(token)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(endpoints, _)| Arc::clone(endpoints))
    }

    /// The session `token` names, if it is alive.
    pub(crate) fn find(&self, token: &ResumeToken) -> Option<AttachSender> {
        self.lock().get(token).cloned()
    }

    pub(crate) fn remove(&self, token: &ResumeToken) {
        self.lock().remove(token);
    }

    /// Resumable sessions alive (connected or waiting for their client).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ResumeToken, AttachSender>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A resume request on this connection, for the session it names.
#[derive(Debug)]
pub(crate) struct Handover {
    pub(crate) target: AttachSender,
    /// The `@Resume@` request's sequence, for the reply.
    pub(crate) seq: u16,
    /// Server frames the client says it received.
    pub(crate) received: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hands_out_distinct_tokens() {
        let registry = ResumeRegistry::default();
        let (tx, _rx) = mpsc::channel(1);
        let a = registry.register(tx.clone()).unwrap();
        let b = registry.register(tx).unwrap();
        assert_ne!(a, b);
        assert!(registry.find(&a).is_some());
        registry.remove(&a);
        assert!(registry.find(&a).is_none());
        assert_eq!(registry.len(), 1);
    }
}
