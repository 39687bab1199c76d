//! Loom models of the linker's lifetime protocols (DESIGN.md semantics 13):
//! a downcall's segment arguments are acquired for the call, and an upcall
//! enters its stub's session before touching what the close action frees.
//! libffi itself is not modelled: the "call" is a read of a loom cell that
//! the session's close action "frees" (a `with_mut` write plus a live flag).
#![cfg(loom)]

use loom::thread;
use loom_tests::{Memory, model, session_with_memory};
use memscope::linker::protocol::hooks;
use memscope::session::broken::{Twin, with_twin};
use memscope::{Address, Error, Segment};

/// What C does with memory it was handed: read it (it must be live).
fn touch(m: &Memory) {
    m.read();
}

fn must_close_or_busy(r: Result<(), Error>) -> bool {
    match r {
        Ok(()) => true,
        Err(Error::Busy { .. }) => false,
        Err(e) => panic!("unexpected close result {e}"),
    }
}

/// A downcall with a segment argument races the segment's session close:
/// close either fails with Busy (nothing freed) or the downcall's acquire
/// fails with Closed and C never sees the memory.
fn segment_argument_vs_close() {
    model(|| {
        let (s, m) = session_with_memory();
        let (s2, m2) = (s.clone(), m.clone());
        let t = thread::spawn(move || {
            // SAFETY: a zero-size view; the model's "memory" is `m2`.
            let seg = unsafe { Segment::from_raw(Address::NULL, 0, &s2) }.unwrap();
            match hooks::acquire_argument(&seg) {
                Ok(guard) => {
                    touch(&m2); // the C call
                    drop(guard);
                }
                Err(e) => assert_eq!(e, Error::Closed),
            }
        });
        let closed = must_close_or_busy(s.close());
        t.join().unwrap();
        if !closed {
            s.close().unwrap();
        }
        assert!(!m.is_live());
    });
}

/// An upcall races the close of its stub's session: close waits for an
/// upcall that has entered, then frees; an upcall after that sees Closed.
fn upcall_vs_close() {
    model(|| {
        let (s, m) = session_with_memory();
        let (s2, m2) = (s.clone(), m.clone());
        let t = thread::spawn(move || match hooks::enter_upcall(&s2) {
            Ok(entered) => {
                touch(&m2); // the closure's data
                drop(entered);
            }
            Err(e) => assert_eq!(e, Error::Closed),
        });
        // Plain accesses never make close fail: it waits for them.
        s.close().unwrap();
        t.join().unwrap();
    });
}

/// A downcall whose argument lives in session A calls back into a stub of
/// session B while main closes B and then A.
fn downcall_with_upcall_vs_close() {
    model(|| {
        let (a, ma) = session_with_memory();
        let (b, mb) = session_with_memory();
        let (a2, b2, ma2, mb2) = (a.clone(), b.clone(), ma.clone(), mb.clone());
        let t = thread::spawn(move || {
            // SAFETY: a zero-size view; the model's "memory" is `ma2`.
            let seg = unsafe { Segment::from_raw(Address::NULL, 0, &a2) }.unwrap();
            if let Ok(guard) = hooks::acquire_argument(&seg) {
                touch(&ma2);
                if let Ok(entered) = hooks::enter_upcall(&b2) {
                    touch(&mb2);
                    touch(&ma2);
                    drop(entered);
                }
                drop(guard);
            }
        });
        b.close().unwrap();
        let closed = must_close_or_busy(a.close());
        t.join().unwrap();
        if !closed {
            a.close().unwrap();
        }
    });
}

#[test]
fn loom_segment_argument_vs_close() {
    segment_argument_vs_close();
}

#[test]
fn loom_upcall_vs_close() {
    upcall_vs_close();
}

#[test]
fn loom_downcall_with_upcall_vs_close() {
    downcall_with_upcall_vs_close();
}

#[test]
#[should_panic]
fn twin_downcall_without_argument_acquire_is_caught() {
    with_twin(Twin::DowncallNoAcquire, segment_argument_vs_close);
}

#[test]
#[should_panic]
fn twin_upcall_without_enter_is_caught() {
    with_twin(Twin::UpcallNoEnter, upcall_vs_close);
}

