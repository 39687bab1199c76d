//! Calling C and being called back: libraries tied to sessions, symbol
//! lookup, function descriptors checked at link time, downcalls (libffi,
//! or a direct typed function pointer), upcall stubs (typed trampolines or
//! libffi closures), reading what C returns by address,
//! executable code segments and the [`bind!`](crate::bind) macro.
//!
//! Lifetimes (DESIGN.md semantics 13): a [`Library`] is unloaded by its
//! session's close unless a [`Symbol`] (or a [`Downcall`] holding one) still
//! needs it; a segment passed to a downcall is acquired for the call; an
//! [`UpcallStub`] is freed by its session's close, which waits for upcalls
//! already running.
//!
//! What is `unsafe` and why: [`Library::open`] (runs the library's
//! initialisers), [`Linker::downcall`] (the descriptor must match the C
//! function: that cannot be checked), [`Symbol::as_fn`] /
//! [`UpcallStub::as_fn`] (the Rust type must match), [`Symbol::from_address`]
//! and [`Library::global`] (nothing keeps a bare address alive). Everything
//! else — argument checking, marshaling, upcall panics — is safe.
//!
//! # Examples
//!
//! ```
//! use memscope::layout::c;
//! use memscope::linker::{DowncallOptions, FunctionDescriptor, Library, Linker, SymbolLookup};
//! use memscope::marshal::Value;
//! let abs = Library::libc()?.lookup("abs")?;
//! // SAFETY: `int abs(int)`.
//! let f = unsafe {
//!     Linker::native().downcall(&abs, &FunctionDescriptor::of(Some(c::INT), &[c::INT]),
//!                               DowncallOptions::default())
//! }?;
//! assert_eq!(f.call(&[Value::I32(-3)])?, Some(Value::I32(3)));
//! # Ok::<(), memscope::Error>(())
//! ```

mod bind;
mod bind_args;
mod cif;
mod closure;
mod code;
mod descriptor;
mod direct;
mod downcall;
mod fastcall;
mod library;
#[doc(hidden)]
pub mod protocol;
mod reinterpret;
mod ty;
mod upcall;

#[doc(hidden)]
pub use bind_args::Bound;
pub use bind_args::{
    BindArg, BindRet, CPtr, CRepr, CReprField, CStrPtr, Callback, Errno, VaPrimitive, VarArg,
    VarArgs,
};
#[doc(hidden)]
pub use bind_args::{StubArgHold, VaTuple};
pub use closure::PanicPolicy;
pub use code::ExecutableSegment;
pub use descriptor::FunctionDescriptor;
#[doc(hidden)]
pub use downcall::RetInfo;
pub use downcall::{Arg, Downcall, DowncallOptions, DynRet, last_errno};
pub use library::{Chain, Library, Symbol, SymbolLookup, TypedFn};
pub use protocol::StubHold;
#[doc(hidden)]
pub use upcall::__typed_upcalls_via_libffi;
pub use upcall::{CScalar, TypedUpcall, UpcallArg, UpcallRet, UpcallStub};

#[doc(hidden)]
pub use closure::ArgViews;
#[doc(hidden)]
pub use upcall::ScalarKind;

use crate::marshal::Value;
use crate::{Result, Session};

/// The native linker (Java `Linker.nativeLinker()`): makes downcalls and
/// upcall stubs for the platform's C calling convention.
///
/// # Examples
///
/// ```
/// let l = memscope::linker::Linker::native();
/// # let _ = l;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Linker {
    _private: (),
}

impl Linker {
    /// The linker for this platform's C ABI.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = memscope::linker::Linker::native();
    /// ```
    pub fn native() -> Linker {
        Linker { _private: () }
    }

