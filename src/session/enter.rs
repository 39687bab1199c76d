//! Plain access (enter/exit) on shared and auto sessions without a
//! read-modify-write on the fast path (issue 15).
//!
//! # The protocol
//!
//! Every thread owns a [`Record`]: a cache-padded array of [`SLOTS`]
//! words, each naming the core (by address) of one plain access the thread
//! has in flight, or 0. Records live in one global, append-only list
//! ([`HEAD`]); a record is never freed, and one whose thread has exited is
//! reused by the next new thread. Each core has a [`Gate`]: one word with
//! two bits, `USED` (some thread has entered through a slot since the core
//! was made or recycled) and `CLOSED`.
//!
//! ```text
//! enter (thread T)                      close (under ctl, after CLOSED on the shards)
//!   slot.store(core, Release)             prev = gate.fetch_or(CLOSED, AcqRel)
//!   light fence  ─────────┐               if prev & USED:
//!   w = gate.load()       │ pair ──────     heavy barrier
//!   w == USED:   in        └──────────      for each record, each slot:
//!   w & CLOSED:  slot = 0, Closed              wait while slot == core
//!   USED unset:  fetch_or(USED); as above  (then the close actions free)
//! exit: slot.store(0, Release)
//! ```
//!
//! The *light fence* is a compiler fence when the heavy barrier is Linux's
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (registered once per
//! process), which makes every running thread of the process execute a
//! full memory barrier; where membarrier is missing (other systems, old
//! kernels, a seccomp filter, Miri, loom) both sides are `fence(SeqCst)`.
//! Either way the two sides are a store-buffering pair of SeqCst fences:
//! if T's load of the gate missed `CLOSED`, T's fence comes first in the
//! single total order of SeqCst fences, so the closer's slot loads (after
//! its fence) see T's slot store (or T's later exit, whose Release store
//! the closer's Acquire load then synchronises with): the closer waits for
//! T. Otherwise T sees `CLOSED` and backs out. Slot stores are `Release`
//! too, so a closer that reads a *later* entry of the same slot (T moved on
//! to another session) is ordered after T's exit from this one.
//!
//! `USED` is what keeps the heavy barrier off the close of a session that
//! was never entered (PERFORMANCE.md row 5: open + allocate + close): a
//! thread passes the gate only on a word that has `USED` and not `CLOSED`,
//! and `USED` is only ever set by a read-modify-write, which reads the
//! latest value: if the closer's `fetch_or(CLOSED)` read no `USED`, every
//! word with `USED` comes after it in the gate's modification order and so
//! has `CLOSED` too, and nobody passed the gate. If it read `USED`, the
//! closer pays the barrier. The first entry into each session pays that
//! one read-modify-write; every later one is a store, a fence and a load.
//!
//! A thread with every slot busy (more than [`SLOTS`] plain accesses in
//! flight at once, on any sessions), or whose thread-locals are gone (it
//! is exiting), takes the shard word's read-modify-write path in
//! `state.rs`, which close drains as before. Tokens tell the two apart:
//! a shard index is below [`FAST_TOKEN_MIN`], a slot token is the slot's
//! address. A user window (`Session::enter`'s token, marshal, an upcall)
//! is a slot holding the core's address with [`WINDOW`] set: a close from
//! inside it on the same thread finds it there and answers `InUse`
//! without the per-thread window list (which only the fallback path uses).

use core::cell::Cell;

use crate::error::{Error, Result};
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, CachePadded, Ordering, fence};

/// Slots per thread: plain accesses a thread can have in flight at once on
/// the fast path (one under loom, so the models reach the fallback path
/// with a nested access).
pub(crate) const SLOTS: usize = if cfg!(loom) { 1 } else { 4 };

/// Tokens from [`try_enter`] are slot addresses, never below this; shard
/// indices (at most 64 shards) always are.
pub(crate) const FAST_TOKEN_MIN: usize = 4096;

