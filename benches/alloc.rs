//! Allocator benches (PERFORMANCE.md rows 1–5) side by side with the peers:
//! bumpalo, bump-scope, blink-alloc, bumpalo-herd, `Mutex<Bump>`, `Box::new`
//! and mimalloc (as an allocator instance, not the global allocator).
//!
//! Every allocation's address is passed to `black_box` (the peers return a
//! pointer; a memscope `Segment` is address + length + session borrow).
//! Run: `cargo bench --bench alloc -- --warm-up-time 1 --measurement-time 3`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memscope::alloc::{Arena, SegmentAllocator, stack};
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const ROW1_N: usize = 10_007;
const L16: Layout = match Layout::from_size_align(16, 8) {
    Ok(l) => l,
    Err(_) => panic!(),
};

/// One round of row 1 on `a`: `allocate` (`Z`) or `allocate_uninit`.
#[inline(always)]
fn row1_loop<const Z: bool>(a: &impl SegmentAllocator) {
    for _ in 0..ROW1_N {
        let s = if Z {
            a.allocate(16, 8)
        } else {
            a.allocate_uninit(16, 8)
        };
        black_box(s.unwrap().address());
    }
}

/// Benches row 1 on a new arena from `make`, through a `local()` handle
/// (`LOCAL`) or `&Arena`, zeroed (`Z`) or not, with a reset per round.
fn row1_case<const LOCAL: bool, const Z: bool>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    make: fn() -> Arena,
) {
    let mut arena = make();
    g.bench_function(name, |b| {
        b.iter(|| {
            if LOCAL {
                row1_loop::<Z>(&arena.local());
            } else {
                row1_loop::<Z>(&arena);
            }
            arena.reset();
        })
    });
}

/// One thread's share of row 2 on `a`: `allocate` or `allocate_uninit`.
#[inline(always)]
fn row2_loop(a: &impl SegmentAllocator, zeroed: bool) {
    for _ in 0..ROW2_N {
        let s = if zeroed {
            a.allocate(16, 8)
        } else {
            a.allocate_uninit(16, 8)
        };
        black_box(s.unwrap().address());
    }
}

/// Row 1: 10,007 allocations of 16 B, then reset, one thread.
fn row1(c: &mut Criterion) {
    let mut g = c.benchmark_group("row1_arena_10007x16B_1t");
    g.throughput(Throughput::Elements(ROW1_N as u64));

    // memscope's cases: which arena, through which handle (`LOCAL`), zeroed
    // or not (`Z`; `allocate_uninit` is what the peers do: recycled bytes as
    // they are; `allocate` zeroes, Java's contract). Each round ends with a
    // reset. Each case is its own monomorphised loop.
    row1_case::<false, true>(&mut g, "memscope_confined_arena", Arena::confined);
    row1_case::<true, false>(&mut g, "memscope_shared_arena_local_uninit", Arena::shared);
    row1_case::<true, false>(
        &mut g,
        "memscope_confined_arena_local_uninit",
        Arena::confined,
    );
    row1_case::<false, false>(&mut g, "memscope_confined_arena_uninit", Arena::confined);
    row1_case::<true, true>(&mut g, "memscope_shared_arena_local", Arena::shared);
    row1_case::<true, true>(&mut g, "memscope_confined_arena_local", Arena::confined);
    row1_case::<false, true>(&mut g, "memscope_shared_arena", Arena::shared);
    // Two arenas alternating: the thread never settles on one, so every
    // allocation is the slot word's compare-and-swap.
    let (mut x, mut y) = (Arena::shared(), Arena::shared());
    g.bench_function("memscope_shared_arena_slot_cas", |b| {
        b.iter(|| {
            for i in 0..ROW1_N {
                let a = if i % 2 == 0 { &x } else { &y };
                black_box(a.allocate(16, 8).unwrap().address());
            }
            x.reset();
            y.reset();
        })
    });
    let mut bump = bumpalo::Bump::new();
    g.bench_function("bumpalo", |b| {
        b.iter(|| {
            for _ in 0..ROW1_N {
                black_box(bump.alloc_layout(L16));
            }
            bump.reset();
        })
    });
    let mut bs: bump_scope::Bump = bump_scope::Bump::new();
    g.bench_function("bump_scope", |b| {
        b.iter(|| {
            for _ in 0..ROW1_N {
                black_box(bs.alloc([0u64; 2]));
            }
            bs.reset();
        })
    });
    let mut blink = blink_alloc::BlinkAlloc::new();
    g.bench_function("blink_alloc", |b| {
        b.iter(|| {
            for _ in 0..ROW1_N {
                let _ = black_box(blink.allocate(L16));
            }
            blink.reset();
        })
    });
    // The peers asked for zeroed memory, to compare with `allocate`.
    g.bench_function("bumpalo_zeroed", |b| {
        b.iter(|| {
            for _ in 0..ROW1_N {
                let p = bump.alloc_layout(L16);
                // SAFETY: `p` is a fresh 16-byte block.
                unsafe { p.as_ptr().write_bytes(0, 16) };
                black_box(p);
            }
            bump.reset();
        })
    });
    g.bench_function("blink_alloc_zeroed", |b| {
        b.iter(|| {
            for _ in 0..ROW1_N {
                let p = blink.allocate(L16).unwrap().cast::<u8>();
                // SAFETY: `p` is a fresh 16-byte block.
                unsafe { p.as_ptr().write_bytes(0, 16) };
                black_box(p);
            }
            blink.reset();
        })
    });
    let mut ptrs: Vec<*mut u8> = Vec::with_capacity(ROW1_N);
    g.bench_function("mimalloc", |b| {
        b.iter(|| {
            for _ in 0..ROW1_N {
                // SAFETY: a valid non-zero layout; freed below.
                ptrs.push(black_box(unsafe { mimalloc::MiMalloc.alloc(L16) }));
            }
            for p in ptrs.drain(..) {
                // SAFETY: allocated above with the same layout.
                unsafe { mimalloc::MiMalloc.dealloc(p, L16) };
            }
        })
    });
    let mut boxes: Vec<Box<[u64; 2]>> = Vec::with_capacity(ROW1_N);
    g.bench_function("box_new", |b| {
        b.iter(|| {
            for _ in 0..ROW1_N {
                boxes.push(black_box(Box::new([0u64; 2])));
            }
            boxes.clear();
        })
    });
    g.finish();
}

