//! Parse and compose benchmarks: the per-request work of each protocol's codec.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use memcord_protocol::binary::{self, BinaryRequest, Opcode};
use memcord_protocol::{parse_request, Limits, Request, Response, Value};
use std::hint::black_box;

fn key() -> Vec<u8> {
    b"key:0000000000000000000000000000000000000000000000000000000000042".to_vec()
}

fn text(c: &mut Criterion) {
    let limits = Limits::default();
    let get = [b"get ".as_slice(), &key(), b"\r\n"].concat();
    let mut set = [b"set ".as_slice(), &key(), b" 0 0 1024\r\n"].concat();
    set.extend_from_slice(&[b'v'; 1024]);
    set.extend_from_slice(b"\r\n");
    let mg = [b"mg ".as_slice(), &key(), b" f v\r\n"].concat();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("text get", |b| {
        b.iter(|| parse_request(black_box(&get), &limits))
    });
    group.bench_function("text set 1 KiB", |b| {
        b.iter(|| parse_request(black_box(&set), &limits))
    });
    group.bench_function("meta mg", |b| {
        b.iter(|| parse_request(black_box(&mg), &limits))
    });
    let mut frame = BytesMut::new();
    binary::compose_request(&BinaryRequest::keyed(Opcode::Get, key()), &mut frame);
    group.bench_function("binary get", |b| {
        b.iter(|| binary::parse_request(black_box(&frame), &limits))
    });
    group.finish();

    let hit = Response::Values(vec![Value {
        key: key().into(),
        flags: 0,
        cas: None,
        data: vec![b'v'; 1024].into(),
    }]);
    let mut out = BytesMut::with_capacity(4096);
    c.bench_function("compose text hit 1 KiB", |b| {
        b.iter(|| {
            out.clear();
            black_box(&hit).compose(&mut out);
        })
    });
    let request = Request::Get {
        keys: vec![key().into()],
        with_cas: false,
    };
    c.bench_function("compose text get (client side)", |b| {
        b.iter(|| {
            out.clear();
            black_box(&request).compose(&mut out);
        })
    });
}

criterion_group!(benches, text);
criterion_main!(benches);
