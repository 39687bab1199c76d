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

/// Loom: the bytes an access below really reads (`shadow::read`) or
/// writes (`shadow::write`), so a model sees every segment access to
/// memory loom cannot see (chunks, mappings, library data) where it
/// happens. Nothing outside loom.
#[cfg(loom)]
#[inline(always)]
fn seen(p: *const u8, len: usize, write: bool) {
    if write {
        crate::shadow::write(p.addr(), len)
    } else {
        crate::shadow::read(p.addr(), len)
    }
}

/// Address + length, no lifetime. `Copy`; the safe wrapper adds the rules.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawSegment {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) len: usize,
}

impl core::fmt::Debug for RawSegment {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "0x{:x} + {}", self.addr(), self.len)
    }
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
    /// Whether this is a floating-point type (`f32`, `f64`).
    #[doc(hidden)]
    const IS_FLOAT: bool = false;

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

    /// Reads `dst.len()` consecutive values starting at `src` (any alignment).
    ///
    /// # Safety
    ///
    /// `src .. src + dst.len() * SIZE` must be valid for reads, not written
    /// concurrently, and must not overlap `dst`.
    #[doc(hidden)]
    #[inline(always)]
    unsafe fn read_slice_raw(src: *const u8, dst: &mut [Self]) {
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: `i * SIZE + SIZE <= dst.len() * SIZE` readable bytes
            // (the caller's duty).
            *d = unsafe { Self::read_raw(src.add(i * Self::SIZE)) };
        }
    }
}

/// A [`Primitive`] for which *every* bit pattern is a valid value: the
/// integers, the floats and [`Address`](crate::segment::Address) — not
/// `bool`. Only these can be viewed in place as `&[T]` (for example with
/// [`Guarded::as_slice_of`](crate::segment::Guarded::as_slice_of)) or lend
/// their memory to a segment ([`Segment::with_slice`](crate::Segment::with_slice)).
///
/// # Safety
///
/// Every `size_of::<Self>()`-byte pattern must be a valid `Self`, `Self` must
/// have no padding, and `size_of::<Self>() == Self::SIZE`. Sealed.
///
/// # Examples
///
/// ```
/// fn zero<T: memscope::segment::Numeric>() -> usize { T::SIZE }
/// assert_eq!(zero::<u32>(), 4);
/// ```
pub unsafe trait Numeric: Primitive {}

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
                #[cfg(loom)]
                seen(p, Self::SIZE, false);
                // SAFETY: the caller guarantees SIZE readable bytes at `p`.
                unsafe { p.cast::<$t>().read_unaligned() }
            }
            #[inline(always)]
            unsafe fn write_raw(self, p: *mut u8) {
                #[cfg(loom)]
                seen(p, Self::SIZE, true);
                // SAFETY: the caller guarantees SIZE writable bytes at `p`.
                unsafe { p.cast::<$t>().write_unaligned(self) }
            }
            #[inline(always)]
            fn swap_bytes(self) -> Self {
                <$t>::swap_bytes(self)
            }
            #[inline(always)]
            unsafe fn read_slice_raw(src: *const u8, dst: &mut [Self]) {
                #[cfg(loom)]
                seen(src, core::mem::size_of_val(dst), false);
                // SAFETY: the caller guarantees `dst.len() * SIZE` readable
                // bytes at `src`, not overlapping `dst`; every bit pattern is
                // a valid integer, so a byte copy makes valid values.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        src,
                        dst.as_mut_ptr().cast::<u8>(),
                        core::mem::size_of_val(dst),
                    )
                }
            }
        }
        // SAFETY: integers have no padding and no invalid bit patterns.
        unsafe impl Numeric for $t {}
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
            const IS_FLOAT: bool = true;
            #[inline(always)]
            unsafe fn read_raw(p: *const u8) -> Self {
                #[cfg(loom)]
                seen(p, Self::SIZE, false);
                // SAFETY: the caller guarantees SIZE readable bytes at `p`.
                unsafe { p.cast::<$t>().read_unaligned() }
            }
            #[inline(always)]
            unsafe fn write_raw(self, p: *mut u8) {
                #[cfg(loom)]
                seen(p, Self::SIZE, true);
                // SAFETY: the caller guarantees SIZE writable bytes at `p`.
                unsafe { p.cast::<$t>().write_unaligned(self) }
            }
            #[inline(always)]
            fn swap_bytes(self) -> Self {
                <$t>::from_bits(self.to_bits().swap_bytes())
            }
            #[inline(always)]
            unsafe fn read_slice_raw(src: *const u8, dst: &mut [Self]) {
                #[cfg(loom)]
                seen(src, core::mem::size_of_val(dst), false);
                // SAFETY: as for the integers: readable, non-overlapping,
                // and every bit pattern is a valid float.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        src,
                        dst.as_mut_ptr().cast::<u8>(),
                        core::mem::size_of_val(dst),
                    )
                }
            }
        }
        // SAFETY: floats have no padding and no invalid bit patterns.
        unsafe impl Numeric for $t {}
    )*};
}
float_primitive!(f32 => u32, f64 => u64);

