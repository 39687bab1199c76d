//! Downcalls: calling C through a run-time [`FunctionDescriptor`].

use std::ffi::CStr;
use std::fmt;

use super::cif::{CallPlan, PreparedCif};
use super::descriptor::{ArgSpec, Checked, FunctionDescriptor};
use super::library::Symbol;
use super::ty::{Scalar, Shape};
use super::upcall::UpcallStub;
use crate::alloc::Frame;
use crate::alloc::SegmentAllocator;
use crate::marshal::Value;
use crate::session::AcquireGuard;
use crate::{Address, Error, Result, Segment};

/// Options for [`Linker::downcall`](super::Linker::downcall).
///
/// # Examples
///
/// ```
/// let o = memscope::linker::DowncallOptions::default().capture_errno(true);
/// assert!(o.captures_errno());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DowncallOptions {
    capture_errno: bool,
}

impl DowncallOptions {
    /// Record `errno` right after each call (read it with
    /// [`Downcall::call_errno`] / [`last_errno`](super::last_errno)).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = memscope::linker::DowncallOptions::default();
    /// assert!(!o.captures_errno());
    /// ```
    #[doc(alias = "captureCallState")]
    #[doc(alias = "use_errno")]
    pub fn capture_errno(mut self, on: bool) -> Self {
        self.capture_errno = on;
        self
    }

    /// Whether errno is captured.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memscope::linker::DowncallOptions::default().capture_errno(true).captures_errno());
    /// ```
    pub fn captures_errno(&self) -> bool {
        self.capture_errno
    }
}

/// One argument of a dynamic call ([`Downcall::call_as`],
/// [`call_with`](Downcall::call_with), [`call_into`](Downcall::call_into)
/// …): the one argument type of every dynamic entry point but the
/// [`Value`]-only [`call`](Downcall::call). Everything converts into it
/// with `From`/`.into()`: Rust scalars and [`Address`] (as the matching
/// [`Value`]), a [`Value`], `&Segment` (a pointer, its session acquired for
/// the call), `&CStr`, `&UpcallStub` (acquired), `&[u8]` (raw bytes of a
/// value passed by value, e.g. a struct).
///
/// # Examples
///
/// ```
/// use memscope::{linker::Arg, marshal::Value};
/// let a: Arg<'_, '_> = Arg::from(Value::I32(3));
/// assert!(matches!(a, Arg::Value(Value::I32(3))));
/// assert!(matches!(Arg::from(2.5f64), Arg::Value(Value::F64(_))));
/// assert!(matches!(Arg::from(c"text"), Arg::CStr(_)));
/// ```
#[derive(Debug)]
pub enum Arg<'a, 's> {
    /// A value of the argument's layout (scalars, structs, unions).
    Value(Value),
    /// A pointer argument: the segment's address. The segment's session is
    /// acquired for the duration of the call, so it cannot close mid-call
    /// (`close()` gives [`Error::Busy`]).
    Segment(&'a Segment<'s>),
    /// A pointer argument: a NUL-terminated string borrowed for the call.
    CStr(&'a CStr),
    /// Any argument passed by value from its raw bytes (native byte order):
    /// a struct or union without building a [`Value::Struct`]. The length
    /// must be the layout's size.
    ///
    /// ```
    /// use memscope::linker::Arg;
    /// let pair = [1.0f64.to_ne_bytes(), 2.0f64.to_ne_bytes()].concat();
    /// assert!(matches!(Arg::Bytes(&pair), Arg::Bytes(b) if b.len() == 16));
    /// ```
    Bytes(&'a [u8]),
    /// Any argument passed by value from the first bytes of a segment (a
    /// struct returned by [`Downcall::call_into`], say). The segment must
    /// be at least the layout's size; its bytes are copied before the call.
    ///
    /// ```
    /// use memscope::{linker::Arg, segment::HeapSegment};
    /// let h = HeapSegment::new(16, 8)?;
    /// let seg = h.as_segment();
    /// assert!(matches!(Arg::Contents(&seg), Arg::Contents(s) if s.len() == 16));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    Contents(&'a Segment<'s>),
    /// A function-pointer argument: an upcall stub's code address. The
    /// stub's session is acquired for the duration of the call, as a
    /// segment argument's is, so the stub cannot be freed while C may call
    /// it (`close()` gives [`Error::Busy`], `close_blocking()` waits for the
    /// call to return). A bare [`Value::Address`]`(stub.address())`
    /// promises nothing: keeping the stub's session open until C has made
    /// its last call is then the caller's duty.
    ///
    /// ```
    /// use memscope::{Error, Session, linker::{Arg, Linker}};
    /// let s = Session::shared();
    /// let stub = Linker::native().upcall_typed(|a: i32| a + 1, &s)?;
    /// assert!(matches!(Arg::Stub(&stub), Arg::Stub(_)));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    Stub(&'a UpcallStub),
}

impl<'a> From<&'a UpcallStub> for Arg<'a, '_> {
    fn from(s: &'a UpcallStub) -> Self {
        Arg::Stub(s)
    }
}

impl From<Value> for Arg<'_, '_> {
    fn from(v: Value) -> Self {
        Arg::Value(v)
    }
}

macro_rules! arg_from_scalar {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Arg<'_, '_> {
            #[inline(always)]
            fn from(x: $t) -> Self {
                Arg::Value(Value::$v(x))
            }
        }
    )*};
}
arg_from_scalar!(
    bool => Bool, i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32,
    i64 => I64, u64 => U64, f32 => F32, f64 => F64, Address => Address
);

impl From<usize> for Arg<'_, '_> {
    /// `size_t` (an unsigned integer of pointer width).
    #[inline(always)]
    fn from(x: usize) -> Self {
        #[cfg(target_pointer_width = "64")]
        return Arg::Value(Value::U64(x as u64));
        #[cfg(target_pointer_width = "32")]
        return Arg::Value(Value::U32(x as u32));
    }
}

impl<'a> From<&'a [u8]> for Arg<'a, '_> {
    fn from(b: &'a [u8]) -> Self {
        Arg::Bytes(b)
    }
}

