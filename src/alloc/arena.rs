//! The arena: a bump allocator tied to a session, shared by threads.
//!
//! # Fast paths
//!
//! * **Confined session** — one cursor in an [`OwnerCell`]: an owner check
//!   (one thread-local load) and a plain bump. No atomics.
//! * **Shared session** (`&Arena` from many threads) — a few cache-padded
//!   *slots*, one per core; a thread bumps in slot `thread_id % slots` with
//!   one compare-and-swap on the slot word, so two threads do not share a
//!   hot cache line. The slot word packs `chunk index (16 bits) | offset
//!   (48 bits)`; the chunk's base and length are in a write-once table,
//!   published (Release store of a word naming the index) before any bumper
//!   can read them (Acquire load of the word). Because the index and the
//!   offset are one word, a bumper can never combine a new cursor with an
//!   old chunk end (no ABA: offsets only grow and indices are never reused
//!   while the arena is open).
//! * **Shared session, a thread that keeps allocating** — after 64 slot-word
//!   bumps in a row into one arena, the thread takes a small chunk of its
//!   own (4 KiB, doubling up to 256 KiB) into a thread-local cache keyed by
//!   the arena's unique id, and bumps it with plain `Cell`s: no atomic per
//!   allocation. A thread that alternates between arenas stays on the slot
//!   word (no chunk per switch). `reset` gives the arena a new id, so stale
//!   caches never match; a cache of a closed arena fails on the `closed`
//!   flag, like a `LocalArena`.
//! * **Per-thread handle** ([`Arena::local`]) — a [`LocalArena`] bumps plain
//!   `Cell`s in a chunk it took from the arena: no atomic read-modify-write.
//!
//! Refills (a new chunk), huge allocations (their own chunk), limits and
//! statistics are the cold slow path, serialised by one lock (a spin lock,
//! `spin.rs`: uncontended, it costs one atomic read-modify-write where a
//! parking mutex costs two).
//!
//! # Opening and closing cheaply
//!
//! A confined session's first arena (made on its owner thread) uses a
//! state embedded in the session core (`Core::arena`): it lives as long as
//! the core, which the arena keeps alive through its session handle, so
//! neither the arena nor its close action (`Action::Embedded`, run in LIFO
//! order like any other) holds an `Arc`; the recycled core cleans the state
//! for the next session. Any other arena's close action is its state itself
//! (`session::state::Action::Arena`: one `Arc` clone, no boxed closure).
//! A dropped arena's state goes to a per-thread spare list when its strong
//! count is 1 (no `Weak` is ever made, so the count cannot grow; an Acquire
//! fence orders the close action's last use before the reuse), and the next
//! arena of the same kind on that thread takes it. A new confined arena,
//! while its state is still unshared, takes a small chunk from the thread's
//! pool cache (clearing only the prefix its last user dirtied) and starts
//! its cursor there: no lock on the first allocation.
//!
//! # Zeroed memory without a bulk memset
//!
//! Fresh chunks are all-zero. A recycled chunk (from the pool, or the one a
//! `reset` keeps) comes with its dirty prefix: the table chunks of a shared
//! arena (bumped by many threads) are cleared when taken; the single-owner
//! cursors (a confined arena's cursor, a `LocalArena`, a thread's chunk
//! cache) keep a *clean mark* instead. The first `allocate` that lands below
//! the mark zeroes everything dirty ahead of it in one memset (never more
//! than the chunk's previous user dirtied) and drops the mark; an
//! `allocate_uninit` never zeroes: recycled bytes are handed out as they are
//! (always initialised: chunks start zeroed and are only ever written with
//! initialised bytes). A chunk only ever used through `allocate_uninit` is
//! never cleared at all.
//!
//! `reset` keeps the largest chunk (dirty) for the next refill, as bumpalo
//! keeps its last chunk: an arena reset in a loop settles on one chunk and
//! stops going through the pool.
//!
//! # Chunk sizes
//!
//! Each cursor (the confined cursor, a slot word, a `LocalArena`, a thread's
//! chunk cache) grows from its own history in the current round: its first
//! chunk asks for `MIN_CHUNK`, and each refill asks for twice the chunk it
//! outgrew (table chunks also double per table entry of the round, by size
//! asked). A chunk handed over larger than asked (the one `reset` kept, a
//! pooled one) makes only its own cursor's next request larger, and a reset
//! starts every cursor over, so sizes do not compound across rounds: with
//! several threads resetting in a loop, the chunks settle and every round
//! is served by the kept chunk and the pool (test
//! `reset_rounds_settle_at_zero_system_allocations_with_1_2_and_4_threads`).
//!
//! # What close can race with
//!
//! The arena registers a close action on its session. When it runs (after
//! the session is marked closed and in-flight plain accesses drained), it
//! takes the lock, marks the arena released, swaps every slot word to
//! `CLOSED` (reading each slot's final offset, so it knows how much of each
//! chunk to clear) and returns the chunks to the pool.
//!
//! * A `&Arena` bump racing it either wins its CAS before the swap (the
//!   allocation succeeded while the arena was open: its segment's accesses
//!   then fail with `Closed`, since they check the session) or fails the CAS,
//!   reloads, sees `CLOSED` and returns [`Error::Closed`]. The bump touches
//!   only the slot word and the table, which live in the arena's state (kept
//!   alive by `&Arena`), never the chunk memory.
//! * A confined arena's cursor lives in its state, and release (under the
//!   lock) resets it to "no chunk": a bump reads no `closed` flag. Only the
//!   owner thread bumps, and while the arena lives only it can close a
//!   confined session (a last-handle close needs the arena's handle gone),
//!   so the reset is sequenced before the next bump, which then falls to
//!   the slow path and gets [`Error::Closed`]. Release, reset and refill
//!   touch the cursor under the lock, on the owner thread or with the arena
//!   held exclusively (`&mut Arena`, its drop), when no bump can run.
//! * A [`LocalArena`] (and a thread's chunk cache) checks a `closed` flag
//!   with a relaxed load per allocation. A stale `false` can hand out one
//!   more range in a chunk that is being recycled; that is harmless for the
//!   same reason: handing out touches no memory, and the segment belongs to
//!   the closed session. The one write an allocation can make, zeroing
//!   dirty recycled bytes for `allocate`, runs inside a `Session::enter`
//!   window (`zero_entered`): close waits for it before recycling, and once
//!   the session is closed the allocation fails with `Closed` (loom model
//!   `local_handle_zeroing_races_close`, twin `ArenaZeroOutsideEnter`).
//!   Refills zero under the arena's lock, which release also takes.
//! * Segment reads and writes are protected by the session protocol (close
//!   waits for them; later ones fail).
//!
//! If the arena was used through the `allocator-api2` bridge, close does not
//! free the chunks (collections may still point into them, and the bridge
//! promises validity for the arena borrow); they are freed when the arena is
//! dropped. Dropping an arena whose session is still open frees its chunks
//! at once: no segment can outlive the arena borrow.