impl private::Sealed for bool {}
// SAFETY: reads one byte and maps it to a bool with `!= 0` (never
// transmutes, so bytes other than 0/1 are fine); writes one byte.
unsafe impl Primitive for bool {
    #[inline(always)]
    unsafe fn read_raw(p: *const u8) -> Self {
        #[cfg(loom)]
        seen(p, 1, false);
        // SAFETY: the caller guarantees one readable byte at `p`.
        unsafe { p.read() != 0 }
    }
    #[inline(always)]
    unsafe fn write_raw(self, p: *mut u8) {
        #[cfg(loom)]
        seen(p, 1, true);
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
        #[cfg(loom)]
        seen(p, Self::SIZE, false);
        // SAFETY: the caller guarantees size_of::<usize>() readable bytes.
        super::Address(unsafe { p.cast::<usize>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn write_raw(self, p: *mut u8) {
        #[cfg(loom)]
        seen(p, Self::SIZE, true);
        // SAFETY: the caller guarantees size_of::<usize>() writable bytes.
        unsafe { p.cast::<usize>().write_unaligned(self.0) }
    }
    #[inline(always)]
    fn swap_bytes(self) -> Self {
        super::Address(self.0.swap_bytes())
    }
}
// SAFETY: `Address` is `repr(transparent)` over `usize`: no padding, no
// invalid bit patterns.
unsafe impl Numeric for super::Address {}

// ----- bulk mechanisms ---------------------------------------------------------
//
// Every function below takes raw pointers that the safe caller has
// range-checked with `RawSegment::check`/`check_aligned` and made live with a
// guard or an `enter()` access; each `# Safety` section says which.

/// Borrows `len` bytes at `p` as a slice for `'a`.
///
/// # Safety
///
/// `p .. p + len` must be valid for reads and not written for all of `'a`
/// (the caller holds a guard or an access and a shared borrow of the segment
/// for `'a`).
#[inline(always)]
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize) -> &'a [u8] {
    #[cfg(loom)]
    seen(p, len, false);
    // SAFETY: the caller's duty, see above; `p` is non-null and in bounds
    // (from `RawSegment::check`, which never returns null).
    unsafe { core::slice::from_raw_parts(p, len) }
}

/// Borrows `len` bytes at `p` mutably for `'a`.
///
/// # Safety
///
/// `p .. p + len` must be valid for reads and writes, writable (not a
/// read-only mapping) and not accessed through any other path for `'a`.
#[inline(always)]
pub(crate) unsafe fn bytes_mut<'a>(p: *mut u8, len: usize) -> &'a mut [u8] {
    #[cfg(loom)]
    seen(p, len, true);
    // SAFETY: the caller's duty, see above.
    unsafe { core::slice::from_raw_parts_mut(p, len) }
}

/// Borrows `n` values of `T` at `p` for `'a`.
///
/// # Safety
///
/// As [`bytes`] for `n * T::SIZE` bytes, and `p` aligned to `T::ALIGN`
/// unless `n == 0`.
#[inline(always)]
pub(crate) unsafe fn values<'a, T: Numeric>(p: *const u8, n: usize) -> &'a [T] {
    if n == 0 {
        // A zero-size segment's address may be unaligned (even NULL).
        return &[];
    }
    #[cfg(loom)]
    seen(p, n * T::SIZE, false);
    debug_assert!(
        (p as usize).is_multiple_of(T::ALIGN),
        "{p:p} not aligned to {}",
        T::ALIGN
    );
    // SAFETY: the caller's duty; every bit pattern is a valid `T` (Numeric).
    unsafe { core::slice::from_raw_parts(p.cast::<T>(), n) }
}

/// Borrows `n` values of `T` at `p` mutably for `'a`.
///
/// # Safety
///
/// As [`bytes_mut`] for `n * T::SIZE` bytes, and `p` aligned to `T::ALIGN`
/// unless `n == 0`.
#[inline(always)]
pub(crate) unsafe fn values_mut<'a, T: Numeric>(p: *mut u8, n: usize) -> &'a mut [T] {
    if n == 0 {
        return &mut [];
    }
    #[cfg(loom)]
    seen(p, n * T::SIZE, true);
    debug_assert!(
        (p as usize).is_multiple_of(T::ALIGN),
        "{p:p} not aligned to {}",
        T::ALIGN
    );
    // SAFETY: the caller's duty; every bit pattern is a valid `T` (Numeric).
    unsafe { core::slice::from_raw_parts_mut(p.cast::<T>(), n) }
}

/// `memmove`: copies `len` bytes from `src` to `dst`; the ranges may overlap.
///
/// # Safety
///
/// `src .. src + len` readable and `dst .. dst + len` writable, both live and
/// not accessed by another thread during the call.
#[inline(always)]
pub(crate) unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(loom)]
    {
        seen(src, len, false);
        seen(dst, len, true);
    }
    // SAFETY: the caller's duty; `ptr::copy` allows overlap.
    unsafe { core::ptr::copy(src, dst, len) }
}

