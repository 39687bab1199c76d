//! The owner-thread cell behind a confined arena's atomic-free fast path, and
//! a cheap "who am I" for it.
//!
//! A confined session may only be used by the thread that created it, so the
//! cursor of its arena needs no atomics: every access checks that the caller
//! is the owner (one thread-local load and a compare), then reads and writes
//! the cell plainly. That check is what makes the cell `Sync`.

use crate::error::{Error, Result};
use crate::sync::UnsafeCell;

/// The calling thread's memscope id, from a const-initialised thread-local
/// (no lazy-init branch on the hot path after the first call).
#[inline(always)]
pub(crate) fn me() -> u64 {
    #[cfg(not(loom))]
    {
        std::thread_local! {
            static ME: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
        }
        let id = ME.get();
        if id != 0 {
            return id;
        }
        let id = crate::sync::current_thread_id();
        ME.set(id);
        id
    }
    #[cfg(loom)]
    {
        crate::sync::current_thread_id()
    }
}

/// A value only its owner thread may touch.
pub(crate) struct OwnerCell<T> {
    /// Atomic only so that a recycled arena state can be re-owned through
    /// `&` while it is unshared (a relaxed load is a plain load). A std
    /// atomic even under loom: it is never written while shared.
    owner: core::sync::atomic::AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: `with` lets only the owner thread reach the value, so two threads
// never access it concurrently; `with_unchecked` states the same duty for
// its callers. The value itself may move between threads with the cell
// (`T: Send`).
unsafe impl<T: Send> Sync for OwnerCell<T> {}
// SAFETY: the cell owns its value; sending it sends the value.
unsafe impl<T: Send> Send for OwnerCell<T> {}

impl<T> OwnerCell<T> {
    pub(crate) fn new(owner: u64, value: T) -> OwnerCell<T> {
        OwnerCell {
            owner: core::sync::atomic::AtomicU64::new(owner),
            value: UnsafeCell::new(value),
        }
    }

    /// The owner thread's id.
    #[inline(always)]
    pub(crate) fn owner(&self) -> u64 {
        self.owner.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// Gives the cell a new owner. Only while the cell is unshared (a
    /// recycled arena state, before it is handed out).
    pub(crate) fn set_owner(&self, owner: u64) {
        self.owner
            .store(owner, core::sync::atomic::Ordering::Relaxed);
    }

    /// Runs `f` on the value if the caller is the owner thread.
    /// `f` must not call `with` on the same cell (it is only given to
    /// straight-line code in `arena/confined.rs`).
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let me = me();
        let owner = self.owner();
        if me != owner {
            return Err(wrong_thread(owner, me));
        }
        // SAFETY: only the owner thread gets here (checked above), and `f`
        // does not re-enter, so this `&mut` is the only reference.
        Ok(self.value.with_mut(|p| f(unsafe { &mut *p })))
    }

    /// Runs `f` on the value if the caller is the owner thread, else `None`
    /// (the caller reports [`OwnerCell::not_mine`]). Same duty on `f` as
    /// [`with`](Self::with); cheaper to inline into a hot loop than `with`
    /// (no `Result` wrapped around `f`'s value).
    #[inline(always)]
    pub(crate) fn with_mine<R>(&self, f: impl FnOnce(&mut T) -> Option<R>) -> Option<R> {
        if me() != self.owner() {
            return None;
        }
        // SAFETY: only the owner thread gets here (checked above), and `f`
        // does not re-enter, so this `&mut` is the only reference.
        self.value.with_mut(|p| f(unsafe { &mut *p }))
    }

    /// The error for a caller that is not the owner thread, or `None` if it
    /// is the owner.
    #[cold]
    #[inline(never)]
    pub(crate) fn not_mine(&self) -> Option<Error> {
        let (me, owner) = (me(), self.owner());
        (me != owner).then(|| wrong_thread(owner, me))
    }

    /// Runs `f` on the value from any thread.
    ///
    /// # Safety
    ///
    /// No other thread may be inside [`with`](Self::with) on this cell for
    /// the duration: the caller holds the only use of the arena (its `Drop`)
    /// or is the owner thread (a confined session's close runs there).
    pub(crate) unsafe fn with_unchecked<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: exclusivity is the caller's duty (see `# Safety`).
        self.value.with_mut(|p| f(unsafe { &mut *p }))
    }
}

#[cold]
#[inline(never)]
fn wrong_thread(owner: u64, current: u64) -> Error {
    Error::WrongThread { owner, current }
}
