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

// ----- issue 13: direct downcalls (linker/fastcall.rs), direct typed stubs ---------
// (linker/direct.rs, whose slot table and free list are loom objects with 2
// slots under loom), the libffi path with two segments, and panicking
// upcalls, all through the real call sites.

mod fast {
    use super::*;
    use loom::sync::Arc;
    use memscope::Session;
    use memscope::layout::{MemoryLayout, c};
    use memscope::linker::{Arg, Downcall, DowncallOptions, FunctionDescriptor, Linker, Symbol};
    use memscope::marshal::Value;
    use std::panic::AssertUnwindSafe;
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicBool as StdBool, Ordering::Relaxed};

    type Cb = Option<extern "C" fn(i32) -> i32>;
    type Fn1 = extern "C" fn(i32) -> i32;

    /// What the "C" side of a call reports to its model: whether C ran, and
    /// a loom failure it caught (a panic must not unwind through C frames;
    /// it is raised again after the call). Lives on the calling loom
    /// thread's stack and travels to C as a pointer argument.
    #[derive(Default)]
    pub(super) struct Probe {
        ran: StdBool,
        caught: StdMutex<Option<String>>,
    }

    fn message(p: Box<dyn std::any::Any + Send>) -> String {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    impl Probe {
        /// C's part: marks the call as run and does `f`, catching a panic.
        fn run(&self, f: impl FnOnce()) -> bool {
            self.ran.store(true, Relaxed);
            match std::panic::catch_unwind(AssertUnwindSafe(f)) {
                Ok(()) => true,
                Err(p) => {
                    *self.caught.lock().unwrap() = Some(message(p));
                    false
                }
            }
        }
        fn reraise(&self) {
            if let Some(m) = self.caught.lock().unwrap().take() {
                panic!("{m}");
            }
        }
        fn ran(&self) -> bool {
            self.ran.load(Relaxed)
        }
        fn arg(&self) -> Arg<'_, '_> {
            Arg::Value(Value::Address(Address::from_ptr(
                (self as *const Probe).cast::<u8>(),
            )))
        }
    }

    /// The model's memory as a C pointer.
    fn ptr(m: &Arc<Memory>) -> Address {
        Address::from_ptr(Arc::as_ptr(m).cast::<u8>())
    }

    /// "C": reads the memory its segment argument points at, then returns
    /// `cb(1) + 100`. Three pointers and an int: a direct call.
    extern "C" fn read_and_call(m: *const Memory, cb: Cb, p: *const Probe) -> i32 {
        // SAFETY: the model passes its live `Probe` and `Memory` (whether
        // the memory may be read is loom's to judge).
        let p = unsafe { &*p };
        // SAFETY: as above.
        if !p.run(|| unsafe { (*m).read() }) {
            return -1;
        }
        cb.map_or(0, |f| f(1)) + 100
    }

    /// "C": calls the stub only: `cb(1) + 100` (a direct call).
    extern "C" fn call_back(cb: Cb, p: *const Probe) -> i32 {
        // SAFETY: the model's live `Probe`.
        unsafe { &*p }.ran.store(true, Relaxed);
        cb.map_or(0, |f| f(1)) + 100
    }

    /// "C" with two segment arguments and an `int16_t` (not a direct class:
    /// the call goes through `ffi_call`): reads both, returns `cb(1) + 100`.
    extern "C" fn read_two(
        a: *const Memory,
        b: *const Memory,
        cb: Cb,
        p: *const Probe,
        tag: i16,
    ) -> i32 {
        // SAFETY: as in `read_and_call`.
        let p = unsafe { &*p };
        // SAFETY: as above.
        if tag != 5 || !p.run(|| unsafe { ((*a).read(), (*b).read()) }.1) {
            return -1;
        }
        cb.map_or(0, |f| f(1)) + 100
    }

    fn link(f: *const u8, args: &[MemoryLayout]) -> Downcall {
        // SAFETY: `f` is one of the Rust functions above, alive for ever.
        let sym = unsafe { Symbol::from_address(Address::from_ptr(f)) }.unwrap();
        let d = FunctionDescriptor::of(Some(c::INT), args);
        // SAFETY: the model passes each function's own C signature.
        unsafe { Linker::native().downcall(&sym, &d, DowncallOptions::default()) }.unwrap()
    }

    /// The result of a call whose held sessions may close meanwhile: C ran
    /// and the stub answered `1 + k`, or the call was refused with `Closed`
    /// before C ran (never C running in a call that failed, or a stub that
    /// answered zeroes: a freed slot).
    fn check(r: Result<Option<Value>, Error>, probe: &Probe, k: i32) {
        probe.reraise();
        match r {
            Ok(v) => {
                assert!(probe.ran());
                assert_eq!(v, Some(Value::I32(1 + k + 100)), "the stub did not run");
            }
            Err(Error::Closed) => assert!(!probe.ran(), "C ran in a call refused with Closed"),
            Err(e) => panic!("unexpected call result {e}"),
        }
    }

    /// Closes `s` on a new thread: `true` if that close succeeded (else it
    /// was Busy).
    fn close_on_thread(s: Session) -> thread::JoinHandle<(Session, bool)> {
        thread::spawn(move || {
            let closed = must_close_or_busy(s.close());
            (s, closed)
        })
    }

    fn finish_close(s: &Session, closed: bool) {
        if !closed {
            s.close().unwrap();
        }
    }

    /// A real direct downcall (`Downcall::is_direct`: the fastcall thunk, no
    /// `ffi_call`) with a segment argument of session A and a capturing
    /// typed stub of session B (a direct slot trampoline, held by the call:
    /// its entry takes the `held_here` path) while main closes A and
    /// another thread closes B: each close is Busy (nothing freed under C
    /// or the stub) or the call is refused with Closed before C runs.
    pub(super) fn direct_downcall_vs_close() {
        model(|| {
            let (a, ma) = session_with_memory();
            let (b, mb) = session_with_memory();
            let mb2 = mb.clone();
            let stub = Linker::native()
                .upcall_typed(
                    move |x: i32| {
                        mb2.read();
                        x + 7
                    },
                    &b,
                )
                .unwrap();
            let (a2, ma2) = (a.clone(), ma.clone());
            let t = thread::spawn(move || {
                let f = link(
                    read_and_call as *const u8,
                    &[c::POINTER, c::POINTER, c::POINTER],
                );
                assert!(f.is_direct());
                // SAFETY: a zero-size view of the model's `Memory`, which C
                // only reads as a `Memory`.
                let seg = unsafe { Segment::from_raw(ptr(&ma2), 0, &a2) }.unwrap();
                let probe = Probe::default();
                let r = f.call_with(&[Arg::Segment(&seg), Arg::Stub(&stub), probe.arg()]);
                check(r, &probe, 7);
            });
            let u = close_on_thread(b);
            let closed = must_close_or_busy(a.close());
            t.join().unwrap();
            let (b, closed_b) = u.join().unwrap();
            finish_close(&a, closed);
            finish_close(&b, closed_b);
            assert!(!ma.is_live() && !mb.is_live());
        });
    }

    /// A direct downcall whose only held argument is a direct typed stub
    /// (the call takes `call_args_held` for the stub alone) while main
    /// closes the stub's session. `panics`: the stub panics after reading
    /// (caught before C, which finishes; the call then fails with
    /// `UpcallPanicked`).
    pub(super) fn stub_only_downcall_vs_close(panics: bool) {
        if panics {
            quiet_upcall_panics();
        }
        model(move || {
            let (b, mb) = session_with_memory();
            let mb2 = mb.clone();
            let stub = Linker::native()
                .upcall_typed(
                    move |x: i32| {
                        mb2.read();
                        if panics {
                            std::panic::panic_any("upcall boom");
                        }
                        x + 7
                    },
                    &b,
                )
                .unwrap();
            let t = thread::spawn(move || {
                let f = link(call_back as *const u8, &[c::POINTER, c::POINTER]);
                assert!(f.is_direct());
                let probe = Probe::default();
                let r = f.call_with(&[Arg::Stub(&stub), probe.arg()]);
                if !panics {
                    return check(r, &probe, 7);
                }
                match r {
                    Err(Error::UpcallPanicked { message }) => {
                        assert!(probe.ran());
                        assert_eq!(message, "upcall boom", "the upcall failed otherwise");
                    }
                    Err(Error::Closed) => {
                        assert!(!probe.ran(), "C ran in a call refused with Closed")
                    }
                    r => panic!("a panicking stub's call gave {r:?}"),
                }
            });
            let closed = must_close_or_busy(b.close());
            t.join().unwrap();
            finish_close(&b, closed);
            assert!(!mb.is_live());
        });
    }

    /// The libffi path (`ffi_call`: an `int16_t` argument) with segment
    /// arguments of two sessions, closed concurrently by two threads, and a
    /// libffi upcall stub (`closure::Data::run`) of the second.
    pub(super) fn two_segments_via_libffi_vs_two_closes() {
        model(|| {
            let (a, ma) = session_with_memory();
            let (b, mb) = session_with_memory();
            let mb2 = mb.clone();
            let up = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
            let stub = Linker::native()
                .upcall(
                    move |v: &[Value]| {
                        mb2.read();
                        match v {
                            [Value::I32(x)] => Value::I32(x + 7),
                            _ => Value::I32(-1000),
                        }
                    },
                    &up,
                    &b,
                )
                .unwrap();
            let (a2, b2, ma2, mb3) = (a.clone(), b.clone(), ma.clone(), mb.clone());
            let t = thread::spawn(move || {
                let f = link(
                    read_two as *const u8,
                    &[c::POINTER, c::POINTER, c::POINTER, c::POINTER, c::SHORT],
                );
                assert!(!f.is_direct());
                // SAFETY: zero-size views of the model's memories.
                let sa = unsafe { Segment::from_raw(ptr(&ma2), 0, &a2) }.unwrap();
                // SAFETY: as above.
                let sb = unsafe { Segment::from_raw(ptr(&mb3), 0, &b2) }.unwrap();
                let probe = Probe::default();
                let r = f.call_with(&[
                    Arg::Segment(&sa),
                    Arg::Segment(&sb),
                    Arg::Stub(&stub),
                    probe.arg(),
                    Arg::Value(Value::I16(5)),
                ]);
                check(r, &probe, 7);
            });
            let u = close_on_thread(b);
            let closed = must_close_or_busy(a.close());
            t.join().unwrap();
            let (b, closed_b) = u.join().unwrap();
            finish_close(&a, closed);
            finish_close(&b, closed_b);
            assert!(!ma.is_live() && !mb.is_live());
        });
    }

    /// Keeps the panic hook quiet about the models' own upcall panics.
    fn quiet_upcall_panics() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let prev = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let quiet = info
                    .payload()
                    .downcast_ref::<&str>()
                    .is_some_and(|s| *s == "upcall boom");
                if !quiet {
                    prev(info);
                }
            }));
        });
    }

    /// An upcall in flight on main (called through its code address, not
    /// held: its entry enters the session) during which another thread
    /// closes the session (`close`) or drops its last handle: the close
    /// waits for the upcall's window (or the upcall's own handle is the
    /// last), so the closure's memory is freed only after it. `via`: 0 a
    /// capturing typed stub (a direct slot trampoline, `enter_and_run`),
    /// 1 a libffi stub (`closure::Data::run`). `hold_other`: main holds
    /// another session's stub meanwhile (the thread is marked, for that
    /// session only); either way main first takes and drops a hold of the
    /// stub's own session (its mark must go with it). `panics`: the closure
    /// panics after reading (`UpcallPanicked`, recorded inside the window).
    pub(super) fn upcall_vs_close_from_inside(
        via: u8,
        close: bool,
        hold_other: bool,
        panics: bool,
    ) {
        quiet_upcall_panics();
        model(move || {
            let (s, m) = session_with_memory();
            let other = Session::shared();
            // Two handles, each taken by a thread of its own: the first
            // closes (or drops), the second drops, so the last handle may be
            // either thread's or the upcall's own.
            let slot = std::sync::Arc::new(StdMutex::new(vec![s.clone(), s.clone()]));
            let closer = std::sync::Arc::new(StdMutex::new(Vec::<thread::JoinHandle<()>>::new()));
            let read_failed = std::sync::Arc::new(StdMutex::new(None::<String>));
            let (slot2, closer2, m2, failed2) =
                (slot.clone(), closer.clone(), m.clone(), read_failed.clone());
            let body = move |x: i32| -> i32 {
                let handles = std::mem::take(&mut *slot2.lock().unwrap());
                for (i, s) in handles.into_iter().enumerate() {
                    let j = thread::spawn(move || {
                        if close && i == 0 {
                            s.close().unwrap();
                        }
                        drop(s);
                    });
                    closer2.lock().unwrap().push(j);
                }
                // A failure here is kept for the model (the stub would
                // catch it as an upcall panic).
                if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| m2.read())) {
                    *failed2.lock().unwrap() = Some(message(p));
                }
                if panics {
                    std::panic::panic_any("upcall boom");
                }
                x + 1
            };
            let stub = if via == 0 {
                Linker::native().upcall_typed(body, &s).unwrap()
            } else {
                let up = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
                Linker::native()
                    .upcall(
                        move |v: &[Value]| match v {
                            [Value::I32(x)] => Value::I32(body(*x)),
                            _ => Value::I32(-1000),
                        },
                        &up,
                        &s,
                    )
                    .unwrap()
            };
            let marker = Linker::native().upcall_typed(|x: i32| x, &other).unwrap();
            // SAFETY: the stub's signature; called below while its session
            // is open (main and `slot` hold handles).
            let f = unsafe { stub.as_fn::<Fn1>() }.unwrap();
            let held = hold_other.then(|| marker.hold().unwrap());
            drop(stub.hold().unwrap());
            drop(s); // `slot` (and the stub) hold the session now
            // A close needs no last-handle drop: keep the stub (and its
            // failure record); else `slot`'s is the last handle but the
            // upcall's own.
            let stub = if close {
                Some(stub)
            } else {
                drop(stub);
                None
            };
            let r = f(1);
            drop(held);
            let failure = stub.as_ref().and_then(|s| s.take_panic());
            drop(stub);
            for j in std::mem::take(&mut *closer.lock().unwrap()) {
                j.join().unwrap();
            }
            if let Some(msg) = read_failed.lock().unwrap().take() {
                panic!("{msg}");
            }
            if panics {
                assert_eq!(r, 0);
                if close {
                    assert_eq!(
                        failure,
                        Some(Error::UpcallPanicked {
                            message: "upcall boom".into()
                        })
                    );
                }
            } else {
                assert_eq!((r, failure), (2, None), "the upcall failed");
            }
            assert!(!m.is_live(), "the session did not close");
        });
    }

    /// Direct slots claimed, called and released by two threads at once
    /// while a third stub keeps one of the two loom slots taken: a stub
    /// claims the last free slot or one just released (reuse), or falls back
    /// to a libffi closure; each stub, held or not, runs its own closure,
    /// and the long-lived stub's slot is never touched.
    pub(super) fn direct_slots_claimed_and_released_concurrently() {
        model(|| {
            let s0 = Session::shared();
            let k0 = 30;
            let z = Linker::native()
                .upcall_typed(move |x: i32| x + k0, &s0)
                .unwrap();
            fn worker(k: i32) -> impl FnOnce() + Send + 'static {
                move || {
                    let s = Session::shared();
                    let stub = Linker::native()
                        .upcall_typed(move |x: i32| x + k, &s)
                        .unwrap();
                    // SAFETY: the stub's signature; called while `s` is open.
                    let f = unsafe { stub.as_fn::<Fn1>() }.unwrap();
                    {
                        let _hold = stub.hold().unwrap();
                        assert_eq!(
                            f(1),
                            1 + k,
                            "a held stub ran another closure or a cleared slot"
                        );
                    }
                    assert_eq!(f(1), 1 + k, "a stub ran another closure or a cleared slot");
                    assert_eq!(stub.take_panic(), None);
                    drop(stub);
                    s.close().unwrap();
                }
            }
            let t1 = thread::spawn(worker(10));
            let t2 = thread::spawn(worker(20));
            t1.join().unwrap();
            t2.join().unwrap();
            // SAFETY: the stub's signature; `s0` is open.
            let fz = unsafe { z.as_fn::<Fn1>() }.unwrap();
            assert_eq!(fz(1), 31, "the long-lived stub's slot was overwritten");
        });
    }

    /// C keeps a direct stub's code address after the `UpcallStub` value is
    /// dropped, while another thread makes and calls a stub of the same
    /// signature (it may claim any free slot): while the first stub's
    /// session is open its address still runs its own closure (the slot is
    /// only released by the session's close).
    pub(super) fn direct_slot_outlives_its_stub_value() {
        model(|| {
            let s1 = Session::shared();
            let k = 10;
            let x = Linker::native()
                .upcall_typed(move |v: i32| v + k, &s1)
                .unwrap();
            // SAFETY: the stub's signature; called while `s1` is open.
            let fx = unsafe { x.as_fn::<Fn1>() }.unwrap();
            let t = thread::spawn(|| {
                let s2 = Session::shared();
                let k2 = 20;
                let y = Linker::native()
                    .upcall_typed(move |v: i32| v + k2, &s2)
                    .unwrap();
                // SAFETY: as above, for `s2`.
                let fy = unsafe { y.as_fn::<Fn1>() }.unwrap();
                {
                    let _hold = y.hold().unwrap();
                    assert_eq!(fy(1), 21);
                }
                drop(y);
                s2.close().unwrap(); // its slot released while main calls
            });
            drop(x); // C still holds `fx`
            {
                let _g = s1.acquire().unwrap();
                assert_eq!(
                    fx(1),
                    11,
                    "a live session's stub address ran another stub (its slot was released early)"
                );
            }
            t.join().unwrap();
            s1.close().unwrap();
            // Nothing claims a slot any more: `fx`'s slot is free, and a
            // freed slot's trampoline returns zeroes (DESIGN: a call after
            // close is outside the contract, but it must not run the freed
            // data, which loom keeps readable until the execution ends).
            assert_eq!(fx(1), 0, "a freed slot ran its old stub's data");
        });
    }

    /// Stubs of a confined session (a direct typed one and a libffi one)
    /// called from another thread while the owner uses the memory the
    /// closures read: both upcalls are refused (`WrongThread` recorded,
    /// zeroes returned) and their closures never run off the owner thread.
    pub(super) fn confined_stubs_called_from_another_thread() {
        model(|| {
            let s = Session::confined();
            let m = Memory::new();
            let (m2, m3) = (m.clone(), m.clone());
            let direct = Linker::native()
                .upcall_typed(
                    move |x: i32| {
                        m2.read();
                        x + 1
                    },
                    &s,
                )
                .unwrap();
            let up = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
            let ffi = Linker::native()
                .upcall(
                    move |_: &[Value]| {
                        m3.read();
                        Value::I32(7)
                    },
                    &up,
                    &s,
                )
                .unwrap();
            // SAFETY: the stubs' signature; called while `s` is open (main
            // closes it after the join).
            let (fd, ff) = unsafe { (direct.as_fn::<Fn1>().unwrap(), ffi.as_fn::<Fn1>().unwrap()) };
            let s2 = s.clone();
            let t = thread::spawn(move || (fd(1), ff(1)));
            m.free(); // the owner's own write of its memory
            drop(s2); // and a handle dropped while the refused upcalls hold theirs
            assert_eq!(
                t.join().unwrap(),
                (0, 0),
                "an upcall ran off its confined session's thread"
            );
            for stub in [&direct, &ffi] {
                assert!(matches!(stub.take_panic(), Some(Error::WrongThread { .. })));
            }
            s.close().unwrap();
        });
    }
}

