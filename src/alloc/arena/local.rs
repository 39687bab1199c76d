//! The local handle: [`LocalArena`](super::LocalArena), a per-thread handle
//! on an arena that bumps plain `Cell`s in a chunk of its own (no atomic
//! read-modify-write per allocation).
//!
//! Owns the handle's cursor (its chunk's record, base, cursor, end and
//! clean mark), its refill and its hand-back. A handle checks the arena's
//! `closed` flag with a Relaxed load per allocation: a stale `false` hands
//! out one more range in a chunk being recycled, which touches no memory
//! (the segment belongs to the closed session: its accesses fail); the one
//! write, zeroing dirty recycled bytes, runs in an enter window
//! (`zeroing.rs`).
//!
//! A dropped handle *parks* its chunk in the arena (at most `PARKED_CAP`),
//! and the next handle of the same thread resumes it at its first refill,
//! under the lock, or grows from it when it is full: short-lived handles
//! (one per request, say) share chunks and grow as one cursor instead of
//! taking a fresh smallest chunk each.
//!
//! May touch: the handle's cells; the arena's chunk records and parked
//! chunks under the lock (`local_refill`, `local_done`); chunk bytes
//! through `zeroing.rs`.

use super::LocalArena;
use super::state::{
    Inner, Parked, Rec, Slow, Where, layout_error, layout_ok, next_chunk_size, oom,
};
use super::zeroing::{zero_entered, zero_locked};
use crate::alloc::cells::me;
use crate::alloc::chunk::{CHUNK_ALIGN, align_up, bump_in};
use crate::alloc::twins::{Twin, on};
use crate::error::{Error, Result};
use crate::sync::Ordering;

/// Parked chunks an arena keeps for its next handles.
const PARKED_CAP: usize = 8;

/// A chunk handed to a LocalArena: its record, base, cursor and end.
pub(super) struct LocalChunk {
    rec: usize,
    base: usize,
    cur: usize,
    end: usize,
    clean: usize,
}

impl LocalArena<'_> {
    /// Bumps and returns the start address; `Z`: the bytes are zero.
    #[inline(always)]
    pub(super) fn bump_z<const Z: bool>(&self, size: usize, align: usize) -> Result<usize> {
        if !layout_ok(size, align) {
            return Err(layout_error(size, align));
        }
        // Relaxed: a stale `false` is harmless (see the module docs).
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        if let Some((start, new)) = bump_in(self.cur.get(), self.end.get(), size, align) {
            self.cur.set(new);
            if Z && start < self.clean.get() {
                // The chunk is this handle's alone, but a close on another
                // thread could recycle it: zero inside an enter window.
                zero_entered(&self.arena.session, start, self.clean.get())?;
                self.clean.set(start);
            }
            return Ok(start);
        }
        self.refill(size, align, Z)
    }

    #[cold]
    #[inline(never)]
    fn refill(&self, size: usize, align: usize, zero: bool) -> Result<usize> {
        let old = self.rec.get().map(|r| {
            let used = self.cur.get().saturating_sub(self.base.get());
            (r, used, self.clean.get())
        });
        let (start, new) = self.inner.local_refill(size, align, old, zero)?;
        if let Some(LocalChunk {
            rec,
            base,
            cur,
            end,
            clean,
        }) = new
        {
            self.rec.set(Some(rec));
            self.base.set(base);
            self.cur.set(cur);
            self.end.set(end);
            self.clean.set(clean);
        }
        Ok(start)
    }

    /// The handle is dropped: its chunk is parked for the next handle, or
    /// its used length goes to the record.
    pub(super) fn hand_back(&self) {
        if let Some(r) = self.rec.get() {
            self.inner.local_done(r, self.cur.get(), self.clean.get());
        }
    }
}

