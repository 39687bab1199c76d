//! Segments: checked views of native memory.
//!
//! A [`Segment<'s>`] is an address, a size and the [`Session`] that keeps the
//! memory alive. It *borrows* the session handle (`&'s Session`), so handing
//! out a segment (an arena does this millions of times) costs no atomic
//! read-modify-write; the borrow also means no segment can outlive the handle
//! it was made from, and [`Session::auto`] sessions close only after their
//! last segment is gone.
//!
//! Every access checks bounds (overflow-safe), alignment where the type
//! needs it, the session's liveness and thread, and writability. Plain writes
//! take `&mut self`, reads take `&self`: like `&[u8]`/`&mut [u8]`, two threads
//! can never race on the same bytes through safe code. Shared mutable memory
//! goes through atomic views instead.
//!
//! | need | API |
//! |---|---|
//! | one value | [`get`](Segment::get)/[`set`](Segment::set), `_unaligned`, `_with(ByteOrder)`, `_le`/`_be`, `_at_index` |
//! | many values | [`copy_to_slice`](Segment::copy_to_slice)/[`copy_from_slice`](Segment::copy_from_slice), [`elements`](Segment::elements) (+ [`Elements::next_chunk`]) |
//! | views | [`slice`](Segment::slice)/[`slice_mut`](Segment::slice_mut), [`split_at`](Segment::split_at)/[`split_at_mut`](Segment::split_at_mut), [`chunks`](Segment::chunks), [`as_read_only`](Segment::as_read_only) |
//! | bulk | [`fill`](Segment::fill), [`Segment::copy`] (memmove), [`mismatch`](Segment::mismatch), [`to_vec`](Segment::to_vec), [`clone_into`](Segment::clone_into) |
//! | text | [`get_cstr`](Segment::get_cstr), [`get_string`](Segment::get_string), [`set_cstr`](Segment::set_cstr), [`hexdump`](Segment::hexdump) / `Display` |
//! | `std::io` | [`cursor`](Segment::cursor)/[`cursor_mut`](Segment::cursor_mut) → [`SegmentCursor`] |
//! | speed | [`guarded`](Segment::guarded) / [`guarded_mut`](Segment::guarded_mut) (no liveness check; `&[T]` views) |
//! | threads | [`atomics`](Segment::atomics) → [`AtomicView`] |
//! | other memory | [`HeapSegment`], [`Segment::with_slice`], [`Segment::map_file`] |
//! | a value (struct field, return value, cache, `'static` thread) | [`OwnedSegment`] (holds a session handle; [`Arena::allocate_owned`](crate::Arena::allocate_owned)) |

pub(crate) mod raw;

mod access;
mod atomic;
mod cursor;
mod heap;
#[cfg(loom)]
pub mod loom_hook;
mod mapped;
mod owned;
mod view;

pub use access::{ByteOrder, Elements};
pub use atomic::AtomicView;
pub use cursor::SegmentCursor;
pub use heap::{HeapSegment, check_layout};
pub use mapped::MapMode;
pub use owned::OwnedSegment;
pub use raw::{Numeric, Primitive};

pub use view::{Chunks, HexDump};

use crate::error::{Error, Result};
use crate::session::{AcquireGuard, Session};
use core::fmt;
use core::marker::PhantomData;
use raw::RawSegment;

/// A native address. [`Address::NULL`] is a value, not an error; offset
/// arithmetic is checked.
///
/// # Examples
///
/// ```
/// use memscope::segment::Address;
/// assert!(Address::NULL.is_null());
/// assert_eq!(Address::new(0x1000).checked_add(0x10), Some(Address::new(0x1010)));
/// assert_eq!(Address::new(usize::MAX).checked_add(1), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Address(pub(crate) usize);

impl Address {
    /// The null address.
    pub const NULL: Address = Address(0);

    /// An address from a number.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::segment::Address::new(8).get(), 8);
    /// ```
    pub const fn new(addr: usize) -> Address {
        Address(addr)
    }

    /// The address as a number.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::segment::Address::NULL.get(), 0);
    /// ```
    pub const fn get(self) -> usize {
        self.0
    }

