//! What [`bind!`](crate::bind) passes to C and takes back: the argument
//! kinds ([`BindArg`]) and result kinds ([`BindRet`]) of a bound function,
//! and [`CRepr`], the types whose Rust representation is their C one.
//!
//! `bind!` calls through a typed function pointer, so the per-call work is
//! only what safety needs: one load (is the library's session still
//! open?), nothing for scalars and `c_struct!` values, an acquire for a
//! segment or an upcall stub (held until the call returns), a
//! NUL-terminated copy for a `&str`, clearing and reading `errno` for a
//! result that captures it.

use crate::Session;
use crate::error::{Error, Result};
use crate::layout::{MemoryLayout, c};
use crate::marshal::Marshal;
use crate::segment::{Address, Segment};
use crate::session::AcquireGuard;
use core::ffi::{CStr, c_char, c_void};
use core::marker::PhantomData;
use std::ffi::CString;

use super::UpcallStub;

/// A type whose Rust value *is* its C value: passing it by value through an
/// `extern "C"` function pointer is the C call its [`Marshal::layout`]
/// describes.
///
/// Implemented for the C scalars, `bool` (C `_Bool`), [`Address`], and the
/// types that [`c_struct!`](crate::c_struct) and [`c_union!`](crate::c_union)
/// declare (both check at compile time that their Rust layout is the C one;
/// `c_union!` stores its bytes in chunks of C's register class).
///
/// # Safety
///
/// The type must be `#[repr(C)]` or `#[repr(transparent)]` (or a primitive)
/// with exactly the size, alignment and member classification that
/// `Marshal::layout()` states, and every bit pattern C can hand back in it
/// must be a valid Rust value (so no Rust enums: `c_enum!` types go through
/// their `int`).
///
/// # Examples
///
/// ```
/// fn takes<T: memscope::linker::CRepr>(_: T) {}
/// takes(1.5f64);
/// takes(memscope::Address::NULL);
/// ```
pub unsafe trait CRepr: Marshal {}

/// A member type of a [`CRepr`] struct: a `CRepr` type, or an array of
/// member types (C arrays are passed inside structs as their elements).
///
/// # Safety
///
/// As [`CRepr`], for the type as a struct member.
///
/// # Examples
///
/// ```
/// fn member<T: memscope::linker::CReprField>() {}
/// member::<[u8; 16]>();
/// member::<f64>();
/// ```
pub unsafe trait CReprField {}

// SAFETY: a CRepr type is a valid C member of its own layout.
unsafe impl<T: CRepr> CReprField for T {}
// SAFETY: an array of C-representation members is the C array of them.
unsafe impl<T: CReprField, const N: usize> CReprField for [T; N] {}

macro_rules! c_repr {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive; its Marshal layout is the matching C scalar.
        unsafe impl CRepr for $t {}
    )*};
}
c_repr!(
    i8, u8, i16, u16, i32, u32, i64, u64, isize, usize, f32, f64, bool, Address
);

/// How [`bind!`](crate::bind) passes one argument to C.
///
/// The kinds: any `Copy` [`CRepr`] value as itself; `&Segment` and `&mut Segment`
/// as a pointer to their memory, their session acquired for the call (so
/// it cannot close under C; `&mut` refuses a read-only segment, and C may
/// write only through `&mut`); `&CStr` as `const char *`; `&str` as a
/// `const char *` to a NUL-terminated copy (an interior NUL is an
/// [`Error::InvalidString`]); `&UpcallStub` as its code address, its
/// session acquired for the call (C may call it until the call returns).
///
/// # Examples
///
/// ```
/// use memscope::linker::BindArg;
/// let (c, _hold) = BindArg::prepare(&7i32).unwrap();
/// assert_eq!(c, 7);
/// assert_eq!(<&str as BindArg>::layout(), memscope::layout::c::POINTER);
/// ```
pub trait BindArg {
    /// What C receives.
    type C;
    /// What must stay alive until the call returns (`()` for values; a
    /// guard for segments and stubs; the copy of a `&str`).
    type Hold<'h>
    where
        Self: 'h;
    /// The C layout of the parameter (checked against the C call when the
    /// function is loaded).
    fn layout() -> MemoryLayout;
    /// The C value, and what must stay alive until the call returns.
    ///
    /// # Errors
    ///
    /// `Closed`/`WrongThread` when a segment's or stub's session cannot be
    /// acquired; `ReadOnly` for a read-only `&mut Segment`;
    /// `InvalidString` for a `&str` with an interior NUL.
    fn prepare(&self) -> Result<(Self::C, Self::Hold<'_>)>;
    /// Runs after the call has returned, with what `prepare` held (dropping
    /// it). An upcall stub reports here the first panic (or upcall error)
    /// it caught since it was last asked: the call then fails with it.
    ///
    /// # Errors
    ///
    /// [`Error::UpcallPanicked`] (or the upcall's error) for a stub or
    /// [`Callback`] argument whose closure failed.
    #[inline(always)]
    fn after(hold: Self::Hold<'_>) -> Result<()> {
        drop(hold);
        Ok(())
    }
}

impl<T: CRepr + Copy> BindArg for T {
    type C = T;
    type Hold<'h>
        = ()
    where
        T: 'h;
    #[inline(always)]
    fn layout() -> MemoryLayout {
        <T as Marshal>::layout()
    }
    #[inline(always)]
    fn prepare(&self) -> Result<(T, ())> {
        Ok((*self, ()))
    }
}

impl BindArg for &Segment<'_> {
    type C = *const c_void;
    type Hold<'h>
        = AcquireGuard<'h>
    where
        Self: 'h;
    fn layout() -> MemoryLayout {
        c::POINTER
    }
    #[inline]
    fn prepare(&self) -> Result<(*const c_void, AcquireGuard<'_>)> {
        let g = self.session().acquire()?;
        Ok((self.address().as_ptr::<c_void>().cast_const(), g))
    }
}