/// Persistent worker threads for row 2: thread start is excluded; each
/// iteration both workers run `work` on one fresh shared state at once, and
/// only that phase is timed (between two barriers).
fn two_threads<S, M, W>(c: &mut Criterion, name: &str, make: M, work: W)
where
    S: Send + Sync + 'static,
    M: Fn() -> S,
    W: Fn(&S) + Send + Sync + Copy + 'static,
{
    let slot: Arc<parking_lot::Mutex<Option<Arc<S>>>> = Arc::new(parking_lot::Mutex::new(None));
    let start = Arc::new(Barrier::new(3));
    let end = Arc::new(Barrier::new(3));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (slot, start, end, stop) = (slot.clone(), start.clone(), end.clone(), stop.clone());
            std::thread::spawn(move || {
                loop {
                    start.wait();
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let s = slot.lock().clone().unwrap();
                    work(&s);
                    drop(s);
                    end.wait();
                }
            })
        })
        .collect();
    c.benchmark_group("row2_arena_2_threads_x10000x16B")
        .throughput(Throughput::Elements(2 * ROW2_N as u64))
        .bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let s = Arc::new(make());
                    *slot.lock() = Some(s.clone());
                    start.wait();
                    let t0 = Instant::now();
                    end.wait();
                    total += t0.elapsed();
                    *slot.lock() = None;
                    drop(s);
                }
                total
            })
        });
    stop.store(true, Ordering::Release);
    start.wait();
    for w in workers {
        w.join().unwrap();
    }
}

const ROW2_N: usize = 10_000;

/// Row 2 with one state kept across rounds and `reset` between them (the
/// issue's shape): the workers run `work` on it at once, the main thread
/// resets it between rounds (outside the timing).
fn two_threads_reset<S, M, R, W>(c: &mut Criterion, name: &str, make: M, reset: R, work: W)
where
    S: Send + Sync + 'static,
    M: Fn() -> S,
    R: Fn(&mut S),
    W: Fn(&S) + Send + Sync + Copy + 'static,
{
    let slot: Arc<parking_lot::Mutex<Option<Arc<S>>>> = Arc::new(parking_lot::Mutex::new(None));
    let start = Arc::new(Barrier::new(3));
    let end = Arc::new(Barrier::new(3));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (slot, start, end, stop) = (slot.clone(), start.clone(), end.clone(), stop.clone());
            std::thread::spawn(move || {
                loop {
                    start.wait();
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let s = slot.lock().clone().unwrap();
                    work(&s);
                    drop(s);
                    end.wait();
                }
            })
        })
        .collect();
    let mut state = Some(Arc::new(make()));
    c.benchmark_group("row2_arena_2_threads_x10000x16B_reset")
        .throughput(Throughput::Elements(2 * ROW2_N as u64))
        .bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let s = state.take().unwrap();
                    *slot.lock() = Some(s.clone());
                    start.wait();
                    let t0 = Instant::now();
                    end.wait();
                    total += t0.elapsed();
                    *slot.lock() = None;
                    let mut s = s;
                    reset(Arc::get_mut(&mut s).expect("the workers let go"));
                    state = Some(s);
                }
                total
            })
        });
    stop.store(true, Ordering::Release);
    start.wait();
    for w in workers {
        w.join().unwrap();
    }
}

