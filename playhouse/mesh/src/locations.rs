//! Where stages that moved to another Play server live now, as this node has learned it: a
//! request to a stage at its old server is answered [`ErrorCode::STAGE_MOVED`] with the new
//! server's id, recorded here, and every later message to that stage goes straight there.
//!
//! Bounded: at most [`MAX_LOCATIONS`] entries, each forgotten after [`LOCATION_TTL`] (a
//! stage that moves again is learned anew the same way).
//!
//! [`ErrorCode::STAGE_MOVED`]: playhouse_protocol::ErrorCode::STAGE_MOVED

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Most stage locations remembered.
pub(crate) const MAX_LOCATIONS: usize = 100_000;
/// How long a learned location is used.
pub(crate) const LOCATION_TTL: Duration = Duration::from_secs(600);

/// Stage `(old server, stage id)` → the server it moved to.
#[derive(Debug, Default)]
pub(crate) struct StageLocations {
    moved: Mutex<HashMap<(String, i64), (String, Instant)>>,
}

impl StageLocations {
    /// Where stage `stage_id` of server `target` lives now, when it moved (as far as this
    /// node knows); `None` when it lives at `target`. Follows a chain of moves. Asked for
    /// every request to a stage: with nothing learned it costs one lock, no clock read.
    pub(crate) fn resolve(&self, target: &str, stage_id: i64) -> Option<String> {
        if stage_id == 0 {
            return None;
        }
        let moved = self.lock();
        if moved.is_empty() {
            return None;
        }
        let mut current = target.to_owned();
        let now = Instant::now();
        // A chain is as long as the stage's moves; a cycle (moved back) ends at the start.
        for _ in 0..8 {
            match moved.get(&(current.clone(), stage_id)) {
                Some((next, at)) if now.duration_since(*at) < LOCATION_TTL && *next != target => {
                    current.clone_from(next);
                }
                _ => break,
            }
        }
        (current != target).then_some(current)
    }

    /// Records that stage `stage_id` moved from server `from` to server `to`.
    pub(crate) fn record(&self, from: &str, stage_id: i64, to: &str) {
        let mut moved = self.lock();
        let now = Instant::now();
        if moved.len() >= MAX_LOCATIONS {
            moved.retain(|_, (_, at)| now.duration_since(*at) < LOCATION_TTL);
        }
        if moved.len() >= MAX_LOCATIONS {
            // Still full of fresh entries: forget the oldest.
            if let Some(oldest) = moved
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                moved.remove(&oldest);
            }
        }
        // The stage lives at `to` now: an older record of it leaving `to` is stale.
        moved.remove(&(to.to_owned(), stage_id));
        moved.insert((from.to_owned(), stage_id), (to.to_owned(), now));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i64), (String, Instant)>> {
        self.moved.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `resolve` says the stage lives (`target` when it did not move).
    fn at(locations: &StageLocations, target: &str, stage_id: i64) -> String {
        locations
            .resolve(target, stage_id)
            .unwrap_or_else(|| target.to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn moves_are_followed_and_forgotten_after_their_ttl() {
        let locations = StageLocations::default();
        assert_eq!(at(&locations, "play-1", 7), "play-1");
        locations.record("play-1", 7, "play-2");
        locations.record("play-2", 7, "play-3");
        assert_eq!(at(&locations, "play-1", 7), "play-3");
        assert_eq!(at(&locations, "play-2", 7), "play-3");
        // Other stages, and messages to no stage, are not redirected.
        assert_eq!(at(&locations, "play-1", 8), "play-1");
        assert_eq!(at(&locations, "play-1", 0), "play-1");
        // Moved back: it lives where it started.
        locations.record("play-3", 7, "play-1");
        assert_eq!(at(&locations, "play-1", 7), "play-1");
        assert_eq!(at(&locations, "play-2", 7), "play-1");
        tokio::time::advance(LOCATION_TTL).await;
        assert_eq!(at(&locations, "play-2", 7), "play-2");
        assert_eq!(at(&locations, "play-3", 7), "play-3");
    }

    #[test]
    fn the_table_stays_bounded() {
        let locations = StageLocations::default();
        for stage in 0..(MAX_LOCATIONS as i64 + 10) {
            locations.record("a", stage + 1, "b");
        }
        assert!(locations.lock().len() <= MAX_LOCATIONS);
    }
}
