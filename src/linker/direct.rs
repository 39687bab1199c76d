//! Direct typed trampolines for capturing closures (PERFORMANCE.md row 13):
//! a typed upcall stub whose closure has state runs without libffi.
//!
//! One of the few files with `unsafe` code. C needs a plain function
//! pointer, and a plain `extern "C" fn` has no data pointer. So there is a
//! fixed table of [`SLOTS`] slots, each holding a closure's data pointer and
//! the typed entry that runs it; for every signature, slot `I` has its own
//! monomorphised trampoline `slot::<Sig, I>` (an `extern "C" fn` of exactly
//! the C signature, so Rust's own `extern "C"` ABI — not libffi's generic
//! closure path — moves the arguments, structs and unions included), which
//! loads slot `I` and calls `entry(args…, data)`. A stub takes a free slot
//! when it is made and gives it back when its session's close frees it;
//! with every slot taken, stubs fall back to libffi closures
//! (`closure.rs`), which have no such limit.
//!
//! The session check stays: `entry` enters the stub's session for the
//! upcall (`protocol::enter_upcall`, as the libffi path does), unless this
//! thread holds the session open for the call already (a
//! [`StubHold`](super::protocol::StubHold): a downcall that passes the stub,
//! or [`UpcallStub::hold`](super::UpcallStub::hold)), in which case the
//! check is one thread-local compare.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
// The shim's atomics and mutex: under loom the table and its free list are
// per-execution statics (`lazy_static!`), so the slot protocol (claim,
// install, call, release, reuse) is model-checked
// (`loom-tests/tests/loom_linker.rs`, "direct typed stubs"). A slot is
// written before its trampoline's address is handed out, and whoever calls
// the trampoline got that address through its own happens-before chain (as
// with libffi's closure data), so Relaxed is enough; the free list's mutex
// orders a release before the next claim of the slot.
use crate::sync::{AtomicUsize, Mutex, Ordering};

use super::closure::{StubShared, panic_message_dropped};
use super::upcall::UpcallRet;
use crate::Error;
use crate::session::state::Core;

/// How many capturing typed stubs can be live at once on the direct path
/// (under loom 2: small enough that the models reach slot reuse and the
/// libffi fallback of a full table).
pub(crate) const SLOTS: usize = if cfg!(loom) { 2 } else { 64 };

struct Slot {
    /// The typed entry (`entry::<F, …>`), or 0 when free.
    call: AtomicUsize,
    /// The stub's `SlotData<F>`.
    data: AtomicUsize,
}

#[cfg(not(loom))]
#[allow(clippy::declare_interior_mutable_const)] // one fresh slot per array element
const FREE_SLOT: Slot = Slot {
    call: AtomicUsize::new(0),
    data: AtomicUsize::new(0),
};

#[cfg(not(loom))]
static TABLE: [Slot; SLOTS] = [FREE_SLOT; SLOTS];

/// The slot table (a plain static).
#[cfg(not(loom))]
#[inline(always)]
fn table() -> &'static [Slot; SLOTS] {
    &TABLE
}

/// The slot table (loom: fresh for every execution of a model).
#[cfg(loom)]
fn table() -> &'static [Slot; SLOTS] {
    crate::sync::lazy_static! {
        static ref TABLE: [Slot; SLOTS] = std::array::from_fn(|_| Slot {
            call: AtomicUsize::new(0),
            data: AtomicUsize::new(0),
        });
    }
    &TABLE
}

/// The free slot indices (taken from the end).
#[cfg(not(loom))]
fn free_list() -> &'static Mutex<Vec<usize>> {
    static FREE: std::sync::OnceLock<Mutex<Vec<usize>>> = std::sync::OnceLock::new();
    FREE.get_or_init(|| Mutex::new((0..SLOTS).rev().collect()))
}

/// The free slot indices (loom: fresh for every execution of a model).
#[cfg(loom)]
fn free_list() -> &'static Mutex<Vec<usize>> {
    crate::sync::lazy_static! {
        static ref FREE: Mutex<Vec<usize>> = Mutex::new((0..SLOTS).rev().collect());
    }
    &FREE
}

/// Takes a free slot index: one pop under the free list's lock.
fn claim() -> Option<usize> {
    #[cfg(loom)]
    if crate::session::state::twin_on("SlotClaimCheckThenTake") {
        // Broken: the free slot is picked under one lock and taken under
        // another, so two claimers can both take it.
        let top = free_list().lock().last().copied()?;
        let mut free = free_list().lock();
        if let Some(i) = free.iter().position(|&s| s == top) {
            free.remove(i);
        }
        return Some(top);
    }
    free_list().lock().pop()
}

/// What a slot's entry reads: the closure, its session's core and where
/// failures go. Owned by the stub's close action (through [`SlotOwner`]).
pub(crate) struct SlotData<F> {
    pub(crate) f: F,
    /// As `closure::Data::core`: a raw pointer (not a handle, or the session
    /// would own itself), valid while the data is (the close action that
    /// frees the data runs before the core can go).
    pub(crate) core: *const Core,
    pub(crate) shared: std::sync::Arc<StubShared>,
}