impl<'a, 's> From<&'a Segment<'s>> for Arg<'a, 's> {
    fn from(s: &'a Segment<'s>) -> Self {
        Arg::Segment(s)
    }
}

impl<'a> From<&'a CStr> for Arg<'a, '_> {
    fn from(s: &'a CStr) -> Self {
        Arg::CStr(s)
    }
}

/// A linked C function: a symbol, its checked signature and a prepared
/// libffi call interface (Java `MethodHandle` from `Linker.downcallHandle`,
/// Janet `ffi/call`). Keeps the symbol's library loaded.
///
/// Arguments are checked against the descriptor on every call: a wrong
/// count or type is an [`Error`], never undefined behaviour.
///
/// # Examples
///
/// ```
/// use memscope::layout::c;
/// use memscope::linker::{FunctionDescriptor, Library, Linker, SymbolLookup, DowncallOptions};
/// use memscope::marshal::Value;
/// let labs = Library::libc()?.lookup("labs")?;
/// // SAFETY: `long labs(long)`.
/// let f = unsafe {
///     Linker::native().downcall(&labs, &FunctionDescriptor::of(Some(c::LONG), &[c::LONG]),
///                               DowncallOptions::default())
/// }?;
/// assert_eq!(f.call(&[Value::I64(-7)])?, Some(Value::I64(7)));
/// assert!(f.call(&[Value::I32(-7)]).is_err()); // wrong type
/// assert!(f.call(&[]).is_err());               // wrong count
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct Downcall {
    plan: CallPlan,
    /// Per-argument encoders, precomputed at link time: offset, size and
    /// scalar kind in one small entry each, so a call reads one cache line
    /// instead of walking the (large) `ArgSpec`s.
    enc: Box<[Enc]>,
    /// How the return value is read (precomputed at link time).
    ret: RetEnc,
    sig: Checked,
    descriptor: FunctionDescriptor,
    options: DowncallOptions,
    symbol: Symbol,
    /// The Rust type [`call_as`](Downcall::call_as) last checked the return
    /// layout against (so the check is one compare after the first call).
    ret_checked: std::sync::OnceLock<std::any::TypeId>,
}

impl fmt::Debug for Downcall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Downcall")
            .field("symbol", &self.symbol)
            .field("descriptor", &self.descriptor)
            .field("options", &self.options)
            .finish()
    }
}

/// How one argument is written into the argument buffer.
#[derive(Debug, Clone, Copy)]
struct Enc {
    off: usize,
    size: usize,
    /// `None` for an aggregate (encoded through its `ArgSpec`).
    scalar: Option<Scalar>,
}

/// How the return value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetEnc {
    Void,
    Scalar(Scalar),
    Aggregate,
}

// Not `const { }`: loom's thread_local! (the shim's, under cfg(loom)) has no const form.
crate::sync::thread_local! {
    #[allow(clippy::missing_const_for_thread_local)]
    static LAST_ERRNO: std::cell::Cell<i32> = std::cell::Cell::new(0);
}

/// The `errno` captured right after this thread's last downcall made with
/// [`DowncallOptions::capture_errno`] (0 before any).
///
/// # Examples
///
/// ```
/// assert_eq!(memscope::linker::last_errno(), 0);
/// ```
pub fn last_errno() -> i32 {
    LAST_ERRNO.with(|c| c.get())
}

impl Downcall {
    pub(crate) fn link(
        symbol: &Symbol,
        descriptor: &FunctionDescriptor,
        options: DowncallOptions,
        make: impl FnOnce(PreparedCif, &Checked) -> Result<CallPlan>,
    ) -> Result<Downcall> {
        let sig = descriptor.check()?;
        let cif = PreparedCif::new(&sig.arg_ffi(), sig.ret.as_ref().map(|r| &r.ffi), sig.fixed)?;
        let plan = make(cif, &sig)?;
        let enc = sig
            .args
            .iter()
            .zip(plan.offsets())
            .map(|(a, &off)| Enc {
                off,
                size: a.size,
                scalar: a.scalar,
            })
            .collect();
        let ret = match &sig.ret {
            None => RetEnc::Void,
            Some(r) => r.scalar.map_or(RetEnc::Aggregate, RetEnc::Scalar),
        };
        Ok(Downcall {
            plan,
            enc,
            ret,
            sig,
            descriptor: descriptor.clone(),
            options,
            symbol: symbol.clone(),
            ret_checked: std::sync::OnceLock::new(),
        })
    }

