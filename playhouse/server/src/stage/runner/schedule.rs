//! When the stage loop must wake next, and what fires then: timers and the fixed-step game
//! loop.

use std::time::Duration;

use tokio::time::Instant;

use super::StageRunner;
use crate::stage::context::{GameLoop, GameTick, MAX_STEPS_PER_WAKE};
use crate::stage::model::Stage;

impl<S: Stage> StageRunner<S> {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let expiry = [
            self.expiries.first().map(|(at, _)| *at),
            self.idle_deadline(),
            self.relay_order.deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        let timer = match (self.ctx.timers.next_deadline(), expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let game = self.ctx.game_loop.as_ref().map(|g| g.next);
        match (timer, game) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn fire_due(&mut self) {
        let now = Instant::now();
        while let Some((id, mut callback)) = self.ctx.timers.pop_due(now) {
            callback(&mut self.stage, &mut self.ctx);
            self.ctx.timers.rearm(id, callback);
            if self.ctx.closing {
                return;
            }
        }
        self.run_game_loop(now);
    }

    /// Fixed-timestep accumulator: whole steps of `delta == timestep`, at most
    /// [`MAX_STEPS_PER_WAKE`] per wake-up; a larger backlog is dropped.
    fn run_game_loop(&mut self, now: Instant) {
        let Some(game) = self.ctx.game_loop.as_mut().filter(|g| g.next <= now) else {
            return;
        };
        game.accumulated += now - game.last;
        game.last = now;
        let generation = game.generation;
        let Some(mut callback) = game.callback.take() else {
            return;
        };
        for _ in 0..MAX_STEPS_PER_WAKE {
            let Some(game) = self.current_game_loop(generation) else {
                return;
            };
            if game.accumulated < game.step {
                break;
            }
            game.accumulated -= game.step;
            game.ticks += 1;
            game.total += game.step;
            let tick = GameTick {
                delta: game.step,
                total: game.total,
                tick: game.ticks,
            };
            let step = tick.delta;
            let started = Instant::now();
            callback(&mut self.stage, &mut self.ctx, tick);
            let took = started.elapsed();
            self.env.metrics.tick(took);
            if took > step {
                self.env.metrics.tick_overrun();
                self.stats.tick_overrun();
            }
            if self.ctx.closing {
                return;
            }
        }
        let (metrics, stats) = (
            std::sync::Arc::clone(&self.env.metrics),
            std::sync::Arc::clone(&self.stats),
        );
        if let Some(game) = self.current_game_loop(generation) {
            if game.accumulated >= game.step {
                game.accumulated = Duration::ZERO;
                metrics.tick_overrun();
                stats.tick_overrun();
            }
            game.callback = Some(callback);
            game.next = now + (game.step - game.accumulated);
        }
    }

    /// The game loop, unless the callback stopped or restarted it.
    fn current_game_loop(&mut self, generation: u64) -> Option<&mut GameLoop<S>> {
        self.ctx
            .game_loop
            .as_mut()
            .filter(|g| g.generation == generation)
    }
}
