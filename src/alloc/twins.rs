//! The allocators' broken twins (loom builds only): deliberately wrong
//! variants of the arena, pool, spin lock and stack code that the loom
//! models in `loom-tests/tests/loom_alloc.rs` must catch.
//!
//! Owns the `Twin` enum and its switch; touches nothing but the leaf switch
//! `crate::twins`. The switch sites (`on(Twin::X)`) sit in the code each
//! variant breaks; outside loom `on` is a constant `false`, so the twins
//! cost nothing and nothing else depends on this module.

/// A deliberately wrong variant of an allocator protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(loom), allow(dead_code))]
pub enum Twin {
    /// The arena bump uses a load + store instead of a read-modify-write.
    ArenaLoadStoreBump,
    /// A bump reads its slot word with a Relaxed load, so the table entry
    /// it then reads may be older than the word (a bump into a chunk that
    /// another thread is publishing).
    ArenaRelaxedSlotLoad,
    /// Arena close recycles the chunks without marking the bump slots closed.
    ArenaNoCloseMark,
    /// The chunk pool hands out a recycled chunk without clearing it.
    PoolNoClear,
    /// The stack allocator keeps its state in a `std` thread-local (shared
    /// by all loom threads) instead of the shim's.
    StackNotPerThread,
    /// Arena release touches a confined arena's cursor before taking its lock.
    ArenaCursorOutsideLock,
    /// A zeroing allocation below a recycled chunk's clean mark is not zeroed.
    ArenaNoLazyZero,
    /// The arena's spin lock unlocks with a Relaxed store (no happens-before
    /// to the next holder).
    SpinRelaxedUnlock,
    /// A shared arena's cursor zeroes dirty recycled bytes outside a
    /// `Session::enter` window (a racing close may recycle the chunk).
    ArenaZeroOutsideEnter,
    /// Spare-state recycling decides "unique" from a Relaxed decrement of
    /// the holder count, without the Acquire fence (the close action's last
    /// use of the state is not ordered before its reuse).
    SpareRelaxedCount,
    /// The pool's per-thread cache takes a chunk in without its dirty
    /// prefix (the next taker on the thread gets dirty bytes as clean).
    LocalPoolForgetsDirty,
    /// Close marks only the first slot word closed (a bump through another
    /// thread's slot still succeeds in a recycled chunk).
    ArenaCloseMarksOneSlot,
    /// A confined arena's standby first chunk is attached with the clean
    /// mark at the chunk's base (its dirty prefix handed out as zeroed).
    StandbyNoCleanMark,
    /// A `local()` handle dropped after its arena was released parks its
    /// chunk record in the released state anyway (the state is recycled
    /// with it, and the thread's next handle resumes a record of chunks
    /// that went back to the pool).
    ParkAfterRelease,
    /// A handle resuming a parked chunk zeroes its dirty bytes after
    /// letting go of the arena's lock (a racing close may recycle the
    /// chunk meanwhile).
    ResumeZeroUnlocked,
    /// The pool's thread-exit flush moves the thread's cached chunks to
    /// the global pool without their dirty prefixes.
    FlushForgetsDirty,
    /// `reset` ignores the owned-segment pin: it reuses chunks that owned
    /// segments (on other threads) still point into.
    ResetIgnoresOwned,
    /// `reset` keeps the arena's id: another thread's chunk cache still
    /// names it and bumps into a chunk the reset gave away.
    ResetKeepsId,
    /// Release does not set the arena's `closed` flag (a `LocalArena` or a
    /// thread cache keeps bumping its chunk after close).
    ReleaseNoClosedFlag,
    /// Close returns a bridged arena's chunks to the pool although
    /// collections still point into them.
    BridgedCloseFrees,
}

/// Runs `f` with `twin` switched on for this OS thread (every loom thread
/// of a model started inside `f` sees it).
#[cfg(loom)]
pub fn with_twin<R>(twin: Twin, f: impl FnOnce() -> R) -> R {
    crate::twins::with(format!("{twin:?}"), f)
}

/// Whether `twin` is switched on (always `false` outside loom).
#[cfg(not(loom))]
#[inline(always)]
pub(crate) const fn on(_twin: Twin) -> bool {
    false
}

/// Whether `twin` is switched on.
#[cfg(loom)]
pub(crate) fn on(twin: Twin) -> bool {
    crate::twins::on(&format!("{twin:?}"))
}
