//! Allocators: everything that hands out [`Segment`]s.
//!
//! One trait, [`SegmentAllocator`], with a single required method
//! (`allocate_uninit`, Java's `allocate(byteSize, byteAlignment)`); every helper
//! is a provided method on top of it. Returned memory is zeroed unless
//! [`SegmentAllocator::allocate_uninit`] is asked for.

pub(crate) mod arena;
mod bridge;
mod cells;
mod chunk;
pub(crate) mod knobs;
mod malloc;
mod pool;
mod slicing;
mod spin;
pub mod stack;
pub(crate) mod twins;

/// Loom-only switches for `loom-tests/`: the allocators' broken twins and
/// the knobs that make their fast paths reachable in a model.
#[cfg(loom)]
pub mod loom {
    pub use super::knobs::{Knobs, with_knobs};
    pub use super::pool::flush_thread_cache;
    pub use super::twins::{Twin, with_twin};
}

pub use arena::{Arena, LocalArena};
pub use malloc::{MallocAllocator, MallocBlock};
pub use pool::{DEFAULT_POOL_LIMIT, PoolStats, pool_limit, pool_stats, set_pool_limit};
pub use slicing::{PrefixAllocator, SlicingAllocator};
pub use stack::Frame;

use crate::error::{Error, Result};
use crate::segment::{Primitive, Segment};

/// Frees every pooled chunk (this thread's cache and the global pool) back
/// to the global allocator, and this thread's spare arena states.
///
/// # Examples
///
/// ```
/// memscope::alloc::trim_pool();
/// assert_eq!(memscope::alloc::pool_stats().local_chunks, 0);
/// ```
pub fn trim_pool() {
    pool::trim_chunks();
    arena::trim_spares();
}

// `check_layout` lives with the segments (a `HeapSegment` checks its
// request too, and `segment` must not import `alloc`); re-exported here,
// where allocators and their users look for it.
pub use crate::segment::check_layout;

/// Something that hands out segments.
///
/// Implementors provide [`allocate_uninit`](Self::allocate_uninit); the rest
/// are provided. Segments borrow the allocator (`Segment<'_>`), so they cannot
/// outlive it.
///
/// # Errors
///
/// Every method returns [`Error::InvalidLayout`] for a non-power-of-two
/// alignment or an overflowing size, and [`Error::OutOfMemory`] when the
/// allocator is exhausted; [`Error::Closed`] once its session is closed.
pub trait SegmentAllocator {
    /// `size` bytes aligned to `align`, contents unspecified (but
    /// initialised: never uninitialised memory exposed to safe reads — an
    /// implementation may hand out recycled bytes).
    fn allocate_uninit(&self, size: usize, align: usize) -> Result<Segment<'_>>;

    /// `size` bytes aligned to `align`, zeroed.
    fn allocate(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let mut s = self.allocate_uninit(size, align)?;
        crate::segment::zero(&mut s)?;
        Ok(s)
    }

    /// Same as [`allocate`](Self::allocate) (zeroed); spelled out for readers.
    fn allocate_zeroed(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.allocate(size, align)
    }

    /// Zeroed memory for `layout`.
    fn allocate_layout(&self, layout: core::alloc::Layout) -> Result<Segment<'_>> {
        self.allocate(layout.size(), layout.align())
    }

    /// One `T`, initialised to `value`.
    fn allocate_value<T: Primitive>(&self, value: T) -> Result<Segment<'_>> {
        let mut s = self.allocate_uninit(T::SIZE, T::ALIGN)?;
        s.set(0, value)?;
        Ok(s)
    }

    /// `n` zeroed `T`s.
    fn allocate_array<T: Primitive>(&self, n: usize) -> Result<Segment<'_>> {
        let size = n.checked_mul(T::SIZE).ok_or_else(|| Error::InvalidLayout {
            reason: format!("{n} elements of {} bytes overflow", T::SIZE),
        })?;
        self.allocate(size, T::ALIGN)
    }

    /// A copy of `values`.
    fn allocate_copy<T: Primitive>(&self, values: &[T]) -> Result<Segment<'_>> {
        let size = values
            .len()
            .checked_mul(T::SIZE)
            .ok_or_else(|| Error::InvalidLayout {
                reason: format!("{} elements of {} bytes overflow", values.len(), T::SIZE),
            })?;
        let mut s = self.allocate_uninit(size, T::ALIGN)?;
        for (i, v) in values.iter().enumerate() {
            s.set(i * T::SIZE, *v)?;
        }
        Ok(s)
    }

    /// `text` as a NUL-terminated C string (Panama's `toCString`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidString`] if `text` contains a NUL byte.
    fn allocate_cstring(&self, text: &str) -> Result<Segment<'_>> {
        if let Some(i) = text.bytes().position(|b| b == 0) {
            return Err(Error::InvalidString {
                reason: format!("interior NUL byte at index {i}"),
            });
        }
        let mut s = self.allocate_uninit(text.len() + 1, 1)?;
        for (i, b) in text.bytes().enumerate() {
            s.set(i, b)?;
        }
        s.set(text.len(), 0u8)?;
        Ok(s)
    }
}

// A `Segment` method that needs an allocator: defined here (an inherent
// impl may live anywhere in the crate), so `segment` never imports `alloc`.
impl<'s> Segment<'s> {
    /// A copy of this segment in memory from `allocator` (aligned like this
    /// segment's address, up to 16).
    ///
    /// # Errors
    ///
    /// Whatever the allocator returns, and as [`to_vec`](Self::to_vec).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Session, Segment, segment::{Address, HeapSegment}, alloc::SegmentAllocator};
    /// # let s = Session::global();
    /// struct Heap(std::cell::RefCell<Vec<HeapSegment>>);
    /// // (a real allocator comes from memscope::alloc)
    /// # impl SegmentAllocator for Heap {
    /// #     fn allocate_uninit(&self, size: usize, align: usize) -> memscope::Result<Segment<'_>> {
    /// #         let mut h = HeapSegment::new(size, align)?;
    /// #         let addr = h.as_segment_mut().address();
    /// #         self.0.borrow_mut().push(h);
    /// #         // SAFETY: the HeapSegment lives in `self` and is never touched again.
    /// #         unsafe { Segment::from_raw(addr, size, Box::leak(Box::new(Session::global()))) }
    /// #     }
    /// # }
    /// let heap = Heap(Default::default());
    /// let mut b = [1u8, 2, 3];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// let copy = seg.clone_into(&heap)?;
    /// assert_eq!(copy.to_vec()?, [1, 2, 3]);
    /// assert_ne!(copy.address(), seg.address());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn clone_into<'a, A: SegmentAllocator + ?Sized>(
        &self,
        allocator: &'a A,
    ) -> Result<Segment<'a>> {
        let align = 1usize << self.address().get().trailing_zeros().min(4);
        let mut dst = allocator.allocate_uninit(self.len(), align)?;
        dst.copy_from(self)?;
        Ok(dst)
    }
}