use super::SegmentAllocator;
use super::cells::{OwnerCell, me};
use super::chunk::{CHUNK_ALIGN, Chunk, align_up, bump_in, carve, zero_ahead};
use super::pool::{self, Pooled};
use super::spin::SpinMutex;
use crate::error::{Error, Result};
use crate::segment::Segment;
use crate::session::{Session, SessionKind};
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, CachePadded, Ordering};
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

/// A cursor's first chunk size; its later ones double (`next_chunk_size`).
#[cfg(not(loom))]
pub(crate) const MIN_CHUNK: usize = 4096;
#[cfg(loom)]
pub(crate) const MIN_CHUNK: usize = 64;

/// Entries in the chunk table of a shared arena (chunks double, so 64 is
/// more than any address space can fill; past it, refills fall back to
/// one chunk per allocation).
const TABLE: usize = 64;
const IDX_SHIFT: u32 = 48;
const OFF_MASK: u64 = (1 << IDX_SHIFT) - 1;
/// A slot word that no bump accepts (index past the table).
const CLOSED_WORD: u64 = u64::MAX;
/// Chunks that may be table chunks (offsets must fit 48 bits).
const MAX_TABLE_CHUNK: usize = 1 << 46;

/// "Unknown yet": the chunk is live; its used length is read at release.
const LIVE: usize = usize::MAX;

#[inline(always)]
fn word(idx: usize, off: usize) -> u64 {
    ((idx as u64) << IDX_SHIFT) | off as u64
}

/// The confined cursor: next free address and end of the current chunk,
/// and the chunk's clean mark (bytes below it may be dirty: a zeroing
/// allocation there zeroes its own bytes). `(1, 0)` (nothing fits, not even
/// size 0) means "no chunk".
#[derive(Clone, Copy, Debug)]
struct Cursor {
    ptr: usize,
    end: usize,
    clean: usize,
}

const NO_CURSOR: Cursor = Cursor {
    ptr: 1,
    end: 0,
    clean: 0,
};

#[derive(Debug)]
enum Where {
    /// In the shared chunk table at this index.
    Table(usize),
    /// The confined cursor's chunk.
    Confined,
    /// Handed to a LocalArena, or a huge allocation's own chunk.
    Other,
    /// A confined arena's unused first chunk, detached from the cursor by
    /// `set_allocation_limit`: held until release, counted nowhere.
    Spare,
}

#[derive(Debug)]
struct Rec {
    chunk: Chunk,
    /// Length of the prefix handed out, or `LIVE`.
    dirty: usize,
    /// Length of the prefix that was already dirty when the chunk came to
    /// this arena (recycled and not cleared: the cursor zeroes on demand).
    stale: usize,
    at: Where,
}

impl Rec {
    fn new(chunk: Chunk, stale: usize, at: Where) -> Rec {
        Rec {
            chunk,
            dirty: LIVE,
            stale,
            at,
        }
    }

    /// A cursor is done with the chunk: it handed out `used` bytes, and its
    /// clean mark stood at `clean` (lower than where it started if a zeroing
    /// allocation zeroed the dirty bytes ahead: those are zero again, so the
    /// chunk goes back to the pool with a shorter dirty prefix).
    fn retire(&mut self, used: usize, clean: usize) {
        self.dirty = used;
        self.stale = self.stale.min(clean.saturating_sub(self.chunk.addr()));
    }

    /// How many leading bytes may be non-zero.
    fn dirty_prefix(&self) -> usize {
        let used = if self.dirty == LIVE {
            self.chunk.len()
        } else {
            self.dirty
        };
        used.max(self.stale)
    }
}

#[derive(Debug)]
struct Slow {
    chunks: Vec<Rec>,
    /// Next free table index (0 is "no chunk").
    table_len: usize,
    /// Index in `chunks` of the confined cursor's chunk.
    confined_rec: Option<usize>,
    limit: Option<usize>,
    reserved: usize,
    /// Used bytes of retired chunks (for `allocated_bytes`).
    released: bool,
    /// The allocator-api2 bridge was used: close keeps the chunks.
    bridged: bool,
    /// The largest chunk of the last `reset`, kept (dirty) for the next
    /// refill, as bumpalo keeps its last chunk: a reset arena reuses one
    /// chunk without a trip through the pool or a bulk clear.
    kept: Option<Pooled>,
}

/// A chunk handed to a LocalArena: its record, base, cursor and end.
struct LocalChunk {
    rec: usize,
    base: usize,
    cur: usize,
    end: usize,
    clean: usize,
}

struct Entry {
    base: AtomicUsize,
    len: AtomicUsize,
}

/// A thread's private chunk of one shared arena (the arena named by id):
/// plain cells in a destructor-free thread-local, no atomics.
struct TCache {
    arena: Cell<u64>,
    cur: Cell<usize>,
    end: Cell<usize>,
    base: Cell<usize>,
    /// The chunk's clean mark (see `Cursor`).
    clean: Cell<usize>,
    /// The chunk's record in its arena, and its size.
    rec: Cell<usize>,
    size: Cell<usize>,
    /// Consecutive slot-word bumps by this thread into `streak_arena`.
    streak_arena: Cell<u64>,
    streak: Cell<u32>,
}