    /// Whether this is [`Address::NULL`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!memscope::segment::Address::new(1).is_null());
    /// ```
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }

    /// `self + offset`, or `None` on overflow.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::segment::Address;
    /// assert_eq!(Address::new(1).checked_add(2), Some(Address::new(3)));
    /// ```
    pub const fn checked_add(self, offset: usize) -> Option<Address> {
        match self.0.checked_add(offset) {
            Some(a) => Some(Address(a)),
            None => None,
        }
    }

    /// `self - offset`, or `None` on underflow.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::segment::Address;
    /// assert_eq!(Address::new(1).checked_sub(2), None);
    /// ```
    pub const fn checked_sub(self, offset: usize) -> Option<Address> {
        match self.0.checked_sub(offset) {
            Some(a) => Some(Address(a)),
            None => None,
        }
    }

    /// The address as a raw pointer.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memscope::segment::Address::NULL.as_ptr::<u8>().is_null());
    /// ```
    pub fn as_ptr<T>(self) -> *mut T {
        core::ptr::with_exposed_provenance_mut(self.0)
    }

    /// The address of a raw pointer.
    ///
    /// # Examples
    ///
    /// ```
    /// let x = 5u32;
    /// let a = memscope::segment::Address::from_ptr(&x as *const u32);
    /// assert!(!a.is_null());
    /// ```
    pub fn from_ptr<T>(p: *const T) -> Address {
        Address(p.expose_provenance())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address(0x{:x})", self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// A checked view of `size` bytes of native memory owned by a session.
///
/// It borrows its session handle (or the allocator that made it), so it is
/// free to make and cannot outlive its memory's owner; when a segment must be
/// a value of its own (a struct field beside its arena, a return value, a
/// `'static` thread), use an [`OwnedSegment`] instead.
///
/// # Examples
///
/// ```
/// use memscope::{Session, Segment};
/// let session = Session::shared();
/// let mut buf = vec![0u8; 16];
/// // SAFETY: `buf` outlives the segment and is not used while it exists.
/// let mut seg = unsafe { Segment::from_raw(buf.as_mut_ptr().into(), buf.len(), &session) }?;
/// seg.set::<u32>(4, 0xdead_beef)?;
/// assert_eq!(seg.get::<u32>(4)?, 0xdead_beef);
/// assert!(seg.get::<u64>(12).is_err()); // out of bounds
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct Segment<'s> {
    pub(crate) raw: RawSegment,
    pub(crate) session: &'s Session,
    pub(crate) read_only: bool,
    /// Whether the bytes are a file mapping (enables `flush`/`load`).
    pub(crate) mapped: bool,
    /// `*mut u8` semantics (the type owns no `T`), but see the Send/Sync impls.
    _marker: PhantomData<*mut u8>,
}

// SAFETY: a Segment is a pointer + length into memory kept alive by the
// session it borrows (`&Session` is Send + Sync). Moving it to another thread
// cannot create a data race: plain writes need `&mut Segment` (exclusive),
// confined sessions re-check the thread on every access, and the memory is
// only freed by a close that the access protocol (enter/guard) excludes.
unsafe impl Send for Segment<'_> {}
// SAFETY: through `&Segment` only reads (and atomic views) are possible;
// concurrent reads of the same bytes are not a data race, and writes need
// `&mut Segment`, which cannot coexist with a shared borrow.
unsafe impl Sync for Segment<'_> {}

impl<'s> Segment<'s> {
    /// Crate-internal constructor for allocators.
    ///
    /// # Safety
    ///
    /// `raw.ptr .. raw.ptr + raw.len` must be valid for reads and writes for
    /// as long as `session` is alive, must not be freed before the session's
    /// close actions run, and must not be reachable through any other
    /// writable segment (allocators hand out disjoint ranges).
    #[inline(always)]
    pub(crate) unsafe fn from_raw_parts(raw: RawSegment, session: &'s Session) -> Segment<'s> {
        Segment {
            raw,
            session,
            read_only: false,
            mapped: false,
            _marker: PhantomData,
        }
    }

    /// A view of `raw` (a sub-range of `self`, checked by the caller with
    /// `RawSegment::sub`) that shares this segment's session and flags;
    /// `read_only` is or-ed in.
    #[inline(always)]
    pub(crate) fn derive(&self, raw: RawSegment, read_only: bool) -> Segment<'_> {
        Segment {
            raw,
            session: self.session,
            read_only: self.read_only || read_only,
            mapped: self.mapped,
            _marker: PhantomData,
        }
    }

