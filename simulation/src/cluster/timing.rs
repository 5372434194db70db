//! How fast everything in a simulated cluster happens: timeouts and the network.

use std::time::Duration;

use playhouse_mesh::TcpLinkConfig;

/// Every timeout of the cluster, scaled down so a scenario covers many of them in a few
/// simulated seconds.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Connector heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Connector: a silent connection is dropped after this.
    pub heartbeat_timeout: Duration,
    /// Connector request timeout.
    pub client_request_timeout: Duration,
    /// Connector dial timeout.
    pub connect_timeout: Duration,
    /// Play server idle timeout.
    pub idle_timeout: Duration,
    /// Play server authentication timeout.
    pub auth_timeout: Duration,
    /// Mesh request timeout.
    pub mesh_request_timeout: Duration,
    /// Directory refresh interval.
    pub refresh_interval: Duration,
    /// Directory entry TTL, and how long a server missing from the directory stays routable.
    pub directory_ttl: Duration,
    /// Mesh link settings.
    pub link: TcpLinkConfig,
    /// Mesh node liveness: how often each peer is pinged.
    pub mesh_heartbeat_interval: Duration,
    /// Mesh node liveness: a peer answering no ping sent within this is declared down.
    pub mesh_heartbeat_timeout: Duration,
    /// Play server: how long a dropped resumable session waits for its client.
    pub resume_window: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_timeout: Duration::from_millis(1500),
            client_request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(4),
            auth_timeout: Duration::from_secs(2),
            // Three heartbeat timeouts: a request to a dead peer fails when the heartbeats
            // notice (SERVER_NOT_FOUND), well before it could time out, so the two differ.
            mesh_request_timeout: Duration::from_secs(3),
            refresh_interval: Duration::from_millis(250),
            directory_ttl: Duration::from_secs(10),
            link: {
                let mut link = TcpLinkConfig::default();
                link.send_timeout = Duration::from_secs(1);
                link.connect_timeout = Duration::from_millis(500);
                link.reconnect_backoff = Duration::from_millis(100);
                link
            },
            mesh_heartbeat_interval: Duration::from_millis(250),
            mesh_heartbeat_timeout: Duration::from_secs(1),
            resume_window: Duration::from_secs(3),
        }
    }
}

impl Timing {
    /// The defaults with a 30 s mesh request timeout: a request held by a crashed or silent
    /// peer can then only end by the heartbeats declaring it down (`SERVER_NOT_FOUND` within
    /// `mesh_heartbeat_timeout`), never by timing out, so a fail-fast bug cannot hide.
    pub fn long_mesh_requests() -> Self {
        Timing {
            mesh_request_timeout: Duration::from_secs(30),
            ..Timing::default()
        }
    }
}

/// The simulated network.
#[derive(Clone, Copy, Debug)]
pub struct Network {
    /// Fastest delivery of a segment.
    pub min_latency: Duration,
    /// Slowest delivery of a segment (turmoil draws from an exponential distribution).
    pub max_latency: Duration,
    /// Simulated time after which the run fails as stuck.
    pub limit: Duration,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            min_latency: Duration::from_millis(1),
            max_latency: Duration::from_millis(10),
            limit: Duration::from_secs(120),
        }
    }
}
