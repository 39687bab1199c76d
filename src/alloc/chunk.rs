//! Chunks: zeroed blocks of memory from the global allocator that arenas and
//! stacks bump into, and the one unsafe step that turns a range inside a chunk
//! into a [`Segment`].
//!
//! Invariant kept by every user of this file: a chunk's bytes past its
//! `dirty` prefix are zero (fresh chunks come from `alloc_zeroed`), and its
//! dirty prefix travels with it. A recycled chunk is either cleared in bulk
//! by [`Chunk::clear`] before reuse, or (for the single-owner cursors of an
//! arena) kept dirty with a *clean mark*: the first zeroing allocation
//! below the mark zeroes what is dirty ahead of it in one go
//! ([`zero_ahead`]), one above it costs nothing, and an `allocate_uninit`
//! never pays for zeroing at all.
//!
//! Under loom every chunk carries a shadow of loom cells, one per 8-byte
//! granule (`crate::shadow`): the writes the allocators make to chunk bytes
//! (zeroing ahead of a cursor, a bulk clear, the free) touch the granules
//! they write, and so does every segment access (`segment/raw.rs`), so a
//! model sees a memset that escapes its window as a data race with the
//! chunk's next user, not only through a hook.
//!
//! Chunk addresses are exposed (`expose_provenance`) when the chunk is made,
//! so the bump pointers elsewhere can be plain `usize` addresses and be turned
//! back into pointers with `with_exposed_provenance_mut` (Miri runs with
//! `-Zmiri-permissive-provenance`).

use crate::segment::Segment;
use crate::segment::raw::RawSegment;
use crate::session::Session;
use core::ptr::NonNull;
use std::alloc::{Layout, alloc_zeroed, dealloc};

/// The alignment every chunk has at least.
pub(crate) const CHUNK_ALIGN: usize = 16;

/// An owned, zero-initialised block from the global allocator.
pub(crate) struct Chunk {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a Chunk owns its block exclusively (like a Box<[u8]>); moving the
// ownership to another thread is fine, and `&Chunk` only exposes the address.
unsafe impl Send for Chunk {}
// SAFETY: as above: no method reads or writes the bytes through `&self`.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// A zeroed chunk of `len` bytes aligned to `max(align, CHUNK_ALIGN)`,
    /// or `None` if the layout is invalid, `len` is zero or the global
    /// allocator fails.
    pub(crate) fn new(len: usize, align: usize) -> Option<Chunk> {
        if len == 0 {
            return None;
        }
        let layout = Layout::from_size_align(len, align.max(CHUNK_ALIGN)).ok()?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let p = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(p)?;
        let _ = ptr.as_ptr().expose_provenance();
        #[cfg(loom)]
        crate::shadow::register(ptr.as_ptr().addr(), len);
        Some(Chunk { ptr, layout })
    }

    /// The first address of the chunk.
    #[inline(always)]
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }

    /// The size in bytes.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    /// The alignment the chunk was allocated with.
    #[inline(always)]
    pub(crate) fn align(&self) -> usize {
        self.layout.align()
    }

    /// One past the last address.
    #[inline(always)]
    pub(crate) fn end(&self) -> usize {
        self.addr() + self.len()
    }

    /// Zeroes the first `dirty` bytes (clamped to the chunk), restoring the
    /// all-zero invariant before the chunk is reused.
    pub(crate) fn clear(&mut self, dirty: usize) {
        let n = dirty.min(self.len());
        #[cfg(loom)]
        crate::shadow::write(self.addr(), n);
        // SAFETY: `n <= len` and the chunk owns `len` writable bytes; `&mut
        // self` proves nobody else holds the chunk (a pooled or reset chunk
        // is reachable by no segment: its session closed, or the arena that
        // handed it out is borrowed mutably).
        unsafe { core::ptr::write_bytes(self.ptr.as_ptr(), 0, n) }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        #[cfg(loom)]
        crate::shadow::release(self.addr(), self.len());
        // SAFETY: `ptr` was returned by `alloc_zeroed(self.layout)` in `new`
        // and is freed only here, once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl core::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Chunk(0x{:x}, {} B)", self.addr(), self.len())
    }
}