// SAFETY: `core` points to a `Core` (Sync) that outlives the data; `F` is
// Send + Sync (TypedUpcall's bound); `shared` is.
unsafe impl<F: Send + Sync> Send for SlotData<F> {}
// SAFETY: as for Send: shared access only reads `core` and calls `&self`
// methods of Sync types.
unsafe impl<F: Send + Sync> Sync for SlotData<F> {}

/// A taken slot and the data it points to; dropping it (the stub's close
/// action) frees the slot, after which its trampolines return zeroes.
pub(crate) struct SlotOwner {
    slot: usize,
    code: usize,
    _data: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for SlotOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotOwner({} at {:#x})", self.slot, self.code)
    }
}

impl SlotOwner {
    pub(crate) fn code(&self) -> usize {
        self.code
    }
}

impl Drop for SlotOwner {
    fn drop(&mut self) {
        // Loom: a failing model unwinds outside its execution, where no loom
        // object may be touched (the table is per execution anyway): leak.
        #[cfg(loom)]
        if std::thread::panicking() {
            return;
        }
        let s = &table()[self.slot];
        #[cfg(loom)]
        if crate::session::state::twin_on("SlotFreedBeforeClear") {
            // Broken: the slot is free before its entry is cleared, so a
            // stub that takes it at once has its entry wiped.
            free_list().lock().push(self.slot);
            s.call.store(0, Ordering::Relaxed);
            s.data.store(0, Ordering::Relaxed);
            grave(std::mem::replace(&mut self._data, Box::new(())));
            return;
        }
        s.call.store(0, Ordering::Relaxed);
        s.data.store(0, Ordering::Relaxed);
        // Only now free: the next claim (ordered after this by the lock)
        // installs over a cleared slot.
        free_list().lock().push(self.slot);
        // `_data` drops after this body, once no slot points to it.
        #[cfg(loom)]
        grave(std::mem::replace(&mut self._data, Box::new(())));
    }
}

/// Loom: a released slot's data is kept, unreachable, until the model's
/// execution ends (a per-execution static), so that a broken variant's
/// stale read of it reads its old bytes and fails the model's assertions
/// instead of a use after free that would kill the test process.
#[cfg(loom)]
fn grave(data: Box<dyn Any + Send + Sync>) {
    /// The kept data; dropped with the execution, or leaked when a failing
    /// model unwinds (no loom object may be dropped then).
    #[derive(Default)]
    struct Grave(Vec<Box<dyn Any + Send + Sync>>);
    impl Drop for Grave {
        fn drop(&mut self) {
            if std::thread::panicking() {
                std::mem::forget(std::mem::take(&mut self.0));
            }
        }
    }
    crate::sync::lazy_static! {
        static ref GRAVE: Mutex<Grave> = Mutex::new(Grave::default());
    }
    GRAVE.lock().0.push(data);
}

/// Takes a free slot for `data`, run by `entry` through `code(slot)`
/// (that signature's trampoline for the slot); `None` when all are taken.
///
/// `entry` must be the `entry::<F, …>` of the same signature as the
/// trampolines `code` returns, for data of type `SlotData<F>`.
pub(crate) fn install<F: Send + Sync + 'static>(
    data: Box<SlotData<F>>,
    code: fn(usize) -> usize,
    entry: usize,
) -> Result<SlotOwner, Box<SlotData<F>>> {
    let Some(slot) = claim() else {
        return Err(data);
    };
    let s = &table()[slot];
    let ptr: *const SlotData<F> = &*data;
    s.data.store(ptr as usize, Ordering::Relaxed);
    s.call.store(entry, Ordering::Relaxed);
    Ok(SlotOwner {
        slot,
        code: code(slot),
        _data: data,
    })
}

#[cold]
#[inline(never)]
fn fail<const ABORT: bool>(shared: &StubShared, e: Error) {
    if ABORT {
        eprintln!("memscope: upcall failed, aborting (PanicPolicy::Abort): {e}");
        std::process::abort();
    }
    let mut slot = shared.failure.lock();
    if slot.is_none() {
        *slot = Some(e);
    }
}

/// Runs the user's closure call `f`, catching a panic (recorded in
/// `shared`, or an abort) into a zeroed return value.
#[inline(always)]
fn run<R: UpcallRet, const ABORT: bool>(shared: &StubShared, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            fail::<ABORT>(
                shared,
                Error::UpcallPanicked {
                    message: panic_message_dropped(p),
                },
            );
            R::zeroed()
        }
    }
}

