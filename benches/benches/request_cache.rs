//! The mesh request cache: register and complete (the per-request bookkeeping of every
//! server-to-server request).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use playhouse_mesh::{RequestCache, RoutePacket};

fn cache(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_cache");
    group.throughput(Throughput::Elements(1));
    let cache = RequestCache::new(100_000);
    // A realistic backlog of other requests in flight.
    let _backlog: Vec<_> = (0..1000)
        .map(|_| cache.register("play-2").unwrap())
        .collect();
    group.bench_function("register_complete", |b| {
        b.iter(|| {
            let (seq, mut rx) = cache.register("play-1").unwrap();
            cache.complete(seq, Ok(RoutePacket::default()));
            rx.try_recv().unwrap().unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, cache);
criterion_main!(benches);
