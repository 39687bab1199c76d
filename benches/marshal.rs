//! Marshal benches: a 5-field `c_struct!` written and read through a segment
//! (static `Marshal` path, guarded path, dynamic `Value` path) against
//! `ptr::write`/`ptr::read` of the same `#[repr(C)]` type.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, criterion_group, criterion_main};
use memscope::marshal::{Marshal, Value, read_seq_into, write_seq};
use memscope::segment::Address;
use memscope::{Segment, Session, c_struct};
use std::hint::black_box;

c_struct! {
    /// Five fields of mixed size (with padding).
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Rec { id: u64, kind: u8, count: i32, weight: f64, next: Address }
}

const N: usize = 64;
const SZ: usize = size_of::<Rec>();

fn recs() -> Vec<Rec> {
    (0..N)
        .map(|i| Rec {
            id: i as u64,
            kind: i as u8,
            count: -(i as i32),
            weight: i as f64 * 0.5,
            next: Address::new(i * 8),
        })
        .collect()
}

/// Uses every field, so no read can be skipped.
#[inline(always)]
fn fold(r: &Rec) -> u64 {
    r.id ^ (r.kind as u64) ^ (r.count as u64) ^ r.weight.to_bits() ^ r.next.get() as u64
}

/// 8-aligned zeroed backing store of N records.
fn backing() -> Vec<u64> {
    vec![0u64; N * SZ / 8]
}

fn segment<'s>(buf: &mut [u64], s: &'s Session) -> Segment<'s> {
    // SAFETY: `buf` outlives the segment (both live for the bench function)
    // and is only accessed through it.
    unsafe { Segment::from_raw(Address::from_ptr(buf.as_mut_ptr()), buf.len() * 8, s) }.unwrap()
}

