//! Atomic views: shared mutable memory between threads, soundly.
//!
//! Mixing atomic and plain (non-atomic) accesses to the same bytes from two
//! threads is a data race, so an [`AtomicView`] borrows its segment
//! *exclusively* (`&mut Segment`): while any view or atomic reference lives,
//! no `get`/`set`/slice/guard of those bytes exists. And the atomics must not
//! outlive the memory, so making a view also borrows an [`AcquireGuard`] of
//! the segment's session: the session cannot close while the view lives,
//! and the guard (which is `!Send`) stays on the thread that made it while
//! the `Copy + Send + Sync` view travels to scoped threads. See DESIGN.md,
//! "Segments".

use super::Segment;
use super::raw::{self, AtomicCell, RawSegment};
use crate::error::{Error, Result};
use crate::session::AcquireGuard;
use core::marker::PhantomData;
use core::sync::atomic::{
    AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize,
};

/// A view of a segment as atomics, usable from many threads at once.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::Ordering;
/// # use memscope::{Session, Segment, segment::Address};
/// let s = Session::shared();
/// let mut b = [0u64; 1];
/// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
/// let guard = s.acquire()?;
/// let view = seg.atomics(&guard)?;
/// std::thread::scope(|t| {
///     for _ in 0..2 {
///         t.spawn(move || view.atomic_u64(0).unwrap().fetch_add(1, Ordering::Relaxed));
///     }
/// });
/// assert_eq!(view.atomic_u64(0)?.load(Ordering::Relaxed), 2);
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AtomicView<'a> {
    raw: RawSegment,
    /// Acts like `&'a [AtomicU8]`: shared, `Send + Sync`, lives for `'a`.
    _borrow: PhantomData<&'a [AtomicU8]>,
}

// SAFETY: the view hands out only `&Atomic*` references (which are
// `Send + Sync`) to memory that stays live for `'a` (the borrowed guard) and
// that no plain access can reach for `'a` (the exclusive segment borrow).
unsafe impl Send for AtomicView<'_> {}
// SAFETY: as above: sharing the view shares only atomics.
unsafe impl Sync for AtomicView<'_> {}

impl<'s> Segment<'s> {
    /// Views the segment as atomics for as long as both `self` (exclusively)
    /// and `guard` are borrowed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `guard` holds another session;
    /// [`Error::ReadOnly`] for a read-only segment (atomic stores would
    /// write).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// # use memscope::{Session, Segment, segment::Address, Error};
    /// let s = Session::shared();
    /// let mut b = [0u32; 2];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
    /// {
    ///     let g = s.acquire()?;
    ///     let v = seg.atomics(&g)?;
    ///     v.atomic_u32(4)?.store(7, Ordering::Release);
    ///     assert!(matches!(v.atomic_u32(2), Err(Error::Misaligned { .. })));
    ///     assert_eq!(s.close(), Err(Error::Busy { acquired: 1 }));
    /// }
    /// assert_eq!(seg.get::<u32>(4)?, 7); // plain reads again once the view is gone
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn atomics<'a>(&'a mut self, guard: &'a AcquireGuard<'_>) -> Result<AtomicView<'a>> {
        if !guard.holds(self.session) {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "guard holds session {}, segment belongs to session {}",
                    guard.session_id(),
                    self.session.id()
                ),
            });
        }
        self.check_writable()?;
        Ok(AtomicView {
            raw: self.raw,
            _borrow: PhantomData,
        })
    }
}

