//! Upcalls: C calling Rust closures through libffi closure stubs.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::bind_args::CRepr;
use super::cif::PreparedCif;
use super::closure::{self, ArgViews, Handler, PanicPolicy, StubShared};
use super::descriptor::{ArgSpec, Checked};
use super::downcall::{get_scalar, put_scalar, read_value};
use super::ty::Scalar;
use crate::layout::MemoryLayout;
use crate::marshal::Value;
use crate::{Address, Error, Result, Session};

/// A C function pointer that runs a Rust closure (Java upcall stub, Janet
/// `ffi/trampoline`). The code stays callable until its session closes;
/// the close frees it (waiting for upcalls already running). A panic in the
/// closure never unwinds into C: see [`PanicPolicy`].
///
/// # Examples
///
/// ```
/// use memscope::{Session, linker::Linker};
/// let s = Session::shared();
/// let stub = Linker::native().upcall_typed(|a: i32, b: i32| a * b, &s)?;
/// // SAFETY: the stub has this signature and `s` is open.
/// let f = unsafe { stub.as_fn::<extern "C" fn(i32, i32) -> i32>() }?;
/// assert_eq!(f(6, 7), 42);
/// s.close()?;
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct UpcallStub {
    code: Address,
    session: Session,
    shared: std::sync::Arc<StubShared>,
    /// For stateless closures called through a direct trampoline: the
    /// closure's type, under which its panics are kept.
    direct: Option<std::any::TypeId>,
    /// Loom, the broken twin `SlotFreedWithStub` only: the slot, released
    /// with this value instead of at close.
    #[cfg(loom)]
    _early: Option<super::direct::SlotOwner>,
}

impl fmt::Debug for UpcallStub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpcallStub")
            .field("code", &self.code)
            .field("session", &self.session)
            .finish()
    }
}

