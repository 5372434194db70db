//! Connection caps (total and per IP), the per-connection message rate limit, what one
//! source address may hold of the server's stages, and the throttle that keeps a flood of
//! refusals (or of anything else a client can make the server log) from flooding the log.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use playhouse_protocol::ErrorCode;
use tokio::time::Instant;

use crate::metrics::{Metrics, Rejection, SourceRefusal};

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
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled to its burst: forgetting it then loses nothing.
    fn is_full(&mut self) -> bool {
        self.refill();
        self.tokens >= f64::from(self.limit.burst.max(1))
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed: Duration = now - self.last;
        self.last = now;
        let burst = f64::from(self.limit.burst.max(1));
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() * f64::from(self.limit.per_second)).min(burst);
    }
}

/// What one source address may hold of the server's stages: how many of the stages it
/// created may be live at once, and how fast it may create them. A source is an IPv4
/// address, or an IPv6 /64 (one subscriber's prefix: the addresses inside it cost an
/// attacker nothing).
#[derive(Debug)]
pub(crate) struct StageQuota {
    max_live: Option<usize>,
    rate: Option<RateLimit>,
    sources: Mutex<Sources>,
}

#[derive(Debug)]
struct Sources {
    by_source: HashMap<IpAddr, SourceState>,
    /// The map is swept of forgettable sources when it grows to this size.
    sweep_at: usize,
}

#[derive(Debug)]
struct SourceState {
    /// Stages this source created that are still live.
    live: usize,
    bucket: Option<TokenBucket>,
}

/// One live stage created by a client from `source`; dropping it (the stage closed) frees
/// the place in the source's count.
#[derive(Debug)]
pub(crate) struct StagePermit {
    quota: Arc<StageQuota>,
    source: IpAddr,
}

/// Sources remembered before the first sweep: a sweep is linear in the map, so it runs
/// only when the map has doubled since the last one.
const FIRST_SWEEP: usize = 1024;

