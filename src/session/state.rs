//! The session state machine: sharded state words, acquire/release, plain
//! access (enter/exit) and the two-phase close.
//!
//! # The shard word
//!
//! A shared session owns `N` cache-padded `AtomicU64` shards (`N` a power of
//! two, one per core up to 64). A thread always uses shard
//! `thread_id & (N - 1)`, so acquire/release pairs from different threads do
//! not bounce one cache line (PERFORMANCE.md row 7). Every modification of a
//! shard word is a read-modify-write, so every `Release` decrement heads a
//! release sequence that the closer's `Acquire` RMW/load synchronises with.
//!
//! ```text
//! bit  0      CLOSING  a close() is deciding; acquirers wait for it to settle
//! bit  1      CLOSED   terminal; acquire and enter fail with Error::Closed
//! bit  2      WAITER   a close_blocking() sleeps; the releaser must notify it
//! bits 3..33  guards   acquire guards held through this shard (bit 32: "full")
//! bits 33..64 enters   plain accesses in flight through this shard (bit 63: "full")
//! ```
//!
//! # Close
//!
//! Closers serialise on `ctl` (a mutex), which makes close exactly-once.
//! Phase 1 sets CLOSING on every shard with `fetch_or(AcqRel)` and sums the
//! guard counts it displaced. An acquire on a shard linearises before or after
//! that shard's `fetch_or`: before, and it is counted (close fails with `Busy`
//! and clears CLOSING again); after, and it sees CLOSING, backs its increment
//! out and waits for the decision by taking `ctl` (the closer holds it from
//! setting CLOSING until it has cleared it again or set CLOSED). Phase 2
//! sets CLOSED on every shard, then waits for the in-flight plain accesses to
//! drain (each is a handful of instructions), and only then runs the close
//! actions that free memory. A plain access never makes close fail: it either
//! entered before CLOSED (close waits for it) or sees CLOSED and fails.
//!
//! `close_blocking` sets WAITER on every shard (under `ctl`) before it tries;
//! a release that sees WAITER takes `ctl` and notifies, and since the waiter
//! holds `ctl` from its try until it sleeps, no wake-up is lost.
//!
//! Confined sessions are only ever written by their owner thread, so they use
//! plain load/store pairs on one shard instead of read-modify-writes. The one
//! thing another thread may release is a `keep_alive` hold (the keeper's last
//! handle can drop anywhere), so holds live in a separate atomic `kept`.
//! A confined `close_blocking` cannot wait (the waiter is the only thread
//! that could release): it is `close`. A confined session's `ctl` is only
//! ever touched by its owner thread (close and add_close_action check the
//! thread first) or while uniquely held, so the owner reads and writes it
//! without taking the lock: confined open + close costs no atomic
//! read-modify-write at all.
//!
//! # Handles and recycling
//!
//! `Session` holds a [`Handle`] (a counted pointer to a boxed `Core`). When the last handle of a
//! confined or shared session drops — seen as std's `Arc::drop` sees it:
//! its Release `fetch_sub` on the core's own handle count returns 1, then
//! an Acquire fence — the core is closed if it
//! was not (its actions run), reset to zero and kept in a per-thread pool
//! (the shim's `thread_local!`, so loom sees it) of at most 8 per kind; the
//! next `Session::confined()`/`shared()` on that thread takes it with a new
//! owner and id. Ids come from per-thread blocks of one global 64-bit
//! counter (one shared read-modify-write per 65,536 sessions of a thread)
//! and never repeat; they name sessions in logs and errors only: a guard is
//! matched to a segment by core identity (`AcquireGuard::holds`), which
//! cannot repeat while both are alive. A core is recycled only with nothing
//! of its last session left: `close_unique` runs any leftover action (a
//! close that was cut short) and `reset` refuses a core that still has one.
//!
//! The session knows nothing of allocators: an owner whose state outlives
//! the registration (an arena) registers that state itself as a close
//! action ([`CloseHook`], `Action::Hook`: one `Arc` clone, no box).

use core::ops::Deref;
use core::ptr::NonNull;
use std::cell::{Cell, RefCell};

use crate::error::{Error, Result};
use crate::sync::{
    AtomicU64, AtomicUsize, CachePadded, Condvar, Mutex, MutexGuard, Ordering, current_thread_id,
    fence, thread_local, with_unlocked, yield_now,
};

use super::SessionKind;
use super::actions::{ActionKey, Actions, Hook};

pub(crate) const CLOSING: u64 = 1 << 0;
pub(crate) const CLOSED: u64 = 1 << 1;
pub(crate) const WAITER: u64 = 1 << 2;
const GUARD_SHIFT: u32 = 3;
pub(crate) const GUARD_ONE: u64 = 1 << GUARD_SHIFT;
const GUARD_MASK: u64 = ((1u64 << 30) - 1) << GUARD_SHIFT;
/// Set once a shard holds 2^29 guards: the remaining 2^29 values are headroom
/// so concurrent increments can never carry into the enter field.
const GUARD_FULL: u64 = 1 << (GUARD_SHIFT + 29);
const ENTER_SHIFT: u32 = 33;
pub(crate) const ENTER_ONE: u64 = 1 << ENTER_SHIFT;
const ENTER_MASK: u64 = ((1u64 << 31) - 1) << ENTER_SHIFT;
const ENTER_FULL: u64 = 1 << 63;

const _: () = assert!(GUARD_MASK & ENTER_MASK == 0);
const _: () = assert!(GUARD_MASK & (CLOSING | CLOSED | WAITER) == 0);

#[inline(always)]
fn guards(w: u64) -> usize {
    ((w & GUARD_MASK) >> GUARD_SHIFT) as usize
}

#[inline(always)]
fn enters(w: u64) -> usize {
    ((w & ENTER_MASK) >> ENTER_SHIFT) as usize
}

