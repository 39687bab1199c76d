//! The arena's cold path under its lock: a refill (confined cursor or slot
//! word) or a huge allocation's own chunk, release (close, drop), `reset`,
//! statistics, limits, the bridge mark.
//!
//! Owns the order of those steps, not their data: it calls into each
//! mechanism to refill or retire it (`slots.rs`, `confined.rs`,
//! `tcache.rs`, `local.rs`) and gives chunks back to the pool. May touch
//! `Slow` (holding the lock) and chunk bytes only through
//! `zeroing::scrub_bridged` (chunks no segment reaches any more).

use super::state::{
    CLOSED_WORD, Cursor, Inner, LIVE, MAX_TABLE_CHUNK, MIN_CHUNK, Rec, Slow, TABLE, Where,
    next_arena_id, next_chunk_size, oom,
};
use super::zeroing::scrub_bridged;
use crate::alloc::cells::OwnerCell;
use crate::alloc::chunk::{CHUNK_ALIGN, align_up};
use crate::alloc::pool::{self, Pooled};
use crate::alloc::twins::{Twin, on};
use crate::error::{Error, Result};
use crate::sync::Ordering;

impl Inner {
    /// A bump that missed its fast path: under the lock, a refill of the
    /// confined cursor (`cur`) or of this thread's slot word, or a huge
    /// allocation's own chunk.
    #[cold]
    #[inline(never)]
    pub(super) fn bump_slow(
        &self,
        cur: Option<&OwnerCell<Cursor>>,
        size: usize,
        align: usize,
        zero: bool,
    ) -> Result<usize> {
        let mut s = self.slow.lock();
        if s.released {
            return Err(Error::Closed);
        }
        if size == 0 {
            // An empty segment touches no memory: its address is `align`.
            return Ok(align);
        }
        if !self.slots.is_empty() {
            // Another thread may have refilled this slot meanwhile.
            if let Some(a) = self.bump_shared(size, align) {
                return Ok(a);
            }
        }
        let needed = size
            .checked_add(align.saturating_sub(CHUNK_ALIGN))
            .ok_or(Error::OutOfMemory { size, align })?;
        let table_full = !self.slots.is_empty() && s.table_len >= TABLE;
        // The chunk the refilling cursor outgrew: the confined cursor's, or
        // the one this thread's slot word names.
        let prev = match cur {
            Some(_) => s.confined_rec.map(|r| s.chunks[r].asked),
            None => self.slot_chunk_asked(&s),
        };
        let mut want = next_chunk_size(prev);
        if cur.is_none() {
            // Table chunks also double per table entry of this round (by the
            // sizes asked, not the sizes got), so that the 64 entries hold
            // as much as a doubling series, however many slots share them.
            let n = (s.table_len.saturating_sub(1) as u32).min(34);
            want = want.max((MIN_CHUNK << n).min(MAX_TABLE_CHUNK));
        }
        if needed > want / 2 || needed > MAX_TABLE_CHUNK || table_full {
            // Huge: its own chunk, the current one stays current.
            let (chunk, _, _) =
                Self::new_chunk(&mut s, size, align, true, false).map_err(|_| oom(size, align))?;
            let a = chunk.addr();
            s.chunks.push(Rec::new(chunk, 0, Where::Other));
            return Ok(a);
        }
        // The confined cursor zeroes on demand; the table's chunks are
        // bumped by many threads at once, so they are cleared now.
        let (chunk, stale, asked) =
            Self::new_chunk(&mut s, want.max(needed), CHUNK_ALIGN, false, cur.is_some())
                .map_err(|_| oom(size, align))?;
        let start = align_up(chunk.addr(), align).ok_or(Error::OutOfMemory { size, align })?;
        debug_assert!(
            start - chunk.addr() + size <= chunk.len(),
            "chunk too small for the request"
        );
        match cur {
            Some(cur) => {
                let rec = Rec::new(chunk, stale, Where::Confined).asking(asked);
                Self::confined_install(&mut s, cur, rec, start, size, zero)?
            }
            None => self.table_install(
                &mut s,
                Rec::new(chunk, 0, Where::Other).asking(asked),
                start,
                size,
            ),
        }
        Ok(start)
    }

    /// Marks the arena closed and (unless the bridge was used and `dropping`
    /// is false) returns every chunk to the pool. Idempotent.
    pub(super) fn release(&self, dropping: bool) {
        if on(Twin::ArenaCursorOutsideLock) && self.confined {
            // SAFETY: none: this is the deliberately broken twin, compiled in
            // but only ever switched on under loom, whose cell reports the
            // unsynchronised access instead of performing it.
            let _ = unsafe { self.cur.with_unchecked(|c| *c) };
            crate::sync::yield_now();
        }
        let mut s = self.slow.lock();
        if !s.released {
            s.released = true;
            if !on(Twin::ReleaseNoClosedFlag) {
                self.closed.store(true, Ordering::Release);
            }
            let word = if on(Twin::ArenaNoCloseMark) {
                None
            } else {
                Some(CLOSED_WORD)
            };
            // SAFETY: release runs on the owner thread (a confined session
            // closes only there while the arena lives), or with the arena
            // held exclusively (its drop elsewhere, or the session's last
            // handle gone, which outlives the arena): no bump is inside the
            // cursor cell.
            unsafe { self.retire_bump_state(&mut s, word) };
        }
        if s.bridged && !dropping && !on(Twin::BridgedCloseFrees) {
            return;
        }
        self.drop_thread_cache(&mut s);
        s.reserved = 0;
        Self::return_chunks(&mut s);
    }