    /// A view of `size` bytes at `addr` that belongs to `session` (coffi
    /// `as-segment`, Java `reinterpret`). A zero-size segment may start at
    /// any address, NULL included.
    ///
    /// # Safety
    ///
    /// Unless `size == 0`, `addr .. addr + size` must be valid for reads and
    /// writes for as long as `session` is alive (or until it closes), and no
    /// other code — including another segment made by `from_raw` over the
    /// same bytes — may access those bytes while this segment (or a view of
    /// it) is in use. (Atomic views are made from this segment and borrow
    /// it exclusively, so they need no exception here.)
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`] for a NULL address with a non-zero size;
    /// [`Error::OutOfBounds`] if `addr + size` overflows.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Session, Segment, segment::Address};
    /// let s = Session::global();
    /// // SAFETY: a zero-size segment touches no memory.
    /// let empty = unsafe { Segment::from_raw(Address::NULL, 0, &s) }?;
    /// assert_eq!(empty.len(), 0);
    /// assert!(unsafe { Segment::from_raw(Address::NULL, 8, &s) }.is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "reinterpret")]
    #[doc(alias = "as-segment")]
    #[doc(alias = "pointer-buffer")]
    pub unsafe fn from_raw(
        addr: Address,
        size: usize,
        session: &'s Session,
    ) -> Result<Segment<'s>> {
        if addr.0.checked_add(size).is_none() {
            return Err(Error::OutOfBounds {
                offset: addr.0,
                len: size,
                size: usize::MAX,
            });
        }
        let raw = match core::ptr::NonNull::new(addr.as_ptr::<u8>()) {
            Some(ptr) => RawSegment { ptr, len: size },
            None if size == 0 => RawSegment::empty(),
            None => return Err(Error::NullAddress),
        };
        // SAFETY: the caller guarantees validity for the session's lifetime
        // and exclusivity (this function's `# Safety`).
        Ok(unsafe { Segment::from_raw_parts(raw, session) })
    }

    /// The size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let seg = unsafe { Segment::from_raw(Address::NULL, 0, &s) }?;
    /// assert_eq!(seg.len(), 0);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.raw.len
    }

    /// Whether the size is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// assert!(unsafe { Segment::from_raw(Address::NULL, 0, &s) }?.is_empty());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }

    /// The start address.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8; 4];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// assert_eq!(seg.address(), Address::from_ptr(b.as_ptr()));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn address(&self) -> Address {
        Address(self.raw.addr())
    }

    /// The session that owns the memory.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// let s = Session::shared();
    /// let seg = unsafe { Segment::from_raw(Address::NULL, 0, &s) }?;
    /// assert_eq!(seg.session(), &s);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn session(&self) -> &'s Session {
        self.session
    }

    /// Whether writes through this segment are refused.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let seg = unsafe { Segment::from_raw(Address::NULL, 0, &s) }?;
    /// assert!(!seg.is_read_only());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Runs `f` on the address of `offset .. offset + len` after the bounds
    /// check, inside a plain access of the session (liveness + thread).
    #[inline(always)]
    pub(crate) fn with_access<R>(
        &self,
        offset: usize,
        len: usize,
        align: usize,
        f: impl FnOnce(*mut u8) -> R,
    ) -> Result<R> {
        let p = if align > 1 {
            self.raw.check_aligned(offset, len, align)?
        } else {
            self.raw.check(offset, len)?
        };
        self.enter_then(|| f(p))
    }

    /// Runs `f` inside a plain access of the session (liveness + thread).
    #[inline(always)]
    pub(crate) fn enter_then<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        #[cfg(loom)]
        if crate::session::state::twin_on("SegmentSkipsLiveness") {
            let r = f();
            loom_hook::run();
            return Ok(r);
        }
        if self.session.kind() == crate::SessionKind::Global {
            // The global session never closes and has no owner thread:
            // nothing to enter (the same answer `enter` gives, minus the
            // token's construction and drop).
            return Ok(f());
        }
        // `f` is the library's own code (a copy, a compare, one read or
        // write): no user code runs in this window, so it needs no record.
        let _access = self.session.enter_lib()?;
        let r = f();
        #[cfg(loom)]
        loom_hook::run();
        Ok(r)
    }

    #[inline(always)]
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Reads a `T` at `offset` (native byte order). The address must be
    /// aligned to `T`'s alignment; see [`get_unaligned`](Self::get_unaligned).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`], [`Error::Misaligned`], [`Error::Closed`],
    /// [`Error::WrongThread`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, Error};
    /// # let s = Session::global();
    /// let mut b = [1u64, 2];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 16, &s) }?;
    /// assert_eq!(seg.get::<u64>(8)?, 2);
    /// assert!(matches!(seg.get::<u64>(4), Err(Error::Misaligned { align: 8, .. })));
    /// assert!(matches!(seg.get::<u64>(usize::MAX), Err(Error::OutOfBounds { .. })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn get<T: Primitive>(&self, offset: usize) -> Result<T> {
        self.with_access(offset, T::SIZE, T::ALIGN, |p| {
            // SAFETY: `p .. p + SIZE` is inside the segment (checked by
            // with_access), the session is alive for the closure (enter), and
            // no writer can run concurrently (writes need `&mut self`).
            unsafe { T::read_raw(p) }
        })
    }

    /// Reads a `T` at `offset` at any alignment (native byte order).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8; 8];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
    /// seg.set_unaligned::<u32>(1, 7)?;
    /// assert_eq!(seg.get_unaligned::<u32>(1)?, 7);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn get_unaligned<T: Primitive>(&self, offset: usize) -> Result<T> {
        self.with_access(offset, T::SIZE, 1, |p| {
            // SAFETY: as in `get`; `read_raw` accepts any alignment.
            unsafe { T::read_raw(p) }
        })
    }

    /// Writes `value` at `offset` (native byte order, aligned).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), plus [`Error::ReadOnly`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u32; 2];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
    /// seg.set(4, -1i32)?;
    /// assert_eq!(seg.get::<u32>(4)?, u32::MAX);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn set<T: Primitive>(&mut self, offset: usize, value: T) -> Result<()> {
        self.check_writable()?;
        self.with_access(offset, T::SIZE, T::ALIGN, |p| {
            // SAFETY: in bounds and aligned (with_access), session alive
            // (enter), exclusive (`&mut self`), writable (checked above).
            unsafe { value.write_raw(p) }
        })
    }

    /// Writes `value` at `offset` at any alignment.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8; 9];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 9, &s) }?;
    /// seg.set_unaligned(1, 1.5f64)?;
    /// assert_eq!(seg.get_unaligned::<f64>(1)?, 1.5);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn set_unaligned<T: Primitive>(&mut self, offset: usize, value: T) -> Result<()> {
        self.check_writable()?;
        self.with_access(offset, T::SIZE, 1, |p| {
            // SAFETY: as in `set`; `write_raw` accepts any alignment.
            unsafe { value.write_raw(p) }
        })
    }

    /// A view that skips the liveness check: `guard` proves the session
    /// cannot close while the view lives. Bounds are still checked.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `guard` holds a different session.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// let s = Session::shared();
    /// let mut b = [1i32, 2, 3];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 12, &s) }?;
    /// let guard = s.acquire()?;
    /// let view = seg.guarded(&guard)?;
    /// assert_eq!(view.as_slice().len(), 12);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn guarded<'g>(&'g self, guard: &'g AcquireGuard<'_>) -> Result<Guarded<'g>> {
        self.check_guard(guard)?;
        Ok(Guarded {
            raw: self.raw,
            _borrow: PhantomData,
        })
    }

    /// A writable view that skips the liveness check (see
    /// [`guarded`](Self::guarded)): `&mut [u8]` access and
    /// `memcpy`/`memset`-speed bulk operations.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `guard` holds a different session;
    /// [`Error::ReadOnly`] for a read-only segment.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// let s = Session::shared();
    /// let mut b = [0u32; 4];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 16, &s) }?;
    /// let guard = s.acquire()?;
    /// let mut view = seg.guarded_mut(&guard)?;
    /// view.as_mut_slice_of::<u32>()?.copy_from_slice(&[1, 2, 3, 4]);
    /// assert_eq!(view.as_slice_of::<u32>()?.iter().sum::<u32>(), 10);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn guarded_mut<'g>(&'g mut self, guard: &'g AcquireGuard<'_>) -> Result<GuardedMut<'g>> {
        self.check_guard(guard)?;
        self.check_writable()?;
        Ok(GuardedMut {
            raw: self.raw,
            _borrow: PhantomData,
        })
    }

    #[inline(always)]
    fn check_guard(&self, guard: &AcquireGuard<'_>) -> Result<()> {
        if !guard.holds(self.session) {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "guard holds session {}, segment belongs to session {}",
                    guard.session_id(),
                    self.session.id()
                ),
            });
        }
        Ok(())
    }
}

