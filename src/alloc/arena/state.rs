//! An arena's state (`Inner`) and its cold path: the chunk list, the lock,
//! refills, huge allocations, limits, statistics, release and `reset`.
//!
//! Owns `Inner`, `Slow` (everything under the spin lock) and the chunk
//! records (`Rec`: a chunk, how much of it was handed out, how much was
//! dirty when it came). May touch the pool (`pool.rs`) and the chunks
//! (`chunk.rs`); reaches the other mechanisms of the arena only through
//! their functions: the slot table (`slots.rs`), the thread chunk cache
//! (`tcache.rs`), the confined cursor (`confined.rs`), the clean mark
//! (`zeroing.rs`). Every write to `Slow` holds the lock, except on a state
//! nobody else can reach (`with_unlocked`, in `spare.rs` and `Inner::fresh`).

use super::confined::{Cursor, NO_CURSOR};
use super::slots::{CLOSED_WORD, Entry, MAX_TABLE_CHUNK, TABLE};
use super::zeroing::scrub_bridged;
use crate::alloc::cells::OwnerCell;
use crate::alloc::chunk::{CHUNK_ALIGN, Chunk, align_up};
use crate::alloc::pool::{self, Pooled};
use crate::alloc::spin::SpinMutex;
use crate::alloc::twins::{Twin, on};
use crate::error::{Error, Result};
use crate::session::SessionKind;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, CachePadded, Ordering};

/// A cursor's first chunk size; its later ones double (`next_chunk_size`).
#[cfg(not(loom))]
pub(crate) const MIN_CHUNK: usize = 4096;
#[cfg(loom)]
pub(crate) const MIN_CHUNK: usize = 64;

/// "Unknown yet": the chunk is live; its used length is read at release.
pub(super) const LIVE: usize = usize::MAX;

#[derive(Debug)]
pub(super) enum Where {
    /// In the shared chunk table at this index.
    Table(usize),
    /// The confined cursor's chunk.
    Confined,
    /// Handed to a LocalArena or a thread's cache, or a huge allocation's
    /// own chunk.
    Other,
    /// A confined arena's unused first chunk, detached from the cursor by
    /// `set_allocation_limit`: held until release, counted nowhere.
    Spare,
}

#[derive(Debug)]
pub(super) struct Rec {
    pub(super) chunk: Chunk,
    /// Length of the prefix handed out, or `LIVE`.
    pub(super) dirty: usize,
    /// Length of the prefix that was already dirty when the chunk came to
    /// this arena (recycled and not cleared: the cursor zeroes on demand).
    pub(super) stale: usize,
    pub(super) at: Where,
    /// The size its cursor asked for (a pooled or kept chunk may be
    /// larger): the cursor's next chunk doubles this, not the length got,
    /// so a larger chunk handed over does not compound (`next_chunk_size`).
    pub(super) asked: usize,
}

impl Rec {
    pub(super) fn new(chunk: Chunk, stale: usize, at: Where) -> Rec {
        Rec {
            asked: chunk.len(),
            chunk,
            dirty: LIVE,
            stale,
            at,
        }
    }

    /// The record of a chunk its cursor asked `asked` bytes for.
    pub(super) fn asking(mut self, asked: usize) -> Rec {
        self.asked = asked;
        self
    }

    /// A cursor is done with the chunk: it handed out `used` bytes, and its
    /// clean mark stood at `clean` (lower than where it started if a zeroing
    /// allocation zeroed the dirty bytes ahead: those are zero again, so the
    /// chunk goes back to the pool with a shorter dirty prefix).
    pub(super) fn retire(&mut self, used: usize, clean: usize) {
        self.dirty = used;
        self.stale = self.stale.min(clean.saturating_sub(self.chunk.addr()));
    }

    /// How many leading bytes may be non-zero.
    pub(super) fn dirty_prefix(&self) -> usize {
        let used = if self.dirty == LIVE {
            self.chunk.len()
        } else {
            self.dirty
        };
        used.max(self.stale)
    }
}

#[derive(Debug)]
pub(super) struct Slow {
    pub(super) chunks: Vec<Rec>,
    /// Next free table index (0 is "no chunk").
    pub(super) table_len: usize,
    /// Index in `chunks` of the confined cursor's chunk.
    pub(super) confined_rec: Option<usize>,
    pub(super) limit: Option<usize>,
    pub(super) reserved: usize,
    pub(super) released: bool,
    /// The allocator-api2 bridge was used: close keeps the chunks.
    pub(super) bridged: bool,
    /// The largest chunk of the last `reset`, kept (dirty) for the next
    /// refill, as bumpalo keeps its last chunk: a reset arena reuses one
    /// chunk without a trip through the pool or a bulk clear.
    pub(super) kept: Option<Pooled>,
    /// Chunks of dropped `LocalArena`s with room left, for the next handle
    /// (`local.rs`): short-lived handles share chunks instead of taking one
    /// each.
    pub(super) parked: Vec<super::local::Parked>,
}

