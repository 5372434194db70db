//! The route header of one mesh request as its receiver takes it: decoded from the frame the
//! link read, then handed on as a `Packet` (what the stage or API handler receives).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use playhouse_mesh::proto::RouteHeader;
use playhouse_mesh::{Route, RoutePacket, TraceContext};
use prost::Message;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_header");
    group.throughput(Throughput::Elements(1));
    let route = Route::new("EchoRequest")
        .with_stage(7)
        .with_account("player-1234")
        .with_reply_stage(3)
        .with_trace(TraceContext::new_root());
    let mut header = route.to_header();
    header.from = "api-1".into();
    header.msg_seq = 42;
    let frame = Bytes::from(header.encode_to_vec());
    group.bench_function("decode_to_packet", |b| {
        b.iter(|| {
            let header = RouteHeader::decode(black_box(frame.clone())).expect("decodes");
            let packet = RoutePacket {
                route: Route::from_header(header),
                payload: Bytes::new(),
            };
            black_box(packet.packet())
        });
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
