//! The arena's world, without any networking: players steer round bodies across a walled
//! field, push each other apart, and collect coins that reappear elsewhere. One fixed step at
//! a time, deterministic for a seed (the room seeds it with its stage id), so it can be
//! tested, saved and restored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The field's size, in world units (the page draws one unit as one pixel).
pub const WIDTH: f32 = 800.0;
/// See [`WIDTH`].
pub const HEIGHT: f32 = 600.0;
/// A player's radius.
pub const RADIUS: f32 = 16.0;
/// A coin's radius.
pub const COIN_RADIUS: f32 = 8.0;
/// How fast a player moves, in units a second.
pub const SPEED: f32 = 180.0;
/// Coins on the field at any time.
pub const COINS: usize = 6;
/// Steps a player stays on the field after its client dropped: 30 s at 20 Hz.
pub const OFFLINE_STEPS: u32 = 600;

/// One player's body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// The player's name.
    pub name: String,
    /// Position of the centre.
    pub x: f32,
    /// See `x`.
    pub y: f32,
    /// Steering, each axis -1, 0 or 1.
    pub dx: i8,
    /// See `dx`.
    pub dy: i8,
    /// Coins collected.
    pub score: u32,
    /// Whether the player's client is connected.
    pub online: bool,
    /// Steps since the client dropped (a player offline for [`OFFLINE_STEPS`] leaves).
    #[serde(default)]
    pub offline_steps: u32,
}

/// A coin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoinAt {
    /// Its id (new coins get new ids).
    pub id: u32,
    /// Position of the centre.
    pub x: f32,
    /// See `x`.
    pub y: f32,
}

/// The world: players by actor key, coins, the tick count and the random state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct World {
    /// Players by account (their name).
    pub bodies: BTreeMap<String, Body>,
    /// The coins on the field.
    pub coins: Vec<CoinAt>,
    /// Steps taken.
    pub tick: u64,
    next_coin: u32,
    rng: u64,
}

impl World {
    /// An empty field with its coins, random from `seed`.
    pub fn new(seed: u64) -> World {
        let mut world = World {
            bodies: BTreeMap::new(),
            coins: Vec::new(),
            tick: 0,
            next_coin: 1,
            rng: seed | 1,
        };
        while world.coins.len() < COINS {
            world.spawn_coin();
        }
        world
    }