fn marshal(c: &mut Criterion) {
    let input = recs();
    let mut g = c.benchmark_group("marshal/rec5_x64_write_read");

    // Baseline: ptr::write / ptr::read of the #[repr(C)] type.
    let mut raw = backing();
    g.bench_function("ptr_write_read", |b| {
        let p = raw.as_mut_ptr().cast::<Rec>();
        b.iter(|| {
            let p = black_box(p);
            for (i, r) in input.iter().enumerate() {
                // SAFETY: `p` points to N records' worth of 8-aligned memory.
                unsafe { p.add(i).write(*r) };
            }
            let p = black_box(p);
            let mut acc = 0u64;
            for i in 0..N {
                // SAFETY: as above; every record was written just before.
                let r = unsafe { p.add(i).read() };
                acc = acc.wrapping_add(fold(&r));
            }
            black_box(acc)
        })
    });

    for (name, session) in [
        ("global", Session::global()),
        ("confined", Session::confined()),
        ("shared", Session::shared()),
    ] {
        let mut buf = backing();
        let mut seg = segment(&mut buf, &session);
        g.bench_function(format!("marshal_{name}"), |b| {
            b.iter(|| {
                let seg = black_box(&mut seg);
                for (i, r) in input.iter().enumerate() {
                    r.write_to(seg, i * SZ).unwrap();
                }
                let seg = black_box(seg);
                let mut acc = 0u64;
                for i in 0..N {
                    let r = Rec::read_from(seg, i * SZ).unwrap();
                    acc = acc.wrapping_add(fold(&r));
                }
                black_box(acc)
            })
        });
        if name == "shared" {
            let guard = session.acquire().unwrap();
            g.bench_function("marshal_shared_guarded", |b| {
                b.iter(|| {
                    let seg = black_box(&mut seg);
                    for (i, r) in input.iter().enumerate() {
                        r.write_guarded(seg, &guard, i * SZ).unwrap();
                    }
                    let seg = black_box(seg);
                    let mut acc = 0u64;
                    for i in 0..N {
                        let r = Rec::read_guarded(seg, &guard, i * SZ).unwrap();
                        acc = acc.wrapping_add(fold(&r));
                    }
                    black_box(acc)
                })
            });
            drop(guard);
        }
    }

    // Batch path: one check for the whole run of N records.
    let session = Session::global();
    let mut buf = backing();
    let mut batch_seg = segment(&mut buf, &session);
    let mut out = recs();
    g.bench_function("marshal_batch_global", |b| {
        b.iter(|| {
            let seg = black_box(&mut batch_seg);
            write_seq(seg, 0, &input).unwrap();
            let seg = black_box(seg);
            read_seq_into(seg, 0, &mut out).unwrap();
            black_box(out.iter().fold(0u64, |a, r| a.wrapping_add(fold(r))))
        })
    });

    // Dynamic path: Value through the run-time layout.
    let layout = Rec::layout();
    let values: Vec<Value> = input
        .iter()
        .map(|r| {
            Value::Struct(vec![
                Value::U64(r.id),
                Value::U8(r.kind),
                Value::I32(r.count),
                Value::F64(r.weight),
                Value::Address(r.next),
            ])
        })
        .collect();
    let session = Session::global();
    let mut buf = backing();
    let mut seg = segment(&mut buf, &session);
    g.bench_function("value_dynamic_global", |b| {
        b.iter(|| {
            let seg = black_box(&mut seg);
            for (i, v) in values.iter().enumerate() {
                v.write(&layout, seg, i * SZ).unwrap();
            }
            let mut n = 0usize;
            for i in 0..N {
                if let Value::Struct(ref f) = Value::read(&layout, seg, i * SZ).unwrap() {
                    n += f.len();
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

/// The same work one record at a time: `black_box` on the index keeps the
/// compiler from turning the baseline's loops into `memcpy`/SIMD (which
/// marshaling cannot do: it must not touch padding), so this compares the
/// per-record cost of one checked write + read against a plain one.
fn one_at_a_time(c: &mut Criterion) {
    let input = recs();
    let mut g = c.benchmark_group("marshal/rec5_one_at_a_time_x64");
    let mut raw = backing();
    g.bench_function("ptr_write_read", |b| {
        let p = raw.as_mut_ptr().cast::<Rec>();
        b.iter(|| {
            let mut acc = 0u64;
            for i in 0..N {
                let i = black_box(i);
                // SAFETY: i < N and `p` points to N records of 8-aligned memory.
                unsafe { p.add(i).write(input[i]) };
                let i = black_box(i);
                // SAFETY: as above; record i was just written.
                let r = unsafe { p.add(i).read() };
                acc = acc.wrapping_add(fold(&r));
            }
            black_box(acc)
        })
    });
    let run = |g: &mut criterion::BenchmarkGroup<'_, _>, name: &str, session: &Session| {
        let mut buf = backing();
        let mut seg = segment(&mut buf, session);
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut acc = 0u64;
                for i in 0..N {
                    let i = black_box(i);
                    input[i].write_to(&mut seg, i * SZ).unwrap();
                    let i = black_box(i);
                    let r = Rec::read_from(&seg, i * SZ).unwrap();
                    acc = acc.wrapping_add(fold(&r));
                }
                black_box(acc)
            })
        });
    };
    // The encoding alone, on a plain byte slice (no segment checks): shows
    // how the marshal cost splits between encode/decode and the checks.
    let mut bytes = vec![0u8; N * SZ];
    g.bench_function("encode_decode_slice", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for i in 0..N {
                let i = black_box(i);
                input[i].encode(&mut bytes[i * SZ..(i + 1) * SZ]).unwrap();
                let i = black_box(i);
                let r = Rec::decode(&bytes[i * SZ..(i + 1) * SZ]).unwrap();
                acc = acc.wrapping_add(fold(&r));
            }
            black_box(acc)
        })
    });
    run(&mut g, "marshal_global", &Session::global());
    run(&mut g, "marshal_confined", &Session::confined());
    let shared = Session::shared();
    let mut buf = backing();
    let mut seg = segment(&mut buf, &shared);
    let guard = shared.acquire().unwrap();
    g.bench_function("marshal_shared_guarded", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for i in 0..N {
                let i = black_box(i);
                input[i].write_guarded(&mut seg, &guard, i * SZ).unwrap();
                let i = black_box(i);
                let r = Rec::read_guarded(&seg, &guard, i * SZ).unwrap();
                acc = acc.wrapping_add(fold(&r));
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group!(benches, marshal, one_at_a_time);
criterion_main!(benches);
