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

    /// The key the next registration will get: every action registered
    /// from now on has a key at least this (see `Control::arena_at`).
    #[inline]
    pub(crate) fn mark(&self) -> u64 {
        self.next
    }

    /// The key of the newest action not withdrawn.
    #[inline]
    pub(crate) fn newest(&mut self) -> Option<u64> {
        self.trim();
        self.list.last().map(|e| e.0)
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