impl UpcallStub {
    /// The C function pointer (valid until the session closes). Passed to
    /// a downcall as a bare [`Value::Address`] it promises nothing: the
    /// caller must keep the session open while C may call it. Pass the stub
    /// itself ([`Arg::Stub`](super::Arg::Stub)) to have the call acquire its
    /// session.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, linker::Linker};
    /// let s = Session::shared();
    /// let stub = Linker::native().upcall_typed(|| 1i32, &s)?;
    /// assert!(!stub.address().is_null());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn address(&self) -> Address {
        self.code
    }

    /// The session whose close frees the stub.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, linker::Linker};
    /// let s = Session::shared();
    /// let stub = Linker::native().upcall_typed(|| 1i32, &s)?;
    /// assert_eq!(stub.session(), &s);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Holds the stub's session open on this thread until the hold drops,
    /// around calls into C that will call the stub back: the session is
    /// acquired (`close()` gives [`Error::Busy`]; from this thread,
    /// [`Error::InUse`]), and the stub's typed upcalls on this thread skip
    /// their per-call session entry for a thread-local compare (see
    /// [`StubHold`](super::protocol::StubHold)). A downcall does this by
    /// itself for each stub passed as [`Arg::Stub`](super::Arg::Stub); use
    /// `hold` when C gets the stub otherwise (a bare function pointer
    /// through [`Symbol::as_fn`](super::Symbol::as_fn), say).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]; [`Error::WrongThread`] for a confined session
    /// from another thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session, linker::{Library, Linker, SymbolLookup}};
    /// let s = Session::confined();
    /// let flip = -1;
    /// let stub = Linker::native().upcall_typed(
    ///     move |a: memscope::Address, b: memscope::Address| {
    ///         // SAFETY: qsort passes pointers to elements of the array.
    ///         let (x, y) = unsafe { (*a.as_ptr::<i32>(), *b.as_ptr::<i32>()) };
    ///         flip * x.cmp(&y) as i32
    ///     }, &s)?;
    /// type Cmp = extern "C" fn(memscope::Address, memscope::Address) -> i32;
    /// let qsort = Library::libc()?.lookup("qsort")?;
    /// // SAFETY: libc's qsort, and the stub has the comparator's signature.
    /// let qsort = unsafe { qsort.as_fn::<unsafe extern "C" fn(*mut i32, usize, usize, Cmp)>() }?;
    /// let cmp = unsafe { stub.as_fn::<Cmp>() }?;
    /// let mut v = [3, 1, 2];
    /// {
    ///     let _hold = stub.hold()?; // one session entry for the whole sort
    ///     // SAFETY: `v` holds 3 ints; the stub stays callable (held).
    ///     unsafe { (qsort.get())(v.as_mut_ptr(), 3, 4, cmp) };
    /// }
    /// assert_eq!(v, [3, 2, 1]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn hold(&self) -> Result<super::protocol::StubHold> {
        super::protocol::StubHold::new(&self.session)
    }

    /// The first panic (as [`Error::UpcallPanicked`]) or upcall error (e.g.
    /// a return value that does not match the descriptor, an upcall from the
    /// wrong thread of a confined session) since the last call, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Error, Session, linker::Linker};
    /// let s = Session::shared();
    /// let stub = Linker::native().upcall_typed(|x: i32| -> i32 { if x < 0 { panic!("negative") } x }, &s)?;
    /// let f = unsafe { stub.as_fn::<extern "C" fn(i32) -> i32>() }?;
    /// assert_eq!(f(-1), 0); // the default (zeroed) return value
    /// assert_eq!(stub.take_panic(), Some(Error::UpcallPanicked { message: "negative".into() }));
    /// assert_eq!(stub.take_panic(), None);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn take_panic(&self) -> Option<Error> {
        let mine = self.shared.failure.lock().take();
        mine.or_else(|| self.direct.and_then(take_direct_failure))
    }

    /// The stub as a Rust function pointer of type `F`.
    ///
    /// # Safety
    ///
    /// `F` must be an `extern "C" fn` type matching the stub's signature,
    /// and the pointer must not be called after the session has closed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSignature`] if `F` is not pointer-sized;
    /// [`Error::Closed`] if the session has closed.
    ///
    /// # Examples
    ///
    /// See [`UpcallStub`].
    pub unsafe fn as_fn<F: Copy>(&self) -> Result<F> {
        if size_of::<F>() != size_of::<usize>() {
            return Err(Error::InvalidSignature {
                reason: format!("{} is not a function pointer", std::any::type_name::<F>()),
            });
        }
        #[cfg(loom)]
        if crate::session::state::twin_on("AsFnNoEnter") {
            // SAFETY: none (the broken twin: the pointer is handed out
            // unchecked; the loom model never calls it after close).
            return Ok(unsafe { std::mem::transmute_copy::<usize, F>(&self.code.0) });
        }
        drop(self.session.enter()?);
        // SAFETY: pointer-sized (checked) and, by the caller's promise, a
        // matching function pointer type; the code is live (session open).
        Ok(unsafe { std::mem::transmute_copy::<usize, F>(&self.code.0) })
    }
}

/// Scalar types a typed upcall can take and return (sealed): the integer
/// types, `f32`, `f64`, `bool`, `usize`, [`Address`], and `()` (as a
/// return type: `void`).
///
/// # Examples
///
/// ```
/// fn takes<T: memscope::linker::CScalar>() {}
/// takes::<i16>();
/// takes::<memscope::Address>();
/// ```
pub trait CScalar: Copy + Send + Sync + 'static + private::Sealed {
    #[doc(hidden)]
    const KIND: ScalarKind;
    #[doc(hidden)]
    fn from_arg(bytes: &[u8]) -> Self;
    #[doc(hidden)]
    fn to_ret(self, ret: &mut [u8]);
}

/// Hidden: the C scalar kind of a [`CScalar`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct ScalarKind(#[allow(dead_code)] pub(crate) Scalar);

mod private {
    pub trait Sealed {}
}