/// Row 2 as the issue measures it: `local()` per thread, reset between rounds.
fn row2_reset(c: &mut Criterion) {
    two_threads_reset(
        c,
        "memscope_local_uninit",
        Arena::shared,
        Arena::reset,
        |a| row2_loop(&a.local(), false),
    );
    two_threads_reset(c, "memscope_local", Arena::shared, Arena::reset, |a| {
        row2_loop(&a.local(), true)
    });
    two_threads_reset(
        c,
        "sync_blink_alloc_local",
        blink_alloc::SyncBlinkAlloc::new,
        blink_alloc::SyncBlinkAlloc::reset,
        |a| {
            let l = a.local();
            for _ in 0..ROW2_N {
                let _ = black_box(l.allocate(L16));
            }
        },
    );
}

/// Row 2: one arena shared by two threads allocating at once.
fn row2(c: &mut Criterion) {
    two_threads(c, "memscope_shared_arena", Arena::shared, |a| {
        for _ in 0..ROW2_N {
            black_box(a.allocate(16, 8).unwrap().address());
        }
    });
    two_threads(
        c,
        "memscope_shared_arena_slot_cas",
        || (Arena::shared(), Arena::shared()),
        |(x, y)| {
            for i in 0..ROW2_N {
                let a = if i % 2 == 0 { x } else { y };
                black_box(a.allocate(16, 8).unwrap().address());
            }
        },
    );
    two_threads(c, "memscope_local", Arena::shared, |a| {
        row2_loop(&a.local(), true)
    });
    // What the peers hand out: recycled bytes as they are.
    two_threads(c, "memscope_local_uninit", Arena::shared, |a| {
        row2_loop(&a.local(), false)
    });
    two_threads(
        c,
        "mutex_bumpalo",
        || parking_lot::Mutex::new(bumpalo::Bump::new()),
        |m| {
            for _ in 0..ROW2_N {
                black_box(m.lock().alloc_layout(L16));
            }
        },
    );
    two_threads(
        c,
        "sync_blink_alloc_shared",
        blink_alloc::SyncBlinkAlloc::new,
        |a| {
            for _ in 0..ROW2_N {
                let _ = black_box(a.allocate(L16));
            }
        },
    );
    two_threads(
        c,
        "sync_blink_alloc_local",
        blink_alloc::SyncBlinkAlloc::new,
        |a| {
            let l = a.local();
            for _ in 0..ROW2_N {
                let _ = black_box(l.allocate(L16));
            }
        },
    );
    two_threads(c, "bumpalo_herd", bumpalo_herd::Herd::new, |h| {
        let m = h.get();
        for _ in 0..ROW2_N {
            black_box(m.alloc_layout(L16));
        }
    });
    two_threads(
        c,
        "box_new_and_drop",
        || (),
        |_| {
            for _ in 0..ROW2_N {
                drop(black_box(Box::new([0u64; 2])));
            }
        },
    );
}

