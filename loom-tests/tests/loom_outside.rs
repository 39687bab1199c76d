//! Loom models driven from the outside, through the public API only
//! (issue 13): a `LocalArena`'s closed flag and a bridged (allocator-api2)
//! arena's close. Their twins are switched in the arena's release
//! (`alloc/arena/cold.rs`): `ReleaseNoClosedFlag`, `BridgedCloseFrees`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use memscope::alloc::loom::{Twin, with_twin};
use memscope::alloc::{Arena, SegmentAllocator};
use memscope::{Error, Session};

/// Two threads each allocate through their own `LocalArena` of one shared
/// arena, then close the session. A thread whose close returned `Ok` has run
/// the close actions itself (the arena's release), so its next allocation
/// through the same `LocalArena` must fail with `Closed`: the handle's
/// cached chunk has gone back to the pool. (A `Closed` close may return
/// before the winner's actions have run, so only the winner asserts.)
fn local_arena_refuses_after_close() {
    model(|| {
        let session = Session::shared();
        let arena = Arc::new(Arena::new(session.clone()).unwrap());
        let ts: Vec<_> = (0..2)
            .map(|i| {
                let (a, s) = (arena.clone(), session.clone());
                thread::spawn(move || {
                    let l = a.local();
                    match l.allocate(8, 8) {
                        Ok(seg) => match seg.get::<u64>(0) {
                            Ok(v) => assert_eq!(v, 0),
                            Err(e) => assert_eq!(e, Error::Closed),
                        },
                        Err(e) => assert_eq!(e, Error::Closed),
                    }
                    let r = s.close();
                    if r.is_ok() {
                        let after = l.allocate(8, 8).map(drop);
                        assert_eq!(
                            after,
                            Err(Error::Closed),
                            "a LocalArena allocated after thread {i} closed its session"
                        );
                    } else {
                        assert_eq!(r, Err(Error::Closed));
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        drop(arena);
        memscope::alloc::trim_pool();
    });
}

#[test]
fn loom_local_arena_refuses_after_close() {
    local_arena_refuses_after_close();
}

/// Release without setting the arena's `closed` flag: a `LocalArena`
/// keeps bumping its chunk after the close returned.
#[test]
#[should_panic]
fn twin_release_without_closed_flag_is_caught() {
    with_twin(Twin::ReleaseNoClosedFlag, local_arena_refuses_after_close);
}

/// A bridged arena (an allocator-api2 `Vec` in it) is closed on another
/// thread while main pushes into it and makes further bridged
/// allocations (each taking the arena's lock, as the close does): the
/// close only stops new allocations, so the `Vec`s' blocks stay the
/// arena's until it is dropped. Another arena opened and filled after the
/// close must not get those blocks (the `Vec`s' contents are intact), and a
/// push that needs a new block after the close fails instead of
/// allocating.
fn bridged_close_keeps_blocks() {
    model(|| {
        let session = Session::shared();
        let arena = Arena::new(session.clone()).unwrap();
        // One bridged block before the close starts, one racing it.
        let mut v: allocator_api2::vec::Vec<u64, &Arena> =
            allocator_api2::vec::Vec::with_capacity_in(2, &arena);
        v.push(41);
        let mut first: allocator_api2::vec::Vec<u64, &Arena> =
            allocator_api2::vec::Vec::new_in(&arena);
        let s2 = session.clone();
        let t = thread::spawn(move || {
            s2.close().unwrap();
            // The pool's next taker (on another arena) writes all over its
            // first allocation.
            let other = Arena::shared();
            let seg = other.allocate(16, 8).unwrap();
            let mut seg = seg;
            seg.set(0, u64::MAX).unwrap();
            seg.set(8, u64::MAX).unwrap();
            other.close().unwrap();
        });
        v.push(42); // in capacity: no allocation
        if first.try_reserve(2).is_ok() {
            first.push(39);
            thread::yield_now();
            first.push(40); // in capacity
        }
        // New blocks while the close races: either is fine, but none may
        // be one the other arena gets.
        let mut racing: Vec<allocator_api2::vec::Vec<u64, &Arena>> = Vec::new();
        for i in 0..2u64 {
            let mut r = allocator_api2::vec::Vec::new_in(&arena);
            if r.try_reserve(1).is_ok() {
                r.push(43 + i);
            }
            racing.push(r);
            thread::yield_now();
        }
        t.join().unwrap();
        assert_eq!(
            &v[..],
            &[41, 42],
            "a bridged block was handed to another arena"
        );
        assert!(
            first.is_empty() || first[..] == [39, 40],
            "a bridged block was handed to another arena"
        );
        for (i, r) in racing.iter().enumerate() {
            assert!(
                r.is_empty() || r[0] == 43 + i as u64,
                "a bridged block was handed to another arena"
            );
        }
        // After the close is known (joined), a new block is refused.
        let mut w: allocator_api2::vec::Vec<u64, &Arena> = allocator_api2::vec::Vec::new_in(&arena);
        assert!(
            w.try_reserve(1).is_err(),
            "a bridged arena allocated after close"
        );
        drop(v);
        drop(first);
        drop(racing);
        drop(w);
        drop(arena);
        memscope::alloc::trim_pool();
    });
}

#[test]
fn loom_bridged_close_keeps_blocks() {
    bridged_close_keeps_blocks();
}

/// Close returning a bridged arena's chunks to the pool (the bridge flag
/// ignored) hands the `Vec`s' blocks to the other arena.
#[test]
#[should_panic]
fn twin_bridged_close_freeing_blocks_is_caught() {
    with_twin(Twin::BridgedCloseFrees, bridged_close_keeps_blocks);
}