    /// Links `symbol` as a function with signature `descriptor`: checks the
    /// signature and prepares the libffi call once.
    ///
    /// # Safety
    ///
    /// `descriptor` must match the C function's real signature (argument
    /// and return types, variadic position); nothing can check that.
    /// Calls must also respect the function's own contract (valid pointers,
    /// buffer sizes …): a C function can do anything with the pointers it
    /// is given. Given that, [`Downcall::call`] is safe: arguments are
    /// checked against the descriptor on every call.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSignature`](crate::Error::InvalidSignature) for
    /// unsupported or mismatched layouts (see [`FunctionDescriptor`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{MemoryLayout, ValueKind, c};
    /// use memscope::linker::*;
    /// let printf = Library::libc()?.lookup("printf")?;
    /// // A float in a variadic position is promoted by C: rejected.
    /// let d = FunctionDescriptor::of(Some(c::INT), &[c::POINTER, c::FLOAT]).variadic(1);
    /// let r = unsafe { Linker::native().downcall(&printf, &d, DowncallOptions::default()) };
    /// assert!(matches!(r, Err(memscope::Error::InvalidSignature { .. })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "downcallHandle")]
    pub unsafe fn downcall(
        &self,
        symbol: &Symbol,
        descriptor: &FunctionDescriptor,
        options: DowncallOptions,
    ) -> Result<Downcall> {
        Downcall::link(symbol, descriptor, options, |cif, sig| {
            let ret = sig.ret.as_ref().map_or(0, |r| r.size);
            // A non-variadic signature of basic scalars is called directly.
            let direct = if sig.fixed.is_none() {
                let args: Vec<_> = sig.args.iter().map(|a| a.scalar).collect();
                fastcall::select(&args, sig.ret.as_ref().map(|r| r.scalar))
            } else {
                None
            };
            // SAFETY: the caller promises the descriptor (from which `cif`
            // the sizes and `direct` were derived) matches the function at `symbol`,
            // which the Downcall keeps alive by holding the symbol.
            unsafe { cif::CallPlan::new(cif, symbol.address().0, &sig.sizes(), ret, direct) }
        })
    }

    /// An upcall stub running `f` with signature `descriptor`, freed when
    /// `session` closes. Arguments arrive as [`Value`]s; the returned value
    /// must match the return layout (ignored for `void`). On a panic the
    /// default policy applies ([`PanicPolicy::ReturnDefault`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSignature`](crate::Error::InvalidSignature) as for
    /// downcalls (and for variadic descriptors); [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// use memscope::linker::*;
    /// use memscope::marshal::Value;
    /// use memscope::Session;
    /// let s = Session::shared();
    /// let d = FunctionDescriptor::of(Some(c::LONG), &[c::LONG, c::LONG]);
    /// let stub = Linker::native().upcall(|a: &[Value]| match (&a[0], &a[1]) {
    ///     (Value::I64(x), Value::I64(y)) => Value::I64(x - y),
    ///     _ => unreachable!(),
    /// }, &d, &s)?;
    /// // Call it back through a downcall.
    /// let sym = unsafe { Symbol::from_address(stub.address()) }?;
    /// let f = unsafe { Linker::native().downcall(&sym, &d, DowncallOptions::default()) }?;
    /// assert_eq!(f.call(&[Value::I64(10), Value::I64(3)])?, Some(Value::I64(7)));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "upcallStub")]
    #[doc(alias = "trampoline")]
    pub fn upcall<F>(
        &self,
        f: F,
        descriptor: &FunctionDescriptor,
        session: &Session,
    ) -> Result<UpcallStub>
    where
        F: Fn(&[Value]) -> Value + Send + Sync + 'static,
    {
        self.upcall_with(f, descriptor, session, PanicPolicy::default())
    }

