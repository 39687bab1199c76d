//! The unsafe core of segments: a pointer and a length, checked offsets, and
//! the raw reads and writes that every safe accessor funnels into.
//!
//! Everything here assumes the invariant established by whoever built the
//! `RawSegment`: `ptr .. ptr + len` is memory that stays valid (allocated,
//! readable, and writable unless the segment is read-only) while the owning
//! session is alive. Safe code in `segment/` checks liveness (guard, enter or
//! confined owner) before calling into this file.

use crate::error::{Error, Result};
use core::ptr::NonNull;

/// Address + length, no lifetime. `Copy`; the safe wrapper adds the rules.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawSegment {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) len: usize,
}

impl RawSegment {
    /// An empty segment at a dangling (but aligned, non-null) address.
    pub(crate) const fn empty() -> RawSegment {
        RawSegment {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }

    /// The start address.
    #[inline(always)]
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Checks that `offset .. offset + len` lies inside the segment, with
    /// overflow-safe arithmetic, and returns the address of `offset`.
    #[inline(always)]
    pub(crate) fn check(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                // wrapping_add keeps provenance and cannot overflow: end <= self.len.
                Ok(self.ptr.as_ptr().wrapping_add(offset))
            }
            _ => Err(Error::OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// As [`check`](Self::check), plus `addr % align == 0`.
    #[inline(always)]
    pub(crate) fn check_aligned(&self, offset: usize, len: usize, align: usize) -> Result<*mut u8> {
        let p = self.check(offset, len)?;
        if (p as usize) & (align - 1) != 0 {
            return Err(Error::Misaligned {
                addr: p as usize,
                align,
            });
        }
        Ok(p)
    }

    /// The sub-range `offset .. offset + len` (bounds-checked).
    #[allow(dead_code)]
    #[inline]
    pub(crate) fn sub(&self, offset: usize, len: usize) -> Result<RawSegment> {
        let p = self.check(offset, len)?;
        Ok(RawSegment {
            // SAFETY: `p` is `self.ptr + offset` with `offset <= self.len`
            // (checked above), and `self.ptr` is non-null and in (or one past)
            // one allocation, so `p` is non-null too.
            ptr: unsafe { NonNull::new_unchecked(p) },
            len,
        })
    }
}

/// A value memscope can read and write at any offset of a segment: the C
/// scalars, `bool` and [`Address`](crate::segment::Address).
///
/// # Safety
///
/// Implementors must be plain-old-data: every bit pattern of
/// `size_of::<Self>()` bytes that `read_raw` accepts must be valid, and
/// `read_raw`/`write_raw` must touch exactly `size_of::<Self>()` bytes.
/// The trait is sealed: only memscope implements it.
pub unsafe trait Primitive: Copy + Send + Sync + 'static + private::Sealed {
    /// Size in bytes.
    const SIZE: usize = core::mem::size_of::<Self>();
    /// Natural alignment in bytes.
    const ALIGN: usize = core::mem::align_of::<Self>();

    /// Reads a value from `p` (any alignment).
    ///
    /// # Safety
    ///
    /// `p .. p + SIZE` must be valid for reads and not written concurrently.
    unsafe fn read_raw(p: *const u8) -> Self;

    /// Writes `self` to `p` (any alignment).
    ///
    /// # Safety
    ///
    /// `p .. p + SIZE` must be valid for writes and not accessed concurrently.
    unsafe fn write_raw(self, p: *mut u8);

    /// The value with its bytes reversed (byte-order conversion).
    fn swap_bytes(self) -> Self;
}

mod private {
    pub trait Sealed {}
}

macro_rules! int_primitive {
    ($($t:ty),*) => {$(
        impl private::Sealed for $t {}
        // SAFETY: every bit pattern of an integer is valid; the reads and
        // writes below touch exactly size_of::<$t>() bytes.
        unsafe impl Primitive for $t {
            #[inline(always)]
            unsafe fn read_raw(p: *const u8) -> Self {
                // SAFETY: the caller guarantees SIZE readable bytes at `p`.
                unsafe { p.cast::<$t>().read_unaligned() }
            }
            #[inline(always)]
            unsafe fn write_raw(self, p: *mut u8) {
                // SAFETY: the caller guarantees SIZE writable bytes at `p`.
                unsafe { p.cast::<$t>().write_unaligned(self) }
            }
            #[inline(always)]
            fn swap_bytes(self) -> Self {
                <$t>::swap_bytes(self)
            }
        }
    )*};
}
int_primitive!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

macro_rules! float_primitive {
    ($($t:ty => $bits:ty),*) => {$(
        impl private::Sealed for $t {}
        // SAFETY: every bit pattern of a float is a valid float; exactly
        // size_of::<$t>() bytes are touched.
        unsafe impl Primitive for $t {
            #[inline(always)]
            unsafe fn read_raw(p: *const u8) -> Self {
                // SAFETY: the caller guarantees SIZE readable bytes at `p`.
                unsafe { p.cast::<$t>().read_unaligned() }
            }
            #[inline(always)]
            unsafe fn write_raw(self, p: *mut u8) {
                // SAFETY: the caller guarantees SIZE writable bytes at `p`.
                unsafe { p.cast::<$t>().write_unaligned(self) }
            }
            #[inline(always)]
            fn swap_bytes(self) -> Self {
                <$t>::from_bits(self.to_bits().swap_bytes())
            }
        }
    )*};
}
float_primitive!(f32 => u32, f64 => u64);

impl private::Sealed for bool {}
// SAFETY: reads one byte and maps it to a bool with `!= 0` (never
// transmutes, so bytes other than 0/1 are fine); writes one byte.
unsafe impl Primitive for bool {
    #[inline(always)]
    unsafe fn read_raw(p: *const u8) -> Self {
        // SAFETY: the caller guarantees one readable byte at `p`.
        unsafe { p.read() != 0 }
    }
    #[inline(always)]
    unsafe fn write_raw(self, p: *mut u8) {
        // SAFETY: the caller guarantees one writable byte at `p`.
        unsafe { p.write(self as u8) }
    }
    #[inline(always)]
    fn swap_bytes(self) -> Self {
        self
    }
}

impl private::Sealed for super::Address {}
// SAFETY: an Address is a usize; every bit pattern is valid.
unsafe impl Primitive for super::Address {
    #[inline(always)]
    unsafe fn read_raw(p: *const u8) -> Self {
        // SAFETY: the caller guarantees size_of::<usize>() readable bytes.
        super::Address(unsafe { p.cast::<usize>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn write_raw(self, p: *mut u8) {
        // SAFETY: the caller guarantees size_of::<usize>() writable bytes.
        unsafe { p.cast::<usize>().write_unaligned(self.0) }
    }
    #[inline(always)]
    fn swap_bytes(self) -> Self {
        super::Address(self.0.swap_bytes())
    }
}
