//! Downcalls: calling C through a run-time [`FunctionDescriptor`].

use std::ffi::CStr;
use std::fmt;

use super::cif::{CallPlan, PreparedCif};
use super::descriptor::{ArgSpec, Checked, FunctionDescriptor};
use super::library::Symbol;
use super::ty::{Scalar, Shape};
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

/// One argument of [`Downcall::call_with`].
///
/// # Examples
///
/// ```
/// use memscope::{linker::Arg, marshal::Value};
/// let a: Arg<'_, '_> = Arg::from(Value::I32(3));
/// assert!(matches!(a, Arg::Value(Value::I32(3))));
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
}

impl From<Value> for Arg<'_, '_> {
    fn from(v: Value) -> Self {
        Arg::Value(v)
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
    sig: Checked,
    descriptor: FunctionDescriptor,
    options: DowncallOptions,
    symbol: Symbol,
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
        Ok(Downcall {
            plan,
            sig,
            descriptor: descriptor.clone(),
            options,
            symbol: symbol.clone(),
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
    /// result (`None` for `void`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a wrong argument count or a value
    /// that does not match its layout.
    ///
    /// # Examples
    ///
    /// See [`Downcall`].
    #[inline]
    pub fn call(&self, args: &[Value]) -> Result<Option<Value>> {
        self.check_count(args.len())?;
        self.plan.invoke(
            #[inline(always)]
            |buf| {
                let specs = self.sig.args.iter().zip(self.plan.offsets());
                for (i, (v, (spec, &off))) in args.iter().zip(specs).enumerate() {
                    write_arg(buf, off, spec, i, v)?;
                }
                Ok(())
            },
            #[inline(always)]
            |ret, e| self.finish(ret, e),
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
    pub fn call_with(&self, args: &[Arg<'_, '_>]) -> Result<Option<Value>> {
        self.check_count(args.len())?;
        // Acquire every segment's session first: they stay acquired (their
        // sessions cannot close) until the call has returned.
        let mut guards: Vec<Option<AcquireGuard<'_>>> = Vec::new();
        for a in args {
            if let Arg::Segment(s) = a {
                guards.push(super::protocol::acquire_argument(s)?);
            }
        }
        let r = self.plan.invoke(
            |buf| {
                for (i, a) in args.iter().enumerate() {
                    let off = self.plan.offsets()[i];
                    let spec = &self.sig.args[i];
                    match a {
                        Arg::Value(v) => write_arg(buf, off, spec, i, v)?,
                        Arg::Segment(s) => write_address(buf, off, spec, i, s.address())?,
                        Arg::CStr(s) => {
                            write_address(buf, off, spec, i, Address::from_ptr(s.as_ptr()))?
                        }
                    }
                }
                Ok(())
            },
            |ret, e| self.finish(ret, e),
            self.options.capture_errno,
        );
        drop(guards);
        r
    }

    /// Like [`call_with`](Self::call_with), but the return value (a struct
    /// returned by value, typically) is written into a segment from
    /// `alloc` instead of being decoded into a [`Value`]: the caller picks
    /// where results live (an arena, a stack frame). `None` for `void`.
    ///
    /// The call itself still returns into a temporary buffer on the native
    /// stack, which is then copied into the segment.
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
        let v = self
            .call_with(args)?
            .ok_or_else(|| Error::InvalidSignature {
                reason: "no return value for a non-void descriptor".into(),
            })?;
        let mut seg = alloc.allocate_uninit(spec.size, spec.layout.align())?;
        v.write(&spec.layout, &mut seg, 0)?;
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
        self.plan.invoke(
            |buf| fill(buf, self.plan.offsets()),
            |ret, e| {
                if self.options.capture_errno {
                    LAST_ERRNO.with(|c| c.set(e));
                }
                read(ret)
            },
            self.options.capture_errno,
        )
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
    fn finish(&self, ret: &mut [u8], e: i32) -> Result<Option<Value>> {
        if self.options.capture_errno {
            LAST_ERRNO.with(|c| c.set(e));
        }
        match &self.sig.ret {
            None => Ok(None),
            Some(spec) => read_value(ret, 0, spec).map(Some),
        }
    }
}

#[cold]
#[inline(never)]
fn mismatch(i: usize, spec: &ArgSpec, v: &dyn fmt::Debug) -> Error {
    Error::InvalidArgument {
        reason: format!(
            "argument {i}: {v:?} does not match layout {:?}",
            spec.layout
        ),
    }
}

fn write_address(buf: &mut [u8], off: usize, spec: &ArgSpec, i: usize, a: Address) -> Result<()> {
    if spec.scalar != Some(Scalar::Address) {
        return Err(mismatch(i, spec, &a));
    }
    buf[off..off + size_of::<usize>()].copy_from_slice(&a.0.to_ne_bytes());
    Ok(())
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
        Some(s) => put_scalar(buf, off, s, v).ok_or_else(|| mismatch(i, spec, v)),
        None => {
            let out = &mut buf[off..off + spec.size];
            if encode_shape(&spec.shape, v, out) {
                Ok(())
            } else {
                // Slow path (unions given as a member's value) and the
                // detailed error message: the marshal module's encoder.
                v.encode(&spec.layout, out)
                    .map_err(|e| Error::InvalidArgument {
                        reason: format!("argument {i}: {e}"),
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