    /// [`upcall`](Self::upcall) with an explicit [`PanicPolicy`].
    ///
    /// # Errors
    ///
    /// As [`upcall`](Self::upcall).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// use memscope::linker::*;
    /// let s = memscope::Session::shared();
    /// let d = FunctionDescriptor::of(None, &[]);
    /// let stub = Linker::native().upcall_with(|_| memscope::marshal::Value::I32(0), &d, &s,
    ///                                         PanicPolicy::Abort)?;
    /// # let _ = stub;
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn upcall_with<F>(
        &self,
        f: F,
        descriptor: &FunctionDescriptor,
        session: &Session,
        policy: PanicPolicy,
    ) -> Result<UpcallStub>
    where
        F: Fn(&[Value]) -> Value + Send + Sync + 'static,
    {
        upcall::dynamic(f, descriptor.check()?, session, policy)
    }

    /// An upcall stub for a typed closure `Fn(A, B, ..) -> R` (up to 6
    /// arguments): the signature comes from the types — C scalars,
    /// [`Address`](crate::Address), and `c_struct!`/`c_union!` values by
    /// value ([`UpcallArg`]; `R = ()` is `void`). No [`Value`]s are built:
    /// this is the fast path (PERFORMANCE.md row 13).
    ///
    /// A *stateless* closure (zero-sized: it captures nothing) needs no
    /// data at all: its stub is a plain monomorphised `extern "C" fn` that
    /// catches panics, so it costs about as much as a C callback; it has no
    /// state for the session to guard, so it does not enter the session
    /// (and works from any thread even for a confined session). Its panics
    /// are kept per closure type. A *capturing* closure runs from a direct
    /// typed trampoline (one of 64 slots; a libffi closure once all are
    /// taken) whose data the session's close frees; each upcall enters the
    /// session first (a confined session's stub refuses other threads),
    /// unless the calling thread holds the session already — a downcall
    /// passing the stub as [`Arg::Stub`] does, and so does
    /// [`UpcallStub::hold`] — which makes the check one thread-local
    /// compare.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed) if the session is closed;
    /// [`Error::InvalidSignature`](crate::Error::InvalidSignature) for a
    /// type C cannot pass by value;
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if libffi cannot
    /// allocate the stub.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, linker::Linker};
    /// let s = Session::shared();
    /// let stub = Linker::native().upcall_typed(|x: f64| x * 2.0, &s)?;
    /// let f = unsafe { stub.as_fn::<extern "C" fn(f64) -> f64>() }?;
    /// assert_eq!(f(1.25), 2.5);
    /// // Structs by value, in and out, with captured state.
    /// memscope::c_struct! {
    ///     #[derive(Clone, Copy, Debug, PartialEq)]
    ///     struct Pt { x: f64, y: f64 }
    /// }
    /// let k = 3.0;
    /// let scale = Linker::native().upcall_typed(move |p: Pt| Pt { x: p.x * k, y: p.y * k }, &s)?;
    /// let g = unsafe { scale.as_fn::<extern "C" fn(Pt) -> Pt>() }?;
    /// assert_eq!(g(Pt { x: 1.0, y: -2.0 }), Pt { x: 3.0, y: -6.0 });
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "upcallStub")]
    #[doc(alias = "CFUNCTYPE")]
    pub fn upcall_typed<F, Args>(&self, f: F, session: &Session) -> Result<UpcallStub>
    where
        F: TypedUpcall<Args>,
        Args: 'static,
    {
        upcall::typed(f, session, PanicPolicy::default())
    }

    /// [`upcall_typed`](Self::upcall_typed) with an explicit [`PanicPolicy`].
    ///
    /// # Errors
    ///
    /// As [`upcall_typed`](Self::upcall_typed).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, linker::{Linker, PanicPolicy}};
    /// let s = Session::shared();
    /// let stub = Linker::native().upcall_typed_with(|| 7u8, &s, PanicPolicy::Abort)?;
    /// let f = unsafe { stub.as_fn::<extern "C" fn() -> u8>() }?;
    /// assert_eq!(f(), 7);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn upcall_typed_with<F, Args>(
        &self,
        f: F,
        session: &Session,
        policy: PanicPolicy,
    ) -> Result<UpcallStub>
    where
        F: TypedUpcall<Args>,
        Args: 'static,
    {
        upcall::typed(f, session, policy)
    }
}