impl BindArg for &mut Segment<'_> {
    type C = *mut c_void;
    type Hold<'h>
        = AcquireGuard<'h>
    where
        Self: 'h;
    fn layout() -> MemoryLayout {
        c::POINTER
    }
    #[inline]
    fn prepare(&self) -> Result<(*mut c_void, AcquireGuard<'_>)> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let g = self.session().acquire()?;
        Ok((self.address().as_ptr::<c_void>(), g))
    }
}

impl BindArg for &CStr {
    type C = *const c_char;
    type Hold<'h>
        = ()
    where
        Self: 'h;
    fn layout() -> MemoryLayout {
        c::POINTER
    }
    #[inline(always)]
    fn prepare(&self) -> Result<(*const c_char, ())> {
        Ok((self.as_ptr(), ()))
    }
}

impl BindArg for &str {
    type C = *const c_char;
    type Hold<'h>
        = CString
    where
        Self: 'h;
    fn layout() -> MemoryLayout {
        c::POINTER
    }
    fn prepare(&self) -> Result<(*const c_char, CString)> {
        let s = CString::new(*self).map_err(|e| Error::InvalidString {
            reason: format!("interior NUL byte at index {}", e.nul_position()),
        })?;
        Ok((s.as_ptr(), s))
    }
}

/// What a stub argument holds during the call: its session (acquired and
/// held, so its upcalls on this thread skip their own entry:
/// [`StubHold`](super::StubHold)), and the stub itself, asked for a caught
/// panic after the call.
#[doc(hidden)]
#[derive(Debug)]
pub struct StubArgHold<'h> {
    _hold: Option<super::protocol::StubHold>,
    stub: &'h UpcallStub,
}

impl StubArgHold<'_> {
    #[inline]
    fn finish(self) -> Result<()> {
        let stub = self.stub;
        drop(self);
        match stub.take_panic() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

impl BindArg for &UpcallStub {
    type C = *const c_void;
    type Hold<'h>
        = StubArgHold<'h>
    where
        Self: 'h;
    fn layout() -> MemoryLayout {
        c::POINTER
    }
    #[inline]
    fn prepare(&self) -> Result<(*const c_void, StubArgHold<'_>)> {
        let h = super::protocol::acquire_stub(self)?;
        Ok((
            self.address().as_ptr::<c_void>().cast_const(),
            StubArgHold {
                _hold: h,
                stub: self,
            },
        ))
    }
    #[inline]
    fn after(hold: StubArgHold<'_>) -> Result<()> {
        hold.finish()
    }
}

/// An upcall stub typed by its C signature `F` (an `extern "C" fn(..) -> R`
/// type): a callback parameter of a [`bind!`](crate::bind) function
/// declared as `&Callback<extern "C" fn(A, B) -> R>` accepts only a closure
/// of that signature, checked at compile time (an untyped `&UpcallStub`
/// parameter accepts any stub).
///
/// Passed to a bound function, the callback's session is acquired for the
/// call (C may call it until the call returns), and a panic of the closure
/// during the call (caught: it never unwinds into C, which gets a zeroed
/// result) makes the call return [`Error::UpcallPanicked`]. The stub is
/// freed when its session closes.
///
/// # Examples
///
/// ```
/// use memscope::linker::Callback;
/// use memscope::prelude::*;
/// type Cmp = extern "C" fn(Address, Address) -> i32;
/// memscope::bind! {
///     struct Sort {
///         fn qsort(base: &mut Segment<'_>, n: usize, size: usize, cmp: &Callback<Cmp>);
///     }
/// }
/// // SAFETY: libc's qsort.
/// let libc = unsafe { Sort::load(&Library::libc()?) }?;
/// let s = Session::shared();
/// let by_value = Callback::<Cmp>::new(|a: Address, b: Address| {
///     // SAFETY: qsort passes pointers to two i32 elements of the array.
///     let (x, y) = unsafe { (*a.as_ptr::<i32>(), *b.as_ptr::<i32>()) };
///     x.cmp(&y) as i32
/// }, &s)?;
/// let arena = Arena::confined();
/// let mut v = arena.allocate_copy(&[3i32, 1, 2])?;
/// libc.qsort(&mut v, 3, 4, &by_value)?;
/// let mut out = [0i32; 3];
/// v.copy_to_slice(0, &mut out)?;
/// assert_eq!(out, [1, 2, 3]);
/// // A panicking comparator: the sort finishes (C sees 0), the call fails.
/// let boom = Callback::<Cmp>::new(|_: Address, _: Address| -> i32 { panic!("boom") }, &s)?;
/// let err = libc.qsort(&mut v, 3, 4, &boom).unwrap_err();
/// assert_eq!(err, Error::UpcallPanicked { message: "boom".into() });
/// # Ok::<(), memscope::Error>(())
/// ```
#[doc(alias = "CFUNCTYPE")]
pub struct Callback<F> {
    stub: UpcallStub,
    _sig: PhantomData<F>,
}

impl<F> core::fmt::Debug for Callback<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Callback")
            .field("signature", &core::any::type_name::<F>())
            .field("stub", &self.stub)
            .finish()
    }
}