pub(crate) struct Inner {
    /// A confined arena's state (never changes for a state, recycled or not).
    pub(super) confined: bool,
    /// Confined arenas: the cursor and its owner thread (`confined.rs`).
    /// Bumped without a lock by the owner thread only; everything else
    /// (refill, release, reset) touches it under `slow`, and only on the
    /// owner thread or with the arena held exclusively (`&mut Arena`, its
    /// drop), when no bump can run. Release sets it to `NO_CURSOR`, so a
    /// bump after close falls to the slow path (which returns `Closed`).
    /// Shared arenas: owner 0 (never a thread id), unused.
    pub(super) cur: OwnerCell<Cursor>,
    /// Shared arenas: the slot words (`slots.rs`). Confined: empty.
    pub(super) slots: Box<[CachePadded<AtomicU64>]>,
    /// Shared arenas: chunk index -> (base, len), written once before
    /// publication. Confined: empty.
    pub(super) table: Box<[Entry]>,
    /// Set (under `slow`) when the arena is released; read by the
    /// `LocalArena`s and thread caches.
    pub(super) closed: AtomicBool,
    /// Shared arenas: a process-unique id naming this arena (and epoch:
    /// `reset` takes a new one) in the threads' chunk caches.
    pub(super) id: AtomicU64,
    /// Mirrors `Slow::bridged` for a lock-free check (set under `slow`).
    pub(super) bridged: AtomicBool,
    /// Who may still use this state: the arena, and its close action while
    /// registered (`spare.rs`: the last to let go, by a Release decrement,
    /// may recycle the state).
    pub(super) holders: AtomicUsize,
    pub(super) slow: SpinMutex<Slow>,
}

impl crate::session::actions::CloseHook for Inner {
    /// The session closed: every chunk goes back to the pool, and the
    /// action lets go of the state.
    fn on_close(&self) {
        self.release(false);
        super::spare::let_go(self, 1);
    }
}

#[cold]
#[inline(never)]
pub(crate) fn layout_error(size: usize, align: usize) -> Error {
    match crate::alloc::check_layout(size, align) {
        Err(e) => e,
        Ok(()) => Error::OutOfMemory { size, align },
    }
}

#[cold]
pub(super) fn oom(size: usize, align: usize) -> Error {
    Error::OutOfMemory { size, align }
}

/// The layout check every fast path starts with (free when inlined with
/// constant arguments).
#[inline(always)]
pub(super) fn layout_ok(size: usize, align: usize) -> bool {
    align.is_power_of_two() && size <= isize::MAX as usize - (align - 1)
}

/// The size of a cursor's next chunk: twice the chunk it outgrew (`prev`),
/// or `MIN_CHUNK` for its first chunk of the round. Growth follows each
/// cursor's own history in this round only: a chunk handed over bigger than
/// asked (the one a `reset` kept, a pooled one) does not make the *next*
/// cursor's request bigger, so sizes do not compound across `reset`s (with
/// an arena-wide doubling, two threads resetting in a loop doubled their
/// chunks every round, past the pool's limit).
#[inline]
pub(super) fn next_chunk_size(prev: Option<usize>) -> usize {
    match prev {
        Some(len) => len.saturating_mul(2).clamp(MIN_CHUNK, MAX_TABLE_CHUNK),
        None => MIN_CHUNK,
    }
}