/// Deliberately broken protocol variants that the loom models must catch.
/// Compiled only under `cfg(loom)`; selected per model with a std
/// thread-local (all loom threads of one model run on the caller's OS thread).
#[cfg(loom)]
pub mod broken {
    /// A deliberately wrong variant of the protocol.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Twin {
        /// Acquire loads, checks, then increments (no re-check of the RMW's result).
        CheckThenIncrement,
        /// Release is a load followed by a store (loses concurrent releases).
        LoadStoreRelease,
        /// Release decrements with `Relaxed` (no happens-before to the free).
        RelaxedRelease,
        /// Close checks "already closed" without the lock (actions may run twice).
        NonExclusiveClose,
        /// Close frees without waiting for in-flight plain accesses.
        NoEnterDrain,
        /// add_close_action checks "closed" outside the lock (an action can be lost).
        UnlockedAddAction,
        /// Release never wakes a close_blocking waiter.
        NoWakeup,
        /// Confined sessions skip the owner-thread check.
        NoOwnerCheck,
        /// Unguarded segment accesses skip `Session::enter` (no liveness hold).
        SegmentSkipsLiveness,
        /// An upcall stub runs without entering its session (close can free it mid-upcall).
        UpcallNoEnter,
        /// A downcall does not acquire the sessions of its segment arguments.
        DowncallNoAcquire,
        /// Withdrawing a close action decides "not closed" under one lock
        /// and withdraws under another (reports an action withdrawn that a
        /// racing close has taken and runs).
        WithdrawAfterTake,
        /// Close does not refuse a close from inside the caller's own user
        /// window or upcall (confined: frees under it).
        CloseInsideWindow,
        /// An upcall holds no handle of its session while it runs (the last
        /// handle can drop, and free the stub, under it).
        UpcallNoHandle,
        /// A stub hold (`linker::protocol::StubHold`) marks its thread
        /// without acquiring the session or opening a window on it (a
        /// marked upcall skips its entry while a close frees the stub).
        StubHoldNoPin,
        /// `keep_alive` checks the hold graph for a cycle under one lock and
        /// adds its edge under another (two opposite holds both succeed).
        KeepGraphCheckThenAdd,
        /// A fast-path enter publishes its slot without the light fence
        /// (`session/enter.rs`): its gate load can miss CLOSED while the
        /// closer misses its slot.
        EnterNoFence,
        /// Close waits for the fast-path slots without the heavy barrier.
        CloseNoBarrier,
        /// A handle's drop decrements the handle count with `Relaxed` (the
        /// last handle's close/reset is not ordered after the others' uses).
        HandleRelaxedDrop,
        /// The last handle's drop skips the Acquire fence after its
        /// decrement (std's `Arc::drop` without its fence).
        HandleNoAcquireFence,
        /// A confined keep_alive hold is released with a Relaxed decrement
        /// (the keeper's uses, maybe on another thread, not ordered before
        /// the kept session's free).
        RelaxedUnkeep,
        /// close_timeout's time-out branch clears the WAITER bits although
        /// another close_blocking still waits (its wake-up is lost).
        TimeoutClearsOthersWaiter,
        /// `UpcallStub::as_fn` hands out the code pointer without entering
        /// the stub's session (a closed stub's freed code).
        AsFnNoEnter,
        /// A direct typed stub's slot (`linker/direct.rs`) goes back to the
        /// free list before its entry is cleared (a stub that takes the slot
        /// at once has its entry wiped).
        SlotFreedBeforeClear,
        /// A direct slot is claimed by reading the free list under one lock
        /// and taking the slot under another (two stubs share a slot).
        SlotClaimCheckThenTake,
        /// A direct typed stub's slot is released when the `UpcallStub`
        /// value drops instead of when its session closes (C may still hold
        /// the code address: a later stub reuses the slot under it).
        SlotFreedWithStub,
        /// `held_here` counts any hold of the thread, not only one of the
        /// stub's own session (an upcall skips its entry while nothing
        /// holds its session).
        HeldMarkAnySession,
        /// A downcall whose only held arguments are upcall stubs takes the
        /// no-hold fast path (the stubs' sessions can close mid-call).
        StubArgNotHeld,
        /// `Segment::map_file` unmaps the mapping itself when the session
        /// refused its close action (which had already run it): unmapped
        /// twice.
        MapUnmapOnClosed,
        /// The library's close action does not mark it closed (calls
        /// through held symbols keep running after the close).
        LibraryCloseNoMark,
        /// The library's close action unloads it (`dlclose`) although
        /// symbols still hold it.
        CloseUnloadsUnderSymbols,
        /// `Library::lookup` hands out symbols that do not hold the loaded
        /// library (it can unload under a call through one).
        SymbolNoLibraryHold,
        /// `ExecutableSegment::symbol` hands out symbols that do not hold
        /// the executable mapping (it can unmap under a call).
        CodeSymbolNoKeep,
        /// A shared user window that takes the shard word's path (this
        /// thread's slot is busy) is not recorded: a close from inside it
        /// waits for itself.
        WindowUnrecorded,
        /// A `close_blocking` woken from its wait retries without checking
        /// whether another closer closed the session meanwhile (it closes a
        /// closed session a second time).
        WokenCloseSkipsClosedCheck,
        /// A close that fails with `Busy` leaves CLOSING set (acquirers
        /// waiting on its decision wait for good).
        BusyKeepsClosing,
        /// A confined close leaves the unlocked control block's `closed`
        /// unset (an action registered after the close is kept instead of
        /// run at once).
        ConfinedCloseUnmarked,
    }

    /// Runs `f` with `twin` switched on for this OS thread (every loom thread
    /// of a model started inside `f` sees it; the switch is `crate::twins`).
    pub fn with_twin<R>(twin: Twin, f: impl FnOnce() -> R) -> R {
        crate::twins::with(format!("{twin:?}"), f)
    }
}

/// `true` when the named broken twin is active (always `false` outside loom).
macro_rules! broken {
    ($t:ident) => {
        $crate::session::state::twin_on(stringify!($t))
    };
}

#[cfg(not(loom))]
#[inline(always)]
pub(crate) const fn twin_on(_name: &str) -> bool {
    false
}

#[cfg(loom)]
pub(crate) fn twin_on(name: &str) -> bool {
    crate::twins::on(name)
}

