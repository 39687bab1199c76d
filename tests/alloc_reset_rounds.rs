//! An arena reset in a loop settles: after a warm-up, a round of
//! allocations from 1, 2 or 4 threads makes no system allocation at all
//! (chunks come from the chunk the reset kept and from the pool). Checked
//! with a global allocator that counts chunk-sized system allocations. One
//! test only, so no other test allocates concurrently.

use memscope::alloc::{Arena, SegmentAllocator};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, RwLock};

struct Counting;

/// System allocations of at least `BIG` bytes (arena chunks are 4 KiB and
/// up; the bookkeeping of threads, thread-locals and tables is smaller).
static BIG_ALLOCS: AtomicUsize = AtomicUsize::new(0);
const BIG: usize = 4096;

// SAFETY: forwards to `System`, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() >= BIG {
            BIG_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.size() >= BIG {
            BIG_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if n >= BIG {
            BIG_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: usize = 64;
const WARM_UP: usize = 16;
/// Allocations per thread and per kind in a round (row 2 of issue 14:
/// 10,007 × 16 B).
const N: usize = 10_007;

/// Runs `ROUNDS` rounds of `threads` threads allocating from one shared
/// arena (through `local()` and through `&Arena`), resetting it between
/// rounds; returns the system allocations of each round.
fn shared_rounds(threads: usize) -> Vec<usize> {
    let arena = RwLock::new(Arena::shared());
    let start = Barrier::new(threads + 1);
    let done = Barrier::new(threads + 1);
    let mut counts = Vec::with_capacity(ROUNDS);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    start.wait();
                    {
                        let a = arena.read().unwrap();
                        let local = a.local();
                        for _ in 0..N {
                            local.allocate_uninit(16, 8).unwrap();
                        }
                        for _ in 0..N {
                            a.allocate(16, 8).unwrap();
                        }
                    }
                    done.wait();
                }
            });
        }
        for _ in 0..ROUNDS {
            let before = BIG_ALLOCS.load(Ordering::SeqCst);
            start.wait();
            done.wait();
            arena.write().unwrap().reset();
            counts.push(BIG_ALLOCS.load(Ordering::SeqCst) - before);
        }
    });
    counts
}

/// The same on a confined arena (one thread, its owner).
fn confined_rounds() -> Vec<usize> {
    let mut arena = Arena::confined();
    let mut counts = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let before = BIG_ALLOCS.load(Ordering::SeqCst);
        {
            let local = arena.local();
            for _ in 0..N {
                local.allocate_uninit(16, 8).unwrap();
            }
        }
        for _ in 0..N {
            arena.allocate(16, 8).unwrap();
        }
        arena.reset();
        counts.push(BIG_ALLOCS.load(Ordering::SeqCst) - before);
    }
    counts
}

#[test]
fn reset_rounds_settle_at_zero_system_allocations_with_1_2_and_4_threads() {
    let mut report = Vec::new();
    for (name, counts) in [
        ("confined", confined_rounds()),
        ("1 thread", shared_rounds(1)),
        ("2 threads", shared_rounds(2)),
        ("4 threads", shared_rounds(4)),
    ] {
        let settled: usize = counts[WARM_UP..].iter().sum();
        report.push((name, settled, counts));
    }
    for (name, settled, counts) in &report {
        println!("{name}: {settled} system allocations after warm-up; per round {counts:?}");
    }
    for (name, settled, counts) in &report {
        assert_eq!(
            *settled, 0,
            "{name}: reset rounds still allocate from the system: {counts:?}"
        );
    }
    // The counter does see chunks (the check can fail).
    let before = BIG_ALLOCS.load(Ordering::SeqCst);
    let arena = Arena::shared();
    arena.allocate(8 << 20, 8).unwrap();
    assert!(BIG_ALLOCS.load(Ordering::SeqCst) > before);
}