impl<F> Callback<F> {
    /// The untyped stub (its address, session, caught panics).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, linker::Callback};
    /// let s = Session::shared();
    /// let cb = Callback::<extern "C" fn(i32) -> i32>::new(|x: i32| x + 1, &s)?;
    /// assert!(!cb.stub().address().is_null());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn stub(&self) -> &UpcallStub {
        &self.stub
    }
}

macro_rules! callbacks {
    ($($a:ident)*) => {
        impl<R: 'static, $($a: 'static),*> Callback<extern "C" fn($($a),*) -> R> {
            /// An upcall stub running `f`, freed when `session` closes (as
            /// [`Linker::upcall_typed`](super::Linker::upcall_typed), whose
            /// argument and result types it takes).
            ///
            /// # Errors
            ///
            /// As [`Linker::upcall_typed`](super::Linker::upcall_typed).
            ///
            /// # Examples
            ///
            /// See [`Callback`].
            pub fn new<G>(f: G, session: &Session) -> Result<Self>
            where
                G: Fn($($a),*) -> R + super::TypedUpcall<($($a,)*)>,
            {
                Ok(Callback {
                    stub: super::Linker::native().upcall_typed(f, session)?,
                    _sig: PhantomData,
                })
            }
        }

        impl<'c, R, $($a),*> BindArg for &'c Callback<extern "C" fn($($a),*) -> R> {
            type C = extern "C" fn($($a),*) -> R;
            type Hold<'h>
                = StubArgHold<'h>
            where
                Self: 'h;
            fn layout() -> MemoryLayout {
                c::POINTER
            }
            #[inline]
            fn prepare(&self) -> Result<(Self::C, StubArgHold<'_>)> {
                let h = super::protocol::acquire_stub(&self.stub)?;
                // SAFETY: the stub was made by `Callback::new` from a
                // closure `Fn($($a),*) -> R` (its C signature is exactly
                // `Self::C`); its session is acquired (the code stays
                // allocated) until the hold, which outlives the call,
                // drops. A function pointer is one address.
                let f = unsafe {
                    core::mem::transmute::<*const c_void, Self::C>(
                        self.stub.address().as_ptr::<c_void>().cast_const(),
                    )
                };
                Ok((f, StubArgHold { _hold: h, stub: &self.stub }))
            }
            #[inline]
            fn after(hold: StubArgHold<'_>) -> Result<()> {
                hold.finish()
            }
        }
    };
}
callbacks!();
callbacks!(A);
callbacks!(A B);
callbacks!(A B C);
callbacks!(A B C D);
callbacks!(A B C D E);

/// A typed C pointer `T *` (a pointer-to-layout result or argument of a
/// [`bind!`](crate::bind) function, e.g. `struct tm *localtime(..)`): an
/// address that says what it points to. Reading through it is `unsafe`:
/// nothing says the memory is still there or who owns it (the C function's
/// documentation does).
///
/// # Examples
///
/// ```
/// use memscope::linker::CPtr;
/// use memscope::prelude::*;
/// memscope::bind! {
///     struct Libc {
///         fn memchr(s: &Segment<'_>, c: i32, n: usize) -> CPtr<u8>;
///     }
/// }
/// // SAFETY: libc's memchr.
/// let libc = unsafe { Libc::load(&Library::libc()?) }?;
/// let arena = Arena::confined();
/// let text = arena.allocate_copy(b"hello")?;
/// let l = libc.memchr(&text, b'l' as i32, 5)?;
/// assert_eq!(l.address().get() - text.address().get(), 2);
/// // SAFETY: memchr returned a pointer into `text`, which is alive.
/// assert_eq!(unsafe { l.read() }, Some(b'l'));
/// assert!(libc.memchr(&text, b'z' as i32, 5)?.is_null());
/// # Ok::<(), memscope::Error>(())
/// ```
#[repr(transparent)]
pub struct CPtr<T> {
    addr: Address,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for CPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for CPtr<T> {}
impl<T> PartialEq for CPtr<T> {
    fn eq(&self, o: &Self) -> bool {
        self.addr == o.addr
    }
}
impl<T> Eq for CPtr<T> {}
impl<T> core::fmt::Debug for CPtr<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CPtr<{}>({})", core::any::type_name::<T>(), self.addr)
    }
}