#[test]
fn loom_direct_downcall_vs_close() {
    fast::direct_downcall_vs_close();
}

#[test]
#[should_panic]
fn twin_downcall_without_argument_acquire_is_caught_through_the_direct_path() {
    with_twin(Twin::DowncallNoAcquire, fast::direct_downcall_vs_close);
}

#[test]
fn loom_stub_only_downcall_vs_close() {
    fast::stub_only_downcall_vs_close(false);
}

#[test]
#[should_panic]
fn twin_stub_argument_not_held_is_caught() {
    with_twin(Twin::StubArgNotHeld, || {
        fast::stub_only_downcall_vs_close(false)
    });
}

#[test]
fn loom_panicking_stub_argument_vs_close() {
    fast::stub_only_downcall_vs_close(true);
}

#[test]
#[should_panic]
fn twin_stub_argument_not_held_is_caught_with_a_panicking_stub() {
    with_twin(Twin::StubArgNotHeld, || {
        fast::stub_only_downcall_vs_close(true)
    });
}

#[test]
fn loom_two_segments_via_libffi_vs_two_closes() {
    fast::two_segments_via_libffi_vs_two_closes();
}

#[test]
#[should_panic]
fn twin_downcall_without_argument_acquire_is_caught_with_two_segments() {
    with_twin(
        Twin::DowncallNoAcquire,
        fast::two_segments_via_libffi_vs_two_closes,
    );
}