/// Set in a slot (next to the core's address, which is at least 8-aligned)
/// when the access is a *user window* (`Core::enter_user`): what a close
/// from inside it on the same thread looks for (`InUse`).
pub(crate) const WINDOW: usize = 1;

// A core's address never has the WINDOW bit set.
const _: () = assert!(core::mem::align_of::<super::state::Core>() > WINDOW);

const USED: u64 = 1 << 0;
const CLOSED: u64 = 1 << 1;

/// One thread's slots, and the list link.
struct Record {
    slots: [AtomicUsize; SLOTS],
    /// Owned by a live thread (false: free for the next new thread).
    in_use: AtomicBool,
    /// The next record of the global list (written before publication).
    next: AtomicPtr<CachePadded<Record>>,
}

#[cfg(not(loom))]
static HEAD: AtomicPtr<CachePadded<Record>> = AtomicPtr::new(core::ptr::null_mut());
#[cfg(loom)]
crate::sync::lazy_static! {
    static ref HEAD: AtomicPtr<CachePadded<Record>> = AtomicPtr::new(core::ptr::null_mut());
}

/// This thread's record (claimed on first use, given back at thread exit).
struct Local {
    rec: Cell<*const CachePadded<Record>>,
}

impl Drop for Local {
    fn drop(&mut self) {
        // Loom: loom atomics cannot be touched while loom tears a thread
        // down, and every model execution starts with a fresh list anyway,
        // so a record is simply not reused (the native tests cover reuse).
        if cfg!(loom) {
            return;
        }
        let p = self.rec.get();
        if p.is_null() {
            return;
        }
        // SAFETY: records are leaked, never freed (see `claim`).
        let r = unsafe { &*p };
        // A slot still set belongs to an access that outlives this
        // thread-local (one started before it was destroyed and ended after,
        // in another thread-local's destructor): keep the record owned
        // forever rather than hand a busy slot to another thread.
        if r.slots.iter().all(|s| s.load(Ordering::Relaxed) == 0) {
            // Release: a new owner's Acquire claim sees the slots as we left them.
            r.in_use.store(false, Ordering::Release);
        }
    }
}

// loom's thread_local! (edition 2018 macro) takes no `const {}` init.
#[cfg(not(loom))]
crate::sync::thread_local! {
    static LOCAL: Local = const { Local { rec: Cell::new(core::ptr::null()) } };
}
#[cfg(loom)]
crate::sync::thread_local! {
    static LOCAL: Local = Local { rec: Cell::new(core::ptr::null()) };
}

/// This thread's record; `None` when its thread-locals are gone.
#[inline(always)]
fn my_record() -> Option<&'static Record> {
    let p = LOCAL
        .try_with(|l| {
            let p = l.rec.get();
            if p.is_null() {
                let r = claim();
                l.rec.set(r);
                r
            } else {
                p
            }
        })
        .ok()?;
    // SAFETY: records are leaked, never freed (see `claim`).
    Some(unsafe { &**p })
}

/// A free record from the list, or a new one pushed on it.
#[cold]
#[inline(never)]
fn claim() -> *const CachePadded<Record> {
    // Decide the barrier before this thread's first fast entry: a thread
    // that fences lightly relies on every closer using membarrier.
    mode();
    let mut p = HEAD.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: records are leaked, never freed.
        let r = unsafe { &*p };
        if !r.in_use.load(Ordering::Relaxed)
            && r.in_use
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return p;
        }
        p = r.next.load(Ordering::Acquire);
    }
    // Leaked: closers walk the list without a lock, so a record must
    // never be freed (there are at most as many as threads alive at once).
    let r: &'static CachePadded<Record> = Box::leak(Box::new(CachePadded::new(Record {
        slots: core::array::from_fn(|_| AtomicUsize::new(0)),
        in_use: AtomicBool::new(true),
        next: AtomicPtr::new(core::ptr::null_mut()),
    })));
    // Only ever written through its atomics (interior mutability).
    let p = r as *const CachePadded<Record> as *mut CachePadded<Record>;
    let mut head = HEAD.load(Ordering::Relaxed);
    loop {
        r.next.store(head, Ordering::Relaxed);
        // Release: a closer walking the list sees the record initialised.
        match HEAD.compare_exchange(head, p, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return p,
            Err(h) => head = h,
        }
    }
}

