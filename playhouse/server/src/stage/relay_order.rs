//! Relayed players' messages in the order their home sent them.
//!
//! A relayed player's home numbers what it relays (`RelayToStage.order`). After a second
//! move the messages can take two ways to the stage: the server the stage left passes on
//! what reached it late, while the home, told where the stage went, sends the newer ones
//! straight there. Each way keeps its own order; together they can cross. So the stage
//! takes a relayed session's messages by number: one ahead of its turn waits for the
//! missing ones, for at most [`GAP_WAIT`] (a message lost with a failed server is not
//! waited for forever) and [`MAX_WAITING`] messages; one behind (a repeat) is dropped.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use playhouse_protocol::Packet;
use tokio::time::Instant;

use crate::session::handle::SessionId;
use crate::stage::moving::Held;

/// How long a relayed message waits for an earlier one that has not come.
pub(crate) const GAP_WAIT: Duration = Duration::from_secs(1);

/// How many relayed messages of one session wait at most; past it, the gap is given up.
pub(crate) const MAX_WAITING: usize = 256;

/// A relayed client's message, as the stage handles it.
#[derive(Debug)]
pub(crate) struct Relayed {
    pub(crate) actor: u64,
    pub(crate) seq: u16,
    pub(crate) packet: Packet,
    pub(crate) queued: Instant,
}

/// Per relayed session: the next number to handle and the messages ahead of it.
#[derive(Debug, Default)]
pub(crate) struct RelayOrder {
    sessions: HashMap<SessionId, Gate>,
}

#[derive(Debug)]
struct Gate {
    next: u64,
    waiting: BTreeMap<u64, Relayed>,
    /// Since when the earliest gap has been open.
    since: Option<Instant>,
}

impl Gate {
    fn new(next: u64) -> Self {
        Gate {
            next,
            waiting: BTreeMap::new(),
            since: None,
        }
    }

    /// The missing messages are not waited for any more: the earliest waiting one is next.
    fn give_up_gap(&mut self) {
        if let Some(first) = self.waiting.keys().next() {
            tracing::debug!(
                from = self.next,
                to = first,
                "relayed messages lost; going on"
            );
            self.next = *first;
        }
    }
}

/// What to do with a numbered message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Its turn: handle it, then whatever [`RelayOrder::ready`] gives.
    Now,
    /// Ahead of its turn: kept until the gap closes (or is given up).
    Waits,
    /// Handled already (a repeat): dropped.
    Repeat,
}

impl RelayOrder {
    /// Session `session`'s next message is number `next` (a stage that moved here).
    pub(crate) fn seed(&mut self, session: SessionId, next: u64) {
        self.sessions.insert(session, Gate::new(next));
    }

    /// The number of session `session`'s next message (1 for one not seen yet).
    pub(crate) fn next(&self, session: SessionId) -> u64 {
        self.sessions.get(&session).map_or(1, |gate| gate.next)
    }

    /// Message number `order` of session `session` arrived: is it its turn?
    pub(crate) fn arrive(&mut self, session: SessionId, order: u64) -> Turn {
        let gate = self.sessions.entry(session).or_insert_with(|| Gate::new(1));
        if order < gate.next || gate.waiting.contains_key(&order) {
            return Turn::Repeat;
        }
        if order == gate.next {
            gate.next += 1;
            return Turn::Now;
        }
        Turn::Waits
    }

    /// Keeps message number `order` of session `session`, ahead of its turn.
    pub(crate) fn wait(&mut self, session: SessionId, order: u64, message: Relayed) {
        let gate = self.sessions.entry(session).or_insert_with(|| Gate::new(1));
        gate.waiting.insert(order, message);
        gate.since.get_or_insert_with(Instant::now);
        if gate.waiting.len() > MAX_WAITING {
            gate.give_up_gap();
        }
    }

    /// The next waiting message of session `session` whose turn has come.
    pub(crate) fn ready(&mut self, session: SessionId) -> Option<Relayed> {
        let gate = self.sessions.get_mut(&session)?;
        let entry = gate.waiting.first_entry()?;
        if *entry.key() != gate.next {
            return None;
        }
        gate.next += 1;
        let message = entry.remove();
        gate.since = (!gate.waiting.is_empty()).then(Instant::now);
        Some(message)
    }

    /// When the earliest open gap is given up, if one is open.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|gate| gate.since)
            .min()
            .map(|since| since + GAP_WAIT)
    }

    /// Gives up the gaps open for [`GAP_WAIT`]: their sessions, to take what is ready.
    pub(crate) fn give_up_overdue(&mut self, now: Instant) -> Vec<SessionId> {
        let mut overdue = Vec::new();
        for (session, gate) in &mut self.sessions {
            if gate.since.is_some_and(|since| since + GAP_WAIT <= now) {
                gate.give_up_gap();
                overdue.push(*session);
            }
        }
        overdue
    }

    /// The session's connection left the stage.
    pub(crate) fn forget(&mut self, session: SessionId) {
        self.sessions.remove(&session);
    }

    /// Every waiting message, to move with the stage (the target numbers them again).
    pub(crate) fn take_waiting(&mut self) -> Vec<Held> {
        let mut held = Vec::new();
        for gate in self.sessions.values_mut() {
            gate.since = None;
            for (order, message) in std::mem::take(&mut gate.waiting) {
                held.push(Held::Client {
                    actor: message.actor,
                    seq: message.seq,
                    packet: message.packet,
                    order,
                });
            }
        }
        held
    }
}