    /// The descriptor it was linked with.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::layout::c;
    /// # use memscope::linker::*;
    /// let abs = Library::libc()?.lookup("abs")?;
    /// let d = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
    /// let f = unsafe { Linker::native().downcall(&abs, &d, DowncallOptions::default()) }?;
    /// assert_eq!(f.descriptor(), &d);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn descriptor(&self) -> &FunctionDescriptor {
        &self.descriptor
    }

    /// Whether calls skip libffi: a non-variadic signature of at most 3
    /// arguments, each and the result (or `void`) an `int32_t`,
    /// `uint32_t`, `int64_t`, `uint64_t`, pointer, `float` or `double`, is
    /// called through a Rust function pointer of exactly that C type;
    /// anything else through `ffi_call`. The checks are the same either way.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::layout::c;
    /// # use memscope::linker::*;
    /// let abs = Library::libc()?.lookup("abs")?;
    /// let d = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
    /// let f = unsafe { Linker::native().downcall(&abs, &d, DowncallOptions::default()) }?;
    /// assert_eq!(f.is_direct(), cfg!(target_endian = "little"));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn is_direct(&self) -> bool {
        self.plan.is_direct()
    }

    /// The symbol it calls.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::layout::c;
    /// # use memscope::linker::*;
    /// let abs = Library::libc()?.lookup("abs")?;
    /// let d = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
    /// let f = unsafe { Linker::native().downcall(&abs, &d, DowncallOptions::default()) }?;
    /// assert_eq!(f.symbol().name(), "abs");
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    /// Calls with values (pointers as [`Value::Address`]). Returns the
    /// result (`None` for `void`). The `Value`-only shorthand of
    /// [`call_with`](Self::call_with); [`call_as`](Self::call_as) takes the
    /// one argument type, [`Arg`], and returns a typed result. A [`Value::Address`] keeps nothing
    /// alive: what it points to (a segment, an upcall stub) must outlive the
    /// call by the caller's care; [`call_with`](Self::call_with) with
    /// [`Arg::Segment`] / [`Arg::Stub`] acquires their sessions instead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a wrong argument count or a value
    /// that does not match its layout.
    ///
    /// # Examples
    ///
    /// See [`Downcall`].
    #[inline(always)]
    pub fn call(&self, args: &[Value]) -> Result<Option<Value>> {
        // The call itself stays out of line and hands a scalar result back
        // as a plain word; the `Value` is built here, in the caller, so it
        // never round-trips through memory (returning it from the
        // out-of-line part stalled store forwarding: one wide load of many
        // narrow stores).
        match self.ret {
            RetEnc::Aggregate => self.call_values(args),
            RetEnc::Void => self.call_word(args).map(|_| None),
            RetEnc::Scalar(s) => self.call_word(args).map(|w| Some(word_value(s, w))),
        }
    }

    /// `call` for scalar and `void` returns: the result's bits,
    /// zero-extended into a word (see [`word_value`]).
    #[inline(never)]
    fn call_word(&self, args: &[Value]) -> Result<u64> {
        self.call_values_then(args, |ret| Ok(read_word(ret)))
    }

    /// `call` for aggregate returns.
    #[inline(never)]
    fn call_values(&self, args: &[Value]) -> Result<Option<Value>> {
        self.call_values_then(args, |ret| self.decode_ret(ret))
    }

    #[inline(always)]
    fn call_values_then<R>(
        &self,
        args: &[Value],
        read: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        self.check_call(args.len())?;
        self.plan.invoke(
            #[inline(always)]
            |buf| {
                for (i, (v, e)) in args.iter().zip(&*self.enc).enumerate() {
                    match e.scalar {
                        Some(s) => {
                            if put_scalar(buf, e.off, s, v).is_none() {
                                return Err(self.mismatch(i, &Given::Value(v)));
                            }
                        }
                        None => write_arg(buf, e.off, &self.sig.args[i], i, v)
                            .map_err(|e| self.named(e))?,
                    }
                }
                Ok(())
            },
            #[inline(always)]
            |ret, e| {
                self.set_errno(e);
                read(ret)
            },
            self.options.capture_errno,
        )
    }

    /// Calls with [`Arg`]s: values, segments (acquired for the call) and C
    /// strings.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), plus [`Error::Closed`] (or
    /// [`Error::WrongThread`]) if a segment's session cannot be acquired; an
    /// error for a segment or string passed where the layout is not an
    /// address.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// use memscope::linker::*;
    /// use memscope::marshal::Value;
    /// let strlen = Library::libc()?.lookup("strlen")?;
    /// let d = FunctionDescriptor::of(Some(c::SIZE_T), &[c::POINTER]);
    /// // SAFETY: `size_t strlen(const char *)`.
    /// let f = unsafe { Linker::native().downcall(&strlen, &d, DowncallOptions::default()) }?;
    /// assert_eq!(f.call_with(&[Arg::CStr(c"hello")])?, Some(Value::U64(5)));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn call_with(&self, args: &[Arg<'_, '_>]) -> Result<Option<Value>> {
        // As in `call`: scalars come back as a word, the `Value` is built
        // in the caller.
        match self.ret {
            RetEnc::Aggregate => self.call_with_values(args),
            RetEnc::Void => self.call_with_word(args).map(|_| None),
            RetEnc::Scalar(s) => self.call_with_word(args).map(|w| Some(word_value(s, w))),
        }
    }

    #[inline(never)]
    fn call_with_word(&self, args: &[Arg<'_, '_>]) -> Result<u64> {
        self.call_args(args, |ret| Ok(read_word(ret)))
    }

    #[inline(never)]
    fn call_with_values(&self, args: &[Arg<'_, '_>]) -> Result<Option<Value>> {
        self.call_args(args, |ret| self.decode_ret(ret))
    }

    /// The shared path of the `Arg` calls: checks the count, acquires
    /// every segment argument's session for the call, writes the arguments
    /// and hands the return bytes to `read`.
    #[inline]
    fn call_args<R>(
        &self,
        args: &[Arg<'_, '_>],
        read: impl FnOnce(&mut [u8]) -> Result<R>,
    ) -> Result<R> {
        self.check_call(args.len())?;
        // Without segment or stub arguments there is nothing to hold: no
        // guard vector to make and drop, no stub to ask afterwards.
        if !args
            .iter()
            .any(|a| matches!(a, Arg::Segment(_) | Arg::Stub(_)))
            || stub_args_unheld(args)
        {
            return self.plan.invoke(
                |buf| self.fill_args(buf, args),
                |ret, e| {
                    self.set_errno(e);
                    read(ret)
                },
                self.options.capture_errno,
            );
        }
        self.call_args_held(args, read)
    }

    /// `call_args` with segment or stub arguments: their sessions are
    /// acquired for the call.
    #[inline(never)]
    fn call_args_held<R>(
        &self,
        args: &[Arg<'_, '_>],
        read: impl FnOnce(&mut [u8]) -> Result<R>,
    ) -> Result<R> {
        // Acquire every segment's session first: they stay acquired (their
        // sessions cannot close) until the call has returned.
        let mut guards: Vec<Option<AcquireGuard<'_>>> = Vec::new();
        // A stub's session is held (acquired, and its upcalls on this
        // thread need no entry of their own: protocol::StubHold).
        let mut holds = Vec::new();
        let mut stubs = false;
        for a in args {
            match a {
                Arg::Segment(s) => guards.push(super::protocol::acquire_argument(s)?),
                Arg::Stub(u) => {
                    stubs = true;
                    holds.push(super::protocol::acquire_stub(u)?)
                }
                _ => {}
            }
        }
        let r = self.plan.invoke(
            |buf| self.fill_args(buf, args),
            |ret, e| {
                self.set_errno(e);
                read(ret)
            },
            self.options.capture_errno,
        );
        drop(holds);
        drop(guards);
        if stubs {
            // A stub that panicked (or failed) during the call fails it:
            // the panic was caught before it reached C, which got a zeroed
            // result and finished.
            for a in args {
                if let Arg::Stub(u) = a
                    && let Some(e) = u.take_panic()
                {
                    return Err(e);
                }
            }
        }
        r
    }

    /// Writes every [`Arg`] into the argument buffer.
    #[inline(always)]
    fn fill_args(&self, buf: &mut [u8], args: &[Arg<'_, '_>]) -> Result<()> {
        for (i, (a, e)) in args.iter().zip(&*self.enc).enumerate() {
            let spec = &self.sig.args[i];
            match a {
                Arg::Value(v) => match e.scalar {
                    Some(s) => put_scalar(buf, e.off, s, v)
                        .ok_or_else(|| self.mismatch(i, &Given::Value(v)))?,
                    None => write_arg(buf, e.off, spec, i, v).map_err(|e| self.named(e))?,
                },
                Arg::Segment(s) => {
                    self.write_address(buf, e.off, i, s.address(), Given::Segment)?
                }
                Arg::Stub(u) => self.write_address(buf, e.off, i, u.address(), Given::Stub)?,
                Arg::CStr(s) => {
                    self.write_address(buf, e.off, i, Address::from_ptr(s.as_ptr()), Given::CStr)?
                }
                Arg::Bytes(b) => {
                    if b.len() != e.size {
                        return Err(self.mismatch(i, &Given::Bytes(b.len())));
                    }
                    copy_small(&mut buf[e.off..e.off + e.size], b);
                }
                Arg::Contents(s) => {
                    if s.len() < e.size {
                        return Err(self.mismatch(i, &Given::Contents(s.len())));
                    }
                    s.copy_to_slice::<u8>(0, &mut buf[e.off..e.off + e.size])?;
                }
            }
        }
        Ok(())
    }

    /// Calls with [`Arg`]s and writes the return value's bytes (a struct
    /// returned by value, typically) into the first bytes of `out`: no
    /// [`Value`], no allocation. Pair it with [`Arg::Bytes`] /
    /// [`Arg::Contents`] for an allocation-free struct-by-value call.
    ///
    /// # Errors
    ///
    /// As [`call_with`](Self::call_with); [`Error::InvalidArgument`] for a
    /// `void` function; [`Error::OutOfBounds`] if `out` is shorter than the
    /// return value; `out`'s own errors ([`Error::ReadOnly`],
    /// [`Error::Closed`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// use memscope::linker::*;
    /// use memscope::segment::HeapSegment;
    /// let div = Library::libc()?.lookup("ldiv")?;
    /// let ldiv_t = memscope::MemoryLayout::c_struct([c::LONG, c::LONG])?;
    /// let d = FunctionDescriptor::of(Some(ldiv_t), &[c::LONG, c::LONG]);
    /// // SAFETY: `ldiv_t ldiv(long, long)`.
    /// let f = unsafe { Linker::native().downcall(&div, &d, DowncallOptions::default()) }?;
    /// let mut h = HeapSegment::new(16, 8)?;
    /// let mut out = h.as_segment_mut();
    /// f.call_into(&[Arg::Bytes(&17i64.to_ne_bytes()), Arg::Bytes(&5i64.to_ne_bytes())], &mut out)?;
    /// assert_eq!((out.get::<i64>(0)?, out.get::<i64>(8)?), (3, 2));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn call_into(&self, args: &[Arg<'_, '_>], out: &mut Segment<'_>) -> Result<()> {
        let size = self.ret_size()?;
        if out.len() < size {
            return Err(Error::OutOfBounds {
                offset: 0,
                len: size,
                size: out.len(),
            });
        }
        self.call_args(args, |ret| match ret.len() {
            // Common struct sizes as one store (no memmove call).
            8 => out.set_unaligned(0, u64::from_ne_bytes(ret.try_into().unwrap_or([0; 8]))),
            16 => out.set_unaligned(0, u128::from_ne_bytes(ret.try_into().unwrap_or([0; 16]))),
            _ => out.copy_from_slice::<u8>(0, ret),
        })
    }

    /// Calls with [`Arg`]s, materialising the return value (a struct, say)
    /// as a segment on the calling thread's stack allocator
    /// ([`alloc::stack`](crate::alloc::stack)), and runs `f` with the frame
    /// and that segment (`None` for `void`). Everything is released when
    /// `f` returns; `f` may allocate more from the frame.
    ///
    /// # Errors
    ///
    /// As [`call_into`](Self::call_into) (but `void` is fine).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// use memscope::linker::*;
    /// use memscope::marshal::Value;
    /// let div = Library::libc()?.lookup("ldiv")?;
    /// let ldiv_t = memscope::MemoryLayout::c_struct([c::LONG, c::LONG])?;
    /// let d = FunctionDescriptor::of(Some(ldiv_t), &[c::LONG, c::LONG]);
    /// // SAFETY: `ldiv_t ldiv(long, long)`.
    /// let f = unsafe { Linker::native().downcall(&div, &d, DowncallOptions::default()) }?;
    /// let args = [Value::I64(17).into(), Value::I64(5).into()];
    /// let q = f.call_with_frame(&args, |_frame, r| r.unwrap().get::<i64>(0))??;
    /// assert_eq!(q, 3);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn call_with_frame<R>(
        &self,
        args: &[Arg<'_, '_>],
        f: impl for<'f> FnOnce(&'f Frame, Option<Segment<'f>>) -> R,
    ) -> Result<R> {
        crate::alloc::stack::frame(|fr| {
            let seg = match &self.sig.ret {
                None => {
                    self.call_with(args)?;
                    None
                }
                Some(spec) => {
                    self.check_count(args.len())?;
                    let mut seg = fr.allocate_uninit(spec.size, spec.layout.align())?;
                    self.call_into(args, &mut seg)?;
                    Some(seg)
                }
            };
            Ok(f(fr, seg))
        })
    }

    /// Like [`call_with`](Self::call_with), but the return value (a struct
    /// returned by value, typically) is written into a segment from
    /// `alloc` instead of being decoded into a [`Value`]: the caller picks
    /// where results live (an arena, a stack frame). `None` for `void`.
    ///
    /// The segment is allocated first; the call returns into a temporary
    /// buffer (native stack, or the thread's stack allocator for large
    /// calls) whose bytes are then copied into it, with no [`Value`] in
    /// between. [`call_with_frame`](Self::call_with_frame) is the same with
    /// the thread's stack allocator.
    ///
    /// # Errors
    ///
    /// As [`call_with`](Self::call_with), plus the allocator's errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::SegmentAllocator;
    /// use memscope::layout::c;
    /// use memscope::linker::*;
    /// use memscope::marshal::Value;
    /// use memscope::{Address, Result, Segment, Session};
    /// # struct Boxes(Session, std::sync::Mutex<Vec<Box<[u128]>>>);
    /// # impl SegmentAllocator for Boxes {
    /// #     fn allocate_uninit(&self, size: usize, _align: usize) -> Result<Segment<'_>> {
    /// #         let mut b = vec![0u128; size.div_ceil(16)].into_boxed_slice();
    /// #         let p = Address::from_ptr(b.as_mut_ptr());
    /// #         self.1.lock().unwrap().push(b);
    /// #         // SAFETY: the box lives as long as the allocator.
    /// #         unsafe { Segment::from_raw(p, size, &self.0) }
    /// #     }
    /// # }
    /// # let arena = Boxes(Session::shared(), Default::default());
    /// let div = Library::libc()?.lookup("ldiv")?;
    /// let ldiv_t = memscope::MemoryLayout::c_struct([c::LONG, c::LONG])?;
    /// let d = FunctionDescriptor::of(Some(ldiv_t), &[c::LONG, c::LONG]);
    /// // SAFETY: `ldiv_t ldiv(long, long)`.
    /// let f = unsafe { Linker::native().downcall(&div, &d, DowncallOptions::default()) }?;
    /// let r = f.call_in(&[Value::I64(17).into(), Value::I64(5).into()], &arena)?.unwrap();
    /// assert_eq!((r.get::<i64>(0)?, r.get::<i64>(8)?), (3, 2));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn call_in<'a, A: SegmentAllocator + ?Sized>(
        &self,
        args: &[Arg<'_, '_>],
        alloc: &'a A,
    ) -> Result<Option<Segment<'a>>> {
        let Some(spec) = &self.sig.ret else {
            self.call_with(args)?;
            return Ok(None);
        };
        // Allocate before the call (a large call marshals in a stack frame
        // of its own, inside which an outer frame cannot allocate).
        self.check_count(args.len())?;
        let mut seg = alloc.allocate_uninit(spec.size, spec.layout.align())?;
        self.call_into(args, &mut seg)?;
        Ok(Some(seg))
    }

    /// Like [`call_with`](Self::call_with), also returning `errno` as it was
    /// right after the call (needs [`DowncallOptions::capture_errno`]).
    ///
    /// # Errors
    ///
    /// As [`call_with`](Self::call_with); [`Error::InvalidArgument`] if the
    /// downcall does not capture errno.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// use memscope::linker::*;
    /// use memscope::marshal::Value;
    /// let close = Library::libc()?.lookup("close")?;
    /// let d = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
    /// let o = DowncallOptions::default().capture_errno(true);
    /// // SAFETY: `int close(int)`.
    /// let f = unsafe { Linker::native().downcall(&close, &d, o) }?;
    /// let (r, errno) = f.call_errno(&[Arg::Value(Value::I32(-1))])?;
    /// assert_eq!(r, Some(Value::I32(-1)));
    /// assert_eq!(errno, 9); // EBADF
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn call_errno(&self, args: &[Arg<'_, '_>]) -> Result<(Option<Value>, i32)> {
        if !self.options.capture_errno {
            return Err(Error::InvalidArgument {
                reason: "this downcall was linked without capture_errno".into(),
            });
        }
        let r = self.call_with(args)?;
        Ok((r, last_errno()))
    }

    /// Calls with arguments written by `fill` straight into the argument
    /// buffer (offsets from `offsets`), reading the result with `read`.
    /// Used by `bind!` for `Marshal` types.
    #[doc(hidden)]
    pub fn call_raw<R>(
        &self,
        fill: impl FnOnce(&mut [u8], &[usize]) -> Result<()>,
        read: impl FnOnce(&mut [u8]) -> Result<R>,
    ) -> Result<R> {
        self.check_open()?;
        self.plan.invoke(
            |buf| fill(buf, self.plan.offsets()),
            |ret, e| {
                self.set_errno(e);
                read(ret)
            },
            self.options.capture_errno,
        )
    }

    /// Calls through a symbol of a library whose session has closed fail
    /// (as Java's do). The library itself stays mapped while this downcall
    /// holds the symbol, so a call already running is unaffected: one load.
    #[inline(always)]
    fn check_open(&self) -> Result<()> {
        if self.symbol.is_closed() {
            return Err(Error::Closed);
        }
        // Loom: every call path (libffi, direct, frame, raw) passes here
        // just before it calls: a read of the code it is about to run.
        #[cfg(loom)]
        self.symbol.shadow_read();
        Ok(())
    }

    /// [`check_open`](Self::check_open) and [`check_count`](Self::check_count).
    #[inline(always)]
    fn check_call(&self, n: usize) -> Result<()> {
        self.check_open()?;
        self.check_count(n)
    }

    /// Argument `i` (0-based; reported 1-based) does not fit its layout.
    #[cold]
    #[inline(never)]
    fn mismatch(&self, i: usize, given: &Given<'_>) -> Error {
        Error::InvalidArgument {
            reason: format!(
                "{}: argument {} is {}, given {given}",
                self.symbol.name(),
                i + 1,
                self.sig.args[i].layout
            ),
        }
    }

    /// An encoder's error, prefixed with the function's name.
    #[cold]
    #[inline(never)]
    fn named(&self, e: Error) -> Error {
        match e {
            Error::InvalidArgument { reason } => Error::InvalidArgument {
                reason: format!("{}: {reason}", self.symbol.name()),
            },
            e => e,
        }
    }

    #[inline(always)]
    fn write_address(
        &self,
        buf: &mut [u8],
        off: usize,
        i: usize,
        a: Address,
        given: Given<'_>,
    ) -> Result<()> {
        if self.enc[i].scalar != Some(Scalar::Address) {
            return Err(self.mismatch(i, &given));
        }
        buf[off..off + size_of::<usize>()].copy_from_slice(&a.0.to_ne_bytes());
        Ok(())
    }

    /// Checks that `R` can hold this function's result (once per type:
    /// later calls compare a `TypeId`).
    #[inline(always)]
    fn check_ret<R: DynRet>(&self) -> Result<()> {
        if self.ret_checked.get() == Some(&std::any::TypeId::of::<R>()) {
            return Ok(());
        }
        self.check_ret_slow::<R>()
    }

    #[cold]
    #[inline(never)]
    fn check_ret_slow<R: DynRet>(&self) -> Result<()> {
        if R::accepts(RetInfo(self.sig.ret.as_ref())) {
            let _ = self.ret_checked.set(std::any::TypeId::of::<R>());
            return Ok(());
        }
        Err(Error::InvalidArgument {
            reason: format!(
                "{} returns {}, not {}",
                self.symbol.name(),
                self.sig
                    .ret
                    .as_ref()
                    .map_or_else(|| "void".to_owned(), |r| r.layout.to_string()),
                R::describe()
            ),
        })
    }

    /// Calls with [`Arg`]s and returns the result as `R`: a Rust scalar of
    /// the result's C type (`i32` for `int32_t`, `f64` for `double`,
    /// [`Address`] for a pointer …), a [`c_struct!`](crate::c_struct) /
    /// [`c_union!`](crate::c_union) type for a struct or union returned by
    /// value (decoded straight from the return buffer: nothing is
    /// allocated), `()` to ignore the result, or [`Value`] /
    /// `Option<Value>`. The check that `R` fits the result runs once per
    /// type (then it is one compare).
    ///
    /// # Errors
    ///
    /// As [`call_with`](Self::call_with); [`Error::InvalidArgument`] naming
    /// both C types if `R` does not fit the result (`abs returns int32_t,
    /// not f64 (double)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// use memscope::linker::*;
    /// let abs = Library::libc()?.lookup("abs")?;
    /// let d = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
    /// // SAFETY: `int abs(int)`.
    /// let f = unsafe { Linker::native().downcall(&abs, &d, DowncallOptions::default()) }?;
    /// assert_eq!(f.call_as::<i32>(&[(-3).into()])?, 3);
    /// let e = f.call_as::<f64>(&[(-3).into()]).unwrap_err();
    /// assert_eq!(e.to_string(), "invalid argument: abs returns int32_t, not f64 (double)");
    /// let e = f.call_as::<i32>(&[2.5.into()]).unwrap_err();
    /// assert_eq!(e.to_string(), "invalid argument: abs: argument 1 is int32_t, given double 2.5");
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn call_as<R: DynRet>(&self, args: &[Arg<'_, '_>]) -> Result<R> {
        self.check_ret::<R>()?;
        self.call_as_unchecked(args)
    }

    #[inline(never)]
    fn call_as_unchecked<R: DynRet>(&self, args: &[Arg<'_, '_>]) -> Result<R> {
        let info = RetInfo(self.sig.ret.as_ref());
        self.call_args(args, |ret| R::read(ret, info))
    }

    #[inline(always)]
    fn check_count(&self, n: usize) -> Result<()> {
        if n != self.sig.args.len() {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "{} takes {} argument(s), {n} given",
                    self.symbol.name(),
                    self.sig.args.len()
                ),
            });
        }
        Ok(())
    }

    #[inline(always)]
    fn set_errno(&self, e: i32) {
        if self.options.capture_errno {
            LAST_ERRNO.with(|c| c.set(e));
        }
    }

    #[inline(always)]
    fn decode_ret(&self, ret: &[u8]) -> Result<Option<Value>> {
        match self.ret {
            RetEnc::Void => Ok(None),
            RetEnc::Scalar(s) => Ok(Some(get_scalar(ret, 0, s))),
            RetEnc::Aggregate => match &self.sig.ret {
                Some(spec) => read_value(ret, 0, spec).map(Some),
                None => Ok(None),
            },
        }
    }

    fn ret_size(&self) -> Result<usize> {
        match &self.sig.ret {
            Some(spec) => Ok(spec.size),
            None => Err(Error::InvalidArgument {
                reason: format!("{} returns void: nothing to write", self.symbol.name()),
            }),
        }
    }
}