macro_rules! cscalar {
    ($($t:ty => $k:ident, $wide:ty;)*) => {$(
        impl private::Sealed for $t {}
        impl CScalar for $t {
            const KIND: ScalarKind = ScalarKind(Scalar::$k);
            #[inline(always)]
            fn from_arg(b: &[u8]) -> Self {
                let mut a = [0u8; size_of::<$t>()];
                a.copy_from_slice(&b[..size_of::<$t>()]);
                <$t>::from_ne_bytes(a)
            }
            #[inline(always)]
            fn to_ret(self, ret: &mut [u8]) {
                // Small integers are returned widened to a full register.
                let w = self as $wide;
                let b = w.to_ne_bytes();
                ret[..b.len()].copy_from_slice(&b);
            }
        }
    )*};
}

cscalar! {
    i8 => I8, i64; u8 => U8, u64; i16 => I16, i64; u16 => U16, u64;
    i32 => I32, i64; u32 => U32, u64; i64 => I64, i64; u64 => U64, u64;
    f32 => F32, f32; f64 => F64, f64;
}

impl private::Sealed for bool {}
impl CScalar for bool {
    const KIND: ScalarKind = ScalarKind(Scalar::Bool);
    #[inline(always)]
    fn from_arg(b: &[u8]) -> Self {
        b[0] != 0
    }
    #[inline(always)]
    fn to_ret(self, ret: &mut [u8]) {
        ret[..8].copy_from_slice(&u64::from(self).to_ne_bytes());
    }
}

impl private::Sealed for Address {}
impl CScalar for Address {
    const KIND: ScalarKind = ScalarKind(Scalar::Address);
    #[inline(always)]
    fn from_arg(b: &[u8]) -> Self {
        Address(<usize as CScalar>::from_arg(b))
    }
    #[inline(always)]
    fn to_ret(self, ret: &mut [u8]) {
        ret[..size_of::<usize>()].copy_from_slice(&self.0.to_ne_bytes());
    }
}

impl private::Sealed for usize {}
impl CScalar for usize {
    const KIND: ScalarKind = ScalarKind(Scalar::U64);
    #[inline(always)]
    fn from_arg(b: &[u8]) -> Self {
        let mut a = [0u8; size_of::<usize>()];
        a.copy_from_slice(&b[..size_of::<usize>()]);
        usize::from_ne_bytes(a)
    }
    #[inline(always)]
    fn to_ret(self, ret: &mut [u8]) {
        ret[..size_of::<usize>()].copy_from_slice(&self.to_ne_bytes());
    }
}

impl private::Sealed for () {}
/// `()` as a return type means `void`.
impl CScalar for () {
    const KIND: ScalarKind = ScalarKind(Scalar::U8); // unused: see `RetKind`
    #[inline(always)]
    fn from_arg(_: &[u8]) -> Self {}
    #[inline(always)]
    fn to_ret(self, _: &mut [u8]) {}
}

/// Argument types of a typed upcall ([`Linker::upcall_typed`]): every
/// `Copy` [`CRepr`] type — the C scalars, `bool`, `usize`/`isize`,
/// [`Address`], and the structs and unions that [`c_struct!`](crate::c_struct)
/// and [`c_union!`](crate::c_union) declare, passed by value as C passes
/// them. Implemented for all of them; its methods are hidden.
///
/// [`Linker::upcall_typed`]: super::Linker::upcall_typed
///
/// # Examples
///
/// ```
/// fn arg<T: memscope::linker::UpcallArg>() {}
/// memscope::c_struct! {
///     #[derive(Clone, Copy, Debug)]
///     struct Pt { x: f64, y: f64 }
/// }
/// arg::<i16>();
/// arg::<memscope::Address>();
/// arg::<Pt>();
/// ```
pub trait UpcallArg: Copy + 'static {
    #[doc(hidden)]
    fn layout() -> MemoryLayout;
    #[doc(hidden)]
    fn from_arg(bytes: &[u8]) -> Self;
}

impl<T: CRepr + Copy + 'static> UpcallArg for T {
    fn layout() -> MemoryLayout {
        <T as crate::marshal::Marshal>::layout()
    }
    #[inline(always)]
    fn from_arg(bytes: &[u8]) -> Self {
        assert!(bytes.len() >= size_of::<T>(), "argument view too short");
        // SAFETY: `bytes` holds at least `size_of::<T>()` initialised bytes
        // (asserted), read unaligned; `CRepr` promises that every bit
        // pattern C can pass in a `T` is a valid `T`.
        unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
    }
}

