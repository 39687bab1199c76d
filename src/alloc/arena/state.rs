//! An arena's state: the data every mechanism of the arena works on, at
//! the bottom of the folder (it imports none of its siblings).
//!
//! Owns `Inner` (the lock-free parts: confined cursor cell, slot words,
//! table, flags, holder count) and `Slow` (everything under the spin lock:
//! chunk records, parked chunks, limit, kept chunk), the records (`Rec`: a
//! chunk, how much of it was handed out, how much was dirty when it came,
//! what its cursor asked for), the shared constants and size rules, and
//! the one cold step every refill shares: finding a chunk (`new_chunk`:
//! kept, pooled or fresh). May touch the pool (`pool.rs`) and the chunks
//! (`chunk.rs`). Every write to `Slow` holds the lock, except on a state
//! nobody else can reach (`with_unlocked`, in `spare.rs` and `fresh`).

use crate::alloc::cells::OwnerCell;
use crate::alloc::chunk::{CHUNK_ALIGN, Chunk};
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

/// Entries in the chunk table of a shared arena (chunks double, so 64 is
/// more than any address space can fill; past it, refills fall back to
/// one chunk per allocation).
pub(super) const TABLE: usize = 64;
/// A slot word that no bump accepts (index past the table).
pub(super) const CLOSED_WORD: u64 = u64::MAX;
/// Chunks that may be table chunks (offsets must fit 48 bits).
pub(super) const MAX_TABLE_CHUNK: usize = 1 << 46;

/// "Unknown yet": the chunk is live; its used length is read at release.
pub(super) const LIVE: usize = usize::MAX;

/// The confined cursor: next free address and end of the current chunk,
/// and the chunk's clean mark (bytes below it may be dirty: a zeroing
/// allocation there zeroes its own bytes). `(1, 0)` (nothing fits, not even
/// size 0) means "no chunk".
#[derive(Clone, Copy, Debug)]
pub(super) struct Cursor {
    pub(super) ptr: usize,
    pub(super) end: usize,
    pub(super) clean: usize,
}

pub(super) const NO_CURSOR: Cursor = Cursor {
    ptr: 1,
    end: 0,
    clean: 0,
};

/// A dropped handle's chunk: its record, cursor and clean
/// mark (the base and end are the record's).
#[derive(Debug)]
pub(super) struct Parked {
    pub(super) rec: usize,
    pub(super) cur: usize,
    pub(super) clean: usize,
    /// The thread that parked it: only its next handle resumes it, so each
    /// thread's chunk sizes follow its own history (round after round the
    /// same, so reset loops settle).
    pub(super) thread: u64,
}

/// A table entry: written once (under the lock) before its index is
/// published in a slot word.
pub(super) struct Entry {
    pub(super) base: AtomicUsize,
    pub(super) len: AtomicUsize,
}

impl Entry {
    pub(super) fn new() -> Entry {
        Entry {
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
        }
    }
}

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
    /// What its cursor's next chunk grows from (`next_chunk_size`): the
    /// length got (`new_chunk`), `MIN_CHUNK` for a standby chunk.
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
    pub(super) parked: Vec<Parked>,
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

    /// A chunk of at least `len` bytes and how much of its prefix may be
    /// dirty: the chunk kept by the last reset, else one from the pool, else
    /// a fresh one. `lazy`: the taker zeroes on demand below its clean mark;
    /// otherwise the chunk is cleared now (and the dirty length is 0).
    /// Honours the limit (for non-exact requests, a smaller chunk that still
    /// fits is tried before giving up). The third value is what the
    /// cursor's next chunk grows from: the length got. (Growing from the
    /// length asked instead, so that a pooled chunk of up to 4x the ask
    /// does not compound, made two threads' reset loops allocate from the
    /// system again in about one run of 20: not done.)
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
        let grow_from = chunk.len();
        Ok((chunk, dirty, grow_from))
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
