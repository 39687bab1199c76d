//! Loom models of the session protocol (DESIGN.md semantics 1–5).
//!
//! Every model runs main + 2 threads. Real models are `loom_*`; each broken
//! twin of the protocol (`memscope::session::broken::Twin`) has a
//! `#[should_panic]` test `twin_*` that runs a model loom must fail on.
//! Each model prints `loom model NAME: N iterations` (run with
//! `--nocapture` to see them).
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use loom_tests::{model_named as model, session_with_memory};
use memscope::session::broken::{Twin, with_twin};
use memscope::{Error, Session};

/// Close must be `Ok` or `Busy` (nothing else may happen to it here).
fn ok_or_busy(r: Result<(), Error>) {
    match r {
        Ok(()) | Err(Error::Busy { .. }) => {}
        Err(e) => panic!("close failed: {e}"),
    }
}

// ----- 1. acquire vs close ---------------------------------------------------

/// Two threads take a guard and read while main closes: close either fails
/// with Busy (and frees nothing) or the acquire fails with Closed.
fn acquire_vs_close() {
    model("acquire_vs_close", || {
        let (s, m) = session_with_memory();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s, m) = (s.clone(), m.clone());
                thread::spawn(move || {
                    if let Ok(g) = s.acquire() {
                        m.read();
                        drop(g);
                    }
                })
            })
            .collect();
        ok_or_busy(s.close());
        for t in ts {
            t.join().unwrap();
        }
    });
}

#[test]
fn loom_acquire_vs_close() {
    acquire_vs_close();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_check_then_increment_is_caught() {
    with_twin(Twin::CheckThenIncrement, acquire_vs_close);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_relaxed_release_is_caught() {
    with_twin(Twin::RelaxedRelease, acquire_vs_close);
}

// ----- 2. concurrent closes ----------------------------------------------------

/// Two threads close at once: exactly one gets `Ok`, the other `Closed`, and
/// the close action runs exactly once.
fn concurrent_closes() {
    model("concurrent_closes", || {
        let s = Session::shared();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        s.add_close_action(move || {
            r.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || s.close())
            })
            .collect();
        let results: Vec<_> = ts.into_iter().map(|t| t.join().unwrap()).collect();
        let oks = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(oks, 1, "close succeeded {oks} times: {results:?}");
        assert!(results.contains(&Err(Error::Closed)), "{results:?}");
        assert_eq!(runs.load(Ordering::Relaxed), 1, "close action ran twice");
    });
}

#[test]
fn loom_concurrent_closes() {
    concurrent_closes();
}

#[test]
#[should_panic(expected = "close succeeded 2 times")]
fn twin_non_exclusive_close_is_caught() {
    with_twin(Twin::NonExclusiveClose, concurrent_closes);
}

// ----- 3. add_close_action vs close -------------------------------------------

/// One thread registers an action while another closes: the action runs
/// exactly once (at close, or at once if the close came first), never lost.
fn add_action_vs_close() {
    model("add_action_vs_close", || {
        let s = Session::shared();
        let runs = Arc::new(AtomicUsize::new(0));
        let (s1, r1) = (s.clone(), runs.clone());
        let adder = thread::spawn(move || {
            let r = s1.add_close_action(move || {
                r1.fetch_add(1, Ordering::Relaxed);
            });
            assert!(matches!(r, Ok(()) | Err(Error::Closed)), "{r:?}");
        });
        let s2 = s.clone();
        let closer = thread::spawn(move || s2.close());
        adder.join().unwrap();
        closer.join().unwrap().unwrap();
        assert_eq!(
            runs.load(Ordering::Relaxed),
            1,
            "close action lost or run twice"
        );
    });
}

#[test]
fn loom_add_action_vs_close() {
    add_action_vs_close();
}

#[test]
#[should_panic(expected = "close action lost or run twice")]
fn twin_unlocked_add_action_is_caught() {
    with_twin(Twin::UnlockedAddAction, add_action_vs_close);
}

// ----- 4. no lost releases -------------------------------------------------------

/// Main holds a guard while two threads acquire and release; main releases
/// concurrently. Afterwards every count is back to zero: close must succeed.
/// (Main takes the first thread id, so one of the threads shares its shard.)
fn no_lost_releases() {
    model("no_lost_releases", || {
        let (s, m) = session_with_memory();
        let g = s.acquire().unwrap();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s, m) = (s.clone(), m.clone());
                thread::spawn(move || {
                    let g = s.acquire().unwrap();
                    m.read();
                    drop(g);
                })
            })
            .collect();
        drop(g);
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(s.acquired(), 0, "a release was lost");
        s.close().unwrap();
    });
}