/// Return types of a typed upcall: every `Copy` [`CRepr`] type (as for
/// [`UpcallArg`]) and `()` for `void`. Implemented for all of them; its
/// methods are hidden.
///
/// # Examples
///
/// ```
/// fn ret<T: memscope::linker::UpcallRet>() {}
/// ret::<()>();
/// ret::<f64>();
/// ```
pub trait UpcallRet: Sized + 'static {
    #[doc(hidden)]
    fn layout() -> Option<MemoryLayout>;
    #[doc(hidden)]
    fn to_ret(self, ret: &mut [u8]);
    /// The value returned to C when the closure panicked or was refused.
    #[doc(hidden)]
    fn zeroed() -> Self;
}

impl<T: CRepr + Copy + 'static> UpcallRet for T {
    fn layout() -> Option<MemoryLayout> {
        Some(<T as crate::marshal::Marshal>::layout())
    }
    #[inline(always)]
    fn to_ret(self, ret: &mut [u8]) {
        assert!(ret.len() >= size_of::<T>(), "return buffer too short");
        // SAFETY: `ret` has room for a `T` (asserted); written unaligned.
        // (libffi reads small integers back with their own width.)
        unsafe { std::ptr::write_unaligned(ret.as_mut_ptr().cast::<T>(), self) }
    }
    #[inline(always)]
    fn zeroed() -> Self {
        // SAFETY: `CRepr` promises every bit pattern C can hand back is a
        // valid `T`; all-zero is one (C's zero-initialised value).
        unsafe { std::mem::zeroed() }
    }
}

impl UpcallRet for () {
    fn layout() -> Option<MemoryLayout> {
        None
    }
    #[inline(always)]
    fn to_ret(self, _: &mut [u8]) {}
    #[inline(always)]
    fn zeroed() -> Self {}
}

/// Closures usable with [`Linker::upcall_typed`](super::Linker::upcall_typed):
/// `Fn(A, B, ..) -> R` (up to 6 arguments) over [`UpcallArg`] types
/// (scalars, [`Address`], `c_struct!`/`c_union!` values by value), `R` an
/// [`UpcallRet`] (`()` for `void`). Implemented for every such closure; not
/// implementable otherwise in practice (its methods are hidden).
///
/// # Examples
///
/// ```
/// use memscope::linker::TypedUpcall;
/// fn accepts<Args, F: TypedUpcall<Args>>(_: F) {}
/// accepts(|a: i32, b: f64| a as f64 + b);
/// accepts(|| ());
/// memscope::c_struct! {
///     #[derive(Clone, Copy, Debug)]
///     struct Pt { x: f64, y: f64 }
/// }
/// accepts(|p: Pt, k: f64| Pt { x: p.x * k, y: p.y * k });
/// ```
pub trait TypedUpcall<Args>: Send + Sync + 'static {
    #[doc(hidden)]
    fn signature() -> (Vec<MemoryLayout>, Option<MemoryLayout>);
    #[doc(hidden)]
    fn invoke(&self, args: ArgViews<'_>, ret: &mut [u8]);
    #[doc(hidden)]
    fn direct(policy: PanicPolicy) -> Option<usize>;
    /// The slot trampolines of this signature (`direct.rs`).
    #[doc(hidden)]
    fn slot_code() -> fn(usize) -> usize;
    /// The typed entry that runs this closure type from a slot.
    #[doc(hidden)]
    fn slot_entry(policy: PanicPolicy) -> usize;
}

