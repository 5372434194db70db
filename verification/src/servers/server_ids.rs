//! The ids of the long-lived servers, shared by the start-up and the HTTP front door.

/// The Play server with every listener.
pub const PLAY_1: &str = "play-1";
/// The second Play server (cross-server stage messages).
pub const PLAY_2: &str = "play-2";
/// The API server with the HTTP front door.
pub const API_1: &str = "api-1";
/// The second API server.
pub const API_2: &str = "api-2";
