//! Spare-state recycling: a dropped arena's state (slots, table, lock,
//! chunk-list capacity) is reused by the next arena of the same kind on
//! this thread, saving its allocations.
//!
//! Owns the per-thread spare list (at most `knobs::spare_cap()` states)
//! and the rule for when a state may go there. A state has two holders
//! while its close action is registered (the arena and the action), one
//! otherwise; each lets go with a Release `fetch_sub` on the state's own
//! `holders` counter, and the one whose decrement takes it to zero, after
//! an Acquire fence, has the only use of the state, exactly as std's
//! `Arc::drop` decides to free (the `Arc`'s own strong count is not read:
//! std reads it Relaxed, loom's synchronises, so a model could not see a
//! missing fence). Only the arena's own drop recycles; an action that lets
//! go last (the arena was dropped on another thread first) leaves the
//! state to its `Arc`.
//!
//! May touch: the state's `holders` counter; a state it holds the only use
//! of (`Inner::clean`, the standby chunk, the owner and id).

use super::state::{Inner, next_arena_id};
use crate::alloc::twins::{Twin, on};
use crate::session::SessionKind;
use crate::sync::{Arc, Ordering, fence};
use core::cell::RefCell;

/// This thread's spare states.
#[derive(Default)]
struct Spares(Vec<Arc<Inner>>);

impl Drop for Spares {
    fn drop(&mut self) {
        // Loom: a failing model unwinds through thread-local destructors
        // outside its execution, where no loom object may be touched: leak.
        #[cfg(loom)]
        if std::thread::panicking() {
            core::mem::forget(core::mem::take(&mut self.0));
        }
    }
}

#[cfg(not(loom))]
crate::sync::thread_local! {
    static SPARE: RefCell<Spares> = const { RefCell::new(Spares(Vec::new())) };
}
#[cfg(loom)]
crate::sync::thread_local! {
    static SPARE: RefCell<Spares> = RefCell::new(Spares(Vec::new()));
}

impl crate::session::actions::CloseHook for Inner {
    /// The session closed: every chunk goes back to the pool, and the
    /// action lets go of the state.
    fn on_close(&self) {
        self.release(false);
        let_go(self, 1);
    }
}

/// A spare state for a new arena of `kind`, owned by `owner`, with no
/// holder yet.
pub(super) fn take(kind: SessionKind, owner: u64) -> Option<Arc<Inner>> {
    let confined = kind == SessionKind::Confined;
    let inner = SPARE
        .try_with(|v| {
            let v = &mut v.borrow_mut().0;
            let i = v.iter().rposition(|i| i.confined == confined)?;
            Some(v.swap_remove(i))
        })
        .ok()
        .flatten()?;
    // A spare state has no holder (`give` keeps only states whose last
    // holder let go, ordered before by its fence) and nothing clones out of
    // the spare list, so plain stores through `&` suffice.
    if confined {
        inner.cur.set_owner(owner);
        // SAFETY: no holder: this is the only use of the state (above).
        unsafe { inner.attach_standby() };
    } else {
        inner.id.store(next_arena_id(), Ordering::Relaxed);
    }
    Some(inner)
}

/// One holder of `inner` lets go of `n` holds; true if it was the last
/// (and every other holder's uses happen-before the caller's next ones).
#[inline]
pub(super) fn let_go(inner: &Inner, n: usize) -> bool {
    if on(Twin::SpareRelaxedCount) {
        return inner.holders.fetch_sub(n, Ordering::Relaxed) == n;
    }
    // Release: our uses of the state happen-before the last holder's
    // fence; Acquire fence (the last holder): every other holder's uses
    // happen-before ours from here on.
    if inner.holders.fetch_sub(n, Ordering::Release) != n {
        return false;
    }
    fence(Ordering::Acquire);
    true
}

/// Keeps `inner`, whose last holder the caller just was (`let_go`), for
/// reuse if it comes back clean and the spare list has room.
pub(super) fn give(inner: Arc<Inner>) {
    #[cfg(loom)]
    if crate::twins::any() && !on(Twin::SpareRelaxedCount) && !on(Twin::ParkAfterRelease) {
        // A caught twin panics with the list's loom objects left behind.
        return;
    }
    // SAFETY: the caller was the last holder (`let_go`): the only use.
    if !unsafe { inner.clean() } {
        return;
    }
    let _ = SPARE.try_with(|v| {
        let v = &mut v.borrow_mut().0;
        if v.len() < crate::alloc::knobs::spare_cap() {
            v.push(inner);
        }
    });
}

/// Frees this thread's spare arena states (`trim_pool`).
pub(crate) fn trim() {
    let v = SPARE
        .try_with(|v| core::mem::take(&mut v.borrow_mut().0))
        .unwrap_or_default();
    drop(v);
}