macro_rules! typed_upcall {
    ($m:ident; $($a:ident $x:ident $i:tt),*) => {
        /// The direct (no libffi) trampoline for stateless closures.
        mod $m {
            use super::*;

            /// A C-callable function that runs the zero-sized closure `F`.
            pub(super) extern "C" fn tramp<F, R, $($a,)* const ABORT: bool>($($x: $a),*) -> R
            where
                F: Fn($($a),*) -> R + Send + Sync + 'static,
                R: UpcallRet,
                $($a: UpcallArg,)*
            {
                let f = super::zst_ref::<F>();
                match catch_unwind(AssertUnwindSafe(|| f($($x),*))) {
                    Ok(r) => r,
                    Err(p) => {
                        super::direct_failed::<F>(p, ABORT);
                        R::zeroed()
                    }
                }
            }
        }

        impl<F, R, $($a,)*> TypedUpcall<($($a,)*)> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
            R: UpcallRet,
            $($a: UpcallArg,)*
        {
            fn signature() -> (Vec<MemoryLayout>, Option<MemoryLayout>) {
                (vec![$($a::layout()),*], R::layout())
            }
            #[inline(always)]
            #[allow(unused_variables)]
            fn invoke(&self, args: ArgViews<'_>, ret: &mut [u8]) {
                let r = self($($a::from_arg(args.get($i))),*);
                r.to_ret(ret);
            }
            fn direct(policy: PanicPolicy) -> Option<usize> {
                if size_of::<F>() != 0 {
                    return None;
                }
                let f: extern "C" fn($($a),*) -> R = match policy {
                    PanicPolicy::ReturnDefault => $m::tramp::<F, R, $($a,)* false>,
                    PanicPolicy::Abort => $m::tramp::<F, R, $($a,)* true>,
                };
                Some(f as usize)
            }
            fn slot_code() -> fn(usize) -> usize {
                super::direct::$m::code::<fn($($a),*) -> R>
            }
            fn slot_entry(policy: PanicPolicy) -> usize {
                let f: unsafe extern "C" fn($($a,)* *const ()) -> R = match policy {
                    PanicPolicy::ReturnDefault => super::direct::$m::entry::<F, R, $($a,)* false>,
                    PanicPolicy::Abort => super::direct::$m::entry::<F, R, $($a,)* true>,
                };
                f as usize
            }
        }
    };
}

typed_upcall!(a0;);
typed_upcall!(a1; A a 0);
typed_upcall!(a2; A a 0, B b 1);
typed_upcall!(a3; A a 0, B b 1, C c 2);
typed_upcall!(a4; A a 0, B b 1, C c 2, D d 3);
typed_upcall!(a5; A a 0, B b 1, C c 2, D d 3, E e 4);
typed_upcall!(a6; A a 0, B b 1, C c 2, D d 3, E e 4, G g 5);

/// A reference to a value of the zero-sized closure type `F`.
///
/// Only called from trampolines handed out for closures with
/// `size_of::<F>() == 0` (checked in `direct`), whose one real value is
/// owned by the stub's close action: a ZST has no bytes and no address
/// identity, so a shared reference at a dangling, aligned address is a
/// reference to that value (the same thing `Box<ZST>` does).
fn zst_ref<F>() -> &'static F {
    assert!(size_of::<F>() == 0, "zst_ref on a sized closure");
    // SAFETY: `F` is zero-sized (asserted): any aligned non-null pointer is
    // valid for reads of 0 bytes; the value is the one the stub owns (see
    // above), and `Fn` only needs `&F`.
    unsafe { std::ptr::NonNull::<F>::dangling().as_ref() }
}

type Failures = crate::sync::Mutex<Vec<(std::any::TypeId, Error)>>;

/// Panics caught in direct trampolines, by closure type (stateless stubs
/// have nowhere else to keep them).
fn direct_failures() -> &'static Failures {
    static F: std::sync::OnceLock<Failures> = std::sync::OnceLock::new();
    F.get_or_init(Default::default)
}

#[cold]
#[inline(never)]
fn direct_failed<F: 'static>(p: Box<dyn std::any::Any + Send>, abort: bool) {
    let e = Error::UpcallPanicked {
        message: closure::panic_message_dropped(p),
    };
    if abort {
        eprintln!("memscope: upcall failed, aborting (PanicPolicy::Abort): {e}");
        std::process::abort();
    }
    let id = std::any::TypeId::of::<F>();
    let mut v = direct_failures().lock();
    if !v.iter().any(|(t, _)| *t == id) {
        v.push((id, e));
    }
}

