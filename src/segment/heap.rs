//! Rust-owned memory as segments: [`HeapSegment`] (owns its bytes) and
//! [`Segment::with_slice`] (borrows a `&mut [T]` for a closure).

use super::raw::{Numeric, RawSegment};
use super::{Address, Segment};
use crate::error::{Error, Result};
use crate::session::Session;
use core::ptr::NonNull;
use std::alloc::Layout;

/// Bytes owned by Rust's global allocator, lent out as segments of the
/// global session. Freed when the `HeapSegment` drops; segments borrow it,
/// so none can outlive the bytes.
///
/// # Examples
///
/// ```
/// use memscope::segment::HeapSegment;
/// let mut h = HeapSegment::new(16, 8)?;
/// h.as_segment_mut().set(8, 5u64)?;
/// assert_eq!(h.as_segment().get::<u64>(8)?, 5);
/// let v = HeapSegment::from_vec(vec![1, 2, 3]);
/// assert_eq!(v.as_segment().to_vec()?, [1, 2, 3]);
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct HeapSegment {
    ptr: NonNull<u8>,
    len: usize,
    /// The layout to free with; `None` for zero-size (nothing allocated).
    layout: Option<Layout>,
    session: Session,
}

// SAFETY: a HeapSegment uniquely owns its bytes like a `Box<[u8]>`; shared
// access only hands out read-only segments.
unsafe impl Send for HeapSegment {}
// SAFETY: as above (`&HeapSegment` gives read-only views only).
unsafe impl Sync for HeapSegment {}

impl HeapSegment {
    /// `size` zeroed bytes aligned to `align`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for a bad alignment or an overflowing size;
    /// [`Error::OutOfMemory`] if the allocator fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::segment::HeapSegment;
    /// let h = HeapSegment::new(4, 64)?;
    /// assert_eq!(h.as_segment().address().get() % 64, 0);
    /// assert!(HeapSegment::new(4, 3).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn new(size: usize, align: usize) -> Result<HeapSegment> {
        check_layout(size, align)?;
        let layout = Layout::from_size_align(size, align).map_err(|e| Error::InvalidLayout {
            reason: e.to_string(),
        })?;
        if size == 0 {
            return Ok(HeapSegment {
                ptr: super::raw::dangling(align),
                len: 0,
                layout: None,
                session: Session::global(),
            });
        }
        let ptr = super::raw::alloc_zeroed(layout).ok_or(Error::OutOfMemory { size, align })?;
        Ok(HeapSegment {
            ptr,
            len: size,
            layout: Some(layout),
            session: Session::global(),
        })
    }

    /// Takes ownership of `bytes` (alignment 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = memscope::segment::HeapSegment::from_vec(b"abc\0".to_vec());
    /// assert_eq!(h.as_segment().get_string(0)?, "abc");
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn from_vec(bytes: Vec<u8>) -> HeapSegment {
        HeapSegment::from_box(bytes.into_boxed_slice())
    }

    /// Takes ownership of `bytes` (alignment 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = memscope::segment::HeapSegment::from_box(vec![7u8; 3].into_boxed_slice());
    /// assert_eq!(h.len(), 3);
    /// ```
    pub fn from_box(bytes: Box<[u8]>) -> HeapSegment {
        let len = bytes.len();
        let (ptr, layout) = super::raw::box_into_raw(bytes);
        HeapSegment {
            ptr,
            len,
            layout,
            session: Session::global(),
        }
    }

    /// The size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::segment::HeapSegment::new(3, 1)?.len(), 3);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the size is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memscope::segment::HeapSegment::new(0, 8)?.is_empty());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The session its segments belong to (the global session).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = memscope::segment::HeapSegment::new(1, 1)?;
    /// assert_eq!(h.session().kind(), memscope::SessionKind::Global);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// A read-only segment over the bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = memscope::segment::HeapSegment::from_vec(vec![1]);
    /// assert!(h.as_segment().is_read_only());
    /// ```
    pub fn as_segment(&self) -> Segment<'_> {
        let raw = RawSegment {
            ptr: self.ptr,
            len: self.len,
        };
        // SAFETY: `ptr .. ptr + len` is owned by `self` and valid until it
        // drops, which the returned borrow of `self` outlasts; the view is
        // read-only, and `&self` excludes `as_segment_mut`.
        let seg = unsafe { Segment::from_raw_parts(raw, &self.session) };
        Segment {
            read_only: true,
            ..seg
        }
    }

    /// A writable segment over the bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = memscope::segment::HeapSegment::new(2, 2)?;
    /// h.as_segment_mut().set(0, 0x0101u16)?;
    /// assert_eq!(h.to_vec()?, [1, 1]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn as_segment_mut(&mut self) -> Segment<'_> {
        let raw = RawSegment {
            ptr: self.ptr,
            len: self.len,
        };
        // SAFETY: owned by `self`, valid until drop (outlasted by the
        // `&mut self` borrow), and exclusively borrowed.
        unsafe { Segment::from_raw_parts(raw, &self.session) }
    }

    /// A copy of the bytes.
    ///
    /// # Errors
    ///
    /// None in practice (the global session never closes); kept a
    /// `Result` like [`Segment::to_vec`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::segment::HeapSegment::new(1, 1)?.to_vec()?, [0]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        self.as_segment().to_vec()
    }
}

