//! The allocators' size knobs: how many slot words an arena has, how long a
//! streak of slot-word bumps earns a thread its own chunk, how many chunks
//! the pool's per-thread cache and the spare-state list keep.
//!
//! Owns those numbers and nothing else. Outside loom they are constants
//! (or computed once); under loom each is a per-model setting
//! ([`with_knobs`]) so the loom models can reach every fast path with
//! small values instead of having it compiled out. The defaults under loom
//! keep the older models' shape (one slot word, no streak, no caches); the
//! models of the caches switch them on.

/// The knob values a loom model runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg(loom)]
pub struct Knobs {
    /// Slot words of a shared arena (a power of two).
    pub slots: usize,
    /// Slot-word bumps in a row before a thread takes a chunk of its own
    /// (`u32::MAX`: never).
    pub streak: u32,
    /// Chunks the pool keeps per thread.
    pub local_cap: usize,
    /// Spare arena states kept per thread.
    pub spare_cap: usize,
}

#[cfg(loom)]
impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            slots: 1,
            streak: u32::MAX,
            local_cap: 0,
            spare_cap: 0,
        }
    }
}

#[cfg(loom)]
std::thread_local! {
    static KNOBS: core::cell::Cell<Option<Knobs>> = const { core::cell::Cell::new(None) };
}

/// Runs `f` with `knobs` for this OS thread (every loom thread of a model
/// started inside `f` sees them).
#[cfg(loom)]
pub fn with_knobs<R>(knobs: Knobs, f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            KNOBS.with(|k| k.set(None));
        }
    }
    assert!(
        knobs.slots.is_power_of_two(),
        "slots must be a power of two"
    );
    KNOBS.with(|k| k.set(Some(knobs)));
    let _reset = Reset;
    f()
}

#[cfg(loom)]
fn get() -> Knobs {
    KNOBS.with(|k| k.get()).unwrap_or_default()
}

/// Slot words of a new shared arena.
#[inline]
pub(crate) fn slots() -> usize {
    #[cfg(not(loom))]
    {
        crate::sync::per_core_slots()
    }
    #[cfg(loom)]
    {
        get().slots
    }
}

/// Slot-word bumps in a row (same thread, same arena) before the thread
/// gets a chunk of its own.
#[inline(always)]
pub(crate) fn streak() -> u32 {
    #[cfg(not(loom))]
    {
        64
    }
    #[cfg(loom)]
    {
        get().streak
    }
}

/// Chunks the pool keeps per thread.
#[inline]
pub(crate) fn local_cap() -> usize {
    #[cfg(not(loom))]
    {
        8
    }
    #[cfg(loom)]
    {
        get().local_cap
    }
}

/// Spare arena states kept per thread.
#[inline]
pub(crate) fn spare_cap() -> usize {
    #[cfg(not(loom))]
    {
        4
    }
    #[cfg(loom)]
    {
        get().spare_cap
    }
}