/// A close action: a boxed closure, or an owner's shared state (which needs
/// no allocation: opening an allocator on a session must not cost a `Box`).
pub(crate) enum Action {
    /// Any `FnOnce`.
    Boxed(Box<dyn FnOnce() + Send + 'static>),
    /// An owner's state (a [`super::actions::CloseHook`]).
    Hook(Hook),
}

impl Action {
    /// Runs the action; `core` is the session it was registered on.
    #[inline]
    fn run(self, _core: &Core) {
        match self {
            Action::Boxed(f) => f(),
            Action::Hook(h) => h.on_close(),
        }
    }
}

/// What closers serialise on.
struct Control {
    closed: bool,
    waiters: usize,
    actions: Actions,
    /// The global session holds this one open for good (`keep_alive`
    /// from global is taken once per session).
    kept_forever: bool,
}

/// The state behind every `Session` handle.
pub(crate) struct Core {
    pub(crate) kind: SessionKind,
    /// Owner thread id (confined) or 0. Atomic only so that a recycled core
    /// can be re-owned through `&Core`; written only while uniquely held.
    owner: AtomicU64,
    /// The session id (for logs; never repeats), renewed when the core is
    /// recycled.
    id: AtomicU64,
    shards: Box<[CachePadded<AtomicU64>]>,
    /// Shared/auto: the fast-path plain access state (`session/enter.rs`).
    gate: super::enter::Gate,
    /// Confined only: `keep_alive` holds on this session. Kept apart from the
    /// shard word because the keeper's close action may run on another
    /// thread (the keeper's last handle can drop anywhere), and the shard
    /// word of a confined session is written with plain load/store pairs by
    /// its owner: a foreign read-modify-write there could be lost.
    kept: AtomicU64,
    /// How many [`Handle`]s of this core exist (std's `Arc` strong count,
    /// kept by hand so that uniqueness is read from a Release `fetch_sub`'s
    /// result; see [`Handle`]).
    refs: AtomicUsize,
    ctl: Mutex<Control>,
    cv: Condvar,
}

#[cfg(not(loom))]
fn shard_count() -> usize {
    crate::sync::per_core_slots()
}

#[cfg(loom)]
fn shard_count() -> usize {
    2
}

/// How many session ids a thread takes from the global counter at once.
const ID_BLOCK: u64 = 1 << 16;

/// A process-unique session id that never repeats (until 2^64 ids have
/// been handed out): each thread takes blocks of [`ID_BLOCK`] ids from one
/// global 64-bit counter, so making an id touches the shared counter once
/// per 65,536 sessions of a thread. (Ids used to be the thread id above a
/// 40-bit per-thread count, which repeated after 2^24 threads; issue 12.)
/// Ids are for logs and errors: guards are matched to segments by core
/// identity ([`crate::session::AcquireGuard`]), not by id.
#[inline]
fn next_session_id() -> u64 {
    #[cfg(not(loom))]
    static BLOCKS: AtomicU64 = AtomicU64::new(0);
    #[cfg(loom)]
    crate::sync::lazy_static! {
        static ref BLOCKS: AtomicU64 = AtomicU64::new(0);
    }
    // (next, end) of this thread's block; loom's thread_local! (edition
    // 2018 macro) takes no `const {}` init.
    #[cfg(not(loom))]
    thread_local! {
        static NEXT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    #[cfg(loom)]
    thread_local! {
        static NEXT: Cell<(u64, u64)> = Cell::new((0, 0));
    }
    let take = || {
        // Relaxed: the counter only has to hand out disjoint blocks. It
        // would wrap after 2^48 blocks (centuries of sessions at any rate a
        // machine can make them).
        BLOCKS.fetch_add(ID_BLOCK, Ordering::Relaxed)
    };
    NEXT.try_with(|c| {
        let (mut n, mut end) = c.get();
        if n == end {
            n = take();
            end = n.wrapping_add(ID_BLOCK);
        }
        c.set((n.wrapping_add(1), end));
        n
    })
    // An exiting thread (its thread-locals gone): a block of its own.
    .unwrap_or_else(|_| take())
}

/// Which shard the calling thread uses.
#[inline(always)]
fn my_shard(n: usize) -> usize {
    (current_thread_id() as usize) & (n - 1)
}

impl Core {
    pub(crate) fn new(kind: SessionKind) -> Core {
        let n = match kind {
            SessionKind::Shared | SessionKind::Auto => shard_count(),
            SessionKind::Confined | SessionKind::Global => 1,
        };
        Core {
            kind,
            owner: AtomicU64::new(if kind == SessionKind::Confined {
                current_thread_id()
            } else {
                0
            }),
            id: AtomicU64::new(next_session_id()),
            shards: (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            gate: super::enter::Gate::new(),
            kept: AtomicU64::new(0),
            refs: AtomicUsize::new(0),
            ctl: Mutex::new(Control {
                closed: false,
                waiters: 0,
                actions: Actions::new(),
                kept_forever: false,
            }),
            cv: Condvar::new(),
        }
    }

    /// The owner thread (confined) or 0.
    #[inline(always)]
    pub(crate) fn owner(&self) -> u64 {
        self.owner.load(Ordering::Relaxed)
    }

    /// The session id.
    #[inline(always)]
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    /// Fails with `WrongThread` unless this is a non-confined session or the
    /// caller is its owner.
    #[inline(always)]
    pub(crate) fn check_thread(&self) -> Result<()> {
        if self.kind == SessionKind::Confined && !broken!(NoOwnerCheck) {
            let current = current_thread_id();
            let owner = self.owner();
            if current != owner {
                return Err(Error::WrongThread { owner, current });
            }
        }
        Ok(())
    }

    /// Whether the session is still open (a racy snapshot for shared sessions).
    #[inline]
    pub(crate) fn is_alive(&self) -> bool {
        self.shards[0].load(Ordering::Acquire) & CLOSED == 0
    }

    /// Total guards held right now (a racy snapshot).
    pub(crate) fn acquired(&self) -> usize {
        self.shards
            .iter()
            .map(|s| guards(s.load(Ordering::Relaxed)))
            .sum::<usize>()
            + self.kept.load(Ordering::Relaxed) as usize
    }

    /// `keep_alive` on a confined session (by a confined keeper on the
    /// owner thread): one hold, released by [`Core::unkeep`] from any thread.
    pub(crate) fn keep_confined(&self) -> Result<()> {
        debug_assert_eq!(self.kind, SessionKind::Confined);
        self.check_thread()?;
        if self.shards[0].load(Ordering::Relaxed) & CLOSED != 0 {
            return Err(Error::Closed);
        }
        // Only the owner increments; the Relaxed RMW is enough for a count
        // the owner itself reads in close.
        self.kept.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Marks this (non-confined) session as held open by the global session;
    /// `false` if it already was.
    pub(crate) fn mark_kept_forever(&self) -> bool {
        debug_assert_ne!(self.kind, SessionKind::Confined);
        !core::mem::replace(&mut self.ctl.lock().kept_forever, true)
    }

    /// Releases a hold taken by [`Core::keep_confined`]; any thread.
    pub(crate) fn unkeep(&self) {
        // Release: pairs with close's Acquire load (the keeper's use of this
        // session happens-before the free).
        let prev = if broken!(RelaxedUnkeep) {
            self.kept.fetch_sub(1, Ordering::Relaxed)
        } else {
            self.kept.fetch_sub(1, Ordering::Release)
        };
        debug_assert!(prev > 0, "unkeep without keep");
    }

    // ----- acquire / release -------------------------------------------------

    /// Takes one acquire; returns the shard to release through.
    #[inline(always)]
    pub(crate) fn acquire(&self) -> Result<usize> {
        match self.kind {
            SessionKind::Global => Ok(0),
            SessionKind::Confined => {
                self.check_thread()?;
                let s = &self.shards[0];
                // Only the owner thread ever writes a confined word.
                let w = s.load(Ordering::Relaxed);
                if w & CLOSED != 0 {
                    return Err(Error::Closed);
                }
                if w & GUARD_FULL != 0 {
                    return Err(Error::TooManyAcquires { count: guards(w) });
                }
                s.store(w + GUARD_ONE, Ordering::Relaxed);
                Ok(0)
            }
            SessionKind::Shared | SessionKind::Auto => self.acquire_shared(),
        }
    }

    #[inline(always)]
    fn acquire_shared(&self) -> Result<usize> {
        let i = my_shard(self.shards.len());
        let s = &self.shards[i];
        if broken!(CheckThenIncrement) {
            let w = s.load(Ordering::Acquire);
            if w & (CLOSING | CLOSED) != 0 {
                return Err(Error::Closed);
            }
            yield_now();
            s.fetch_add(GUARD_ONE, Ordering::Acquire);
            return Ok(i);
        }
        // Acquire: pairs with the Release of a rolled-back close, so a guard
        // taken after a failed close sees the memory as that closer left it.
        let prev = s.fetch_add(GUARD_ONE, Ordering::Acquire);
        if prev & (CLOSING | CLOSED | GUARD_FULL) == 0 {
            return Ok(i);
        }
        self.acquire_slow(i, prev)
    }

    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, i: usize, mut prev: u64) -> Result<usize> {
        let s = &self.shards[i];
        loop {
            // Undo our increment (it may have made a close_blocking see Busy,
            // so go through the notifying release).
            self.release_shard(i);
            if prev & CLOSED != 0 {
                return Err(Error::Closed);
            }
            if prev & GUARD_FULL != 0 {
                return Err(Error::TooManyAcquires {
                    count: guards(prev),
                });
            }
            // CLOSING: a closer is deciding, and it holds `ctl` from setting
            // CLOSING until it has either cleared it (Busy) or set CLOSED.
            // Waiting for the lock is waiting for that decision, parked
            // rather than spinning; the unlock happens-before our retry.
            drop(self.ctl.lock());
            prev = s.fetch_add(GUARD_ONE, Ordering::Acquire);
            if prev & (CLOSING | CLOSED | GUARD_FULL) == 0 {
                return Ok(i);
            }
        }
    }

    /// Releases one acquire taken through shard `i`.
    ///
    /// Must be paired with a successful [`Core::acquire`] that returned `i`.
    #[inline(always)]
    pub(crate) fn release(&self, i: usize) {
        match self.kind {
            SessionKind::Global => {}
            SessionKind::Confined => {
                let s = &self.shards[0];
                let w = s.load(Ordering::Relaxed);
                debug_assert!(guards(w) > 0, "release without acquire: word {w:#x}");
                s.store(w - GUARD_ONE, Ordering::Relaxed);
            }
            SessionKind::Shared | SessionKind::Auto => self.release_shard(i),
        }
    }

    #[inline(always)]
    fn release_shard(&self, i: usize) {
        let s = &self.shards[i];
        let prev = if broken!(LoadStoreRelease) {
            let w = s.load(Ordering::Acquire);
            yield_now();
            s.store(w - GUARD_ONE, Ordering::Release);
            w
        } else if broken!(RelaxedRelease) {
            s.fetch_sub(GUARD_ONE, Ordering::Relaxed)
        } else {
            // Release: everything done under the guard happens-before the
            // closer's AcqRel fetch_or that reads this (or a later) value.
            s.fetch_sub(GUARD_ONE, Ordering::Release)
        };
        debug_assert!(guards(prev) > 0, "release without acquire: word {prev:#x}");
        if prev & WAITER != 0 && !broken!(NoWakeup) {
            self.wake_waiters();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_waiters(&self) {
        // Taking the lock orders this wake-up after the waiter's check (it
        // holds the lock from its check until it sleeps): no lost wake-up.
        drop(self.ctl.lock());
        self.cv.notify_all();
    }

    // ----- plain access ------------------------------------------------------

    /// Starts a plain (unguarded) access. Returns the shard to exit through.
    #[inline(always)]
    pub(crate) fn enter(&self) -> Result<usize> {
        match self.kind {
            SessionKind::Global => Ok(0),
            SessionKind::Confined => {
                self.check_thread()?;
                // The owner is the only thread that can close, and it is here.
                if self.shards[0].load(Ordering::Relaxed) & CLOSED != 0 {
                    return Err(Error::Closed);
                }
                Ok(0)
            }
            SessionKind::Shared | SessionKind::Auto => {
                // A slot of this thread, when one is free (no RMW).
                if let Some(r) = self.gate.try_enter(self.addr()) {
                    return r;
                }
                let i = my_shard(self.shards.len());
                // Acquire: if this RMW comes after close's fetch_or(CLOSED) we
                // see CLOSED; if before, close waits for our exit.
                let prev = self.shards[i].fetch_add(ENTER_ONE, Ordering::Acquire);
                if prev & (CLOSED | ENTER_FULL) == 0 {
                    Ok(i)
                } else {
                    self.shards[i].fetch_sub(ENTER_ONE, Ordering::Release);
                    if prev & CLOSED != 0 {
                        Err(Error::Closed)
                    } else {
                        Err(Error::TooManyAcquires {
                            count: enters(prev),
                        })
                    }
                }
            }
        }
    }

    /// Ends a plain access started by a successful [`Core::enter`] that returned `i`.
    #[inline(always)]
    pub(crate) fn exit(&self, i: usize) {
        if matches!(self.kind, SessionKind::Shared | SessionKind::Auto) {
            if super::enter::is_fast(i) {
                super::enter::exit(i);
                return;
            }
            // Release: the access happens-before close's drain load.
            self.shards[i].fetch_sub(ENTER_ONE, Ordering::Release);
        }
    }

    // ----- access windows that may run user code -----------------------------
    //
    // `enter`/`exit` above are the library's own short windows (one read or
    // write; no user code runs inside). A window inside which user code can
    // run (`Session::enter`'s token, `Marshal::encode`/`decode`, an upcall)
    // is a *user window*: its thread may call `close()` from inside it, and
    // that close must neither free the memory under the window nor wait for
    // the window it is itself inside. So a user window is counted where the
    // closer of the same thread can see it:
    //
    // * confined: in the enter field of the owner's word (the owner is the
    //   only thread that can close; `close_confined` refuses with `InUse`);
    // * shared/auto: in one of this thread's fast-path slots, marked as a
    //   window (`session/enter.rs`); when no slot is free, in the shard word
    //   as a plain access and in this thread's window record (`WINDOWS`).
    //   `close`/`close_blocking` consult both before they would wait
    //   (`InUse` instead of a hang).
    //
    // An upcall is a user window too. Its stub reaches the core through a
    // raw pointer, not a handle, so for the length of its window the upcall
    // holds a handle made from that pointer (`Handle::from_stub`): the last
    // handle can then never drop under a running upcall (on another thread,
    // or inside the upcall itself); if the upcall's handle is the last one,
    // the session closes when the upcall's window has ended.

    /// Starts a user window (see above). Returns the shard to exit through.
    #[inline]
    pub(crate) fn enter_user(&self) -> Result<usize> {
        match self.kind {
            SessionKind::Global => Ok(0),
            SessionKind::Confined => {
                self.check_thread()?;
                let s = &self.shards[0];
                // The owner is the only thread that writes this word while a
                // handle exists (a user window borrows one): plain load/store.
                let w = s.load(Ordering::Relaxed);
                if w & CLOSED != 0 {
                    return Err(Error::Closed);
                }
                if w & ENTER_FULL != 0 {
                    return Err(Error::TooManyAcquires { count: enters(w) });
                }
                s.store(w + ENTER_ONE, Ordering::Relaxed);
                Ok(0)
            }
            SessionKind::Shared | SessionKind::Auto => {
                // A slot marked as a window (a close from inside finds it).
                if let Some(r) = self.gate.try_enter(self.addr() | super::enter::WINDOW) {
                    return r;
                }
                let i = self.enter()?;
                if !broken!(WindowUnrecorded) {
                    windows::note(self);
                }
                Ok(i)
            }
        }
    }

    /// Ends a user window started by [`Core::enter_user`] that returned `i`.
    #[inline]
    pub(crate) fn exit_user(&self, i: usize) {
        match self.kind {
            SessionKind::Global => {}
            SessionKind::Confined => {
                let s = &self.shards[0];
                let w = s.load(Ordering::Relaxed);
                debug_assert!(enters(w) > 0, "exit without enter: word {w:#x}");
                s.store(w - ENTER_ONE, Ordering::Relaxed);
            }
            SessionKind::Shared | SessionKind::Auto => {
                if super::enter::is_fast(i) {
                    super::enter::exit(i);
                    return;
                }
                self.exit(i);
                windows::forget(self);
            }
        }
    }

    /// Whether the calling thread holds a recorded window (a user window of
    /// a shared/auto session, or an upcall window) on this core: a slot
    /// of this thread marked as a window (`session/enter.rs`), or, for a
    /// window that took the read-modify-write path, the window record. Such
    /// windows are counted on this thread's own shard, by itself, so a zero
    /// count there (the common case) answers without the record.
    #[inline]
    fn in_my_window(&self) -> bool {
        let s = &self.shards[my_shard(self.shards.len())];
        super::enter::holds(self.addr() | super::enter::WINDOW)
            || (enters(s.load(Ordering::Relaxed)) != 0 && windows::holds(self))
    }

    /// The core's address: what fast-path slots name it by.
    #[inline(always)]
    fn addr(&self) -> usize {
        self as *const Core as usize
    }

    /// Fails with `InUse` when the calling thread is inside a user window or
    /// an upcall of this session: a close there would free memory under
    /// that window (confined) or wait for it forever (shared).
    #[inline]
    fn check_not_in_window(&self) -> Result<()> {
        let inside = match self.kind {
            SessionKind::Confined => enters(self.shards[0].load(Ordering::Relaxed)) != 0,
            _ => self.in_my_window(),
        };
        if inside && !broken!(CloseInsideWindow) {
            return Err(Error::InUse);
        }
        Ok(())
    }

    // ----- close -------------------------------------------------------------

    /// Phase 1 and 2 of close, with `ctl` held. `Err(n)`: `n` guards are held.
    fn try_close_locked(&self, ctl: &mut Control) -> core::result::Result<(), usize> {
        debug_assert_ne!(self.kind, SessionKind::Confined);
        // Phase 1: mark every shard CLOSING and count the guards displaced.
        let mut busy = 0usize;
        for s in self.shards.iter() {
            busy += guards(s.fetch_or(CLOSING, Ordering::AcqRel));
        }
        if busy > 0 && broken!(BusyKeepsClosing) {
            return Err(busy);
        }
        if busy > 0 {
            for s in self.shards.iter() {
                s.fetch_and(!CLOSING, Ordering::Release);
            }
            return Err(busy);
        }
        // Phase 2: no guard can appear any more (acquirers wait on CLOSING).
        for s in self.shards.iter() {
            s.fetch_or(CLOSED, Ordering::AcqRel);
        }
        ctl.closed = true;
        let fast_used = self.gate.close();
        if !broken!(NoEnterDrain) {
            if fast_used {
                self.gate.wait(self.addr());
            }
            // Wait for plain accesses that entered before CLOSED (spin,
            // then yield through the shim: see `alloc/spin.rs` on why this
            // is not crossbeam's `Backoff`).
            for s in self.shards.iter() {
                let mut spins = 0u32;
                while enters(s.load(Ordering::Acquire)) != 0 {
                    spins += 1;
                    if cfg!(loom) || spins > 64 {
                        yield_now();
                    } else {
                        crate::sync::spin_loop();
                    }
                }
            }
        }
        Ok(())
    }

    /// `close()`: fails at once with `Busy` while guards are held.
    pub(crate) fn close(&self) -> Result<()> {
        self.check_closeable()?;
        if self.kind == SessionKind::Confined {
            return self.close_confined();
        }
        // Waiting for plain accesses would wait for this thread's own window.
        self.check_not_in_window()?;
        if broken!(NonExclusiveClose) {
            // Check-then-act: the "already closed" check and the close are
            // not one critical section, so two closers can both succeed.
            let open = !self.ctl.lock().closed;
            yield_now();
            if !open {
                return Err(Error::Closed);
            }
            let mut ctl = self.ctl.lock();
            return match self.try_close_locked(&mut ctl) {
                Ok(()) => self.finish_close(ctl),
                Err(n) => Err(Error::Busy { acquired: n }),
            };
        }
        let mut ctl = self.ctl.lock();
        if ctl.closed {
            return Err(Error::Closed);
        }
        match self.try_close_locked(&mut ctl) {
            Ok(()) => self.finish_close(ctl),
            Err(n) => Err(Error::Busy { acquired: n }),
        }
    }

    /// `close_blocking()` / `close_timeout()`: waits for guards to drain.
    pub(crate) fn close_blocking(&self, deadline: Option<std::time::Instant>) -> Result<()> {
        self.check_closeable()?;
        if self.kind == SessionKind::Confined {
            // Only the owner can release a confined session's guards and
            // holds, and the owner is the caller: waiting could never end.
            return self.close();
        }
        // Waiting for plain accesses would wait for this thread's own window.
        self.check_not_in_window()?;
        let mut ctl = self.ctl.lock();
        if ctl.closed {
            return Err(Error::Closed);
        }
        ctl.waiters += 1;
        if ctl.waiters == 1 {
            for s in self.shards.iter() {
                s.fetch_or(WAITER, Ordering::Relaxed);
            }
        }
        loop {
            match self.try_close_locked(&mut ctl) {
                Ok(()) => {
                    ctl.waiters -= 1;
                    return self.finish_close(ctl);
                }
                Err(_) => {
                    let timed_out = match deadline {
                        None => {
                            ctl = self.cv.wait(ctl);
                            false
                        }
                        Some(d) => {
                            let (g, t) = self.cv.wait_until(ctl, d);
                            ctl = g;
                            t
                        }
                    };
                    if ctl.closed && !broken!(WokenCloseSkipsClosedCheck) {
                        ctl.waiters -= 1;
                        return Err(Error::Closed);
                    }
                    if timed_out {
                        ctl.waiters -= 1;
                        if ctl.waiters == 0 || broken!(TimeoutClearsOthersWaiter) {
                            for s in self.shards.iter() {
                                s.fetch_and(!WAITER, Ordering::Relaxed);
                            }
                        }
                        // One more try: the last release may have come with the deadline.
                        return match self.try_close_locked(&mut ctl) {
                            Ok(()) => self.finish_close(ctl),
                            Err(m) => Err(Error::Busy { acquired: m }),
                        };
                    }
                }
            }
        }
    }

    /// `close()` of a confined session, on its owner thread (checked by the
    /// caller): no lock and no read-modify-write.
    fn close_confined(&self) -> Result<()> {
        let s = &self.shards[0];
        let w = s.load(Ordering::Relaxed);
        if w & CLOSED != 0 {
            return Err(Error::Closed);
        }
        // A user window or upcall of the owner (the caller) is open: freeing
        // now would free the memory under it.
        self.check_not_in_window()?;
        // Acquire: pairs with `unkeep`'s Release (a keeper on another thread).
        let held = guards(w) + self.kept.load(Ordering::Acquire) as usize;
        if held > 0 {
            return Err(Error::Busy { acquired: held });
        }
        s.store(w | CLOSED, Ordering::Release);
        // SAFETY: a confined core's `ctl` is touched only by its owner thread
        // (this one: check_closeable ran) or while uniquely held (recycle,
        // drop), which happens-before/after through the Arc. See `Core`.
        unsafe { with_unlocked(&self.ctl, |c| c.closed = !broken!(ConfinedCloseUnmarked)) };
        // SAFETY: as above.
        unsafe { self.run_actions_unlocked() }
    }

    /// Pops and runs the registered actions newest first without the lock,
    /// keeping the vector's capacity for a recycled core.
    ///
    /// # Safety
    ///
    /// `ctl` must be exclusively this thread's (a confined core on its owner
    /// thread, or a uniquely held core), and `closed` already set, so that an
    /// action registering another one runs it at once instead of pushing.
    unsafe fn run_actions_unlocked(&self) -> Result<()> {
        let mut tally = PanicTally::default();
        loop {
            // SAFETY: exclusivity is the caller's contract; the borrow ends
            // before the action (user code) runs.
            let next = unsafe { with_unlocked(&self.ctl, |c| c.actions.pop()) };
            let Some(a) = next else {
                break;
            };
            tally.run(a, self);
        }
        tally.finish()
    }

    /// Closes a session whose last handle is gone (no guard or access can
    /// exist: each borrows a handle, an upcall holds one) and reports a
    /// panicking action.
    ///
    /// # Safety
    ///
    /// The caller holds the only reference to this core.
    unsafe fn close_unique(&self) {
        if self.kind == SessionKind::Global {
            return;
        }
        // SAFETY: unique (the caller's contract).
        let (was_closed, leftover) = unsafe {
            with_unlocked(&self.ctl, |c| {
                let leftover = c.actions.live() != 0;
                (core::mem::replace(&mut c.closed, true), leftover)
            })
        };
        // A closed session normally has no actions left; if a close was cut
        // short (an unwind that escaped it), the leftovers run now, for this
        // session, rather than staying in the core for whoever reuses it.
        if was_closed && !leftover {
            return;
        }
        for s in self.shards.iter() {
            // Unique: a plain load/store pair is enough (an upcall in flight
            // holds a handle of its own, `Handle::from_stub`).
            s.store(s.load(Ordering::Relaxed) | CLOSED, Ordering::Relaxed);
        }
        // SAFETY: unique, and `closed` is set.
        if let Err(e) = unsafe { self.run_actions_unlocked() } {
            #[cfg(not(loom))]
            eprintln!("memscope: while dropping session {}: {e}", self.id());
            #[cfg(loom)]
            let _ = e;
        }
    }

    /// Makes a closed, uniquely held core like new for the calling thread;
    /// false if it cannot be reused (an action of its last session is left).
    ///
    /// # Safety
    ///
    /// The caller holds the only reference to this core.
    unsafe fn reset(&self) -> bool {
        // SAFETY: unique (the caller's contract).
        let leftover = unsafe { with_unlocked(&self.ctl, |c| c.actions.live() != 0) };
        // Never hand a core with anything of its last session left to the
        // next one (close_unique runs leftovers, so this is a backstop).
        if leftover {
            return false;
        }
        for s in self.shards.iter() {
            s.store(0, Ordering::Relaxed);
        }
        self.gate.reset();
        self.kept.store(0, Ordering::Relaxed);
        // SAFETY: unique (the caller's contract).
        unsafe {
            with_unlocked(&self.ctl, |c| {
                c.closed = false;
                c.actions.clear_withdrawn();
                c.waiters = 0;
                c.kept_forever = false;
            })
        };
        true
    }

    /// Gives a recycled core its new owner and id.
    #[inline]
    fn revive(&self) {
        let me = current_thread_id();
        let owner = if self.kind == SessionKind::Confined {
            me
        } else {
            0
        };
        self.owner.store(owner, Ordering::Relaxed);
        self.id.store(next_session_id(), Ordering::Relaxed);
    }

    fn check_closeable(&self) -> Result<()> {
        match self.kind {
            SessionKind::Global | SessionKind::Auto => Err(Error::NotCloseable { kind: self.kind }),
            SessionKind::Confined => self.check_thread(),
            SessionKind::Shared => Ok(()),
        }
    }

    /// The session is closed: take the actions under the lock, then run them.
    fn finish_close(&self, mut ctl: MutexGuard<'_, Control>) -> Result<()> {
        debug_assert!(ctl.closed);
        let actions = ctl.actions.take_all();
        drop(ctl);
        // Wake any other close_blocking callers: they will see `closed`.
        self.cv.notify_all();
        run_actions(actions, self)
    }

    /// Registers `f` to run when the session closes. If it is already closed,
    /// runs `f` now and returns `Err(Closed)`.
    #[inline]
    pub(crate) fn add_close_action(&self, f: Action) -> Result<()> {
        self.add_close_action_keyed(f).map(drop)
    }

    /// [`Core::add_close_action`], returning the key that
    /// [`Core::withdraw_close_action`] takes.
    pub(crate) fn add_close_action_keyed(&self, f: Action) -> Result<ActionKey> {
        self.check_thread()?;
        if self.kind == SessionKind::Confined {
            // SAFETY: the owner thread (checked above): see `close_confined`.
            let added = unsafe {
                with_unlocked(&self.ctl, |c| {
                    if c.closed {
                        Err(f)
                    } else {
                        Ok(c.actions.push(f, self.id()))
                    }
                })
            };
            return match added {
                Ok(k) => Ok(k),
                Err(f) => {
                    f.run(self);
                    Err(Error::Closed)
                }
            };
        }
        if broken!(UnlockedAddAction) {
            let closed = self.ctl.lock().closed;
            yield_now();
            if closed {
                f.run(self);
                return Err(Error::Closed);
            }
            return Ok(self.ctl.lock().actions.push(f, self.id()));
        }
        let mut ctl = self.ctl.lock();
        if ctl.closed {
            drop(ctl);
            // Runs at once rather than being lost; a panic propagates to the
            // caller, who is the one that can handle it.
            f.run(self);
            return Err(Error::Closed);
        }
        Ok(ctl.actions.push(f, self.id()))
    }

    /// Withdraws the close action registered under `key` (by
    /// [`Core::add_close_action_keyed`] on this session): it will never
    /// run, and is returned for the caller to drop. `None` if it already
    /// ran or a close has taken it to run (the caller must then expect it to
    /// run, or to have run), or, for a confined session, if the caller is
    /// not the owner thread (only the owner may touch its actions: the
    /// action stays and runs at close).
    ///
    /// For an owner that frees what its action would free itself when it is
    /// dropped before the session closes (an allocator): withdrawing keeps a
    /// long-lived session from accumulating one action per owner.
    pub(crate) fn withdraw_close_action(&self, key: ActionKey) -> Option<Action> {
        if self.kind == SessionKind::Confined {
            if self.check_thread().is_err() {
                return None;
            }
            // SAFETY: the owner thread (checked above): see `close_confined`.
            return unsafe { with_unlocked(&self.ctl, |c| c.actions.withdraw(key, self.id())) };
        }
        if broken!(WithdrawAfterTake) {
            // Check-then-act: "not closed yet" is decided under one lock and
            // the withdrawal made under another, so a close in between has
            // taken the action to run although we report it withdrawn.
            let open = !self.ctl.lock().closed;
            yield_now();
            let mut ctl = self.ctl.lock();
            let a = ctl.actions.withdraw(key, self.id());
            return if open {
                a.or(Some(Action::Boxed(Box::new(|| {}))))
            } else {
                a
            };
        }
        self.ctl.lock().actions.withdraw(key, self.id())
    }

    /// How many close actions are registered and not yet run or withdrawn
    /// (a snapshot; `WrongThread` for a confined session elsewhere).
    pub(crate) fn pending_close_actions(&self) -> Result<usize> {
        self.check_thread()?;
        let count = |c: &mut Control| c.actions.live();
        if self.kind == SessionKind::Confined {
            // SAFETY: the owner thread (checked above): see `close_confined`.
            return Ok(unsafe { with_unlocked(&self.ctl, count) });
        }
        Ok(count(&mut self.ctl.lock()))
    }
}

/// Runs close actions newest first; a panicking action does not stop the
/// others, and the panics are reported in the result.
fn run_actions(mut actions: Actions, core: &Core) -> Result<()> {
    let mut tally = PanicTally::default();
    while let Some(a) = actions.pop() {
        tally.run(a, core);
    }
    tally.finish()
}

/// Runs close actions one by one, each under `catch_unwind`, counting the
/// panics and keeping the first one's message.
#[derive(Default)]
struct PanicTally {
    count: usize,
    first: String,
}

impl PanicTally {
    fn run(&mut self, a: Action, core: &Core) {
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.run(core))) {
            if self.count == 0 {
                self.first = crate::error::panic_message(&*p);
            }
            self.count += 1;
            drop_payload(p);
        }
    }

    fn finish(self) -> Result<()> {
        if self.count == 0 {
            Ok(())
        } else {
            Err(Error::CloseActionPanicked {
                count: self.count,
                first: self.first,
            })
        }
    }
}

/// Drops a caught panic payload without letting its destructor unwind out
/// of close: a payload whose drop panics would otherwise abandon the
/// remaining close actions part-way (issue 12, UB item 5). A payload thrown
/// by that drop is dropped the same way, a few times over; one still
/// panicking after that is forgotten (leaked) rather than dropped.
fn drop_payload(mut p: Box<dyn core::any::Any + Send>) {
    for _ in 0..4 {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(p))) {
            Ok(()) => return,
            Err(again) => p = again,
        }
    }
    core::mem::forget(p);
}

impl Drop for Core {
    /// The last handle is gone: an auto session (or a shared/confined one that
    /// was never closed) closes now.
    fn drop(&mut self) {
        // SAFETY: `&mut self` is the only reference.
        unsafe { self.close_unique() };
    }
}

// ----- per-thread window record ------------------------------------------------

/// The user windows (upcalls included) the calling thread holds on shared
/// and auto sessions, by core address.
mod windows {
    use super::{Core, RefCell, thread_local};