/// `dst.copy_from_slice(src)` (equal lengths), the common argument sizes
/// as constant-size copies instead of a `memmove` call.
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    match (
        dst.len(),
        <&mut [u8; 16]>::try_from(&mut *dst),
        <&[u8; 16]>::try_from(src),
    ) {
        (_, Ok(d), Ok(s)) => *d = *s,
        (8, ..) => dst.copy_from_slice(&src[..8]),
        _ => dst.copy_from_slice(src),
    }
}

/// What was given for an argument, for error messages.
enum Given<'a> {
    Value(&'a Value),
    Segment,
    Stub,
    CStr,
    Bytes(usize),
    Contents(usize),
}

impl fmt::Display for Given<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Given::Value(v) => fmt_value(v, f),
            Given::Segment => f.write_str("a segment (a pointer)"),
            Given::Stub => f.write_str("an upcall stub (a function pointer)"),
            Given::CStr => f.write_str("a C string (a pointer)"),
            Given::Bytes(n) => write!(f, "{n} bytes"),
            Given::Contents(n) => write!(f, "a segment of {n} bytes"),
        }
    }
}

/// A value as C would name it: `double 2.5`, `void * 0x10`, `a struct of 2
/// members`.
fn fmt_value(v: &Value, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match v {
        Value::Bool(x) => write!(f, "bool {x}"),
        Value::I8(x) => write!(f, "int8_t {x}"),
        Value::U8(x) => write!(f, "uint8_t {x}"),
        Value::I16(x) => write!(f, "int16_t {x}"),
        Value::U16(x) => write!(f, "uint16_t {x}"),
        Value::I32(x) => write!(f, "int32_t {x}"),
        Value::U32(x) => write!(f, "uint32_t {x}"),
        Value::I64(x) => write!(f, "int64_t {x}"),
        Value::U64(x) => write!(f, "uint64_t {x}"),
        Value::F32(x) => write!(f, "float {x}"),
        Value::F64(x) => write!(f, "double {x}"),
        Value::Address(a) => write!(f, "void * {a}"),
        Value::Struct(m) => write!(f, "a struct of {} member(s)", m.len()),
        Value::Array(e) => write!(f, "an array of {} element(s)", e.len()),
        Value::Bytes(b) => write!(f, "{} bytes", b.len()),
    }
}

