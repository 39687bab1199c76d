//! Segment benches (PERFORMANCE.md rows 8–9, plus fill/copy at memset/memcpy
//! speed). Each group puts memscope next to its plain-Rust floor; read the
//! ratios within one run.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memscope::segment::Address;
use memscope::{Segment, Session};
use std::hint::black_box;

const N: usize = 1 << 20; // 1 Mi i32

fn segment_over<'s>(v: &mut [i32], s: &'s Session) -> Segment<'s> {
    // SAFETY: `v` outlives the segment and is not used while it exists.
    unsafe { Segment::from_raw(Address::from_ptr(v.as_mut_ptr()), v.len() * 4, s) }.unwrap()
}

fn sum_i32(c: &mut Criterion) {
    let mut v: Vec<i32> = (0..N as i32).map(|i| i & 0xff).collect();
    let plain: Vec<i32> = v.clone();
    let shared = Session::shared();
    let confined = Session::confined();
    let global = Session::global();

    let mut g = c.benchmark_group("segment/sum_1Mi_i32");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("plain_slice", |b| {
        b.iter(|| {
            black_box(&plain[..])
                .iter()
                .fold(0i32, |a, &x| a.wrapping_add(x))
        })
    });
    {
        let seg = segment_over(&mut v, &shared);
        // Row 8: under a guard, as a slice.
        g.bench_function("guarded_as_slice_of/shared", |b| {
            b.iter(|| {
                let guard = shared.acquire().unwrap();
                let view = black_box(&seg).guarded(&guard).unwrap();
                view.as_slice_of::<i32>()
                    .unwrap()
                    .iter()
                    .fold(0i32, |a, &x| a.wrapping_add(x))
            })
        });
        // Row 9: unguarded checked get per element (enter/exit RMW pair each).
        g.bench_function("get_per_element/shared", |b| {
            b.iter(|| {
                let seg = black_box(&seg);
                let mut a = 0i32;
                for i in 0..N {
                    a = a.wrapping_add(seg.get_at_index::<i32>(i).unwrap());
                }
                a
            })
        });
        g.bench_function("elements_iter/shared", |b| {
            b.iter(|| {
                black_box(&seg)
                    .elements::<i32>()
                    .unwrap()
                    .fold(0i32, |a, x| a.wrapping_add(x.unwrap()))
            })
        });
        g.bench_function("elements_next_chunk/shared", |b| {
            b.iter(|| {
                let mut it = black_box(&seg).elements::<i32>().unwrap();
                let mut a = 0i32;
                while let Some(chunk) = it.next_chunk() {
                    a = chunk.unwrap().iter().fold(a, |a, &x| a.wrapping_add(x));
                }
                a
            })
        });
    }
    {
        let seg = segment_over(&mut v, &confined);
        g.bench_function("get_per_element/confined", |b| {
            b.iter(|| {
                let seg = black_box(&seg);
                let mut a = 0i32;
                for i in 0..N {
                    a = a.wrapping_add(seg.get_at_index::<i32>(i).unwrap());
                }
                a
            })
        });
        g.bench_function("elements_next_chunk/confined", |b| {
            b.iter(|| {
                let mut it = black_box(&seg).elements::<i32>().unwrap();
                let mut a = 0i32;
                while let Some(chunk) = it.next_chunk() {
                    a = chunk.unwrap().iter().fold(a, |a, &x| a.wrapping_add(x));
                }
                a
            })
        });
    }
    {
        let seg = segment_over(&mut v, &global);
        g.bench_function("get_per_element/global", |b| {
            b.iter(|| {
                let seg = black_box(&seg);
                let mut a = 0i32;
                for i in 0..N {
                    a = a.wrapping_add(seg.get_at_index::<i32>(i).unwrap());
                }
                a
            })
        });
    }
    g.finish();
}

fn fill_copy(c: &mut Criterion) {
    const BYTES: usize = 1 << 20;
    let mut src = vec![7u8; BYTES];
    let mut dst = vec![1u8; BYTES];
    // The floors write the very same buffers the segments use (taken before
    // the segments exist, used only while no segment operation runs), so
    // cache and page state are identical.
    let (src_p, dst_p) = (src.as_mut_ptr(), dst.as_mut_ptr());
    let s = Session::shared();
    // SAFETY: both Vecs outlive the segments; the floors below touch the
    // bytes only between segment calls, never concurrently.
    let srcs = unsafe { Segment::from_raw(Address::from_ptr(src_p), BYTES, &s) }.unwrap();
    // SAFETY: as above.
    let mut dsts = unsafe { Segment::from_raw(Address::from_ptr(dst_p), BYTES, &s) }.unwrap();
    let mut g = c.benchmark_group("segment/1MiB");
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.bench_function("fill/ptr_write_bytes", |b| {
        // SAFETY: `dst_p` has BYTES bytes.
        b.iter(|| unsafe { std::ptr::write_bytes(black_box(dst_p), 0x5a, BYTES) })
    });
    g.bench_function("fill/segment", |b| {
        b.iter(|| black_box(&mut dsts).fill(0x5a).unwrap())
    });
    g.bench_function("fill/guarded_mut", |b| {
        let guard = s.acquire().unwrap();
        b.iter(|| black_box(&mut dsts).guarded_mut(&guard).unwrap().fill(0x5a))
    });
    g.bench_function("copy/ptr_copy_nonoverlapping", |b| {
        // SAFETY: two distinct Vecs of BYTES bytes.
        b.iter(|| unsafe {
            std::ptr::copy_nonoverlapping(black_box(src_p), black_box(dst_p), BYTES)
        })
    });
    g.bench_function("copy/segment", |b| {
        b.iter(|| Segment::copy(black_box(&srcs), 0, black_box(&mut dsts), 0, BYTES).unwrap())
    });
    g.bench_function("copy/segment_guarded", |b| {
        let guard = s.acquire().unwrap();
        b.iter(|| {
            let from = black_box(&srcs).guarded(&guard).unwrap().as_slice();
            black_box(&mut dsts)
                .guarded_mut(&guard)
                .unwrap()
                .copy_from_slice(0, from)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, sum_i32, fill_copy);
criterion_main!(benches);