/// Makes the segment `addr .. addr + len` of `session`.
///
/// A zero-length request never touches memory: it gets an empty segment
/// whose address is `addr` (which must then still be non-zero).
///
/// # Safety
///
/// `addr` must be non-zero, and unless `len == 0`, `addr .. addr + len` must
/// lie inside one live [`Chunk`] (or another block) that is exposed, that
/// the calling allocator keeps allocated until `session` closes or the
/// allocator itself (which the returned segment borrows) is dropped, and that
/// the allocator hands out to nobody else (allocators bump past it).
#[inline(always)]
pub(crate) unsafe fn carve<'s>(addr: usize, len: usize, session: &'s Session) -> Segment<'s> {
    debug_assert!(addr != 0, "carve at the null address");
    let p: *mut u8 = core::ptr::with_exposed_provenance_mut(addr);
    // SAFETY: the caller guarantees `addr != 0`.
    let ptr = unsafe { NonNull::new_unchecked(p) };
    // SAFETY: validity, lifetime and exclusivity are the caller's duties
    // (this function's `# Safety`), which are `from_raw_parts`' duties.
    unsafe { Segment::from_raw_parts(RawSegment { ptr, len }, session) }
}

/// Zeroes `addr .. addr + len` (recycled bytes a zeroing `allocate` is
/// about to hand out).
///
/// # Safety
///
/// Unless `len == 0`, `addr .. addr + len` must lie inside one live, exposed
/// [`Chunk`] that the calling allocator owns and has handed out to nobody
/// else (it lies at or past its cursor's last allocation), and the chunk
/// must stay the allocator's for the duration: no close or release may
/// recycle it meanwhile (the caller holds the arena's lock, is the only
/// thread that can release it, or is inside a `Session::enter` window of
/// the session whose close releases it).
#[inline]
pub(crate) unsafe fn zero(addr: usize, len: usize) {
    #[cfg(loom)]
    crate::shadow::write(addr, len);
    let p: *mut u8 = core::ptr::with_exposed_provenance_mut(addr);
    // SAFETY: the range is writable, nobody else's and inside one
    // allocation (this function's `# Safety`).
    unsafe { core::ptr::write_bytes(p, 0, len) }
}

/// A zeroing allocation at `start` met dirty bytes (`start < clean`):
/// zeroes all of `start .. clean` in one bulk memset (a memset is cheaper
/// than a store per allocation, and the mark then drops to `start`: later
/// allocations of this cursor find nothing dirty). Returns the new mark.
///
/// # Safety
///
/// As [`zero`], for `start .. clean`.
#[cold]
#[inline(never)]
pub(crate) unsafe fn zero_ahead(start: usize, clean: usize) -> usize {
    if start < clean && !super::twins::on(super::twins::Twin::ArenaNoLazyZero) {
        // SAFETY: the caller's contract.
        unsafe { zero(start, clean - start) };
    }
    start
}

/// Rounds `addr` up to `align` (a power of two), or `None` on overflow.
#[inline(always)]
pub(crate) fn align_up(addr: usize, align: usize) -> Option<usize> {
    Some(addr.checked_add(align - 1)? & !(align - 1))
}

/// One bump: where `size` bytes aligned to `align` start at or after `cur`
/// and the cursor after them, if they end by `end`.
///
/// The caller has checked the layout (`align` a power of two and
/// `size <= isize::MAX - (align - 1)`), so `align - 1 + size` cannot
/// overflow, and one comparison rules out overflow of both sums below.
#[inline(always)]
pub(crate) fn bump_in(cur: usize, end: usize, size: usize, align: usize) -> Option<(usize, usize)> {
    let slack = (align - 1) + size;
    if cur > usize::MAX - slack {
        return None;
    }
    let start = (cur + (align - 1)) & !(align - 1);
    let new = start + size;
    if new <= end { Some((start, new)) } else { None }
}

#[cfg(test)]
mod tests {
    use super::bump_in;

    #[test]
    fn bump_in_aligns_fits_exactly_and_never_overflows() {
        assert_eq!(bump_in(0x1001, 0x1020, 16, 16), Some((0x1010, 0x1020)));
        assert_eq!(bump_in(0x1001, 0x101f, 16, 16), None);
        assert_eq!(bump_in(0x1000, 0x1000, 0, 1), Some((0x1000, 0x1000)));
        assert_eq!(bump_in(usize::MAX - 8, usize::MAX, 16, 8), None);
        assert_eq!(
            bump_in(usize::MAX - 15, usize::MAX, 15, 1),
            Some((usize::MAX - 15, usize::MAX))
        );
        assert_eq!(bump_in(1, 0, 0, 1), None); // the "no chunk" cursor
        assert_eq!(
            bump_in(1, usize::MAX, 8, 1 << 62),
            Some((1 << 62, (1 << 62) + 8))
        );
    }
}