/// The C result of a downcall, as [`DynRet`] sees it (opaque).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct RetInfo<'a>(Option<&'a ArgSpec>);

/// A result type for [`Downcall::call_as`]: C scalars as their Rust types,
/// [`CRepr`](super::CRepr) structs and unions (`c_struct!`, `c_union!`),
/// `()` (the result ignored), [`Value`] and `Option<Value>` (`None` for
/// `void`).
///
/// # Examples
///
/// ```
/// fn result<R: memscope::linker::DynRet>() {}
/// result::<i32>();
/// result::<()>();
/// result::<memscope::marshal::Value>();
/// ```
pub trait DynRet: Sized + 'static {
    /// Whether a C result like `ret` can be read as `Self`.
    #[doc(hidden)]
    fn accepts(ret: RetInfo<'_>) -> bool;
    /// The type, for error messages.
    #[doc(hidden)]
    fn describe() -> String;
    /// Reads the result from its bytes (exactly its size; empty for `void`).
    ///
    /// # Errors
    ///
    /// A decoder's error (a `c_enum!` member with an unknown value, say).
    #[doc(hidden)]
    fn read(bytes: &[u8], ret: RetInfo<'_>) -> Result<Self>;
}

impl<T: super::CRepr + 'static> DynRet for T {
    fn accepts(ret: RetInfo<'_>) -> bool {
        let mine = super::descriptor::shape_of(&T::layout(), "result");
        matches!((ret.0, mine), (Some(r), Ok(m)) if r.shape == m)
    }
    fn describe() -> String {
        format!("{} ({})", std::any::type_name::<T>(), T::layout())
    }
    #[inline(always)]
    fn read(bytes: &[u8], _: RetInfo<'_>) -> Result<T> {
        T::decode(bytes)
    }
}

