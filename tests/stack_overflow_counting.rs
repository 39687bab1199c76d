//! Stack frames that outgrow the thread's first stack block reuse the
//! overflow blocks of earlier frames: after a warm-up, many overflowing
//! frames make no system allocation at all (counted with a counting global
//! allocator; one test only, so no other test allocates concurrently).

use memscope::alloc::{SegmentAllocator, stack};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

/// System allocations (alloc, alloc_zeroed, realloc) so far.
static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System`, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One frame of round `i`: a document-like mix of small and large pieces
/// whose total (80 KiB to about 1 MiB) outgrows the 64 KiB first block,
/// with a nested frame that overflows further.
fn overflowing_frame(i: usize) -> usize {
    stack::frame(|f| {
        let pieces = 1280 + (i % 7) * 2000;
        let mut sum = 0usize;
        for k in 0..pieces {
            let s = f.allocate_uninit(16 + (k % 5) * 24, 8).unwrap();
            sum = sum.wrapping_add(s.address().get() & 0xff);
        }
        if i.is_multiple_of(3) {
            sum += stack::frame(|g| {
                let s = g.allocate(stack::STACK_SIZE * 3, 64).unwrap();
                s.len()
            });
        }
        f.allocate(4096, 8).unwrap();
        sum
    })
}

#[test]
fn overflowing_frames_settle_at_zero_system_allocations() {
    let mut sink = 0usize;
    // Warm-up: the first block, the overflow blocks, the thread's session.
    for i in 0..21 {
        sink = sink.wrapping_add(overflowing_frame(i));
    }
    let before = CALLS.load(Ordering::SeqCst);
    for i in 0..2_000 {
        sink = sink.wrapping_add(overflowing_frame(i));
    }
    let after = CALLS.load(Ordering::SeqCst);
    std::hint::black_box(sink);
    assert_eq!(
        after - before,
        0,
        "system allocations over 2,000 overflowing frames"
    );
    // The kept blocks go back on `trim` (none open now), and the next
    // overflowing frame makes them again.
    assert!(stack::trim() >= stack::STACK_SIZE * 3);
    let before = CALLS.load(Ordering::SeqCst);
    overflowing_frame(0);
    assert!(CALLS.load(Ordering::SeqCst) > before);
}
