//! Where the workload's rooms live. Each Play server has a few room slots; a slot's room is
//! created on its Play server, and a drain moves it, live, to the other one. The workload
//! follows it there: a resumable player's `SessionEvent::Moved` and a get-or-create's
//! `play_id` say where it is now, and the players who log in again and the mesh requests go
//! there. A while after a move ([`REHOME`], once the drained server is back), the slot's
//! players leave the moved room and start a fresh one on the slot's own Play server, so
//! that every Play server keeps its share of the players for the faults that follow.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How long a slot plays in its room after the room moved away before it starts a fresh one
/// at home: past the drain's deadline and the restart.
pub const REHOME: Duration = Duration::from_secs(12);
/// A fresh room of a slot takes the id of the last one plus this (race ids stay below it).
const GENERATION: i64 = 1_000_000;

#[derive(Debug, Clone)]
struct Slot {
    /// The Play server whose slot it is.
    home: String,
    /// Its room's id.
    stage: i64,
    /// Where its room lives now.
    at: String,
    /// When the room was first seen away from home.
    away_since: Option<Instant>,
    /// Whether a get-or-create made sure the room exists (mesh requests wait for it).
    created: bool,
    /// Counts fresh rooms from 0.
    generation: u64,
}

/// One slot's room as a player or a mesh request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// The room's id.
    pub stage: i64,
    /// The Play server it lives on, as far as the workload knows.
    pub at: String,
    /// Its generation: a player leaves when its slot has a newer one.
    pub generation: u64,
}

/// The rooms of every slot, and the Play servers' client addresses.
#[derive(Debug)]
pub struct Rooms {
    plays: Vec<(String, String)>,
    slots: Mutex<Vec<Slot>>,
}

impl Rooms {
    /// `per_play` slots on each of `plays` (`(server id, client TCP address)`); slot `r`
    /// (from 1) of the `p`-th server starts with room `p * 100 + r`.
    pub fn new(plays: &[(String, String)], per_play: i64) -> Rooms {
        let mut slots = Vec::new();
        for (p, (play, _)) in plays.iter().enumerate() {
            for r in 1..=per_play {
                slots.push(Slot {
                    home: play.clone(),
                    stage: (p as i64) * 100 + r,
                    at: play.clone(),
                    away_since: None,
                    created: false,
                    generation: 0,
                });
            }
        }
        Rooms {
            plays: plays.to_vec(),
            slots: Mutex::new(slots),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many slots there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Play server whose slot `slot` is.
    pub fn home(&self, slot: usize) -> String {
        self.lock()[slot].home.clone()
    }

    /// Slot `slot`'s room now.
    pub fn room(&self, slot: usize) -> Room {
        let s = &self.lock()[slot];
        Room {
            stage: s.stage,
            at: s.at.clone(),
            generation: s.generation,
        }
    }

    /// Slot `slot`'s room, once a get-or-create made sure it exists.
    pub fn created(&self, slot: usize) -> Option<Room> {
        let created = self.lock()[slot].created;
        created.then(|| self.room(slot))
    }

    /// The client TCP address of Play server `play`.
    pub fn tcp(&self, play: &str) -> Option<String> {
        self.plays
            .iter()
            .find(|(id, _)| id == play)
            .map(|(_, tcp)| tcp.clone())
    }

    /// The Play server whose client address is `endpoint`.
    pub fn play_at(&self, endpoint: &str) -> Option<String> {
        self.plays
            .iter()
            .find(|(_, tcp)| tcp == endpoint)
            .map(|(id, _)| id.clone())
    }

    /// Records that room `stage` lives on `play` (a move followed, or a get-or-create's
    /// answer); a room no slot has any more is ignored.
    pub fn located(&self, stage: i64, play: &str) {
        let mut slots = self.lock();
        if let Some(slot) = slots.iter_mut().find(|s| s.stage == stage) {
            slot.created = true;
            if slot.at != play {
                slot.at = play.to_owned();
            }
            if slot.at == slot.home {
                slot.away_since = None;
            } else if slot.away_since.is_none() {
                slot.away_since = Some(Instant::now());
            }
        }
    }

    /// Gives each slot whose room has been away from home for [`REHOME`] a fresh room at
    /// home.
    pub fn rehome(&self) {
        let mut slots = self.lock();
        for slot in slots.iter_mut() {
            if slot.away_since.is_some_and(|t| t.elapsed() >= REHOME) {
                slot.generation += 1;
                slot.stage += GENERATION;
                slot.at = slot.home.clone();
                slot.away_since = None;
                slot.created = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plays() -> Vec<(String, String)> {
        vec![
            ("play-1".to_owned(), "10.0.0.1:7000".to_owned()),
            ("play-2".to_owned(), "10.0.0.2:7000".to_owned()),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn a_moved_room_is_followed_then_replaced_at_home() {
        let rooms = Rooms::new(&plays(), 3);
        assert_eq!(rooms.len(), 6);
        assert_eq!(rooms.room(4).stage, 102);
        assert_eq!(rooms.play_at("10.0.0.2:7000").as_deref(), Some("play-2"));
        assert_eq!(rooms.created(0), None);
        rooms.located(1, "play-2");
        assert_eq!(rooms.room(0).at, "play-2");
        assert_eq!(rooms.created(0), Some(rooms.room(0)));
        rooms.rehome();
        assert_eq!(rooms.room(0).generation, 0);
        tokio::time::advance(REHOME).await;
        rooms.rehome();
        let fresh = rooms.room(0);
        assert_eq!((fresh.stage, fresh.at.as_str()), (1 + GENERATION, "play-1"));
        assert_eq!(fresh.generation, 1);
        assert_eq!(rooms.created(0), None);
        // The old room is nobody's now.
        rooms.located(1, "play-1");
        assert_eq!(rooms.room(0), fresh);
        assert_eq!(rooms.room(1).generation, 0);
    }
}
