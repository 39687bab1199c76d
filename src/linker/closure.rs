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
    /// dropped) at the latest while the core is being dropped.
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

    #[inline(always)]
    fn run(&self, args: ArgViews<'_>, ret: &mut [u8]) {
        // The session must still be open (close waits for entered upcalls
        // before it frees anything). A confined session's upcall from
        // another thread is refused here.
        // SAFETY: see the `core` field: the core outlives this data.
        let core = unsafe { &*self.core };
        let access = match super::protocol::enter_upcall(core) {
            Ok(a) => a,
            Err(e) => {
                ret.fill(0);
                return self.fail(e);
            }
        };
        let r = catch_unwind(AssertUnwindSafe(|| self.handler.handle(args, ret)));
        drop(access);
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                ret.fill(0);
                self.fail(e)
            }
            Err(p) => {
                ret.fill(0);
                self.fail(Error::UpcallPanicked {
                    message: message(&*p),
                })
            }
        }
    }
}

unsafe extern "C" fn trampoline<H: Handler>(
    _cif: &ffi_cif,
    result: &mut u8,
    args: *const *const c_void,
    data: &Data<H>,
) {
    let views = ArgViews {
        ptrs: args,
        sizes: &data.sizes,
    };
    // SAFETY: libffi hands the closure a return buffer of at least
    // max(return size, sizeof(ffi_arg) = 8) bytes (`ret_bytes` is exactly
    // that), exclusively ours until we return.
    let ret = unsafe { super::cif::zeroed_bytes_mut((result as *mut u8).cast(), data.ret_bytes) };
    // No unwinding past this point: `run` catches panics in user code, and
    // its own code (locking, formatting) aborts via the extern "C" ABI
    // rather than unwinding if it ever panicked.
    data.run(views, ret);
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
        core: session.core(),
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
    // `trampoline::<H>` matches libffi's callback ABI with userdata Data<H>.
    let st = unsafe { low::prep_closure(closure, cif.raw(), trampoline::<H>, data_ptr, code) };
    let owner = ClosureOwner {
        closure,
        code: code.as_ptr() as usize,
        _cif: cif,
        _data: data,
    };
    st.map_err(|e| Error::InvalidSignature {
        reason: format!("libffi could not prepare the closure: {e:?}"),
    })?;
    Ok(owner)
}
