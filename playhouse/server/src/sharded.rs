//! Per-thread shards for the metrics every message touches: each runtime thread adds to its
//! own cache line, and a scrape sums the shards. One shared atomic would bounce its cache line
//! between cores on every message (the frame counters, the byte counters, the outbound queue
//! gauge, and the histograms, see `histogram.rs`).

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Shards per metric: threads beyond this share them (round robin).
pub(crate) const SHARDS: usize = 8;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's shard, assigned on first use.
pub(crate) fn shard() -> usize {
    SHARD.with(|shard| {
        let mine = shard.get();
        if mine != usize::MAX {
            return mine;
        }
        let mine = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
        shard.set(mine);
        mine
    })
}

/// One shard, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicI64);

/// A counter (`Counter` when `GAUGE` is false) or gauge whose changes go to the calling
/// thread's shard. Cheap to clone (shared shards).
#[derive(Clone, Debug, Default)]
pub(crate) struct Sharded<const GAUGE: bool>(Arc<[Padded; SHARDS]>);

/// A counter of events on the hot path.
pub(crate) type ShardedCounter = Sharded<false>;
/// A gauge changed on the hot path.
pub(crate) type ShardedGauge = Sharded<true>;

impl<const GAUGE: bool> Sharded<GAUGE> {
    /// Adds `n` (negative: a gauge going down).
    pub(crate) fn add(&self, n: i64) {
        self.0[shard()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of the shards.
    pub(crate) fn get(&self) -> i64 {
        self.0.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

impl<const GAUGE: bool> TypedMetric for Sharded<GAUGE> {
    const TYPE: MetricType = if GAUGE {
        MetricType::Gauge
    } else {
        MetricType::Counter
    };
}

impl<const GAUGE: bool> EncodeMetric for Sharded<GAUGE> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        if GAUGE {
            encoder.encode_gauge(&self.get())
        } else {
            let total = u64::try_from(self.get()).unwrap_or(0);
            encoder.encode_counter::<NoLabelSet, _, u64>(&total, None)
        }
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_add_up_across_threads() {
        let counter = ShardedCounter::default();
        let gauge = ShardedGauge::default();
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        counter.add(1);
                        gauge.add(2);
                        gauge.add(-1);
                    }
                });
            }
        });
        assert_eq!(counter.get(), 12_000);
        assert_eq!(gauge.get(), 12_000);
    }
}
