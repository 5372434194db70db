//! What one observation costs on the request path: `prometheus-client`'s own histogram (a
//! mutex per observation) against a lock-free one of shared atomics (PlayHouse's algorithm in
//! `playhouse/server/src/histogram.rs`, copied here without its per-thread rows: it is
//! crate-private), alone and with a second thread observing into the same histogram (every
//! session task shares one), and a counter increment for scale.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram as CrateHistogram;

const BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The algorithm of PlayHouse's histogram: a relaxed add to one bucket and to the sum.
#[derive(Default)]
struct AtomicHistogram {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// Times `iters` calls of `observe` on this thread while another thread calls it in a loop.
fn contended(iters: u64, observe: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (stop, observe) = (Arc::clone(&stop), Arc::clone(&observe));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                observe();
            }
        })
    };
    let start = Instant::now();
    for _ in 0..iters {
        observe();
    }
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = other.join();
    took
}

fn observe(c: &mut Criterion) {
    let took = Duration::from_micros(700);
    let mut group = c.benchmark_group("metrics");
    let counter = Counter::<u64>::default();
    group.bench_function("counter_inc", |b| b.iter(|| counter.inc()));
    let crate_histogram = CrateHistogram::new(BOUNDS);
    group.bench_function("prometheus_client_histogram", |b| {
        b.iter(|| crate_histogram.observe(took.as_secs_f64()))
    });
    let atomic = AtomicHistogram::default();
    group.bench_function("atomic_histogram", |b| b.iter(|| atomic.observe(took)));
    let shared = Arc::new(CrateHistogram::new(BOUNDS));
    group.bench_function("prometheus_client_histogram_2_threads", |b| {
        let shared = Arc::clone(&shared);
        b.iter_custom(|iters| {
            let shared = Arc::clone(&shared);
            contended(iters, Arc::new(move || shared.observe(took.as_secs_f64())))
        })
    });
    let shared = Arc::new(AtomicHistogram::default());
    group.bench_function("atomic_histogram_2_threads", |b| {
        b.iter_custom(|iters| {
            let shared = Arc::clone(&shared);
            contended(iters, Arc::new(move || shared.observe(took)))
        })
    });
    group.finish();
}

criterion_group!(benches, observe);
criterion_main!(benches);
