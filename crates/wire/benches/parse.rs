//! Wall-clock benchmarks of request parsing: a typical chat request, and a body at the 4 MiB
//! limit made of tens of thousands of small top-level fields (the worst case for the duplicate
//! key check, which must stay linear).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_wire::ChatRequest;

/// A chat request as an SDK sends it: a system prompt, a few turns, sampling settings.
fn typical() -> Bytes {
    Bytes::from_static(
        br#"{"model":"chat","stream":true,"max_tokens":512,"temperature":0.7,"top_p":1,
        "messages":[
            {"role":"system","content":"You are a helpful assistant. Answer briefly and cite your sources."},
            {"role":"user","content":"What is the capital of France, and how many people live there?"},
            {"role":"assistant","content":"Paris; about 2.1 million people in the city proper."},
            {"role":"user","content":"And in the metropolitan area? Please give the year of the figure."}],
        "user":"user-1234"}"#,
    )
}

/// A request padded to just under 4 MiB with distinct fields of about 64 bytes each.
fn many_fields() -> (Bytes, usize) {
    let mut body = String::from(r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]"#);
    let mut n = 0;
    while body.len() < (4 << 20) - 128 {
        body.push_str(&format!(r#","field_{n:08}":"{:0>44}""#, n));
        n += 1;
    }
    body.push('}');
    (Bytes::from(body), n)
}

fn bench_parse(c: &mut Criterion) {
    let body = typical();
    c.bench_function("parse/chat request", |b| b.iter(|| ChatRequest::parse(black_box(body.clone())).unwrap()));
    let (body, fields) = many_fields();
    let name = format!("parse/{} KiB, {fields} fields", body.len() / 1024);
    let mut group = c.benchmark_group("large");
    group.sample_size(10);
    group.bench_function(&name, |b| b.iter(|| ChatRequest::parse(black_box(body.clone())).unwrap()));
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
