//! Integration tests of sessions (DESIGN.md semantics 1–4): every error path,
//! close actions, keep-alive chains, waiting closes and a close/acquire stress.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use memscope::session::current_thread;
use memscope::{Error, Session, SessionKind};

/// A counter bumped by a close action.
fn counting_action(s: &Session) -> Arc<AtomicUsize> {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    s.add_close_action(move || {
        n2.fetch_add(1, SeqCst);
    })
    .unwrap();
    n
}

/// Runs `f` on a fresh thread and returns its result.
fn on_other_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    thread::spawn(f).join().unwrap()
}

fn wrong_thread(owner: u64) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::WrongThread { owner: o, current } if *o == owner && *current != owner)
}

// ----- kinds and accessors ---------------------------------------------------

#[test]
fn kinds_and_owner_are_reported() {
    assert_eq!(Session::confined().kind(), SessionKind::Confined);
    assert_eq!(Session::shared().kind(), SessionKind::Shared);
    assert_eq!(Session::global().kind(), SessionKind::Global);
    assert_eq!(Session::auto().kind(), SessionKind::Auto);
    assert_eq!(Session::confined().owner(), Some(current_thread()));
    assert_eq!(Session::shared().owner(), None);
    assert_eq!(Session::global().owner(), None);
    assert_eq!(Session::auto().owner(), None);
}

#[test]
fn ids_are_unique_across_kinds_and_threads() {
    let mut ids: Vec<u64> = (0..20)
        .flat_map(|_| [Session::confined().id(), Session::shared().id()])
        .collect();
    ids.extend(on_other_thread(|| {
        (0..20)
            .map(|_| Session::confined().id())
            .collect::<Vec<_>>()
    }));
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate session ids");
}

#[test]
fn handles_compare_equal_only_for_the_same_session() {
    let a = Session::shared();
    let a2 = a.clone();
    assert_eq!(a, a2);
    assert_ne!(a, Session::shared());
    assert_eq!(Session::global(), Session::global());
}

#[test]
fn debug_names_id_kind_and_state() {
    let s = Session::shared();
    let g = s.acquire().unwrap();
    let d = format!("{s:?}");
    assert!(d.contains("Session"), "{d}");
    assert!(d.contains(&s.id().to_string()), "{d}");
    assert!(d.contains("Shared"), "{d}");
    assert!(d.contains("acquired: 1"), "{d}");
    assert!(format!("{g:?}").contains(&s.id().to_string()));
    drop(g);
    s.close().unwrap();
    assert!(format!("{s:?}").contains("alive: false"));
    let a = Session::shared();
    assert!(format!("{:?}", a.enter().unwrap()).contains("Access"));
}

#[test]
fn acquired_counts_guards_and_guard_names_its_session() {
    for s in [Session::shared(), Session::confined(), Session::auto()] {
        assert_eq!(s.acquired(), 0);
        let a = s.acquire().unwrap();
        let b = s.acquire().unwrap();
        assert_eq!(s.acquired(), 2);
        assert_eq!(a.session_id(), s.id());
        drop(a);
        assert_eq!(s.acquired(), 1);
        drop(b);
        assert_eq!(s.acquired(), 0);
    }
}

// ----- close: Busy, Closed, exactly once ------------------------------------

#[test]
fn close_is_busy_while_guards_are_held_and_frees_nothing() {
    for s in [Session::shared(), Session::confined()] {
        let ran = counting_action(&s);
        let guards: Vec<_> = (0..3).map(|_| s.acquire().unwrap()).collect();
        assert_eq!(s.close(), Err(Error::Busy { acquired: 3 }));
        assert_eq!(ran.load(SeqCst), 0);
        assert!(s.is_alive());
        // A failed close leaves the session fully usable.
        let more = s.acquire().unwrap();
        assert_eq!(s.close(), Err(Error::Busy { acquired: 4 }));
        drop(more);
        drop(guards);
        s.close().unwrap();
        assert_eq!(ran.load(SeqCst), 1);
    }
}

#[test]
fn close_succeeds_exactly_once() {
    for s in [Session::shared(), Session::confined()] {
        let ran = counting_action(&s);
        assert!(s.is_alive());
        s.close().unwrap();
        assert!(!s.is_alive());
        assert_eq!(s.close(), Err(Error::Closed));
        assert_eq!(s.close_blocking(), Err(Error::Closed));
        assert_eq!(
            s.close_timeout(Duration::from_millis(1)),
            Err(Error::Closed)
        );
        assert_eq!(ran.load(SeqCst), 1);
    }
}

#[test]
fn acquire_and_enter_fail_after_close() {
    for s in [Session::shared(), Session::confined()] {
        s.close().unwrap();
        assert_eq!(s.acquire().unwrap_err(), Error::Closed);
        assert_eq!(s.enter().unwrap_err(), Error::Closed);
        assert_eq!(s.acquired(), 0, "a failed acquire must not leave a count");
    }
}

#[test]
fn global_and_auto_sessions_are_not_closeable() {
    for (s, kind) in [
        (Session::global(), SessionKind::Global),
        (Session::auto(), SessionKind::Auto),
    ] {
        let e = Error::NotCloseable { kind };
        assert_eq!(s.close(), Err(e.clone()));
        assert_eq!(s.close_blocking(), Err(e.clone()));
        assert_eq!(s.close_timeout(Duration::from_millis(1)), Err(e));
        assert!(s.is_alive());
        let _g = s.acquire().unwrap();
        let _a = s.enter().unwrap();
    }
}

#[test]
fn global_session_is_usable_from_every_thread() {
    let g = Session::global();
    on_other_thread(move || {
        let _g = g.acquire().unwrap();
        let _a = g.enter().unwrap();
        assert!(g.is_alive());
    });
}

