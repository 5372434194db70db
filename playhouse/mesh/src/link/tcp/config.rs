//! [`TcpLinkConfig`]: the settings of a [`TcpLink`](super::TcpLink).

use std::time::Duration;

/// Settings of a [`TcpLink`](super::TcpLink).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TcpLinkConfig {
    /// Frames queued per peer before sends fail with `Busy`. Default: 8192.
    pub send_queue: usize,
    /// A write that takes longer drops the connection (and fails its frames). Default: 5 s.
    pub send_timeout: Duration,
    /// Default: 3 s.
    pub connect_timeout: Duration,
    /// Wait before reconnecting. Default: 200 ms.
    pub reconnect_backoff: Duration,
    /// Largest frame accepted. Default: 16 MiB.
    pub max_frame: usize,
}

impl Default for TcpLinkConfig {
    fn default() -> Self {
        TcpLinkConfig {
            send_queue: 8192,
            send_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            reconnect_backoff: Duration::from_millis(200),
            max_frame: 16 * 1024 * 1024,
        }
    }
}