/// `memset`: writes `byte` to `len` bytes at `p`.
///
/// # Safety
///
/// `p .. p + len` writable, live and not accessed by another thread.
#[inline(always)]
pub(crate) unsafe fn fill(p: *mut u8, byte: u8, len: usize) {
    #[cfg(loom)]
    seen(p, len, true);
    // SAFETY: the caller's duty.
    unsafe { core::ptr::write_bytes(p, byte, len) }
}

/// Writes `src` (as bytes) to `dst`.
///
/// # Safety
///
/// `dst .. dst + size_of_val(src)` writable, live, not accessed by another
/// thread, and not overlapping `src`.
#[inline(always)]
pub(crate) unsafe fn write_slice<T: Primitive>(src: &[T], dst: *mut u8) {
    #[cfg(loom)]
    seen(dst, core::mem::size_of_val(src), true);
    // SAFETY: the caller's duty. Every `Primitive` is plain data without
    // padding (its `# Safety`), so its bytes are initialised; `bool` is 0/1.
    unsafe {
        core::ptr::copy_nonoverlapping(src.as_ptr().cast::<u8>(), dst, core::mem::size_of_val(src))
    }
}

/// Reads one byte of every `page` bytes of `p .. p + len` (volatile, so the
/// reads are not optimised away): faults a mapping's pages in.
///
/// # Safety
///
/// `p .. p + len` readable and live.
pub(crate) unsafe fn touch_pages(p: *const u8, len: usize, page: usize) {
    #[cfg(loom)]
    seen(p, len, false);
    let mut off = 0;
    while off < len {
        // SAFETY: `off < len`, so the byte is inside the range (caller's duty).
        unsafe { core::ptr::read_volatile(p.add(off)) };
        off = match off.checked_add(page.max(1)) {
            Some(o) => o,
            None => break,
        };
    }
}

/// The atomic types an [`AtomicView`](crate::segment::AtomicView) hands out.
///
/// # Safety
///
/// `Self` must have the size of `Self::Value` and the in-memory
/// representation of that integer (true of the `core::sync::atomic` types).
pub(crate) unsafe trait AtomicCell: Sized + Sync + Send + 'static {
    const SIZE: usize = core::mem::size_of::<Self>();
    const ALIGN: usize = core::mem::align_of::<Self>();
}

