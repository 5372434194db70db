//! A small standalone game, server and client, with no mesh: one Play server hosts `Counter`
//! rooms. A player logs in with a typed `Login`, `Click`s to count (the reply and a broadcast
//! to the room say who clicked and the new count), hears a `Tick` from the room's one-second
//! timer, and `Leave`s. A room whose players have all gone closes by itself.
//!
//! * `counter-server` (`src/bin/counter-server.rs`) serves it; `counter-client` plays it.
//! * `messages`: the prost messages both sides use; `room`: the stage and the player;
//!   `client`: one player's session, as a game client would run it.

pub mod client;
pub mod messages;
pub mod room;
