//! The ports every simulated server listens on.

/// The port Play servers serve clients on.
pub const CLIENT_PORT: u16 = 7001;
/// The port every server's mesh link listens on.
pub const MESH_PORT: u16 = 7100;