/// Checks that the whole of `raw` is an array of `T`: start aligned, length
/// a multiple of the size. Returns the element count.
#[inline(always)]
fn check_array<T: Numeric>(raw: &RawSegment) -> Result<usize> {
    if raw.len == 0 {
        // An empty slice may start anywhere (a zero-size segment's address
        // can be NULL); `values` uses an aligned dangling pointer for it.
        return Ok(0);
    }
    raw.check_aligned(0, 0, T::ALIGN)?;
    if !raw.len.is_multiple_of(T::SIZE) {
        return Err(Error::InvalidArgument {
            reason: format!(
                "segment of {} byte(s) is not a whole number of {}-byte elements",
                raw.len,
                T::SIZE
            ),
        });
    }
    Ok(raw.len / T::SIZE)
}

/// A segment viewed under an [`AcquireGuard`]: the session cannot close while
/// this lives, so reads skip the liveness check and the bytes can be borrowed
/// as a slice.
///
/// # Examples
///
/// ```
/// # use memscope::{Session, Segment, segment::Address};
/// let s = Session::shared();
/// let mut b = [5u8; 4];
/// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
/// let g = s.acquire()?;
/// assert_eq!(seg.guarded(&g)?.as_slice(), &[5, 5, 5, 5]);
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct Guarded<'g> {
    raw: RawSegment,
    _borrow: PhantomData<&'g [u8]>,
}

