//! The chunk pool: chunks of closed (or reset) arenas come back here and the
//! next arena takes them, so opening, using and closing an arena costs no
//! call into the global allocator once the pool is warm.
//!
//! Two levels: a small per-thread cache (no atomics, no lock) and a bounded
//! global pool behind a mutex. A chunk goes back with its `dirty` length (how
//! many leading bytes may be non-zero); the taker either clears that prefix
//! in bulk before use or keeps it as its clean mark and zeroes on
//! demand, which keeps the all-zero invariant of `chunk.rs`.

use super::chunk::Chunk;
use crate::sync::Mutex;
use core::cell::RefCell;

/// Chunks larger than this are freed instead of pooled.
pub(crate) const POOL_MAX_CHUNK: usize = 4 << 20;
/// The default bound on pooled bytes (global pool plus, separately, each
/// thread's cache): small, so a program that closed its arenas does not keep
/// much memory it no longer uses. [`set_pool_limit`] changes it.
pub const DEFAULT_POOL_LIMIT: usize = 8 << 20;

#[cfg(not(loom))]
static LIMIT: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(DEFAULT_POOL_LIMIT);

/// The pool's byte bound now (relaxed: a bound, not a protocol).
#[cfg(not(loom))]
fn limit() -> usize {
    LIMIT.load(core::sync::atomic::Ordering::Relaxed)
}
#[cfg(loom)]
fn limit() -> usize {
    DEFAULT_POOL_LIMIT
}

/// Sets how many bytes of closed arenas' chunks the pool keeps for reuse
/// (the global pool keeps at most `bytes`, and each thread's cache at most
/// `bytes / 4`); returns the previous bound. `0` turns pooling off: every
/// chunk goes back to the system allocator when its arena closes or
/// resets past its kept chunk. Lowering the bound frees what is over it.
///
/// The default is [`DEFAULT_POOL_LIMIT`] (8 MiB). Chunks larger than 4 MiB
/// are never pooled.
///
/// # Examples
///
/// ```rust,standalone_crate
/// use memscope::alloc::{Arena, SegmentAllocator, pool_stats, set_pool_limit};
/// let before = set_pool_limit(0);
/// let arena = Arena::confined();
/// arena.allocate(16, 8)?;
/// arena.close()?;
/// assert_eq!(pool_stats().bytes, 0); // nothing kept
/// set_pool_limit(before);
/// # Ok::<(), memscope::Error>(())
/// ```
pub fn set_pool_limit(bytes: usize) -> usize {
    #[cfg(not(loom))]
    let old = LIMIT.swap(bytes, core::sync::atomic::Ordering::Relaxed);
    #[cfg(loom)]
    let old = {
        let _ = bytes;
        DEFAULT_POOL_LIMIT
    };
    shrink_to(bytes);
    old
}

/// The pool's current byte bound (see [`set_pool_limit`]).
///
/// # Examples
///
/// ```
/// let now = memscope::alloc::pool_limit();
/// assert_eq!(memscope::alloc::set_pool_limit(now), now);
/// ```
pub fn pool_limit() -> usize {
    limit()
}

/// Frees pooled chunks over `bytes` (global) and `bytes / 4` (this thread).
fn shrink_to(bytes: usize) {
    let freed_local = LOCAL
        .try_with(|l| {
            let mut l = l.borrow_mut();
            let mut kept = 0usize;
            let mut out = Vec::new();
            let all = core::mem::take(&mut l.0);
            for p in all {
                if kept + p.chunk.len() <= bytes / 4 {
                    kept += p.chunk.len();
                    l.0.push(p);
                } else {
                    out.push(p);
                }
            }
            out
        })
        .unwrap_or_default();
    drop(freed_local);
    let freed_global = {
        let mut g = global().lock();
        let mut out = Vec::new();
        while g.bytes > bytes {
            match g.chunks.pop() {
                Some(p) => {
                    g.bytes -= p.chunk.len();
                    out.push(p);
                }
                None => break,
            }
        }
        out
    };
    drop(freed_global);
}

/// A pooled chunk and the length of its possibly non-zero prefix.
#[derive(Debug)]
pub(crate) struct Pooled {
    pub(crate) chunk: Chunk,
    pub(crate) dirty: usize,
}

#[derive(Debug, Default)]
struct Global {
    chunks: Vec<Pooled>,
    bytes: usize,
}

#[cfg(not(loom))]
fn global() -> &'static Mutex<Global> {
    static G: Mutex<Global> = Mutex::new(Global {
        chunks: Vec::new(),
        bytes: 0,
    });
    &G
}

#[cfg(loom)]
fn global() -> &'static Mutex<Global> {
    crate::sync::lazy_static! {
        static ref G: Mutex<Global> = Mutex::new(Global::default());
    }
    &G
}

/// The per-thread cache; on thread exit its chunks move to the global pool.
#[derive(Debug, Default)]
struct Local(Vec<Pooled>);

