//! A latency histogram with fixed buckets, lock-free to observe, rendered in the Prometheus
//! text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the buckets: 0.5 ms to 5 s.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Durations counted by bucket, with their count and sum.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Counts one duration.
    pub(crate) fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Appends the histogram `name` (with its HELP and TYPE lines) for server `server_id`.
    pub(crate) fn render(&self, out: &mut String, name: &str, help: &str, server_id: &str) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += load(&self.buckets[i]);
            let _ = writeln!(
                out,
                "{name}_bucket{{server=\"{server_id}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = load(&self.count);
        let _ = writeln!(
            out,
            "{name}_bucket{{server=\"{server_id}\",le=\"+Inf\"}} {count}"
        );
        let sum = load(&self.sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{server=\"{server_id}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{server=\"{server_id}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_is_in_seconds() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_millis(30));
        histogram.observe(Duration::from_secs(30));
        let mut out = String::new();
        histogram.render(&mut out, "x_seconds", "X.", "s");
        assert!(out.contains("# TYPE x_seconds histogram"));
        assert!(out.contains("x_seconds_bucket{server=\"s\",le=\"0.0025\"} 0"));
        assert!(out.contains("x_seconds_bucket{server=\"s\",le=\"0.005\"} 1"));
        assert!(out.contains("x_seconds_bucket{server=\"s\",le=\"0.05\"} 2"));
        assert!(out.contains("x_seconds_bucket{server=\"s\",le=\"5\"} 2"));
        assert!(out.contains("x_seconds_bucket{server=\"s\",le=\"+Inf\"} 3"));
        assert!(out.contains("x_seconds_sum{server=\"s\"} 30.033"));
        assert!(out.contains("x_seconds_count{server=\"s\"} 3"));
    }
}