// ----- confined: WrongThread -------------------------------------------------

#[test]
fn confined_session_rejects_other_threads() {
    let s = Session::confined();
    let owner = current_thread();
    let ran = counting_action(&s);
    let s2 = s.clone();
    let errors = on_other_thread(move || {
        let mut errs = vec![
            s2.acquire().unwrap_err(),
            s2.enter().unwrap_err(),
            s2.close().unwrap_err(),
            s2.close_blocking().unwrap_err(),
            s2.close_timeout(Duration::from_millis(1)).unwrap_err(),
            Session::with_acquired(&[&s2], || ()).unwrap_err(),
        ];
        // Reading its state is allowed from anywhere.
        assert!(s2.is_alive());
        assert_eq!(s2.owner(), Some(owner));
        errs.push(Session::confined().keep_alive(&s2).unwrap_err());
        errs
    });
    for e in &errors {
        assert!(wrong_thread(owner)(e), "{e:?}");
    }
    assert_eq!(ran.load(SeqCst), 0);
    assert!(s.is_alive());
    s.close().unwrap();
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn wrong_thread_error_names_both_threads() {
    let s = Session::confined();
    let owner = current_thread();
    let (e, me) = on_other_thread(move || (s.acquire().unwrap_err(), current_thread()));
    assert_eq!(e, Error::WrongThread { owner, current: me });
}

#[test]
fn confined_session_is_closed_by_owner_after_foreign_attempts() {
    let s = Session::confined();
    let s2 = s.clone();
    on_other_thread(move || assert!(s2.close().is_err()));
    s.close().unwrap();
    let s3 = s.clone();
    // Closed is reported after the thread check.
    let e = on_other_thread(move || s3.acquire().unwrap_err());
    assert!(matches!(e, Error::WrongThread { .. }));
    assert_eq!(s.acquire().unwrap_err(), Error::Closed);
}

#[test]
fn confined_close_blocking_with_own_guard_is_busy_not_a_deadlock() {
    // Only the owner can release a confined guard, and the owner is the one
    // waiting: waiting could never end.
    let s = Session::confined();
    let g = s.acquire().unwrap();
    assert_eq!(s.close_blocking(), Err(Error::Busy { acquired: 1 }));
    assert_eq!(
        s.close_timeout(Duration::from_secs(5)),
        Err(Error::Busy { acquired: 1 })
    );
    drop(g);
    s.close_blocking().unwrap();
}

// ----- close actions ---------------------------------------------------------

#[test]
fn close_actions_run_in_reverse_order_exactly_once() {
    for s in [Session::shared(), Session::confined()] {
        let log = Arc::new(Mutex::new(Vec::new()));
        for i in 0..5 {
            let log = log.clone();
            s.add_close_action(move || log.lock().unwrap().push(i))
                .unwrap();
        }
        s.close().unwrap();
        assert_eq!(*log.lock().unwrap(), [4, 3, 2, 1, 0]);
        assert_eq!(s.close(), Err(Error::Closed));
        drop(s);
        assert_eq!(log.lock().unwrap().len(), 5, "an action ran twice");
    }
}

#[test]
fn close_action_added_after_close_runs_at_once() {
    let s = Session::shared();
    s.close().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    assert_eq!(
        s.add_close_action(move || {
            r.fetch_add(1, SeqCst);
        }),
        Err(Error::Closed)
    );
    assert_eq!(ran.load(SeqCst), 1);
    drop(s);
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn panicking_close_action_does_not_stop_the_others() {
    let s = Session::shared();
    let before = counting_action(&s);
    s.add_close_action(|| panic!("boom")).unwrap();
    let after = counting_action(&s);
    assert_eq!(
        s.close(),
        Err(Error::CloseActionPanicked {
            count: 1,
            first: "boom".into()
        })
    );
    assert_eq!(before.load(SeqCst), 1);
    assert_eq!(after.load(SeqCst), 1);
    // The session is closed nonetheless.
    assert!(!s.is_alive());
    assert_eq!(s.close(), Err(Error::Closed));
}

#[test]
fn close_reports_the_first_panic_to_run_and_counts_all() {
    let s = Session::shared();
    s.add_close_action(|| panic!("registered first")).unwrap();
    let ran = counting_action(&s);
    let n = 2;
    s.add_close_action(move || panic!("registered {}", n))
        .unwrap();
    // Newest first: "registered 2" (a String payload) runs first.
    assert_eq!(
        s.close(),
        Err(Error::CloseActionPanicked {
            count: 2,
            first: "registered 2".into()
        })
    );
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn non_string_panic_payload_is_reported() {
    let s = Session::shared();
    s.add_close_action(|| std::panic::panic_any(42u32)).unwrap();
    assert!(matches!(
        s.close(),
        Err(Error::CloseActionPanicked { count: 1, .. })
    ));
}

#[test]
fn close_action_added_from_another_thread_runs_on_close() {
    let s = Session::shared();
    let s2 = s.clone();
    let ran = on_other_thread(move || counting_action(&s2));
    s.close().unwrap();
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn confined_session_rejects_close_actions_from_other_threads() {
    let s = Session::confined();
    let s2 = s.clone();
    let owner = current_thread();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let e = on_other_thread(move || {
        s2.add_close_action(move || {
            r.fetch_add(1, SeqCst);
        })
        .unwrap_err()
    });
    assert!(wrong_thread(owner)(&e), "{e:?}");
    // A rejected action is dropped, not run and not kept.
    assert_eq!(ran.load(SeqCst), 0);
    s.close().unwrap();
    assert_eq!(ran.load(SeqCst), 0);
}

// ----- drop closes -----------------------------------------------------------

#[test]
fn auto_session_closes_when_its_last_handle_drops() {
    let s = Session::auto();
    let ran = counting_action(&s);
    let clones: Vec<_> = (0..3).map(|_| s.clone()).collect();
    drop(s);
    assert_eq!(ran.load(SeqCst), 0);
    let last = on_other_thread(move || {
        let mut c = clones;
        let last = c.pop().unwrap();
        drop(c);
        last
    });
    assert_eq!(ran.load(SeqCst), 0);
    drop(last);
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn unclosed_sessions_run_their_actions_when_the_last_handle_drops() {
    for s in [Session::shared(), Session::confined()] {
        let ran = counting_action(&s);
        let s2 = s.clone();
        drop(s);
        assert_eq!(ran.load(SeqCst), 0);
        drop(s2);
        assert_eq!(ran.load(SeqCst), 1);
    }
}

#[test]
fn unclosed_confined_session_dropped_on_another_thread_runs_its_actions() {
    let s = Session::confined();
    let ran = counting_action(&s);
    on_other_thread(move || drop(s));
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn dropping_a_closed_session_does_not_rerun_actions() {
    let s = Session::shared();
    let ran = counting_action(&s);
    s.close().unwrap();
    drop(s);
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn panicking_action_in_drop_is_contained() {
    let s = Session::shared();
    let ran = counting_action(&s);
    s.add_close_action(|| panic!("in drop")).unwrap();
    drop(s); // must not unwind out of drop
    assert_eq!(ran.load(SeqCst), 1);
}

// ----- with_acquired ---------------------------------------------------------

#[test]
fn with_acquired_holds_every_session_for_the_call() {
    let (a, b) = (Session::shared(), Session::confined());
    let r = Session::with_acquired(&[&a, &b], || {
        assert_eq!(a.close(), Err(Error::Busy { acquired: 1 }));
        assert_eq!(b.close(), Err(Error::Busy { acquired: 1 }));
        // Nested acquires of the same sessions stack.
        Session::with_acquired(&[&a, &a], || assert_eq!(a.acquired(), 3)).unwrap();
        "done"
    });
    assert_eq!(r, Ok("done"));
    assert_eq!((a.acquired(), b.acquired()), (0, 0));
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn with_acquired_releases_taken_guards_when_one_fails() {
    let (a, b, c) = (Session::shared(), Session::shared(), Session::shared());
    b.close().unwrap();
    let called = AtomicBool::new(false);
    let r = Session::with_acquired(&[&a, &c, &b], || called.store(true, SeqCst));
    assert_eq!(r, Err(Error::Closed));
    assert!(!called.load(SeqCst));
    assert_eq!((a.acquired(), c.acquired()), (0, 0));
    a.close().unwrap();
    c.close().unwrap();
}

#[test]
fn with_acquired_of_nothing_just_runs() {
    assert_eq!(Session::with_acquired(&[], || 7), Ok(7));
}

// ----- waiting closes --------------------------------------------------------

#[test]
fn close_blocking_waits_for_guards_held_by_other_threads() {
    let s = Session::shared();
    let released = Arc::new(AtomicBool::new(false));
    let ran_after_release = Arc::new(AtomicBool::new(false));
    {
        let (r, a) = (released.clone(), ran_after_release.clone());
        s.add_close_action(move || a.store(r.load(SeqCst), SeqCst))
            .unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (s2, r2) = (s.clone(), released.clone());
    let worker = thread::spawn(move || {
        let g = s2.acquire().unwrap();
        tx.send(()).unwrap();
        // Hold the guard until the main thread has seen `Busy` (a sleep
        // alone made this depend on the schedule: Miri's seed 7 let the
        // guard go before the first close).
        go_rx.recv().unwrap();
        thread::sleep(Duration::from_millis(20)); // let close_blocking start waiting
        r2.store(true, SeqCst);
        drop(g);
    });
    rx.recv().unwrap();
    assert_eq!(s.close(), Err(Error::Busy { acquired: 1 }));
    go_tx.send(()).unwrap();
    s.close_blocking().unwrap();
    assert!(
        released.load(SeqCst),
        "closed before the guard was released"
    );
    assert!(ran_after_release.load(SeqCst));
    worker.join().unwrap();
}

#[test]
fn close_timeout_gives_busy_after_the_timeout() {
    let s = Session::shared();
    let (tx, rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let s2 = s.clone();
    let worker = thread::spawn(move || {
        let g = s2.acquire().unwrap();
        tx.send(()).unwrap();
        done_rx.recv().unwrap();
        drop(g);
    });
    rx.recv().unwrap();
    let t0 = Instant::now();
    assert_eq!(
        s.close_timeout(Duration::from_millis(30)),
        Err(Error::Busy { acquired: 1 })
    );
    assert!(t0.elapsed() >= Duration::from_millis(30));
    assert!(s.is_alive());
    done_tx.send(()).unwrap();
    worker.join().unwrap();
    s.close_timeout(Duration::from_millis(30)).unwrap();
}

#[test]
fn close_timeout_succeeds_when_guards_drain_in_time() {
    let s = Session::shared();
    let (tx, rx) = mpsc::channel();
    let s2 = s.clone();
    let worker = thread::spawn(move || {
        let g = s2.acquire().unwrap();
        tx.send(()).unwrap();
        thread::sleep(Duration::from_millis(20));
        drop(g);
    });
    rx.recv().unwrap();
    s.close_timeout(Duration::from_secs(60)).unwrap();
    worker.join().unwrap();
    assert!(!s.is_alive());
}

#[test]
fn huge_timeout_does_not_overflow() {
    let s = Session::shared();
    s.close_timeout(Duration::MAX).unwrap();
}

#[test]
fn concurrent_blocking_closes_succeed_exactly_once() {
    let s = Session::shared();
    let ran = counting_action(&s);
    let g = s.acquire().unwrap();
    let barrier = Arc::new(Barrier::new(3));
    let closers: Vec<_> = (0..2)
        .map(|_| {
            let (s, b) = (s.clone(), barrier.clone());
            thread::spawn(move || {
                b.wait();
                s.close_blocking()
            })
        })
        .collect();
    barrier.wait();
    thread::sleep(Duration::from_millis(20));
    drop(g);
    let mut results: Vec<_> = closers.into_iter().map(|t| t.join().unwrap()).collect();
    results.sort_by_key(|r| r.is_err());
    assert_eq!(results, [Ok(()), Err(Error::Closed)]);
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn plain_access_does_not_make_close_fail_close_waits_for_it() {
    let s = Session::shared();
    let exited = Arc::new(AtomicBool::new(false));
    let seen_exited = Arc::new(AtomicBool::new(false));
    {
        let (e, seen) = (exited.clone(), seen_exited.clone());
        s.add_close_action(move || seen.store(e.load(SeqCst), SeqCst))
            .unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let (s2, e2) = (s.clone(), exited.clone());
    let worker = thread::spawn(move || {
        let a = s2.enter().unwrap();
        tx.send(()).unwrap();
        thread::sleep(Duration::from_millis(30));
        e2.store(true, SeqCst);
        drop(a);
    });
    rx.recv().unwrap();
    s.close().unwrap(); // not Busy: waits for the access instead
    assert!(seen_exited.load(SeqCst), "freed during a plain access");
    worker.join().unwrap();
}

/// Plain accesses nest past the per-thread fast slots (issue 15: four
/// slots, then the shard word's read-modify-write path): every depth, on
/// one session and across several, is counted, so a close from inside is
/// `InUse` and a close from another thread waits for the outermost one.
#[test]
fn plain_accesses_nest_past_the_fast_slots_and_close_waits_for_every_one() {
    for depth in 1..=7 {
        let s = Session::shared();
        let others: Vec<Session> = (0..depth).map(|_| Session::shared()).collect();
        // Fill some slots with accesses to other sessions first, then nest
        // on `s` itself: the accesses on `s` are on both paths.
        let outer: Vec<_> = others.iter().map(|o| o.enter().unwrap()).collect();
        let mut mine: Vec<_> = (0..depth).map(|_| s.enter().unwrap()).collect();
        assert_eq!(s.close(), Err(Error::InUse), "depth {depth}");
        // Drop in an order that is not LIFO.
        while !mine.is_empty() {
            let i = mine.len() / 2;
            drop(mine.remove(i));
            if !mine.is_empty() {
                assert_eq!(s.close(), Err(Error::InUse), "depth {depth}");
            }
        }
        drop(outer);
        // Now another thread's close waits for an access held here.
        let a = s.enter().unwrap();
        let b = others[0].enter().unwrap();
        let freed = Arc::new(AtomicBool::new(false));
        let f2 = freed.clone();
        s.add_close_action(move || f2.store(true, SeqCst)).unwrap();
        let s2 = s.clone();
        let closer = thread::spawn(move || s2.close());
        thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 5 }));
        assert!(!freed.load(SeqCst), "freed under a plain access");
        drop(b);
        drop(a);
        closer.join().unwrap().unwrap();
        assert!(freed.load(SeqCst));
        assert!(s.enter().is_err());
        for o in others {
            o.close().unwrap();
        }
    }
}

/// Short-lived threads each take a fast slot record and give it back at
/// exit; a session entered from all of them still closes, and accesses of
/// a later thread on a reused record are seen by close.
#[test]
fn plain_accesses_from_many_short_lived_threads_then_close() {
    let s = Session::shared();
    let n = if cfg!(miri) { 4 } else { 64 };
    for i in 0..n {
        let s2 = s.clone();
        thread::spawn(move || {
            let a = s2.enter().unwrap();
            let b = s2.enter().unwrap();
            drop(a);
            drop(b);
            if i % 2 == 0 {
                // Leave with nothing held: the record goes back.
                return;
            }
            drop(s2.enter().unwrap());
        })
        .join()
        .unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let s2 = s.clone();
    let holder = thread::spawn(move || {
        let a = s2.enter().unwrap();
        tx.send(()).unwrap();
        go_rx.recv().unwrap();
        drop(a);
    });
    rx.recv().unwrap();
    let s3 = s.clone();
    let closer = thread::spawn(move || s3.close());
    thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 5 }));
    assert!(!closer.is_finished(), "close did not wait for the access");
    go_tx.send(()).unwrap();
    holder.join().unwrap();
    closer.join().unwrap().unwrap();
    assert_eq!(s.enter().unwrap_err(), Error::Closed);
}

// ----- keep_alive ------------------------------------------------------------

#[test]
fn keep_alive_holds_the_other_session_until_this_one_closes() {
    let (outer, inner) = (Session::shared(), Session::shared());
    outer.keep_alive(&inner).unwrap();
    assert_eq!(inner.close(), Err(Error::Busy { acquired: 1 }));
    outer.close().unwrap();
    inner.close().unwrap();
}

#[test]
fn keep_alive_chains_release_in_order() {
    let (a, b, c) = (Session::shared(), Session::shared(), Session::shared());
    a.keep_alive(&b).unwrap();
    b.keep_alive(&c).unwrap();
    assert_eq!(c.close(), Err(Error::Busy { acquired: 1 }));
    assert_eq!(b.close(), Err(Error::Busy { acquired: 1 }));
    a.close().unwrap();
    assert_eq!(c.close(), Err(Error::Busy { acquired: 1 }));
    b.close().unwrap();
    c.close().unwrap();
}

#[test]
fn keep_alive_is_released_when_the_keeper_is_dropped() {
    let (outer, inner) = (Session::auto(), Session::shared());
    outer.keep_alive(&inner).unwrap();
    assert!(inner.close().is_err());
    drop(outer);
    inner.close().unwrap();
}

#[test]
fn keep_alive_errors() {
    let s = Session::shared();
    assert!(matches!(
        s.keep_alive(&s.clone()),
        Err(Error::InvalidArgument { .. })
    ));
    // The other session is closed.
    let closed = Session::shared();
    closed.close().unwrap();
    assert_eq!(s.keep_alive(&closed), Err(Error::Closed));
    // This session is closed: nothing stays held.
    let other = Session::shared();
    let done = Session::shared();
    done.close().unwrap();
    assert_eq!(done.keep_alive(&other), Err(Error::Closed));
    assert_eq!(other.acquired(), 0);
    other.close().unwrap();
    // A shared session cannot hold a confined one (it could close elsewhere).
    let conf = Session::confined();
    let me = current_thread();
    assert!(matches!(
        s.keep_alive(&conf),
        Err(Error::WrongThread { owner, .. }) if owner == me
    ));
    assert_eq!(conf.acquired(), 0);
    s.close().unwrap();
    conf.close().unwrap();
}

#[test]
fn confined_keep_alive_of_confined_on_the_same_thread() {
    let (outer, inner) = (Session::confined(), Session::confined());
    outer.keep_alive(&inner).unwrap();
    assert_eq!(inner.close(), Err(Error::Busy { acquired: 1 }));
    outer.close().unwrap();
    inner.close().unwrap();
}

#[test]
fn confined_keeper_dropped_on_another_thread_releases_its_confined_hold() {
    let (outer, inner) = (Session::confined(), Session::confined());
    outer.keep_alive(&inner).unwrap();
    // The owner keeps acquiring and releasing `inner` while another thread
    // drops the last handle of `outer` (which releases the hold).
    let barrier = Arc::new(Barrier::new(2));
    let b2 = barrier.clone();
    let t = thread::spawn(move || {
        b2.wait();
        drop(outer);
    });
    barrier.wait();
    for _ in 0..if cfg!(miri) { 10 } else { 10_000 } {
        drop(inner.acquire().unwrap());
    }
    t.join().unwrap();
    assert_eq!(inner.acquired(), 0);
    inner.close().unwrap();
}

#[test]
fn confined_cannot_keep_a_confined_session_of_another_thread() {
    let inner = Session::confined();
    let owner = current_thread();
    let i2 = inner.clone();
    let e = on_other_thread(move || Session::confined().keep_alive(&i2).unwrap_err());
    assert!(matches!(e, Error::WrongThread { owner: o, .. } if o == owner));
    assert_eq!(inner.acquired(), 0);
}

#[test]
fn global_keeper_keeps_forever() {
    let inner = Session::shared();
    Session::global().keep_alive(&inner).unwrap();
    assert_eq!(inner.close(), Err(Error::Busy { acquired: 1 }));
}

// ----- stress ----------------------------------------------------------------

/// How many closes met a guard of the other thread (evidence of real races).
static CONTENDED: AtomicUsize = AtomicUsize::new(0);
/// How many acquires or plain accesses failed with Closed.
static LATE: AtomicUsize = AtomicUsize::new(0);

/// One short-lived session with probes for the invariants.
struct Probe {
    session: Session,
    /// How many times the close action ran.
    runs: Arc<AtomicUsize>,
    /// Set by the close action (the memory is "freed").
    freed: Arc<AtomicBool>,
    /// Set right after a close returned `Ok`.
    closed_ok: AtomicBool,
    /// How many closes returned `Ok`.
    oks: AtomicUsize,
}

impl Probe {
    fn new() -> Probe {
        let session = Session::shared();
        let runs = Arc::new(AtomicUsize::new(0));
        let freed = Arc::new(AtomicBool::new(false));
        let (r, f) = (runs.clone(), freed.clone());
        session
            .add_close_action(move || {
                f.store(true, SeqCst);
                r.fetch_add(1, SeqCst);
            })
            .unwrap();
        Probe {
            session,
            runs,
            freed,
            closed_ok: AtomicBool::new(false),
            oks: AtomicUsize::new(0),
        }
    }

    /// One acquire/release (or enter/exit); returns whether it succeeded.
    fn use_once(&self, plain: bool) -> bool {
        let was_closed = self.closed_ok.load(SeqCst);
        let ok = if plain {
            self.session.enter().map(drop).is_ok()
        } else {
            match self.session.acquire() {
                Ok(g) => {
                    assert!(!self.freed.load(SeqCst), "memory freed under a guard");
                    assert!(
                        !self.closed_ok.load(SeqCst),
                        "close succeeded under a guard"
                    );
                    drop(g);
                    true
                }
                Err(Error::Closed) => false,
                Err(e) => panic!("unexpected {e}"),
            }
        };
        assert!(
            !(ok && was_closed),
            "acquire succeeded after close returned Ok"
        );
        if !ok {
            LATE.fetch_add(1, SeqCst);
        }
        ok
    }

    fn close(&self, blocking: bool) {
        let r = if blocking {
            self.session.close_blocking()
        } else {
            self.session.close()
        };
        match r {
            Ok(()) => {
                assert_eq!(
                    self.runs.load(SeqCst),
                    1,
                    "close returned before its action ran"
                );
                self.closed_ok.store(true, SeqCst);
                self.oks.fetch_add(1, SeqCst);
            }
            Err(Error::Busy { acquired }) => {
                assert!(acquired > 0);
                CONTENDED.fetch_add(1, SeqCst);
            }
            Err(Error::Closed) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

/// Aborts the process if dropped during a panic.
struct AbortOnPanic;

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("stress worker panicked: aborting so the test does not hang");
            std::process::abort();
        }
    }
}

#[test]
fn stress_acquire_release_close_races() {
    let (batches, per_batch) = if cfg!(miri) { (2, 4) } else { (200, 128) };
    const USES: usize = 2;
    let ops = AtomicUsize::new(0);
    let barrier = Barrier::new(2);
    let batch: Mutex<Arc<Vec<Probe>>> = Mutex::new(Arc::new(Vec::new()));
    thread::scope(|sc| {
        for me in 0..2usize {
            let (ops, barrier, batch) = (&ops, &barrier, &batch);
            sc.spawn(move || {
                // A failed assertion on one side would leave the other waiting
                // at a barrier forever: fail loudly instead of hanging.
                let _abort = AbortOnPanic;
                for round in 0..batches {
                    if me == 0 {
                        *batch.lock().unwrap() =
                            Arc::new((0..per_batch).map(|_| Probe::new()).collect());
                    }
                    barrier.wait();
                    let probes = batch.lock().unwrap().clone();
                    let mut n = 0;
                    for (i, p) in probes.iter().enumerate() {
                        // Thread 0 closes early, thread 1 late, so both orders race.
                        let close_at = if me == 0 {
                            i % (USES + 1)
                        } else {
                            USES - i % (USES + 1)
                        };
                        for k in 0..=USES {
                            if k == close_at {
                                p.close(me == 1 && round % 4 == 0);
                                n += 1;
                            }
                            p.use_once(k == 1 && i % 3 == 0);
                            n += 2;
                        }
                        if me == 1 {
                            // Both racing closes may have met the other's
                            // guard (Busy): a waiting close settles it.
                            p.close(true);
                            n += 1;
                        }
                    }
                    ops.fetch_add(n, SeqCst);
                    barrier.wait();
                    if me == 0 {
                        for p in probes.iter() {
                            assert_eq!(p.oks.load(SeqCst), 1, "close succeeded != once");
                            assert_eq!(p.runs.load(SeqCst), 1, "close action ran != once");
                            assert!(!p.session.is_alive());
                        }
                    }
                    barrier.wait();
                }
            });
        }
    });
    let total = ops.load(SeqCst);
    println!(
        "stress: {total} operations, {} closes met the other thread's guard, {} uses came after close",
        CONTENDED.load(SeqCst),
        LATE.load(SeqCst)
    );
    if !cfg!(miri) {
        assert!(total >= 100_000, "only {total} operations");
    }
}

// ----- recycled cores ----------------------------------------------------------

#[test]
fn a_new_session_never_inherits_state_from_a_dropped_one() {
    for kind in [SessionKind::Confined, SessionKind::Shared] {
        let make = || match kind {
            SessionKind::Confined => Session::confined(),
            _ => Session::shared(),
        };
        let mut ids = Vec::new();
        let mut counters = Vec::new();
        for round in 0..20 {
            let s = make();
            assert!(s.is_alive());
            assert_eq!(s.acquired(), 0);
            ids.push(s.id());
            counters.push(counting_action(&s));
            let g = s.acquire().unwrap();
            match round % 3 {
                0 => {
                    drop(g);
                    s.close().unwrap();
                }
                1 => drop(g), // dropped unclosed: closes on drop
                // A leaked guard: the last handle's drop still closes it,
                // and the reused core starts from zero.
                _ => std::mem::forget(g),
            }
            drop(s);
        }
        for (i, c) in counters.iter().enumerate() {
            assert_eq!(c.load(SeqCst), 1, "session {i}'s action");
        }
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}

#[test]
fn confined_core_dropped_on_another_thread_serves_that_thread() {
    let s = Session::confined();
    on_other_thread(move || {
        drop(s);
        let mine = Session::confined();
        assert_eq!(mine.owner(), Some(current_thread()));
        drop(mine.acquire().unwrap());
        mine.close().unwrap();
    });
    let again = Session::confined();
    assert_eq!(again.owner(), Some(current_thread()));
    again.close().unwrap();
}

/// A panic payload whose own drop panics (issue 12, UB item 5).
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the payload's drop panicked");
    }
}

fn throw_payload_that_panics_on_drop() {
    std::panic::panic_any(PanicsOnDrop);
}

#[test]
fn close_action_panic_payload_that_panics_on_drop_runs_remaining_actions() {
    for s in [Session::shared(), Session::confined()] {
        let before = counting_action(&s);
        s.add_close_action(throw_payload_that_panics_on_drop)
            .unwrap();
        let after = counting_action(&s);
        // The drop of the payload happens inside close's catch: close returns.
        let r = s.close();
        assert!(
            matches!(r, Err(Error::CloseActionPanicked { count: 1, .. })),
            "{r:?}"
        );
        assert_eq!(before.load(SeqCst), 1, "{:?}", s.kind());
        assert_eq!(after.load(SeqCst), 1, "{:?}", s.kind());
        assert!(!s.is_alive());
        assert_eq!(s.close(), Err(Error::Closed));
    }
    // Dropping the last handle of an unclosed session contains it too.
    let s = Session::shared();
    let before = counting_action(&s);
    s.add_close_action(throw_payload_that_panics_on_drop)
        .unwrap();
    drop(s);
    assert_eq!(before.load(SeqCst), 1);
}

#[test]
fn recycled_core_runs_no_stale_close_actions() {
    use memscope::alloc::{Arena, SegmentAllocator};
    for round in 0..3 {
        // A confined session whose close meets a payload that panics on drop,
        // with an embedded arena (the first arena of a confined session).
        let s1 = Session::confined();
        let a1 = Arena::new(s1.clone()).unwrap();
        let seg1 = a1.allocate(16, 8).unwrap();
        let _ = seg1;
        let first = counting_action(&s1);
        s1.add_close_action(throw_payload_that_panics_on_drop)
            .unwrap();
        assert!(matches!(
            s1.close(),
            Err(Error::CloseActionPanicked { count: 1, .. })
        ));
        assert_eq!(first.load(SeqCst), 1, "round {round}");
        assert_eq!(a1.allocate(8, 8).unwrap_err(), Error::Closed);
        drop(a1);
        drop(s1);
        // The next confined session on this thread (likely the same core,
        // recycled) runs only its own actions.
        let s2 = Session::confined();
        let a2 = Arena::new(s2.clone()).unwrap();
        let other = Arena::new(Session::shared()).unwrap();
        let mut live = other.allocate(32, 8).unwrap();
        live.fill(0xAB).unwrap();
        let second = counting_action(&s2);
        s2.close().unwrap();
        assert_eq!(first.load(SeqCst), 1, "round {round}: a stale action ran");
        assert_eq!(second.load(SeqCst), 1, "round {round}");
        // The arena of the recycled core is closed by its close.
        assert_eq!(a2.allocate(8, 8).unwrap_err(), Error::Closed);
        assert!(live.to_vec().unwrap().iter().all(|&b| b == 0xAB));
        drop(a2);
        drop(s2);
    }
}

#[test]
fn guard_of_a_session_does_not_unlock_a_segment_of_another_with_a_colliding_thread_id() {
    use memscope::alloc::{Arena, SegmentAllocator};
    // Thread ids above 2^24 used to collide with low ones in session ids
    // (`thread << 40 | count`, issue 12 UB item 6): make thread B's id
    // thread A's plus 2^24, so both first sessions got the same id.
    let (a, ta) = thread::spawn(|| (Session::shared(), current_thread()))
        .join()
        .unwrap();
    memscope::session::__advance_thread_ids(ta + (1 << 24));
    let (b, tb) = thread::spawn(|| (Session::shared(), current_thread()))
        .join()
        .unwrap();
    assert!(tb >= ta + (1 << 24));
    assert_ne!(a.id(), b.id(), "session ids repeat");
    let arena = Arena::new(b.clone()).unwrap();
    let mut seg = arena.allocate(8, 8).unwrap();
    let g = a.acquire().unwrap();
    assert!(matches!(
        seg.guarded(&g),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        seg.guarded_mut(&g),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        seg.atomics(&g),
        Err(Error::InvalidArgument { .. })
    ));
    // Its own session's guard does.
    drop(g);
    let gb = b.acquire().unwrap();
    assert!(seg.guarded(&gb).is_ok());
}

fn is_cycle(r: Result<(), Error>) -> bool {
    matches!(r, Err(Error::InvalidArgument { reason }) if reason.contains("cycle"))
}

#[test]
fn keep_alive_refuses_a_cycle_of_two() {
    for (a, b) in [
        (Session::shared(), Session::shared()),
        (Session::confined(), Session::confined()),
        (Session::auto(), Session::shared()),
    ] {
        let ran = counting_action(&a);
        a.keep_alive(&b).unwrap();
        assert!(is_cycle(b.keep_alive(&a)), "{:?}", a.kind());
        // The refused hold was not taken: `a` closes and its actions run.
        assert_eq!(a.acquired(), 0);
        if a.kind() != SessionKind::Auto {
            a.close().unwrap();
            assert_eq!(ran.load(SeqCst), 1);
            b.close().unwrap();
        } else {
            drop(a);
            assert_eq!(ran.load(SeqCst), 1);
            b.close().unwrap();
        }
    }
}

#[test]
fn keep_alive_refuses_a_longer_cycle() {
    let (a, b, c) = (Session::shared(), Session::shared(), Session::shared());
    let ran = counting_action(&c);
    a.keep_alive(&b).unwrap();
    b.keep_alive(&c).unwrap();
    assert!(is_cycle(c.keep_alive(&a)));
    assert_eq!(a.acquired(), 0);
    // A diamond is no cycle.
    a.keep_alive(&c).unwrap();
    assert_eq!(c.acquired(), 2);
    // Everything still closes, keepers first.
    a.close().unwrap();
    b.close().unwrap();
    // With its keepers closed, `c` may keep a new session that keeps none.
    let d = Session::shared();
    c.keep_alive(&d).unwrap();
    assert!(is_cycle(d.keep_alive(&c)));
    c.close().unwrap();
    assert_eq!(ran.load(SeqCst), 1);
    d.close().unwrap();
}

#[test]
fn keep_alive_refuses_itself_through_another_handle() {
    let s = Session::shared();
    assert!(matches!(
        s.keep_alive(&s.clone()),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(s.acquired(), 0);
    s.close().unwrap();
}

#[test]
fn concurrent_opposite_keep_alives_never_both_succeed() {
    for _ in 0..if cfg!(miri) { 4 } else { 200 } {
        let (a, b) = (Session::shared(), Session::shared());
        let barrier = Arc::new(Barrier::new(2));
        let (a2, b2, bar2) = (a.clone(), b.clone(), barrier.clone());
        let t = thread::spawn(move || {
            bar2.wait();
            b2.keep_alive(&a2)
        });
        barrier.wait();
        let mine = a.keep_alive(&b);
        let theirs = t.join().unwrap();
        assert!(mine.is_ok() != theirs.is_ok(), "{mine:?} {theirs:?}");
        // Whichever won, both close in order.
        if mine.is_ok() {
            a.close().unwrap();
            b.close().unwrap();
        } else {
            b.close().unwrap();
            a.close().unwrap();
        }
    }
}

#[test]
fn keeping_the_global_session_alive_is_a_no_op() {
    let s = Session::shared();
    let g = Session::global();
    for _ in 0..100 {
        s.keep_alive(&g).unwrap();
    }
    s.close().unwrap();
    assert_eq!(s.keep_alive(&g), Err(Error::Closed));
}

#[test]
fn global_keep_alive_of_the_same_session_holds_it_once() {
    let s = Session::shared();
    for _ in 0..100 {
        Session::global().keep_alive(&s).unwrap();
    }
    assert_eq!(s.acquired(), 1);
    assert_eq!(s.close(), Err(Error::Busy { acquired: 1 }));
}

// ----- withdrawn close actions --------------------------------------------------

/// Iterations for the growth tests (Miri is slow; the bound is what matters).
const GROWTH_ROUNDS: usize = if cfg!(miri) { 300 } else { 100_000 };

/// Other tests of this binary may register a few actions on the global
/// session meanwhile.
const GLOBAL_SLACK: usize = 64;

#[test]
fn dropped_arenas_do_not_grow_the_global_sessions_close_actions() {
    use memscope::alloc::{Arena, SegmentAllocator};
    let g = Session::global();
    let before = g.__pending_close_actions().unwrap();
    for _ in 0..GROWTH_ROUNDS {
        let a = Arena::new(Session::global()).unwrap();
        let _ = a.allocate(16, 8).unwrap();
        drop(a);
    }
    assert!(g.__pending_close_actions().unwrap() <= before + GLOBAL_SLACK);
    // Interleaved lifetimes (not LIFO) stay bounded too.
    let mut keep = Arena::new(Session::global()).unwrap();
    for _ in 0..GROWTH_ROUNDS / 10 {
        let next = Arena::new(Session::global()).unwrap();
        drop(core::mem::replace(&mut keep, next));
    }
    drop(keep);
    assert!(g.__pending_close_actions().unwrap() <= before + GLOBAL_SLACK);
}

#[test]
fn dropped_malloc_allocators_do_not_grow_the_global_sessions_close_actions() {
    use memscope::alloc::{MallocAllocator, SegmentAllocator};
    let g = Session::global();
    let before = g.__pending_close_actions().unwrap();
    for _ in 0..GROWTH_ROUNDS {
        let m = MallocAllocator::new(Session::global()).unwrap();
        let _ = m.allocate(16, 8).unwrap();
        drop(m);
    }
    assert!(g.__pending_close_actions().unwrap() <= before + GLOBAL_SLACK);
}

#[test]
fn dropped_allocators_unregister_from_open_sessions_of_every_kind() {
    use memscope::alloc::{Arena, MallocAllocator};
    for s in [Session::shared(), Session::confined(), Session::auto()] {
        let ran = counting_action(&s);
        // The first arena of a confined session is embedded (counted once).
        let first = Arena::new(s.clone()).unwrap();
        let base = s.__pending_close_actions().unwrap();
        for _ in 0..if cfg!(miri) { 50 } else { 5_000 } {
            drop(Arena::new(s.clone()).unwrap());
            drop(MallocAllocator::new(s.clone()).unwrap());
        }
        assert_eq!(s.__pending_close_actions().unwrap(), base, "{:?}", s.kind());
        drop(first);
        if s.kind() != SessionKind::Auto {
            s.close().unwrap();
            assert_eq!(ran.load(SeqCst), 1);
        }
    }
}

#[test]
fn withdrawn_close_action_never_runs_and_a_run_one_cannot_be_withdrawn() {
    let s = Session::shared();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let early = counting_action(&s);
    let key = s
        .__add_withdrawable_close_action(move || {
            r.fetch_add(1, SeqCst);
        })
        .unwrap();
    let late = counting_action(&s);
    assert!(s.__withdraw_close_action(key));
    assert_eq!(s.__pending_close_actions().unwrap(), 2);
    s.close().unwrap();
    assert_eq!(ran.load(SeqCst), 0);
    assert_eq!((early.load(SeqCst), late.load(SeqCst)), (1, 1));
    // A key of another session withdraws nothing there.
    let (a, b) = (Session::shared(), Session::shared());
    let b_ran = counting_action(&b);
    let key = a.__add_withdrawable_close_action(|| ()).unwrap();
    assert!(!b.__withdraw_close_action(key));
    b.close().unwrap();
    assert_eq!(b_ran.load(SeqCst), 1);
    // Once run, it is not withdrawn.
    let key = a.__add_withdrawable_close_action(|| ()).unwrap();
    a.close().unwrap();
    assert!(!a.__withdraw_close_action(key));
}

// ----- closing from inside one's own access window (issue 12) ---------------

#[test]
fn enter_then_close_on_the_same_thread_is_an_error_not_a_hang() {
    for s in [Session::shared(), Session::confined()] {
        let access = s.enter().unwrap();
        assert_eq!(s.close(), Err(Error::InUse));
        assert_eq!(s.close_blocking(), Err(Error::InUse));
        assert_eq!(
            s.close_timeout(Duration::from_secs(3600)),
            Err(Error::InUse)
        );
        {
            // Nested windows: still refused until the last one ends.
            let _inner = s.enter().unwrap();
            drop(access);
            assert_eq!(s.close(), Err(Error::InUse));
        }
        assert!(s.is_alive());
        s.close().unwrap();
    }
}

#[test]
fn a_window_on_one_session_does_not_stop_closing_another() {
    let (a, b) = (Session::shared(), Session::shared());
    let _in_a = a.enter().unwrap();
    b.close().unwrap();
    let c = Session::confined();
    let _in_c = c.enter().unwrap();
    let d = Session::confined();
    d.close().unwrap();
}

#[test]
fn another_threads_window_still_makes_a_shared_close_wait_not_fail() {
    let s = Session::shared();
    let s2 = s.clone();
    let (entered, go) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let (e2, g2) = (entered.clone(), go.clone());
    let t = thread::spawn(move || {
        let a = s2.enter().unwrap();
        e2.wait();
        g2.wait();
        thread::sleep(Duration::from_millis(20));
        drop(a);
    });
    entered.wait();
    go.wait();
    s.close().unwrap(); // waits for the other thread's window, no InUse
    t.join().unwrap();
}
