//! Who is in the stage and who leaves: actors that asked to, disconnected actors past their
//! time to live, and a stage that stays empty for its idle timeout.

use playhouse_protocol::ErrorCode;
use tokio::time::Instant;

use super::StageRunner;
use crate::session::handle::{Outbound, SessionId};
use crate::stage::model::{Actor, Stage};

impl<S: Stage> StageRunner<S> {
    /// A client's connection ended: its actor stays (for `disconnected_actor_ttl`, if set),
    /// unless the stage makes it leave.
    pub(super) async fn disconnected(&mut self, actor: u64, session: SessionId) {
        let Some(cell) = self.actors.get_mut(&actor) else {
            return;
        };
        if cell.link.session().map(|s| s.id) != Some(session) {
            return;
        }
        cell.link.set_session(None);
        self.relay_order.forget(session);
        self.ctx.clients.remove(&actor);
        if let Some(ttl) = self.env.actor_ttl {
            let now = Instant::now();
            self.disconnected.insert(actor, now);
            self.expiries.insert((now + ttl, actor));
        }
        self.stage
            .on_connection_changed(&mut self.ctx, cell, false)
            .await;
        self.leave_if_asked(actor).await;
    }

    /// Removes actors disconnected for longer than `disconnected_actor_ttl`.
    pub(super) async fn expire_actors(&mut self) {
        let now = Instant::now();
        while let Some(&(at, key)) = self.expiries.first() {
            if at > now {
                return;
            }
            self.expiries.pop_first();
            let expired = self
                .disconnected
                .get(&key)
                .zip(self.env.actor_ttl)
                .is_some_and(|(since, ttl)| *since + ttl <= now);
            if expired && let Some(cell) = self.actors.get_mut(&key) {
                tracing::debug!(actor = key, "disconnected too long; leaving the stage");
                cell.link.leave_stage();
                self.leave_if_asked(key).await;
            }
        }
    }

    /// Starts or stops the idle clock as the stage becomes empty or occupied.
    pub(super) fn note_occupancy(&mut self) {
        if !self.actors.is_empty() {
            self.empty_since = None;
        } else if self.empty_since.is_none() {
            self.empty_since = Some(Instant::now());
        }
    }

    /// When an empty stage closes by itself, if it does.
    pub(super) fn idle_deadline(&self) -> Option<Instant> {
        let idle = self.env.idle_timeout.filter(|_| self.ctx.auto_dispose)?;
        Some(self.empty_since? + idle)
    }

    pub(super) fn dispose_if_idle(&mut self) {
        if self.idle_deadline().is_some_and(|at| at <= Instant::now()) {
            tracing::debug!("no actors for the idle timeout; closing the stage");
            self.env.metrics.stage_idle_closed();
            self.ctx.closing = true;
        }
    }

    /// Removes the actor if its code called `leave_stage`.
    pub(super) async fn leave_if_asked(&mut self, key: u64) {
        if !self
            .actors
            .get(&key)
            .is_some_and(|cell| cell.link.wants_leave())
        {
            return;
        }
        let Some(mut cell) = self.actors.remove(&key) else {
            return;
        };
        self.handled_until = None; // `on_destroy` runs below
        self.accounts.remove(cell.link.account_id());
        self.ctx.clients.remove(&key);
        self.disconnected.remove(&key);
        self.actors_left(1);
        self.note_occupancy();
        // The connection learns it left before anything `on_destroy` sends it: a client that
        // logs in again as soon as it sees that must find its session detached already.
        if let Some(session) = cell.link.session() {
            self.relay_order.forget(session.id);
            session.push(Outbound::Detached(ErrorCode::NOT_AUTHENTICATED));
        }
        cell.actor.on_destroy(&mut cell.link).await;
    }
}
