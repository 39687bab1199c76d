//! Allocators over one existing segment: [`SlicingAllocator`] hands out
//! consecutive slices of it (Java's `SegmentAllocator.slicingAllocator`);
//! [`PrefixAllocator`] does the same and can be rewound with `reset(&mut
//! self)`, reusing the bytes round after round (Java's `prefixAllocator`,
//! the "recycling" allocator).

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
    // overlapping live slices (offsets only grow; the prefix allocator's
    // `reset` rewinds them, and takes `&mut self`, which ends every slice's
    // borrow first).
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

/// A recycling allocator over one segment (Java's `prefixAllocator`): it
/// hands out slices of the segment from its start, and [`reset`](Self::reset)
/// makes the whole segment available again, so a scratch buffer is reused
/// call after call without touching a bigger allocator.
///
/// It is a [`SegmentAllocator`]: between two resets, allocations are
/// consecutive and disjoint (as [`SlicingAllocator`]'s), so several can be
/// alive together — a downcall's C string and its result segment, say, with
/// `allocate_cstring` and `Downcall::call_in`. Reuse happens only at
/// `reset(&mut self)`: every segment borrows the allocator, so the borrow
/// checker ends them all before their bytes are handed out again. (Java's
/// version overwrites the previous allocation at each call; with `&self`
/// methods that would let two live segments alias the same bytes.)
///
/// # Examples
///
/// ```
/// use memscope::{Error, alloc::{Arena, PrefixAllocator, SegmentAllocator}};
/// let arena = Arena::confined();
/// let mut prefix = PrefixAllocator::new(arena.allocate(64, 8)?);
/// let first = {
///     let name = prefix.allocate_cstring("abc")?; // both alive together
///     let mut n = prefix.allocate_value(7u64)?;
///     n.set(0, u64::MAX)?;
///     assert_ne!(name.address(), n.address());
///     name.address()
/// };
/// prefix.reset(); // every segment above is gone: the bytes are reused
/// let again = prefix.allocate(8, 8)?;
/// assert_eq!(again.address(), first);
/// assert_eq!(again.get::<u64>(0)?, 0); // zeroed again
/// assert!(matches!(prefix.allocate(64, 1), Err(Error::OutOfMemory { .. })));
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// A reset while a segment is alive would alias it, so this does not compile:
///
/// ```compile_fail,E0502
/// # use memscope::alloc::{Arena, PrefixAllocator, SegmentAllocator};
/// let arena = Arena::confined();
/// let mut prefix = PrefixAllocator::new(arena.allocate(64, 8)?);
/// let a = prefix.allocate(8, 8)?;
/// prefix.reset(); // error[E0502]: `prefix` is borrowed by `a`
/// drop(a);
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct PrefixAllocator<'s> {
    seg: Segment<'s>,
    offset: Cell<usize>,
}

impl<'s> PrefixAllocator<'s> {
    /// Reuses `seg` for every round of allocations.
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
        PrefixAllocator {
            seg,
            offset: Cell::new(0),
        }
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

    /// Bytes not handed out since the last reset (alignment padding may use
    /// some).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::alloc::{Arena, PrefixAllocator, SegmentAllocator};
    /// let arena = Arena::confined();
    /// let p = PrefixAllocator::new(arena.allocate(8, 8)?);
    /// p.allocate(3, 1)?;
    /// assert_eq!(p.remaining(), 5);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn remaining(&self) -> usize {
        self.seg.len() - self.offset.get()
    }

    /// Makes the whole segment available again. `&mut self`: no segment of
    /// the previous round can be alive. Contents are left as they are
    /// (`allocate` zeroes, `allocate_uninit` does not).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::alloc::{Arena, PrefixAllocator, SegmentAllocator};
    /// let arena = Arena::confined();
    /// let mut p = PrefixAllocator::new(arena.allocate(8, 8)?);
    /// p.allocate_value(9u64)?;
    /// assert_eq!(p.remaining(), 0);
    /// p.reset();
    /// assert_eq!(p.allocate_uninit(8, 8)?.get::<u64>(0)?, 9); // the old bytes
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn reset(&mut self) {
        self.offset.set(0);
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

impl SegmentAllocator for PrefixAllocator<'_> {
    /// The next slice since the last reset; contents left from the previous
    /// round.
    fn allocate_uninit(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let rel = place(&self.seg, self.offset.get(), size, align)?;
        let s = slice(&self.seg, rel, size)?;
        self.offset.set(rel + size);
        Ok(s)
    }
}

impl fmt::Debug for PrefixAllocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixAllocator")
            .field("segment", &self.seg)
            .field("offset", &self.offset.get())
            .finish()
    }
}