/// Slot-word bumps in a row (same thread, same arena) before the thread gets
/// a chunk of its own. Never under loom: the models check the slot word.
#[cfg(not(loom))]
const STREAK: u32 = 64;
#[cfg(loom)]
const STREAK: u32 = u32::MAX;
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
        if n >= STREAK {
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

// Spare arena states of this thread: a closed and dropped arena's state
// (slots, table, lock, chunk list capacity) is reused by the next
// `Arena::new` on this thread, saving its allocations.
#[cfg(not(loom))]
crate::sync::thread_local! {
    static SPARE: core::cell::RefCell<Vec<Arc<Inner>>> = const { core::cell::RefCell::new(Vec::new()) };
}
#[cfg(not(loom))]
const SPARE_CAP: usize = 4;

/// A spare state for a new arena of `kind`, owned by `owner`.
#[cfg(not(loom))]
fn spare_take(kind: SessionKind, owner: u64) -> Option<(Arc<Inner>, Cursor)> {
    let confined = kind == SessionKind::Confined;
    let inner = SPARE
        .try_with(|v| {
            let mut v = v.borrow_mut();
            let i = v.iter().rposition(|i| i.confined == confined)?;
            Some(v.swap_remove(i))
        })
        .ok()
        .flatten()?;
    // No `Arc::get_mut` (a read-modify-write): a spare state is unique by
    // construction (`spare_give` keeps only unique ones, and nothing clones
    // out of the spare list), so plain stores through `&` suffice.
    let cur = if confined {
        inner.cur.set_owner(owner);
        // SAFETY: `inner` is the only reference to this state (above).
        unsafe { inner.attach_standby() }
    } else {
        inner.id.store(next_arena_id(), Ordering::Relaxed);
        NO_CURSOR
    };
    Some((inner, cur))
}

#[cfg(loom)]
fn spare_take(_kind: SessionKind, _owner: u64) -> Option<(Arc<Inner>, Cursor)> {
    None
}

/// Keeps `inner` for reuse if nothing else refers to it (its session's
/// close action ran and was dropped) and the spare list has room.
#[cfg(not(loom))]
fn spare_give(inner: Arc<Inner>) {
    // Unique without `Arc::get_mut`'s read-modify-write: no `Weak<Inner>` is
    // ever made, so a strong count of 1 (ours) cannot grow behind our back;
    // the Acquire fence pairs with the Release decrement of the other
    // holder's drop (the close action), ordering its uses before ours.
    if Arc::strong_count(&inner) != 1 {
        return;
    }
    crate::sync::fence(Ordering::Acquire);
    // SAFETY: the only reference (above).
    if !unsafe { inner.clean() } {
        return;
    }
    let _ = SPARE.try_with(|v| {
        let mut v = v.borrow_mut();
        if v.len() < SPARE_CAP {
            v.push(inner);
        }
    });
}

#[cfg(loom)]
fn spare_give(_inner: Arc<Inner>) {}

/// Frees this thread's spare arena states (`trim_pool`).
pub(crate) fn trim_spares() {
    #[cfg(not(loom))]
    {
        let v = SPARE
            .try_with(|v| core::mem::take(&mut *v.borrow_mut()))
            .unwrap_or_default();
        drop(v);
    }
}

/// A chunk leaving an arena that was used through the `allocator-api2`
/// bridge: a collection may have written uninitialised bytes (padding, a
/// `MaybeUninit`) anywhere in its dirty prefix, and the next user's
/// `allocate_uninit` hands dirty bytes out as they are, so the prefix is
/// zeroed now (only for chunks the pool keeps). Returns the chunk and its
/// dirty length.
fn scrub_bridged(mut chunk: Chunk, dirty: usize, bridged: bool) -> (Chunk, usize) {
    if bridged && dirty != 0 && chunk.len() <= pool::POOL_MAX_CHUNK {
        chunk.clear(dirty);
        return (chunk, 0);
    }
    (chunk, dirty)
}

/// The size of a cursor's next chunk: twice the chunk it outgrew (`prev`),
/// or `MIN_CHUNK` for its first chunk of the round. Growth follows each
/// cursor's own history in this round only: a chunk handed over bigger than
/// asked (the one a `reset` kept, a pooled one) does not make the *next*
/// cursor's request bigger, so sizes do not compound across `reset`s (with
/// an arena-wide doubling, two threads resetting in a loop doubled their
/// chunks every round, past the pool's limit).
#[inline]
fn next_chunk_size(prev: Option<usize>) -> usize {
    match prev {
        Some(len) => len.saturating_mul(2).clamp(MIN_CHUNK, MAX_TABLE_CHUNK),
        None => MIN_CHUNK,
    }
}

/// A process-unique arena id (never 0, never reused).
fn next_arena_id() -> u64 {
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

pub(crate) struct Inner {
    /// A confined arena's state (never changes for a state, recycled or not).
    confined: bool,
    /// Confined arenas: the cursor and its owner thread. Bumped without a
    /// lock by the owner thread only (`OwnerCell::with`); everything else
    /// (refill, release, reset) touches it under `slow`, and only on the
    /// owner thread or with the arena held exclusively (`&mut Arena`, its
    /// drop, or the session's last handle gone), when no bump can run.
    /// Release sets it to `NO_CURSOR`, so a bump after close falls to the
    /// slow path (which returns `Closed`): the fast path reads no flag.
    /// Shared arenas: owner 0 (never a thread id), unused.
    cur: OwnerCell<Cursor>,
    /// Shared arenas: the slot words. Confined: empty.
    slots: Box<[CachePadded<AtomicU64>]>,
    /// Shared arenas: chunk index -> (base, len), written once before
    /// publication. Confined: empty.
    table: Box<[Entry]>,
    /// Set (under `slow`) when the arena is released; read by LocalArena.
    closed: AtomicBool,
    /// Shared arenas: a process-unique id naming this arena (and epoch:
    /// `reset` takes a new one) in the threads' chunk caches.
    id: AtomicU64,
    /// Mirrors `Slow::bridged` for a lock-free check (set under `slow`).
    bridged: AtomicBool,
    slow: SpinMutex<Slow>,
}

#[cfg(not(loom))]
fn slot_count() -> usize {
    crate::sync::per_core_slots()
}

/// One slot under loom, so the models' threads race on the same word (the
/// compare-and-swap is what they check).
#[cfg(loom)]
fn slot_count() -> usize {
    1
}

#[cold]
#[inline(never)]
pub(super) fn layout_error(size: usize, align: usize) -> Error {
    match super::check_layout(size, align) {
        Err(e) => e,
        Ok(()) => Error::OutOfMemory { size, align },
    }
}

#[cold]
fn oom(size: usize, align: usize) -> Error {
    Error::OutOfMemory { size, align }
}

/// The layout check every fast path starts with (free when inlined with
/// constant arguments).
#[inline(always)]
fn layout_ok(size: usize, align: usize) -> bool {
    align.is_power_of_two() && size <= isize::MAX as usize - (align - 1)
}

/// Zeroes the dirty bytes `start .. clean` ahead of a shared-arena cursor
/// (a `LocalArena`, a thread's chunk cache) inside a plain-access window of
/// the arena's session: close marks the session closed and waits for such
/// windows before its action recycles the chunks, so the memset never
/// writes into a chunk that is already someone else's; once the session is
/// closed the allocation fails with [`Error::Closed`] instead.
#[cold]
#[inline(never)]
fn zero_entered(session: &Session, start: usize, clean: usize) -> Result<()> {
    let core = session.core();
    let window = if crate::session::state::twin_on("ArenaZeroOutsideEnter") {
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

impl Inner {
    fn new(kind: SessionKind, owner: u64) -> Inner {
        let confined = kind == SessionKind::Confined;
        Inner {
            confined,
            cur: OwnerCell::new(if confined { owner } else { 0 }, NO_CURSOR),
            slots: if confined {
                Box::new([])
            } else {
                (0..slot_count())
                    .map(|_| CachePadded::new(AtomicU64::new(0)))
                    .collect()
            },
            table: if confined {
                Box::new([])
            } else {
                (0..TABLE)
                    .map(|_| Entry {
                        base: AtomicUsize::new(0),
                        len: AtomicUsize::new(0),
                    })
                    .collect()
            },
            closed: AtomicBool::new(false),
            id: AtomicU64::new(if confined { 0 } else { next_arena_id() }),
            bridged: AtomicBool::new(false),
            slow: SpinMutex::new(Slow {
                chunks: Vec::new(),
                table_len: 1,
                confined_rec: None,
                limit: None,
                reserved: 0,
                released: false,
                bridged: false,
                kept: None,
            }),
        }
    }

    /// A confined arena's first chunk, taken from this thread's pool while
    /// the state is still unshared (no lock), so that a new arena's first
    /// allocation is a plain bump. Counted in `reserved` (the limit sees
    /// it) but reported by the statistics only once the cursor moved.
    /// `NO_CURSOR` if the pool has no small chunk (the first allocation
    /// then takes the slow path, as before).
    ///
    /// # Safety
    ///
    /// The caller holds the only reference to this state.
    #[cfg(not(loom))]
    unsafe fn attach_standby(&self) -> Cursor {
        // SAFETY: unique (the caller's contract): nobody else reaches `slow`.
        unsafe {
            self.slow
                .with_unlocked(|s| Inner::attach_standby_in(self.confined, s))
        }
    }

    #[cfg(not(loom))]
    #[inline(always)]
    fn attach_standby_in(confined: bool, s: &mut Slow) -> Cursor {
        if !confined || !s.chunks.is_empty() || s.limit.is_some() {
            return NO_CURSOR;
        }
        let Some(Pooled { chunk, dirty }) = pool::take_local(MIN_CHUNK, CHUNK_ALIGN) else {
            return NO_CURSOR;
        };
        let cur = Cursor {
            ptr: chunk.addr(),
            end: chunk.end(),
            clean: chunk.addr() + dirty.min(chunk.len()),
        };
        s.reserved += chunk.len();
        s.confined_rec = Some(s.chunks.len());
        s.chunks.push(Rec::new(chunk, dirty, Where::Confined));
        cur
    }

    /// The session closed: every chunk goes back to the pool (the close
    /// action an arena registers on its session, see `session::state::Action`).
    pub(crate) fn on_close(&self) {
        self.release(false);
    }

    /// A confined state to embed in a session core (owner set when an arena
    /// claims it: `prepare_embedded`). Allocates nothing.
    pub(crate) fn embedded() -> Inner {
        Inner::new(SessionKind::Confined, 0)
    }

    /// Readies a clean embedded state for the arena that just claimed it
    /// (`Core::claim_arena`) on thread `owner`: owner, and a standby first
    /// chunk from the thread's pool as in `spare_take`.
    ///
    /// # Safety
    ///
    /// The caller holds the only reference to this state (it just claimed
    /// it, and has not handed the arena out yet).
    unsafe fn prepare_embedded(&self, owner: u64) {
        self.cur.set_owner(owner);
        // All inline, so the cursor goes to the cell from registers (a
        // returned `Cursor` copied out of memory costs a store-forwarding
        // stall here).
        #[cfg(not(loom))]
        // SAFETY: unique (the caller's contract): nobody else reaches `slow`
        // or is inside the cursor cell.
        unsafe {
            self.slow.with_unlocked(|s| {
                let c = Inner::attach_standby_in(true, s);
                if c.end != 0 {
                    self.cur.with_unchecked(|p| *p = c);
                }
            })
        }
    }

    /// Resets a released, unshared state to "new" (keeping allocations);
    /// false if it cannot be reused.
    ///
    /// # Safety
    ///
    /// The caller holds the only reference to this state.
    pub(crate) unsafe fn clean(&self) -> bool {
        // SAFETY: unique (the caller's contract): nobody else reaches `slow`.
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

    // ----- fast paths --------------------------------------------------------

    /// Bumps `size` bytes aligned to `align`; returns the start address.
    /// `Z`: the bytes must be zero (dirty bytes below the chunk's clean mark
    /// are zeroed inside an enter window of `session`, the arena's).
    #[inline(always)]
    fn bump<const Z: bool>(&self, size: usize, align: usize, session: &Session) -> Result<usize> {
        if !layout_ok(size, align) {
            return Err(layout_error(size, align));
        }
        {
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
            MIN_CHUNK
        };
        let needed = size.checked_add(align.saturating_sub(CHUNK_ALIGN))?;
        if needed > want / 2 {
            return None;
        }
        let (chunk, stale) = Self::new_chunk(&mut s, want, CHUNK_ALIGN, false, true).ok()?;
        if same && let Some(r) = s.chunks.get_mut(old_rec) {
            r.retire(old_used, old_clean);
        }
        let base = chunk.addr();
        let end = chunk.end();
        let clean = base + stale;
        let rec = s.chunks.len();
        s.chunks.push(Rec::new(chunk, stale, Where::Other));
        let start = align_up(base, align)?;
        let clean = if zero {
            // SAFETY: `start .. clean` lies in the chunk just given to this
            // thread alone; we hold the lock and the arena is not released,
            // so nothing recycles the chunk meanwhile.
            unsafe { zero_ahead(start, clean) }
        } else {
            clean
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

    #[inline(always)]
    fn slot(&self) -> &AtomicU64 {
        &self.slots[(me() as usize) & (self.slots.len() - 1)]
    }

    /// One CAS on this thread's slot; `None` when the chunk is full, the
    /// slot is empty or the arena closed.
    #[inline(always)]
    fn bump_shared(&self, size: usize, align: usize) -> Option<usize> {
        let slot = self.slot();
        // Acquire: pairs with the Release that published the word's chunk
        // index (refill), so the table entry below is the one written for it.
        let mut w = if crate::session::state::twin_on("ArenaRelaxedSlotLoad") {
            slot.load(Ordering::Relaxed)
        } else {
            slot.load(Ordering::Acquire)
        };
        loop {
            let (start, new) = self.fit(w, size, align)?;
            if crate::session::state::twin_on("ArenaLoadStoreBump") {
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
        let idx = (w >> IDX_SHIFT) as usize;
        if idx == 0 || idx >= TABLE {
            return None;
        }
        let e = &self.table[idx];
        let base = e.base.load(Ordering::Relaxed);
        let len = e.len.load(Ordering::Relaxed);
        let off = (w & OFF_MASK) as usize;
        let start = align_up(base.checked_add(off)?, align)?;
        let new_off = (start - base).checked_add(size)?;
        if new_off > len {
            return None;
        }
        Some((start, word(idx, new_off)))
    }

    // ----- slow path -----------------------------------------------------------

    #[cold]
    #[inline(never)]
    fn bump_slow(
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
            Some(_) => s.confined_rec.map(|r| s.chunks[r].chunk.len()),
            None => {
                // Relaxed: slot words and table entries change only under
                // `slow`, which we hold.
                let idx = (self.slot().load(Ordering::Relaxed) >> IDX_SHIFT) as usize;
                (idx != 0 && idx < TABLE).then(|| self.table[idx].len.load(Ordering::Relaxed))
            }
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
            let (chunk, _) =
                Self::new_chunk(&mut s, size, align, true, false).map_err(|_| oom(size, align))?;
            let a = chunk.addr();
            s.chunks.push(Rec::new(chunk, 0, Where::Other));
            return Ok(a);
        }
        // The confined cursor zeroes on demand; the table's chunks are
        // bumped by many threads at once, so they are cleared now.
        let (chunk, stale) =
            Self::new_chunk(&mut s, want.max(needed), CHUNK_ALIGN, false, cur.is_some())
                .map_err(|_| oom(size, align))?;
        let base = chunk.addr();
        let len = chunk.len();
        let start = align_up(base, align).ok_or(Error::OutOfMemory { size, align })?;
        let used = start - base + size;
        debug_assert!(used <= len, "chunk of {len} B too small for {used} B");
        if let Some(cur) = cur {
            // Retire the confined chunk and install the new one.
            let rec = s.chunks.len();
            let clean = if zero {
                // SAFETY: `start .. base + stale` lies in the chunk being
                // installed as this owner thread's cursor chunk, handed out
                // to nobody; we hold the lock and the arena is not released.
                unsafe { zero_ahead(start, base + stale) }
            } else {
                base + stale
            };
            let old = cur.with(|c| {
                let old = *c;
                *c = Cursor {
                    ptr: start + size,
                    end: base + len,
                    clean,
                };
                old
            })?;
            if let Some(r) = s.confined_rec.replace(rec) {
                let b = s.chunks[r].chunk.addr();
                s.chunks[r].retire(old.ptr.saturating_sub(b), old.clean);
            }
            s.chunks.push(Rec::new(chunk, stale, Where::Confined));
        } else {
            let idx = s.table_len;
            s.table_len += 1;
            let e = &self.table[idx];
            e.base.store(base, Ordering::Relaxed);
            e.len.store(len, Ordering::Relaxed);
            s.chunks.push(Rec::new(chunk, stale, Where::Table(idx)));
            // Release: publishes the table entry written above to every
            // bumper that loads this word (or a later one) with Acquire.
            let old = self.slot().swap(word(idx, used), Ordering::AcqRel);
            Self::retire(&mut s, old);
        }
        Ok(start)
    }

    /// If this thread's chunk cache belongs to this arena, records how much
    /// of its chunk was used (so recycling clears only that) and empties it.
    fn drop_thread_cache(&self, s: &mut Slow) {
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

    /// Records how much of the chunk named by an old slot word was used.
    fn retire(s: &mut Slow, old: u64) {
        let idx = (old >> IDX_SHIFT) as usize;
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

    /// A chunk of at least `len` bytes and how much of its prefix may be
    /// dirty: the chunk kept by the last reset, else one from the pool, else
    /// a fresh one. `lazy`: the taker zeroes on demand below its clean mark;
    /// otherwise the chunk is cleared now (and the dirty length is 0).
    /// Honours the limit (for non-exact requests, a smaller chunk that still
    /// fits is tried before giving up).
    fn new_chunk(
        s: &mut Slow,
        len: usize,
        align: usize,
        exact: bool,
        lazy: bool,
    ) -> Result<(Chunk, usize)> {
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
            if !crate::session::state::twin_on("PoolNoClear") {
                chunk.clear(dirty);
            }
            0
        };
        s.reserved += chunk.len();
        Ok((chunk, dirty))
    }

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
        let want = next_chunk_size(old.map(|(rec, _, _)| s.chunks[rec].chunk.len()));
        if needed > want / 2 {
            let (chunk, _) =
                Self::new_chunk(&mut s, size, align, true, false).map_err(|_| oom(size, align))?;
            let a = chunk.addr();
            s.chunks.push(Rec::new(chunk, 0, Where::Other));
            return Ok((a, None));
        }
        if let Some((rec, used, clean)) = old {
            s.chunks[rec].retire(used, clean);
        }
        let (chunk, stale) = Self::new_chunk(&mut s, want, CHUNK_ALIGN, false, true)
            .map_err(|_| oom(size, align))?;
        let base = chunk.addr();
        let end = chunk.end();
        let clean = base + stale;
        let rec = s.chunks.len();
        s.chunks.push(Rec::new(chunk, stale, Where::Other));
        let start = align_up(base, align).ok_or(Error::OutOfMemory { size, align })?;
        let clean = if zero {
            // SAFETY: `start .. clean` lies in the chunk just given to the
            // calling handle alone; we hold the lock and the arena is not
            // released, so nothing recycles the chunk meanwhile.
            unsafe { zero_ahead(start, clean) }
        } else {
            clean
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

    /// A LocalArena is done with its chunk: record how much it used.
    fn local_done(&self, rec: usize, used: usize, clean: usize) {
        let mut s = self.slow.lock();
        if !s.released
            && let Some(r) = s.chunks.get_mut(rec)
        {
            r.retire(used, clean);
        }
    }

    // ----- release ---------------------------------------------------------------

    /// Marks the arena closed and (unless the bridge was used and `dropping`
    /// is false) returns every chunk to the pool. Idempotent.
    fn release(&self, dropping: bool) {
        if crate::session::state::twin_on("ArenaCursorOutsideLock") && self.confined {
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
            let word = if crate::session::state::twin_on("ArenaNoCloseMark") {
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
            for slot in self.slots.iter() {
                let old = slot.swap(word, Ordering::AcqRel);
                Self::retire(s, old);
            }
        }
        if self.confined {
            // SAFETY: no bump is inside the cell (this function's contract);
            // the other writers hold `slow`, which our caller holds.
            let c = unsafe {
                self.cur
                    .with_unchecked(|c| core::mem::replace(c, NO_CURSOR))
            };
            Self::retire_cursor(s, c);
        }
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

    /// Gives every chunk back to the pool, except the one kept by `reset`.
    fn return_chunks_but_kept(s: &mut Slow) {
        let kept = s.kept.take();
        Self::return_chunks(s);
        s.kept = kept;
    }

    /// Records how much of the confined cursor's chunk was used (the cursor
    /// `c` stood there) and forgets which chunk it was.
    fn retire_cursor(s: &mut Slow, c: Cursor) {
        if let Some(r) = s.confined_rec.take() {
            let rec = &mut s.chunks[r];
            let (base, end) = (rec.chunk.addr(), rec.chunk.end());
            if c.ptr >= base && c.ptr <= end {
                rec.retire(c.ptr - base, c.clean);
            } else {
                rec.dirty = LIVE;
            }
        }
    }

    /// `reset`: every allocation is gone; chunks go back to the pool.
    /// The caller holds the arena exclusively (`&mut Arena`).
    fn reset(&self) {
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
        Self::return_chunks_but_kept(&mut s);
        // Every chunk the bridge may have written into is scrubbed, and no
        // collection can still point into the arena (`&mut Arena`): the
        // next round starts unbridged (close frees its chunks again).
        s.bridged = false;
        self.bridged.store(false, Ordering::Relaxed);
    }

    /// `(allocated, reserved, chunks)`; `confined_used`: a confined arena's
    /// cursor, when the caller could read it.
    fn stats(&self, confined_used: Option<usize>) -> (usize, usize, usize) {
        let s = self.slow.lock();
        let mut used = 0usize;
        let (mut hidden, mut hidden_bytes) = (0usize, 0usize);
        for r in &s.chunks {
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
                    Where::Table(i) => self
                        .slots
                        .iter()
                        .map(|sl| sl.load(Ordering::Acquire))
                        .find(|w| (w >> IDX_SHIFT) as usize == i)
                        .map_or(r.chunk.len(), |w| (w & OFF_MASK) as usize),
                    Where::Confined => {
                        confined_used.map_or(r.chunk.len(), |p| p.saturating_sub(r.chunk.addr()))
                    }
                    Where::Other => r.chunk.len(),
                    Where::Spare => 0,
                }
            };
        }
        (used, s.reserved - hidden_bytes, s.chunks.len() - hidden)
    }
}

/// A bump allocator whose memory is freed, all at once, when its session
/// closes. `Send + Sync`: many threads may allocate from one `&Arena` (no
/// lock on the fast path); [`Arena::local`] gives a thread an even cheaper
/// handle. `allocate` zeroes (fresh chunks are zero already; recycled bytes
/// are zeroed in one memset when the first zeroing allocation reaches
/// them), `allocate_uninit` hands recycled bytes out as they are, and
/// allocations carry no header.
///
/// Zero-size requests succeed with an empty segment whose address is the
/// alignment (no memory is used).
///
/// # Examples
///
/// ```
/// use memscope::alloc::{Arena, SegmentAllocator};
/// use memscope::Error;
///
/// let arena = Arena::shared();
/// std::thread::scope(|s| {
///     for t in 0..2u64 {
///         let arena = &arena;
///         s.spawn(move || {
///             let mut seg = arena.allocate(8, 8).unwrap();
///             seg.set(0, t).unwrap();
///         });
///     }
/// });
/// let seg = arena.allocate(16, 8)?;
/// assert_eq!(seg.get::<u64>(8)?, 0); // zeroed
/// drop(seg);
/// arena.close()?;
/// assert_eq!(arena.allocate(16, 8).unwrap_err(), Error::Closed);
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct Arena {
    session: Session,
    /// The arena's own state, or `None`: the state embedded in the session's
    /// core (`Core::arena`, claimed by this arena), kept alive by `session`.
    /// `drop` takes an own state (to recycle it).
    inner: Option<Arc<Inner>>,
    /// The registration of an own state's close action, withdrawn by `drop`
    /// (so a long-lived session does not keep one action per dropped arena).
    key: Option<crate::session::actions::ActionKey>,
    /// Set once an owned segment was handed out (`allocate_owned`): owned
    /// segments hold session handles, not borrows of the arena, so `drop`
    /// and `reset` must leave the chunks to the session's close.
    owned: AtomicBool,
}

impl Arena {
    /// An arena whose memory belongs to `session` (freed when it closes).
    /// An arena on a confined session is only usable from its owner thread
    /// and has an atomic-free fast path.
    ///
    /// # Errors
    ///
    /// [`Error::WrongThread`] for a confined session from another thread
    /// than its owner (the arena could not register the close action that
    /// frees its memory); [`Error::Closed`] if the session is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session, alloc::{Arena, SegmentAllocator}};
    /// let session = Session::shared();
    /// let arena = Arena::new(session.clone())?;
    /// let seg = arena.allocate(4, 4)?;
    /// assert_eq!(seg.session(), &session);
    ///
    /// let confined = Session::confined();
    /// let other = confined.clone();
    /// let r = std::thread::spawn(move || Arena::new(other).map(drop)).join().unwrap();
    /// assert!(matches!(r, Err(Error::WrongThread { .. })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn new(session: Session) -> Result<Arena> {
        let (arena, registered) = Arena::open(session);
        // On an error the arena (dropped here) frees what it took.
        registered.map(|()| arena)
    }

    /// The arena, and whether its close action is registered on the session
    /// (`Err(Closed)`: the session was closed and the action ran at once;
    /// `Err(WrongThread)`: not registered).
    fn open(session: Session) -> (Arena, Result<()>) {
        let kind = session.kind();
        let owner = session.owner().unwrap_or(0);
        // A confined session's first arena (on its owner thread) uses the
        // state embedded in the session core: no `Arc`, and a close action
        // without one.
        if let Some(inner) = session.core().claim_arena() {
            // SAFETY: just claimed: no other arena is given this state while
            // the core lives, and this one is not handed out yet.
            unsafe { inner.prepare_embedded(owner) };
            let arena = Arena {
                session,
                inner: None,
                key: None,
                owned: AtomicBool::new(false),
            };
            return (arena, Ok(()));
        }
        let (inner, cursor) = spare_take(kind, owner).unwrap_or_else(|| {
            #[cfg(not(loom))]
            let mut i = Inner::new(kind, owner);
            #[cfg(not(loom))]
            let c = Inner::attach_standby_in(i.confined, i.slow.get_mut());
            #[cfg(loom)]
            let i = Inner::new(kind, owner);
            #[cfg(loom)]
            let c = NO_CURSOR;
            (Arc::new(i), c)
        });
        // No boxed closure: the action is the state itself (one Arc clone).
        if cursor.end != 0 {
            // SAFETY: not shared yet (the clone below is made after): nobody
            // else is inside the cell.
            unsafe { inner.cur.with_unchecked(|c| *c = cursor) };
        }
        let registered = session
            .core()
            .add_close_action_keyed(crate::session::state::Action::Arena(inner.clone()));
        let (key, registered) = match registered {
            Ok(k) => (Some(k), Ok(())),
            Err(e) => (None, Err(e)),
        };
        let arena = Arena {
            session,
            inner: Some(inner),
            key,
            owned: AtomicBool::new(false),
        };
        (arena, registered)
    }

    /// An arena with its own new shared session.
    ///
    /// # Examples
    ///
    /// ```
    /// let arena = memscope::alloc::Arena::shared();
    /// assert_eq!(arena.session().kind(), memscope::SessionKind::Shared);
    /// ```
    #[doc(alias = "ofShared")]
    pub fn shared() -> Arena {
        // A new session of this thread: registration cannot fail.
        Arena::open(Session::shared()).0
    }

    /// An arena with its own new confined session (this thread only).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let arena = Arena::confined();
    /// let arena2 = &arena;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert!(arena2.allocate(8, 8).is_err())); // WrongThread
    /// });
    /// assert!(arena.allocate(8, 8).is_ok());
    /// ```
    #[doc(alias = "ofConfined")]
    pub fn confined() -> Arena {
        // A new session owned by this thread: registration cannot fail.
        Arena::open(Session::confined()).0
    }

    /// The session the memory belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// let arena = memscope::alloc::Arena::shared();
    /// arena.session().close()?; // same as arena.close()
    /// assert!(!arena.session().is_alive());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    #[inline(always)]
    fn inner(&self) -> &Inner {
        match &self.inner {
            Some(i) => i,
            None => &self.session.core().arena,
        }
    }

    /// A confined arena's cursor address, if this thread may read it.
    fn cursor(&self) -> Option<usize> {
        let i = self.inner();
        if !i.confined {
            return None;
        }
        i.cur.with(|c| c.ptr).ok()
    }

    /// Closes the arena's session: every allocation is freed at once.
    ///
    /// # Errors
    ///
    /// As [`Session::close`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, alloc::{Arena, SegmentAllocator}};
    /// let arena = Arena::shared();
    /// let seg = arena.allocate(8, 8)?;
    /// arena.close()?;
    /// assert_eq!(seg.get::<u64>(0), Err(Error::Closed));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn close(&self) -> Result<()> {
        self.session.close()
    }

    /// A per-thread handle that bumps without atomics in a chunk of its own
    /// (blink-alloc's `local()`). Its segments belong to this arena's session.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let arena = Arena::shared();
    /// std::thread::scope(|s| {
    ///     for _ in 0..2 {
    ///         s.spawn(|| {
    ///             let local = arena.local();
    ///             for _ in 0..100 {
    ///                 local.allocate(16, 8).unwrap();
    ///             }
    ///         });
    ///     }
    /// });
    /// assert!(arena.allocated_bytes() >= 3200);
    /// ```
    pub fn local(&self) -> LocalArena<'_> {
        LocalArena {
            arena: self,
            inner: self.inner(),
            cur: Cell::new(1),
            end: Cell::new(0),
            base: Cell::new(0),
            clean: Cell::new(0),
            rec: Cell::new(None),
            _not_send: PhantomData,
        }
    }

    /// Caps the bytes of chunks this arena may reserve; requests past it
    /// fail with [`Error::OutOfMemory`]. `None` removes the cap. On a
    /// confined arena, call it from the owner thread before allocating to
    /// keep the recycled first chunk (see [`reserved_bytes`](Self::reserved_bytes))
    /// from being used when it is larger than the cap.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, alloc::{Arena, SegmentAllocator}};
    /// let arena = Arena::shared();
    /// arena.set_allocation_limit(Some(64 * 1024));
    /// assert!(matches!(arena.allocate(1 << 20, 8), Err(Error::OutOfMemory { .. })));
    /// assert!(arena.allocate(1024, 8).is_ok());
    /// ```
    pub fn set_allocation_limit(&self, limit: Option<usize>) {
        let mut s = self.inner().slow.lock();
        s.limit = limit;
        // A confined arena's standby first chunk (see `attach_standby`) that
        // is still unused must not let allocations past a smaller limit:
        // detach it (only its owner thread can see the cursor; from another
        // thread the standby stays usable, as documented on `reserved_bytes`).
        let Some(l) = limit else { return };
        if l >= s.reserved {
            return;
        }
        let Some(r) = s.confined_rec else {
            return;
        };
        let cur = &self.inner().cur;
        let base = s.chunks[r].chunk.addr();
        let detached = cur.with(|c| {
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

    /// The cap set by [`set_allocation_limit`](Self::set_allocation_limit).
    ///
    /// # Examples
    ///
    /// ```
    /// let arena = memscope::alloc::Arena::shared();
    /// assert_eq!(arena.allocation_limit(), None);
    /// ```
    pub fn allocation_limit(&self) -> Option<usize> {
        self.inner().slow.lock().limit
    }

    /// Bytes handed out so far, including alignment padding (a snapshot).
    /// A chunk held by a live [`LocalArena`] counts as fully used, as does
    /// a confined arena's current chunk when asked from another thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let arena = Arena::confined();
    /// arena.allocate(16, 8)?;
    /// arena.allocate(16, 8)?;
    /// assert_eq!(arena.allocated_bytes(), 32);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn allocated_bytes(&self) -> usize {
        self.inner().stats(self.cursor()).0
    }

    /// Bytes of chunks reserved from the system (or the pool). A confined
    /// arena may start with a small recycled chunk already attached (its
    /// first allocation is then a plain bump); that chunk is counted here,
    /// and by [`chunks`](Self::chunks), once something was allocated in it
    /// (the allocation limit counts it from the start).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let arena = Arena::shared();
    /// arena.allocate(16, 8)?;
    /// assert!(arena.reserved_bytes() >= 16);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn reserved_bytes(&self) -> usize {
        self.inner().stats(self.cursor()).1
    }

    /// How many chunks the arena holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let arena = Arena::shared();
    /// assert_eq!(arena.chunks(), 0);
    /// arena.allocate(16, 8)?;
    /// assert_eq!(arena.chunks(), 1);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn chunks(&self) -> usize {
        self.inner().stats(self.cursor()).2
    }

    /// Frees every allocation at once (the chunks go back to the pool) and
    /// keeps the arena open. Needs `&mut self`: no segment can still exist.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let mut arena = Arena::confined();
    /// arena.allocate(64, 8)?;
    /// arena.reset();
    /// assert_eq!(arena.allocated_bytes(), 0);
    /// assert_eq!(arena.allocate(8, 8)?.get::<u64>(0)?, 0);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn reset(&mut self) {
        if self.owned.load(Ordering::Relaxed) {
            // Owned segments may point into every chunk: move on to a fresh
            // state on the same session and leave this one (pinned, so its
            // drop frees nothing) to the session's close. If none can be
            // made (the session is closed, or this is not a confined
            // session's owner thread), keep everything as it is.
            if let Ok(fresh) = Arena::new(self.session.clone()) {
                fresh.set_allocation_limit(self.allocation_limit());
                drop(core::mem::replace(self, fresh));
            }
            return;
        }
        self.inner().reset();
    }

    /// Marks the arena as having handed out an owned segment (see the
    /// `owned` field).
    #[inline]
    pub(crate) fn pin_for_owned(&self) {
        self.owned.store(true, Ordering::Relaxed);
    }

    /// Marks the arena as used by the allocator-api2 bridge: from now on
    /// close keeps the chunks until the arena is dropped. Cheap after the
    /// first call.
    #[inline(always)]
    pub(crate) fn bridge_mark(&self) -> Result<()> {
        // Relaxed is enough: the flag is only ever set under `slow` after
        // `s.bridged = true` and only while the arena is not released, so a
        // `true` here means release (which reads `s.bridged` under the same
        // lock) keeps the chunks.
        if self.inner().bridged.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.bridge_mark_slow()
    }

    #[cold]
    #[inline(never)]
    fn bridge_mark_slow(&self) -> Result<()> {
        let mut s = self.inner().slow.lock();
        if s.released {
            return Err(Error::Closed);
        }
        s.bridged = true;
        self.inner().bridged.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Bumps and returns the start address (contents unspecified).
    #[inline(always)]
    pub(crate) fn bump(&self, size: usize, align: usize) -> Result<usize> {
        self.bump_z::<false>(size, align)
    }

    /// Bumps and returns the start address; `Z`: the bytes are zero.
    #[inline(always)]
    fn bump_z<const Z: bool>(&self, size: usize, align: usize) -> Result<usize> {
        let inner = self.inner();
        if !inner.confined {
            return inner.bump::<Z>(size, align, &self.session);
        }
        let cur = &inner.cur;
        if !layout_ok(size, align) {
            return Err(layout_error(size, align));
        }
        let hit = cur.with_mine(|c| {
            let (start, new) = bump_in(c.ptr, c.end, size, align)?;
            c.ptr = new;
            if Z && start < c.clean {
                // SAFETY: `start .. clean` lies ahead of everything handed
                // out from the cursor's chunk, which only this owner thread
                // bumps; only this thread (or one holding the arena
                // exclusively) can release it, and it is here.
                c.clean = unsafe { zero_ahead(start, c.clean) };
            }
            Some(start)
        });
        // No `closed` check: release resets the cursor (on this thread, the
        // only one that can close a confined session while the arena
        // lives), so after a close nothing fits and the slow path answers.
        if let Some(a) = hit {
            return Ok(a);
        }
        if let Some(e) = cur.not_mine() {
            return Err(e);
        }
        inner.bump_slow(Some(cur), size, align, Z)
    }
}

impl Arena {
    #[inline(always)]
    fn carve_z<const Z: bool>(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let a = self.bump_z::<Z>(size, align)?;
        // SAFETY: `a .. a + size` was bumped past in a chunk this arena owns
        // (or `size == 0` and `a == align != 0`); no other allocation gets
        // it; the chunk stays allocated until the session's close action or
        // the arena's drop, and the segment borrows the arena.
        Ok(unsafe { carve(a, size, &self.session) })
    }
}

impl SegmentAllocator for Arena {
    /// Recycled bytes are handed out as they are (no zeroing at all).
    #[inline(always)]
    fn allocate_uninit(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.carve_z::<false>(size, align)
    }

    /// Zeroed: fresh chunk memory is zero already; recycled bytes below a
    /// chunk's clean mark are zeroed (in one memset) when first reached.
    #[inline(always)]
    fn allocate(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.carve_z::<true>(size, align)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // Owned segments (`allocate_owned`) may still reach the chunks while
        // the session is open: its close action (left registered) frees
        // them. The mark was set through `&self`, before this `&mut self`.
        if self.owned.load(Ordering::Relaxed) && !self.inner().closed.load(Ordering::Acquire) {
            return;
        }
        // Unregister the close action first (it would only find nothing to
        // do); if a close has already taken it, it runs or ran as before.
        if let Some(key) = self.key.take() {
            drop(self.session.core().withdraw_close_action(key));
        }
        // No segment or handle borrows the arena any more: free now, even if
        // the session stays open (its close action will find nothing to do).
        // Skipped when the close action already released everything (it
        // sets `closed` under the lock after draining the chunks, unless the
        // bridge made it keep them).
        let i = self.inner();
        if !i.closed.load(Ordering::Acquire) || i.bridged.load(Ordering::Relaxed) {
            i.release(true);
        }
        if let Some(inner) = self.inner.take() {
            spare_give(inner);
        }
    }
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (used, reserved, chunks) = self.inner().stats(self.cursor());
        f.debug_struct("Arena")
            .field("session", &self.session)
            .field("allocated_bytes", &used)
            .field("reserved_bytes", &reserved)
            .field("chunks", &chunks)
            .finish()
    }
}

/// A per-thread handle on an [`Arena`] (see [`Arena::local`]): bumps plain
/// `Cell`s in a chunk taken from the arena, so its fast path has no atomic
/// read-modify-write. Not `Send`/`Sync`. Dropping it records how much of
/// its chunk it used; the chunk itself stays the arena's until close.
///
/// # Examples
///
/// ```
/// use memscope::alloc::{Arena, SegmentAllocator};
/// let arena = Arena::shared();
/// let local = arena.local();
/// let mut seg = local.allocate(8, 8)?;
/// seg.set(0, 42u64)?;
/// assert_eq!(seg.get::<u64>(0)?, 42);
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// It stays on its thread:
///
/// ```compile_fail
/// let arena = memscope::alloc::Arena::shared();
/// let local = arena.local();
/// std::thread::scope(|s| { s.spawn(move || drop(local)); }); // error: not `Send`
/// ```
pub struct LocalArena<'a> {
    arena: &'a Arena,
    inner: &'a Inner,
    cur: Cell<usize>,
    end: Cell<usize>,
    base: Cell<usize>,
    /// The chunk's clean mark (see `Cursor`).
    clean: Cell<usize>,
    /// The chunk record this handle bumps in.
    rec: Cell<Option<usize>>,
    _not_send: PhantomData<*const ()>,
}

impl<'a> LocalArena<'a> {
    /// The arena this handle allocates from.
    ///
    /// # Examples
    ///
    /// ```
    /// let arena = memscope::alloc::Arena::shared();
    /// let local = arena.local();
    /// assert!(std::ptr::eq(local.arena(), &arena));
    /// ```
    pub fn arena(&self) -> &'a Arena {
        self.arena
    }

    /// Bumps and returns the start address (contents unspecified).
    #[inline(always)]
    pub(crate) fn bump(&self, size: usize, align: usize) -> Result<usize> {
        self.bump_z::<false>(size, align)
    }

    /// Bumps and returns the start address; `Z`: the bytes are zero.
    #[inline(always)]
    fn bump_z<const Z: bool>(&self, size: usize, align: usize) -> Result<usize> {
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

    #[inline(always)]
    fn carve_z<const Z: bool>(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let a = self.bump_z::<Z>(size, align)?;
        // SAFETY: `a .. a + size` lies in a chunk the arena gave to this
        // handle alone (or its own huge chunk, or `size == 0`); the cursor
        // only moves forward; the chunk stays allocated until the session's
        // close action or the arena's drop, and the segment borrows `self`,
        // which borrows the arena.
        Ok(unsafe { carve(a, size, &self.arena.session) })
    }
}

impl SegmentAllocator for LocalArena<'_> {
    /// Recycled bytes are handed out as they are (no zeroing at all).
    #[inline(always)]
    fn allocate_uninit(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.carve_z::<false>(size, align)
    }

    /// Zeroed, as [`Arena`]'s `allocate`.
    #[inline(always)]
    fn allocate(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.carve_z::<true>(size, align)
    }
}

impl Drop for LocalArena<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.rec.get() {
            let used = self.cur.get().saturating_sub(self.base.get());
            self.inner.local_done(r, used, self.clean.get());
        }
    }
}

impl fmt::Debug for LocalArena<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalArena")
            .field("session", &self.arena.session.id())
            .field("free", &self.end.get().saturating_sub(self.cur.get()))
            .finish()
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