#[test]
fn loom_direct_upcall_vs_close_from_inside() {
    fast::upcall_vs_close_from_inside(0, true, false, false);
}

#[test]
fn loom_direct_upcall_vs_last_handle_drop_from_inside() {
    fast::upcall_vs_close_from_inside(0, false, false, false);
}

#[test]
fn loom_direct_upcall_beside_another_hold_vs_close() {
    fast::upcall_vs_close_from_inside(0, true, true, false);
}

#[test]
fn loom_direct_upcall_panic_vs_close() {
    fast::upcall_vs_close_from_inside(0, true, false, true);
}

#[test]
fn loom_libffi_upcall_vs_close_from_inside() {
    fast::upcall_vs_close_from_inside(1, true, true, false);
}

#[test]
fn loom_libffi_upcall_panic_vs_close() {
    fast::upcall_vs_close_from_inside(1, true, false, true);
}

#[test]
fn loom_libffi_upcall_panic_vs_last_handle_drop() {
    fast::upcall_vs_close_from_inside(1, false, false, true);
}

#[test]
#[should_panic]
fn twin_direct_upcall_without_enter_is_caught() {
    with_twin(Twin::UpcallNoEnter, || {
        fast::upcall_vs_close_from_inside(0, true, false, false)
    });
}

#[test]
#[should_panic]
fn twin_direct_upcall_without_a_handle_is_caught() {
    with_twin(Twin::UpcallNoHandle, || {
        fast::upcall_vs_close_from_inside(0, false, false, false)
    });
}

