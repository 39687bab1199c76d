//! The confined cursor: a confined session's arena bumps plain memory, no
//! atomics, on its owner thread.
//!
//! Owns `Cursor` (next free address, chunk end, clean mark) in the state's
//! `OwnerCell`, its fast bump, its refill (`confined_install`), its
//! retirement at release/reset, and the *standby* first chunk: a new (or
//! recycled) confined state, while still unshared, takes a small chunk from
//! this thread's pool cache and starts its cursor there, so the first
//! allocation is a plain bump. The standby is reported by the statistics
//! only once used, and a limit below it set by the owner thread detaches it
//! (`Where::Spare`).
//!
//! May touch: the cursor cell (owner thread, or with the arena held
//! exclusively, or on an unshared state), the chunk records under the lock,
//! the pool's per-thread cache (standby), chunk bytes through
//! `zeroing.rs`. A bump reads no `closed` flag: release resets the cursor
//! to `NO_CURSOR` (on the owner thread, the only one that can close a
//! confined session while the arena lives), so after a close nothing fits
//! and the slow path answers `Closed`.

use super::state::{Cursor, Inner, MIN_CHUNK, NO_CURSOR, Rec, Slow, Where};
use super::zeroing::{zero_locked, zero_owned};
use crate::alloc::cells::OwnerCell;
use crate::alloc::chunk::{CHUNK_ALIGN, bump_in};
use crate::alloc::pool::{self, Pooled};
use crate::alloc::twins::{Twin, on};
use crate::error::Result;

impl Inner {
    /// The owner thread's bump; `None` if nothing fits or the caller is not
    /// the owner (the caller tells the two apart, `OwnerCell::not_mine`).
    #[inline(always)]
    pub(super) fn bump_confined<const Z: bool>(&self, size: usize, align: usize) -> Option<usize> {
        self.cur.with_mine(|c| {
            let (start, new) = bump_in(c.ptr, c.end, size, align)?;
            c.ptr = new;
            if Z && start < c.clean {
                // SAFETY: `start .. clean` lies ahead of everything handed
                // out from the cursor's chunk; we are the owner thread,
                // inside the cell.
                c.clean = unsafe { zero_owned(start, c.clean) };
            }
            Some(start)
        })
    }

    /// Installs the chunk of `new` (dirty for `new.stale` bytes) as the
    /// cursor's chunk, `start .. start + size` handed out, and retires the
    /// old one. The caller holds the lock (`s`) on the owner thread.
    pub(super) fn confined_install(
        s: &mut Slow,
        cur: &OwnerCell<Cursor>,
        new: Rec,
        start: usize,
        size: usize,
        zero: bool,
    ) -> Result<()> {
        let (base, end, stale) = (new.chunk.addr(), new.chunk.end(), new.stale);
        let rec = s.chunks.len();
        let clean = if zero {
            // SAFETY: `start .. base + stale` lies in the chunk being
            // installed as this owner thread's cursor chunk, handed out to
            // nobody; we hold the lock and the arena is not released.
            unsafe { zero_locked(start, base + stale) }
        } else {
            base + stale
        };
        let old = cur.with(|c| {
            core::mem::replace(
                c,
                Cursor {
                    ptr: start + size,
                    end,
                    clean,
                },
            )
        })?;
        if let Some(r) = s.confined_rec.replace(rec) {
            let b = s.chunks[r].chunk.addr();
            s.chunks[r].retire(old.ptr.saturating_sub(b), old.clean);
        }
        s.chunks.push(new);
        Ok(())
    }

    /// Records how much of the cursor's chunk was used and resets the
    /// cursor to "no chunk".
    ///
    /// # Safety
    ///
    /// No bump may be inside the cursor cell: the caller is the owner
    /// thread or holds the arena exclusively, and holds the lock (`s`).
    pub(super) unsafe fn retire_cursor(&self, s: &mut Slow) {
        // SAFETY: the caller's contract.
        let c = unsafe {
            self.cur
                .with_unchecked(|c| core::mem::replace(c, NO_CURSOR))
        };
        if let Some(r) = s.confined_rec.take() {
            let rec = &mut s.chunks[r];
            let (base, end) = (rec.chunk.addr(), rec.chunk.end());
            if c.ptr >= base && c.ptr <= end {
                rec.retire(c.ptr - base, c.clean);
            } else {
                rec.dirty = super::state::LIVE;
            }
        }
    }

    /// Gives an unshared confined state its standby first chunk from this
    /// thread's pool cache (no lock), if the cache has a small one.
    ///
    /// # Safety
    ///
    /// The caller holds the only use of this state.
    pub(super) unsafe fn attach_standby(&self) {
        if !self.confined {
            return;
        }
        // SAFETY: unique (the caller's contract): nobody else reaches
        // `slow` or is inside the cursor cell.
        unsafe {
            self.slow.with_unlocked(|s| {
                if !s.chunks.is_empty() || s.limit.is_some() {
                    return;
                }
                let Some(Pooled { chunk, dirty }) = pool::take_local(MIN_CHUNK, CHUNK_ALIGN) else {
                    return;
                };
                let base = chunk.addr();
                let clean = if on(Twin::StandbyNoCleanMark) {
                    base
                } else {
                    base + dirty.min(chunk.len())
                };
                let c = Cursor {
                    ptr: base,
                    end: chunk.end(),
                    clean,
                };
                s.reserved += chunk.len();
                s.confined_rec = Some(s.chunks.len());
                s.chunks
                    .push(Rec::new(chunk, dirty, Where::Confined).asking(MIN_CHUNK));
                self.cur.with_unchecked(|p| *p = c);
            })
        }
    }

    /// A limit below the reserved bytes was set: an unused standby chunk
    /// must not let allocations past it; detach it (only its owner thread
    /// can see the cursor; from another thread the standby stays usable, as
    /// documented on `Arena::reserved_bytes`). The caller holds the lock.
    pub(super) fn detach_standby(&self, s: &mut Slow) {
        let Some(r) = s.confined_rec else {
            return;
        };
        let base = s.chunks[r].chunk.addr();
        let detached = self.cur.with(|c| {
            if c.ptr == base {
                *c = NO_CURSOR;
                true
            } else {
                false
            }
        });
        if detached == Ok(true) {
            s.confined_rec = None;
            s.chunks[r].at = Where::Spare;
            s.chunks[r].dirty = 0;
            s.reserved -= s.chunks[r].chunk.len();
        }
    }
}