#[test]
fn loom_no_lost_releases() {
    no_lost_releases();
}

#[test]
#[should_panic(expected = "a release was lost")]
fn twin_load_store_release_is_caught() {
    with_twin(Twin::LoadStoreRelease, no_lost_releases);
}

// ----- 5. close_blocking waits, then frees ----------------------------------------

/// Two threads use the memory under guards while main waits in
/// `close_blocking`: it returns `Ok` once they are done, and only then frees.
fn close_blocking_waits_then_frees() {
    model("close_blocking_waits_then_frees", || {
        let (s, m) = session_with_memory();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s, m) = (s.clone(), m.clone());
                thread::spawn(move || {
                    if let Ok(g) = s.acquire() {
                        m.read();
                        drop(g);
                    }
                })
            })
            .collect();
        s.close_blocking().unwrap();
        assert!(!m.is_live());
        for t in ts {
            t.join().unwrap();
        }
    });
}

#[test]
fn loom_close_blocking_waits_then_frees() {
    close_blocking_waits_then_frees();
}

#[test]
#[should_panic(expected = "deadlock")]
fn twin_no_wakeup_is_caught() {
    with_twin(Twin::NoWakeup, close_blocking_waits_then_frees);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_relaxed_release_is_caught_by_close_blocking() {
    with_twin(Twin::RelaxedRelease, close_blocking_waits_then_frees);
}

// ----- 6. plain access vs close ------------------------------------------------------

/// Two threads read through plain accesses (`enter`) while main closes:
/// close never fails because of them (always `Ok`), and no read touches
/// freed memory (it either completes before the free or fails with Closed).
fn enter_vs_close() {
    model("enter_vs_close", || {
        let (s, m) = session_with_memory();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s, m) = (s.clone(), m.clone());
                thread::spawn(move || match s.enter() {
                    Ok(a) => {
                        m.read();
                        drop(a);
                    }
                    Err(e) => assert_eq!(e, Error::Closed),
                })
            })
            .collect();
        if let Err(e) = s.close() {
            panic!("close failed: {e}");
        }
        for t in ts {
            t.join().unwrap();
        }
    });
}