impl<T> CPtr<T> {
    /// A typed pointer at `addr`.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = memscope::linker::CPtr::<f64>::new(memscope::Address::NULL);
    /// assert!(p.is_null());
    /// ```
    pub const fn new(addr: Address) -> Self {
        CPtr {
            addr,
            _t: PhantomData,
        }
    }

    /// The address.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = memscope::linker::CPtr::<u8>::new(memscope::Address::new(16));
    /// assert_eq!(p.address().get(), 16);
    /// ```
    pub const fn address(self) -> Address {
        self.addr
    }

    /// Whether it is NULL.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!memscope::linker::CPtr::<u8>::new(memscope::Address::new(16)).is_null());
    /// ```
    pub fn is_null(self) -> bool {
        self.addr.is_null()
    }

    /// A segment of `session` over the `T` it points to (size and
    /// alignment from `T`'s layout), for checked reads and writes.
    ///
    /// # Safety
    ///
    /// As [`Segment::from_raw`]: the memory must hold a `T` that stays
    /// valid (and is not freed by C) while `session` is alive.
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`] for NULL; [`Error::Misaligned`] if the
    /// address is not aligned for `T`; `Segment::from_raw`'s errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Session, linker::CPtr, Address};
    /// let x = 7u32;
    /// let p = CPtr::<u32>::new(Address::from_ptr(&x));
    /// let s = Session::confined();
    /// // SAFETY: `x` outlives the use of the segment.
    /// let seg = unsafe { p.as_segment(&s) }?;
    /// assert_eq!(seg.get::<u32>(0)?, 7);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub unsafe fn as_segment<'s>(self, session: &'s Session) -> Result<Segment<'s>>
    where
        T: Marshal,
    {
        if self.addr.is_null() {
            return Err(Error::NullAddress);
        }
        if !self.addr.get().is_multiple_of(T::ALIGN) {
            return Err(Error::Misaligned {
                addr: self.addr.get(),
                align: T::ALIGN,
            });
        }
        // SAFETY: forwarded to the caller (# Safety).
        unsafe { Segment::from_raw(self.addr, T::SIZE, session) }
    }

    /// Reads the `T` it points to (`None` for NULL).
    ///
    /// # Safety
    ///
    /// Unless NULL, the address must point to a live, initialised `T`
    /// (it may be unaligned).
    ///
    /// # Examples
    ///
    /// See [`CPtr`].
    pub unsafe fn read(self) -> Option<T>
    where
        T: CRepr + Copy,
    {
        if self.addr.is_null() {
            return None;
        }
        // SAFETY: the caller's promise (# Safety); `T: CRepr` is a plain C
        // value for which the bits C wrote are a valid Rust value.
        Some(unsafe { self.addr.as_ptr::<T>().cast_const().read_unaligned() })
    }
}

impl<T> BindArg for CPtr<T> {
    type C = *const c_void;
    type Hold<'h>
        = ()
    where
        Self: 'h;
    fn layout() -> MemoryLayout {
        c::POINTER
    }
    #[inline(always)]
    fn prepare(&self) -> Result<(*const c_void, ())> {
        Ok((self.addr.as_ptr::<c_void>().cast_const(), ()))
    }
}

/// A `char *` result whose owner the binding does not know (C's
/// documentation does): the address, and `unsafe` reads of the string.
/// Declare `-> &CStr` instead for a string the library keeps alive itself
/// (`zlibVersion`, `sqlite3_libversion`), `-> Option<&CStr>` if it may be
/// NULL.
///
/// # Examples
///
/// ```
/// use memscope::linker::CStrPtr;
/// use memscope::prelude::*;
/// memscope::bind! {
///     struct Libc {
///         fn getenv(name: &str) -> CStrPtr;
///     }
/// }
/// // SAFETY: libc's getenv.
/// let libc = unsafe { Libc::load(&Library::libc()?) }?;
/// assert!(libc.getenv("MEMSCOPE_SURELY_UNSET")?.is_null());
/// let path = libc.getenv("PATH")?;
/// // SAFETY: getenv's string stays valid until the environment changes;
/// // nothing changes it here.
/// let s = unsafe { path.to_string_lossy() };
/// assert_eq!(s.as_deref(), std::env::var("PATH").ok().as_deref());
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct CStrPtr(Address);

impl CStrPtr {
    /// The address (NULL for a NULL result).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = memscope::linker::CStrPtr::new(memscope::Address::NULL);
    /// assert!(p.address().is_null());
    /// ```
    pub const fn address(self) -> Address {
        self.0
    }

    /// A `char *` at `addr`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = c"hi";
    /// let p = memscope::linker::CStrPtr::new(memscope::Address::from_ptr(s.as_ptr()));
    /// assert_eq!(unsafe { p.read() }, Some(s));
    /// ```
    pub const fn new(addr: Address) -> Self {
        CStrPtr(addr)
    }

