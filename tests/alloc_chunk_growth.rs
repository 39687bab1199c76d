//! Chunk sizes follow what each cursor asked for, not what the pool handed
//! over, and short-lived `local()` handles share chunks (issue 14: the
//! service's per-request handles made chunk sizes escalate). Its own test
//! binary: the pool is process-wide state.

use memscope::alloc::{Arena, SegmentAllocator, trim_pool};

/// Leaves chunks of 16 KiB, 64 KiB, 256 KiB and 1 MiB in this thread's pool.
fn pool_of_odd_sizes() {
    trim_pool();
    let a = Arena::confined();
    for kib in [16usize, 64, 256, 1024] {
        a.allocate_uninit(kib << 10, 16).unwrap();
    }
    a.close().unwrap();
}

/// Bytes reserved by one `local()` handle for `n` allocations of 16 B.
fn reserved_for(n: usize) -> usize {
    let arena = Arena::shared();
    let local = arena.local();
    for _ in 0..n {
        local.allocate(16, 8).unwrap();
    }
    drop(local);
    arena.reserved_bytes()
}

#[test]
fn pooled_chunks_larger_than_asked_do_not_compound_chunk_growth() {
    let n = 350 * 1024 / 16;
    pool_of_odd_sizes();
    let reserved = reserved_for(n);
    // Growing from the lengths got (16 KiB for 4, then 64 for 32, 256 for
    // 128, 1 MiB for 512) reserved 1,360 KiB for these 350 KiB.
    assert!(
        reserved <= 2 * n * 16,
        "{} KiB reserved for {} KiB",
        reserved >> 10,
        (n * 16) >> 10
    );
}

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