#[test]
#[should_panic]
fn twin_upcall_without_enter_is_caught_in_nested_calls() {
    with_twin(Twin::UpcallNoEnter, downcall_with_upcall_vs_close);
}

/// An upcall is in flight (entered through the stub's raw core pointer, as
/// the trampoline does) on main while another thread drops the session's
/// last handle: the upcall's own handle keeps the session open, and the
/// session closes (its action frees the closure, "memory") only after the
/// upcall's window, on main; for shared and confined sessions (the upcall
/// of a confined one runs on its owner).
fn last_handle_drop_vs_upcall(confined: bool) {
    use memscope::Session;
    use memscope::linker::protocol::hooks::StubCore;
    model(move || {
        let s = if confined {
            Session::confined()
        } else {
            Session::shared()
        };
        let m = Memory::new();
        loom_tests::free_on_close(&s, &m);
        let stub = StubCore::of(&s);
        // SAFETY: the session is open (this thread holds its handle).
        let entered = unsafe { stub.enter() }.unwrap();
        let s2 = s.clone();
        let t1 = thread::spawn(move || drop(s)); // maybe the last handle
        // Two more handles, made and dropped on another thread: any of the
        // three drops can be the last. (Measured: with a plain access of
        // the session here instead, loom no longer reported the twin
        // `UpcallNoHandle`, so this thread only churns the count.)
        let t2 = thread::spawn(move || {
            let s3 = s2.clone();
            drop(s2);
            drop(s3); // maybe the last handle
        });
        touch(&m); // the closure's data
        drop(entered);
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(!m.is_live());
    });
}

#[test]
fn loom_last_handle_drop_vs_upcall() {
    last_handle_drop_vs_upcall(false);
}

#[test]
fn loom_last_handle_drop_vs_confined_upcall() {
    last_handle_drop_vs_upcall(true);
}

#[test]
#[should_panic]
fn twin_upcall_without_a_handle_is_caught_by_a_last_handle_drop() {
    with_twin(Twin::UpcallNoHandle, || last_handle_drop_vs_upcall(false));
}

#[test]
#[should_panic]
fn twin_upcall_without_a_handle_is_caught_by_a_confined_last_handle_drop() {
    with_twin(Twin::UpcallNoHandle, || last_handle_drop_vs_upcall(true));
}

/// An upcall in flight on main while one thread drops a handle and another
/// closes the session explicitly and drops its handle: the close waits for
/// the upcall's window, frees once, and the last handle (maybe the
/// upcall's) finds the session closed.
fn drop_and_close_vs_upcall() {
    use memscope::linker::protocol::hooks::StubCore;
    model(|| {
        let (s, m) = session_with_memory();
        let s2 = s.clone();
        let stub = StubCore::of(&s);
        // SAFETY: the session is open (this thread holds handles).
        let entered = unsafe { stub.enter() }.unwrap();
        let t1 = thread::spawn(move || drop(s));
        let t2 = thread::spawn(move || {
            s2.close().unwrap();
            drop(s2);
        });
        touch(&m);
        drop(entered);
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(!m.is_live());
    });
}

#[test]
fn loom_drop_and_close_vs_upcall() {
    drop_and_close_vs_upcall();
}

#[test]
#[should_panic]
fn twin_upcall_without_enter_is_caught_by_drop_and_close() {
    with_twin(Twin::UpcallNoEnter, drop_and_close_vs_upcall);
}

/// Main drops a handle inside its own upcall window while another thread
/// drops the other: whichever is last, the session closes once, after the
/// upcall's window (the closure is never freed under it).
fn last_handle_drop_inside_upcall() {
    use memscope::Session;
    use memscope::linker::protocol::hooks::StubCore;
    model(|| {
        let (s, m) = session_with_memory();
        let (s2, s3, m3) = (s.clone(), s.clone(), m.clone());
        let stub = StubCore::of(&s);
        // SAFETY: the session is open (this thread holds a handle).
        let entered = unsafe { stub.enter() }.unwrap();
        let t = thread::spawn(move || drop(s2));
        // A plain access through a third handle, then its drop.
        let t3 = thread::spawn(move || {
            let a = s3.enter().expect("open: a handle is held");
            touch(&m3);
            drop(a);
            drop(s3);
        });
        drop::<Session>(s); // maybe the last handle, inside the upcall
        touch(&m);
        drop(entered);
        t.join().unwrap();
        t3.join().unwrap();
        assert!(!m.is_live());
    });
}