    /// Whether it is NULL.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memscope::linker::CStrPtr::new(memscope::Address::NULL).is_null());
    /// ```
    pub fn is_null(self) -> bool {
        self.0.is_null()
    }

    /// The string (`None` for NULL), its length found by its NUL.
    ///
    /// # Safety
    ///
    /// Unless NULL, the address must point to a NUL-terminated string that
    /// stays valid and unchanged for `'a`.
    ///
    /// # Examples
    ///
    /// See [`new`](Self::new).
    pub unsafe fn read<'a>(self) -> Option<&'a CStr> {
        if self.0.is_null() {
            return None;
        }
        // SAFETY: the caller's promise (# Safety).
        Some(unsafe { CStr::from_ptr(self.0.as_ptr::<c_char>().cast_const()) })
    }

    /// A copy of the string as UTF-8 (invalid sequences replaced; `None`
    /// for NULL).
    ///
    /// # Safety
    ///
    /// As [`read`](Self::read), for the duration of the copy.
    ///
    /// # Examples
    ///
    /// See [`CStrPtr`].
    pub unsafe fn to_string_lossy(self) -> Option<String> {
        // SAFETY: forwarded (# Safety).
        unsafe { self.read() }.map(|s| s.to_string_lossy().into_owned())
    }
}

impl BindArg for CStrPtr {
    type C = *const c_char;
    type Hold<'h>
        = ()
    where
        Self: 'h;
    fn layout() -> MemoryLayout {
        c::POINTER
    }
    #[inline(always)]
    fn prepare(&self) -> Result<(*const c_char, ())> {
        Ok((self.0.as_ptr::<c_char>().cast_const(), ()))
    }
}

/// How [`bind!`](crate::bind) takes a C result back: any [`CRepr`] value as
/// itself, `()` for `void`, [`CPtr<T>`] for `T *`, C strings as `&CStr`
/// (owned by the library: valid while the binding lives; NULL is
/// [`Error::NullAddress`]), `Option<&CStr>` (NULL is `None`) or
/// [`CStrPtr`] (owner unknown: reading is `unsafe`), and `(R, Errno)` (or
/// [`Errno`] alone for `void`) to capture `errno`: it is set to 0 right
/// before the call and read right after it.
///
/// # Examples
///
/// ```
/// use memscope::linker::{BindRet, Errno};
/// // SAFETY: 5 is what an `int` function returned.
/// assert_eq!(unsafe { <i32 as BindRet>::from_c(5, 0) }.unwrap(), 5);
/// assert_eq!(<() as BindRet>::layout(), None);
/// assert!(<(i64, Errno) as BindRet>::ERRNO);
/// ```
pub trait BindRet: Sized {
    /// What C returns.
    type C;
    /// Whether the call captures `errno` (clears it before the call and
    /// hands [`from_c`](Self::from_c) its value right after).
    const ERRNO: bool = false;
    /// The C layout of the result (`None` for `void`).
    fn layout() -> Option<MemoryLayout>;
    /// The Rust value of a C result (`errno` is the value right after the
    /// call when [`ERRNO`](Self::ERRNO) is set, else 0).
    ///
    /// # Safety
    ///
    /// `c` must be what a C function declared with this result returned
    /// (a string result, for example, is read through its pointer).
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`] for a NULL `&CStr` result.
    unsafe fn from_c(c: Self::C, errno: i32) -> Result<Self>;
}

impl<T: CRepr> BindRet for T {
    type C = T;
    fn layout() -> Option<MemoryLayout> {
        Some(<T as Marshal>::layout())
    }
    #[inline(always)]
    unsafe fn from_c(c: T, _: i32) -> Result<T> {
        Ok(c)
    }
}

impl BindRet for () {
    type C = ();
    fn layout() -> Option<MemoryLayout> {
        None
    }
    #[inline(always)]
    unsafe fn from_c(_: (), _: i32) -> Result<()> {
        Ok(())
    }
}

/// The `errno` a bound function left, captured with its result: declare
/// `-> (R, Errno)` (or `-> Errno` for a `void` function). `errno` is set
/// to 0 right before the call (C's `errno = 0; strtol(..)` idiom) and read
/// right after it, before anything else can change it.
///
/// # Examples
///
/// ```
/// use memscope::linker::Errno;
/// use memscope::prelude::*;
/// memscope::bind! {
///     struct Libc {
///         fn strtol(s: &str, end: Address, base: i32) -> (i64, Errno);
///     }
/// }
/// // SAFETY: libc's strtol.
/// let libc = unsafe { Libc::load(&Library::libc()?) }?;
/// assert_eq!(libc.strtol("42", Address::NULL, 10)?, (42, Errno(0)));
/// let (v, e) = libc.strtol("99999999999999999999", Address::NULL, 10)?;
/// assert_eq!((v, e), (i64::MAX, Errno(34))); // ERANGE
/// assert_eq!(e.to_io_error().raw_os_error(), Some(34));
/// # Ok::<(), memscope::Error>(())
/// ```
#[doc(alias = "use_errno")]
#[doc(alias = "captureCallState")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Errno(pub i32);

impl Errno {
    /// Whether the call set `errno` (it is non-zero).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!memscope::linker::Errno(0).is_set());
    /// ```
    pub fn is_set(self) -> bool {
        self.0 != 0
    }

