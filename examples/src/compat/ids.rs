//! The server ids of the compat server, shared by the start-up and the HTTP API.

/// The Play server's id (the HTTP API creates stages on it).
pub const PLAY_ID: &str = "play-1";
/// The API server's id.
pub const API_ID: &str = "api-1";