#[test]
fn loom_last_handle_drop_inside_upcall() {
    last_handle_drop_inside_upcall();
}

#[test]
#[should_panic]
fn twin_upcall_without_a_handle_is_caught_by_a_drop_inside_it() {
    with_twin(Twin::UpcallNoHandle, last_handle_drop_inside_upcall);
}

// ----- issue 13: the real call sites (libffi into Rust extern "C" fns) -----------

mod real {
    use super::*;
    use memscope::layout::c;
    use memscope::linker::{Arg, DowncallOptions, FunctionDescriptor, Linker, Symbol};
    use memscope::marshal::Value;

    std::thread_local! {
        // All loom threads of a model run on one OS thread: only the thread
        // that is running uses this, between a catch and its re-panic.
        static CAUGHT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    }

    /// The "C" function the downcall calls through libffi: reads the memory
    /// its segment argument points at, then calls the stub it was given.
    /// A loom failure inside is caught here (a panic must not unwind
    /// through libffi's frames) and re-raised by the caller after the call.
    extern "C" fn reader(m: *const Memory, cb: Option<extern "C" fn(i32) -> i32>) -> i32 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: `m` is the address of a `Memory` the model keeps alive
            // (an `Arc` clone); whether it may be read is loom's to judge.
            unsafe { (*m).read() };
        }));
        if let Err(p) = r {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            CAUGHT.with(|c| *c.borrow_mut() = Some(msg));
            return -1;
        }
        cb.map_or(0, |f| f(1))
    }

    fn reraise() {
        if let Some(msg) = CAUGHT.with(|c| c.borrow_mut().take()) {
            panic!("{msg}");
        }
    }

    /// The real downcall path: `Downcall::call_with` (`call_args` acquires
    /// the segment argument's session and the stub argument's session,
    /// libffi calls `reader`, which reads the segment's memory and calls the
    /// stub: the real trampoline and `closure::Data::run`, whose handler
    /// reads the stub session's memory) on one thread, while main closes
    /// the segment's session: the close is `Busy` (nothing freed) or the
    /// call fails with `Closed` before C runs. The stub's session closes
    /// after the call.
    pub(super) fn real_downcall_and_upcall_vs_close() {
        model(|| {
            let (a, ma) = session_with_memory();
            let (b, mb) = session_with_memory();
            let (a2, b2, ma2, mb2) = (a.clone(), b.clone(), ma.clone(), mb.clone());
            let t = thread::spawn(move || {
                let up = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
                let stub = Linker::native()
                    .upcall(
                        move |_: &[Value]| {
                            mb2.read();
                            Value::I32(7)
                        },
                        &up,
                        &b2,
                    )
                    .unwrap();
                let addr = Address::from_ptr(loom::sync::Arc::as_ptr(&ma2).cast::<u8>());
                // SAFETY: a zero-size view of the model's `Memory`; `reader`
                // only reads it as a `Memory`.
                let seg = unsafe { Segment::from_raw(addr, 0, &a2) }.unwrap();
                // SAFETY: `reader` is a live Rust function of this signature.
                let sym = unsafe { Symbol::from_address(Address::from_ptr(reader as *const u8)) }
                    .unwrap();
                let d = FunctionDescriptor::of(Some(c::INT), &[c::POINTER, c::POINTER]);
                // SAFETY: the descriptor matches `reader`.
                let f = unsafe { Linker::native().downcall(&sym, &d, DowncallOptions::default()) }
                    .unwrap();
                let r = f.call_with(&[Arg::Segment(&seg), Arg::Stub(&stub)]);
                reraise();
                if let Some(p) = stub.take_panic() {
                    panic!("upcall failed: {p}");
                }
                match r {
                    Ok(v) => assert_eq!(v, Some(Value::I32(7))),
                    Err(e) => assert_eq!(e, Error::Closed),
                }
            });
            let closed = must_close_or_busy(a.close());
            t.join().unwrap();
            if !closed {
                a.close().unwrap();
            }
            b.close().unwrap();
            assert!(!ma.is_live() && !mb.is_live());
        });
    }

    /// `UpcallStub::as_fn` (its enter) for a capturing stub (the real
    /// trampoline and `closure::Data::run`) and a stateless one (a direct
    /// trampoline), called from another thread under a guard while main
    /// closes the session: the close is `Busy` or the guard fails; once the
    /// session is closed, `as_fn` refuses with `Closed` (a pointer to freed
    /// code is never handed out).
    pub(super) fn as_fn_vs_close() {
        model(|| {
            let (s, m) = session_with_memory();
            let m2 = m.clone();
            let up = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
            let stub = Linker::native()
                .upcall(
                    move |_: &[Value]| {
                        m2.read();
                        Value::I32(7)
                    },
                    &up,
                    &s,
                )
                .unwrap();
            let direct = Linker::native()
                .upcall_typed(|x: i32| -> i32 { x + 1 }, &s)
                .unwrap();
            let s2 = s.clone();
            let t = thread::spawn(move || {
                if let Ok(g) = s2.acquire() {
                    // SAFETY: the signatures match; the guard keeps the
                    // session (and so both stubs) alive for the calls.
                    let f = unsafe { stub.as_fn::<extern "C" fn(i32) -> i32>() }.unwrap();
                    assert_eq!(f(1), 7);
                    // SAFETY: as above.
                    let h = unsafe { direct.as_fn::<extern "C" fn(i32) -> i32>() }.unwrap();
                    assert_eq!(h(1), 2);
                    drop(g);
                }
                if let Some(p) = stub.take_panic() {
                    panic!("upcall failed: {p}");
                }
                (stub, direct)
            });
            let closed = must_close_or_busy(s.close());
            let (stub, direct) = t.join().unwrap();
            if !closed {
                s.close().unwrap();
            }
            // SAFETY: never called (the session is closed).
            let after = unsafe { stub.as_fn::<extern "C" fn(i32) -> i32>() }.map(drop);
            // SAFETY: as above.
            let after_direct = unsafe { direct.as_fn::<extern "C" fn(i32) -> i32>() }.map(drop);
            assert_eq!(
                (after, after_direct),
                (Err(Error::Closed), Err(Error::Closed)),
                "as_fn handed out a pointer into a closed session"
            );
            assert!(!m.is_live());
        });
    }
}