    // loom's thread_local! (edition 2018 macro) takes no `const {}` init.
    #[cfg(not(loom))]
    thread_local! {
        static WINDOWS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    }
    #[cfg(loom)]
    thread_local! {
        static WINDOWS: RefCell<Vec<usize>> = RefCell::new(Vec::new());
    }

    #[inline]
    fn addr(core: &Core) -> usize {
        core as *const Core as usize
    }

    /// Records a window on `core`.
    #[inline]
    pub(super) fn note(core: &Core) {
        let a = addr(core);
        // An exiting thread (record gone) just goes unrecorded.
        let _ = WINDOWS.try_with(|w| w.borrow_mut().push(a));
    }

    /// Ends a window on `core` (the newest one: tokens may drop out of
    /// order, and any entry for this core stands for any of its windows).
    #[inline]
    pub(super) fn forget(core: &Core) {
        let a = addr(core);
        let _ = WINDOWS.try_with(|w| {
            let mut w = w.borrow_mut();
            if let Some(i) = w.iter().rposition(|&x| x == a) {
                w.remove(i);
            }
        });
    }

    /// Whether this thread holds a window on `core`.
    #[inline]
    pub(super) fn holds(core: &Core) -> bool {
        let a = addr(core);
        WINDOWS
            .try_with(|w| w.borrow().contains(&a))
            .unwrap_or(false)
    }
}

// ----- handles and the per-thread pool of cores ---------------------------------

/// How many closed cores each thread keeps per kind for reuse.
const POOL_CAP: usize = 8;

/// Closed cores waiting to be reused by `Session::confined()` / `shared()`.
/// Boxed, not inline: a handle points at its core, so a core keeps its
/// address from `Handle::new` until it is freed.
#[allow(clippy::vec_box)]
struct Pool {
    confined: Vec<Box<Core>>,
    shared: Vec<Box<Core>>,
}

impl Pool {
    #[allow(clippy::vec_box)] // see `Pool`
    fn of(&mut self, kind: SessionKind) -> &mut Vec<Box<Core>> {
        if kind == SessionKind::Confined {
            &mut self.confined
        } else {
            &mut self.shared
        }
    }
}

const fn empty_pool() -> RefCell<Pool> {
    RefCell::new(Pool {
        confined: Vec::new(),
        shared: Vec::new(),
    })
}

// loom's thread_local! (edition 2018 macro) takes no `const {}` init.
#[cfg(not(loom))]
thread_local! {
    static POOL: RefCell<Pool> = const { empty_pool() };
}
#[cfg(loom)]
thread_local! {
    static POOL: RefCell<Pool> = empty_pool();
}

/// A counted reference to a [`Core`]: what every `Session` holds.
///
/// The count is the core's own `refs` (through the shim, so loom models it
/// as it runs), managed as std's `Arc` manages its strong count: a clone is
/// a Relaxed increment; a drop is a Release decrement, and the drop whose
/// decrement returns 1 is the last: an Acquire fence then orders every other
/// handle's uses of the core before what the last one does next (close,
/// reset, recycle or free). Uniqueness is decided from the value that
/// Release `fetch_sub` returns, never from a separate load of the count (a
/// load is Relaxed in std, and loom's `Arc::strong_count` synchronises,
/// so a model of that could not fail: issue 13). When the last handle of a
/// confined or shared session drops, the core is closed (if it was not),
/// reset and kept in a small per-thread pool, so the next session opened on
/// that thread costs no allocation and no atomic read-modify-write.
pub(crate) struct Handle(NonNull<Core>);

// SAFETY: a handle is a shared reference to a `Sync + Send` core plus a
// share of its count (atomic): like `Arc<Core>`.
unsafe impl Send for Handle {}
// SAFETY: as for Send.
unsafe impl Sync for Handle {}

impl Handle {
    /// A new (or recycled) core of `kind`.
    #[inline]
    pub(crate) fn new(kind: SessionKind) -> Handle {
        let pooled = if matches!(kind, SessionKind::Confined | SessionKind::Shared) {
            POOL.try_with(|p| p.borrow_mut().of(kind).pop())
                .ok()
                .flatten()
        } else {
            None
        };
        let core = match pooled {
            Some(core) => {
                core.revive();
                core
            }
            None => Box::new(Core::new(kind)),
        };
        // Unique (a fresh box, or one the pool owned): the count starts at 1.
        core.refs.store(1, Ordering::Relaxed);
        Handle(NonNull::from(Box::leak(core)))
    }

