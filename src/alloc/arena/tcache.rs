//! The thread chunk cache: a thread that keeps allocating from one shared
//! arena through `&Arena` stops paying an atomic per allocation.
//!
//! Owns `TCache`, one per thread (a destructor-free thread-local of plain
//! cells): a private chunk of one arena (named by the arena's unique id,
//! which `reset` renews, so a stale cache never matches) and the streak
//! counter. After `knobs::streak()` slot-word bumps in a row into one
//! arena, the thread takes a chunk of its own (4 KiB, doubling up to
//! 256 KiB) and bumps it with plain cells; a thread that alternates between
//! arenas stays on the slot word (no chunk per switch). A hit checks the
//! arena's `closed` flag (Relaxed: a stale `false` hands out one more range
//! in a chunk being recycled, which touches no memory; the one write, the
//! zeroing of dirty recycled bytes, runs in a `Session::enter` window,
//! `zeroing.rs`).
//!
//! May touch: this thread's cache; the arena's chunk records under the
//! lock (`cache_refill`, `drop_thread_cache`); the slot table through
//! `bump_shared`; chunk bytes only through `zeroing.rs`.

use super::state::{Inner, Rec, Slow, Where, layout_error, layout_ok};
use super::zeroing::{zero_entered, zero_locked};
use crate::alloc::chunk::{CHUNK_ALIGN, align_up, bump_in};
use crate::error::{Error, Result};
use crate::session::Session;
use crate::sync::Ordering;
use core::cell::Cell;

/// A thread's private chunk of one shared arena (the arena named by id).
struct TCache {
    arena: Cell<u64>,
    cur: Cell<usize>,
    end: Cell<usize>,
    base: Cell<usize>,
    /// The chunk's clean mark (see `zeroing.rs`).
    clean: Cell<usize>,
    /// The chunk's record in its arena, and its size.
    rec: Cell<usize>,
    size: Cell<usize>,
    /// Consecutive slot-word bumps by this thread into `streak_arena`.
    streak_arena: Cell<u64>,
    streak: Cell<u32>,
}

/// The largest chunk a thread's cache takes.
const CACHE_CHUNK_MAX: usize = 256 << 10;

impl TCache {
    const fn new() -> TCache {
        TCache {
            arena: Cell::new(0),
            cur: Cell::new(1),
            end: Cell::new(0),
            base: Cell::new(0),
            clean: Cell::new(0),
            rec: Cell::new(0),
            size: Cell::new(0),
            streak_arena: Cell::new(0),
            streak: Cell::new(0),
        }
    }

    /// Counts one slot-word bump into arena `id`; true when the streak is
    /// long enough to take a chunk.
    #[inline]
    fn streak(&self, id: u64) -> bool {
        if self.streak_arena.get() != id {
            self.streak_arena.set(id);
            self.streak.set(0);
        }
        let n = self.streak.get().saturating_add(1);
        self.streak.set(n);
        if n >= crate::alloc::knobs::streak() {
            self.streak.set(0);
            true
        } else {
            false
        }
    }
}

#[cfg(not(loom))]
crate::sync::thread_local! {
    static TCACHE: TCache = const { TCache::new() };
}
#[cfg(loom)]
crate::sync::thread_local! {
    static TCACHE: TCache = TCache::new();
}

impl Inner {
    /// A shared arena's `&Arena` bump: this thread's cache if it holds a
    /// chunk of this arena, else the slot word. `Z`: the bytes must be
    /// zero (dirty bytes below the cache's clean mark are zeroed inside an
    /// enter window of `session`, the arena's).
    #[inline(always)]
    pub(super) fn bump_cached<const Z: bool>(
        &self,
        size: usize,
        align: usize,
        session: &Session,
    ) -> Result<usize> {
        if !layout_ok(size, align) {
            return Err(layout_error(size, align));
        }
        let id = self.id.load(Ordering::Relaxed);
        let hit = TCACHE.with(|c| {
            if c.arena.get() != id {
                return None;
            }
            // Relaxed: a stale `false` is harmless (module docs).
            if self.closed.load(Ordering::Relaxed) {
                return Some(Err(Error::Closed));
            }
            let (start, new) = bump_in(c.cur.get(), c.end.get(), size, align)?;
            c.cur.set(new);
            if Z && start < c.clean.get() {
                // `start .. clean` lies ahead of everything this thread
                // handed out, in its private chunk of the arena
                // (cache_refill); a close on another thread could
                // recycle that chunk, hence the enter window.
                if let Err(e) = zero_entered(session, start, c.clean.get()) {
                    return Some(Err(e));
                }
                c.clean.set(start);
            }
            Some(Ok(start))
        });
        match hit {
            Some(r) => r,
            None => self.bump_miss(size, align, id, Z),
        }
    }