/// A process-unique arena id (never 0, never reused).
pub(super) fn next_arena_id() -> u64 {
    #[cfg(not(loom))]
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
    #[cfg(loom)]
    {
        crate::sync::lazy_static! {
            static ref NEXT: AtomicU64 = AtomicU64::new(1);
        }
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}

impl Inner {
    fn new(kind: SessionKind, owner: u64) -> Inner {
        let confined = kind == SessionKind::Confined;
        Inner {
            confined,
            cur: OwnerCell::new(if confined { owner } else { 0 }, NO_CURSOR),
            slots: if confined {
                Box::new([])
            } else {
                (0..crate::alloc::knobs::slots())
                    .map(|_| CachePadded::new(AtomicU64::new(0)))
                    .collect()
            },
            table: if confined {
                Box::new([])
            } else {
                (0..TABLE).map(|_| Entry::new()).collect()
            },
            closed: AtomicBool::new(false),
            id: AtomicU64::new(if confined { 0 } else { next_arena_id() }),
            bridged: AtomicBool::new(false),
            holders: AtomicUsize::new(0),
            slow: SpinMutex::new(Slow {
                chunks: Vec::new(),
                table_len: 1,
                confined_rec: None,
                limit: None,
                reserved: 0,
                released: false,
                bridged: false,
                kept: None,
                parked: Vec::new(),
            }),
        }
    }

    /// A new state for an arena of `kind` owned by thread `owner`; a
    /// confined one starts with a standby first chunk when this thread's
    /// pool cache has one (`confined.rs`).
    pub(super) fn fresh(kind: SessionKind, owner: u64) -> Inner {
        let i = Inner::new(kind, owner);
        // SAFETY: `i` is a local: nobody else can reach it.
        unsafe { i.attach_standby() };
        i
    }

    /// Resets a released, unshared state to "new" (keeping allocations);
    /// false if it cannot be reused.
    ///
    /// # Safety
    ///
    /// The caller holds the only use of this state, and every earlier use
    /// by another thread happens-before this call (`spare.rs`).
    pub(super) unsafe fn clean(&self) -> bool {
        // SAFETY: the caller's contract: nobody else reaches `slow`.
        let ok = unsafe {
            self.slow.with_unlocked(|s| {
                if !s.released || !s.chunks.is_empty() || s.kept.is_some() {
                    return false;
                }
                s.released = false;
                s.bridged = false;
                s.limit = None;
                s.table_len = 1;
                s.reserved = 0;
                s.confined_rec = None;
                true
            })
        };
        if !ok {
            return false;
        }
        self.closed.store(false, Ordering::Relaxed);
        self.bridged.store(false, Ordering::Relaxed);
        self.id.store(0, Ordering::Relaxed);
        for slot in self.slots.iter() {
            slot.store(0, Ordering::Relaxed);
        }
        true
    }

    // ----- slow path -----------------------------------------------------------

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

    /// A chunk of at least `len` bytes and how much of its prefix may be
    /// dirty: the chunk kept by the last reset, else one from the pool, else
    /// a fresh one. `lazy`: the taker zeroes on demand below its clean mark;
    /// otherwise the chunk is cleared now (and the dirty length is 0).
    /// Honours the limit (for non-exact requests, a smaller chunk that still
    /// fits is tried before giving up). The third value is what the
    /// cursor's next chunk grows from: the length asked, except for the
    /// kept chunk, whose length is what the last round needed (so a reset
    /// loop settles on one chunk), never a pooled chunk's larger length (a
    /// pool hands out up to 4x the ask: growing from that compounded).
    pub(super) fn new_chunk(
        s: &mut Slow,
        len: usize,
        align: usize,
        exact: bool,
        lazy: bool,
    ) -> Result<(Chunk, usize, usize)> {
        let oom = || Error::OutOfMemory { size: len, align };
        let len = len.checked_next_multiple_of(CHUNK_ALIGN).ok_or_else(oom)?;
        let room = match s.limit {
            Some(l) => l.saturating_sub(s.reserved),
            None => usize::MAX,
        };
        if len > room {
            return Err(oom());
        }
        let kept = match s.kept.take() {
            Some(k)
                if !exact
                    && k.chunk.len() >= len
                    && k.chunk.len() <= room
                    && k.chunk.align() >= align =>
            {
                Some(k)
            }
            Some(k) => {
                s.kept = Some(k);
                None
            }
            None => None,
        };
        let was_kept = kept.is_some();
        let pooled = match kept {
            Some(k) => Some(k),
            None if exact => None,
            // A non-exact request asks for at least twice what it needs (its
            // callers send larger ones to `exact` chunks of their own), so a
            // pooled chunk of half the size fits too: taking one beats a
            // system allocation, and the cursor's next chunk grows from it.
            None => pool::take_dirty(len, align).or_else(|| {
                (len / 2 >= MIN_CHUNK)
                    .then(|| pool::take_dirty(len / 2, align))
                    .flatten()
            }),
        };
        let (chunk, dirty) = match pooled {
            Some(p) if p.chunk.len() <= room => {
                let d = p.dirty.min(p.chunk.len());
                (p.chunk, d)
            }
            Some(p) => {
                pool::give(p.chunk, p.dirty);
                (Chunk::new(len, align).ok_or_else(oom)?, 0)
            }
            None => (Chunk::new(len, align).ok_or_else(oom)?, 0),
        };
        let mut chunk = chunk;
        let dirty = if lazy || dirty == 0 {
            dirty
        } else {
            if !on(Twin::PoolNoClear) {
                chunk.clear(dirty);
            }
            0
        };
        s.reserved += chunk.len();
        let grow_from = if was_kept { chunk.len() } else { len };
        Ok((chunk, dirty, grow_from))
    }

    // ----- release ---------------------------------------------------------------

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
            self.closed.store(true, Ordering::Release);
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
        if s.bridged && !dropping {
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
            self.id.store(next_arena_id(), Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::{Chunk, LIVE, Rec, Where};

    #[test]
    fn a_chunk_zeroed_ahead_goes_back_with_a_shorter_dirty_prefix() {
        let chunk = Chunk::new(4096, 16).unwrap();
        let base = chunk.addr();
        // Came dirty for 4 KiB; the cursor zeroed ahead from 16 (mark at
        // base + 16) and handed out 32 bytes: 32 bytes are dirty now.
        let mut r = Rec::new(chunk, 4096, Where::Confined);
        assert_eq!(r.dirty, LIVE);
        assert_eq!(r.dirty_prefix(), 4096);
        r.retire(32, base + 16);
        assert_eq!(r.dirty_prefix(), 32);
        // Never zeroed (the mark stayed at the top): still 4 KiB dirty.
        let mut r = Rec::new(Chunk::new(4096, 16).unwrap(), 4096, Where::Confined);
        let top = r.chunk.addr() + 4096;
        r.retire(32, top);
        assert_eq!(r.dirty_prefix(), 4096);
    }
}
