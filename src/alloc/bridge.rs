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
