//! Session benches (PERFORMANCE.md rows 4–7); filled in by the session work.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, criterion_group, criterion_main};

fn acquire_release(c: &mut Criterion) {
    let s = memscope::Session::shared();
    c.bench_function("session/acquire_release/1t", |b| {
        b.iter(|| drop(std::hint::black_box(s.acquire().unwrap())))
    });
}

criterion_group!(benches, acquire_release);
criterion_main!(benches);