#[test]
fn loom_as_fn_vs_close() {
    real::as_fn_vs_close();
}

#[test]
#[should_panic(expected = "as_fn handed out a pointer")]
fn twin_as_fn_without_enter_is_caught() {
    with_twin(Twin::AsFnNoEnter, real::as_fn_vs_close);
}

#[test]
fn loom_real_downcall_and_upcall_vs_close() {
    real::real_downcall_and_upcall_vs_close();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_downcall_without_argument_acquire_is_caught_through_libffi() {
    with_twin(
        Twin::DowncallNoAcquire,
        real::real_downcall_and_upcall_vs_close,
    );
}

/// A thread holds a stub's session around a C call whose upcalls skip
/// their own entry (`StubHold`, the row 13 fast path: a marked thread's
/// upcall only compares a thread-local) while main closes the session:
/// the close is `Busy` while the hold lives, or came first and the hold is
/// refused with `Closed` — never a free under a held upcall.
fn held_upcall_vs_close() {
    model(|| {
        let (s, m) = session_with_memory();
        let (s2, m2) = (s.clone(), m.clone());
        let t = thread::spawn(move || match hooks::hold(&s2) {
            Ok(hold) => {
                assert!(hooks::held_here(&s2));
                touch(&m2); // an upcall that skipped its entry: the closure's data
                touch(&m2); // and a second one in the same call
                drop(hold);
                assert!(!hooks::held_here(&s2));
            }
            Err(e) => assert_eq!(e, Error::Closed),
        });
        let closed = must_close_or_busy(s.close());
        t.join().unwrap();
        if !closed {
            s.close().unwrap();
        }
        assert!(!m.is_live());
    });
}

#[test]
fn loom_held_upcall_vs_close() {
    held_upcall_vs_close();
}

#[test]
#[should_panic]
fn twin_stub_hold_without_a_pin_is_caught() {
    with_twin(Twin::StubHoldNoPin, held_upcall_vs_close);
}
