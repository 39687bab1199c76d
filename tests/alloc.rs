//! Allocator behaviour: arenas, per-thread handles, the chunk pool, stack
//! frames, malloc blocks, slicing/prefix allocators and the allocator-api2
//! bridge (DESIGN.md semantics 10–12).

use memscope::alloc::{
    Arena, MallocAllocator, PrefixAllocator, SegmentAllocator, SlicingAllocator, pool_stats, stack,
    trim_pool,
};
use memscope::{Error, Segment, Session};
use proptest::prelude::*;

/// Small under Miri, which is slow.
const N: usize = if cfg!(miri) { 20 } else { 2000 };

fn range(s: &Segment<'_>) -> (usize, usize) {
    (s.address().get(), s.address().get() + s.len())
}

fn assert_disjoint(mut v: Vec<(usize, usize)>) {
    v.retain(|r| r.0 != r.1);
    v.sort();
    for w in v.windows(2) {
        assert!(w[0].1 <= w[1].0, "{:x?} overlaps {:x?}", w[0], w[1]);
    }
}

fn layouts() -> impl Strategy<Value = Vec<(usize, usize)>> {
    let n = if cfg!(miri) { 8 } else { 64 };
    prop::collection::vec((0usize..300, 0u32..8), 1..n)
        .prop_map(|v| v.into_iter().map(|(s, a)| (s, 1usize << a)).collect())
}

fn check_allocator(a: &impl SegmentAllocator, layouts: &[(usize, usize)]) {
    let mut segs = Vec::new();
    for &(size, align) in layouts {
        let s = a.allocate(size, align).unwrap();
        assert_eq!(s.len(), size);
        assert_eq!(s.address().get() % align, 0, "misaligned for {align}");
        segs.push(s);
    }
    assert_disjoint(segs.iter().map(range).collect());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 64 },
        // Miri's isolation forbids the file system (regression files).
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn allocations_never_overlap(l in layouts()) {
        check_allocator(&Arena::shared(), &l);
        check_allocator(&Arena::confined(), &l);
        let arena = Arena::shared();
        check_allocator(&arena.local(), &l);
        stack::frame(|f| check_allocator(f, &l));
        check_allocator(&MallocAllocator::new(Session::shared()).unwrap(), &l);
    }

    #[test]
    fn bad_layouts_are_errors_not_panics(size in any::<usize>(), align in any::<usize>()) {
        let valid = align.is_power_of_two() && size <= isize::MAX as usize - (align - 1);
        if cfg!(miri) && valid && (size > 1 << 16 || align > 1 << 16) {
            // Miri aborts (rather than failing) on allocations this big.
            return Ok(());
        }
        let arena = Arena::shared();
        let r = arena.allocate(size, align);
        if !align.is_power_of_two() || size > isize::MAX as usize - (align - 1) {
            let ok = matches!(r, Err(Error::InvalidLayout { .. }));
            prop_assert!(ok, "expected InvalidLayout");
        } else {
            let ok = matches!(r, Ok(_) | Err(Error::OutOfMemory { .. }));
            prop_assert!(ok, "expected a segment or OutOfMemory");
        }
        let _ = Arena::confined().allocate(size, align);
        let _ = arena.local().allocate(size, align);
        let _ = stack::frame(|f| f.allocate(size, align).map(|_| ()));
        let _ = MallocAllocator::new(Session::shared()).unwrap().allocate(size, align);
    }
}

