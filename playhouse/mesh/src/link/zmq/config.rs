//! [`ZmqLinkConfig`]: the settings of a [`ZmqLink`](super::ZmqLink).

use std::time::Duration;

/// Settings of a [`ZmqLink`](super::ZmqLink).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ZmqLinkConfig {
    /// Longest ZMTP connect (TCP connect, greeting, READY) to one peer. Default: 2 s.
    pub handshake_timeout: Duration,
    /// First wait before re-dialing a lost or unreachable peer; doubles per failure.
    /// Default: 200 ms.
    pub reconnect_backoff: Duration,
    /// Longest wait between dials. Default: 5 s.
    pub max_reconnect_backoff: Duration,
}

impl Default for ZmqLinkConfig {
    fn default() -> Self {
        ZmqLinkConfig {
            handshake_timeout: Duration::from_secs(2),
            reconnect_backoff: Duration::from_millis(200),
            max_reconnect_backoff: Duration::from_secs(5),
        }
    }
}

impl ZmqLinkConfig {
    /// The wait before dial attempt `failures + 1`.
    pub(super) fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.reconnect_backoff
            .saturating_mul(factor)
            .min(self.max_reconnect_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = ZmqLinkConfig::default();
        assert_eq!(config.backoff(1), Duration::from_millis(200));
        assert_eq!(config.backoff(2), Duration::from_millis(400));
        assert_eq!(config.backoff(3), Duration::from_millis(800));
        assert_eq!(config.backoff(10), Duration::from_secs(5));
        assert_eq!(config.backoff(u32::MAX), Duration::from_secs(5));
    }
}
