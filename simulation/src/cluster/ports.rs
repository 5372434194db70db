//! The fixed ports every simulated host serves on (each host has its own address).

/// The port Play servers serve clients on.
pub const CLIENT_PORT: u16 = 7001;
/// The port every server's mesh link listens on.
pub const MESH_PORT: u16 = 7100;
