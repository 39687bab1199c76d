//! Allocators over one existing segment: [`SlicingAllocator`] hands out
//! consecutive slices of it (Java's `SegmentAllocator.slicingAllocator`);
//! [`PrefixAllocator`] hands out its prefix again and again (Java's
//! `prefixAllocator`, the "recycling" allocator).

use super::SegmentAllocator;
use super::chunk::align_up;
use crate::error::{Error, Result};
use crate::segment::Segment;
use core::cell::Cell;
use core::fmt;

/// Where `size` bytes aligned to `align` go in `seg` from relative offset
/// `from`: the relative start, or `OutOfMemory`.
fn place(seg: &Segment<'_>, from: usize, size: usize, align: usize) -> Result<usize> {
    super::check_layout(size, align)?;
    if seg.is_read_only() {
        return Err(Error::ReadOnly);
    }
    let oom = Error::OutOfMemory { size, align };
    let base = seg.raw.addr();
    let start = base
        .checked_add(from)
        .and_then(|a| align_up(a, align))
        .ok_or(oom.clone())?;
    let rel = start - base;
    match rel.checked_add(size) {
        Some(end) if end <= seg.len() => Ok(rel),
        _ => Err(oom),
    }
}

/// The sub-segment `rel .. rel + size` of `seg`, as a segment of its own.
fn slice<'a>(seg: &'a Segment<'_>, rel: usize, size: usize) -> Result<Segment<'a>> {
    let raw = seg.raw.sub(rel, size)?;
    // SAFETY: `raw` is inside `seg` (bounds-checked by `sub`), so it is valid
    // for as long as `seg`'s session is alive; `seg` is owned by the
    // allocator and never handed out while slices borrow it (`into_inner`
    // consumes the allocator), and the allocators below never hand out two
    // overlapping live slices (slicing: offsets only grow; prefix: `&mut
    // self` ends the previous slice's borrow first).
    Ok(unsafe { Segment::from_raw_parts(raw, seg.session()) })
}

/// Hands out consecutive slices of one segment; [`Error::OutOfMemory`] once
/// it is exhausted. Zeroed memory is zeroed on allocation (the segment's
/// bytes are arbitrary). Not `Sync` (the offset is a `Cell`).
///
/// # Examples
///
/// ```
/// use memscope::{Error, alloc::{Arena, SegmentAllocator, SlicingAllocator}};
/// let arena = Arena::confined();
/// let slicer = SlicingAllocator::new(arena.allocate(32, 8)?);
/// let a = slicer.allocate(16, 8)?;
/// let b = slicer.allocate(16, 8)?;
/// assert_eq!(b.address().get() - a.address().get(), 16);
/// assert!(matches!(slicer.allocate(1, 1), Err(Error::OutOfMemory { .. })));
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct SlicingAllocator<'s> {
    seg: Segment<'s>,
    offset: Cell<usize>,
}

impl<'s> SlicingAllocator<'s> {
    /// Slices `seg` from its start.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::alloc::{Arena, SegmentAllocator, SlicingAllocator};
    /// let arena = Arena::confined();
    /// let s = SlicingAllocator::new(arena.allocate(8, 8)?);
    /// assert_eq!(s.remaining(), 8);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn new(seg: Segment<'s>) -> SlicingAllocator<'s> {
        SlicingAllocator {
            seg,
            offset: Cell::new(0),
        }
    }

    /// Bytes not handed out yet (alignment padding may use some).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::alloc::{Arena, SegmentAllocator, SlicingAllocator};
    /// let arena = Arena::confined();
    /// let s = SlicingAllocator::new(arena.allocate(8, 8)?);
    /// s.allocate(3, 1)?;
    /// assert_eq!(s.remaining(), 5);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn remaining(&self) -> usize {
        self.seg.len() - self.offset.get()
    }

    /// Gives the whole segment back (no slice can be alive any more).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::alloc::{Arena, SegmentAllocator, SlicingAllocator};
    /// let arena = Arena::confined();
    /// let s = SlicingAllocator::new(arena.allocate(8, 8)?);
    /// assert_eq!(s.into_inner().len(), 8);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn into_inner(self) -> Segment<'s> {
        self.seg
    }
}

impl SegmentAllocator for SlicingAllocator<'_> {
    fn allocate_uninit(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let rel = place(&self.seg, self.offset.get(), size, align)?;
        let s = slice(&self.seg, rel, size)?;
        self.offset.set(rel + size);
        Ok(s)
    }
}