impl<'g> Guarded<'g> {
    /// The bytes, borrowed for as long as the guard and segment borrow last.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [0u8; 2];
    /// # let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// # let g = s.acquire()?;
    /// assert_eq!(seg.guarded(&g)?.as_slice(), &[0, 0]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn as_slice(&self) -> &'g [u8] {
        // SAFETY: the memory is valid while the session is alive, and the
        // guard borrowed for 'g keeps it alive; the segment is borrowed
        // shared for 'g, so no `&mut Segment` write can alias this slice.
        unsafe { raw::bytes(self.raw.ptr.as_ptr(), self.raw.len) }
    }

    /// The bytes as a `&[T]` for a [`Numeric`] `T` (never `bool`, whose
    /// bytes might not be 0/1).
    ///
    /// # Errors
    ///
    /// [`Error::Misaligned`] if the start is not aligned to `T`;
    /// [`Error::InvalidArgument`] if the length is not a multiple of
    /// `size_of::<T>()`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, Error};
    /// let s = Session::shared();
    /// let mut b = [1i32, 2, 3];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 12, &s) }?;
    /// let g = s.acquire()?;
    /// assert_eq!(seg.guarded(&g)?.as_slice_of::<i32>()?, &[1, 2, 3]);
    /// assert!(seg.guarded(&g)?.as_slice_of::<u64>().is_err()); // 12 bytes are not u64s
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn as_slice_of<T: Numeric>(&self) -> Result<&'g [T]> {
        let n = check_array::<T>(&self.raw)?;
        // SAFETY: aligned and exactly `n * SIZE` bytes (check_array); live
        // and unaliased by writers for 'g (as in `as_slice`); `T: Numeric`
        // accepts any bytes.
        Ok(unsafe { raw::values::<T>(self.raw.ptr.as_ptr(), n) })
    }

    /// The size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [0u8; 2];
    /// # let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// # let g = s.acquire()?;
    /// assert_eq!(seg.guarded(&g)?.len(), 2);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.raw.len
    }

    /// Whether the size is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let seg = unsafe { Segment::from_raw(Address::NULL, 0, &s) }?;
    /// # let g = s.acquire()?;
    /// assert!(seg.guarded(&g)?.is_empty());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }

    /// Reads a `T` at `offset` with bounds and alignment checks only.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// let mut b = [7u16; 2];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// let g = s.acquire()?;
    /// assert_eq!(seg.guarded(&g)?.get::<u16>(2)?, 7);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn get<T: Primitive>(&self, offset: usize) -> Result<T> {
        let p = self.raw.check_aligned(offset, T::SIZE, T::ALIGN)?;
        // SAFETY: in bounds and aligned (checked above); alive (the guard).
        Ok(unsafe { T::read_raw(p) })
    }

    /// Reads a `T` at `offset` at any alignment (bounds check only).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// let mut b = [0u8, 1, 0, 0, 0];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 5, &s) }?;
    /// let g = s.acquire()?;
    /// assert_eq!(seg.guarded(&g)?.get_unaligned::<u32>(1)?, u32::from_le(1));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn get_unaligned<T: Primitive>(&self, offset: usize) -> Result<T> {
        let p = self.raw.check(offset, T::SIZE)?;
        // SAFETY: in bounds (checked above); alive (the guard).
        Ok(unsafe { T::read_raw(p) })
    }
}