fn take_direct_failure(id: std::any::TypeId) -> Option<Error> {
    let mut v = direct_failures().lock();
    let i = v.iter().position(|(t, _)| *t == id)?;
    Some(v.swap_remove(i).1)
}

struct Typed<F, Args> {
    f: F,
    _args: PhantomData<fn(Args)>,
}

impl<F: TypedUpcall<Args>, Args: 'static> Handler for Typed<F, Args> {
    #[inline(always)]
    fn handle(&self, args: ArgViews<'_>, ret: &mut [u8]) -> Result<()> {
        self.f.invoke(args, ret);
        Ok(())
    }
}

struct Dynamic<F> {
    f: F,
    sig: Checked,
}

fn write_ret(ret: &mut [u8], spec: &ArgSpec, v: &Value) -> Result<()> {
    let bad = || Error::InvalidArgument {
        reason: format!("upcall returned {v:?} for layout {:?}", spec.layout),
    };
    match spec.scalar {
        Some(s) => {
            // Widen small integers to a full register, as libffi expects.
            let wide = match (s, v) {
                (Scalar::I8, Value::I8(x)) => Some(Value::I64((*x).into())),
                (Scalar::I16, Value::I16(x)) => Some(Value::I64((*x).into())),
                (Scalar::I32, Value::I32(x)) => Some(Value::I64((*x).into())),
                (Scalar::U8, Value::U8(x)) => Some(Value::U64((*x).into())),
                (Scalar::U16, Value::U16(x)) => Some(Value::U64((*x).into())),
                (Scalar::U32, Value::U32(x)) => Some(Value::U64((*x).into())),
                (Scalar::Bool, Value::Bool(x)) => Some(Value::U64((*x).into())),
                _ => None,
            };
            match wide {
                Some(w @ Value::I64(_)) => put_scalar(ret, 0, Scalar::I64, &w),
                Some(w) => put_scalar(ret, 0, Scalar::U64, &w),
                None => put_scalar(ret, 0, s, v),
            }
            .ok_or_else(bad)
        }
        None => {
            let out = &mut ret[..spec.size];
            if super::downcall::encode_shape(&spec.shape, v, out) {
                Ok(())
            } else {
                v.encode(&spec.layout, out)
                    .map_err(|e| Error::InvalidArgument {
                        reason: format!("upcall return value: {e}"),
                    })
            }
        }
    }
}

impl<F: Fn(&[Value]) -> Value + Send + Sync + 'static> Handler for Dynamic<F> {
    fn handle(&self, args: ArgViews<'_>, ret: &mut [u8]) -> Result<()> {
        let mut vals = Vec::with_capacity(self.sig.args.len());
        for (i, spec) in self.sig.args.iter().enumerate() {
            vals.push(match spec.scalar {
                Some(s) => get_scalar(args.get(i), 0, s),
                None => read_value(args.get(i), 0, spec)?,
            });
        }
        let r = (self.f)(&vals);
        match &self.sig.ret {
            None => Ok(()),
            Some(spec) => write_ret(ret, spec, &r),
        }
    }
}

pub(crate) fn install<H: Handler>(
    handler: H,
    cif: PreparedCif,
    sizes: Vec<usize>,
    ret_size: usize,
    session: &Session,
    policy: PanicPolicy,
) -> Result<UpcallStub> {
    let shared = std::sync::Arc::new(StubShared::default());
    let owner = closure::make(
        cif,
        handler,
        sizes,
        ret_size,
        session,
        policy,
        shared.clone(),
    )?;
    let code = Address(owner.code());
    // The close action owns the closure: closing the session frees it. If
    // the session is already closed the action runs (frees) at once.
    session.add_close_action(move || drop(owner))?;
    Ok(UpcallStub {
        code,
        session: session.clone(),
        shared,
        direct: None,
        #[cfg(loom)]
        _early: None,
    })
}