impl Inner {
    /// A whole chunk for a LocalArena (or its huge allocation).
    #[cold]
    #[inline(never)]
    fn local_refill(
        &self,
        size: usize,
        align: usize,
        old: Option<(usize, usize, usize)>,
        zero: bool,
    ) -> Result<(usize, Option<LocalChunk>)> {
        let mut s = self.slow.lock();
        if s.released {
            return Err(Error::Closed);
        }
        if self.confined {
            let owner = self.cur.owner();
            if me() != owner {
                return Err(Error::WrongThread {
                    owner,
                    current: me(),
                });
            }
        }
        if size == 0 {
            return Ok((align, None));
        }
        let needed = size
            .checked_add(align.saturating_sub(CHUNK_ALIGN))
            .ok_or(Error::OutOfMemory { size, align })?;
        // The chunk this handle outgrew: its own, or a parked one too full
        // for this request (the handles that share parked chunks grow as
        // one cursor).
        let mut prev = old.map(|(rec, _, _)| s.chunks[rec].asked);
        let me = me();
        if old.is_none()
            && let Some(i) = s.parked.iter().rposition(|p| p.thread == me)
        {
            let p = s.parked.swap_remove(i);
            // Resume a dropped handle's chunk (its bytes past `p.cur` were
            // handed out to nobody).
            let r = &s.chunks[p.rec];
            let (base, end) = (r.chunk.addr(), r.chunk.end());
            if let Some((start, cur)) = bump_in(p.cur, end, size, align) {
                let clean = if zero {
                    if on(Twin::ResumeZeroUnlocked) {
                        // The broken twin: the lock goes before the memset.
                        drop(s);
                        crate::sync::yield_now();
                    }
                    // SAFETY: `start .. p.clean` lies in a chunk of this
                    // arena past everything handed out from it, now given
                    // to the calling handle alone; we hold the lock and the
                    // arena is not released.
                    unsafe { zero_locked(start, p.clean) }
                } else {
                    p.clean
                };
                let chunk = LocalChunk {
                    rec: p.rec,
                    base,
                    cur,
                    end,
                    clean,
                };
                return Ok((start, Some(chunk)));
            }
            s.chunks[p.rec].retire(p.cur - base, p.clean);
            prev = Some(s.chunks[p.rec].asked);
        }
        let want = next_chunk_size(prev);
        if needed > want / 2 {
            let (chunk, _, _) =
                Self::new_chunk(&mut s, size, align, true, false).map_err(|_| oom(size, align))?;
            let a = chunk.addr();
            s.chunks.push(Rec::new(chunk, 0, Where::Other));
            return Ok((a, None));
        }
        if let Some((rec, used, clean)) = old {
            s.chunks[rec].retire(used, clean);
        }
        let (chunk, stale, asked) = Self::new_chunk(&mut s, want, CHUNK_ALIGN, false, true)
            .map_err(|_| oom(size, align))?;
        let base = chunk.addr();
        let end = chunk.end();
        let rec = s.chunks.len();
        s.chunks
            .push(Rec::new(chunk, stale, Where::Other).asking(asked));
        let start = align_up(base, align).ok_or(Error::OutOfMemory { size, align })?;
        let clean = if zero {
            // SAFETY: `start .. base + stale` lies in the chunk just given
            // to the calling handle alone; we hold the lock and the arena
            // is not released, so nothing recycles the chunk meanwhile.
            unsafe { zero_locked(start, base + stale) }
        } else {
            base + stale
        };
        Ok((
            start,
            Some(LocalChunk {
                rec,
                base,
                cur: start + size,
                end,
                clean,
            }),
        ))
    }

    /// A LocalArena is done with its chunk (its cursor stood at `cur`):
    /// park it for the thread's next handle, or (the arena holds
    /// `PARKED_CAP` already) record how much it used.
    fn local_done(&self, rec: usize, cur: usize, clean: usize) {
        let mut s = self.slow.lock();
        if s.released && !on(Twin::ParkAfterRelease) {
            return;
        }
        // Parked even when full: the thread's next handle then grows from
        // it instead of starting over at the smallest chunk.
        if s.parked.len() < PARKED_CAP {
            s.parked.push(Parked {
                rec,
                cur,
                clean,
                thread: me(),
            });
            return;
        }
        if let Some(r) = s.chunks.get_mut(rec) {
            let used = cur.saturating_sub(r.chunk.addr());
            r.retire(used, clean);
        }
    }

    /// Retires every parked chunk (release, reset). The caller holds the
    /// lock (`s`).
    pub(super) fn retire_parked(s: &mut Slow) {
        for p in core::mem::take(&mut s.parked) {
            let r = &mut s.chunks[p.rec];
            let used = p.cur - r.chunk.addr();
            r.retire(used, p.clean);
        }
    }
}
