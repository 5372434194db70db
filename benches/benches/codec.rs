//! Codec throughput: encode and decode each direction, with and without LZ4.

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use playhouse_protocol::{
    ClientCodec, ClientFrame, CodecConfig, Decoder, Encoder, ErrorCode, ServerCodec, ServerFrame,
};

fn payload(size: usize, compressible: bool) -> Bytes {
    if compressible {
        return Bytes::from(b"playhouse ".repeat(size / 10 + 1)[..size].to_vec());
    }
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    Bytes::from(
        (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>(),
    )
}

fn client_frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("client_frame");
    for size in [64usize, 1024] {
        let frame = ClientFrame::new("BenchRequest", 7, 42, payload(size, false));
        let mut wire = BytesMut::new();
        ClientCodec::default()
            .encode(frame.clone(), &mut wire)
            .unwrap();
        let wire = wire.freeze();
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("encode", size), &frame, |b, frame| {
            let mut codec = ClientCodec::default();
            let mut dst = BytesMut::with_capacity(64 * 1024);
            b.iter(|| {
                codec.encode(frame.clone(), &mut dst).unwrap();
                if dst.len() > 32 * 1024 {
                    dst.clear();
                }
            });
        });
        group.bench_with_input(BenchmarkId::new("decode", size), &wire, |b, wire| {
            let mut codec = ServerCodec::default();
            b.iter(|| {
                let mut src = BytesMut::from(&wire[..]);
                codec.decode(&mut src).unwrap().unwrap()
            });
        });
    }
    group.finish();
}

fn server_frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_frame");
    for (name, size, compressible, threshold) in [
        ("plain_64", 64usize, false, Some(512)),
        ("plain_8k_incompressible", 8192, false, Some(512)),
        ("lz4_8k", 8192, true, Some(512)),
        ("lz4_64k", 65536, true, Some(512)),
        ("off_64k", 65536, true, None),
    ] {
        let config = CodecConfig {
            compression_threshold: threshold,
            ..CodecConfig::default()
        };
        let frame = ServerFrame::new(
            "EchoReply",
            7,
            42,
            ErrorCode::SUCCESS,
            payload(size, compressible),
        );
        let mut wire = BytesMut::new();
        ServerCodec::new(config)
            .encode(frame.clone(), &mut wire)
            .unwrap();
        let wire = wire.freeze();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("encode", name), &frame, |b, frame| {
            let mut codec = ServerCodec::new(config);
            let mut dst = BytesMut::with_capacity(256 * 1024);
            b.iter(|| {
                codec.encode(frame.clone(), &mut dst).unwrap();
                dst.clear();
            });
        });
        group.bench_with_input(BenchmarkId::new("decode", name), &wire, |b, wire| {
            let mut codec = ClientCodec::new(config);
            b.iter(|| {
                let mut src = BytesMut::from(&wire[..]);
                codec.decode(&mut src).unwrap().unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, client_frames, server_frames);
criterion_main!(benches);