    /// xorshift64: a number in `0..1`.
    fn random(&mut self) -> f32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 40) as f32 / (1u64 << 24) as f32
    }

    fn random_spot(&mut self, margin: f32) -> (f32, f32) {
        let x = margin + self.random() * (WIDTH - 2.0 * margin);
        let y = margin + self.random() * (HEIGHT - 2.0 * margin);
        (x, y)
    }

    fn spawn_coin(&mut self) {
        let (x, y) = self.random_spot(COIN_RADIUS * 2.0);
        self.coins.push(CoinAt {
            id: self.next_coin,
            x,
            y,
        });
        self.next_coin += 1;
    }

    /// Player `name` enters (or, known already, comes back online) at a random spot.
    pub fn join(&mut self, name: &str) {
        if let Some(body) = self.bodies.get_mut(name) {
            body.online = true;
            body.offline_steps = 0;
            return;
        }
        let (x, y) = self.random_spot(RADIUS * 2.0);
        let body = Body {
            name: name.to_owned(),
            x,
            y,
            dx: 0,
            dy: 0,
            score: 0,
            online: true,
            offline_steps: 0,
        };
        self.bodies.insert(name.to_owned(), body);
    }

    /// Player `name` leaves the world.
    pub fn leave(&mut self, name: &str) {
        self.bodies.remove(name);
    }

    /// Player `name`'s client dropped (`false`) or came back (`true`); a dropped player stops.
    pub fn set_online(&mut self, name: &str, online: bool) {
        if let Some(body) = self.bodies.get_mut(name) {
            body.online = online;
            body.offline_steps = 0;
            if !online {
                (body.dx, body.dy) = (0, 0);
            }
        }
    }

    /// Player `name` steers (each axis clamped to -1..=1).
    pub fn steer(&mut self, name: &str, dx: i32, dy: i32) {
        if let Some(body) = self.bodies.get_mut(name) {
            body.dx = dx.clamp(-1, 1) as i8;
            body.dy = dy.clamp(-1, 1) as i8;
        }
    }

    /// One step of `dt` seconds: move, keep inside the walls, push overlapping players apart,
    /// collect coins (a collected coin reappears elsewhere).
    pub fn step(&mut self, dt: f32) {
        self.tick += 1;
        for body in self.bodies.values_mut() {
            body.offline_steps += u32::from(!body.online);
        }
        self.bodies
            .retain(|_, body| body.online || body.offline_steps < OFFLINE_STEPS);
        for body in self.bodies.values_mut() {
            let (dx, dy) = (f32::from(body.dx), f32::from(body.dy));
            let norm = if dx != 0.0 && dy != 0.0 {
                std::f32::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            body.x = (body.x + dx * norm * SPEED * dt).clamp(RADIUS, WIDTH - RADIUS);
            body.y = (body.y + dy * norm * SPEED * dt).clamp(RADIUS, HEIGHT - RADIUS);
        }
        self.separate();
        self.collect();
    }

    /// Pushes every overlapping pair apart, half each, along the line between them.
    fn separate(&mut self) {
        let keys: Vec<String> = self.bodies.keys().cloned().collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                let (ax, ay) = (self.bodies[a].x, self.bodies[a].y);
                let (bx, by) = (self.bodies[b].x, self.bodies[b].y);
                let (dx, dy) = (bx - ax, by - ay);
                let distance = (dx * dx + dy * dy).sqrt();
                let overlap = 2.0 * RADIUS - distance;
                if overlap <= 0.0 {
                    continue;
                }
                // Exactly on top of each other: apart along x.
                let (ux, uy) = if distance > f32::EPSILON {
                    (dx / distance, dy / distance)
                } else {
                    (1.0, 0.0)
                };
                let push = overlap / 2.0;
                if let Some(body) = self.bodies.get_mut(a) {
                    body.x = (body.x - ux * push).clamp(RADIUS, WIDTH - RADIUS);
                    body.y = (body.y - uy * push).clamp(RADIUS, HEIGHT - RADIUS);
                }
                if let Some(body) = self.bodies.get_mut(b) {
                    body.x = (body.x + ux * push).clamp(RADIUS, WIDTH - RADIUS);
                    body.y = (body.y + uy * push).clamp(RADIUS, HEIGHT - RADIUS);
                }
            }
        }
    }

    fn collect(&mut self) {
        let reach = RADIUS + COIN_RADIUS;
        let mut taken = 0;
        for body in self.bodies.values_mut() {
            self.coins.retain(|coin| {
                let (dx, dy) = (coin.x - body.x, coin.y - body.y);
                let hit = dx * dx + dy * dy <= reach * reach;
                if hit {
                    body.score += 1;
                    taken += 1;
                }
                !hit
            });
        }
        for _ in 0..taken {
            self.spawn_coin();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn players_move_at_their_speed_and_stop_at_the_walls() {
        let mut world = World::new(7);
        world.join("ann");
        world.bodies.get_mut("ann").unwrap().x = 100.0;
        world.steer("ann", 1, 0);
        world.step(0.05);
        assert!((world.bodies["ann"].x - (100.0 + SPEED * 0.05)).abs() < 1e-3);
        world.steer("ann", -5, 0);
        for _ in 0..200 {
            world.step(0.05);
        }
        assert_eq!(world.bodies["ann"].x, RADIUS);
        assert_eq!(world.tick, 201);
    }

    #[test]
    fn overlapping_players_are_pushed_apart() {
        let mut world = World::new(7);
        world.join("ann");
        world.join("bob");
        for (key, x) in [("ann", 300.0), ("bob", 310.0)] {
            let body = world.bodies.get_mut(key).unwrap();
            (body.x, body.y) = (x, 300.0);
        }
        world.step(0.05);
        let gap = world.bodies["bob"].x - world.bodies["ann"].x;
        assert!((gap - 2.0 * RADIUS).abs() < 1e-3, "{gap}");
    }

    #[test]
    fn a_collected_coin_scores_and_reappears() {
        let mut world = World::new(7);
        world.join("ann");
        let coin = world.coins[0].clone();
        let body = world.bodies.get_mut("ann").unwrap();
        (body.x, body.y) = (coin.x, coin.y);
        world.step(0.05);
        assert_eq!(world.bodies["ann"].score, 1);
        assert_eq!(world.coins.len(), COINS);
        assert!(world.coins.iter().all(|c| c.id != coin.id));
    }

    #[test]
    fn a_dropped_player_stops_and_a_rejoin_keeps_the_score() {
        let mut world = World::new(7);
        world.join("ann");
        world.bodies.get_mut("ann").unwrap().score = 3;
        world.steer("ann", 1, 1);
        world.set_online("ann", false);
        let before = world.bodies["ann"].clone();
        world.step(0.05);
        assert_eq!(
            (world.bodies["ann"].x, world.bodies["ann"].y),
            (before.x, before.y)
        );
        world.join("ann");
        assert!(world.bodies["ann"].online);
        assert_eq!(world.bodies["ann"].score, 3);
    }

    #[test]
    fn a_player_offline_for_long_leaves_the_field() {
        let mut world = World::new(7);
        world.join("ann");
        world.set_online("ann", false);
        for _ in 0..OFFLINE_STEPS - 1 {
            world.step(0.05);
        }
        assert!(world.bodies.contains_key("ann"));
        world.step(0.05);
        assert!(!world.bodies.contains_key("ann"));
    }

    #[test]
    fn the_same_seed_gives_the_same_world_and_it_survives_a_save() {
        let mut a = World::new(42);
        let mut b = World::new(42);
        for world in [&mut a, &mut b] {
            world.join("ann");
            world.steer("ann", 1, -1);
            for _ in 0..50 {
                world.step(0.05);
            }
        }
        assert_eq!(a, b);
        let saved = serde_json::to_vec(&a).unwrap();
        let restored: World = serde_json::from_slice(&saved).unwrap();
        assert_eq!(restored, a);
    }
}