impl DynRet for () {
    fn accepts(_: RetInfo<'_>) -> bool {
        true
    }
    fn describe() -> String {
        "()".into()
    }
    #[inline(always)]
    fn read(_: &[u8], _: RetInfo<'_>) -> Result<()> {
        Ok(())
    }
}

impl DynRet for Value {
    fn accepts(ret: RetInfo<'_>) -> bool {
        ret.0.is_some()
    }
    fn describe() -> String {
        "a Value (use () or Option<Value> for void)".into()
    }
    fn read(bytes: &[u8], ret: RetInfo<'_>) -> Result<Value> {
        match ret.0 {
            Some(spec) => read_value(bytes, 0, spec),
            None => Err(Error::InvalidArgument {
                reason: "void has no value".into(),
            }),
        }
    }
}

impl DynRet for Option<Value> {
    fn accepts(_: RetInfo<'_>) -> bool {
        true
    }
    fn describe() -> String {
        "Option<Value>".into()
    }
    fn read(bytes: &[u8], ret: RetInfo<'_>) -> Result<Option<Value>> {
        ret.0.map(|spec| read_value(bytes, 0, spec)).transpose()
    }
}

/// Writes scalar `v` of kind `s` at `buf[off..]`; `None` if the kinds differ.
#[inline(always)]
pub(crate) fn put_scalar(buf: &mut [u8], off: usize, s: Scalar, v: &Value) -> Option<()> {
    macro_rules! put {
        ($x:expr) => {{
            let b = $x.to_ne_bytes();
            buf[off..off + b.len()].copy_from_slice(&b);
            Some(())
        }};
    }
    match (s, v) {
        (Scalar::Bool, Value::Bool(x)) => put!(u8::from(*x)),
        (Scalar::I8, Value::I8(x)) => put!(x),
        (Scalar::U8, Value::U8(x)) => put!(x),
        (Scalar::I16, Value::I16(x)) => put!(x),
        (Scalar::U16, Value::U16(x)) => put!(x),
        (Scalar::I32, Value::I32(x)) => put!(x),
        (Scalar::U32, Value::U32(x)) => put!(x),
        (Scalar::I64, Value::I64(x)) => put!(x),
        (Scalar::U64, Value::U64(x)) => put!(x),
        (Scalar::F32, Value::F32(x)) => put!(x),
        (Scalar::F64, Value::F64(x)) => put!(x),
        (Scalar::Address, Value::Address(a)) => put!(a.0),
        _ => None,
    }
}