    /// The OS error it names (for its message).
    ///
    /// # Examples
    ///
    /// ```
    /// let e = memscope::linker::Errno(2).to_io_error();
    /// assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn to_io_error(self) -> std::io::Error {
        std::io::Error::from_raw_os_error(self.0)
    }
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "errno {}: {}", self.0, self.to_io_error())
    }
}

impl BindRet for Errno {
    type C = ();
    const ERRNO: bool = true;
    fn layout() -> Option<MemoryLayout> {
        None
    }
    #[inline(always)]
    unsafe fn from_c(_: (), errno: i32) -> Result<Errno> {
        Ok(Errno(errno))
    }
}

impl<R: BindRet> BindRet for (R, Errno) {
    type C = R::C;
    const ERRNO: bool = true;
    fn layout() -> Option<MemoryLayout> {
        R::layout()
    }
    #[inline(always)]
    unsafe fn from_c(c: R::C, errno: i32) -> Result<(R, Errno)> {
        // SAFETY: forwarded (# Safety).
        Ok((unsafe { R::from_c(c, errno) }?, Errno(errno)))
    }
}

impl<T> BindRet for CPtr<T> {
    type C = *const c_void;
    fn layout() -> Option<MemoryLayout> {
        Some(c::POINTER)
    }
    #[inline(always)]
    unsafe fn from_c(c: *const c_void, _: i32) -> Result<CPtr<T>> {
        Ok(CPtr::new(Address::from_ptr(c)))
    }
}

impl BindRet for CStrPtr {
    type C = *const c_char;
    fn layout() -> Option<MemoryLayout> {
        Some(c::POINTER)
    }
    #[inline(always)]
    unsafe fn from_c(c: *const c_char, _: i32) -> Result<CStrPtr> {
        Ok(CStrPtr(Address::from_ptr(c)))
    }
}

impl<'a> BindRet for &'a CStr {
    type C = *const c_char;
    fn layout() -> Option<MemoryLayout> {
        Some(c::POINTER)
    }
    #[inline]
    unsafe fn from_c(c: *const c_char, _: i32) -> Result<&'a CStr> {
        if c.is_null() {
            return Err(Error::NullAddress);
        }
        // SAFETY: declaring the result `&CStr` is the promise (made to the
        // unsafe `load`) that the function returns a NUL-terminated string
        // that the library keeps valid and unchanged while it is loaded;
        // the method ties `'a` to the binding, which keeps it loaded.
        Ok(unsafe { CStr::from_ptr(c) })
    }
}

impl<'a> BindRet for Option<&'a CStr> {
    type C = *const c_char;
    fn layout() -> Option<MemoryLayout> {
        Some(c::POINTER)
    }
    #[inline]
    unsafe fn from_c(c: *const c_char, e: i32) -> Result<Option<&'a CStr>> {
        if c.is_null() {
            return Ok(None);
        }
        // SAFETY: as for `&CStr` (forwarded).
        unsafe { <&CStr as BindRet>::from_c(c, e) }.map(Some)
    }
}

/// A C type a variadic argument has after C's default argument promotions:
/// `int`, `unsigned`, `long`, `unsigned long`, `double` and pointers
/// (sealed).
///
/// # Examples
///
/// ```
/// fn promoted<T: memscope::linker::VaPrimitive>() {}
/// promoted::<f64>();
/// promoted::<i32>();
/// ```
pub trait VaPrimitive: Copy + va_private::Sealed {}

mod va_private {
    pub trait Sealed {}
}

macro_rules! va_prim {
    ($($t:ty),*) => {$(
        impl va_private::Sealed for $t {}
        impl VaPrimitive for $t {}
    )*};
}
va_prim!(i32, u32, i64, u64, isize, usize, f64);
impl<T> va_private::Sealed for *const T {}
impl<T> VaPrimitive for *const T {}
impl<T> va_private::Sealed for *mut T {}
impl<T> VaPrimitive for *mut T {}