    /// The core's address (what [`Handle::from_stub`] takes back).
    #[inline]
    pub(crate) fn as_ptr(&self) -> *const Core {
        self.0.as_ptr()
    }

    /// A new handle of the core at `core` (an upcall stub's, which holds
    /// the core by pointer, not by handle).
    ///
    /// # Safety
    ///
    /// `core` came from [`Handle::as_ptr`] and at least one handle of that
    /// core is alive for the duration of this call (for a stub: its
    /// closure has not been freed, so its session's close actions have not
    /// run, so some handle still holds the core, or the caller broke the
    /// stub's contract by calling it while its session closes unheld).
    #[inline]
    pub(crate) unsafe fn from_stub(core: *const Core) -> Handle {
        // SAFETY: the caller's contract: a live core with a handle, so the
        // count is at least 1 and this increment cannot revive a dead core.
        Handle::count_one_more(unsafe { &*core });
        // SAFETY: non-null (from `as_ptr`); built from the raw pointer, not
        // the reference above, so it keeps the provenance of the whole box
        // (`Box::leak` in `Handle::new`), which the last drop takes back.
        Handle(unsafe { NonNull::new_unchecked(core.cast_mut()) })
    }

    /// One more handle of `core` (some handle of it is alive).
    #[inline]
    fn count_one_more(core: &Core) {
        // Relaxed, as std's Arc::clone: a new handle is made from an
        // existing one, which already orders this thread's uses.
        let old = core.refs.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // As std's Arc: a count this high means handles were leaked.
            std::process::abort();
        }
    }

