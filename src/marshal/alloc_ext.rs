//! Allocation by layout and by value (Java's `allocate(layout, count)` and
//! `allocateFrom`): an extension of every [`SegmentAllocator`], here rather
//! than on the trait because `alloc` sits below `layout` and `marshal` in
//! the module order and does not import them.

use super::{Marshal, write_seq};
use crate::alloc::SegmentAllocator;
use crate::error::{Error, Result};
use crate::layout::MemoryLayout;
use crate::segment::Segment;

/// Allocation from a [`MemoryLayout`] or from [`Marshal`] values, for every
/// [`SegmentAllocator`] (arenas, stack frames, slicing and malloc
/// allocators). In the prelude.
///
/// Memory is zeroed before the values are written, so padding bytes (which
/// `Marshal` never writes) read as zero.
///
/// # Examples
///
/// ```
/// use memscope::prelude::*;
/// use memscope::marshal::AllocateExt;
///
/// c_struct! {
///     #[derive(Debug, Clone, Copy, PartialEq)]
///     pub struct P { pub x: i32, pub w: f64 }
/// }
/// let arena = Arena::confined();
/// let one = arena.allocate_from(&P { x: 1, w: 0.5 })?;
/// assert_eq!(P::read_from(&one, 0)?, P { x: 1, w: 0.5 });
/// let many = arena.allocate_from_slice(&[1u16, 2, 3])?;
/// assert_eq!((many.len(), many.get::<u16>(4)?), (6, 3));
/// let table = arena.allocate_layout_of(&P::layout(), 10)?;
/// assert_eq!(table.len(), 160);
/// # Ok::<(), memscope::Error>(())
/// ```
pub trait AllocateExt: SegmentAllocator {
    /// Zeroed memory for `count` elements of `layout` (its size rounded to
    /// its alignment, as in a C array), aligned to the layout.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] when `count * size` overflows; the
    /// allocator's errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::prelude::*;
    /// use memscope::marshal::AllocateExt;
    /// let arena = Arena::confined();
    /// let ints = arena.allocate_layout_of(&c::INT, 4)?;
    /// assert_eq!((ints.len(), ints.address().as_ptr::<u8>() as usize % 4), (16, 0));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "allocate(layout, count)")]
    fn allocate_layout_of(&self, layout: &MemoryLayout, count: usize) -> Result<Segment<'_>> {
        let align = layout.align().max(1);
        let stride = layout
            .size()
            .checked_next_multiple_of(align)
            .ok_or_else(|| overflow(layout.size(), count))?;
        let size = stride
            .checked_mul(count)
            .ok_or_else(|| overflow(stride, count))?;
        self.allocate(size, align)
    }

    /// A new segment holding `value` (Java `allocateFrom`, coffi
    /// `serialize` into a fresh segment).
    ///
    /// # Errors
    ///
    /// The allocator's errors, and whatever `value`'s encoding returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::prelude::*;
    /// use memscope::marshal::AllocateExt;
    /// let arena = Arena::confined();
    /// let seg = arena.allocate_from(&42u64)?;
    /// assert_eq!(seg.get::<u64>(0)?, 42);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "allocateFrom")]
    #[doc(alias = "serialize")]
    fn allocate_from<T: Marshal>(&self, value: &T) -> Result<Segment<'_>> {
        let mut seg = self.allocate(T::SIZE, T::ALIGN)?;
        value.write_to(&mut seg, 0)?;
        Ok(seg)
    }

    /// A new segment holding `values` back to back (Java
    /// `allocateFrom(layout, values...)`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] when the total size overflows; the
    /// allocator's errors, and whatever an element's encoding returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::prelude::*;
    /// use memscope::marshal::AllocateExt;
    /// let arena = Arena::confined();
    /// let seg = arena.allocate_from_slice(&[1.5f64, -2.0])?;
    /// assert_eq!(seg.get::<f64>(8)?, -2.0);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "allocateFrom")]
    fn allocate_from_slice<T: Marshal>(&self, values: &[T]) -> Result<Segment<'_>> {
        let size = T::SIZE
            .checked_mul(values.len())
            .ok_or_else(|| overflow(T::SIZE, values.len()))?;
        let mut seg = self.allocate(size, T::ALIGN)?;
        write_seq(&mut seg, 0, values)?;
        Ok(seg)
    }
}

impl<A: SegmentAllocator + ?Sized> AllocateExt for A {}

fn overflow(size: usize, count: usize) -> Error {
    Error::InvalidLayout {
        reason: format!("{count} elements of {size} bytes overflow"),
    }
}