#[test]
#[should_panic]
fn twin_held_mark_of_another_session_is_caught() {
    with_twin(Twin::HeldMarkAnySession, || {
        fast::upcall_vs_close_from_inside(0, true, true, false)
    });
}

#[test]
#[should_panic]
fn twin_panicking_libffi_upcall_without_enter_is_caught() {
    with_twin(Twin::UpcallNoEnter, || {
        fast::upcall_vs_close_from_inside(1, true, false, true)
    });
}

#[test]
fn loom_direct_slots_claimed_and_released_concurrently() {
    fast::direct_slots_claimed_and_released_concurrently();
}

#[test]
#[should_panic]
fn twin_slot_claim_check_then_take_is_caught() {
    with_twin(
        Twin::SlotClaimCheckThenTake,
        fast::direct_slots_claimed_and_released_concurrently,
    );
}

#[test]
#[should_panic]
fn twin_slot_freed_before_clear_is_caught() {
    with_twin(
        Twin::SlotFreedBeforeClear,
        fast::direct_slots_claimed_and_released_concurrently,
    );
}

#[test]
fn loom_direct_slot_outlives_its_stub_value() {
    fast::direct_slot_outlives_its_stub_value();
}

#[test]
#[should_panic]
fn twin_slot_freed_with_the_stub_value_is_caught() {
    with_twin(
        Twin::SlotFreedWithStub,
        fast::direct_slot_outlives_its_stub_value,
    );
}

#[test]
fn loom_confined_stubs_called_from_another_thread() {
    fast::confined_stubs_called_from_another_thread();
}

#[test]
#[should_panic]
fn twin_confined_upcall_without_owner_check_is_caught() {
    with_twin(
        Twin::NoOwnerCheck,
        fast::confined_stubs_called_from_another_thread,
    );
}
