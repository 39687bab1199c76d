//! Segment benches (PERFORMANCE.md rows 8–9, plus fill/copy at memset/memcpy
//! speed; issue 15 adds `read_range`/`fold_chunks` per session kind). Each group puts memscope next to its plain-Rust floor; read the
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

/// Row 9's per-element loop, kept out of line so its code can be read
/// (`objdump -d --no-show-raw-insn -C target/release/deps/segment-* | awk
/// '/<segment::sum_get_at_index>:/,/^$/'`). What it shows (x86-64, rustc
/// 1.95, read 2026-12-02):
///
/// * the alignment check is hoisted: one `test $0x3` on the base address
///   before the loop (known bits: `base + 4i` has base's low bits);
/// * the bounds check stays: `add $4; cmp len; ja` per element, and since
///   it (with the `unwrap`) is an early exit, the loop is not vectorised;
/// * the session kind is re-read per element (`Session -> Core -> kind`,
///   two dependent L1 loads): the loop holds every kind's path, some with
///   stores and atomics, so LLVM neither hoists nor unswitches it;
/// * global: nothing more (load, add, loop);
/// * confined: the owner check (the thread id from TLS, with its lazy-init
///   branch, against `owner`), the bounds check of `shards[0]` and the
///   liveness load of the shard word: four loads and three branches;
/// * shared (fast path, issue 15): the TLS record (a state byte for its
///   destructor, then the pointer), the first free slot (one load), the
///   slot store, the barrier mode load (`membarrier`: no fence instruction;
///   the fallback is `lock orl $0,(%rsp)`), the gate load, then on exit the
///   kind again, the token test and the slot store of 0; no locked
///   instruction. The fallback path (`lock xadd`/`lock sub` on the shard)
///   is there too, behind the "no free slot" branch.
///
/// So the per-element cost over a slice is the lost vectorisation (a plain
/// slice sum does 8 elements per instruction) plus a few loads and branches
/// per element; neither the bounds nor the alignment check alone. Slice
/// speed needs the check out of the loop: `read_range` and `fold_chunks`.
#[inline(never)]
fn sum_get_at_index(seg: &Segment<'_>) -> i32 {
    let mut a = 0i32;
    for i in 0..N {
        a = a.wrapping_add(seg.get_at_index::<i32>(i).unwrap());
    }
    a
}

/// The floor, out of line like the memscope loops it is compared with.
#[inline(never)]
fn sum_plain(xs: &[i32]) -> i32 {
    xs.iter().fold(0i32, |a, &x| a.wrapping_add(x))
}

#[inline(never)]
fn sum_read_range(seg: &Segment<'_>) -> i32 {
    seg.read_range::<i32, _>(0, N, |xs| xs.iter().fold(0i32, |a, &x| a.wrapping_add(x)))
        .unwrap()
}

#[inline(never)]
fn sum_fold_chunks(seg: &Segment<'_>) -> i32 {
    seg.fold_chunks::<i32, i32>(0, |a, xs| xs.iter().fold(a, |a, &x| a.wrapping_add(x)))
        .unwrap()
}

fn sum_next_chunk(seg: &Segment<'_>) -> i32 {
    let mut it = seg.elements::<i32>().unwrap();
    let mut a = 0i32;
    while let Some(chunk) = it.next_chunk() {
        a = chunk.unwrap().iter().fold(a, |a, &x| a.wrapping_add(x));
    }
    a
}

fn sum_i32(c: &mut Criterion) {
    let mut v: Vec<i32> = (0..N as i32).map(|i| i & 0xff).collect();
    let plain: Vec<i32> = v.clone();
    let expected = plain.iter().fold(0i32, |a, &x| a.wrapping_add(x));
    let shared = Session::shared();
    let confined = Session::confined();
    let global = Session::global();

    let mut g = c.benchmark_group("segment/sum_1Mi_i32");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("plain_slice", |b| {
        b.iter(|| sum_plain(black_box(&plain[..])))
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
        g.bench_function("elements_iter/shared", |b| {
            b.iter(|| {
                black_box(&seg)
                    .elements::<i32>()
                    .unwrap()
                    .fold(0i32, |a, x| a.wrapping_add(x.unwrap()))
            })
        });
    }
    // Row 9, per session kind: a checked get per element (one enter/exit
    // each), the chunked copy (`elements().next_chunk()`), and the checks
    // hoisted out of the loop (`read_range`: one check; `fold_chunks`: one
    // per 64 KiB chunk, the chunks plain slices).
    for (kind, s) in [
        ("global", &global),
        ("confined", &confined),
        ("shared", &shared),
    ] {
        let seg = segment_over(&mut v, s);
        assert_eq!(sum_get_at_index(&seg), expected);
        assert_eq!(sum_read_range(&seg), expected);
        assert_eq!(sum_fold_chunks(&seg), expected);
        assert_eq!(sum_next_chunk(&seg), expected);
        g.bench_function(format!("get_per_element/{kind}"), |b| {
            b.iter(|| sum_get_at_index(black_box(&seg)))
        });
        g.bench_function(format!("elements_next_chunk/{kind}"), |b| {
            b.iter(|| sum_next_chunk(black_box(&seg)))
        });
        g.bench_function(format!("read_range/{kind}"), |b| {
            b.iter(|| sum_read_range(black_box(&seg)))
        });
        g.bench_function(format!("fold_chunks/{kind}"), |b| {
            b.iter(|| sum_fold_chunks(black_box(&seg)))
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
