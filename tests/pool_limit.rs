//! The chunk pool's byte bound (issue 18: closed arenas must not keep much
//! memory by default, and the bound is settable). One test per process: the
//! bound is process-wide.

use memscope::alloc::{
    Arena, DEFAULT_POOL_LIMIT, SegmentAllocator, pool_limit, pool_stats, set_pool_limit, trim_pool,
};

#[test]
fn pool_limit_bounds_what_closed_arenas_keep() {
    assert_eq!(pool_limit(), DEFAULT_POOL_LIMIT);
    const { assert!(DEFAULT_POOL_LIMIT <= 8 << 20, "the default stays small") };
    // Close arenas holding ~48 MiB in all: the pool keeps at most the bound
    // (global) plus a quarter of it (this thread's cache).
    for _ in 0..12 {
        let a = Arena::confined();
        for _ in 0..4 {
            a.allocate(1 << 20, 8).unwrap();
        }
        a.close().unwrap();
    }
    let kept = pool_stats().bytes;
    assert!(kept > 0, "the pool is used");
    assert!(
        kept <= DEFAULT_POOL_LIMIT + DEFAULT_POOL_LIMIT / 4,
        "kept {kept} bytes"
    );

    // Lowering the bound frees what is over it; 0 turns pooling off.
    assert_eq!(set_pool_limit(1 << 20), DEFAULT_POOL_LIMIT);
    assert!(pool_stats().bytes <= (1 << 20) + (1 << 18));
    set_pool_limit(0);
    assert_eq!(pool_stats().bytes, 0);
    let a = Arena::confined();
    a.allocate(64 << 10, 8).unwrap();
    a.close().unwrap();
    assert_eq!(pool_stats().bytes, 0, "nothing pooled at bound 0");

    set_pool_limit(DEFAULT_POOL_LIMIT);
    trim_pool();
    assert_eq!(pool_stats().chunks, 0);
}
