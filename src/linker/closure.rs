//! libffi closures: the executable stubs behind upcalls.
//!
//! One of the few files with `unsafe` code. A stub is an `ffi_closure`
//! (allocated by libffi in executable memory) whose user data is a boxed
//! [`Handler`]; libffi calls [`trampoline`] with raw argument pointers,
//! which this file turns into bounded byte views before any safe code runs.

use std::ffi::c_void;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use libffi::low::{self, CodePtr, ffi_cif, ffi_closure};

use super::cif::PreparedCif;
use crate::{Error, Result, Session};

/// The arguments of one upcall as byte views (`sizes[i]` bytes each).
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct ArgViews<'a> {
    ptrs: *const *const c_void,
    sizes: &'a [usize],
}

impl<'a> ArgViews<'a> {
    /// Argument `i`'s bytes.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> &'a [u8] {
        let len = self.sizes[i]; // bounds-checked: i < number of arguments
        // SAFETY: libffi passes one pointer per argument of the closure's
        // cif (`sizes` was built from the same signature, so `i` indexes a
        // real argument), each to a live, initialised copy of that
        // argument of `sizes[i]` bytes that outlives the upcall.
        unsafe { std::slice::from_raw_parts((*self.ptrs.add(i)).cast::<u8>(), len) }
    }
}

/// What a stub runs: the safe side of an upcall.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Reads the arguments, runs the user's code, writes the return value
    /// into `ret` (which is `max(return size, 8)` bytes, zeroed).
    fn handle(&self, args: ArgViews<'_>, ret: &mut [u8]) -> Result<()>;
}

/// What to do when the Rust side of an upcall panics (DESIGN.md
/// semantics 15). The panic never unwinds into C.
///
/// # Examples
///
/// ```
/// use memscope::linker::PanicPolicy;
/// assert_eq!(PanicPolicy::default(), PanicPolicy::ReturnDefault);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PanicPolicy {
    /// Return a zeroed value to C and keep the panic's message for
    /// [`UpcallStub::take_panic`](super::UpcallStub::take_panic) (the default).
    #[default]
    ReturnDefault,
    /// Print the message and abort the process.
    Abort,
}

/// Per-stub state shared between the stub's handle and its user data.
#[derive(Debug, Default)]
pub(crate) struct StubShared {
    /// The first caught panic (or upcall error) not yet taken.
    pub(crate) failure: crate::sync::Mutex<Option<Error>>,
}

struct Data<H> {
    handler: H,
    sizes: Vec<usize>,
    ret_bytes: usize,
    /// The stub's session core. Not a `Session` handle: that would make the
    /// session own itself (the data lives in one of its close actions) and
    /// an unclosed session would never be dropped. The core outlives the
    /// data: the data is owned by a close action, which runs (and is
    /// dropped) at the latest when the last handle drops; a running upcall
    /// holds a handle of its own (`Handle::from_stub`) until its window
    /// ends. From `Session::core_ptr` (the provenance of the whole boxed core).
    core: *const crate::session::state::Core,
    policy: PanicPolicy,
    shared: std::sync::Arc<StubShared>,
}

pub(crate) fn message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl<H: Handler> Data<H> {
    fn fail(&self, e: Error) {
        if self.policy == PanicPolicy::Abort {
            eprintln!("memscope: upcall failed, aborting (PanicPolicy::Abort): {e}");
            std::process::abort();
        }
        let mut slot = self.shared.failure.lock();
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// Runs one upcall inside its session window and returns the window
    /// (with its hold on the session; `None` only under the broken twin),
    /// which the trampoline ends after this borrow of the data is over:
    /// ending it may drop the session's last handle, whose close frees this
    /// data.
    #[inline(always)]
    fn run(&self, args: ArgViews<'_>, ret: &mut [u8]) -> Option<super::protocol::Entered> {
        // The session must still be open (close waits for entered upcalls
        // before it frees anything, and the window's handle keeps the last
        // handle's drop from closing under it). A confined session's upcall
        // from another thread is refused here.
        // SAFETY: see the `core` field: the core outlives this data, which
        // is live (we are running it).
        let (access, entered) = unsafe { super::protocol::enter_upcall(self.core) };
        if let Err(e) = entered {
            ret.fill(0);
            self.fail(e);
            return access; // the hold, dropped by the trampoline
        }
        let r = catch_unwind(AssertUnwindSafe(|| self.handler.handle(args, ret)));
        // Still inside the window: `fail` touches this data, which a close
        // may free once the window ends.
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                ret.fill(0);
                self.fail(e)
            }
            Err(p) => {
                ret.fill(0);
                self.fail(Error::UpcallPanicked {
                    message: panic_message_dropped(p),
                })
            }
        }
        access
    }
}

/// The message of a caught panic, and the payload dropped without letting
/// a panicking `Drop` of it escape (it would unwind into C, which aborts):
/// a payload whose drop panics is forgotten (leaked) instead.
pub(crate) fn panic_message_dropped(p: Box<dyn std::any::Any + Send>) -> String {
    let m = message(&*p);
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(p))) {
        // The drop's own payload may panic on drop too: never drop it.
        std::mem::forget(again);
    }
    m
}

