//! Stage dispatch in process (no sockets): requests per second through one stage, and
//! through many stages at once.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use playhouse::Packet;
use playhouse::testing::EchoActor;
use playhouse::testing::StageHarness;
use playhouse_benches::bench_server::BenchStage;

const BATCH: usize = 1000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn one_stage(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("stage_dispatch");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("one_stage_pipelined_1000", |b| {
        let (_stage, mut client) = rt.block_on(async {
            let stage =
                StageHarness::start("Bench", |_| BenchStage, |_| EchoActor, Packet::empty("C"))
                    .await
                    .unwrap();
            let client = stage.join(Packet::new("Auth", "a")).await.unwrap();
            (stage, client)
        });
        let request = Packet::new("BenchRequest", vec![0u8; 64]);
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..BATCH {
                    client.request_nowait(request.clone()).await.unwrap();
                }
                for _ in 0..BATCH {
                    client.frame().await.unwrap();
                }
            })
        });
    });
    for stages in [10usize, 100] {
        group.bench_with_input(
            BenchmarkId::new("many_stages", stages),
            &stages,
            |b, &stages| {
                let mut clients = rt.block_on(async {
                    let mut clients = Vec::new();
                    for _ in 0..stages {
                        let stage = StageHarness::start(
                            "Bench",
                            |_| BenchStage,
                            |_| EchoActor,
                            Packet::empty("C"),
                        )
                        .await
                        .unwrap();
                        let client = stage.join(Packet::new("Auth", "a")).await.unwrap();
                        clients.push((stage, client));
                    }
                    clients
                });
                let request = Packet::new("BenchRequest", vec![0u8; 64]);
                let per_stage = BATCH / stages;
                b.iter(|| {
                    rt.block_on(async {
                        let mut tasks = Vec::new();
                        for (stage, mut client) in clients.drain(..) {
                            let request = request.clone();
                            tasks.push(tokio::spawn(async move {
                                for _ in 0..per_stage {
                                    client.request_nowait(request.clone()).await.unwrap();
                                }
                                for _ in 0..per_stage {
                                    client.frame().await.unwrap();
                                }
                                (stage, client)
                            }));
                        }
                        for task in tasks {
                            clients.push(task.await.unwrap());
                        }
                    })
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, one_stage);
criterion_main!(benches);