// ----- the barrier -------------------------------------------------------------

#[cfg(not(loom))]
const MODE_UNDECIDED: u64 = 0;
const MODE_MEMBARRIER: u64 = 1;
const MODE_FENCE: u64 = 2;

#[cfg(not(loom))]
static MODE: AtomicU64 = AtomicU64::new(MODE_UNDECIDED);

/// The barrier in use (decided once per process; never changes after).
/// Loom: always the fence pair (a decision through a loom atomic would only
/// multiply the executions to explore).
#[cfg(loom)]
#[inline(always)]
fn mode() -> u64 {
    MODE_FENCE
}

/// The barrier in use (decided once per process; never changes after).
#[cfg(not(loom))]
#[inline(always)]
fn mode() -> u64 {
    let m = MODE.load(Ordering::Relaxed);
    if m != MODE_UNDECIDED { m } else { decide() }
}

#[cfg(not(loom))]
#[cold]
#[inline(never)]
fn decide() -> u64 {
    // `MEMSCOPE_NO_MEMBARRIER` (any value) forces the fence pair: for
    // measuring the trade (benches) and for systems where membarrier
    // misbehaves. Read once, before the first fast entry of the process.
    let forced = std::env::var_os("MEMSCOPE_NO_MEMBARRIER").is_some();
    let m = if !forced && membarrier::register() {
        MODE_MEMBARRIER
    } else {
        MODE_FENCE
    };
    // The first decision wins (a racing thread may decide the same thing).
    match MODE.compare_exchange(MODE_UNDECIDED, m, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => m,
        Err(other) => other,
    }
}

/// Whether closes use Linux's membarrier (so entries fence lightly).
///
/// For tests: `false` where membarrier is missing, under Miri and under
/// loom (both sides `fence(SeqCst)` there).
#[cfg(test)]
pub(crate) fn uses_membarrier() -> bool {
    mode() == MODE_MEMBARRIER
}

#[cfg(all(target_os = "linux", not(miri), not(loom)))]
mod membarrier {
    const CMD_QUERY: libc::c_long = 0;
    const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn call(cmd: libc::c_long) -> libc::c_long {
        // SAFETY: membarrier takes two integer arguments and touches no
        // memory of ours; an unknown command is an error return (ENOSYS
        // where the call is missing, EPERM under a seccomp filter).
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        }
    }

    /// Registers the process for private expedited barriers; `false` if the
    /// kernel lacks them.
    pub(super) fn register() -> bool {
        let cmds = call(CMD_QUERY);
        cmds > 0
            && cmds & CMD_PRIVATE_EXPEDITED != 0
            && cmds & CMD_REGISTER_PRIVATE_EXPEDITED != 0
            && call(CMD_REGISTER_PRIVATE_EXPEDITED) == 0
    }

    /// Every running thread of this process executes a full barrier before
    /// this returns. `false` if it failed (the caller falls back).
    pub(super) fn barrier() -> bool {
        call(CMD_PRIVATE_EXPEDITED) == 0
    }
}

#[cfg(not(all(target_os = "linux", not(miri), not(loom))))]
mod membarrier {
    #[cfg(not(loom))]
    pub(super) fn register() -> bool {
        false
    }
    pub(super) fn barrier() -> bool {
        false
    }
}