    /// Whether two handles name the same session.
    #[inline]
    pub(crate) fn ptr_eq(&self, other: &Handle) -> bool {
        self.0 == other.0
    }
}

impl Deref for Handle {
    type Target = Core;
    #[inline(always)]
    fn deref(&self) -> &Core {
        // SAFETY: a handle keeps its core alive (the count includes it).
        unsafe { self.0.as_ref() }
    }
}

impl Clone for Handle {
    #[inline]
    fn clone(&self) -> Handle {
        Handle::count_one_more(self);
        Handle(self.0)
    }
}

impl Drop for Handle {
    #[inline]
    fn drop(&mut self) {
        // Read before the decrement: after it, another handle's drop may
        // recycle the core (`kind` never changes, but we touch nothing of
        // the core after our decrement unless we are the last).
        let kind = self.kind;
        let prev = if broken!(HandleRelaxedDrop) {
            self.refs.fetch_sub(1, Ordering::Relaxed)
        } else {
            // Release: this handle's uses of the core happen-before the
            // last handle's Acquire fence below (std's Arc::drop).
            self.refs.fetch_sub(1, Ordering::Release)
        };
        if prev != 1 {
            return;
        }
        if !broken!(HandleNoAcquireFence) {
            // Acquire: pairs with the Release decrement of every other
            // handle (they head release sequences that our RMW read): their
            // uses of the core happen-before its close, reset or free.
            fence(Ordering::Acquire);
        }
        // SAFETY: the count reached 0 through our decrement, so no other
        // handle exists and none can be made (`from_stub` needs a live
        // handle): this is the only reference, and the core came from
        // `Box::leak` in `Handle::new`.
        let core = unsafe { Box::from_raw(self.0.as_ptr()) };
        if matches!(kind, SessionKind::Confined | SessionKind::Shared) {
            recycle(core);
        }
        // Otherwise `core` drops here: `Core::drop` closes it.
    }
}

