//! A session's registered close actions: a LIFO list from which an action
//! can also be withdrawn (dropped without running) by the key its
//! registration returned.
//!
//! Every registration gets the next number of a per-core 64-bit sequence
//! (never reset, not even when the core is recycled), so the list is sorted
//! by key: withdrawal finds its entry by binary search and leaves a
//! tombstone, trailing tombstones are trimmed at once, and the list is
//! compacted when tombstones are the majority, so a withdrawal costs
//! amortised O(log n) and the list never holds more than about twice the
//! live actions. This is what keeps a long-lived session (the global one
//! above all) from growing with every allocator made and dropped on it.

use super::state::Action;
use crate::sync::Arc;

/// A close action that is its owner's own shared state (an allocator's):
/// registering it ([`Hook::new`]) costs an `Arc` clone, no allocation, and
/// the session needs to know nothing of the owner's type. `on_close` runs
/// at most once per registration (never if the registration is withdrawn),
/// then the session drops its `Arc`.
pub(crate) trait CloseHook: Send + Sync + 'static {
    /// The session closed (or was already closed at registration).
    fn on_close(&self);
}

/// An `Arc<H>` of some [`CloseHook`] type `H`, with the type erased by a
/// two-entry table of functions (no `Arc<dyn _>`: loom's `Arc` cannot
/// coerce to a trait object).
pub(crate) struct Hook {
    ptr: *const (),
    run: unsafe fn(*const ()),
    drop: unsafe fn(*const ()),
}

// SAFETY: `Hook` owns an `Arc<H>` with `H: Send + Sync` (`CloseHook`'s
// bounds), which is `Send` and `Sync`.
unsafe impl Send for Hook {}
// SAFETY: as above.
unsafe impl Sync for Hook {}

impl Hook {
    /// Erases `h`'s type.
    pub(crate) fn new<H: CloseHook>(h: Arc<H>) -> Hook {
        /// # Safety
        ///
        /// `p` came from `Arc::<H>::into_raw` and is still owned.
        unsafe fn run<H: CloseHook>(p: *const ()) {
            // SAFETY: `p` is a live `Arc<H>`'s pointer (the caller's duty).
            unsafe { &*p.cast::<H>() }.on_close();
        }
        /// # Safety
        ///
        /// `p` came from `Arc::<H>::into_raw`, and is given up here.
        unsafe fn drop<H: CloseHook>(p: *const ()) {
            // SAFETY: the caller's duty: this ends the `Arc` made in `new`.
            core::mem::drop(unsafe { Arc::from_raw(p.cast::<H>()) });
        }
        Hook {
            ptr: Arc::into_raw(h).cast(),
            run: run::<H>,
            drop: drop::<H>,
        }
    }

    /// Runs the hook's `on_close`.
    pub(crate) fn on_close(&self) {
        // SAFETY: `ptr` is the `Arc<H>` made in `new` for this `run`, owned
        // by `self` until its drop.
        unsafe { (self.run)(self.ptr) }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `drop` were made together in `new`; this is the
        // one place the `Arc` is given up.
        unsafe { (self.drop)(self.ptr) }
    }
}

/// Names one registration of a close action (see [`Actions::withdraw`]):
/// its place in the sequence and the session (id) it was made on, so a key
/// of another session, or of an earlier session of a recycled core (ids
/// never repeat), matches nothing. Not `Clone`: withdrawing consumes it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ActionKey {
    seq: u64,
    session: u64,
}

/// Tombstones tolerated before a compaction is considered.
const COMPACT_MIN: usize = 16;

/// The close actions of one session, oldest first.
#[derive(Default)]
pub(crate) struct Actions {
    /// `(key, action)`, keys ascending; `None` is a withdrawn action.
    list: Vec<(u64, Option<Action>)>,
    /// The key the next registration gets.
    next: u64,
    /// How many `None` entries `list` holds.
    withdrawn: usize,
}

impl Actions {
    /// An empty list.
    pub(crate) const fn new() -> Actions {
        Actions {
            list: Vec::new(),
            next: 0,
            withdrawn: 0,
        }
    }

    /// Registers `a` as the newest action of session `session` (its id).
    #[inline]
    pub(crate) fn push(&mut self, a: Action, session: u64) -> ActionKey {
        let seq = self.next;
        self.next += 1;
        self.list.push((seq, Some(a)));
        ActionKey { seq, session }
    }

    /// Removes and returns the newest action not withdrawn (capacity kept).
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Action> {
        loop {
            match self.list.pop()? {
                (_, Some(a)) => return Some(a),
                (_, None) => self.withdrawn -= 1,
            }
        }
    }

    /// How many actions are registered and not withdrawn.
    #[inline]
    pub(crate) fn live(&self) -> usize {
        self.list.len() - self.withdrawn
    }

    /// Takes every action out (newest last), leaving the list empty; the
    /// key sequence goes on.
    pub(crate) fn take_all(&mut self) -> Actions {
        Actions {
            list: core::mem::take(&mut self.list),
            next: self.next,
            withdrawn: core::mem::take(&mut self.withdrawn),
        }
    }

    /// Forgets tombstones (only they can be left once `live()` is 0).
    pub(crate) fn clear_withdrawn(&mut self) {
        debug_assert_eq!(self.live(), 0);
        self.list.clear();
        self.withdrawn = 0;
    }

    /// Withdraws the action registered under `key`: it will not run, and
    /// is handed back for the caller to drop (outside any lock). `None` if
    /// it is not here (or `key` is of another session than `session`): it already ran or is running (a close took it), or
    /// was withdrawn before.
    pub(crate) fn withdraw(&mut self, key: ActionKey, session: u64) -> Option<Action> {
        if key.session != session {
            return None;
        }
        let i = self.list.binary_search_by_key(&key.seq, |e| e.0).ok()?;
        let a = self.list[i].1.take()?;
        self.withdrawn += 1;
        self.trim();
        if self.withdrawn > COMPACT_MIN && self.withdrawn * 2 > self.list.len() {
            self.list.retain(|e| e.1.is_some());
            self.withdrawn = 0;
        }
        Some(a)
    }

    /// Drops trailing tombstones.
    #[inline]
    fn trim(&mut self) {
        while let Some((_, None)) = self.list.last() {
            self.list.pop();
            self.withdrawn -= 1;
        }
    }
}
