//! The slot table: how many threads bump one shared arena through `&Arena`
//! with one compare-and-swap and no lock.
//!
//! Owns the slot words (`chunk index (16 bits) | offset (48 bits)`, one
//! cache-padded word per core, `knobs::slots()` of them) and the write-once
//! chunk table (index -> base, length). A thread bumps in slot
//! `thread_id % slots`. A refill writes the table entry, then publishes it
//! with a Release swap of the slot word; a bumper's Acquire load of the
//! word (or the Acquire failure of its CAS) makes the entry it then reads
//! the one written for that index. Index and offset in one word: a bumper
//! can never combine a new cursor with an old chunk end (no ABA: offsets
//! only grow and indices are never reused while the arena is open). Close
//! swaps every word to `CLOSED_WORD`, which no bump accepts.
//!
//! May touch: the slot words and table of `Inner`, and `Slow`'s chunk
//! records when the caller holds the lock (`table_install`,
//! `retire_slots`). Never chunk memory.

use super::state::{Inner, Rec, Slow, TABLE, Where};
use crate::alloc::cells::me;
use crate::alloc::twins::{Twin, on};
use crate::sync::{AtomicU64, Ordering};

const IDX_SHIFT: u32 = 48;
const OFF_MASK: u64 = (1 << IDX_SHIFT) - 1;
#[inline(always)]
fn word(idx: usize, off: usize) -> u64 {
    ((idx as u64) << IDX_SHIFT) | off as u64
}

#[inline(always)]
fn index(w: u64) -> usize {
    (w >> IDX_SHIFT) as usize
}

impl Inner {
    #[inline(always)]
    fn slot(&self) -> &AtomicU64 {
        &self.slots[(me() as usize) & (self.slots.len() - 1)]
    }

    /// One CAS on this thread's slot; `None` when the chunk is full, the
    /// slot is empty or the arena closed.
    #[inline(always)]
    pub(super) fn bump_shared(&self, size: usize, align: usize) -> Option<usize> {
        let slot = self.slot();
        // Acquire: pairs with the Release that published the word's chunk
        // index (refill), so the table entry below is the one written for it.
        let mut w = if on(Twin::ArenaRelaxedSlotLoad) {
            slot.load(Ordering::Relaxed)
        } else {
            slot.load(Ordering::Acquire)
        };
        loop {
            let (start, new) = self.fit(w, size, align)?;
            if on(Twin::ArenaLoadStoreBump) {
                crate::sync::yield_now();
                slot.store(new, Ordering::Release);
                return Some(start);
            }
            match slot.compare_exchange(w, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(start),
                Err(now) => w = now,
            }
        }
    }

    /// Where an allocation would go in the chunk named by `w`: its start
    /// address and the slot word after it.
    #[inline(always)]
    fn fit(&self, w: u64, size: usize, align: usize) -> Option<(usize, u64)> {
        let idx = index(w);
        if idx == 0 || idx >= TABLE {
            return None;
        }
        let e = &self.table[idx];
        let base = e.base.load(Ordering::Relaxed);
        let len = e.len.load(Ordering::Relaxed);
        let off = (w & OFF_MASK) as usize;
        let start = crate::alloc::chunk::align_up(base.checked_add(off)?, align)?;
        let new_off = (start - base).checked_add(size)?;
        if new_off > len {
            return None;
        }
        Some((start, word(idx, new_off)))
    }

    /// What the refill of the chunk this thread's slot word names asked
    /// for (the chunk a refill outgrew). The caller holds the lock (`s`).
    pub(super) fn slot_chunk_asked(&self, s: &Slow) -> Option<usize> {
        // Relaxed: slot words change only under `slow`, which the caller
        // holds.
        let idx = index(self.slot().load(Ordering::Relaxed));
        if idx == 0 || idx >= TABLE {
            return None;
        }
        s.chunks
            .iter()
            .find(|r| matches!(r.at, Where::Table(i) if i == idx))
            .map(|r| r.asked)
    }

    /// Publishes the chunk of `new` as this thread's slot's chunk, `start ..
    /// start + size` already handed out, and retires the chunk the slot
    /// named. The caller holds the lock (`s`) and the table has room.
    pub(super) fn table_install(&self, s: &mut Slow, mut new: Rec, start: usize, size: usize) {
        let (base, len) = (new.chunk.addr(), new.chunk.len());
        let idx = s.table_len;
        s.table_len += 1;
        let e = &self.table[idx];
        e.base.store(base, Ordering::Relaxed);
        e.len.store(len, Ordering::Relaxed);
        new.at = Where::Table(idx);
        s.chunks.push(new);
        // Release: publishes the table entry written above to every bumper
        // that loads this word (or a later one) with Acquire.
        let old = self
            .slot()
            .swap(word(idx, start - base + size), Ordering::AcqRel);
        Self::retire_word(s, old);
    }

    /// Swaps every slot word to `to` (`CLOSED_WORD` at release, 0 at reset)
    /// and records how much of each chunk they named was used. The caller
    /// holds the lock (`s`).
    pub(super) fn retire_slots(&self, s: &mut Slow, to: u64) {
        let n = if on(Twin::ArenaCloseMarksOneSlot) {
            1
        } else {
            self.slots.len()
        };
        for slot in self.slots.iter().take(n) {
            let old = slot.swap(to, Ordering::AcqRel);
            Self::retire_word(s, old);
        }
    }

    /// Records how much of the chunk named by an old slot word was used.
    fn retire_word(s: &mut Slow, old: u64) {
        let idx = index(old);
        if idx == 0 || idx >= TABLE {
            return;
        }
        let off = (old & OFF_MASK) as usize;
        if let Some(r) = s
            .chunks
            .iter_mut()
            .find(|r| matches!(r.at, Where::Table(i) if i == idx))
        {
            r.dirty = off;
        }
    }

    /// How much of table chunk `idx` a slot word says is used, if a slot
    /// still names it (statistics; the caller holds the lock).
    pub(super) fn table_used(&self, idx: usize) -> Option<usize> {
        self.slots
            .iter()
            .map(|sl| sl.load(Ordering::Acquire))
            .find(|w| index(*w) == idx)
            .map(|w| (w & OFF_MASK) as usize)
    }
}
