//! What [`bind!`](crate::bind) passes to C and takes back: the argument
//! kinds ([`BindArg`]) and result kinds ([`BindRet`]) of a bound function,
//! and [`CRepr`], the types whose Rust representation is their C one.
//!
//! `bind!` calls through a typed function pointer, so the per-call work is
//! only what safety needs: nothing for scalars and `c_struct!` values, an
//! acquire for a segment or an upcall stub (held until the call returns),
//! a NUL-terminated copy for a `&str`.

use crate::error::{Error, Result};
use crate::layout::{MemoryLayout, c};
use crate::marshal::Marshal;
use crate::segment::{Address, Segment};
use crate::session::AcquireGuard;
use core::ffi::{CStr, c_char, c_void};
use std::ffi::CString;

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

impl BindArg for &super::UpcallStub {
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

/// How [`bind!`](crate::bind) takes a C result back: any [`CRepr`] value as
/// itself, `()` for `void`.
///
/// # Examples
///
/// ```
/// use memscope::linker::BindRet;
/// assert_eq!(<i32 as BindRet>::from_c(5).unwrap(), 5);
/// assert_eq!(<() as BindRet>::layout(), None);
/// ```
pub trait BindRet: Sized {
    /// What C returns.
    type C;
    /// The C layout of the result (`None` for `void`).
    fn layout() -> Option<MemoryLayout>;
    /// The Rust value of a C result.
    ///
    /// # Errors
    ///
    /// None for the kinds memscope provides; the signature lets a result
    /// kind refuse a C value that is not a valid Rust one.
    fn from_c(c: Self::C) -> Result<Self>;
}

impl<T: CRepr> BindRet for T {
    type C = T;
    fn layout() -> Option<MemoryLayout> {
        Some(<T as Marshal>::layout())
    }
    #[inline(always)]
    fn from_c(c: T) -> Result<T> {
        Ok(c)
    }
}

impl BindRet for () {
    type C = ();
    fn layout() -> Option<MemoryLayout> {
        None
    }
    #[inline(always)]
    fn from_c(_: ()) -> Result<()> {
        Ok(())
    }
}

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
    ) -> Result<Bound> {
        let d = super::FunctionDescriptor::of(ret, args);
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

    /// The function's address (never null).
    #[doc(hidden)]
    #[inline(always)]
    pub fn code(&self) -> *const () {
        self.sym.address().as_ptr::<()>().cast_const()
    }
}
