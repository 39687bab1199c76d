//! Short-lived `local()` handles share chunks and grow as one cursor
//! (issue 14: the service's per-request handles each took a fresh chunk).
//! Its own test binary: the pool is process-wide state.

use memscope::alloc::{Arena, SegmentAllocator};

#[test]
fn short_lived_local_handles_share_their_chunks() {
    let arena = Arena::shared();
    for _ in 0..1000 {
        let local = arena.local();
        local.allocate(16, 8).unwrap();
        local.allocate(16, 8).unwrap();
    }
    // 32 KB handed out: a handful of chunks, not one 4 KiB chunk per handle.
    assert!(arena.chunks() <= 6, "{} chunks", arena.chunks());
    assert!(
        arena.reserved_bytes() <= 64 << 10,
        "{} B",
        arena.reserved_bytes()
    );
    assert_eq!(arena.allocated_bytes(), 1000 * 32);
    // Every byte a resumed handle hands out is zeroed.
    let local = arena.local();
    let s = local.allocate(16, 8).unwrap();
    assert_eq!(s.get::<u64>(8).unwrap(), 0);
}
