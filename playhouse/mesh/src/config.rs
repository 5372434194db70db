//! [`MeshConfig`]: the settings of a mesh node; and the fixed pace of its retries (directory
//! refreshes after a failure, replies to a requester not connected yet).

use std::time::Duration;

use crate::directory::ServerType;

/// Settings of a mesh node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MeshConfig {
    /// This server's id, e.g. `api-1`.
    pub server_id: String,
    /// Play or API.
    pub server_type: ServerType,
    /// The service this server belongs to. Default: 1 for Play, 2 for API.
    pub service_id: u16,
    /// Share of weighted routing. Default: 100.
    pub weight: u32,
    /// Default request timeout. Default: 30 s.
    pub request_timeout: Duration,
    /// How often the directory is refreshed. Default: 3 s. After a failed refresh the next
    /// attempt comes sooner ([`DIRECTORY_RETRY`], doubling up to [`DIRECTORY_RETRY_MAX`]), so
    /// this server re-publishes itself as soon as the directory answers again.
    pub refresh_interval: Duration,
    /// How long a published entry lives without refresh. Default: 10 s. Also how long a
    /// server missing from the directory stays routable after it was last listed (every
    /// server of a mesh is expected to use the same TTL), unless its connection is down: an
    /// empty directory restart or a lost entry does not cut off a live server. Keep it a few
    /// refresh intervals long.
    pub directory_ttl: Duration,
    /// Requests in flight at once before new ones fail. Default: 100,000.
    pub max_pending_requests: usize,
    /// The largest payload sent to another server, in bytes: a larger request or message
    /// fails at once with [`MeshError::TooLarge`], a larger reply is replaced by an empty one
    /// carrying [`ErrorCode::PACKET_TOO_LARGE`] (the requester learns it at once instead of
    /// timing out). Default: 8 MiB (the TCP link carries frames up to 16 MiB).
    ///
    /// [`MeshError::TooLarge`]: crate::error::MeshError::TooLarge
    /// [`ErrorCode::PACKET_TOO_LARGE`]: playhouse_protocol::ErrorCode::PACKET_TOO_LARGE
    pub max_payload: usize,
    /// How often every connected peer is pinged. [`Duration::ZERO`] turns liveness off
    /// (peers are then known down only when their connection closes). Default: 1 s.
    pub heartbeat_interval: Duration,
    /// A peer that answers no ping sent within this long is down: its requests in flight
    /// fail at once, its connections are reset, and sends to it fail until it answers again.
    /// Default: 5 s.
    pub heartbeat_timeout: Duration,
}

impl MeshConfig {
    /// Defaults for a server of `server_type` named `server_id`.
    pub fn new(server_id: impl Into<String>, server_type: ServerType) -> Self {
        MeshConfig {
            server_id: server_id.into(),
            server_type,
            service_id: match server_type {
                ServerType::Play => 1,
                ServerType::Api => 2,
            },
            weight: 100,
            request_timeout: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(3),
            directory_ttl: Duration::from_secs(10),
            max_pending_requests: 100_000,
            max_payload: 8 * 1024 * 1024,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
        }
    }
}

/// The first retry after a failed directory refresh.
pub const DIRECTORY_RETRY: Duration = Duration::from_millis(100);

/// Retries after failed directory refreshes double up to this (or the refresh interval, if
/// shorter).
pub const DIRECTORY_RETRY_MAX: Duration = Duration::from_secs(1);

/// How long a reply to a requester this server is not yet connected to keeps retrying.
pub const REPLY_RETRY: Duration = Duration::from_secs(2);