/// One argument in the variadic part (`...`) of a [`bind!`](crate::bind)
/// function, passed as C's default argument promotions say: `bool`, `i8`,
/// `u8`, `i16`, `u16` as `int`; `f32` as `double`; `i32`, `u32`, `i64`,
/// `u64`, `isize`, `usize`, `f64`, [`Address`] as they are; `&CStr`, `&str`,
/// `&Segment`, `&mut Segment`, [`CPtr`] and [`CStrPtr`] as pointers (held
/// for the call as fixed arguments are).
///
/// # Examples
///
/// ```
/// use memscope::linker::VarArg;
/// let (c, _) = VarArg::prepare(&1.5f32).unwrap();
/// assert_eq!(c, 1.5f64); // promoted to double
/// let (c, _) = VarArg::prepare(&b'a').unwrap();
/// assert_eq!(c, 97i32); // promoted to int
/// ```
pub trait VarArg {
    /// What C receives (a promoted type).
    type C: VaPrimitive;
    /// What must stay alive until the call returns.
    type Hold<'h>
    where
        Self: 'h;
    /// The promoted C value, and what must stay alive for the call.
    ///
    /// # Errors
    ///
    /// As [`BindArg::prepare`].
    fn prepare(&self) -> Result<(Self::C, Self::Hold<'_>)>;
}

macro_rules! va_promote {
    ($($t:ty => $c:ty),*) => {$(
        impl VarArg for $t {
            type C = $c;
            type Hold<'h> = () where Self: 'h;
            #[inline(always)]
            fn prepare(&self) -> Result<($c, ())> {
                Ok((<$c>::from(*self), ()))
            }
        }
    )*};
}
va_promote!(
    bool => i32, i8 => i32, u8 => i32, i16 => i32, u16 => i32, f32 => f64,
    i32 => i32, u32 => u32, i64 => i64, u64 => u64, isize => isize, usize => usize,
    f64 => f64
);

macro_rules! va_as_bind {
    ($([$($l:lifetime),*] $t:ty),*) => {$(
        impl<$($l),*> VarArg for $t {
            type C = <$t as BindArg>::C;
            type Hold<'h> = <$t as BindArg>::Hold<'h> where Self: 'h;
            #[inline(always)]
            fn prepare(&self) -> Result<(Self::C, Self::Hold<'_>)> {
                BindArg::prepare(self)
            }
        }
    )*};
}
va_as_bind!(['a] &'a CStr, ['a] &'a str, ['a, 's] &'a Segment<'s>, ['a, 's] &'a mut Segment<'s>, [] CStrPtr);

impl VarArg for Address {
    type C = *const c_void;
    type Hold<'h>
        = ()
    where
        Self: 'h;
    #[inline(always)]
    fn prepare(&self) -> Result<(*const c_void, ())> {
        Ok((self.as_ptr::<c_void>().cast_const(), ()))
    }
}

impl<T> VarArg for CPtr<T> {
    type C = *const c_void;
    type Hold<'h>
        = ()
    where
        Self: 'h;
    #[inline(always)]
    fn prepare(&self) -> Result<(*const c_void, ())> {
        BindArg::prepare(self)
    }
}

/// The variadic arguments of one call of a [`bind!`](crate::bind) function
/// declared with `...`: a tuple of up to 8 [`VarArg`]s (`()` for none).
///
/// # Examples
///
/// ```
/// use memscope::prelude::*;
/// memscope::bind! {
///     struct Libc {
///         fn snprintf(buf: &mut Segment<'_>, n: usize, format: &core::ffi::CStr, ...) -> i32;
///     }
/// }
/// // SAFETY: libc's snprintf.
/// let libc = unsafe { Libc::load(&Library::libc()?) }?;
/// let arena = Arena::confined();
/// let mut buf = arena.allocate(64, 1)?;
/// // A float is promoted to double, a u8 to int, as C does.
/// let n = libc.snprintf(&mut buf, 64, c"%s %d %.2f %c", ("x", 42i32, 0.5f32, b'!'))?;
/// assert_eq!(n, 11);
/// assert_eq!(buf.get_string(0)?, "x 42 0.50 !");
/// # Ok::<(), memscope::Error>(())
/// ```
pub trait VarArgs {
    /// The promoted C values, as a tuple.
    type C: VaTuple;
    /// What must stay alive until the call returns.
    type Hold<'h>
    where
        Self: 'h;
    /// The C values and what to hold for the call.
    ///
    /// # Errors
    ///
    /// As [`VarArg::prepare`].
    fn prepare(&self) -> Result<(Self::C, Self::Hold<'_>)>;
}

/// A tuple of promoted variadic C values, callable after 1 to 4 fixed
/// arguments (used by `bind!`'s expansion).
///
/// # Safety
///
/// Implemented here only, for tuples of [`VaPrimitive`]s.
#[doc(hidden)]
pub unsafe trait VaTuple {
    /// # Safety
    /// `code` is a C function `R f(F1, ...)` that accepts these variadic arguments.
    unsafe fn call1<F1, R>(self, code: *const (), f1: F1) -> R;
    /// # Safety
    /// As `call1`, for `R f(F1, F2, ...)`.
    unsafe fn call2<F1, F2, R>(self, code: *const (), f1: F1, f2: F2) -> R;
    /// # Safety
    /// As `call1`, for `R f(F1, F2, F3, ...)`.
    unsafe fn call3<F1, F2, F3, R>(self, code: *const (), f1: F1, f2: F2, f3: F3) -> R;
    /// # Safety
    /// As `call1`, for `R f(F1, F2, F3, F4, ...)`.
    unsafe fn call4<F1, F2, F3, F4, R>(self, code: *const (), f1: F1, f2: F2, f3: F3, f4: F4) -> R;
}

macro_rules! var_args {
    ($($v:ident $i:tt),*) => {
        impl<$($v: VarArg),*> VarArgs for ($($v,)*) {
            type C = ($($v::C,)*);
            type Hold<'h> = ($($v::Hold<'h>,)*) where Self: 'h;
            #[inline(always)]
            #[allow(clippy::unused_unit, non_snake_case)]
            fn prepare(&self) -> Result<(Self::C, Self::Hold<'_>)> {
                $( let $v = self.$i.prepare()?; )*
                Ok((($($v.0,)*), ($($v.1,)*)))
            }
        }

        // SAFETY: every member is a promoted C type (`VaPrimitive`), which
        // Rust passes in a C-variadic call as C's `...` expects.
        unsafe impl<$($v: VaPrimitive),*> VaTuple for ($($v,)*) {
            #[inline(always)]
            unsafe fn call1<F1, R>(self, code: *const (), f1: F1) -> R {
                // SAFETY: the caller's contract: `code` is `R f(F1, ...)`.
                unsafe {
                    let f = core::mem::transmute::<*const (), unsafe extern "C" fn(F1, ...) -> R>(code);
                    f(f1, $(self.$i),*)
                }
            }
            #[inline(always)]
            unsafe fn call2<F1, F2, R>(self, code: *const (), f1: F1, f2: F2) -> R {
                // SAFETY: the caller's contract.
                unsafe {
                    let f = core::mem::transmute::<*const (), unsafe extern "C" fn(F1, F2, ...) -> R>(code);
                    f(f1, f2, $(self.$i),*)
                }
            }
            #[inline(always)]
            unsafe fn call3<F1, F2, F3, R>(self, code: *const (), f1: F1, f2: F2, f3: F3) -> R {
                // SAFETY: the caller's contract.
                unsafe {
                    let f = core::mem::transmute::<*const (), unsafe extern "C" fn(F1, F2, F3, ...) -> R>(code);
                    f(f1, f2, f3, $(self.$i),*)
                }
            }
            #[inline(always)]
            unsafe fn call4<F1, F2, F3, F4, R>(
                self, code: *const (), f1: F1, f2: F2, f3: F3, f4: F4,
            ) -> R {
                // SAFETY: the caller's contract.
                unsafe {
                    let f = core::mem::transmute::<*const (), unsafe extern "C" fn(F1, F2, F3, F4, ...) -> R>(code);
                    f(f1, f2, f3, f4, $(self.$i),*)
                }
            }
        }
    };
}
var_args!();
var_args!(A 0);
var_args!(A 0, B 1);
var_args!(A 0, B 1, C 2);
var_args!(A 0, B 1, C 2, D 3);
var_args!(A 0, B 1, C 2, D 3, E 4);
var_args!(A 0, B 1, C 2, D 3, E 4, F 5);
var_args!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
var_args!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// A function linked by [`bind!`](crate::bind): its symbol (which keeps the
/// library loaded) and its checked address. Used by the macro's expansion.
#[doc(hidden)]
#[derive(Debug)]
pub struct Bound {
    sym: super::Symbol,
}

impl Bound {
    /// Checks the declared C signature (as [`Linker::downcall`] does) and
    /// keeps the symbol.
    ///
    /// # Safety
    ///
    /// As [`Linker::downcall`]: the declaration matches the C function.
    ///
    /// [`Linker::downcall`]: super::Linker::downcall
    #[doc(hidden)]
    pub unsafe fn link(
        sym: super::Symbol,
        ret: Option<MemoryLayout>,
        args: &[MemoryLayout],
        variadic: bool,
    ) -> Result<Bound> {
        let mut d = super::FunctionDescriptor::of(ret, args);
        if variadic {
            // Only the fixed part is declared: each call's `...` types are
            // checked (promoted) at compile time by `VarArg`.
            d = d.variadic(args.len());
        }
        // SAFETY: forwarded to our caller. The libffi call interface is
        // built only to run the link-time signature checks and is dropped.
        let checked = unsafe { super::Linker::native().downcall(&sym, &d, Default::default()) }?;
        drop(checked);
        if sym.address().is_null() {
            return Err(Error::InvalidArgument {
                reason: format!("symbol `{}` is at the null address", sym.name()),
            });
        }
        Ok(Bound { sym })
    }

    /// The function's address (never null), or [`Error::Closed`] once the
    /// session of the library it came from has closed (the library stays
    /// mapped while the binding lives: this is Java's rule, not a safety
    /// check, and costs one load).
    #[doc(hidden)]
    #[inline(always)]
    pub fn code(&self) -> Result<*const ()> {
        if self.sym.is_closed() {
            return Err(Error::Closed);
        }
        // Loom: the expansion calls the address at once: a read of its code.
        #[cfg(loom)]
        self.sym.shadow_read();
        Ok(self.sym.address().as_ptr::<()>().cast_const())
    }

    /// Sets `errno` to 0 (before a call that captures it).
    #[doc(hidden)]
    #[inline(always)]
    pub fn clear_errno() {
        super::cif::set_errno(0);
    }

    /// The calling thread's `errno`.
    #[doc(hidden)]
    #[inline(always)]
    pub fn errno() -> i32 {
        super::cif::errno()
    }
}