/// A scalar return value's bytes (1, 2, 4 or 8; none for `void`),
/// zero-extended into a word with one load of the value's exact size (a
/// variable-length copy into a word, then a wide load of it, stalled store
/// forwarding).
#[inline(always)]
fn read_word(ret: &[u8]) -> u64 {
    if let Ok(b) = <[u8; 8]>::try_from(ret) {
        u64::from_ne_bytes(b)
    } else if let Ok(b) = <[u8; 4]>::try_from(ret) {
        u64::from(u32::from_ne_bytes(b))
    } else if let Ok(b) = <[u8; 2]>::try_from(ret) {
        u64::from(u16::from_ne_bytes(b))
    } else if let [b] = *ret {
        u64::from(b)
    } else {
        0
    }
}

/// The scalar of kind `s` whose bits, zero-extended, are `w`.
#[inline(always)]
#[allow(clippy::cast_possible_truncation)] // truncating back to the scalar's own width
fn word_value(s: Scalar, w: u64) -> Value {
    match s {
        Scalar::Bool => Value::Bool(w as u8 != 0),
        Scalar::I8 => Value::I8(w as u8 as i8),
        Scalar::U8 => Value::U8(w as u8),
        Scalar::I16 => Value::I16(w as u16 as i16),
        Scalar::U16 => Value::U16(w as u16),
        Scalar::I32 => Value::I32(w as u32 as i32),
        Scalar::U32 => Value::U32(w as u32),
        Scalar::I64 => Value::I64(w as i64),
        Scalar::U64 => Value::U64(w),
        Scalar::F32 => Value::F32(f32::from_bits(w as u32)),
        Scalar::F64 => Value::F64(f64::from_bits(w)),
        Scalar::Address => Value::Address(Address(w as usize)),
    }
}