impl Local {
    /// Thread exit: every cached chunk moves to the global pool (under its
    /// lock), each with its dirty prefix, so the next taker on any thread
    /// clears or zeroes it. The thread-local's destructor calls this; under
    /// loom, which cannot take a lock in a thread-local destructor, a model
    /// calls it at the end of a loom thread ([`flush_thread_cache`]).
    fn flush(&mut self) {
        for mut p in self.0.drain(..) {
            if super::twins::on(super::twins::Twin::FlushForgetsDirty) {
                p.dirty = 0;
            }
            give_global(p);
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Loom: a failing model unwinds through thread-local destructors
        // outside its execution, where no loom lock may be taken: leak.
        #[cfg(loom)]
        if std::thread::panicking() {
            core::mem::forget(core::mem::take(&mut self.0));
            return;
        }
        self.flush();
    }
}

/// Loom: runs this thread's thread-exit flush now (what `Local`'s
/// destructor does when the thread ends), so a model can run it inside its
/// execution at the end of a loom thread; the destructor then finds the
/// cache empty.
#[cfg(loom)]
pub fn flush_thread_cache() {
    let _ = LOCAL.try_with(|l| l.borrow_mut().flush());
}

#[cfg(not(loom))]
crate::sync::thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Local(Vec::new())) };
}
// loom's `thread_local!` does not take `const {}`.
#[cfg(loom)]
crate::sync::thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local(Vec::new()));
}

/// Picks the smallest chunk of at least `min` bytes and at most `4 * min`
/// (so a tiny arena does not pin a huge chunk), aligned to `align`; the
/// newest of equal ones. Best fit keeps chunk sizes what arenas asked for:
/// a larger chunk than asked makes its taker's next request larger, and
/// sizes would drift upward round after round.
fn pick(v: &mut Vec<Pooled>, min: usize, align: usize) -> Option<Pooled> {
    let max = min.saturating_mul(4);
    let mut best: Option<(usize, usize)> = None;
    for (i, p) in v.iter().enumerate().rev() {
        let len = p.chunk.len();
        if len < min || len > max || p.chunk.align() < align {
            continue;
        }
        if best.is_none_or(|(_, b)| len < b) {
            best = Some((i, len));
            if len == min {
                break;
            }
        }
    }
    Some(v.swap_remove(best?.0))
}

/// Takes a chunk of `min ..= 4 * min` bytes from the pool, if any, with its
/// dirty length: the taker clears it (`Chunk::clear`) or zeroes on demand
/// below its clean mark (see `chunk.rs`).
pub(crate) fn take_dirty(min: usize, align: usize) -> Option<Pooled> {
    let local = LOCAL
        .try_with(|l| pick(&mut l.borrow_mut().0, min, align))
        .ok()
        .flatten();
    match local {
        Some(p) => Some(p),
        None => take_global(min, align),
    }
}

/// Like [`take_dirty`], from this thread's cache only (no lock): `None` if
/// it has no fitting chunk.
pub(crate) fn take_local(min: usize, align: usize) -> Option<Pooled> {
    LOCAL
        .try_with(|l| pick(&mut l.borrow_mut().0, min, align))
        .ok()
        .flatten()
}

#[cold]
#[inline(never)]
fn take_global(min: usize, align: usize) -> Option<Pooled> {
    let mut g = global().lock();
    let p = pick(&mut g.chunks, min, align)?;
    g.bytes -= p.chunk.len();
    Some(p)
}

/// Gives a chunk back; it is freed if it is too big or the pool is full.
pub(crate) fn give(chunk: Chunk, dirty: usize) {
    if chunk.len() > POOL_MAX_CHUNK {
        return;
    }
    let p = Pooled { chunk, dirty };
    let rest = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        let held: usize = l.0.iter().map(|q| q.chunk.len()).sum();
        if l.0.len() < super::knobs::local_cap() && held + p.chunk.len() <= limit() / 4 {
            let mut p = p;
            if super::twins::on(super::twins::Twin::LocalPoolForgetsDirty) {
                p.dirty = 0;
            }
            l.0.push(p);
            None
        } else {
            Some(p)
        }
    });
    match rest {
        Ok(None) => {}
        Ok(Some(p)) => give_global(p),
        Err(_) => {} // thread-local destroyed: p was dropped (freed) with the closure
    }
}

fn give_global(p: Pooled) {
    let mut g = global().lock();
    if g.bytes + p.chunk.len() <= limit() {
        g.bytes += p.chunk.len();
        g.chunks.push(p);
    }
}

/// What the chunk pool holds, as seen from the calling thread.
///
/// # Examples
///
/// ```
/// use memscope::alloc::{Arena, SegmentAllocator, pool_stats, trim_pool};
/// let arena = Arena::confined();
/// arena.allocate(16, 8)?;
/// arena.close()?;
/// assert!(pool_stats().chunks >= 1);
/// trim_pool();
/// assert_eq!(pool_stats().chunks, 0);
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Chunks pooled (this thread's cache plus the global pool).
    pub chunks: usize,
    /// Their total size in bytes.
    pub bytes: usize,
    /// Of `chunks`, how many are in this thread's cache.
    pub local_chunks: usize,
}

/// A snapshot of the chunk pool (this thread's cache and the global pool).
///
/// # Examples
///
/// ```
/// let s = memscope::alloc::pool_stats();
/// assert!(s.local_chunks <= s.chunks);
/// ```
pub fn pool_stats() -> PoolStats {
    let (lc, lb) = LOCAL
        .try_with(|l| {
            let l = l.borrow();
            (l.0.len(), l.0.iter().map(|p| p.chunk.len()).sum::<usize>())
        })
        .unwrap_or((0, 0));
    let g = global().lock();
    PoolStats {
        chunks: lc + g.chunks.len(),
        bytes: lb + g.bytes,
        local_chunks: lc,
    }
}

/// Frees every pooled chunk (this thread's cache and the global pool) back
/// to the global allocator (`alloc::trim_pool`).
pub(crate) fn trim_chunks() {
    let local = LOCAL
        .try_with(|l| core::mem::take(&mut l.borrow_mut().0))
        .unwrap_or_default();
    drop(local);
    let g = core::mem::take(&mut *global().lock());
    drop(g);
}