/// The body of every `entry`: runs `call` on the stub's data, inside the
/// session's window unless this thread holds the session open already.
///
/// # Safety
///
/// `data` is a live `SlotData<F>` of a stub whose session has not closed
/// (the caller of a stub promises that: `UpcallStub::as_fn`).
#[inline(always)]
unsafe fn enter_and_run<F, R: UpcallRet, const ABORT: bool>(
    data: *const (),
    call: impl FnOnce(&F) -> R,
) -> R {
    let data = data.cast::<SlotData<F>>();
    // SAFETY: live (the caller's contract); `core` is a plain field.
    let core = unsafe { (*data).core };
    if super::protocol::held_here(core) {
        // A hold of this thread keeps the session open for this whole
        // upcall (it acquired the session and holds a handle; it cannot be
        // dropped from inside the upcall): the data stays live.
        // SAFETY: live, as just said.
        let d = unsafe { &*data };
        return run::<R, ABORT>(&d.shared, || call(&d.f));
    }
    // As `closure::trampoline`: the window may hold the session's last
    // handle, and ending it may free the data, so the borrow of the data
    // ends (with this block) before the window does.
    let (r, window) = {
        // SAFETY: live (the caller's contract); stays live while the window
        // is open (a close waits for it, the last handle cannot drop).
        let d = unsafe { &*data };
        // SAFETY: the stub's data is live, so its close action (which frees
        // it) has not run: the core is live.
        let (access, entered) = unsafe { super::protocol::enter_upcall(core) };
        match entered {
            Ok(()) => (run::<R, ABORT>(&d.shared, || call(&d.f)), access),
            Err(e) => {
                fail::<ABORT>(&d.shared, e);
                (R::zeroed(), access)
            }
        }
    };
    drop(window);
    r
}

/// `match i { 0 => f::<S, 0> as usize, … }` over every slot.
macro_rules! slot_match {
    ($i:expr, $f:ident, $s:ident) => {
        slot_match!(@ $i, $f, $s, [
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29
            30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56
            57 58 59 60 61 62 63
        ])
    };
    (@ $i:expr, $f:ident, $s:ident, [$($n:literal)*]) => {
        match $i {
            $($n => $f::<$s, $n> as *const () as usize,)*
            _ => unreachable!("slot index out of range"),
        }
    };
}

macro_rules! arity {
    ($m:ident; $($a:ident $x:ident),*) => {
        /// Trampolines and entries for one arity.
        pub(crate) mod $m {
            use super::*;
            #[allow(unused_imports)]
            use crate::linker::upcall::UpcallArg;

            /// A signature of this arity, as one type parameter.
            pub(crate) trait Sig: 'static {
                $(type $a: UpcallArg;)*
                type R: UpcallRet;
            }
            impl<R: UpcallRet, $($a: UpcallArg),*> Sig for fn($($a),*) -> R {
                $(type $a = $a;)*
                type R = R;
            }

            /// Slot `I`'s trampoline for signature `S`: what C calls.
            extern "C" fn slot<S: Sig, const I: usize>($($x: S::$a),*) -> S::R {
                let s = &table()[I];
                let call = s.call.load(Ordering::Relaxed);
                if call == 0 {
                    // A freed slot: only a call after the stub's session
                    // closed (which the caller promised not to make) gets
                    // here; return zeroes rather than jump to nothing.
                    return <S::R as UpcallRet>::zeroed();
                }
                // SAFETY: a taken slot's `call` is the `entry` installed
                // with the trampolines of this signature (`install`'s
                // contract, upheld by `upcall::typed`): this exact type.
                let f = unsafe {
                    std::mem::transmute::<usize, unsafe extern "C" fn($(S::$a,)* *const ()) -> S::R>(call)
                };
                // SAFETY: the data is the slot's live `SlotData` (the
                // slot is taken, so its owner — and the data — is alive,
                // given the caller's promise that the session is open).
                unsafe { f($($x,)* s.data.load(Ordering::Relaxed) as *const ()) }
            }

            /// The address of slot `i`'s trampoline for signature `S`.
            pub(crate) fn code<S: Sig>(i: usize) -> usize {
                slot_match!(i, slot, S)
            }

            /// The typed entry running the closure `F` on its slot's data.
            ///
            /// # Safety
            ///
            /// Called only by `slot` with a taken slot's data, which is a
            /// live `SlotData<F>`.
            pub(crate) unsafe extern "C" fn entry<F, R, $($a,)* const ABORT: bool>(
                $($x: $a,)*
                data: *const (),
            ) -> R
            where
                F: Fn($($a),*) -> R + Send + Sync + 'static,
                R: UpcallRet,
                $($a: UpcallArg,)*
            {
                // SAFETY: forwarded (# Safety).
                unsafe { enter_and_run::<F, R, ABORT>(data, |f: &F| f($($x),*)) }
            }
        }
    };
}

arity!(a0;);
arity!(a1; A a);
arity!(a2; A a, B b);
arity!(a3; A a, B b, C c);
arity!(a4; A a, B b, C c, D d);
arity!(a5; A a, B b, C c, D d, E e);
arity!(a6; A a, B b, C c, D d, E e, G g);