impl StageQuota {
    /// At most `max_live` live stages created per source, created at most at `rate`.
    pub(crate) fn new(max_live: Option<usize>, rate: Option<RateLimit>) -> Self {
        StageQuota {
            max_live,
            rate,
            sources: Mutex::new(Sources {
                by_source: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }

    /// Lets a client at `ip` create one more stage, or says which limit refuses it. `None`
    /// when nothing is limited (nothing to release later).
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
    ) -> Result<Option<StagePermit>, SourceRefusal> {
        if self.max_live.is_none() && self.rate.is_none() {
            return Ok(None);
        }
        let source = source_of(ip);
        let mut sources = self.lock();
        if sources.by_source.len() >= sources.sweep_at {
            sources.sweep();
        }
        let rate = self.rate;
        let state = sources
            .by_source
            .entry(source)
            .or_insert_with(|| SourceState {
                live: 0,
                bucket: rate.map(TokenBucket::new),
            });
        if self.max_live.is_some_and(|max| state.live >= max) {
            return Err(SourceRefusal::TooMany);
        }
        if state.bucket.as_mut().is_some_and(|bucket| !bucket.take()) {
            return Err(SourceRefusal::TooFast);
        }
        state.live += 1;
        Ok(Some(StagePermit {
            quota: Arc::clone(self),
            source,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sources> {
        // Every update is one call: a panic elsewhere never leaves the map half-updated.
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sources remembered (holding stages, or still paying for recent creations).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.lock().by_source.len()
    }
}

impl Sources {
    /// Forgets the sources that hold no stage and whose creation rate has recovered; the map
    /// then holds only sources with live stages (at most `max_stages`) or recent creations.
    fn sweep(&mut self) {
        self.by_source.retain(|_, state| {
            state.live > 0
                || state
                    .bucket
                    .as_mut()
                    .is_some_and(|bucket| !bucket.is_full())
        });
        self.sweep_at = FIRST_SWEEP.max(2 * self.by_source.len());
    }
}

impl Drop for StagePermit {
    fn drop(&mut self) {
        let mut sources = self.quota.lock();
        if let Some(state) = sources.by_source.get_mut(&self.source) {
            state.live = state.live.saturating_sub(1);
        }
    }
}

/// What lets a new stage be created; asked only when a stage would be.
pub(crate) trait Admission {
    /// Lets the creation through, with the permit the new stage keeps while it lives
    /// (`None`: nothing to release), or refuses it with the code the requester gets.
    fn admit(self) -> Result<Option<StagePermit>, ErrorCode>;
}

/// A requester's own creation rate: `false` refuses with `STAGE_CREATION_RATE_EXCEEDED`.
impl<F: FnOnce() -> bool> Admission for F {
    fn admit(self) -> Result<Option<StagePermit>, ErrorCode> {
        if self() {
            Ok(None)
        } else {
            Err(ErrorCode::STAGE_CREATION_RATE_EXCEEDED)
        }
    }
}

/// A client's login that would create a stage: its connection's creation rate, then the
/// quota of its source address.
pub(crate) struct ClientAdmission<'a> {
    /// The connection's creation allowance (`None`: unlimited).
    pub(crate) creations: Option<&'a mut TokenBucket>,
    pub(crate) quota: &'a Arc<StageQuota>,
    /// The client's address.
    pub(crate) source: IpAddr,
    pub(crate) metrics: &'a Metrics,
}

impl Admission for ClientAdmission<'_> {
    fn admit(self) -> Result<Option<StagePermit>, ErrorCode> {
        if self.creations.is_some_and(|bucket| !bucket.take()) {
            return Err(ErrorCode::STAGE_CREATION_RATE_EXCEEDED);
        }
        self.quota.admit(self.source).map_err(|why| {
            self.metrics.source_refused(why);
            match why {
                SourceRefusal::TooMany => ErrorCode::STAGE_LIMIT_REACHED,
                SourceRefusal::TooFast => ErrorCode::STAGE_CREATION_RATE_EXCEEDED,
            }
        })
    }
}

/// The source an address counts as: an IPv4 address (a v4-mapped IPv6 one included) as it
/// is, an IPv6 address as its /64.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
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

/// Writes a log line a client can cause (a bad frame, a refusal, a cut connection) at most
/// once a second from this call site, process-wide, with `suppressed`: how many lines it
/// held back since the last one. Whatever the client does, the log grows by at most one
/// line a second per call site; the metrics count every event.
///
/// `throttled!(warn, %error, "bad frame; closing the connection")` is
/// `tracing::warn!(suppressed, %error, "...")` behind the call site's own [`LogThrottle`].
macro_rules! throttled {
    ($level:ident, $($field_and_message:tt)+) => {{
        static THROTTLE: $crate::limits::LogThrottle =
            $crate::limits::LogThrottle::new(::std::time::Duration::from_secs(1));
        if let Some(suppressed) = THROTTLE.allow() {
            ::tracing::$level!(suppressed, $($field_and_message)+);
        }
    }};
}
pub(crate) use throttled;

impl LogThrottle {
    pub(crate) const fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            state: Mutex::new(ThrottleState {
                next: None,
                suppressed: 0,
            }),
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
    async fn a_source_holds_at_most_its_live_stages_until_one_closes() {
        let quota = Arc::new(StageQuota::new(Some(2), None));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = quota.admit(a).unwrap().expect("a permit to release");
        let _second = quota.admit(a).unwrap();
        assert_eq!(quota.admit(a).unwrap_err(), SourceRefusal::TooMany);
        // Another source is not affected.
        assert!(quota.admit(b).is_ok());
        // A stage that closes gives its place back.
        drop(first);
        let _third = quota.admit(a).unwrap();
        assert_eq!(quota.admit(a).unwrap_err(), SourceRefusal::TooMany);
        // Without limits nothing is tracked.
        let free = Arc::new(StageQuota::new(None, None));
        assert!((0..10).all(|_| matches!(free.admit(a), Ok(None))));
        assert_eq!(free.remembered(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_creates_at_its_rate_and_an_ipv6_source_is_its_slash_64() {
        let quota = Arc::new(StageQuota::new(None, Some(RateLimit::new(1, 2))));
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let permits = [quota.admit(one).unwrap(), quota.admit(same_64).unwrap()];
        assert_eq!(quota.admit(one).unwrap_err(), SourceRefusal::TooFast);
        assert!(quota.admit(other_64).is_ok());
        // Closing stages does not refill the rate; time does.
        drop(permits);
        assert_eq!(quota.admit(same_64).unwrap_err(), SourceRefusal::TooFast);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(quota.admit(one).is_ok());
        // A v4-mapped address is its IPv4 source.
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_of(mapped), v4);
    }

    #[tokio::test(start_paused = true)]
    async fn sources_that_hold_nothing_and_owe_nothing_are_forgotten() {
        let quota = Arc::new(StageQuota::new(Some(10), Some(RateLimit::new(10, 10))));
        let source = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(i));
        let kept = quota.admit(source(0)).unwrap();
        for i in 1..FIRST_SWEEP as u32 {
            drop(quota.admit(source(i)).unwrap());
        }
        assert_eq!(quota.remembered(), FIRST_SWEEP);
        // Not yet refilled: every source is still paying for its creation.
        drop(quota.admit(source(5_000)).unwrap());
        assert_eq!(quota.remembered(), FIRST_SWEEP + 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        // Refilled: the next sweep keeps only the source that holds a stage, and the new one.
        for i in 6_000..(6_000 + FIRST_SWEEP as u32) {
            drop(quota.admit(source(i)).unwrap());
        }
        assert_eq!(
            quota.remembered(),
            FIRST_SWEEP - 1 + 2,
            "the refilled sources were forgotten"
        );
        drop(kept);
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