macro_rules! atomic_cell {
    ($($a:ty),*) => {$(
        // SAFETY: the core atomics have the size and bit representation of
        // their integer (documented by `core::sync::atomic`).
        unsafe impl AtomicCell for $a {}
    )*};
}
atomic_cell!(
    core::sync::atomic::AtomicU8,
    core::sync::atomic::AtomicU16,
    core::sync::atomic::AtomicU32,
    core::sync::atomic::AtomicU64,
    core::sync::atomic::AtomicUsize,
    core::sync::atomic::AtomicI32,
    core::sync::atomic::AtomicI64
);

/// Borrows the bytes at `p` as an atomic for `'a`.
///
/// # Safety
///
/// `p .. p + A::SIZE` must be in bounds, aligned to `A::ALIGN`, writable,
/// live for `'a`, and accessed by nothing but atomic operations for `'a`.
#[inline(always)]
pub(crate) unsafe fn atomic<'a, A: AtomicCell>(p: *mut u8) -> &'a A {
    // Atomic operations only read the shadow: two threads' atomics on
    // the same bytes are no race, a free under them is.
    #[cfg(loom)]
    seen(p, A::SIZE, false);
    debug_assert!(
        (p as usize).is_multiple_of(A::ALIGN),
        "{p:p} not aligned to {}",
        A::ALIGN
    );
    // SAFETY: the caller's duty; `A` has the representation of its integer
    // and any initialised bytes are a valid integer.
    unsafe { &*p.cast::<A>() }
}

// ----- Rust-heap storage (HeapSegment) ------------------------------------------

/// A non-null, `align`-aligned pointer for a zero-size segment.
pub(crate) fn dangling(align: usize) -> NonNull<u8> {
    NonNull::new(core::ptr::without_provenance_mut(align.max(1))).unwrap_or(NonNull::dangling())
}

/// `std::alloc::alloc_zeroed`, `None` on failure.
///
/// `layout.size()` must be non-zero (checked: a zero size returns `None`).
pub(crate) fn alloc_zeroed(layout: std::alloc::Layout) -> Option<NonNull<u8>> {
    if layout.size() == 0 {
        return None;
    }
    // SAFETY: the layout has a non-zero size (checked above).
    NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
}

/// Gives up a `Box<[u8]>`: its pointer and, if it owns an allocation, the
/// layout to free it with (`dealloc`).
pub(crate) fn box_into_raw(b: Box<[u8]>) -> (NonNull<u8>, Option<std::alloc::Layout>) {
    let len = b.len();
    let ptr = Box::into_raw(b).cast::<u8>();
    // A `Box<[u8]>` of `len > 0` bytes was allocated by the global allocator
    // with `Layout::array::<u8>(len)` (size `len`, alignment 1).
    let layout = (len > 0)
        .then(|| std::alloc::Layout::from_size_align(len, 1).ok())
        .flatten();
    (NonNull::new(ptr).unwrap_or(NonNull::dangling()), layout)
}

/// Frees memory from [`alloc_zeroed`] or [`box_into_raw`].
///
/// # Safety
///
/// `ptr` must come from one of those with exactly `layout`, not be freed
/// yet, and not be used afterwards.
pub(crate) unsafe fn dealloc(ptr: NonNull<u8>, layout: std::alloc::Layout) {
    // SAFETY: the caller's duty (allocated by the global allocator with
    // `layout`, freed once).
    unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
}

// ----- mapped files ------------------------------------------------------------

/// The OS page size.
pub(crate) fn page_size() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: `sysconf` has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
    }
    #[cfg(not(unix))]
    {
        4096
    }
}

/// `msync(MS_SYNC)` over the pages that hold `p .. p + len`.
///
/// # Safety
///
/// `p .. p + len` must lie inside one live file mapping (whose start is
/// page-aligned, so rounding `p` down stays inside it).
pub(crate) unsafe fn msync(p: *mut u8, len: usize) -> std::io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    #[cfg(loom)]
    seen(p, len, false);
    #[cfg(unix)]
    {
        let page = page_size();
        let addr = p as usize;
        let start = addr & !(page - 1);
        let span = len + (addr - start);
        // SAFETY: `start .. start + span` covers pages of the live mapping
        // (the caller's duty); msync does not access the bytes from Rust.
        let rc = unsafe { libc::msync(p.wrapping_sub(addr - start).cast(), span, libc::MS_SYNC) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(unix))]
    {
        let _ = p;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "flush of mapped segments is only implemented on Unix",
        ))
    }
}