/// The entering side's half of the barrier.
#[inline(always)]
fn light_fence() {
    if crate::session::state::twin_on("EnterNoFence") {
        return;
    }
    if mode() == MODE_MEMBARRIER {
        // The closer's membarrier stands for this thread's fence; only the
        // compiler must not move the gate load above the slot store.
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The closing side's half of the barrier.
fn heavy_barrier() {
    if crate::session::state::twin_on("CloseNoBarrier") {
        return;
    }
    // Entries fence lightly only in membarrier mode, so a failed barrier
    // there cannot be replaced by a fence: registration succeeded, so the
    // call only fails on a kernel bug; retry rather than free unsafely.
    if mode() == MODE_MEMBARRIER {
        while !membarrier::barrier() {
            crate::sync::yield_now();
        }
    }
    // In membarrier mode this also orders our own slot loads after our
    // CLOSED store (the barrier covers the calling thread too).
    fence(Ordering::SeqCst);
}

// ----- the per-core gate ---------------------------------------------------------

/// The fast-path state of one core: `USED` and `CLOSED` (see the module docs).
pub(crate) struct Gate {
    word: AtomicU64,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            word: AtomicU64::new(0),
        }
    }

    /// Back to new, for a recycled core (uniquely held: no slot names it).
    pub(crate) fn reset(&self) {
        self.word.store(0, Ordering::Relaxed);
    }

    /// Starts a plain access on the fast path: `None` when this thread has
    /// no free slot (the caller takes the read-modify-write path), else the
    /// token for [`exit`] or `Closed`.
    #[inline(always)]
    pub(crate) fn try_enter(&self, core: usize) -> Option<Result<usize>> {
        let rec = my_record()?;
        let slot = rec.slots.iter().find(|s| s.load(Ordering::Relaxed) == 0)?;
        slot.store(core, Ordering::Release);
        light_fence();
        let w = self.word.load(Ordering::Relaxed);
        if w == USED {
            return Some(Ok(token(slot)));
        }
        Some(self.enter_slow(slot, w))
    }

    #[cold]
    #[inline(never)]
    fn enter_slow(&self, slot: &AtomicUsize, mut w: u64) -> Result<usize> {
        if w & CLOSED == 0 {
            // First entry since the core was made: USED by a read-modify-
            // write (see the module docs on why not a store). Release: a
            // closer whose fetch_or reads this sees our slot store.
            w = self.word.fetch_or(USED, Ordering::AcqRel);
        }
        if w & CLOSED != 0 {
            slot.store(0, Ordering::Relaxed);
            return Err(Error::Closed);
        }
        Ok(token(slot))
    }

    /// Marks the gate closed; `true` if a thread may have passed it (the
    /// closer must then [`wait`](Gate::wait) for the slots).
    pub(crate) fn close(&self) -> bool {
        // AcqRel: pairs with the Release of the first entry's fetch_or.
        self.word.fetch_or(CLOSED, Ordering::AcqRel) & USED != 0
    }

    /// Waits until no thread's slot names `core` (after [`close`](Gate::close)
    /// returned `true`).
    pub(crate) fn wait(&self, core: usize) {
        heavy_barrier();
        let mut p = HEAD.load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: records are leaked, never freed.
            let r = unsafe { &*p };
            for s in r.slots.iter() {
                let mut spins = 0u32;
                // Acquire: pairs with the slot's Release stores (an exit,
                // or a later entry after one).
                while s.load(Ordering::Acquire) & !WINDOW == core {
                    spins += 1;
                    if cfg!(loom) || spins > 64 {
                        crate::sync::yield_now();
                    } else {
                        crate::sync::spin_loop();
                    }
                }
            }
            p = r.next.load(Ordering::Acquire);
        }
    }
}

/// The token of `slot`: its address (never below [`FAST_TOKEN_MIN`]).
#[inline(always)]
fn token(slot: &AtomicUsize) -> usize {
    let t = (slot as *const AtomicUsize).expose_provenance();
    debug_assert!(t >= FAST_TOKEN_MIN);
    t
}