    /// The thread's cache is not this arena's (or is full): bump the slot
    /// word, and after a streak of such bumps give this thread a chunk of
    /// its own (so a thread that keeps allocating here stops paying an
    /// atomic per allocation, while one that alternates between arenas
    /// does not grab a chunk per switch).
    #[inline]
    fn bump_miss(&self, size: usize, align: usize, id: u64, zero: bool) -> Result<usize> {
        let mine = TCACHE.with(|c| c.arena.get() == id);
        if (mine || TCACHE.with(|c| c.streak(id)))
            && let Some(r) = self.cache_refill(size, align, id, zero)
        {
            return r;
        }
        match self.bump_shared(size, align) {
            Some(a) => Ok(a),
            None => self.bump_slow(None, size, align, zero),
        }
    }

    /// Gives this thread's cache a new chunk of this arena and bumps in it;
    /// `None` to fall back to the slot word (huge request, limit reached).
    #[cold]
    #[inline(never)]
    fn cache_refill(
        &self,
        size: usize,
        align: usize,
        id: u64,
        zero: bool,
    ) -> Option<Result<usize>> {
        let mut s = self.slow.lock();
        if s.released {
            return Some(Err(Error::Closed));
        }
        let (same, old_rec, old_used, old_clean, old_size) = TCACHE.with(|c| {
            (
                c.arena.get() == id,
                c.rec.get(),
                c.cur.get().saturating_sub(c.base.get()),
                c.clean.get(),
                c.size.get(),
            )
        });
        let want = if same {
            (old_size * 2).min(CACHE_CHUNK_MAX)
        } else {
            super::state::MIN_CHUNK
        };
        let needed = size.checked_add(align.saturating_sub(CHUNK_ALIGN))?;
        if needed > want / 2 {
            return None;
        }
        let (chunk, stale, _) = Self::new_chunk(&mut s, want, CHUNK_ALIGN, false, true).ok()?;
        if same && let Some(r) = s.chunks.get_mut(old_rec) {
            r.retire(old_used, old_clean);
        }
        let base = chunk.addr();
        let end = chunk.end();
        let rec = s.chunks.len();
        s.chunks.push(Rec::new(chunk, stale, Where::Other));
        let start = align_up(base, align)?;
        let clean = if zero {
            // SAFETY: `start .. base + stale` lies in the chunk just given
            // to this thread alone; we hold the lock and the arena is not
            // released, so nothing recycles the chunk meanwhile.
            unsafe { zero_locked(start, base + stale) }
        } else {
            base + stale
        };
        TCACHE.with(|c| {
            c.arena.set(id);
            c.rec.set(rec);
            c.base.set(base);
            c.cur.set(start + size);
            c.end.set(end);
            c.clean.set(clean);
            c.size.set(want);
        });
        Some(Ok(start))
    }

    /// If this thread's chunk cache belongs to this arena, records how much
    /// of its chunk was used (so recycling clears only that) and empties it.
    /// The caller holds the lock (`s`).
    pub(super) fn drop_thread_cache(&self, s: &mut Slow) {
        let id = self.id.load(Ordering::Relaxed);
        if id == 0 {
            return;
        }
        let _ = TCACHE.try_with(|c| {
            if c.arena.get() == id {
                if let Some(r) = s.chunks.get_mut(c.rec.get()) {
                    r.retire(c.cur.get().saturating_sub(c.base.get()), c.clean.get());
                }
                c.arena.set(0);
                c.cur.set(1);
                c.end.set(0);
            }
        });
    }
}