/// Row 3: a stack frame, 4 allocations, end of frame.
fn row3(c: &mut Criterion) {
    let mut g = c.benchmark_group("row3_frame_4x16B");
    g.throughput(Throughput::Elements(4));
    g.bench_function("memscope_stack_frame", |b| {
        b.iter(|| {
            stack::frame(|f| {
                for _ in 0..4 {
                    black_box(f.allocate(16, 8).unwrap().address());
                }
            })
        })
    });
    g.bench_function("memscope_stack_frame_uninit", |b| {
        b.iter(|| {
            stack::frame(|f| {
                for _ in 0..4 {
                    black_box(f.allocate_uninit(16, 8).unwrap().address());
                }
            })
        })
    });
    let mut bump = bumpalo::Bump::new();
    g.bench_function("bumpalo_4_allocs_reset", |b| {
        b.iter(|| {
            for _ in 0..4 {
                black_box(bump.alloc_layout(L16));
            }
            bump.reset();
        })
    });
    g.bench_function("bumpalo_4_allocs_zeroed_reset", |b| {
        b.iter(|| {
            for _ in 0..4 {
                let p = bump.alloc_layout(L16);
                // SAFETY: `p` is a fresh 16-byte block.
                unsafe { p.as_ptr().write_bytes(0, 16) };
                black_box(p);
            }
            bump.reset();
        })
    });
    let mut scope: bump_scope::Bump = bump_scope::Bump::new();
    g.bench_function("bump_scope_4_allocs_reset", |b| {
        b.iter(|| {
            for _ in 0..4 {
                black_box(scope.alloc_uninit::<[u64; 2]>().as_ptr());
            }
            scope.reset();
        })
    });
    g.bench_function("bump_scope_scoped_4_allocs", |b| {
        b.iter(|| {
            scope.scoped(|s| {
                for _ in 0..4 {
                    black_box(s.alloc_uninit::<[u64; 2]>().as_ptr());
                }
            })
        })
    });
    g.bench_function("bumpalo_4_allocs_no_reset", |b| {
        b.iter_custom(|iters| {
            // Only as long as the chunk lasts: reset outside the timing.
            let mut bump2 = bumpalo::Bump::new();
            let t0 = Instant::now();
            for _ in 0..iters {
                for _ in 0..4 {
                    black_box(bump2.alloc_layout(L16));
                }
            }
            let t = t0.elapsed();
            bump2.reset();
            t
        })
    });
    g.finish();
}

/// Row 3b: a frame that outgrows the thread's first stack block: 256 KiB
/// in 4 KiB pieces (memscope's stack block is 64 KiB), end of frame.
fn row3_overflow(c: &mut Criterion) {
    const PIECE: usize = 4096;
    const PIECES: usize = 64;
    let l = Layout::from_size_align(PIECE, 8).unwrap();
    let mut g = c.benchmark_group("row3b_overflowing_frame_64x4KiB");
    g.throughput(Throughput::Elements(PIECES as u64));
    g.bench_function("memscope_stack_frame_uninit", |b| {
        b.iter(|| {
            stack::frame(|f| {
                for _ in 0..PIECES {
                    black_box(f.allocate_uninit(PIECE, 8).unwrap().address());
                }
            })
        })
    });
    let mut bump = bumpalo::Bump::new();
    g.bench_function("bumpalo_reset", |b| {
        b.iter(|| {
            for _ in 0..PIECES {
                black_box(bump.alloc_layout(l));
            }
            bump.reset();
        })
    });
    let mut scope: bump_scope::Bump = bump_scope::Bump::new();
    g.bench_function("bump_scope_reset", |b| {
        b.iter(|| {
            for _ in 0..PIECES {
                black_box(scope.alloc_uninit::<[u8; PIECE]>().as_ptr());
            }
            scope.reset();
        })
    });
    g.finish();
}

/// Rows 4 and 5: open a session's arena, allocate 16 B, close.
fn row45(c: &mut Criterion) {
    let mut g = c.benchmark_group("row4_5_open_alloc16_close");
    g.bench_function("memscope_confined_arena", |b| {
        b.iter(|| {
            let a = Arena::confined();
            black_box(a.allocate(16, 8).unwrap().address());
            a.close().unwrap();
        })
    });
    g.bench_function("memscope_shared_arena", |b| {
        b.iter(|| {
            let a = Arena::shared();
            black_box(a.allocate(16, 8).unwrap().address());
            a.close().unwrap();
        })
    });
    g.bench_function("memscope_confined_session_only", |b| {
        b.iter(|| {
            let s = memscope::Session::confined();
            s.close().unwrap();
        })
    });
    g.bench_function("memscope_shared_session_only", |b| {
        b.iter(|| {
            let s = memscope::Session::shared();
            s.close().unwrap();
        })
    });
    g.bench_function("bumpalo_new_alloc_drop", |b| {
        b.iter(|| {
            let bump = bumpalo::Bump::new();
            black_box(bump.alloc_layout(L16));
        })
    });
    g.bench_function("box_new_drop", |b| {
        b.iter(|| black_box(Box::new([0u64; 2])))
    });
    g.bench_function("malloc_free", |b| {
        b.iter(|| {
            // SAFETY: a valid non-zero layout; freed at once.
            let p = unsafe { std::alloc::System.alloc(L16) };
            black_box(p);
            // SAFETY: allocated above with the same layout.
            unsafe { std::alloc::System.dealloc(p, L16) };
        })
    });
    g.finish();
}

criterion_group!(benches, row1, row2, row2_reset, row3, row3_overflow, row45);
criterion_main!(benches);