    /// Swaps every slot word to `word` (`None`: leave the slots alone, the
    /// `ArenaNoCloseMark` twin) and retires what they and the confined
    /// cursor pointed into, so the chunks' dirty prefixes are known.
    ///
    /// # Safety
    ///
    /// No bump may be running in the confined cursor cell: the caller is the
    /// owner thread, or holds the arena exclusively. Other writers of the
    /// cell hold `slow`, which the caller holds as `s`.
    unsafe fn retire_bump_state(&self, s: &mut Slow, word: Option<u64>) {
        if let Some(word) = word {
            self.retire_slots(s, word);
        }
        if self.confined {
            // SAFETY: this function's contract.
            unsafe { self.retire_cursor(s) };
        }
        Self::retire_parked(s);
    }

    /// Gives every chunk back to the pool with its dirty prefix (a chunk
    /// still `LIVE` is dirty all through), and the one kept by `reset`.
    /// The caller holds the arena exclusively or its session is closed (no
    /// segment or collection reaches the chunks any more).
    fn return_chunks(s: &mut Slow) {
        let bridged = s.bridged;
        for r in s.chunks.drain(..) {
            let dirty = r.dirty_prefix();
            let (chunk, dirty) = scrub_bridged(r.chunk, dirty, bridged);
            pool::give(chunk, dirty);
        }
        if let Some(k) = s.kept.take() {
            // Scrubbed when it was kept, if the bridge had been used.
            pool::give(k.chunk, k.dirty);
        }
    }

    /// `reset`: every allocation is gone; chunks go back to the pool.
    /// The caller holds the arena exclusively (`&mut Arena`).
    pub(super) fn reset(&self) {
        let mut s = self.slow.lock();
        if s.released {
            return;
        }
        self.drop_thread_cache(&mut s);
        // SAFETY: the caller holds the arena exclusively (`&mut Arena`): no
        // bump is inside the cursor cell.
        unsafe { self.retire_bump_state(&mut s, Some(0)) };
        s.table_len = 1;
        s.reserved = 0;
        if !self.slots.is_empty() {
            // Threads' caches name the old id: they no longer match.
            if !on(Twin::ResetKeepsId) {
                self.id.store(next_arena_id(), Ordering::Relaxed);
            }
        }
        // Keep the largest pool-sized chunk (dirty) for the next refill; the
        // rest goes back to the pool.
        let largest = s
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, r)| r.chunk.len() <= pool::POOL_MAX_CHUNK && !matches!(r.at, Where::Spare))
            .max_by_key(|(_, r)| r.chunk.len())
            .map(|(i, _)| i);
        if let Some(i) = largest {
            let r = s.chunks.swap_remove(i);
            let dirty = r.dirty_prefix();
            let (chunk, dirty) = scrub_bridged(r.chunk, dirty, s.bridged);
            let mut keep = Pooled { chunk, dirty };
            if let Some(mut k) = s.kept.take() {
                // The previous one was not needed by this round: keep the
                // larger of the two, pool the other.
                if k.chunk.len() > keep.chunk.len() {
                    core::mem::swap(&mut k, &mut keep);
                }
                pool::give(k.chunk, k.dirty);
            }
            s.kept = Some(keep);
        }
        let kept = s.kept.take();
        Self::return_chunks(&mut s);
        s.kept = kept;
        // Every chunk the bridge may have written into is scrubbed, and no
        // collection can still point into the arena (`&mut Arena`): the
        // next round starts unbridged (close frees its chunks again).
        s.bridged = false;
        self.bridged.store(false, Ordering::Relaxed);
    }

    /// `(allocated, reserved, chunks)`; `confined_used`: a confined arena's
    /// cursor, when the caller could read it.
    pub(super) fn stats(&self, confined_used: Option<usize>) -> (usize, usize, usize) {
        let s = self.slow.lock();
        let mut used = 0usize;
        let (mut hidden, mut hidden_bytes) = (0usize, 0usize);
        for (i, r) in s.chunks.iter().enumerate() {
            // Not in use: a detached first chunk, or the cursor's chunk
            // before its first byte (the standby a new confined arena
            // starts with) is reported as not reserved yet.
            let unused = match r.at {
                Where::Spare => true,
                Where::Confined => confined_used == Some(r.chunk.addr()),
                _ => false,
            };
            if unused {
                hidden += 1;
                if !matches!(r.at, Where::Spare) {
                    hidden_bytes += r.chunk.len();
                }
                continue;
            }
            used += if r.dirty != LIVE {
                r.dirty
            } else {
                match r.at {
                    Where::Table(i) => self.table_used(i).unwrap_or(r.chunk.len()),
                    Where::Confined => {
                        confined_used.map_or(r.chunk.len(), |p| p.saturating_sub(r.chunk.addr()))
                    }
                    Where::Other => match s.parked.iter().find(|p| p.rec == i) {
                        Some(p) => p.cur - r.chunk.addr(),
                        None => r.chunk.len(),
                    },
                    Where::Spare => 0,
                }
            };
        }
        (used, s.reserved - hidden_bytes, s.chunks.len() - hidden)
    }

    /// Sets the cap on reserved bytes; a confined arena's unused standby
    /// chunk larger than room is detached (`confined.rs`).
    pub(super) fn set_limit(&self, limit: Option<usize>) {
        let mut s = self.slow.lock();
        s.limit = limit;
        let Some(l) = limit else { return };
        if l < s.reserved {
            self.detach_standby(&mut s);
        }
    }

    /// Marks the arena as used by the allocator-api2 bridge.
    #[cold]
    #[inline(never)]
    pub(super) fn bridge_mark_slow(&self) -> Result<()> {
        let mut s = self.slow.lock();
        if s.released {
            return Err(Error::Closed);
        }
        s.bridged = true;
        self.bridged.store(true, Ordering::Relaxed);
        Ok(())
    }
}
