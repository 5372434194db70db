//! Registering a server's metrics with `prometheus-client` (one registry, the exposition in
//! registration order) and the per-peer histogram families.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::histogram::Histogram;

/// One label of a series: its name and (bounded) value.
pub(crate) type Label = [(&'static str, Cow<'static, str>); 1];

/// Histograms with one series per peer server (their number is the cluster's), observed
/// without allocating: each peer's histogram is found by its name under a read lock; only a
/// peer's first observation creates its series.
#[derive(Debug, Default)]
pub(crate) struct PerPeer {
    /// What the exposition encodes.
    family: Family<Label, Histogram>,
    /// Each peer's histogram of `family` (sharing its counts), by server id.
    peers: RwLock<HashMap<Box<str>, Histogram>>,
}

impl PerPeer {
    /// Observes `took` in `peer`'s series.
    pub(crate) fn observe(&self, peer: &str, took: Duration) {
        let known = self.peers.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(histogram) = known.get(peer) {
            return histogram.observe(took);
        }
        drop(known);
        let label: Label = [("peer", Cow::Owned(peer.to_owned()))];
        let histogram = self.family.get_or_create(&label).clone();
        histogram.observe(took);
        let mut peers = self.peers.write().unwrap_or_else(PoisonError::into_inner);
        peers.insert(Box::from(peer), histogram);
    }
}

/// Registers metrics one after another (the exposition keeps this order).
pub(crate) struct Builder(pub(crate) Registry);

impl Builder {
    pub(crate) fn counter(&mut self, name: &str, help: &str) -> Counter {
        let counter = Counter::default();
        self.0.register(name, help, counter.clone());
        counter
    }

    pub(crate) fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        let gauge = Gauge::default();
        self.0.register(name, help, gauge.clone());
        gauge
    }

    /// A counter or gauge changed on the hot path (per-thread shards).
    pub(crate) fn sharded<const GAUGE: bool>(
        &mut self,
        name: &str,
        help: &str,
    ) -> crate::sharded::Sharded<GAUGE> {
        let metric = crate::sharded::Sharded::<GAUGE>::default();
        self.0.register(name, help, metric.clone());
        metric
    }

    pub(crate) fn histogram(
        &mut self,
        name: &str,
        help: &str,
        bounds: &'static [f64],
    ) -> Histogram {
        let histogram = Histogram::new(bounds);
        self.0.register(name, help, histogram.clone());
        histogram
    }

    /// One series per value of `label`, all created now.
    pub(crate) fn labelled<M, const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        label: &'static str,
        values: [&'static str; N],
    ) -> [M; N]
    where
        M: prometheus_client::metrics::TypedMetric
            + prometheus_client::encoding::EncodeMetric
            + Default
            + Clone
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let family = Family::<Label, M>::default();
        let series = values.map(|value| family.get_or_create_owned(&[(label, value.into())]));
        self.0.register(name, help, family);
        series
    }

    pub(crate) fn per_peer(&mut self, name: &str, help: &str) -> PerPeer {
        let per_peer = PerPeer::default();
        self.0.register(name, help, per_peer.family.clone());
        per_peer
    }
}