/// A writable segment viewed under an [`AcquireGuard`] (see
/// [`Segment::guarded_mut`]).
///
/// # Examples
///
/// ```
/// # use memscope::{Session, Segment, segment::Address};
/// let s = Session::shared();
/// let mut b = [0u8; 4];
/// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
/// let g = s.acquire()?;
/// seg.guarded_mut(&g)?.fill(3);
/// assert_eq!(seg.guarded(&g)?.as_slice(), &[3; 4]);
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct GuardedMut<'g> {
    raw: RawSegment,
    _borrow: PhantomData<&'g mut [u8]>,
}

impl<'g> GuardedMut<'g> {
    /// The bytes (shared borrow of the view).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [1u8; 2];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// # let g = s.acquire()?;
    /// assert_eq!(seg.guarded_mut(&g)?.as_slice(), &[1, 1]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: live for 'g (the guard); the segment is borrowed mutably
        // for 'g, so only this view reaches the bytes, and `&self` excludes
        // its own mutable borrows.
        unsafe { raw::bytes(self.raw.ptr.as_ptr(), self.raw.len) }
    }

    /// The bytes, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [0u8; 2];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// # let g = s.acquire()?;
    /// seg.guarded_mut(&g)?.as_mut_slice()[1] = 9;
    /// assert_eq!(seg.get::<u8>(1)?, 9);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: live for 'g (the guard); writable (checked by
        // `guarded_mut`); exclusive: the segment is borrowed mutably for 'g
        // and `&mut self` excludes every other borrow of this view.
        unsafe { raw::bytes_mut(self.raw.ptr.as_ptr(), self.raw.len) }
    }

    /// The bytes as `&[T]` (see [`Guarded::as_slice_of`]).
    ///
    /// # Errors
    ///
    /// As [`Guarded::as_slice_of`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [2u16; 2];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// # let g = s.acquire()?;
    /// assert_eq!(seg.guarded_mut(&g)?.as_slice_of::<u16>()?, &[2, 2]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn as_slice_of<T: Numeric>(&self) -> Result<&[T]> {
        let n = check_array::<T>(&self.raw)?;
        // SAFETY: as `as_slice`, plus aligned and sized (check_array) and
        // any bytes are a valid `T` (Numeric).
        Ok(unsafe { raw::values::<T>(self.raw.ptr.as_ptr(), n) })
    }

    /// The bytes as `&mut [T]` for a [`Numeric`] `T`.
    ///
    /// # Errors
    ///
    /// As [`Guarded::as_slice_of`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [0f64; 2];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 16, &s) }?;
    /// # let g = s.acquire()?;
    /// seg.guarded_mut(&g)?.as_mut_slice_of::<f64>()?[1] = 0.5;
    /// assert_eq!(seg.get::<f64>(8)?, 0.5);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn as_mut_slice_of<T: Numeric>(&mut self) -> Result<&mut [T]> {
        let n = check_array::<T>(&self.raw)?;
        // SAFETY: as `as_mut_slice`, plus aligned and sized (check_array);
        // any bytes are a valid `T`, and any `T` written is plain bytes.
        Ok(unsafe { raw::values_mut::<T>(self.raw.ptr.as_ptr(), n) })
    }

    /// Reads a `T` at `offset` (bounds and alignment checks only).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`], [`Error::Misaligned`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [4u32; 1];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// # let g = s.acquire()?;
    /// assert_eq!(seg.guarded_mut(&g)?.get::<u32>(0)?, 4);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn get<T: Primitive>(&self, offset: usize) -> Result<T> {
        let p = self.raw.check_aligned(offset, T::SIZE, T::ALIGN)?;
        // SAFETY: in bounds and aligned (checked above); alive (the guard).
        Ok(unsafe { T::read_raw(p) })
    }

    /// Writes a `T` at `offset` (bounds and alignment checks only).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`], [`Error::Misaligned`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [0u32; 1];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// # let g = s.acquire()?;
    /// seg.guarded_mut(&g)?.set(0, 8u32)?;
    /// assert_eq!(seg.get::<u32>(0)?, 8);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn set<T: Primitive>(&mut self, offset: usize, value: T) -> Result<()> {
        let p = self.raw.check_aligned(offset, T::SIZE, T::ALIGN)?;
        // SAFETY: in bounds and aligned (checked above); alive (the guard);
        // exclusive and writable (`guarded_mut` + `&mut self`).
        unsafe { value.write_raw(p) };
        Ok(())
    }

    /// Sets every byte to `byte` (`memset`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [0u8; 3];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// # let g = s.acquire()?;
    /// seg.guarded_mut(&g)?.fill(1);
    /// assert_eq!(seg.to_vec()?, [1, 1, 1]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn fill(&mut self, byte: u8) {
        // SAFETY: the whole view: live (guard), exclusive and writable.
        unsafe { raw::fill(self.raw.ptr.as_ptr(), byte, self.raw.len) }
    }

    /// Copies `src` to `offset` (`memcpy`).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [0u8; 3];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// # let g = s.acquire()?;
    /// seg.guarded_mut(&g)?.copy_from_slice(1, &[5, 6])?;
    /// assert_eq!(seg.to_vec()?, [0, 5, 6]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn copy_from_slice(&mut self, offset: usize, src: &[u8]) -> Result<()> {
        let p = self.raw.check(offset, src.len())?;
        // SAFETY: in bounds (checked); live, exclusive, writable (as
        // `fill`); `src` cannot alias the view (it is borrowed mutably).
        unsafe { raw::write_slice(src, p) };
        Ok(())
    }

    /// Copies `len` bytes within the view (`memmove`; ranges may overlap).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// # let mut b = [1u8, 2, 3];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// # let g = s.acquire()?;
    /// seg.guarded_mut(&g)?.copy_within(0, 1, 2)?;
    /// assert_eq!(seg.to_vec()?, [1, 1, 2]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn copy_within(&mut self, src_offset: usize, dst_offset: usize, len: usize) -> Result<()> {
        let s = self.raw.check(src_offset, len)?;
        let d = self.raw.check(dst_offset, len)?;
        // SAFETY: both in bounds (checked); live, exclusive, writable.
        unsafe { raw::copy(s, d, len) };
        Ok(())
    }
}

impl fmt::Debug for GuardedMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedMut")
            .field("address", &Address(self.raw.addr()))
            .field("len", &self.raw.len)
            .finish()
    }
}

impl fmt::Debug for Guarded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("address", &Address(self.raw.addr()))
            .field("len", &self.raw.len)
            .finish()
    }
}

impl fmt::Debug for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("address", &self.address())
            .field("len", &self.raw.len)
            .field("session", &self.session.id())
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// Zero-fills a whole segment (crate-internal helper used by allocators until
/// `Segment::fill` lands; checks writability and liveness once).
pub(crate) fn zero(seg: &mut Segment<'_>) -> Result<()> {
    seg.check_writable()?;
    let len = seg.len();
    seg.with_access(0, len, 1, |p| {
        // SAFETY: `p .. p + len` is the whole segment (checked by with_access),
        // alive for the closure (enter), exclusive (`&mut`), writable (checked).
        unsafe { core::ptr::write_bytes(p, 0, len) }
    })
}

impl From<*mut u8> for Address {
    fn from(p: *mut u8) -> Address {
        Address::from_ptr(p)
    }
}
