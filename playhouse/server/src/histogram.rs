//! A duration histogram with fixed buckets, lock-free to observe (a few relaxed atomic adds),
//! encoded by `prometheus-client` as a Prometheus histogram.
//!
//! `prometheus_client::metrics::histogram::Histogram` takes a mutex on every observation;
//! on the request path, shared by every session's task, that lock is contended (see
//! `benches/benches/metrics.rs`). This one keeps the crate's registry and exposition and
//! observes with atomics only; its memory is fixed by its buckets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::sharded::{SHARDS, shard};

/// Upper bounds (seconds) for request-scale durations: 0.5 ms to 5 s.
pub(crate) const LATENCY: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Upper bounds (seconds) for work inside a stage (a handler, a tick, a mailbox wait):
/// 10 µs to 1 s.
pub(crate) const FAST: &[f64] = &[
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    1.0,
];
/// Upper bounds (seconds) for a client's time away before it resumes: 50 ms to 2 min.
pub(crate) const GAP: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Upper bounds (seconds) for a session's life: 1 s to 4 h.
pub(crate) const LIFETIME: &[f64] = &[
    1.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// Durations counted by bucket, with their count and sum. Cheap to clone (shared counts).
#[derive(Clone, Debug)]
pub(crate) struct Histogram {
    inner: Arc<Inner>,
}

/// One row of counts per shard (`crate::sharded`): each runtime thread adds to its own row.
#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// Row `i` at `i * stride`: one count per bound, the overflow (above the last bound), then
    /// the sum in nanoseconds; a cache line of slack after each row keeps rows apart.
    slots: Box<[AtomicU64]>,
    stride: usize,
}

impl Inner {
    /// Slot `at` of every row, added up.
    fn total(&self, at: usize) -> u64 {
        (0..SHARDS)
            .map(|row| self.slots[row * self.stride + at].load(Ordering::Relaxed))
            .sum()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(LATENCY)
    }
}

impl Histogram {
    /// A histogram with buckets at `bounds` (seconds, ascending).
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        let stride = bounds.len() + 2 + 8;
        let slots = (0..SHARDS * stride).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            inner: Arc::new(Inner {
                bounds,
                slots,
                stride,
            }),
        }
    }

    /// Counts one duration.
    pub(crate) fn observe(&self, took: Duration) {
        let inner = &*self.inner;
        let seconds = took.as_secs_f64();
        let i = inner
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(inner.bounds.len());
        let row = shard() * inner.stride;
        inner.slots[row + i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        inner.slots[row + inner.bounds.len() + 1].fetch_add(nanos, Ordering::Relaxed);
    }

    /// The bucket bounds (seconds).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn bounds(&self) -> &'static [f64] {
        self.inner.bounds
    }

    /// Observations per bucket (not cumulative), the overflow last.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn counts(&self) -> Vec<u64> {
        (0..=self.inner.bounds.len())
            .map(|i| self.inner.total(i))
            .collect()
    }

    /// Observations so far.
    pub(crate) fn count(&self) -> u64 {
        (0..=self.inner.bounds.len())
            .map(|i| self.inner.total(i))
            .sum()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let inner = &*self.inner;
        // Bucket counts (not cumulative: the encoder adds them up), then the overflow's count
        // is only in the total.
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .enumerate()
            .map(|(i, bound)| (*bound, inner.total(i)))
            .collect();
        let count = self.count();
        let sum = inner.total(inner.bounds.len() + 1) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_is_in_seconds() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_millis(30));
        histogram.observe(Duration::from_secs(30));
        let mut registry = Registry::with_labels([("server".into(), "s".into())].into_iter());
        registry.register("x_seconds", "X", histogram.clone());
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("# TYPE x_seconds histogram"), "{out}");
        assert!(
            out.contains("x_seconds_bucket{server=\"s\",le=\"0.0025\"} 0"),
            "{out}"
        );
        assert!(out.contains("x_seconds_bucket{server=\"s\",le=\"0.005\"} 1"));
        assert!(out.contains("x_seconds_bucket{server=\"s\",le=\"0.05\"} 2"));
        assert!(out.contains("x_seconds_bucket{server=\"s\",le=\"5\"} 2"));
        assert!(out.contains("x_seconds_bucket{server=\"s\",le=\"+Inf\"} 3"));
        assert!(out.contains("x_seconds_sum{server=\"s\"} 30.033"));
        assert!(out.contains("x_seconds_count{server=\"s\"} 3"));
        assert_eq!(histogram.counts(), [0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    }
}
