//! Connection caps (total and per IP), the per-connection message rate limit, and the
//! throttle that keeps a flood of refusals from flooding the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::Rejection;

/// Counts open connections; a [`ConnectionPermit`] is held for each.
#[derive(Debug)]
pub(crate) struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: Option<usize>,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    pub(crate) fn new(max_total: usize, max_per_ip: Option<usize>) -> Self {
        ConnectionLimiter {
            max_total,
            max_per_ip,
            open: Mutex::new((0, HashMap::new())),
        }
    }

    /// The cap on open connections.
    pub(crate) fn max_total(&self) -> usize {
        self.max_total
    }

    /// Admits a connection from `ip`, or says which limit refuses it.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Rejection> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *open;
        if *total >= self.max_total {
            return Err(Rejection::ConnectionLimit);
        }
        let from_ip = per_ip.entry(ip).or_insert(0);
        if self.max_per_ip.is_some_and(|max| *from_ip >= max) {
            return Err(Rejection::PerIpLimit);
        }
        *from_ip += 1;
        *total += 1;
        Ok(ConnectionPermit {
            limiter: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *open;
        *total -= 1;
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// A token bucket: `per_second` messages on average, bursts of up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_second: u32,
    /// Messages allowed at once.
    pub burst: u32,
}

impl RateLimit {
    /// `per_second` on average, bursts of up to `burst`.
    ///
    /// ```
    /// let limit = playhouse::RateLimit::new(100, 200);
    /// assert_eq!((limit.per_second, limit.burst), (100, 200));
    /// ```
    pub const fn new(per_second: u32, burst: u32) -> Self {
        RateLimit { per_second, burst }
    }
}

/// A token bucket on the tokio clock.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(limit: RateLimit) -> Self {
        TokenBucket {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes one token; `false` when the connection is over its rate.
    pub(crate) fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed: Duration = now - self.last;
        self.last = now;
        let burst = f64::from(self.limit.burst.max(1));
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() * f64::from(self.limit.per_second)).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Lets one log line through per `interval` and counts the ones it holds back, so a flood
/// of refused connections costs one WARN a second, not one per connection.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    /// When the next line may be written; `None` before the first.
    next: Option<Instant>,
    /// Lines held back since the last one written.
    suppressed: u64,
}

impl LogThrottle {
    pub(crate) fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            state: Mutex::default(),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were held back since the
    /// last one; `None` (and one more held back) otherwise.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.next.is_some_and(|next| now < next) {
            state.suppressed += 1;
            return None;
        }
        state.next = Some(now + self.interval);
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_total_and_per_ip_and_frees_on_drop() {
        let limiter = Arc::new(ConnectionLimiter::new(3, Some(2)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limiter.admit(a).unwrap();
        let _a2 = limiter.admit(a).unwrap();
        assert_eq!(limiter.admit(a).unwrap_err(), Rejection::PerIpLimit);
        let _b1 = limiter.admit(b).unwrap();
        assert_eq!(limiter.admit(b).unwrap_err(), Rejection::ConnectionLimit);
        drop(a1);
        assert!(limiter.admit(b).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn log_throttle_writes_one_line_per_interval_and_counts_the_rest() {
        let throttle = LogThrottle::new(Duration::from_secs(1));
        assert_eq!(throttle.allow(), Some(0));
        assert!((0..99).all(|_| throttle.allow().is_none()));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(throttle.allow(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(throttle.allow(), Some(100), "held-back lines are counted");
        assert_eq!(throttle.allow(), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(throttle.allow(), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn token_bucket_allows_bursts_then_the_rate() {
        let mut bucket = TokenBucket::new(RateLimit {
            per_second: 10,
            burst: 3,
        });
        assert!((0..3).all(|_| bucket.take()));
        assert!(!bucket.take());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(bucket.take());
        assert!(!bucket.take());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            (0..5).filter(|_| bucket.take()).count(),
            3,
            "refill is capped at the burst"
        );
    }
}
