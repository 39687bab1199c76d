//! Clean-mark zeroing: zeroed memory without a bulk memset per chunk.
//!
//! Owns the rules for dirty recycled bytes. Fresh chunks are all-zero. A
//! recycled chunk (from the pool, or the one a `reset` keeps) comes with
//! its dirty prefix: the table chunks of a shared arena (bumped by many
//! threads) are cleared when taken (`state.rs`); the single-owner cursors
//! (the confined cursor, a `LocalArena`, a thread's chunk cache) keep a
//! *clean mark* instead. The first `allocate` that lands below the mark
//! zeroes everything dirty ahead of it in one memset (never more than the
//! chunk's previous user dirtied) and drops the mark; `allocate_uninit`
//! never zeroes (recycled bytes are always initialised: chunks start zeroed
//! and are only ever written with initialised bytes, or scrubbed here when
//! the allocator-api2 bridge may have written padding).
//!
//! May touch chunk bytes, and only in three windows: a shared arena's
//! cursor inside a `Session::enter` window of the arena's session
//! (`zero_entered`: close waits for it before recycling the chunk), under
//! the arena's lock (`zero_locked`: release takes it too), or on the owner
//! thread of a confined arena (`zero_owned`: only it can release while the
//! arena lives).

use crate::alloc::chunk::{Chunk, zero_ahead};
use crate::alloc::pool;
use crate::alloc::twins::{Twin, on};
use crate::error::Result;
use crate::session::Session;

/// Zeroes the dirty bytes `start .. clean` ahead of a shared-arena cursor
/// (a `LocalArena`, a thread's chunk cache) inside a plain-access window of
/// the arena's session: close marks the session closed and waits for such
/// windows before its action recycles the chunks, so the memset never
/// writes into a chunk that is already someone else's; once the session is
/// closed the allocation fails with [`crate::Error::Closed`] instead.
#[cold]
#[inline(never)]
pub(super) fn zero_entered(session: &Session, start: usize, clean: usize) -> Result<()> {
    let core = session.core();
    let window = if on(Twin::ArenaZeroOutsideEnter) {
        None
    } else {
        Some(core.enter()?)
    };
    #[cfg(loom)]
    crate::segment::loom_hook::run();
    // SAFETY: `start .. clean` lies in a chunk the calling cursor owns,
    // ahead of everything it handed out; the enter window above keeps
    // close from recycling the chunk until `exit`, and release by drop or
    // `reset` needs the arena, which the caller borrows.
    unsafe { zero_ahead(start, clean) };
    if let Some(i) = window {
        core.exit(i);
    }
    Ok(())
}

/// Zeroes `start .. clean` of a chunk being handed to a cursor under the
/// arena's lock; returns the new clean mark.
///
/// # Safety
///
/// The caller holds the arena's lock, the arena is not released, and
/// `start .. clean` lies in a chunk of the arena handed out to nobody.
#[inline]
pub(super) unsafe fn zero_locked(start: usize, clean: usize) -> usize {
    // SAFETY: the caller's contract (the lock keeps release away).
    unsafe { zero_ahead(start, clean) }
}

/// Zeroes `start .. clean` ahead of a confined arena's cursor; returns the
/// new clean mark.
///
/// # Safety
///
/// The caller is the owner thread, inside the cursor cell, and
/// `start .. clean` lies ahead of everything the cursor handed out in its
/// chunk (only this thread, or one holding the arena exclusively, can
/// release it, and it is here).
#[inline]
pub(super) unsafe fn zero_owned(start: usize, clean: usize) -> usize {
    // SAFETY: the caller's contract.
    unsafe { zero_ahead(start, clean) }
}

/// A chunk leaving an arena that was used through the `allocator-api2`
/// bridge: a collection may have written uninitialised bytes (padding, a
/// `MaybeUninit`) anywhere in its dirty prefix, and the next user's
/// `allocate_uninit` hands dirty bytes out as they are, so the prefix is
/// zeroed now (only for chunks the pool keeps). Returns the chunk and its
/// dirty length.
pub(super) fn scrub_bridged(mut chunk: Chunk, dirty: usize, bridged: bool) -> (Chunk, usize) {
    if bridged && dirty != 0 && chunk.len() <= pool::POOL_MAX_CHUNK {
        chunk.clear(dirty);
        return (chunk, 0);
    }
    (chunk, dirty)
}