pub(crate) fn dynamic<F>(
    f: F,
    sig: Checked,
    session: &Session,
    policy: PanicPolicy,
) -> Result<UpcallStub>
where
    F: Fn(&[Value]) -> Value + Send + Sync + 'static,
{
    if sig.fixed.is_some() {
        return Err(Error::InvalidSignature {
            reason: "an upcall cannot be variadic".into(),
        });
    }
    let cif = PreparedCif::new(&sig.arg_ffi(), sig.ret.as_ref().map(|r| &r.ffi), None)?;
    let sizes = sig.sizes();
    let ret_size = sig.ret.as_ref().map_or(0, |r| r.size);
    install(Dynamic { f, sig }, cif, sizes, ret_size, session, policy)
}

pub(crate) fn typed<F, Args>(f: F, session: &Session, policy: PanicPolicy) -> Result<UpcallStub>
where
    F: TypedUpcall<Args>,
    Args: 'static,
{
    // The C signature from the Rust types, checked as a descriptor's is
    // (a c_struct! that C cannot pass by value is refused here).
    let (args, ret) = F::signature();
    let sig = super::FunctionDescriptor::of(ret, &args).check()?;
    if let Some(code) = F::direct(policy) {
        // A stateless closure: a plain `extern "C" fn` runs it, no libffi
        // closure and no session entry are needed (there is no state for
        // the close to free). The closure value itself is kept until close.
        let shared = std::sync::Arc::new(StubShared::default());
        session.add_close_action(move || drop(f))?;
        return Ok(UpcallStub {
            code: Address(code),
            session: session.clone(),
            shared,
            direct: Some(std::any::TypeId::of::<F>()),
            #[cfg(loom)]
            _early: None,
        });
    }
    // A capturing closure: a direct typed trampoline through a free slot
    // (direct.rs), or a libffi closure when every slot is taken.
    let shared = std::sync::Arc::new(StubShared::default());
    let data = Box::new(super::direct::SlotData {
        f,
        core: session.core_ptr(),
        shared: shared.clone(),
    });
    let installed = if via_libffi() {
        Err(data)
    } else {
        super::direct::install(data, F::slot_code(), F::slot_entry(policy))
    };
    let f = match installed {
        Ok(owner) => {
            let code = Address(owner.code());
            #[cfg(loom)]
            if crate::session::state::twin_on("SlotFreedWithStub") {
                // Broken: the slot goes with the stub value, not the session.
                return Ok(UpcallStub {
                    code,
                    session: session.clone(),
                    shared,
                    direct: None,
                    _early: Some(owner),
                });
            }
            // The close action owns the slot and the data: closing frees
            // both (at once if the session is already closed).
            session.add_close_action(move || drop(owner))?;
            return Ok(UpcallStub {
                code,
                session: session.clone(),
                shared,
                direct: None,
                #[cfg(loom)]
                _early: None,
            });
        }
        Err(data) => data.f,
    };
    let cif = PreparedCif::new(&sig.arg_ffi(), sig.ret.as_ref().map(|r| &r.ffi), None)?;
    let sizes = sig.sizes();
    let ret_size = sig.ret.as_ref().map_or(0, |r| r.size);
    install(
        Typed {
            f,
            _args: PhantomData,
        },
        cif,
        sizes,
        ret_size,
        session,
        policy,
    )
}

std::thread_local! {
    static VIA_LIBFFI: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn via_libffi() -> bool {
    VIA_LIBFFI.try_with(|c| c.get()).unwrap_or(false)
}

/// Tests only: makes this thread's capturing typed stubs libffi closures
/// (the fallback when every direct slot is taken), so that path is tested
/// on purpose rather than by exhausting the slots.
///
/// # Examples
///
/// ```
/// memscope::linker::__typed_upcalls_via_libffi(true);
/// let s = memscope::Session::shared();
/// let k = 3;
/// let stub = memscope::linker::Linker::native().upcall_typed(move |x: i32| x * k, &s)?;
/// let f = unsafe { stub.as_fn::<extern "C" fn(i32) -> i32>() }?;
/// assert_eq!(f(2), 6);
/// memscope::linker::__typed_upcalls_via_libffi(false);
/// # Ok::<(), memscope::Error>(())
/// ```
#[doc(hidden)]
pub fn __typed_upcalls_via_libffi(on: bool) {
    let _ = VIA_LIBFFI.try_with(|c| c.set(on));
}