/// Closes a uniquely held core and keeps it for reuse on this thread (or
/// frees it when the pool is full or the thread is exiting).
#[inline]
fn recycle(core: Box<Core>) {
    // A failing twin model panics with loom objects in thread-locals, whose
    // destructors would then run outside the model and abort the test
    // binary: broken twins run without the pool.
    #[cfg(loom)]
    if crate::twins::any() {
        // A broken twin may still reach the core through a raw pointer
        // (`UpcallNoHandle`): its memory is kept (leaked, for this model
        // execution) so that the twin fails as loom reports it, not as a
        // use after free of the core; leaked first, so that a loom failure
        // inside the close unwinds without closing it a second time.
        let core: &Core = Box::leak(core);
        // SAFETY: unique (the caller's contract, as below).
        unsafe { core.close_unique() };
        return;
    }
    // SAFETY: the caller's decrement of the handle count returned 1 and was
    // followed by an Acquire fence: every other handle's uses happen-before
    // this point, and this is the only reference (a `Box`).
    let reusable = unsafe {
        core.close_unique();
        core.reset()
    };
    if !reusable {
        return; // `core` drops (already closed)
    }
    let kind = core.kind;
    let mut spare = Some(core);
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        let v = p.of(kind);
        if v.len() < POOL_CAP {
            v.extend(spare.take());
        }
    });
    // A full pool (or an exiting thread): free it, outside the pool borrow.
    drop(spare);
}