#[test]
fn allocations_never_overlap_across_two_threads() {
    for arena in [Arena::shared(), Arena::new(Session::auto()).unwrap()] {
        let ranges: Vec<(usize, usize)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|t| {
                    let arena = &arena;
                    s.spawn(move || {
                        let mut v = Vec::new();
                        for i in 0..N {
                            let size = 1 + (i * 7 + t) % 40;
                            let seg = arena.allocate(size, 1 << (i % 4)).unwrap();
                            v.push(range(&seg));
                        }
                        let local = arena.local();
                        for i in 0..N {
                            v.push(range(&local.allocate(1 + i % 24, 8).unwrap()));
                        }
                        v
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(ranges.len(), 4 * N);
        assert_disjoint(ranges);
    }
}

#[test]
fn alignment_is_honoured_from_1_to_4096() {
    let arena = Arena::shared();
    let confined = Arena::confined();
    let local = arena.local();
    let m = MallocAllocator::new(Session::shared()).unwrap();
    let mut align = 1;
    while align <= 4096 {
        assert_eq!(arena.allocate(3, align).unwrap().address().get() % align, 0);
        assert_eq!(
            confined.allocate(3, align).unwrap().address().get() % align,
            0
        );
        assert_eq!(local.allocate(3, align).unwrap().address().get() % align, 0);
        assert_eq!(m.allocate(3, align).unwrap().address().get() % align, 0);
        stack::frame(|f| assert_eq!(f.allocate(3, align).unwrap().address().get() % align, 0));
        align *= 2;
    }
}

#[test]
fn arena_memory_is_zeroed_even_in_recycled_chunks() {
    for round in 0..3 {
        let arena = if round % 2 == 0 {
            Arena::confined()
        } else {
            Arena::shared()
        };
        let local = arena.local();
        for i in 0..N {
            let mut a = arena.allocate(24, 8).unwrap();
            let mut b = local.allocate(24, 8).unwrap();
            for off in (0..24).step_by(8) {
                assert_eq!(a.get::<u64>(off).unwrap(), 0, "round {round} alloc {i}");
                assert_eq!(b.get::<u64>(off).unwrap(), 0, "round {round} alloc {i}");
                a.set(off, u64::MAX).unwrap();
                b.set(off, u64::MAX).unwrap();
            }
        }
        drop(local);
        arena.close().unwrap();
    }
    let mut arena = Arena::confined();
    arena.allocate(64, 8).unwrap().set(0, 7u64).unwrap();
    arena.reset();
    assert_eq!(arena.allocate(64, 8).unwrap().get::<u64>(0).unwrap(), 0);
}

#[test]
fn closed_arenas_give_their_chunks_to_the_pool() {
    trim_pool();
    let arena = Arena::confined();
    let first = arena.allocate(16, 8).unwrap().address();
    assert_eq!(arena.chunks(), 1);
    arena.close().unwrap();
    assert!(pool_stats().chunks >= 1);
    let arena2 = Arena::confined();
    assert_eq!(
        arena2.allocate(16, 8).unwrap().address(),
        first,
        "chunk reused"
    );
    drop(arena2);
    trim_pool();
    assert_eq!(pool_stats().local_chunks, 0);
}

#[test]
fn allocation_limit_gives_out_of_memory() {
    for arena in [Arena::shared(), Arena::confined()] {
        arena.set_allocation_limit(Some(8192));
        assert_eq!(arena.allocation_limit(), Some(8192));
        let mut got = 0;
        loop {
            match arena.allocate(100, 4) {
                Ok(_) => got += 100,
                Err(Error::OutOfMemory { size, align }) => {
                    assert_eq!(align, 4);
                    assert!(size >= 100);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!((4000..=8192).contains(&got), "{got}");
        assert!(arena.reserved_bytes() <= 8192);
        // A `local()` handle's first chunk is small (chunks grow per cursor):
        // it may still fill the room left, then it runs into the limit too.
        let local = arena.local();
        let mut n = 0;
        while local.allocate(100, 4).is_ok() {
            n += 1;
            assert!(n <= 41, "past the limit");
        }
        assert!(matches!(
            local.allocate(100, 4),
            Err(Error::OutOfMemory { .. })
        ));
        assert!(arena.reserved_bytes() <= 8192);
        drop(local);
        arena.set_allocation_limit(None);
        assert!(arena.allocate(100, 4).is_ok());
    }
}

#[test]
fn zero_sized_allocations_are_empty_segments() {
    let arena = Arena::shared();
    let s = arena.allocate(0, 64).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.address().get() % 64, 0);
    assert!(Arena::confined().allocate(0, 1).unwrap().is_empty());
    assert!(stack::frame(|f| f.allocate(0, 8).unwrap().is_empty()));
    assert!(
        MallocAllocator::new(Session::shared())
            .unwrap()
            .allocate(0, 8)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_sizes_and_alignments_are_invalid_layout() {
    let arena = Arena::shared();
    let m = MallocAllocator::new(Session::shared()).unwrap();
    for (size, align) in [
        (8, 0),
        (8, 3),
        (8, 48),
        (usize::MAX, 1),
        (isize::MAX as usize, 2),
    ] {
        let bad = |r: memscope::Result<Segment<'_>>| matches!(r, Err(Error::InvalidLayout { .. }));
        assert!(bad(arena.allocate(size, align)), "{size} {align}");
        assert!(bad(Arena::confined().allocate(size, align)));
        assert!(bad(arena.local().allocate(size, align)));
        assert!(bad(m.allocate(size, align)));
        assert!(stack::frame(|f| bad(f.allocate(size, align))));
    }
    assert!(matches!(
        arena.allocate_array::<u64>(usize::MAX / 4),
        Err(Error::InvalidLayout { .. })
    ));
    if !cfg!(miri) {
        // Miri aborts (rather than failing) on allocations this big.
        assert!(matches!(
            arena.allocate(isize::MAX as usize - 64, 1),
            Err(Error::OutOfMemory { .. })
        ));
    }
}

#[test]
fn close_frees_and_later_allocations_fail_with_closed() {
    let arena = Arena::shared();
    let local = arena.local();
    let mut a = arena.allocate(8, 8).unwrap();
    a.set(0, 1u64).unwrap();
    let l = local.allocate(8, 8).unwrap();
    arena.session().close().unwrap();
    assert_eq!(a.get::<u64>(0), Err(Error::Closed));
    assert_eq!(l.get::<u64>(0), Err(Error::Closed));
    assert_eq!(arena.allocate(8, 8).unwrap_err(), Error::Closed);
    assert_eq!(local.allocate(8, 8).unwrap_err(), Error::Closed);
    assert_eq!(arena.local().allocate(8, 8).unwrap_err(), Error::Closed);
    assert_eq!(arena.chunks(), 0);
    assert_eq!(arena.reserved_bytes(), 0);
    assert_eq!(arena.close(), Err(Error::Closed));

    let confined = Arena::confined();
    confined.allocate(8, 8).unwrap();
    confined.close().unwrap();
    assert_eq!(confined.allocate(8, 8).unwrap_err(), Error::Closed);

    let closed = Session::shared();
    closed.close().unwrap();
    assert_eq!(Arena::new(closed.clone()).unwrap_err(), Error::Closed);
    assert_eq!(MallocAllocator::new(closed).unwrap_err(), Error::Closed);
}

#[test]
fn confined_arenas_refuse_other_threads() {
    let arena = Arena::confined();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(
                arena.allocate(8, 8),
                Err(Error::WrongThread { .. })
            ));
            assert!(matches!(
                arena.local().allocate(8, 8),
                Err(Error::WrongThread { .. })
            ));
        });
    });
    assert!(arena.allocate(8, 8).is_ok());
}

#[test]
fn huge_allocations_get_their_own_chunk_and_chunks_grow() {
    let arena = Arena::shared();
    arena.allocate(16, 8).unwrap();
    let first = arena.reserved_bytes();
    let big = if cfg!(miri) { 64 << 10 } else { 8 << 20 };
    let seg = arena.allocate(big, 4096).unwrap();
    assert_eq!(seg.len(), big);
    assert_eq!(arena.chunks(), 2);
    // the small chunk is still current
    let a = arena.allocate(16, 8).unwrap().address().get();
    assert!(!(seg.address().get()..seg.address().get() + big).contains(&a));
    for _ in 0..N {
        arena.allocate(64, 8).unwrap();
    }
    assert!(arena.chunks() >= 2);
    assert!(arena.reserved_bytes() >= first + big);
}

#[test]
fn arenas_add_no_per_allocation_header() {
    let arena = Arena::confined();
    let n = if cfg!(miri) { 256 } else { 65536 }; // 1 MiB of 16 B allocations
    for _ in 0..n {
        arena.allocate(16, 8).unwrap();
    }
    let used = arena.allocated_bytes();
    assert!(used * 100 <= n * 16 * 101, "{used} B for {} B", n * 16);
    let shared = Arena::shared();
    let local = shared.local();
    for _ in 0..n {
        local.allocate(16, 8).unwrap();
    }
    drop(local);
    assert!(shared.allocated_bytes() * 100 <= n * 16 * 101);
}

#[test]
fn stack_frames_release_lifo() {
    let (a, b) = stack::frame(|f| {
        let a = f.allocate(32, 8).unwrap().address();
        let b = stack::frame(|g| {
            let b = g.allocate(32, 8).unwrap().address();
            assert!(b.get() >= a.get() + 32);
            assert_eq!(g.used(), 32);
            b
        });
        // the inner frame's memory is reused by the outer frame now
        assert_eq!(f.allocate(32, 8).unwrap().address(), b);
        (a, b)
    });
    stack::frame(|f| assert_eq!(f.allocate(32, 8).unwrap().address(), a));
    assert_ne!(a, b);
}

#[test]
fn stack_frame_memory_is_zeroed_after_reuse() {
    for _ in 0..3 {
        stack::frame(|f| {
            let mut s = f.allocate(64, 8).unwrap();
            for off in (0..64).step_by(8) {
                assert_eq!(s.get::<u64>(off).unwrap(), 0);
                s.set(off, u64::MAX).unwrap();
            }
        });
    }
}

#[test]
fn stack_frames_outgrow_to_the_heap() {
    let big = stack::STACK_SIZE + 1;
    stack::frame(|f| {
        let small = f.allocate(16, 8).unwrap();
        let mut large = f.allocate(big, 64).unwrap();
        assert_eq!(large.len(), big);
        assert_eq!(large.address().get() % 64, 0);
        large.set(big - 1, 9u8).unwrap();
        let after = f.allocate(16, 8).unwrap();
        assert_disjoint(vec![range(&small), range(&large), range(&after)]);
    });
    // the heap block is gone and the stack is back where it was
    let a = stack::frame(|f| f.allocate(16, 8).unwrap().address());
    let b = stack::frame(|f| f.allocate(16, 8).unwrap().address());
    assert_eq!(a, b);
}

#[test]
fn overflow_blocks_are_kept_reused_and_zeroed() {
    let big = stack::STACK_SIZE;
    let first = stack::frame(|f| {
        f.allocate(16, 8).unwrap();
        let mut s = f.allocate(big, 8).unwrap(); // past the first block
        s.set(0, u64::MAX).unwrap();
        s.set(big - 8, u64::MAX).unwrap();
        s.address()
    });
    let again = stack::frame(|f| {
        f.allocate(16, 8).unwrap();
        let s = f.allocate(big, 8).unwrap();
        assert_eq!(s.get::<u64>(0).unwrap(), 0);
        assert_eq!(s.get::<u64>(big - 8).unwrap(), 0);
        s.address()
    });
    assert_eq!(first, again, "the overflow block was not reused");
    // Nested frames overflow further and give the outer frame its block
    // back where it left it.
    stack::frame(|outer| {
        let a = outer.allocate(16, 8).unwrap();
        let b = outer.allocate(big, 8).unwrap();
        let inner_end = stack::frame(|inner| {
            let c = inner.allocate(big * 4, 8).unwrap();
            assert_disjoint(vec![range(&a), range(&b), range(&c)]);
            assert!(inner.used() >= big * 4);
            c.address()
        });
        let d = outer.allocate(16, 8).unwrap();
        assert_eq!(d.address().get(), b.address().get() + big);
        assert_ne!(d.address(), inner_end);
        assert!(outer.used() >= big + 32);
        assert_disjoint(vec![range(&a), range(&b), range(&d)]);
    });
    // Every frame ended: the stack is back at its first block.
    let x = stack::frame(|f| f.allocate(16, 8).unwrap().address());
    let y = stack::frame(|f| f.allocate(16, 8).unwrap().address());
    assert_eq!(x, y);
    // `trim` frees the kept blocks, except while a frame is open.
    assert_eq!(stack::frame(|_| stack::trim()), 0);
    assert!(stack::trim() >= big * 4);
    assert_eq!(stack::trim(), 0);
}

#[test]
fn overflow_blocks_over_keep_max_are_freed_at_frame_end() {
    if cfg!(miri) {
        return; // a 4 MiB block: too slow to zero under Miri
    }
    stack::frame(|f| {
        let s = f.allocate(stack::KEEP_MAX + 1, 8).unwrap();
        assert_eq!(s.len(), stack::KEEP_MAX + 1);
    });
    assert_eq!(stack::trim(), 0, "the block over KEEP_MAX was kept");
}

#[test]
fn only_the_innermost_frame_allocates() {
    stack::frame(|outer| {
        stack::frame(|_inner| {
            assert!(matches!(
                outer.allocate(8, 8),
                Err(Error::InvalidArgument { .. })
            ));
        });
        assert!(outer.allocate(8, 8).is_ok());
    });
}

#[test]
fn a_panicking_frame_still_releases() {
    let before = stack::frame(|f| f.allocate(8, 8).unwrap().address());
    let r = std::panic::catch_unwind(|| {
        stack::frame(|f| {
            f.allocate(100, 8).unwrap();
            panic!("boom");
        })
    });
    assert!(r.is_err());
    assert_eq!(
        stack::frame(|f| f.allocate(8, 8).unwrap().address()),
        before
    );
}

#[test]
fn stack_frames_are_per_thread() {
    // Both frames are open at once (a barrier inside them), so the two
    // threads' stacks are both alive and must be different memory.
    let barrier = std::sync::Barrier::new(2);
    let addrs: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    stack::frame(|f| {
                        let a = f.allocate(16, 8).unwrap().address().get();
                        barrier.wait();
                        a
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_ne!(addrs[0], addrs[1]);
}

#[test]
fn malloc_blocks_deallocate_and_reallocate() {
    let m = MallocAllocator::new(Session::shared()).unwrap();
    let mut block = m.allocate_block(16, 8).unwrap();
    block.set(8, 0xabcdu64).unwrap();
    let block = m.reallocate(block, 4096).unwrap();
    assert_eq!(block.len(), 4096);
    assert_eq!(block.get::<u64>(8).unwrap(), 0xabcd);
    assert_eq!(block.get::<u64>(4088).unwrap(), 0);
    let block = m.reallocate(block, 12).unwrap();
    assert_eq!(block.get::<u32>(8).unwrap(), 0xabcd);
    let aligned = m.allocate_block(100, 256).unwrap();
    let aligned = m.reallocate(aligned, 10_000).unwrap();
    assert_eq!(aligned.address().get() % 256, 0);
    assert_eq!(m.live_blocks(), 2);
    m.deallocate(block).unwrap();
    m.deallocate(aligned).unwrap();
    assert_eq!(m.live_blocks(), 0);

    // Zero-size blocks: no C block, but they resize like any other.
    let empty = m.allocate_block(0, 16).unwrap();
    assert_eq!((empty.len(), m.live_blocks()), (0, 0));
    let grown = m.reallocate(empty, 32).unwrap();
    assert_eq!((grown.len(), grown.address().get() % 16), (32, 0));
    let gone = m.reallocate(grown, 0).unwrap();
    assert_eq!(m.live_blocks(), 0);
    m.deallocate(gone).unwrap();

    // Another allocator's block (same session or not) is refused.
    for other in [
        MallocAllocator::new(Session::shared()).unwrap(),
        MallocAllocator::new(m.session().clone()).unwrap(),
    ] {
        let foreign = other.allocate_block(16, 8).unwrap();
        assert!(matches!(
            m.deallocate(foreign),
            Err(Error::InvalidArgument { .. })
        ));
        let foreign = other.allocate_block(16, 8).unwrap();
        assert!(matches!(
            m.reallocate(foreign, 32),
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(other.live_blocks(), 2, "refused blocks stay allocated");
    }
}

/// Only the owning handle frees a block: views of it (`slice`,
/// `as_read_only`, `split_at`) are `Segment`s, which `deallocate` does not
/// take (the `compile_fail` doctests on `MallocAllocator` show it), and
/// while a view lives the block cannot be moved into `deallocate`. Here:
/// the views of a block stay valid and readable until the block is freed,
/// and a segment from the trait methods is freed only at close.
#[test]
fn deallocate_refuses_a_view() {
    let m = MallocAllocator::new(Session::shared()).unwrap();
    let mut block = m.allocate_block(16, 8).unwrap();
    block.set(0, 0x5555u64).unwrap();
    {
        let view = block.slice(0, 16).unwrap();
        let ro = block.as_read_only();
        let (head, _) = block.split_at(16).unwrap();
        assert_eq!(view.get::<u64>(0).unwrap(), 0x5555);
        assert_eq!(ro.get::<u64>(0).unwrap(), 0x5555);
        assert_eq!(head.get::<u64>(0).unwrap(), 0x5555);
    }
    block.segment_mut().set(8, 1u64).unwrap();
    assert_eq!(block.get::<u64>(8).unwrap(), 1);
    m.deallocate(block).unwrap();

    // A trait segment is no block: it lives until close.
    let seg = m.allocate(16, 8).unwrap();
    let kept = m.allocate_block(16, 8).unwrap().into_segment();
    assert_eq!(m.live_blocks(), 2);
    assert_eq!(seg.get::<u64>(8).unwrap(), 0);
    assert_eq!(kept.get::<u64>(8).unwrap(), 0);
    m.session().close().unwrap();
    assert_eq!(m.live_blocks(), 0);
    assert_eq!(seg.get::<u8>(0), Err(Error::Closed));
}

#[test]
fn malloc_blocks_are_freed_at_close() {
    let m = MallocAllocator::new(Session::shared()).unwrap();
    let block = m.allocate_block(64, 8).unwrap();
    let _ = m.allocate(64, 8).unwrap();
    assert_eq!(m.live_blocks(), 2);
    m.session().close().unwrap();
    assert_eq!(m.live_blocks(), 0);
    assert_eq!(block.get::<u8>(0), Err(Error::Closed));
    assert_eq!(m.deallocate(block), Err(Error::Closed));
    assert_eq!(m.allocate(1, 1).unwrap_err(), Error::Closed);
    assert_eq!(m.allocate_block(1, 1).unwrap_err(), Error::Closed);
}

#[test]
fn slicing_allocator_hands_out_consecutive_slices_until_exhausted() {
    let arena = Arena::confined();
    let mut base = arena.allocate(64, 16).unwrap();
    base.set(0, u64::MAX).unwrap();
    let s = SlicingAllocator::new(base);
    let a = s.allocate(10, 1).unwrap();
    assert_eq!(a.get::<u64>(0).unwrap(), 0, "zeroed");
    let b = s.allocate(8, 8).unwrap();
    assert_eq!(b.address().get() - a.address().get(), 16);
    assert_eq!(s.remaining(), 40);
    assert!(matches!(s.allocate(41, 1), Err(Error::OutOfMemory { .. })));
    assert!(matches!(s.allocate(1, 3), Err(Error::InvalidLayout { .. })));
    assert_eq!(s.allocate(40, 1).unwrap().len(), 40);
    assert!(matches!(s.allocate(1, 1), Err(Error::OutOfMemory { .. })));
}

#[test]
fn prefix_allocator_reuses_one_segment() {
    let arena = Arena::confined();
    let mut p = PrefixAllocator::new(arena.allocate(32, 8).unwrap());
    let a = {
        let mut s = p.allocate(32, 8).unwrap();
        s.set(0, 5u64).unwrap();
        s.address()
    };
    // Exhausted until reset: nothing of the round is handed out twice.
    assert!(matches!(p.allocate(1, 1), Err(Error::OutOfMemory { .. })));
    p.reset();
    assert_eq!(p.allocate_uninit(8, 8).unwrap().get::<u64>(0).unwrap(), 5);
    p.reset();
    let s = p.allocate(8, 8).unwrap();
    assert_eq!(s.address(), a);
    assert_eq!(s.get::<u64>(0).unwrap(), 0);
    p.reset();
    assert!(matches!(p.allocate(33, 1), Err(Error::OutOfMemory { .. })));
    assert!(matches!(p.allocate(1, 3), Err(Error::InvalidLayout { .. })));
}

#[test]
fn prefix_allocator_is_a_segment_allocator_with_disjoint_live_segments() {
    fn takes_allocator<A: SegmentAllocator>(a: &A) -> (usize, usize) {
        let s = a.allocate_cstring("hi").unwrap();
        let v = a.allocate_value(0x0102_0304u32).unwrap();
        assert_eq!(s.get_string(0).unwrap(), "hi");
        assert_eq!(v.get::<u32>(0).unwrap(), 0x0102_0304);
        (s.address().get(), v.address().get())
    }
    let arena = Arena::confined();
    let mut p = PrefixAllocator::new(arena.allocate(16, 8).unwrap());
    let (s, v) = takes_allocator(&p);
    assert_eq!(v % 4, 0);
    assert!(v >= s + 3, "the two live segments overlap");
    assert_eq!(p.remaining(), 16 - (v + 4 - s));
    // Every round gives the same addresses: the bytes are recycled.
    for _ in 0..3 {
        p.reset();
        assert_eq!(takes_allocator(&p), (s, v));
    }
    // A read-only segment gives nothing.
    let ro = arena.allocate(8, 8).unwrap();
    let p = PrefixAllocator::new(ro.as_read_only());
    assert_eq!(p.allocate(1, 1).unwrap_err(), Error::ReadOnly);
    // Closed: the slices fail their accesses like any segment.
    let arena = Arena::shared();
    let p = PrefixAllocator::new(arena.allocate(8, 8).unwrap());
    let seg = p.allocate(8, 8).unwrap();
    arena.close().unwrap();
    assert_eq!(seg.get::<u64>(0), Err(Error::Closed));
}

#[test]
fn allocator_api2_collections_work_on_every_allocator() {
    use allocator_api2::vec::Vec as AVec;
    let arena = Arena::shared();
    let mut v = AVec::new_in(&arena);
    for i in 0..N as u64 {
        v.push(i);
    }
    assert_eq!(v.iter().sum::<u64>(), (N as u64) * (N as u64 - 1) / 2);

    let mut map = hashbrown::HashMap::new_in(&arena);
    for i in 0..N {
        map.insert(i, i * 2);
    }
    assert_eq!(map[&(N / 2)], N);

    let local = arena.local();
    let mut lv = AVec::new_in(&local);
    lv.extend(0..100u32);
    assert_eq!(lv.len(), 100);

    stack::frame(|f| {
        let mut sv = AVec::new_in(f);
        sv.extend_from_slice(&[1u8, 2, 3]);
        assert_eq!(sv, [1, 2, 3]);
        let mut m = hashbrown::HashMap::new_in(f);
        m.insert("k", 1);
        assert_eq!(m["k"], 1);
    });

    let m = MallocAllocator::new(Session::shared()).unwrap();
    let mut mv = AVec::new_in(&m);
    mv.extend(0..1000u16);
    assert_eq!(mv[999], 999);

    // The session may close while collections live: they stay valid until
    // the arena is dropped, and new allocations fail.
    arena.close().unwrap();
    assert_eq!(v[3], 3);
    assert_eq!(map[&4], 8);
    assert!(arena.allocate(8, 8).is_err());
    assert!(AVec::<u8, _>::new_in(&arena).try_reserve(8).is_err());
}

#[test]
fn stats_track_bytes_and_chunks() {
    let arena = Arena::shared();
    assert_eq!(
        (
            arena.allocated_bytes(),
            arena.reserved_bytes(),
            arena.chunks()
        ),
        (0, 0, 0)
    );
    arena.allocate(10, 1).unwrap();
    arena.allocate(6, 1).unwrap();
    assert_eq!(arena.allocated_bytes(), 16);
    assert!(arena.reserved_bytes() >= 16);
    assert_eq!(arena.chunks(), 1);
    assert!(format!("{arena:?}").contains("allocated_bytes: 16"));
}

#[test]
fn thread_caches_never_outlive_a_reset_or_close() {
    let n = if cfg!(miri) { 100 } else { 500 };
    let mut a = Arena::shared();
    for _ in 0..n {
        a.allocate(16, 8).unwrap(); // long streak: this thread caches a chunk of `a`
    }
    a.reset();
    assert_eq!(a.chunks(), 0);
    let first = a.allocate(16, 8).unwrap().address().get();
    // The allocation came from a chunk `a` holds now, not from a stale
    // thread cache pointing into a chunk it gave back.
    assert_eq!(a.chunks(), 1);
    assert_eq!(a.allocated_bytes(), 16, "{first:x}");
    let b = Arena::shared(); // gets `a`'s old chunks from the pool, and fills them
    let from_b: Vec<_> = (0..4 * n).map(|_| b.allocate(16, 8).unwrap()).collect();
    let from_a: Vec<_> = (0..n).map(|_| a.allocate(16, 8).unwrap()).collect();
    assert_disjoint(from_a.iter().chain(&from_b).map(range).collect());
    drop((from_a, from_b));
    a.close().unwrap();
    assert_eq!(a.allocate(16, 8).unwrap_err(), Error::Closed);
}

#[test]
fn alternating_between_arenas_takes_no_chunk_per_switch() {
    let (a, b) = (Arena::shared(), Arena::shared());
    for _ in 0..if cfg!(miri) { 100 } else { 5000 } {
        a.allocate(8, 8).unwrap();
        b.allocate(8, 8).unwrap();
    }
    assert!(
        a.chunks() <= 6 && b.chunks() <= 6,
        "{} {}",
        a.chunks(),
        b.chunks()
    );
}

#[test]
fn a_recycled_arena_state_starts_fresh() {
    for _ in 0..3 {
        for make in [Arena::shared as fn() -> Arena, Arena::confined] {
            let a = make();
            assert_eq!(a.allocation_limit(), None);
            assert_eq!((a.chunks(), a.allocated_bytes()), (0, 0));
            let mut s = a.allocate(8, 8).unwrap();
            assert_eq!(s.get::<u64>(0).unwrap(), 0);
            s.set(0, 1u64).unwrap();
            a.set_allocation_limit(Some(16));
            assert!(matches!(
                a.allocate(64 << 10, 8),
                Err(Error::OutOfMemory { .. })
            ));
            a.close().unwrap();
            assert_eq!(a.allocate(8, 8).unwrap_err(), Error::Closed);
        }
    }
}

#[test]
fn arenas_and_malloc_allocators_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Arena>();
    send_sync::<MallocAllocator>();
    send::<SlicingAllocator<'static>>();
    send::<PrefixAllocator<'static>>();
}

#[test]
fn recycled_chunks_are_zero_after_a_failed_close_and_a_session_close() {
    trim_pool();
    let arena = Arena::confined();
    let mut a = arena.allocate(64, 8).unwrap();
    a.set(56, u64::MAX).unwrap();
    let guard = arena.session().acquire().unwrap();
    assert_eq!(arena.close(), Err(Error::Busy { acquired: 1 }));
    drop(guard);
    let mut b = arena.allocate(64, 8).unwrap(); // past what the failed close saw
    b.set(56, u64::MAX).unwrap();
    arena.session().close().unwrap();
    let next = Arena::confined();
    let s = next.allocate(256, 8).unwrap();
    for off in (0..256).step_by(8) {
        assert_eq!(s.get::<u64>(off).unwrap(), 0, "offset {off}");
    }
}

#[test]
fn a_confined_arena_reuses_a_pooled_chunk_without_reporting_it_until_used() {
    // Warm this thread's pool with a small chunk.
    let warm = Arena::confined();
    warm.allocate(16, 8).unwrap();
    warm.close().unwrap();
    drop(warm);

    let a = Arena::confined();
    assert_eq!(
        (a.chunks(), a.reserved_bytes(), a.allocated_bytes()),
        (0, 0, 0)
    );
    let s = a.allocate(16, 8).unwrap();
    assert_eq!(s.get::<u64>(8).unwrap(), 0);
    assert_eq!(a.chunks(), 1);
    assert_eq!(a.allocated_bytes(), 16);
    assert!(a.reserved_bytes() >= 16);
    a.close().unwrap();
    assert_eq!(a.allocate(16, 8).unwrap_err(), Error::Closed);
    assert_eq!(a.session().close(), Err(Error::Closed));
}

#[test]
fn a_small_limit_set_before_the_first_allocation_is_honoured() {
    let warm = Arena::confined();
    warm.allocate(16, 8).unwrap();
    warm.close().unwrap();
    drop(warm);

    let a = Arena::confined();
    a.set_allocation_limit(Some(64));
    assert!(matches!(a.allocate(16, 8), Err(Error::OutOfMemory { .. })));
    assert_eq!((a.chunks(), a.reserved_bytes()), (0, 0));
    a.set_allocation_limit(None);
    assert_eq!(a.allocate(16, 8).unwrap().get::<u64>(0).unwrap(), 0);
    a.close().unwrap();
}

#[test]
fn closing_an_arena_session_directly_frees_its_chunks_and_fails_allocations() {
    let a = Arena::confined();
    let mut s = a.allocate(32, 8).unwrap();
    s.set(24, u64::MAX).unwrap();
    a.session().close().unwrap();
    assert_eq!(s.get::<u64>(24), Err(Error::Closed));
    assert_eq!(a.allocate(16, 8).unwrap_err(), Error::Closed);
    assert_eq!(a.chunks(), 0);
    drop(a);
    // The next arena's memory (possibly the same recycled state and chunk)
    // is zero.
    let b = Arena::confined();
    let s = b.allocate(32, 8).unwrap();
    for off in (0..32).step_by(8) {
        assert_eq!(s.get::<u64>(off).unwrap(), 0);
    }
}

/// One step of a zeroing scenario: an allocation (size, align, zeroed?).
fn zero_steps() -> impl Strategy<Value = Vec<(usize, usize, bool)>> {
    let n = if cfg!(miri) { 12 } else { 400 };
    prop::collection::vec((0usize..3000, 0u32..7, any::<bool>()), 1..n)
        .prop_map(|v| v.into_iter().map(|(s, a, z)| (s, 1usize << a, z)).collect())
}

/// Runs `steps` on `a`: every zeroing allocation must be all zero when
/// handed out; every allocation is then dirtied (0xAB).
fn run_zero_steps(a: &impl SegmentAllocator, steps: &[(usize, usize, bool)]) {
    for (i, &(size, align, zeroed)) in steps.iter().enumerate() {
        let mut s = if zeroed {
            a.allocate(size, align).unwrap()
        } else {
            a.allocate_uninit(size, align).unwrap()
        };
        assert_eq!(s.len(), size);
        if zeroed {
            let bytes = s.to_vec().unwrap();
            assert!(
                bytes.iter().all(|&b| b == 0),
                "step {i}: {size} B zeroed allocation has a non-zero byte"
            );
        }
        s.fill(0xAB).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 24 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Recycled chunks are handed out dirty (a reset keeps its largest
    /// chunk, the pool gives chunks back uncleared to single-owner cursors):
    /// `allocate` must still zero exactly what it hands out, on every path.
    #[test]
    fn zeroing_allocations_are_zero_after_resets_and_recycling(
        rounds in prop::collection::vec(zero_steps(), 1..4)
    ) {
        let mut confined = Arena::confined();
        let mut shared = Arena::shared();
        let mut handle = Arena::shared();
        for steps in &rounds {
            run_zero_steps(&confined, steps);
            run_zero_steps(&shared, steps); // the thread's chunk cache after a streak
            run_zero_steps(&handle.local(), steps);
            confined.reset();
            shared.reset();
            handle.reset();
            // A new arena from the pool's dirty chunks.
            let fresh = Arena::confined();
            run_zero_steps(&fresh, steps);
            fresh.close().unwrap();
        }
    }
}

#[test]
fn a_reset_arena_keeps_its_largest_chunk_for_the_next_round() {
    let mut arena = Arena::confined();
    let round = |arena: &Arena| {
        for _ in 0..10_007 {
            arena.allocate(16, 8).unwrap();
        }
        arena.chunks()
    };
    let first = round(&arena);
    assert!(first >= 5, "chunks grow geometrically from 4 KiB: {first}");
    arena.reset();
    assert_eq!((arena.chunks(), arena.reserved_bytes()), (0, 0));
    round(&arena);
    arena.reset();
    // From the third round on, the kept chunk holds a whole round.
    assert_eq!(round(&arena), 1);
    arena.reset();
    assert_eq!(round(&arena), 1);
    assert!(arena.allocated_bytes() >= 10_007 * 16);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 1 } else { 16 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random threads (1–4), each with random layouts, through `&Arena` or
    /// its own `local()` handle: every allocation is zeroed when handed out,
    /// no two overlap, and each still holds what its thread wrote at the end.
    #[test]
    fn allocations_never_overlap_across_random_threads(
        plan in prop::collection::vec((layouts(), any::<bool>()), 1..5),
        shared in any::<bool>(),
    ) {
        let arena = if shared { Arena::shared() } else { Arena::new(Session::auto()).unwrap() };
        let arena = &arena;
        let ranges: Vec<(usize, usize)> = std::thread::scope(|s| {
            let hs: Vec<_> = plan
                .iter()
                .enumerate()
                .map(|(t, (layouts, use_local))| {
                    s.spawn(move || {
                        let tag = 0x11 * (t as u8 + 1);
                        let local = arena.local();
                        let mut segs = Vec::new();
                        for &(size, align) in layouts {
                            let mut seg = if *use_local {
                                local.allocate(size, align).unwrap()
                            } else {
                                arena.allocate(size, align).unwrap()
                            };
                            assert_eq!(seg.address().get() % align, 0);
                            assert!(seg.to_vec().unwrap().iter().all(|&b| b == 0));
                            seg.fill(tag).unwrap();
                            segs.push(seg);
                        }
                        for seg in &segs {
                            assert!(seg.to_vec().unwrap().iter().all(|&b| b == tag), "overwritten");
                        }
                        segs.iter().map(range).collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_disjoint(ranges);
    }
}

/// A confined session's first arena uses the state embedded in the session;
/// a second arena on it gets a state of its own. Both close with it, and the
/// recycled session (with its embedded state) serves the next arenas.
#[test]
fn two_arenas_on_one_confined_session_both_close_with_it() {
    for round in 0..3 {
        let session = Session::confined();
        let a = Arena::new(session.clone()).unwrap();
        let b = Arena::new(session.clone()).unwrap();
        let mut x = a.allocate(16, 8).unwrap();
        let mut y = b.allocate(16, 8).unwrap();
        assert_eq!(x.get::<u64>(8).unwrap(), 0, "round {round}");
        assert_eq!(y.get::<u64>(0).unwrap(), 0, "round {round}");
        x.set(8, u64::MAX).unwrap();
        y.set(0, u64::MAX).unwrap();
        assert_disjoint(vec![range(&x), range(&y)]);
        assert_eq!((a.allocated_bytes(), b.allocated_bytes()), (16, 16));
        session.close().unwrap();
        assert_eq!(a.allocate(8, 8).unwrap_err(), Error::Closed);
        assert_eq!(b.allocate(8, 8).unwrap_err(), Error::Closed);
        assert_eq!((a.chunks(), b.chunks()), (0, 0));
    }
}

/// Close actions (the arena's release among them) run newest first and
/// exactly once, also for the state embedded in a confined session.
#[test]
fn a_confined_arena_release_runs_in_close_action_order() {
    use std::sync::{Arc, Mutex};
    let log = Arc::new(Mutex::new(Vec::new()));
    let session = Session::confined();
    let l = log.clone();
    session
        .add_close_action(move || l.lock().unwrap().push("before"))
        .unwrap();
    let arena = Arena::new(session.clone()).unwrap();
    arena.allocate(16, 8).unwrap();
    let l = log.clone();
    session
        .add_close_action(move || l.lock().unwrap().push("after"))
        .unwrap();
    arena.close().unwrap();
    assert_eq!(*log.lock().unwrap(), ["after", "before"]);
    assert_eq!(arena.chunks(), 0);
    assert_eq!(arena.close(), Err(Error::Closed));
    drop(arena);
    drop(session);
    assert_eq!(log.lock().unwrap().len(), 2);
}

/// A confined arena dropped on another thread while its session is still
/// open frees its chunks there; the session then closes and is reused.
#[test]
fn a_confined_arena_dropped_on_another_thread_frees_and_its_session_is_reused() {
    for _ in 0..3 {
        let session = Session::confined();
        let arena = Arena::new(session.clone()).unwrap();
        let mut seg = arena.allocate(64, 8).unwrap();
        seg.set(0, 7u64).unwrap();
        std::thread::spawn(move || {
            assert!(matches!(
                arena.allocate(8, 8),
                Err(Error::WrongThread { .. })
            ));
            assert_eq!(arena.chunks(), 1);
            drop(arena);
        })
        .join()
        .unwrap();
        session.close().unwrap();
        drop(session);
        let next = Arena::confined();
        assert_eq!(next.allocate(64, 8).unwrap().get::<u64>(0).unwrap(), 0);
        next.close().unwrap();
    }
}

/// An arena or malloc allocator made for a confined session on a thread
/// that does not own it could not register its close action: the
/// constructor says so (before, it returned an allocator that kept
/// allocating after the session closed and freed nothing until dropped).
#[test]
fn allocators_for_a_confined_session_refuse_a_non_owner_thread() {
    let session = Session::confined();
    let other = session.clone();
    let (arena, malloc) = std::thread::spawn(move || {
        (
            Arena::new(other.clone()).map(drop),
            MallocAllocator::new(other).map(drop),
        )
    })
    .join()
    .unwrap();
    assert!(matches!(arena, Err(Error::WrongThread { .. })), "{arena:?}");
    assert!(
        matches!(malloc, Err(Error::WrongThread { .. })),
        "{malloc:?}"
    );
    // On the owner thread both work, and close frees and stops them.
    let arena = Arena::new(session.clone()).unwrap();
    let m = MallocAllocator::new(session.clone()).unwrap();
    arena.allocate(8, 8).unwrap();
    m.allocate(8, 8).unwrap();
    session.close().unwrap();
    assert_eq!(arena.allocate(8, 8).unwrap_err(), Error::Closed);
    assert_eq!(m.allocate(8, 8).unwrap_err(), Error::Closed);
    assert_eq!((arena.chunks(), m.live_blocks()), (0, 0));
}

// ----- the allocator-api2 bridge never leaves uninitialised bytes behind -----
//
// A collection may write uninitialised bytes into bridge memory (the padding
// of a `(u8, u64)`, a `MaybeUninit`); `allocate_uninit` must still never hand
// such bytes out later. Miri reads every word below ("encountered
// uninitialized memory" before the fix).

/// Reads every `u64` of a fresh `allocate_uninit(len, 8)` (Miri checks that
/// each one is initialised).
fn read_uninit_words(a: &impl SegmentAllocator, len: usize) -> u64 {
    let s = a.allocate_uninit(len, 8).unwrap();
    (0..len / 8).fold(0u64, |acc, i| acc ^ s.get::<u64>(i * 8).unwrap())
}

/// Fills bridge memory from `a` with padding and `MaybeUninit` bytes.
fn write_uninit_through_the_bridge<A: allocator_api2::alloc::Allocator>(a: A) {
    use allocator_api2::vec::Vec as AVec;
    use core::mem::MaybeUninit;
    let mut v: AVec<(u8, u64), &A> = AVec::with_capacity_in(16, &a);
    for i in 0..16 {
        v.push((i as u8, i));
    }
    let mut w: AVec<MaybeUninit<u64>, &A> = AVec::with_capacity_in(16, &a);
    for _ in 0..16 {
        w.push(MaybeUninit::uninit());
    }
    // Leaked collections never give their memory back: the allocator must
    // not rely on `deallocate` to clean up.
    core::mem::forget(v);
    drop(w);
}

#[test]
fn uninit_allocations_after_a_bridged_stack_frame_are_initialised() {
    stack::frame(|f| write_uninit_through_the_bridge(f));
    stack::frame(|f| read_uninit_words(f, 512));
    // Nested: the inner frame's bridge bytes, then an uninit allocation of
    // the outer frame over them.
    stack::frame(|outer| {
        stack::frame(|inner| write_uninit_through_the_bridge(inner));
        read_uninit_words(outer, 512)
    });
}

/// Below the stack's uninit mark (raised by a raw bridge handout), an
/// `allocate_uninit` scrubs the bytes first: what the bridge left there
/// (here the bytes `0xAA`, elsewhere possibly uninitialised ones, which
/// only Miri would see) comes back as zeroes (mutation A34 dropped the
/// scrub).
#[test]
fn uninit_allocation_below_the_uninit_mark_is_scrubbed() {
    stack::frame(|outer| {
        stack::frame(|inner| {
            let l = std::alloc::Layout::from_size_align(64, 8).unwrap();
            let p = allocator_api2::alloc::Allocator::allocate(inner, l)
                .unwrap()
                .cast::<u8>();
            // SAFETY: `p` is a fresh 64-byte block of the bridge.
            unsafe { p.as_ptr().write_bytes(0xAA, 64) };
        });
        let s = SegmentAllocator::allocate_uninit(outer, 64, 8).unwrap();
        assert_eq!(s.to_vec().unwrap(), vec![0u8; 64]);
    });
}

#[test]
fn uninit_allocations_in_a_reused_bridged_overflow_block_are_initialised() {
    let big = stack::STACK_SIZE;
    stack::frame(|f| {
        f.allocate(16, 8).unwrap();
        f.allocate(big, 8).unwrap(); // moves on to an overflow block
        write_uninit_through_the_bridge(f);
    });
    stack::frame(|f| {
        f.allocate(16, 8).unwrap();
        f.allocate(big, 8).unwrap(); // the same overflow block again
        read_uninit_words(f, 1024)
    });
    // The bridge bytes are in the first block of an outer frame while an
    // inner frame overflows; then an uninit allocation of the outer frame.
    stack::frame(|outer| {
        write_uninit_through_the_bridge(outer);
        stack::frame(|inner| {
            inner.allocate(big * 2, 8).unwrap();
            write_uninit_through_the_bridge(inner);
            read_uninit_words(inner, 512)
        });
        read_uninit_words(outer, 512)
    });
}

#[test]
fn uninit_allocations_after_a_bridged_arena_reset_are_initialised() {
    for mut arena in [Arena::confined(), Arena::shared()] {
        write_uninit_through_the_bridge(&arena);
        {
            let local = arena.local();
            write_uninit_through_the_bridge(&local);
        }
        arena.reset();
        read_uninit_words(&arena, 512);
        read_uninit_words(&arena.local(), 512);
    }
}

#[test]
fn uninit_allocations_from_a_pooled_bridged_chunk_are_initialised() {
    for round in 0..3 {
        let arena = Arena::confined();
        write_uninit_through_the_bridge(&arena);
        if round == 1 {
            arena.close().unwrap();
        }
        drop(arena);
        // A new confined arena takes the pooled chunk as its first chunk.
        let next = Arena::confined();
        read_uninit_words(&next, 512);
        let shared = Arena::shared();
        read_uninit_words(&shared.local(), 512);
    }
}

#[test]
fn uninit_allocations_after_a_bridged_local_arena_are_initialised() {
    let mut arena = Arena::shared();
    {
        let local = arena.local();
        write_uninit_through_the_bridge(&local);
    }
    arena.reset();
    {
        let local = arena.local();
        read_uninit_words(&local, 512);
    }
    drop(arena);
    let next = Arena::shared();
    read_uninit_words(&next.local(), 512);
}

/// A confined arena moved to another thread and dropped there after its
/// session closed leaves its state in that thread's spare list; the next
/// confined arena of that thread takes it and is owned by that thread.
#[test]
fn a_confined_arena_dropped_on_another_thread_recycles_its_state_for_that_thread() {
    let arena = Arena::confined();
    arena.allocate(16, 8).unwrap();
    arena.close().unwrap();
    std::thread::spawn(move || {
        drop(arena); // the last holder of its state: recycled here
        for _ in 0..2 {
            let mine = Arena::confined();
            let mut s = mine.allocate(16, 8).expect("owned by this thread");
            s.set(8, 1u64).unwrap();
            assert_eq!(s.get::<u64>(0).unwrap(), 0);
            drop(mine);
        }
    })
    .join()
    .unwrap();
}

/// A thread that kept allocating from a shared arena holds a chunk of its
/// own (the thread chunk cache); once another thread's close is seen, its
/// next allocation (a cache hit) fails with `Closed`.
#[test]
fn a_thread_chunk_cache_fails_with_closed_after_a_close_elsewhere() {
    let arena = Arena::shared();
    let (to_main, from_worker) = std::sync::mpsc::channel();
    let (to_worker, from_main) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let a = &arena;
        s.spawn(move || {
            // Past the streak: the thread bumps its own chunk now.
            for _ in 0..200 {
                a.allocate_uninit(16, 8).unwrap();
            }
            to_main.send(()).unwrap();
            from_main.recv().unwrap();
            assert_eq!(a.allocate_uninit(16, 8).unwrap_err(), Error::Closed);
            assert_eq!(a.allocate(16, 8).unwrap_err(), Error::Closed);
        });
        from_worker.recv().unwrap();
        arena.close().unwrap();
        to_worker.send(()).unwrap();
    });
}

/// A `local()` handle that outlives its arena's close parks nothing in the
/// released state: the state is recycled for the next arena on this thread,
/// whose handles must get fresh, zeroed memory inside their own chunks
/// (mutation A20: a parked record of the released state would be resumed).
#[test]
fn a_local_handle_dropped_after_its_arena_closed_leaves_nothing_for_the_next_arena() {
    let rounds = if cfg!(miri) { 3 } else { 50 };
    for _ in 0..rounds {
        let s = Session::shared();
        let arena = Arena::new(s.clone()).unwrap();
        {
            let l = arena.local();
            let mut seg = l.allocate(64, 8).unwrap();
            seg.fill(0xAB).unwrap();
            s.close().unwrap();
            assert_eq!(l.allocate(8, 8).unwrap_err(), Error::Closed);
        } // the handle drops after the release
        drop(arena);
        let next = Arena::shared();
        let l = next.local();
        for _ in 0..64 {
            let seg = l.allocate(64, 8).unwrap();
            assert!(seg.to_vec().unwrap().iter().all(|&b| b == 0));
        }
    }
}
