//! A closed arena (and a closed malloc allocator, and a finished stack
//! frame) returns every byte: checked with a counting global allocator.
//! One test only, so no other test allocates concurrently.

use memscope::Session;
use memscope::alloc::{Arena, MallocAllocator, SegmentAllocator, stack, trim_pool};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to `System`, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn workload() {
    let n = if cfg!(miri) { 50 } else { 20_000 };
    for session in [Session::shared(), Session::confined()] {
        let arena = Arena::new(session.clone()).unwrap();
        for i in 0..n {
            arena.allocate(1 + i % 100, 8).unwrap();
        }
        arena
            .allocate(if cfg!(miri) { 1 << 16 } else { 16 << 20 }, 64)
            .unwrap();
        {
            let local = arena.local();
            for _ in 0..n {
                local.allocate(16, 8).unwrap();
            }
        }
        session.close().unwrap();
        drop(arena);
    }
    let m = MallocAllocator::new(Session::shared()).unwrap();
    for _ in 0..10 {
        m.allocate(100, 8).unwrap();
    }
    m.session().close().unwrap();
    drop(m);
    stack::frame(|f| {
        f.allocate(stack::STACK_SIZE * 2, 8).unwrap();
    });
    trim_pool();
}

#[test]
fn closing_returns_every_byte() {
    // Warm up once: thread-locals, the global session and the pool's
    // bookkeeping allocate on first use and keep it.
    workload();
    let before = LIVE.load(Ordering::SeqCst);
    workload();
    let after = LIVE.load(Ordering::SeqCst);
    assert_eq!(after, before, "{} bytes not returned", after - before);
    // And the counter does see arena chunks (the check can fail).
    let arena = Arena::shared();
    arena.allocate(1 << 20, 8).unwrap();
    assert!(LIVE.load(Ordering::SeqCst) >= before + (1 << 20));
}