#[test]
fn loom_enter_vs_close() {
    enter_vs_close();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_no_enter_drain_is_caught() {
    with_twin(Twin::NoEnterDrain, enter_vs_close);
}

// ----- 7. keep_alive chain vs close ---------------------------------------------------

/// `a` keeps `b` alive and uses `b`'s memory in its own close action. One
/// thread closes `a` while another tries to close `b`: `b` closes only after
/// `a`'s action is done with its memory.
fn keep_alive_vs_close() {
    model("keep_alive_vs_close", || {
        let a = Session::shared();
        let (b, mb) = session_with_memory();
        a.keep_alive(&b).unwrap();
        let mb2 = mb.clone();
        // Registered after keep_alive, so it runs before the hold is released.
        a.add_close_action(move || mb2.read()).unwrap();
        let ta = thread::spawn(move || a.close());
        let b2 = b.clone();
        let tb = thread::spawn(move || b2.close());
        ta.join().unwrap().unwrap();
        let rb = tb.join().unwrap();
        ok_or_busy(rb.clone());
        if rb.is_err() {
            b.close().unwrap();
        }
        assert!(!mb.is_live());
    });
}

#[test]
fn loom_keep_alive_vs_close() {
    keep_alive_vs_close();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_relaxed_release_is_caught_by_keep_alive() {
    with_twin(Twin::RelaxedRelease, keep_alive_vs_close);
}

// ----- 8. confined: wrong-thread access fails ---------------------------------------------

/// Two other threads try every operation on a confined session: all fail with
/// WrongThread and nothing runs; the owner then closes it.
fn confined_wrong_thread() {
    model("confined_wrong_thread", || {
        let s = Session::confined();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        s.add_close_action(move || {
            r.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let ts: Vec<_> = (0..2)
            .map(|i| {
                let s = s.clone();
                thread::spawn(move || {
                    let wrong = |r: Result<(), Error>| {
                        assert!(
                            matches!(r, Err(Error::WrongThread { .. })),
                            "confined session used from another thread: {r:?}"
                        )
                    };
                    if i == 0 {
                        wrong(s.acquire().map(drop));
                        wrong(s.close());
                    } else {
                        wrong(s.enter().map(drop));
                        wrong(s.add_close_action(|| ()));
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(runs.load(Ordering::Relaxed), 0);
        s.close().unwrap();
        assert_eq!(runs.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_confined_wrong_thread() {
    confined_wrong_thread();
}

#[test]
#[should_panic(expected = "confined session used from another thread")]
fn twin_no_owner_check_is_caught() {
    with_twin(Twin::NoOwnerCheck, confined_wrong_thread);
}

// ----- 9. close vs close_blocking -----------------------------------------------------------

/// A guard holder, a waiting closer and a plain closer: exactly one close
/// succeeds, the memory is freed once, never under the guard.
fn close_vs_close_blocking() {
    model("close_vs_close_blocking", || {
        let (s, m) = session_with_memory();
        let g = s.acquire().unwrap();
        let s1 = s.clone();
        let waiting = thread::spawn(move || s1.close_blocking());
        let (s2, m2) = (s.clone(), m.clone());
        let plain = thread::spawn(move || {
            let r = s2.close();
            if r.is_ok() {
                assert!(!m2.is_live());
            }
            r
        });
        m.read();
        drop(g);
        let (rw, rp) = (waiting.join().unwrap(), plain.join().unwrap());
        let oks = [&rw, &rp].iter().filter(|r| r.is_ok()).count();
        assert_eq!(oks, 1, "close succeeded {oks} times: {rw:?} {rp:?}");
        assert!(matches!(
            rp,
            Ok(()) | Err(Error::Busy { .. }) | Err(Error::Closed)
        ));
    });
}

#[test]
fn loom_close_vs_close_blocking() {
    close_vs_close_blocking();
}

#[test]
#[should_panic(expected = "close succeeded 2 times")]
fn twin_woken_close_skipping_its_closed_check_is_caught() {
    with_twin(Twin::WokenCloseSkipsClosedCheck, close_vs_close_blocking);
}

// ----- 10. acquire after a failed close --------------------------------------------------

/// A close that fails with Busy rolls back: acquirers that waited on it
/// succeed, and the session closes later once they are done.
fn busy_close_rolls_back() {
    model("busy_close_rolls_back", || {
        let (s, m) = session_with_memory();
        let g = s.acquire().unwrap();
        let (s1, m1) = (s.clone(), m.clone());
        let acquirer = thread::spawn(move || {
            let g = s1
                .acquire()
                .expect("acquire failed while the session was open");
            m1.read();
            drop(g);
        });
        let s2 = s.clone();
        let closer = thread::spawn(move || s2.close());
        let busy = closer.join().unwrap();
        assert!(matches!(busy, Err(Error::Busy { .. })), "{busy:?}");
        drop(g);
        acquirer.join().unwrap();
        s.close().unwrap();
    });
}

#[test]
fn loom_busy_close_rolls_back() {
    busy_close_rolls_back();
}

#[test]
#[should_panic]
fn twin_busy_close_keeping_closing_is_caught() {
    // The acquirer waits for good on a decision already made: loom reports
    // the endless retry (or main's later close makes it fail).
    with_twin(Twin::BusyKeepsClosing, busy_close_rolls_back);
}

// ----- 11. the last handles drop at once; cores are recycled -----------------------------

/// Two threads drop their handles (after a plain access) while main drops
/// its own: whichever drop is last closes the session, exactly once, after
/// every access; then a new session on main (maybe a recycled core) starts
/// open and empty.
///
/// No twin of its own: the handle count's twins (`HandleRelaxedDrop`,
/// `HandleNoAcquireFence`) are switched at the same site and caught by
/// `last_handles_drop_after_adding_actions` and
/// `confined_keep_released_elsewhere` (measured: not by this model, whose
/// readers touch nothing the last drop's close writes without an ordering
/// of its own); its other half, the reset and revival of a recycled core,
/// cannot have one (broken twins run without the core pool, so that a
/// failing model leaves no loom object in a thread-local): mutations S43,
/// S44 (reset) and S45 (revive) check it on the real source.
fn last_handles_drop_at_once() {
    model("last_handles_drop_at_once", || {
        let (s, m) = session_with_memory();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        s.add_close_action(move || {
            r.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s, m) = (s.clone(), m.clone());
                thread::spawn(move || {
                    if let Ok(a) = s.enter() {
                        m.read();
                        drop(a);
                    }
                    drop(s);
                })
            })
            .collect();
        drop(s);
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(runs.load(Ordering::Relaxed), 1, "drop-close ran != once");
        assert!(!m.is_live());
        // Sessions made after a recycle start fresh.
        for _ in 0..2 {
            let n = Session::shared();
            assert!(n.is_alive());
            assert_eq!(n.acquired(), 0);
            n.close().unwrap();
        }
    });
}

#[test]
fn loom_last_handles_drop_at_once() {
    last_handles_drop_at_once();
}

// ----- 9. a confined access window versus a close from inside it --------------

/// The owner of a confined session closes it from inside its own access
/// windows (a `Session::enter` token, as `Marshal::encode`/`decode` run in,
/// and an upcall window, entered through the stub's raw core pointer) while
/// another thread drops a handle: the close is `InUse` and frees nothing;
/// the memory is freed exactly once, after the windows end, by whichever
/// thread drops the last handle. A second thread tries to close and to
/// enter the session from outside (`WrongThread`) and drops its handle.
fn confined_window_vs_close_from_inside() {
    use memscope::linker::protocol::hooks::StubCore;
    model("confined_window_vs_close_from_inside", || {
        let s = Session::confined();
        let m = loom_tests::Memory::new();
        loom_tests::free_on_close(&s, &m);
        let s2 = s.clone();
        let t = thread::spawn(move || drop(s2));
        let s3 = s.clone();
        let t3 = thread::spawn(move || {
            let close = s3.close();
            let enter = s3.enter().map(drop);
            drop(s3);
            (close, enter)
        });
        let in_enter = {
            let a = s.enter().unwrap();
            let r = s.close();
            if r.is_err() {
                m.read(); // the window's memory is still there
            }
            drop(a);
            r
        };
        // SAFETY: the session's close actions have not run (or, under the
        // broken twin, have: then the session is closed and this fails).
        let in_upcall = match unsafe { StubCore::of(&s).enter() } {
            Ok(u) => {
                let r = s.close_blocking();
                if r.is_err() {
                    m.read();
                }
                drop(u);
                r
            }
            Err(e) => Err(e),
        };
        let live = m.is_live();
        drop(s);
        // Joined before any assertion: a failing model must not leave a
        // thread (and its handle) behind.
        t.join().unwrap();
        let (close, enter) = t3.join().unwrap();
        assert!(
            matches!(close, Err(Error::WrongThread { .. }))
                && matches!(enter, Err(Error::WrongThread { .. })),
            "a foreign thread closed or entered a confined session: {close:?} {enter:?}"
        );
        assert_eq!(
            (in_enter, in_upcall),
            (Err(Error::InUse), Err(Error::InUse)),
            "a close from inside its own window was not refused with InUse"
        );
        assert!(live);
        assert!(!m.is_live());
    });
}

#[test]
fn loom_confined_window_vs_close_from_inside() {
    confined_window_vs_close_from_inside();
}

#[test]
#[should_panic(expected = "was not refused with InUse")]
fn twin_confined_close_inside_its_window_is_caught() {
    with_twin(
        Twin::CloseInsideWindow,
        confined_window_vs_close_from_inside,
    );
}

/// The same for a shared session: a close from inside this thread's own
/// window must be `InUse` (not a wait for itself), while another thread's
/// close waits for the window.
fn shared_window_vs_close_from_inside() {
    model("shared_window_vs_close_from_inside", || {
        let (s, m) = session_with_memory();
        let s2 = s.clone();
        let t = thread::spawn(move || match s2.close_blocking() {
            Ok(()) | Err(Error::Closed) => {}
            Err(e) => panic!("close failed: {e}"),
        });
        if let Ok(a) = s.enter() {
            assert_eq!(s.close(), Err(Error::InUse));
            m.read();
            drop(a);
        }
        t.join().unwrap();
        assert!(!m.is_live());
    });
}

#[test]
fn loom_shared_window_vs_close_from_inside() {
    shared_window_vs_close_from_inside();
}

#[test]
#[should_panic]
fn twin_shared_close_inside_its_window_is_caught() {
    with_twin(Twin::CloseInsideWindow, shared_window_vs_close_from_inside);
}

/// The same on the shard word's path: main's one slot is busy (it is
/// inside another session), so its window on `s` is a read-modify-write of
/// the shard word plus a record in the thread's window list. A close from
/// inside is `InUse` (not a wait for itself); once the window has ended, a
/// close from main succeeds (the record went with the window), while
/// another thread's plain access races that close.
fn shared_fallback_window_vs_close_from_inside() {
    model("shared_fallback_window_vs_close_from_inside", || {
        let (s, m) = session_with_memory();
        let other = Session::shared();
        let (s2, m2) = (s.clone(), m.clone());
        let t = thread::spawn(move || match s2.enter() {
            Ok(a) => {
                m2.read();
                drop(a);
            }
            Err(e) => assert_eq!(e, Error::Closed),
        });
        let outer = other.enter().expect("open"); // takes main's one slot
        let a = s.enter().expect("open");
        let inside = s.close();
        m.read();
        drop(a);
        drop(outer);
        let after = s.close();
        t.join().unwrap();
        assert_eq!(inside, Err(Error::InUse), "a close from inside its window");
        assert_eq!(after, Ok(()), "a close after the window ended");
        assert!(!m.is_live());
    });
}

#[test]
fn loom_shared_fallback_window_vs_close_from_inside() {
    shared_fallback_window_vs_close_from_inside();
}

#[test]
#[should_panic]
fn twin_window_unrecorded_is_caught() {
    // The close from inside waits for its own window: loom reports the
    // endless wait (its drain spins through the shim's yield).
    with_twin(
        Twin::WindowUnrecorded,
        shared_fallback_window_vs_close_from_inside,
    );
}

// ----- withdrawing a close action vs close (issue 12) --------------------------------

/// One thread withdraws a registered action while another closes: either
/// the withdrawal wins (the action never runs) or the close does (the action
/// runs exactly once and the withdrawal reports it was not withdrawn).
fn withdraw_vs_close() {
    model("withdraw_vs_close", || {
        let s = Session::shared();
        let runs = Arc::new(AtomicUsize::new(0));
        let r1 = runs.clone();
        let key = s
            .__add_withdrawable_close_action(move || {
                r1.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        let s1 = s.clone();
        let withdrawer = thread::spawn(move || s1.__withdraw_close_action(key));
        let s2 = s.clone();
        let closer = thread::spawn(move || s2.close());
        let withdrawn = withdrawer.join().unwrap();
        closer.join().unwrap().unwrap();
        let ran = runs.load(Ordering::Relaxed);
        if withdrawn {
            assert_eq!(ran, 0, "a withdrawn action ran");
        } else {
            assert_eq!(ran, 1, "an action neither withdrawn nor run once");
        }
    });
}

#[test]
fn loom_withdraw_vs_close() {
    withdraw_vs_close();
}

#[test]
#[should_panic(expected = "a withdrawn action ran")]
fn twin_withdraw_after_take_is_caught() {
    with_twin(Twin::WithdrawAfterTake, withdraw_vs_close);
}

// ----- opposite keep_alives race (issue 12) ------------------------------------------

/// `a.keep_alive(&b)` and `b.keep_alive(&a)` on two threads: never both (a
/// cycle neither could close), and both sessions close afterwards.
fn opposite_keep_alives() {
    model("opposite_keep_alives", || {
        let (a, b) = (Session::shared(), Session::shared());
        let (a1, b1) = (a.clone(), b.clone());
        let t1 = thread::spawn(move || a1.keep_alive(&b1).is_ok());
        let (a2, b2) = (a.clone(), b.clone());
        let t2 = thread::spawn(move || b2.keep_alive(&a2).is_ok());
        let (ab, ba) = (t1.join().unwrap(), t2.join().unwrap());
        assert!(!(ab && ba), "a keep_alive cycle was made");
        // Keepers first: whichever hold exists is released by its keeper.
        if ab {
            a.close().unwrap();
            b.close().unwrap();
        } else {
            b.close().unwrap();
            a.close().unwrap();
        }
    });
}

#[test]
fn loom_opposite_keep_alives() {
    opposite_keep_alives();
}

#[test]
#[should_panic(expected = "a keep_alive cycle was made")]
fn twin_keep_graph_check_then_add_is_caught() {
    with_twin(Twin::KeepGraphCheckThenAdd, opposite_keep_alives);
}

// ----- fast-path plain access (issue 15, `session/enter.rs`) ----------------------------
//
// Under loom a thread has one slot, both sides of the barrier are
// `fence(SeqCst)` (what membarrier stands for), and a nested access takes
// the shard word's read-modify-write path.

/// A plain access on the fast path (the gate already has USED: main entered
/// first, so the reader's enter is a slot store, the light fence and a gate
/// load) vs close: close is `Ok`, and each of two reads completes before
/// the free or its enter fails with Closed. Both twins (light side without its fence,
/// heavy side without its barrier) must be caught here.
fn fast_enter_vs_close() {
    model("fast_enter_vs_close", || {
        let (s, m) = session_with_memory();
        drop(s.enter().expect("open"));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s, m) = (s.clone(), m.clone());
                thread::spawn(move || match s.enter() {
                    Ok(a) => {
                        m.read();
                        drop(a);
                    }
                    Err(e) => assert_eq!(e, Error::Closed),
                })
            })
            .collect();
        if let Err(e) = s.close() {
            panic!("close failed: {e}");
        }
        for t in ts {
            t.join().unwrap();
        }
        assert!(!m.is_live());
    });
}

#[test]
fn loom_fast_enter_vs_close() {
    fast_enter_vs_close();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_enter_no_fence_is_caught() {
    with_twin(Twin::EnterNoFence, fast_enter_vs_close);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_close_no_barrier_is_caught() {
    with_twin(Twin::CloseNoBarrier, fast_enter_vs_close);
}

/// The first plain accesses of a session (each may set USED with its
/// read-modify-write) race close, whose gate `fetch_or` may read no USED
/// and then skip the barrier and the slot walk: that is only sound because
/// nobody passes a gate without USED. Two readers, main closes.
fn first_enters_vs_close() {
    model("first_enters_vs_close", || {
        let (s, m) = session_with_memory();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s, m) = (s.clone(), m.clone());
                thread::spawn(move || match s.enter() {
                    Ok(a) => {
                        m.read();
                        drop(a);
                    }
                    Err(e) => assert_eq!(e, Error::Closed),
                })
            })
            .collect();
        if let Err(e) = s.close() {
            panic!("close failed: {e}");
        }
        for t in ts {
            t.join().unwrap();
        }
    });
}

#[test]
fn loom_first_enters_vs_close() {
    first_enters_vs_close();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_enter_no_fence_is_caught_by_first_enters() {
    with_twin(Twin::EnterNoFence, first_enters_vs_close);
}

/// A thread whose slot is busy (it is inside another session) enters
/// through the shard word's read-modify-write path while main closes: the
/// fallback path keeps semantics 5 (close `Ok`, the read live or Closed).
fn nested_enter_vs_close() {
    model("nested_enter_vs_close", || {
        let (s, m) = session_with_memory();
        let other = Session::shared();
        let (s2, m2) = (s.clone(), m.clone());
        let t = thread::spawn(move || {
            let _outer = other.enter().expect("open"); // takes the one slot
            match s2.enter() {
                Ok(a) => {
                    m2.read();
                    drop(a);
                }
                Err(e) => assert_eq!(e, Error::Closed),
            }
        });
        if let Err(e) = s.close() {
            panic!("close failed: {e}");
        }
        t.join().unwrap();
    });
}

#[test]
fn loom_nested_enter_vs_close() {
    nested_enter_vs_close();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_no_enter_drain_is_caught_on_the_fallback_path() {
    with_twin(Twin::NoEnterDrain, nested_enter_vs_close);
}

// ----- issue 13: the confined paths run unlocked under loom ------------------------

/// A handle that is leaked, not dropped, when its thread unwinds: a twin's
/// failure inside an unlocked access of the control block leaves loom's
/// cell marked as in use, and a last-handle drop during that unwind would
/// touch the cell again (a panic inside a panic aborts the test binary).
struct LeakOnPanic(Option<Session>);

impl core::ops::Deref for LeakOnPanic {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.0.as_ref().expect("held until drop")
    }
}

impl Drop for LeakOnPanic {
    fn drop(&mut self) {
        let s = self.0.take();
        if std::thread::panicking() {
            core::mem::forget(s);
        }
    }
}

/// The owner of a confined session withdraws one action and closes while
/// another thread tries every operation on it (register, withdraw, acquire,
/// enter, close: each `WrongThread`, touching nothing) through two
/// handles, drops them and opens a confined session of its own; main drops
/// its handle after the close and opens one too. The owner's withdrawal wins, the
/// action the foreign thread tried to withdraw stays and runs once at
/// close, and whichever drop is last recycles the core (close_unique and
/// reset run without the lock, maybe on the foreign thread), so the next
/// confined session of that thread may be the recycled core: it must be
/// owned by its new creator (on main here; a core recycled on another
/// thread: `confined_keep_released_elsewhere`). Few executions by nature:
/// the foreign calls only load an owner that never changes, which commutes
/// with everything, so what loom orders is the handle count's RMWs and the
/// unlocked control-block accesses they order. The shim's `with_unlocked` is a tracked
/// loom-cell access without the lock (as in the real build), so a foreign
/// access to the confined control block is a causality violation (twin
/// `NoOwnerCheck`: with a locking shim it went unseen).
fn confined_foreign_add_vs_owner_close() {
    model("confined_foreign_add_vs_owner_close", || {
        let s = Session::confined();
        let m = loom_tests::Memory::new();
        loom_tests::free_on_close(&s, &m);
        let runs = Arc::new(AtomicUsize::new(0));
        let (r1, r2) = (runs.clone(), runs.clone());
        let mine = s
            .__add_withdrawable_close_action(move || {
                r1.fetch_add(10, Ordering::Relaxed);
            })
            .unwrap();
        let theirs = s
            .__add_withdrawable_close_action(move || {
                r2.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        let s2 = LeakOnPanic(Some(s.clone()));
        let t = thread::spawn(move || {
            // A handle made and dropped here too: the count's RMWs race
            // main's close and drop.
            let s4 = LeakOnPanic(Some(s2.clone()));
            let foreign = s2.add_close_action(|| ());
            let wrong = |r: Result<(), Error>, what: &str| {
                assert!(
                    matches!(r, Err(Error::WrongThread { .. })),
                    "a foreign thread could {what} a confined session: {r:?}"
                )
            };
            wrong(foreign, "register an action on");
            assert!(
                !s2.__withdraw_close_action(theirs),
                "a foreign thread withdrew a confined session's action"
            );
            wrong(s2.acquire().map(drop), "acquire");
            wrong(s2.enter().map(drop), "enter");
            wrong(s4.close(), "close");
            drop(s4);
            drop(s2);
            // Maybe the recycled core (if that drop was the last).
            let n = Session::confined();
            let g = n
                .acquire()
                .expect("a new confined session refuses its creator");
            drop(g);
            n.close().unwrap();
        });
        assert!(
            s.__withdraw_close_action(mine),
            "the owner could not withdraw"
        );
        s.close().unwrap();
        // Registered after the close: runs at once, and says Closed.
        let r3 = runs.clone();
        let late = s.add_close_action(move || {
            r3.fetch_add(100, Ordering::Relaxed);
        });
        assert_eq!(
            late,
            Err(Error::Closed),
            "an action registered after close was kept"
        );
        drop(s);
        // Maybe the recycled core.
        let n = Session::confined();
        drop(
            n.enter()
                .expect("a new confined session refuses its creator"),
        );
        n.close().unwrap();
        t.join().unwrap();
        assert_eq!(
            runs.load(Ordering::Relaxed),
            101,
            "withdrawn ran or kept lost"
        );
        assert!(!m.is_live());
    });
}

#[test]
fn loom_confined_foreign_add_vs_owner_close() {
    confined_foreign_add_vs_owner_close();
}

#[test]
#[should_panic(expected = "an action registered after close was kept")]
fn twin_confined_close_unmarked_is_caught() {
    with_twin(
        Twin::ConfinedCloseUnmarked,
        confined_foreign_add_vs_owner_close,
    );
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_no_owner_check_is_caught_as_a_race_on_the_unlocked_control() {
    with_twin(Twin::NoOwnerCheck, confined_foreign_add_vs_owner_close);
}

// ----- issue 13: a confined keep_alive released on another thread -------------------

/// Confined `k` keeps confined `c` alive (same owner, main) and reads `c`'s
/// memory in its own close action. A clone of `k` goes to another thread,
/// which drops it while main drops its own and then closes `c` (retrying
/// while `Busy`). Whichever handle of `k` is last closes `k` on its thread
/// (a lock-free `close_unique` of a confined core, maybe off its owner),
/// whose action reads `c`'s memory and then releases the hold (`unkeep`,
/// Release) — so `c`'s close (Acquire) frees only after that read. A
/// second thread drops a clone of `c` and another clone of `k` meanwhile,
/// so any of the three handles of `k` can be the last.
fn confined_keep_released_elsewhere() {
    model("confined_keep_released_elsewhere", || {
        let k = Session::confined();
        let (c, mc) = {
            let c = Session::confined();
            let m = loom_tests::Memory::new();
            loom_tests::free_on_close(&c, &m);
            (c, m)
        };
        k.keep_alive(&c).unwrap();
        let k2 = k.clone();
        let t = thread::spawn(move || {
            drop(k2);
            // If that drop was `k`'s last, this thread's pool holds its
            // core: a confined session of this thread must be its own.
            let n = Session::confined();
            drop(
                n.acquire()
                    .expect("a recycled confined core refuses its creator"),
            );
            n.close().unwrap();
        });
        let (k3, c3) = (k.clone(), c.clone());
        let t2 = thread::spawn(move || {
            drop(c3);
            drop(k3);
        });
        let m2 = mc.clone();
        // Registered after keep_alive (runs before the hold is released),
        // and after the spawn: an unlocked write of `k`'s control block
        // that only the handle count orders before a close_unique on `t`.
        k.add_close_action(move || m2.read()).unwrap();
        drop(k);
        loop {
            match c.close() {
                Ok(()) => break,
                Err(Error::Busy { .. }) => thread::yield_now(),
                Err(e) => panic!("confined close failed: {e}"),
            }
        }
        t.join().unwrap();
        t2.join().unwrap();
        assert!(!mc.is_live());
    });
}

#[test]
fn loom_confined_keep_released_elsewhere() {
    confined_keep_released_elsewhere();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_relaxed_unkeep_is_caught() {
    with_twin(Twin::RelaxedUnkeep, confined_keep_released_elsewhere);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_handle_drop_without_fence_is_caught_by_a_confined_keeper() {
    with_twin(Twin::HandleNoAcquireFence, confined_keep_released_elsewhere);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_relaxed_handle_drop_is_caught_by_a_confined_keeper() {
    with_twin(Twin::HandleRelaxedDrop, confined_keep_released_elsewhere);
}

// ----- issue 13: uniqueness of the last handle (std's Arc::drop idiom) ----------------

/// Two threads each register a close action (under the lock) and drop their
/// handle while main drops its own: the last drop (whichever thread) sees
/// its Release `fetch_sub` return 1, fences, and closes, resets and
/// recycles the core without the lock: every action runs exactly once and
/// nothing of the other threads' accesses races that. Then a new session on
/// main (maybe the recycled core) starts open and empty.
fn last_handles_drop_after_adding_actions() {
    model("last_handles_drop_after_adding_actions", || {
        let s = Session::shared();
        let runs = Arc::new(AtomicUsize::new(0));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s, r) = (s.clone(), runs.clone());
                thread::spawn(move || {
                    s.add_close_action(move || {
                        r.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                    drop(s);
                })
            })
            .collect();
        drop(s);
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(runs.load(Ordering::Relaxed), 2, "an action ran != once");
        let n = Session::shared();
        assert!(n.is_alive());
        assert_eq!(n.__pending_close_actions().unwrap(), 0);
        n.close().unwrap();
    });
}

#[test]
fn loom_last_handles_drop_after_adding_actions() {
    last_handles_drop_after_adding_actions();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_handle_drop_without_fence_is_caught() {
    with_twin(
        Twin::HandleNoAcquireFence,
        last_handles_drop_after_adding_actions,
    );
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_relaxed_handle_drop_is_caught() {
    with_twin(
        Twin::HandleRelaxedDrop,
        last_handles_drop_after_adding_actions,
    );
}

// ----- issue 13: close_timeout's time-out branch ----------------------------------

/// One thread uses the memory under a guard; main waits in
/// `close_blocking`; another thread calls `close_timeout(0)`, which fails
/// its try, times out (the shim times a passed deadline out at once) and
/// takes the time-out branch: it must not clear the WAITER bits main still
/// needs, or the guard's release never wakes main (a deadlock loom
/// reports). Exactly one close succeeds; nothing is freed under the guard.
/// (Main is the waiter: a spawned thread left blocked by a failing twin
/// would abort the test binary in loom's cleanup.)
fn close_timeout_times_out_beside_a_waiter() {
    model("close_timeout_times_out_beside_a_waiter", || {
        let (s, m) = session_with_memory();
        let (s1, m1) = (s.clone(), m.clone());
        let user = thread::spawn(move || {
            if let Ok(g) = s1.acquire() {
                m1.read();
                drop(g);
            }
        });
        let s2 = s.clone();
        let timed = thread::spawn(move || s2.close_timeout(std::time::Duration::ZERO));
        let rw = s.close_blocking();
        user.join().unwrap();
        let rt = timed.join().unwrap();
        assert!(
            matches!(rt, Ok(()) | Err(Error::Busy { .. }) | Err(Error::Closed)),
            "{rt:?}"
        );
        assert!(matches!(rw, Ok(()) | Err(Error::Closed)), "{rw:?}");
        let oks = [&rw, &rt].iter().filter(|r| r.is_ok()).count();
        assert_eq!(oks, 1, "close succeeded {oks} times: {rw:?} {rt:?}");
        assert!(!m.is_live());
    });
}

#[test]
fn loom_close_timeout_times_out_beside_a_waiter() {
    close_timeout_times_out_beside_a_waiter();
}

#[test]
#[should_panic(expected = "deadlock")]
fn twin_timeout_clearing_anothers_waiter_bit_is_caught() {
    with_twin(
        Twin::TimeoutClearsOthersWaiter,
        close_timeout_times_out_beside_a_waiter,
    );
}