/// libffi's callback for a closure made by [`make`].
///
/// # Safety
///
/// Called only by libffi, for a closure prepared by `make` with this `H`:
/// `data` is that closure's live `Data<H>`, `args` holds one pointer per
/// argument of its cif and `result` is a return buffer of at least
/// `max(return size, 8)` bytes.
unsafe extern "C" fn trampoline<H: Handler>(
    _cif: *mut ffi_cif,
    result: *mut c_void,
    args: *mut *mut c_void,
    data: *mut c_void,
) {
    // Raw pointers, not references, for the cif and the data: ending the
    // window (below) may drop the session's last handle, whose close frees
    // both while this function still runs, so no reference to them may be
    // a live argument.
    let window = {
        // SAFETY: `data` is the `Data<H>` that `make` registered with this
        // closure; it is live while the closure can be called, and stays
        // live until `window` drops (no close frees it while the window is
        // open). The borrow ends with this block.
        let data: &Data<H> = unsafe { &*data.cast::<Data<H>>() };
        let views = ArgViews {
            ptrs: args.cast_const().cast(),
            sizes: &data.sizes,
        };
        // SAFETY: libffi hands the closure a return buffer of at least
        // max(return size, sizeof(ffi_arg) = 8) bytes (`ret_bytes` is
        // exactly that), exclusively ours until we return; it is not part
        // of the data.
        let ret = unsafe { super::cif::zeroed_bytes_mut(result.cast(), data.ret_bytes) };
        // No unwinding past this point: `run` catches panics in user code
        // (and in dropping their payloads), and its own code (locking,
        // formatting) aborts via the extern "C" ABI rather than unwinding if
        // it ever panicked.
        data.run(views, ret)
    };
    drop(window);
}

// SAFETY: `core` points to a `Core` (Sync) that outlives the data (see the
// field); every other field is Send + Sync because `H` is.
unsafe impl<H: Handler> Send for Data<H> {}
// SAFETY: as for Send: shared access only reads `core` and calls `&self`
// methods of Sync types.
unsafe impl<H: Handler> Sync for Data<H> {}

/// Owns an allocated, prepared closure and everything it points to; freeing
/// it (dropping) makes the code pointer invalid.
pub(crate) struct ClosureOwner {
    closure: *mut ffi_closure,
    code: usize,
    // Both are read by the closure: dropped only after `closure_free`.
    _cif: Box<PreparedCif>,
    _data: Box<dyn std::any::Any + Send + Sync>,
}

impl fmt::Debug for ClosureOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClosureOwner({:#x})", self.code)
    }
}

// SAFETY: the closure is only freed by `Drop` (once); the cif and data it
// reads are Send + Sync; the raw pointer is not used for anything else.
unsafe impl Send for ClosureOwner {}
// SAFETY: `&ClosureOwner` exposes only the code address.
unsafe impl Sync for ClosureOwner {}

impl Drop for ClosureOwner {
    fn drop(&mut self) {
        // SAFETY: `closure` came from `closure_alloc` and is freed exactly
        // once, here; after this the code address is never handed out again
        // by memscope (the owner is gone).
        unsafe { low::closure_free(self.closure) }
    }
}

impl ClosureOwner {
    pub(crate) fn code(&self) -> usize {
        self.code
    }
}

/// Allocates and prepares a closure running `handler` for the signature
/// `cif` (argument sizes `sizes`, return size `ret_size`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn make<H: Handler>(
    cif: PreparedCif,
    handler: H,
    sizes: Vec<usize>,
    ret_size: usize,
    session: &Session,
    policy: PanicPolicy,
    shared: std::sync::Arc<StubShared>,
) -> Result<ClosureOwner> {
    let cif = Box::new(cif);
    let data = Box::new(Data {
        handler,
        sizes,
        ret_bytes: ret_size.max(8),
        core: session.core_ptr(),
        policy,
        shared,
    });
    let (closure, code): (*mut ffi_closure, CodePtr) =
        low::try_closure_alloc().ok_or(Error::OutOfMemory {
            size: size_of::<ffi_closure>(),
            align: 16,
        })?;
    let data_ptr: *const Data<H> = &*data;
    // SAFETY: `closure` and `code` were just allocated together by libffi;
    // the cif and the data are boxed (stable addresses) and owned by the
    // returned ClosureOwner, which frees the closure before dropping them.
    // `trampoline::<H>` is libffi's callback ABI with userdata Data<H>.
    let st = unsafe {
        libffi::raw::ffi_prep_closure_loc(
            closure,
            cif.raw(),
            Some(trampoline::<H>),
            data_ptr.cast_mut().cast(),
            code.as_mut_ptr(),
        )
    };
    let owner = ClosureOwner {
        closure,
        code: code.as_ptr() as usize,
        _cif: cif,
        _data: data,
    };
    if st != libffi::raw::ffi_status_FFI_OK {
        return Err(Error::InvalidSignature {
            reason: format!("libffi could not prepare the closure (status {st})"),
        });
    }
    Ok(owner)
}