impl Drop for HeapSegment {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: `ptr` was allocated with `layout` by the global
            // allocator (`alloc_zeroed` or a `Box<[u8]>`), and no segment
            // borrows `self` any more (we are in drop).
            unsafe { super::raw::dealloc(self.ptr, layout) }
        }
    }
}

impl core::fmt::Debug for HeapSegment {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapSegment")
            .field("address", &Address(self.ptr.as_ptr() as usize))
            .field("len", &self.len)
            .finish()
    }
}

impl Segment<'_> {
    /// Lends `values` to `f` as a writable segment. The segment belongs to
    /// a fresh confined session that is closed when `f` returns, so the
    /// segment (and any view of it) cannot be used afterwards — the borrow
    /// checker already prevents it from escaping `f`.
    ///
    /// `T` is [`Numeric`] (not `bool`): the segment may write any bytes,
    /// and every byte pattern must be a valid `T` when the slice is used again.
    ///
    /// The session is confined to the calling thread: moving the segment
    /// into a scoped thread gives [`Error::WrongThread`] there.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::Segment;
    /// let mut v = [1u32, 2, 3];
    /// let sum = Segment::with_slice(&mut v, |seg| {
    ///     seg.set_at_index(0, 10u32)?;
    ///     (0..3).map(|i| seg.get_at_index::<u32>(i)).sum::<memscope::Result<u32>>()
    /// })?;
    /// assert_eq!(sum, 15);
    /// assert_eq!(v[0], 10);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn with_slice<T: Numeric, R>(values: &mut [T], f: impl FnOnce(&mut Segment<'_>) -> R) -> R {
        let len = core::mem::size_of_val(values);
        let session = Session::confined();
        let raw = RawSegment {
            ptr: NonNull::from(&mut *values).cast::<u8>(),
            len,
        };
        // SAFETY: `values` is exclusively borrowed for this whole call, so
        // its bytes are valid, writable and reachable only through this
        // segment until `f` returns; `T: Numeric` makes any bytes the
        // segment writes a valid `T`; the segment cannot escape `f` (it
        // borrows `session`, a local).
        let mut seg = unsafe { Segment::from_raw_parts(raw, &session) };
        let r = f(&mut seg);
        let _ = session.close();
        r
    }

    /// Lends `values` to `f` as a read-only segment (see
    /// [`with_slice`](Self::with_slice)). Any [`Primitive`](super::Primitive)
    /// works here, `bool` included, since nothing is written.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::Segment;
    /// let v = [1.5f64, 2.5];
    /// let x = Segment::with_slice_ref(&v, |seg| seg.get::<f64>(8))?;
    /// assert_eq!(x, 2.5);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn with_slice_ref<T: super::Primitive, R>(
        values: &[T],
        f: impl FnOnce(&Segment<'_>) -> R,
    ) -> R {
        let len = core::mem::size_of_val(values);
        let session = Session::confined();
        let raw = RawSegment {
            ptr: NonNull::from(values).cast::<u8>(),
            len,
        };
        // SAFETY: `values` is borrowed shared for this call, so its bytes are
        // valid and not written until `f` returns; the segment is read-only
        // (never written through) and cannot escape `f`.
        let seg = unsafe { Segment::from_raw_parts(raw, &session) };
        let seg = Segment {
            read_only: true,
            ..seg
        };
        let r = f(&seg);
        let _ = session.close();
        r
    }
}

/// Checks a size/alignment request: alignment must be a non-zero power of
/// two and `size` rounded up to it must not overflow `isize::MAX`.
///
/// # Examples
///
/// ```
/// use memscope::alloc::check_layout;
/// assert!(check_layout(16, 8).is_ok());
/// assert!(check_layout(16, 3).is_err());
/// assert!(check_layout(usize::MAX, 8).is_err());
/// ```
pub fn check_layout(size: usize, align: usize) -> Result<()> {
    if align == 0 || !align.is_power_of_two() {
        return Err(Error::InvalidLayout {
            reason: format!("alignment {align} is not a power of two"),
        });
    }
    if size > isize::MAX as usize - (align - 1) {
        return Err(Error::InvalidLayout {
            reason: format!("size {size} aligned to {align} overflows isize::MAX"),
        });
    }
    Ok(())
}