/// Whether `token` came from [`Gate::try_enter`] (else it is a shard index).
#[inline(always)]
pub(crate) fn is_fast(token: usize) -> bool {
    token >= FAST_TOKEN_MIN
}

/// Ends the plain access of `token` (from [`Gate::try_enter`]).
#[inline(always)]
pub(crate) fn exit(token: usize) {
    let slot = core::ptr::with_exposed_provenance::<AtomicUsize>(token);
    // SAFETY: the token is the address of a slot of a leaked (never freed)
    // record, exposed by `token`; only its owner thread stores a nonzero
    // value, and this access is the one that stored it.
    unsafe { (*slot).store(0, Ordering::Release) };
}

/// Whether a slot of the calling thread holds `value` (`core`, or
/// `core | WINDOW` for a user window of it).
#[inline]
pub(crate) fn holds(value: usize) -> bool {
    LOCAL
        .try_with(|l| {
            let p = l.rec.get();
            // SAFETY: records are leaked, never freed.
            !p.is_null()
                && unsafe { &*p }
                    .slots
                    .iter()
                    .any(|s| s.load(Ordering::Relaxed) == value)
        })
        .unwrap_or(false)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn records() -> usize {
        let mut n = 0;
        let mut p = HEAD.load(Ordering::Acquire);
        while !p.is_null() {
            n += 1;
            // SAFETY: records are leaked, never freed.
            p = unsafe { &*p }.next.load(Ordering::Acquire);
        }
        n
    }

    #[test]
    fn slots_fill_up_then_the_caller_falls_back() {
        std::thread::spawn(|| {
            let g = Gate::new();
            let addr = &g as *const Gate as usize;
            let toks: Vec<usize> = (0..SLOTS)
                .map(|_| g.try_enter(addr).expect("a free slot").expect("open"))
                .collect();
            assert!(toks.iter().all(|&t| is_fast(t)));
            assert!(g.try_enter(addr).is_none(), "every slot is busy");
            assert!(holds(addr));
            for t in toks {
                exit(t);
            }
            assert!(!holds(addr));
            let t = g.try_enter(addr).unwrap().unwrap();
            exit(t);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_closed_gate_refuses_and_leaves_no_slot_set() {
        let g = Gate::new();
        let addr = &g as *const Gate as usize;
        // Never entered: close needs no barrier and no walk.
        assert!(!g.close());
        assert_eq!(g.try_enter(addr).unwrap(), Err(Error::Closed));
        assert!(!holds(addr));
        let g = Gate::new();
        exit(g.try_enter(addr).unwrap().unwrap());
        assert!(g.close(), "entered: close must walk the slots");
        g.wait(addr); // nothing in flight: returns
        assert_eq!(g.try_enter(addr).unwrap(), Err(Error::Closed));
        g.reset();
        exit(g.try_enter(addr).unwrap().unwrap());
    }

    #[test]
    fn exited_threads_give_their_record_back() {
        let before = records();
        let n = if cfg!(miri) { 3 } else { 40 };
        for _ in 0..n {
            std::thread::spawn(|| {
                let g = Gate::new();
                let addr = &g as *const Gate as usize;
                exit(g.try_enter(addr).unwrap().unwrap());
            })
            .join()
            .unwrap();
        }
        // Other tests run threads of their own meanwhile; sequential threads
        // alone would need one record, not one each.
        let grown = records() - before;
        assert!(grown <= 8, "{grown} new records for {n} sequential threads");
    }

    #[test]
    fn the_barrier_is_decided_once_and_miri_uses_the_fence_pair() {
        let m = mode();
        assert!(m == MODE_MEMBARRIER || m == MODE_FENCE);
        assert_eq!(mode(), m);
        assert_eq!(decide(), m, "a second decision keeps the first");
        if cfg!(miri) || !cfg!(target_os = "linux") {
            assert!(!uses_membarrier());
        }
        eprintln!("enter fast path: membarrier = {}", uses_membarrier());
    }
}