macro_rules! atomic_getters {
    ($($(#[$doc:meta])* $name:ident -> $a:ty;)*) => {$(
        $(#[$doc])*
        ///
        /// # Errors
        ///
        /// [`Error::OutOfBounds`], [`Error::Misaligned`] (the type's
        /// natural alignment).
        #[inline]
        pub fn $name(&self, offset: usize) -> Result<&'a $a> {
            self.get::<$a>(offset)
        }
    )*};
}

impl<'a> AtomicView<'a> {
    #[inline(always)]
    fn get<A: AtomicCell>(&self, offset: usize) -> Result<&'a A> {
        let p = self.raw.check_aligned(offset, A::SIZE, A::ALIGN)?;
        // SAFETY: in bounds and aligned (checked above); writable (checked in
        // `atomics`); live for 'a (the view borrows an acquire guard of the
        // session for 'a); only atomic accesses for 'a (the view borrows the
        // segment exclusively for 'a, and the segment's `from_raw` /
        // allocator contract excludes other paths to the bytes).
        Ok(unsafe { raw::atomic::<A>(p) })
    }

    /// The size of the viewed segment.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// # let mut b = [0u8; 3];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// # let g = s.acquire()?;
    /// assert_eq!(seg.atomics(&g)?.len(), 3);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.raw.len
    }

    /// Whether the viewed segment is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// # let mut seg = unsafe { Segment::from_raw(Address::NULL, 0, &s) }?;
    /// # let g = s.acquire()?;
    /// assert!(seg.atomics(&g)?.is_empty());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }

    atomic_getters! {
        /// The byte at `offset` as an `AtomicU8`.
        ///
        /// # Examples
        ///
        /// ```
        /// # use memscope::{Session, Segment, segment::Address};
        /// # use std::sync::atomic::Ordering;
        /// # let s = Session::global();
        /// # let mut b = [0u8; 1];
        /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 1, &s) }?;
        /// # let g = s.acquire()?;
        /// assert_eq!(seg.atomics(&g)?.atomic_u8(0)?.fetch_add(1, Ordering::Relaxed), 0);
        /// # Ok::<(), memscope::Error>(())
        /// ```
        atomic_u8 -> AtomicU8;
        /// The 2 bytes at `offset` as an `AtomicU16`.
        ///
        /// # Examples
        ///
        /// ```
        /// # use memscope::{Session, Segment, segment::Address};
        /// # use std::sync::atomic::Ordering;
        /// # let s = Session::global();
        /// # let mut b = [0u16; 1];
        /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
        /// # let g = s.acquire()?;
        /// assert_eq!(seg.atomics(&g)?.atomic_u16(0)?.swap(3, Ordering::AcqRel), 0);
        /// # Ok::<(), memscope::Error>(())
        /// ```
        atomic_u16 -> AtomicU16;
        /// The 4 bytes at `offset` as an `AtomicU32`.
        ///
        /// # Examples
        ///
        /// ```
        /// # use memscope::{Session, Segment, segment::Address};
        /// # use std::sync::atomic::Ordering;
        /// # let s = Session::global();
        /// # let mut b = [0u32; 1];
        /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
        /// # let g = s.acquire()?;
        /// assert_eq!(seg.atomics(&g)?.atomic_u32(0)?.load(Ordering::Acquire), 0);
        /// # Ok::<(), memscope::Error>(())
        /// ```
        atomic_u32 -> AtomicU32;
        /// The 8 bytes at `offset` as an `AtomicU64`.
        ///
        /// # Examples
        ///
        /// ```
        /// # use memscope::{Session, Segment, segment::Address};
        /// # use std::sync::atomic::Ordering;
        /// # let s = Session::global();
        /// # let mut b = [0u64; 1];
        /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
        /// # let g = s.acquire()?;
        /// assert_eq!(seg.atomics(&g)?.atomic_u64(0)?.fetch_or(2, Ordering::Relaxed), 0);
        /// # Ok::<(), memscope::Error>(())
        /// ```
        atomic_u64 -> AtomicU64;
        /// The pointer-sized word at `offset` as an `AtomicUsize`.
        ///
        /// # Examples
        ///
        /// ```
        /// # use memscope::{Session, Segment, segment::Address};
        /// # use std::sync::atomic::Ordering;
        /// # let s = Session::global();
        /// # let mut b = [0usize; 1];
        /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
        /// # let g = s.acquire()?;
        /// assert_eq!(seg.atomics(&g)?.atomic_usize(0)?.load(Ordering::Relaxed), 0);
        /// # Ok::<(), memscope::Error>(())
        /// ```
        atomic_usize -> AtomicUsize;
        /// The 4 bytes at `offset` as an `AtomicI32`.
        ///
        /// # Examples
        ///
        /// ```
        /// # use memscope::{Session, Segment, segment::Address};
        /// # use std::sync::atomic::Ordering;
        /// # let s = Session::global();
        /// # let mut b = [0i32; 1];
        /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
        /// # let g = s.acquire()?;
        /// assert_eq!(seg.atomics(&g)?.atomic_i32(0)?.fetch_sub(1, Ordering::Relaxed), 0);
        /// # Ok::<(), memscope::Error>(())
        /// ```
        atomic_i32 -> AtomicI32;
        /// The 8 bytes at `offset` as an `AtomicI64`.
        ///
        /// # Examples
        ///
        /// ```
        /// # use memscope::{Session, Segment, segment::Address};
        /// # use std::sync::atomic::Ordering;
        /// # let s = Session::global();
        /// # let mut b = [0i64; 1];
        /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
        /// # let g = s.acquire()?;
        /// assert_eq!(seg.atomics(&g)?.atomic_i64(0)?.fetch_sub(1, Ordering::Relaxed), 0);
        /// # Ok::<(), memscope::Error>(())
        /// ```
        atomic_i64 -> AtomicI64;
    }
}
