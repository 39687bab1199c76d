//! The `allocator-api2` bridge: memscope allocators as
//! [`allocator_api2::alloc::Allocator`]s, so `allocator_api2::vec::Vec::new_in(&arena)`
//! and `hashbrown::HashMap::new_in(&arena)` work.
//!
//! The `Allocator` contract asks that a block stay valid while the allocator
//! borrow lives. A session can be closed while a collection still points
//! into an arena, so the first bridge allocation marks the arena *bridged*:
//! its close then only stops new allocations and keeps the chunks until the
//! arena itself is dropped (which the collection's borrow prevents).
//! `deallocate` is a no-op for arenas and stack frames (memory goes at
//! close/reset or frame end); the malloc allocator frees each block.

use super::arena::{Arena, LocalArena};
use super::malloc::{MallocAllocator, c_alloc, c_free};
use super::stack::Frame;
use allocator_api2::alloc::{AllocError, Allocator, Layout};
use core::ptr::NonNull;

/// The block at `addr .. addr + len` as the bridge's return type.
#[inline(always)]
fn block(addr: usize, len: usize) -> NonNull<[u8]> {
    let p: *mut u8 = core::ptr::with_exposed_provenance_mut(addr);
    match NonNull::new(p) {
        Some(p) => NonNull::slice_from_raw_parts(p, len),
        // Allocators never return the null address (0 is no chunk's start,
        // and zero-size blocks get their non-zero alignment as address).
        None => NonNull::slice_from_raw_parts(NonNull::dangling(), 0),
    }
}

// SAFETY: blocks are disjoint ranges bumped past in chunks that the arena
// keeps allocated until it is dropped once bridged (see the module docs),
// and `&Arena` borrows the arena, so every block outlives the borrow; copies
// of `&Arena` allocate from the same arena, as the contract allows.
unsafe impl Allocator for &Arena {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.bridge_mark().map_err(|_| AllocError)?;
        let a = self
            .bump(layout.size(), layout.align())
            .map_err(|_| AllocError)?;
        Ok(block(a, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: Layout) {}
}

// SAFETY: as for `&Arena`: the handle borrows the arena, whose chunks stay
// allocated until the arena drops once bridged; the handle's ranges are
// disjoint (its cursor only moves forward).
unsafe impl Allocator for LocalArena<'_> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.arena().bridge_mark().map_err(|_| AllocError)?;
        let a = self
            .bump(layout.size(), layout.align())
            .map_err(|_| AllocError)?;
        Ok(block(a, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: Layout) {}
}

// SAFETY: a frame's blocks are disjoint ranges of the thread's stack (or
// heap blocks) that stay allocated until the frame ends; a `&Frame` cannot
// outlive the frame (the closure receives it for a lifetime it cannot
// return), so every block outlives every borrow of the allocator.
unsafe impl Allocator for Frame {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let a = self
            .bump(layout.size(), layout.align())
            .map_err(|_| AllocError)?;
        Ok(block(a, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: Layout) {}
}

// SAFETY: each block is its own C heap block, owned by the collection that
// asked for it (not recorded by the allocator, so closing the session does
// not free it) until `deallocate`, which frees exactly that block. Zero-size
// blocks are dangling and never freed.
unsafe impl Allocator for MallocAllocator {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(block(layout.align(), 0));
        }
        let a = c_alloc(layout.size(), layout.align(), false).ok_or(AllocError)?;
        Ok(block(a, layout.size()))
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(block(layout.align(), 0));
        }
        let a = c_alloc(layout.size(), layout.align(), true).ok_or(AllocError)?;
        Ok(block(a, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: the caller passes a block this allocator returned with
            // this layout (the `Allocator` contract), i.e. a live `c_alloc`
            // block.
            unsafe { c_free(ptr.as_ptr().expose_provenance()) };
        }
    }
}
