//! The arena, a sample real-time game: a top-down field where players steer, bump into each
//! other and the walls, and collect coins, with a scoreboard. The room ([`room::ArenaRoom`])
//! is server-authoritative: a fixed-step loop at 20 Hz steps the [`world::World`] and pushes
//! each player a snapshot; clients only send where they steer.
//!
//! `arena` (the binary) runs a Play server and an API server in one process: browsers get the
//! page from the API server's HTTP listener, ask it for a room (`POST /join`, get-or-create
//! through the mesh) and play over WebSocket. `arena-bots` fills rooms with bots.

pub mod app;
pub mod bot;
pub mod messages;
pub mod room;
pub mod world;

use playhouse::PlayServerBuilder;

/// The arena's stage type.
pub const ARENA: &str = "Arena";

/// Registers the arena room, movable, on a Play server being built.
pub fn register(builder: PlayServerBuilder) -> PlayServerBuilder {
    builder.movable_stage(
        ARENA,
        |init| room::ArenaRoom::new(init.stage_id),
        |_| room::ArenaPlayer,
    )
}