/// Reads a scalar of kind `s` at `buf[off..]`.
#[inline(always)]
pub(crate) fn get_scalar(buf: &[u8], off: usize, s: Scalar) -> Value {
    macro_rules! get {
        ($t:ty) => {{
            let mut b = [0u8; size_of::<$t>()];
            b.copy_from_slice(&buf[off..off + size_of::<$t>()]);
            <$t>::from_ne_bytes(b)
        }};
    }
    match s {
        Scalar::Bool => Value::Bool(get!(u8) != 0),
        Scalar::I8 => Value::I8(get!(i8)),
        Scalar::U8 => Value::U8(get!(u8)),
        Scalar::I16 => Value::I16(get!(i16)),
        Scalar::U16 => Value::U16(get!(u16)),
        Scalar::I32 => Value::I32(get!(i32)),
        Scalar::U32 => Value::U32(get!(u32)),
        Scalar::I64 => Value::I64(get!(i64)),
        Scalar::U64 => Value::U64(get!(u64)),
        Scalar::F32 => Value::F32(get!(f32)),
        Scalar::F64 => Value::F64(get!(f64)),
        Scalar::Address => Value::Address(Address(get!(usize))),
    }
}

#[inline(always)]
pub(crate) fn write_arg(
    buf: &mut [u8],
    off: usize,
    spec: &ArgSpec,
    i: usize,
    v: &Value,
) -> Result<()> {
    match spec.scalar {
        Some(s) => put_scalar(buf, off, s, v).ok_or_else(|| Error::InvalidArgument {
            reason: format!(
                "argument {} is {}, given {}",
                i + 1,
                spec.layout,
                Given::Value(v)
            ),
        }),
        None => {
            let out = &mut buf[off..off + spec.size];
            if encode_shape(&spec.shape, v, out) {
                Ok(())
            } else {
                // Slow path (unions given as a member's value) and the
                // detailed error message: the marshal module's encoder.
                v.encode(&spec.layout, out)
                    .map_err(|e| Error::InvalidArgument {
                        reason: format!("argument {} ({}): {e}", i + 1, spec.layout),
                    })
            }
        }
    }
}

/// Writes `v` as `shape` into `out` (exactly `shape.size()` bytes) without
/// allocating; `false` if `v` does not match (nothing useful was written).
pub(crate) fn encode_shape(shape: &Shape, v: &Value, out: &mut [u8]) -> bool {
    if let Value::Bytes(b) = v {
        if b.len() != out.len() {
            return false;
        }
        out.copy_from_slice(b);
        return true;
    }
    match (shape, v) {
        (Shape::Scalar(s), _) => put_scalar(out, 0, *s, v).is_some(),
        (Shape::Struct { members, .. }, Value::Struct(vals)) => {
            members.len() == vals.len()
                && members.iter().zip(vals).all(|((o, m), x)| {
                    let n = m.size();
                    encode_shape(m, x, &mut out[*o..o + n])
                })
        }
        (Shape::Array { count, elem }, Value::Array(vals)) => {
            let n = elem.size();
            *count == vals.len()
                && vals
                    .iter()
                    .enumerate()
                    .all(|(i, x)| encode_shape(elem, x, &mut out[i * n..(i + 1) * n]))
        }
        _ => false,
    }
}

/// Reads a value of `shape` from `b` (exactly `shape.size()` bytes), as
/// the marshal module's `Value::decode` would.
pub(crate) fn decode_shape(shape: &Shape, b: &[u8]) -> Value {
    match shape {
        Shape::Scalar(s) => get_scalar(b, 0, *s),
        Shape::Struct { members, .. } => Value::Struct(
            members
                .iter()
                .map(|(o, m)| decode_shape(m, &b[*o..o + m.size()]))
                .collect(),
        ),
        Shape::Array { count, elem } => {
            let n = elem.size();
            Value::Array(
                (0..*count)
                    .map(|i| decode_shape(elem, &b[i * n..(i + 1) * n]))
                    .collect(),
            )
        }
        Shape::Union { .. } => Value::Bytes(b.to_vec()),
    }
}

#[inline(always)]
pub(crate) fn read_value(buf: &[u8], off: usize, spec: &ArgSpec) -> Result<Value> {
    match spec.scalar {
        Some(s) => Ok(get_scalar(buf, off, s)),
        None => Ok(decode_shape(&spec.shape, &buf[off..off + spec.size])),
    }
}

/// The broken twin `StubArgNotHeld`: a call whose held arguments are all
/// stubs takes the no-hold path (always `false` outside loom, and folded
/// away there).
#[inline(always)]
fn stub_args_unheld(args: &[Arg<'_, '_>]) -> bool {
    #[cfg(loom)]
    if crate::session::state::twin_on("StubArgNotHeld") {
        return !args.iter().any(|a| matches!(a, Arg::Segment(_)));
    }
    let _ = args;
    false
}