impl fmt::Debug for SlicingAllocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlicingAllocator")
            .field("segment", &self.seg)
            .field("offset", &self.offset.get())
            .finish()
    }
}

/// Every allocation is a prefix of the same segment, reused each time
/// (Java's `prefixAllocator`): the cheapest allocator for a scratch buffer
/// that one call at a time uses.
///
/// Reuse means a new allocation overwrites the previous one, so the two
/// must never be alive together. `allocate` therefore takes `&mut self` and
/// returns a segment borrowing it: the borrow checker ends the previous
/// segment before the next allocation. This is why `PrefixAllocator` does
/// not implement [`SegmentAllocator`], whose methods take `&self` (a `&self`
/// version would let two live segments alias the same bytes).
///
/// # Examples
///
/// ```
/// use memscope::alloc::{Arena, PrefixAllocator, SegmentAllocator};
/// let arena = Arena::confined();
/// let mut prefix = PrefixAllocator::new(arena.allocate(64, 8)?);
/// let a = prefix.allocate(8, 8)?.address();
/// let mut seg = prefix.allocate(16, 8)?;
/// seg.set(0, 1u64)?;
/// assert_eq!(seg.address(), a);
/// // let again = prefix.allocate(8, 8)?; // error[E0499] while `seg` lives
/// assert_eq!(prefix.allocate(8, 8)?.get::<u64>(0)?, 0); // zeroed again
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// Two live prefixes would alias, so this does not compile:
///
/// ```compile_fail
/// # use memscope::alloc::{Arena, PrefixAllocator, SegmentAllocator};
/// let arena = Arena::confined();
/// let mut prefix = PrefixAllocator::new(arena.allocate(64, 8)?);
/// let a = prefix.allocate(8, 8)?;
/// let b = prefix.allocate(8, 8)?; // error[E0499]: `prefix` borrowed mutably twice
/// drop(a);
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct PrefixAllocator<'s> {
    seg: Segment<'s>,
}

impl<'s> PrefixAllocator<'s> {
    /// Reuses `seg` for every allocation.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::alloc::{Arena, PrefixAllocator, SegmentAllocator};
    /// let arena = Arena::confined();
    /// let p = PrefixAllocator::new(arena.allocate(8, 8)?);
    /// assert_eq!(p.capacity(), 8);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn new(seg: Segment<'s>) -> PrefixAllocator<'s> {
        PrefixAllocator { seg }
    }

    /// The size of the reused segment.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::alloc::{Arena, PrefixAllocator, SegmentAllocator};
    /// let arena = Arena::confined();
    /// assert_eq!(PrefixAllocator::new(arena.allocate(4, 4)?).capacity(), 4);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.seg.len()
    }

    /// The first `size` bytes (after aligning the start to `align`),
    /// contents left from the previous use.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfMemory`] if they do not fit; [`Error::InvalidLayout`]
    /// for a bad alignment; [`Error::ReadOnly`] for a read-only segment.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Error, alloc::{Arena, PrefixAllocator, SegmentAllocator}};
    /// let arena = Arena::confined();
    /// let mut p = PrefixAllocator::new(arena.allocate(4, 4)?);
    /// assert!(matches!(p.allocate_uninit(8, 1), Err(Error::OutOfMemory { .. })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn allocate_uninit(&mut self, size: usize, align: usize) -> Result<Segment<'_>> {
        let rel = place(&self.seg, 0, size, align)?;
        slice(&self.seg, rel, size)
    }

    /// As [`allocate_uninit`](Self::allocate_uninit), zeroed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::alloc::{Arena, PrefixAllocator, SegmentAllocator};
    /// let arena = Arena::confined();
    /// let mut p = PrefixAllocator::new(arena.allocate(8, 8)?);
    /// p.allocate(8, 8)?.set(0, u64::MAX)?;
    /// assert_eq!(p.allocate(8, 8)?.get::<u64>(0)?, 0);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn allocate(&mut self, size: usize, align: usize) -> Result<Segment<'_>> {
        let mut s = self.allocate_uninit(size, align)?;
        crate::segment::zero(&mut s)?;
        Ok(s)
    }

    /// Gives the segment back.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::alloc::{Arena, PrefixAllocator, SegmentAllocator};
    /// let arena = Arena::confined();
    /// let p = PrefixAllocator::new(arena.allocate(8, 8)?);
    /// assert_eq!(p.into_inner().len(), 8);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn into_inner(self) -> Segment<'s> {
        self.seg
    }
}

impl fmt::Debug for PrefixAllocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixAllocator")
            .field("segment", &self.seg)
            .finish()
    }
}
