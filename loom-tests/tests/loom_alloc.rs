//! Loom models of the allocators (DESIGN.md semantics 10–11): two threads
//! bumping one arena, chunk growth racing a bump, close racing a bump, the
//! chunk pool hand-off between a closing and an opening arena, a confined
//! arena dropped on another thread while its session closes, a confined
//! arena refilled while another thread reads its statistics (the spin lock), and
//! per-thread stack frames. Each has a broken twin that loom must catch.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, mpsc};
use loom::thread;
use loom_tests::{model, session_with_memory};
use memscope::alloc::loom::{Knobs, Twin, with_knobs, with_twin};
use memscope::alloc::{Arena, SegmentAllocator, stack};
use memscope::segment::loom_hook;
use memscope::{Error, Segment, Session};

fn range(s: &Segment<'_>) -> (usize, usize) {
    (s.address().get(), s.address().get() + s.len())
}

fn assert_disjoint(mut v: Vec<(usize, usize)>) {
    v.sort();
    for w in v.windows(2) {
        assert!(w[0].1 <= w[1].0, "{:x?} overlaps {:x?}", w[0], w[1]);
    }
}

/// Each thread allocates `sizes`, writes its tag into every segment, yields,
/// and checks the tag is still there (an overlapping allocation would have
/// overwritten it). Returns the ranges.
fn bump_and_check(arena: &Arena, tag: u8, sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut segs = Vec::new();
    for &n in sizes {
        let mut s = arena.allocate(n, 8).unwrap();
        // An entry read stale (base 0, length new) would place it near 0.
        assert!(
            s.address().get() >= 4096,
            "allocation outside every chunk: {:?}",
            s.address()
        );
        s.set(0, tag).unwrap();
        segs.push(s);
    }
    thread::yield_now();
    for s in &segs {
        assert_eq!(s.get::<u8>(0).unwrap(), tag, "allocation overwritten");
    }
    segs.iter().map(range).collect()
}

/// Two threads bump one arena (same slot word): their allocations never
/// overlap.
fn two_threads_bump() {
    model(|| {
        let arena = Arc::new(Arena::shared());
        arena.allocate(8, 8).unwrap(); // a chunk exists: both threads race on its word
        let a2 = arena.clone();
        let t = thread::spawn(move || bump_and_check(&a2, 1, &[16]));
        let mine = bump_and_check(&arena, 2, &[16]);
        let mut all = t.join().unwrap();
        all.extend(mine);
        assert_disjoint(all);
    });
}

#[test]
fn loom_two_threads_bump_one_arena() {
    two_threads_bump();
}

#[test]
#[should_panic]
fn twin_arena_load_store_bump_is_caught() {
    with_twin(Twin::ArenaLoadStoreBump, two_threads_bump);
}

/// The chunk is nearly full: one thread's request does not fit and grows the
/// arena (new chunk, new slot word) while the other bumps the old chunk.
fn growth_races_bump() {
    model(|| {
        let arena = Arc::new(Arena::shared());
        // 32 of the 64-byte loom chunk left: 16 then 24 does not fit.
        arena.allocate(8, 8).unwrap();
        arena.allocate(24, 8).unwrap();
        let a2 = arena.clone();
        let t = thread::spawn(move || bump_and_check(&a2, 1, &[16]));
        let mine = bump_and_check(&arena, 2, &[24]);
        let mut all = t.join().unwrap();
        all.extend(mine);
        assert_disjoint(all);
        assert!(arena.allocated_bytes() <= arena.reserved_bytes());
    });
}

#[test]
fn loom_chunk_growth_races_bump() {
    growth_races_bump();
}

#[test]
#[should_panic]
fn twin_load_store_bump_during_growth_is_caught() {
    with_twin(Twin::ArenaLoadStoreBump, growth_races_bump);
}

/// One thread's request does not fit, so it publishes a new chunk into the
/// slot word; the other thread's next bump may then read that new word and
/// bump into the new chunk, reading its table entry: the word's Acquire load
/// must make the entry written before it visible (issue 13: a bump into a
/// chunk that another thread is publishing).
fn bump_into_published_chunk() {
    model(|| {
        let arena = Arc::new(Arena::shared());
        // 32 of the 64-byte loom chunk left.
        arena.allocate(8, 8).unwrap();
        arena.allocate(24, 8).unwrap();
        let a2 = arena.clone();
        let t = thread::spawn(move || bump_and_check(&a2, 1, &[40]));
        let mine = bump_and_check(&arena, 2, &[8, 8]);
        let mut all = t.join().unwrap();
        all.extend(mine);
        assert_disjoint(all);
    });
}

#[test]
fn loom_bump_into_a_chunk_being_published() {
    bump_into_published_chunk();
}