impl core::fmt::Debug for Core {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("kind", &self.kind)
            .field("alive", &self.is_alive())
            .field("acquired", &self.acquired())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Puts a shard one step below "full" (2^29 real guards would take seconds).
    fn nearly_full(core: &Core, field_full: u64, one: u64) {
        core.shards[my_shard(core.shards.len())].store(field_full - one, Ordering::Relaxed);
    }

    #[test]
    fn acquire_reports_too_many_acquires_at_the_limit() {
        for kind in [SessionKind::Shared, SessionKind::Confined] {
            let core = Core::new(kind);
            nearly_full(&core, GUARD_FULL, GUARD_ONE);
            let i = core.acquire().expect("the last guard below the limit");
            assert_eq!(
                core.acquire(),
                Err(Error::TooManyAcquires { count: 1 << 29 })
            );
            core.release(i);
            // The failed attempt left no count behind.
            assert_eq!(core.acquired(), (1 << 29) - 1);
            core.shards[my_shard(core.shards.len())].store(0, Ordering::Relaxed);
        }
    }

    #[test]
    fn enter_reports_too_many_acquires_at_the_limit() {
        // Busy this thread's fast-path slots first: the limit is the shard
        // word's (the fallback path).
        let fillers: Vec<Core> = (0..super::super::enter::SLOTS)
            .map(|_| Core::new(SessionKind::Shared))
            .collect();
        let held: Vec<usize> = fillers.iter().map(|c| c.enter().unwrap()).collect();
        assert!(held.iter().all(|&t| super::super::enter::is_fast(t)));
        let core = Core::new(SessionKind::Shared);
        nearly_full(&core, ENTER_FULL, ENTER_ONE);
        let i = core.enter().expect("the last access below the limit");
        assert_eq!(core.enter(), Err(Error::TooManyAcquires { count: 1 << 30 }));
        core.exit(i);
        let w = core.shards[i].load(Ordering::Relaxed);
        assert_eq!(enters(w), (1 << 30) - 1);
        core.shards[i].store(0, Ordering::Relaxed);
        for (c, t) in fillers.iter().zip(held) {
            c.exit(t);
        }
    }

    #[test]
    fn bit_fields_do_not_overlap() {
        assert_eq!(guards(GUARD_ONE), 1);
        assert_eq!(enters(ENTER_ONE), 1);
        assert_eq!(guards(ENTER_ONE | CLOSING | CLOSED | WAITER), 0);
        assert_eq!(enters(GUARD_MASK | CLOSING | CLOSED | WAITER), 0);
        assert_eq!(guards(GUARD_FULL), 1 << 29);
        assert_eq!(enters(ENTER_FULL), 1 << 30);
    }
}

#[cfg(all(test, not(loom)))]
mod window_tests {
    use crate::Session;

    /// A user window that took the shard word's path (every slot of this
    /// thread busy) ends with its record: a later plain enter of this thread
    /// on the same shard is not mistaken for a window, so a close from
    /// inside it is not refused with `InUse` (mutation S42: a stale record
    /// made every later close from that thread `InUse` while it had an
    /// enter in flight).
    #[test]
    fn an_ended_fallback_window_leaves_no_record() {
        let others: Vec<Session> = (0..8).map(|_| Session::shared()).collect();
        let ins: Vec<_> = others.iter().map(|o| o.enter().unwrap()).collect();
        let s = Session::shared();
        {
            let _w = s.enter().unwrap();
            assert!(s.core.in_my_window(), "an open window is recorded");
        }
        let i = s.core.enter().unwrap();
        assert!(
            !super::super::enter::is_fast(i),
            "every slot is busy: the plain enter takes the shard word"
        );
        assert!(
            !s.core.in_my_window(),
            "the ended window's record outlived it"
        );
        s.core.exit(i);
        drop(ins);
        s.close().unwrap();
    }
}
