//! Upcalls: C calling Rust closures through libffi closure stubs.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::cif::PreparedCif;
use super::closure::{self, ArgViews, Handler, PanicPolicy, StubShared};
use super::descriptor::{ArgSpec, Checked};
use super::downcall::{get_scalar, put_scalar, read_value};
use super::ty::{FfiTy, Scalar};
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
pub struct ScalarKind(pub(crate) Scalar);

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
        Address(usize::from_arg(b))
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

/// Closures usable with [`Linker::upcall_typed`](super::Linker::upcall_typed):
/// `Fn(A, B, ..) -> R` (up to 6 arguments) over [`CScalar`] types, `R =
/// ()` for `void`. Implemented for every such closure; not implementable
/// otherwise in practice (its methods are hidden).
///
/// # Examples
///
/// ```
/// use memscope::linker::TypedUpcall;
/// fn accepts<Args, F: TypedUpcall<Args>>(_: F) {}
/// accepts(|a: i32, b: f64| a as f64 + b);
/// accepts(|| ());
/// ```
pub trait TypedUpcall<Args>: Send + Sync + 'static {
    #[doc(hidden)]
    fn signature() -> (Vec<Scalar>, Option<Scalar>);
    #[doc(hidden)]
    fn invoke(&self, args: ArgViews<'_>, ret: &mut [u8]);
    #[doc(hidden)]
    fn direct(policy: PanicPolicy) -> Option<usize>;
}

fn ret_kind<R: CScalar>() -> Option<Scalar> {
    if std::any::TypeId::of::<R>() == std::any::TypeId::of::<()>() {
        None
    } else {
        Some(R::KIND.0)
    }
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
                R: CScalar,
                $($a: CScalar,)*
            {
                let f = super::zst_ref::<F>();
                match catch_unwind(AssertUnwindSafe(|| f($($x),*))) {
                    Ok(r) => r,
                    Err(p) => {
                        super::direct_failed::<F>(p, ABORT);
                        R::from_arg(&[0u8; 8])
                    }
                }
            }
        }

        impl<F, R, $($a,)*> TypedUpcall<($($a,)*)> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
            R: CScalar,
            $($a: CScalar,)*
        {
            fn signature() -> (Vec<Scalar>, Option<Scalar>) {
                (vec![$($a::KIND.0),*], ret_kind::<R>())
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
        });
    }
    let (args, ret) = F::signature();
    let ffi: Vec<FfiTy> = args.iter().map(|s| FfiTy::Scalar(*s)).collect();
    let ret_ffi = ret.map(FfiTy::Scalar);
    let cif = PreparedCif::new(&ffi, ret_ffi.as_ref(), None)?;
    let sizes = args.iter().map(|s| s.size()).collect();
    let ret_size = ret.map_or(0, |s| s.size());
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