#[test]
#[should_panic]
fn twin_relaxed_slot_load_is_caught() {
    with_twin(Twin::ArenaRelaxedSlotLoad, bump_into_published_chunk);
}

/// Close races a bump: the bump either succeeds (and its segment's write
/// succeeds or fails with Closed) or fails with Closed; once close has
/// returned, every allocation fails with Closed.
fn close_races_bump() {
    model(|| {
        let arena = Arc::new(Arena::shared());
        arena.allocate(8, 8).unwrap();
        let closed = Arc::new(AtomicBool::new(false));
        let (a2, c2) = (arena.clone(), closed.clone());
        let t = thread::spawn(move || {
            let was_closed = c2.load(Ordering::Acquire);
            match a2.allocate(8, 8) {
                Ok(mut s) => {
                    assert!(!was_closed, "allocated after close returned");
                    match s.set(0, 1u64) {
                        Ok(()) | Err(Error::Closed) => {}
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
                Err(Error::Closed) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        });
        arena.close().unwrap();
        closed.store(true, Ordering::Release);
        let after = arena.allocate(8, 8).map(|_| ());
        t.join().unwrap();
        assert_eq!(after, Err(Error::Closed), "allocated after close returned");
    });
}

#[test]
fn loom_arena_close_races_bump() {
    close_races_bump();
}

#[test]
#[should_panic]
fn twin_close_without_marking_slots_is_caught() {
    with_twin(Twin::ArenaNoCloseMark, close_races_bump);
}

/// A confined arena moved to another thread and dropped there while its
/// owner closes the session through a clone: release runs once, and the
/// cursor (which release resets) is touched by one thread at a time, under
/// the arena's lock.
fn confined_drop_races_close() {
    model(|| {
        let arena = Arena::confined();
        arena.allocate(16, 8).unwrap().set(0, 7u64).unwrap();
        let session = arena.session().clone();
        let t = thread::spawn(move || drop(arena));
        let r = session.close();
        assert_eq!(r, Ok(()));
        assert_eq!(session.close(), Err(Error::Closed));
        t.join().unwrap();
        memscope::alloc::trim_pool();
    });
}

#[test]
fn loom_confined_arena_drop_races_its_session_close() {
    confined_drop_races_close();
}

#[test]
#[should_panic]
fn twin_cursor_touched_outside_the_lock_is_caught() {
    with_twin(Twin::ArenaCursorOutsideLock, confined_drop_races_close);
}

/// One arena closes (its dirty chunk goes to the global pool) while another
/// opens and allocates: whichever chunk it gets, the memory is zero.
/// `make`: shared arenas take pooled chunks for their slot table and clear
/// them at once; confined arenas take them dirty with a clean mark and
/// zero each allocation below it on demand.
fn pool_hand_off(make: fn() -> Arena) {
    model(move || {
        let t = thread::spawn(move || {
            let arena = make();
            let mut s = arena.allocate(16, 8).unwrap();
            s.set(0, u64::MAX).unwrap();
            s.set(8, u64::MAX).unwrap();
            arena.close().unwrap();
        });
        let arena = make();
        let s = arena.allocate(16, 8).unwrap();
        assert_eq!(s.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
        assert_eq!(s.get::<u64>(8).unwrap(), 0, "dirty bytes handed out");
        drop(s);
        t.join().unwrap();
        drop(arena);
        memscope::alloc::trim_pool();
    });
}

#[test]
fn loom_pool_hand_off_between_closing_and_opening_arenas() {
    pool_hand_off(Arena::shared);
}

#[test]
#[should_panic]
fn twin_pool_without_clearing_is_caught() {
    // Runs until the opening arena gets the closed one's chunk.
    with_twin(Twin::PoolNoClear, || pool_hand_off(Arena::shared));
}

/// Confined arenas take pooled chunks dirty, with a clean mark: one thread
/// closes two confined arenas (two dirty chunks to the global pool, under
/// its lock) while another's confined arena takes a chunk (an
/// `allocate_uninit`, which zeroes nothing), zeroes on demand below the
/// mark (its next `allocate`), then refills into a second pooled chunk.
/// Whichever chunks it gets, the memory `allocate` hands out is zero.
fn confined_pool_hand_off() {
    model(|| {
        let t = thread::spawn(|| {
            for _ in 0..2 {
                let arena = Arena::confined();
                let mut s = arena.allocate(16, 8).unwrap();
                s.set(0, u64::MAX).unwrap();
                s.set(8, u64::MAX).unwrap();
                drop(s);
                arena.close().unwrap();
            }
        });
        let arena = Arena::confined();
        let _ = arena.allocate_uninit(8, 8).unwrap(); // a dirty chunk, maybe
        let s = arena.allocate(8, 8).unwrap();
        assert_eq!(s.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
        let big = arena.allocate(56, 8).unwrap(); // refills
        assert_eq!(big.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
        assert_eq!(big.get::<u64>(8).unwrap(), 0, "dirty bytes handed out");
        drop((s, big));
        t.join().unwrap();
        drop(arena);
        memscope::alloc::trim_pool();
    });
}

#[test]
fn loom_confined_arena_zeroes_a_dirty_pooled_chunk_on_demand() {
    confined_pool_hand_off();
}

#[test]
#[should_panic]
fn twin_lazy_zero_skipped_is_caught() {
    with_twin(Twin::ArenaNoLazyZero, confined_pool_hand_off);
}

/// A shared arena's per-thread handle holds a dirty recycled chunk (taken
/// by an `allocate_uninit`, which zeroes nothing); its next zeroing
/// allocation zeroes the dirty bytes ahead while another thread closes the
/// session. The memset must sit inside an enter window, so that the close
/// (which frees the session's memory and recycles the chunk) waits for it:
/// the model's memory cell is read where the memset writes.
fn local_zero_races_close() {
    model(|| {
        // A chunk with a dirty prefix goes to the (global, under loom) pool.
        {
            let a = Arena::shared();
            let l = a.local();
            l.allocate(16, 8).unwrap().set(0, u64::MAX).unwrap();
            drop(l);
            a.close().unwrap();
        }
        let (session, mem) = session_with_memory();
        let arena = Arc::new(Arena::new(session.clone()).unwrap());
        let m2 = mem.clone();
        loom_hook::set(move || m2.read());
        let a2 = arena.clone();
        let t = thread::spawn(move || {
            let l = a2.local();
            let _ = l.allocate_uninit(8, 8); // takes the dirty chunk
            match l.allocate(8, 8) {
                Ok(s) => assert_eq!(s.get::<u64>(0).unwrap_or(0), 0),
                Err(e) => assert_eq!(e, Error::Closed),
            }
        });
        session.close().unwrap();
        t.join().unwrap();
        loom_hook::clear();
        drop(arena);
        memscope::alloc::trim_pool();
    });
}

#[test]
fn loom_local_handle_zeroing_races_close() {
    local_zero_races_close();
}

#[test]
#[should_panic]
fn twin_zeroing_outside_enter_is_caught() {
    with_twin(Twin::ArenaZeroOutsideEnter, local_zero_races_close);
}

/// Two threads open frames (nested) on their own stacks at once, with a
/// yield between every step, so the model runs every interleaving of the
/// two threads' steps: an outer frame's allocation, an inner frame (the
/// outer one refused while it is open), a raw (bridged) allocation that
/// raises the uninit mark and an `allocate_uninit` below it, a frame that
/// overflows into a second block (`STACK_SIZE` is 64 under loom), and the
/// outer frame reusing the inner frame's memory once it ended (LIFO).
/// The stacks share nothing loom sees (that is the protocol), so loom
/// would run the threads as independent; each step also bumps a shared
/// step counter, which makes every order of the two threads' steps (up
/// to the preemption bound) an execution of its own.
fn stack_frames() {
    model(|| {
        let steps = Arc::new(AtomicUsize::new(0));
        let steps2 = steps.clone();
        let work = move |tag: u64, steps: Arc<AtomicUsize>| {
            let step = || {
                steps.fetch_add(1, Ordering::Relaxed);
                thread::yield_now();
            };
            stack::frame(|f| {
                let mut a = f.allocate(8, 8).unwrap();
                a.set(0, tag).unwrap();
                step();
                let inner = stack::frame(|g| {
                    assert!(
                        matches!(f.allocate(8, 8), Err(Error::InvalidArgument { .. })),
                        "an outer frame allocated while an inner one is open"
                    );
                    let mut b = g.allocate(8, 8).unwrap();
                    b.set(0, tag + 10).unwrap();
                    step();
                    {
                        let mut v: allocator_api2::vec::Vec<u64, &stack::Frame> =
                            allocator_api2::vec::Vec::with_capacity_in(1, g);
                        v.push(tag + 40);
                        step();
                        assert_eq!(v[0], tag + 40);
                    }
                    let u = g.allocate_uninit(8, 8).unwrap();
                    assert_eq!(u.get::<u64>(0).unwrap(), 0, "raw bytes below the mark");
                    step();
                    let mut c = g.allocate(64, 8).unwrap(); // overflows
                    assert_eq!(c.get::<u64>(56).unwrap(), 0);
                    c.set(56, tag + 20).unwrap();
                    step();
                    assert_eq!(b.get::<u64>(0).unwrap(), tag + 10);
                    assert_eq!(c.get::<u64>(56).unwrap(), tag + 20);
                    b.address().get()
                });
                let mut d = f.allocate(8, 8).unwrap();
                assert_eq!(
                    d.address().get(),
                    inner,
                    "the inner frame's memory is reused"
                );
                assert_eq!(
                    d.get::<u64>(0).unwrap(),
                    0,
                    "reused stack memory not zeroed"
                );
                d.set(0, tag + 30).unwrap();
                step();
                assert_eq!(a.get::<u64>(0).unwrap(), tag);
                assert_eq!(d.get::<u64>(0).unwrap(), tag + 30);
            })
        };
        let t = thread::spawn(move || work(1, steps2));
        work(2, steps);
        t.join().unwrap();
    });
}

#[test]
fn loom_stack_frames_on_two_threads() {
    stack_frames();
}

#[test]
#[should_panic]
fn twin_stack_not_per_thread_is_caught() {
    with_twin(Twin::StackNotPerThread, stack_frames);
}

/// The owner of a confined arena refills it (its cursor moves to a new chunk
/// under the arena's spin lock) and closes it, while another thread reads
/// its statistics and sets its limit (under the same lock): the lock's
/// Acquire/Release pair orders every access to the arena's cold state.
fn spin_lock_orders_stats_and_refill() {
    model(|| {
        let arena = Arc::new(Arena::confined());
        let other = arena.clone();
        let t = thread::spawn(move || {
            other.set_allocation_limit(Some(1 << 20));
            let chunks = other.chunks();
            assert!(chunks <= 2, "{chunks} chunks");
            assert_eq!(other.allocation_limit(), Some(1 << 20));
        });
        // 48 + 48 B do not fit one 64 B loom chunk: the second refills.
        arena.allocate(48, 8).unwrap().set(0, 1u64).unwrap();
        arena.allocate(48, 8).unwrap().set(0, 2u64).unwrap();
        assert_eq!(arena.allocated_bytes(), 96);
        t.join().unwrap();
        assert_eq!(arena.close(), Ok(()));
        assert_eq!(arena.chunks(), 0);
        memscope::alloc::trim_pool();
    });
}

#[test]
fn loom_spin_lock_orders_stats_and_refill() {
    spin_lock_orders_stats_and_refill();
}

#[test]
#[should_panic]
fn twin_spin_lock_relaxed_unlock_is_caught() {
    with_twin(Twin::SpinRelaxedUnlock, spin_lock_orders_stats_and_refill);
}

// ----- the arena's fast paths, reached with small knobs (issue 13) --------

/// Runs `f` with the defaults of the older models plus `set`.
fn knobs(set: impl FnOnce(&mut Knobs)) -> Knobs {
    let mut k = Knobs::default();
    set(&mut k);
    k
}

/// An arena dropped on one thread while another closes its session (the
/// close action runs there): whoever lets go of the state last decides
/// from the Release decrement of the state's own holder count (then an
/// Acquire fence) that it may recycle it, and the next arena of the thread
/// takes it. The close action's last uses of the state (under the arena's
/// lock, after it set `closed`) must happen-before the reuse.
fn spare_after_close_elsewhere() {
    with_knobs(knobs(|k| k.spare_cap = 1), || {
        model(|| {
            let arena = Arena::shared();
            arena.allocate(16, 8).unwrap().set(0, u64::MAX).unwrap();
            let s = arena.session().clone();
            let t = thread::spawn(move || {
                let _ = s.close();
            });
            drop(arena);
            let next = Arena::shared();
            let seg = next.allocate(16, 8).unwrap();
            assert_eq!(seg.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
            drop(seg);
            t.join().unwrap();
            drop(next);
            memscope::alloc::trim_pool();
        })
    });
}

#[test]
fn loom_spare_state_recycled_after_a_close_on_another_thread() {
    spare_after_close_elsewhere();
}

#[test]
#[should_panic]
fn twin_spare_relaxed_count_is_caught() {
    with_twin(Twin::SpareRelaxedCount, spare_after_close_elsewhere);
}

/// A thread that keeps bumping one shared arena (streak 1) gets a chunk of
/// its own, a dirty recycled one taken by an `allocate_uninit`; its next
/// zeroing allocation, a hit in its cache, zeroes the dirty bytes while
/// another thread closes the session and a new arena takes the recycled
/// chunk (clearing it). The chunk bytes are loom cells: the memset must be
/// ordered before the close returns the chunk (its enter window).
fn cache_zero_races_close() {
    with_knobs(knobs(|k| k.streak = 1), || {
        model(|| {
            {
                let a = Arena::shared();
                let l = a.local();
                l.allocate(16, 8).unwrap().set(0, u64::MAX).unwrap();
                drop(l);
                a.close().unwrap();
            }
            let arena = Arc::new(Arena::shared());
            let a2 = arena.clone();
            let t = thread::spawn(move || {
                let _ = a2.allocate_uninit(8, 8); // the cache takes the dirty chunk
                match a2.allocate(8, 8) {
                    Ok(s) => match s.get::<u64>(0) {
                        Ok(v) => assert_eq!(v, 0, "dirty bytes handed out"),
                        Err(e) => assert_eq!(e, Error::Closed),
                    },
                    Err(e) => assert_eq!(e, Error::Closed),
                }
            });
            arena.close().unwrap();
            let next = Arena::shared();
            let s = next.allocate(16, 8).unwrap();
            assert_eq!(s.get::<u64>(0).unwrap(), 0);
            drop(s);
            t.join().unwrap();
            // A cache refill that raced the release took no chunk into the
            // released state (it would never be returned).
            assert_eq!(arena.chunks(), 0, "a chunk taken after release");
            drop(next);
            drop(arena);
            memscope::alloc::trim_pool();
        })
    });
}

#[test]
fn loom_thread_cache_zeroing_races_close() {
    cache_zero_races_close();
}

#[test]
#[should_panic]
fn twin_thread_cache_zeroing_outside_enter_is_caught() {
    with_twin(Twin::ArenaZeroOutsideEnter, cache_zero_races_close);
}

/// Two slot words: each thread bumps its own; one grows its slot while the
/// other bumps, and close must mark every slot (a bump through any slot
/// after close returned fails with Closed).
fn close_races_bump_on_two_slots() {
    with_knobs(knobs(|k| k.slots = 2), || {
        model(|| {
            let arena = Arc::new(Arena::shared());
            arena.allocate(8, 8).unwrap();
            let closed = Arc::new(AtomicBool::new(false));
            let (a2, c2) = (arena.clone(), closed.clone());
            let t = thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..2 {
                    let was_closed = c2.load(Ordering::Acquire);
                    match a2.allocate(24, 8) {
                        Ok(s) => {
                            assert!(!was_closed, "allocated after close returned");
                            got.push(range(&s));
                        }
                        Err(e) => assert_eq!(e, Error::Closed),
                    }
                }
                got
            });
            let mine = arena.allocate(8, 8).ok().map(|s| range(&s));
            arena.close().unwrap();
            closed.store(true, Ordering::Release);
            let after = arena.allocate(8, 8).map(|_| ());
            let mut all = t.join().unwrap();
            all.extend(mine);
            assert_disjoint(all);
            assert_eq!(after, Err(Error::Closed), "allocated after close returned");
        })
    });
}

#[test]
fn loom_close_races_bumps_on_two_slot_words() {
    close_races_bump_on_two_slots();
}

#[test]
#[should_panic]
fn twin_close_marking_one_slot_is_caught() {
    with_twin(Twin::ArenaCloseMarksOneSlot, close_races_bump_on_two_slots);
}

/// The pool's per-thread cache (capacity 2): on each of two threads a
/// closed arena gives its dirty chunk to the thread's cache and the next
/// arena of the thread takes it from there (no lock), with its dirty
/// prefix, so the memory it hands out is zero. (Each thread empties its
/// cache before it exits: loom cannot take the global pool's lock in a
/// thread-local destructor, so the flush at thread exit has no model.)
fn pool_cache_hand_off() {
    with_knobs(knobs(|k| k.local_cap = 2), || {
        model(|| {
            let round = || {
                let a = Arena::confined();
                let mut s = a.allocate(16, 8).unwrap();
                s.set(0, u64::MAX).unwrap();
                s.set(8, u64::MAX).unwrap();
                drop(s);
                a.close().unwrap();
                let local = memscope::alloc::pool_stats().local_chunks;
                assert_eq!(local, 1, "the chunk went to this thread's cache");
                let b = Arena::shared();
                let s = b.allocate(16, 8).unwrap();
                assert_eq!(s.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
                assert_eq!(s.get::<u64>(8).unwrap(), 0, "dirty bytes handed out");
                drop(s);
                drop((a, b));
                memscope::alloc::trim_pool();
            };
            let t = thread::spawn(round);
            round();
            t.join().unwrap();
        })
    });
}

#[test]
fn loom_pool_thread_cache_hand_off() {
    pool_cache_hand_off();
}

#[test]
#[should_panic]
fn twin_pool_cache_forgetting_dirty_prefixes_is_caught() {
    with_twin(Twin::LocalPoolForgetsDirty, pool_cache_hand_off);
}

/// A confined arena's standby first chunk: a closed confined arena leaves
/// its dirty chunk in this thread's pool cache (capacity 1) and its state
/// in the spare list; a second one's dirty chunk overflows to the global
/// pool. The next confined arena takes the standby and the spare state, its
/// cursor starting in the dirty chunk with a clean mark, so its first
/// zeroing allocation (a plain bump) zeroes what is dirty; its refill then
/// takes a dirty chunk from the global pool, this thread's or the other
/// one's (which does the same at once).
fn confined_standby_chunk() {
    with_knobs(
        knobs(|k| {
            k.local_cap = 1;
            k.spare_cap = 1;
        }),
        || {
            model(|| {
                let round = || {
                    let dirty = || {
                        let a = Arena::confined();
                        let mut s = a.allocate(16, 8).unwrap();
                        s.set(0, u64::MAX).unwrap();
                        s.set(8, u64::MAX).unwrap();
                        drop(s);
                        a
                    };
                    let (a1, a2) = (dirty(), dirty());
                    a1.close().unwrap(); // to this thread's cache
                    a2.close().unwrap(); // cache full: to the global pool
                    drop((a1, a2));
                    let b = Arena::confined();
                    assert_eq!(b.chunks(), 0, "an unused standby is not reported");
                    let s = b.allocate(16, 8).unwrap();
                    assert_eq!(s.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
                    assert_eq!(s.get::<u64>(8).unwrap(), 0, "dirty bytes handed out");
                    assert_eq!(b.chunks(), 1);
                    let big = b.allocate(56, 8).unwrap(); // refills from the pool
                    assert_eq!(big.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
                    assert_eq!(big.get::<u64>(8).unwrap(), 0, "dirty bytes handed out");
                    drop((s, big));
                    drop(b);
                    memscope::alloc::trim_pool();
                };
                let t = thread::spawn(round);
                round();
                t.join().unwrap();
            })
        },
    );
}

#[test]
fn loom_confined_arena_starts_in_a_dirty_standby_chunk() {
    confined_standby_chunk();
}

#[test]
#[should_panic]
fn twin_standby_without_clean_mark_is_caught() {
    with_twin(Twin::StandbyNoCleanMark, confined_standby_chunk);
}

// ----- parked local chunks, the pool's thread-exit flush, reset (issue 13) --

/// A dirty chunk (24 bytes of `u64::MAX`) in the global pool: a closed
/// shared arena's `local()` chunk.
fn pool_a_dirty_chunk() {
    let a = Arena::shared();
    let l = a.local();
    let mut s = l.allocate(16, 8).unwrap();
    s.set(0, u64::MAX).unwrap();
    s.set(8, u64::MAX).unwrap();
    drop(s);
    l.allocate(8, 8).unwrap().set(0, u64::MAX).unwrap();
    drop(l);
    a.close().unwrap();
}

/// A `local()` handle's chunk is parked when the handle drops, on one
/// thread, while another closes the arena's session. The thread then drops
/// the arena (its state is recycled into the thread's spare list) and opens
/// a new one: its handles must bump in chunks of their own. A handle that
/// dropped after the release must have parked nothing in the released
/// state (else the next arena's handle resumes a record of chunks that went
/// back to the pool: the same chunk as another handle's, or none).
fn park_races_close() {
    with_knobs(knobs(|k| k.spare_cap = 1), || {
        model(|| {
            let session = Session::shared();
            let arena = Arena::new(session.clone()).unwrap();
            let t = thread::spawn(move || {
                let l = arena.local();
                match l.allocate(16, 8) {
                    Ok(mut s) => match s.set(0, u64::MAX) {
                        Ok(()) | Err(Error::Closed) => {}
                        Err(e) => panic!("unexpected {e}"),
                    },
                    Err(e) => assert_eq!(e, Error::Closed),
                }
                drop(l); // parks its chunk, unless the arena was released
                drop(arena); // the state goes to this thread's spare list
                let next = Arena::shared();
                let l0 = next.local();
                let l1 = next.local();
                let a = l0.allocate(16, 8).unwrap();
                let b = l1.allocate(16, 8).unwrap();
                let c = l0.allocate(16, 8).unwrap();
                for s in [&a, &b, &c] {
                    assert_eq!(s.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
                }
                assert_disjoint(vec![range(&a), range(&b), range(&c)]);
                drop((a, b, c));
                drop((l0, l1));
                drop(next);
                memscope::alloc::trim_pool();
            });
            let _ = session.close();
            t.join().unwrap();
            memscope::alloc::trim_pool();
        })
    });
}

#[test]
fn loom_local_chunk_parked_while_its_arena_closes() {
    park_races_close();
}

#[test]
#[should_panic]
fn twin_park_after_release_is_caught() {
    with_twin(Twin::ParkAfterRelease, park_races_close);
}

/// A handle takes a dirty pooled chunk (an `allocate_uninit` zeroes
/// nothing) and parks it; the thread's next handle resumes it, and its
/// zeroing allocation zeroes the dirty bytes ahead (under the arena's
/// lock), while another thread closes the session, and then opens an arena
/// that takes (and clears) the recycled chunk. The chunk bytes are loom
/// cells: the resume's memset must be ordered before the release. After the
/// close has returned (flag seen), a resume must fail with `Closed`.
fn resume_races_close() {
    model(|| {
        pool_a_dirty_chunk();
        let session = Session::shared();
        let arena = Arc::new(Arena::new(session.clone()).unwrap());
        let closed = Arc::new(AtomicBool::new(false));
        let (a2, c2) = (arena.clone(), closed.clone());
        let t = thread::spawn(move || {
            let l1 = a2.local();
            let _ = l1.allocate_uninit(8, 8); // takes the dirty chunk
            drop(l1); // parks it
            let was_closed = c2.load(Ordering::Acquire);
            let l2 = a2.local();
            match l2.allocate(8, 8) {
                // resumed (or a fresh chunk): zero, unless closed meanwhile
                Ok(s) => {
                    assert!(!was_closed, "resumed a parked chunk after close");
                    match s.get::<u64>(0) {
                        Ok(v) => assert_eq!(v, 0, "dirty bytes handed out"),
                        Err(e) => assert_eq!(e, Error::Closed),
                    }
                }
                Err(e) => assert_eq!(e, Error::Closed),
            }
        });
        session.close().unwrap();
        closed.store(true, Ordering::Release);
        let next = Arena::shared();
        let s = next.allocate(16, 8).unwrap();
        assert_eq!(s.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
        drop(s);
        t.join().unwrap();
        // A refill that raced the release took no chunk into the released
        // state (it would never be returned).
        assert_eq!(arena.chunks(), 0, "a chunk taken after release");
        drop(next);
        drop(arena);
        memscope::alloc::trim_pool();
    });
}

#[test]
fn loom_parked_chunk_resumed_while_its_arena_closes() {
    resume_races_close();
}

#[test]
#[should_panic]
fn twin_resume_zeroing_after_unlock_is_caught() {
    with_twin(Twin::ResumeZeroUnlocked, resume_races_close);
}

/// The pool's thread-exit flush: a thread closes two confined arenas (one
/// dirty chunk goes to the thread's cache, capacity 1, the other to the
/// global pool) and exits, its cache's destructor moving the cached chunk
/// to the global pool (under loom the model runs that flush at the end of
/// the thread), while main opens a shared arena (which may take either
/// chunk from the global pool and must clear its dirty prefix) and closes
/// it (its chunk going to main's cache). Afterwards both of the thread's
/// chunks are pooled, less the one main took.
fn pool_flush_at_thread_exit() {
    with_knobs(knobs(|k| k.local_cap = 1), || {
        model(|| {
            let t = thread::spawn(|| {
                let dirty = || {
                    let a = Arena::confined();
                    let mut s = a.allocate(16, 8).unwrap();
                    s.set(0, u64::MAX).unwrap();
                    s.set(8, u64::MAX).unwrap();
                    let base = s.address().get();
                    drop(s);
                    (a, base)
                };
                let ((a1, x1), (a2, x2)) = (dirty(), dirty());
                a1.close().unwrap(); // to this thread's cache
                a2.close().unwrap(); // cache full: to the global pool
                drop((a1, a2));
                assert_eq!(memscope::alloc::pool_stats().local_chunks, 1);
                memscope::alloc::loom::flush_thread_cache(); // thread exit
                assert_eq!(memscope::alloc::pool_stats().local_chunks, 0);
                [x1, x2]
            });
            let b = Arena::shared();
            let mut s = b.allocate(16, 8).unwrap();
            assert_eq!(s.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
            assert_eq!(s.get::<u64>(8).unwrap(), 0, "dirty bytes handed out");
            s.set(0, 1u64).unwrap();
            let mine = s.address().get();
            drop(s);
            b.close().unwrap();
            drop(b);
            let theirs = t.join().unwrap();
            let st = memscope::alloc::pool_stats();
            assert_eq!(st.local_chunks, 1, "main's closed arena's chunk");
            let expect = if theirs.contains(&mine) { 2 } else { 3 };
            assert_eq!(st.chunks, expect, "the flushed chunk is pooled");
            memscope::alloc::trim_pool();
        })
    });
}

#[test]
fn loom_pool_flush_at_thread_exit() {
    pool_flush_at_thread_exit();
}

#[test]
#[should_panic]
fn twin_flush_forgetting_dirty_prefixes_is_caught() {
    with_twin(Twin::FlushForgetsDirty, pool_flush_at_thread_exit);
}

/// An owned segment (its arena pinned) is read on another thread while
/// the arena resets and allocates again, and then closes: the reset must
/// move on to fresh chunks (the owned segment's memory stays its own until
/// the session closes; then its reads fail with `Closed`).
fn reset_with_owned_segment_elsewhere() {
    model(|| {
        let session = Session::shared();
        let mut arena = Arena::new(session.clone()).unwrap();
        let mut owned = arena.allocate_owned(16, 8).unwrap();
        owned.set(0, 7u64).unwrap();
        owned.set(8, 7u64).unwrap();
        let r = (owned.address().get(), owned.address().get() + 16);
        let t = thread::spawn(move || {
            for off in [0, 8] {
                match owned.get::<u64>(off) {
                    Ok(v) => assert_eq!(v, 7, "an owned segment's memory was reused"),
                    Err(e) => assert_eq!(e, Error::Closed),
                }
                thread::yield_now();
            }
        });
        arena.reset();
        let mut s = arena.allocate(16, 8).unwrap();
        let zero = s.get::<u64>(0).unwrap();
        let mine = range(&s);
        s.set(0, u64::MAX).unwrap();
        s.set(8, u64::MAX).unwrap();
        drop(s);
        session.close().unwrap();
        // Asserted once the reader is done (a failure with the reader
        // still queued would drop its loom objects outside the model).
        t.join().unwrap();
        assert_eq!(zero, 0);
        assert_disjoint(vec![r, mine]);
        drop(arena);
        memscope::alloc::trim_pool();
    });
}

#[test]
fn loom_reset_while_an_owned_segment_is_read_elsewhere() {
    reset_with_owned_segment_elsewhere();
}

#[test]
#[should_panic]
fn twin_reset_ignoring_owned_segments_is_caught() {
    with_twin(Twin::ResetIgnoresOwned, reset_with_owned_segment_elsewhere);
}

/// A thread bumps a shared arena through its slot word, then (streak 2)
/// through a chunk cache of its own, and through a `local()` handle that
/// parks its chunk; it hands the arena back, main resets it (the chunks go
/// back to the pool, one is kept) and hands it out again, and both bump at
/// once. The thread's slot word, cache and parked chunk are of the old
/// round: none may be bumped into again (every allocation is zero and
/// disjoint from the others).
fn reset_vs_earlier_bumps_elsewhere() {
    with_knobs(knobs(|k| k.streak = 2), || {
        model(|| {
            let (to_main, from_t) = mpsc::channel::<Arc<Arena>>();
            let (to_t, from_main) = mpsc::channel::<Arc<Arena>>();
            let mut arena = Arc::new(Arena::shared());
            let a2 = arena.clone();
            let t = thread::spawn(move || {
                a2.allocate(8, 8).unwrap().set(0, u64::MAX).unwrap(); // slot word
                a2.allocate(8, 8).unwrap().set(0, u64::MAX).unwrap(); // its cache
                let l = a2.local();
                l.allocate(8, 8).unwrap().set(0, u64::MAX).unwrap();
                drop(l); // parked
                to_main.send(a2).unwrap();
                let a3 = from_main.recv().unwrap();
                round_after_reset(&a3, 1)
            });
            drop(from_t.recv().unwrap());
            Arc::get_mut(&mut arena).expect("unique").reset();
            to_t.send(arena.clone()).unwrap();
            let mine = round_after_reset(&arena, 2);
            let mut all = t.join().unwrap();
            all.extend(mine);
            assert_disjoint(all);
            drop(arena);
            memscope::alloc::trim_pool();
        })
    });
}

/// Two zeroing `&Arena` bumps and one through a `local()` handle, 8 bytes
/// each, each checked zero and tagged; after a yield, all still tagged.
fn round_after_reset(arena: &Arena, tag: u8) -> Vec<(usize, usize)> {
    let l = arena.local();
    let mut segs = Vec::new();
    for i in 0..3 {
        let mut s = if i < 2 {
            arena.allocate(8, 8)
        } else {
            l.allocate(8, 8)
        }
        .unwrap();
        assert_eq!(s.get::<u64>(0).unwrap(), 0, "dirty bytes handed out");
        s.set(0, tag).unwrap();
        segs.push(s);
    }
    thread::yield_now();
    for s in &segs {
        assert_eq!(s.get::<u8>(0).unwrap(), tag, "allocation overwritten");
    }
    segs.iter().map(range).collect()
}

#[test]
fn loom_reset_vs_another_threads_earlier_bumps() {
    reset_vs_earlier_bumps_elsewhere();
}

#[test]
#[should_panic]
fn twin_reset_keeping_the_arena_id_is_caught() {
    with_twin(Twin::ResetKeepsId, reset_vs_earlier_bumps_elsewhere);
}
