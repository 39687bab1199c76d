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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::{Arc as StdArc, Mutex as StdMutex};

    /// One step of a run: register, withdraw the `i`-th key handed out (if
    /// still held), pop (what a lock-free close does), take everything (a
    /// locked close), or a recycle (`clear_withdrawn` once nothing is live).
    #[derive(Debug, Clone)]
    enum Op {
        Push,
        Withdraw(usize),
        Pop,
        TakeAll,
        Recycle,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Push),
            4 => (0usize..64).prop_map(Op::Withdraw),
            2 => Just(Op::Pop),
            1 => Just(Op::TakeAll),
            1 => Just(Op::Recycle),
        ]
    }

    /// Runs an action and returns the id it was registered with.
    fn run(a: Action, ran: &StdMutex<Vec<u64>>) -> u64 {
        match a {
            Action::Boxed(f) => f(),
            Action::Hook(_) => unreachable!("only boxed actions here"),
        }
        ran.lock()
            .unwrap()
            .pop()
            .expect("the action records its id")
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 2 } else { 256 },
            // Miri's isolation forbids the file system (regression files).
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Against a plain model (every registration in order, with a
        /// withdrawn flag): `live()` is the count of live actions, `pop`
        /// and `take_all` give the newest live action first and never a
        /// withdrawn one, a withdrawal succeeds exactly once and only for a
        /// key of this session whose action is still here, and the list
        /// stays within about twice the live actions.
        #[test]
        fn actions_match_a_plain_model(ops in proptest::collection::vec(op(), 1..160)) {
            const SESSION: u64 = 7;
            let ran = StdArc::new(StdMutex::new(Vec::new()));
            let mut a = Actions::new();
            // (id, live) per registration, oldest first; keys by id.
            let mut model: Vec<(u64, bool)> = Vec::new();
            let mut keys: Vec<Option<ActionKey>> = Vec::new();
            let mut next_id = 0u64;
            // Pops come only at close, after which the list is taken or
            // cleared: the size bound holds for lists that were not popped.
            let mut popped = false;
            for op in ops {
                match op {
                    Op::Push => {
                        let (id, r) = (next_id, ran.clone());
                        next_id += 1;
                        let f = Box::new(move || r.lock().unwrap().push(id));
                        keys.push(Some(a.push(Action::Boxed(f), SESSION)));
                        model.push((id, true));
                    }
                    Op::Withdraw(i) => {
                        let Some(slot) = keys.get_mut(i) else { continue };
                        let Some(key) = slot.take() else { continue };
                        // A key of another session matches nothing.
                        let foreign = ActionKey { seq: key.seq, session: SESSION + 1 };
                        prop_assert!(a.withdraw(foreign, SESSION).is_none());
                        let here = model.iter_mut().find(|e| e.0 == i as u64);
                        let got = a.withdraw(key, SESSION);
                        match here {
                            Some(e) if e.1 => {
                                prop_assert!(got.is_some(), "a live action was not withdrawn");
                                prop_assert_eq!(run(got.unwrap(), &ran), i as u64);
                                e.1 = false;
                            }
                            _ => prop_assert!(got.is_none(), "withdrew an action not here"),
                        }
                    }
                    Op::Pop => {
                        popped = true;
                        let want = model.iter().rposition(|e| e.1);
                        match (a.pop(), want) {
                            (Some(act), Some(j)) => {
                                prop_assert_eq!(run(act, &ran), model[j].0);
                                model.truncate(j);
                            }
                            (None, None) => model.clear(),
                            (got, want) => prop_assert!(false, "pop {:?} vs {want:?}", got.is_some()),
                        }
                    }
                    Op::TakeAll => {
                        let mut taken = a.take_all();
                        let mut want: Vec<u64> =
                            model.iter().filter(|e| e.1).map(|e| e.0).collect();
                        while let Some(act) = taken.pop() {
                            prop_assert_eq!(Some(run(act, &ran)), want.pop());
                        }
                        prop_assert!(want.is_empty(), "take_all lost {want:?}");
                        prop_assert_eq!(taken.live(), 0);
                        model.clear();
                        popped = false;
                    }
                    Op::Recycle => {
                        if model.iter().any(|e| e.1) {
                            continue;
                        }
                        a.clear_withdrawn();
                        model.clear();
                        popped = false;
                    }
                }
                let live = model.iter().filter(|e| e.1).count();
                prop_assert_eq!(a.live(), live);
                prop_assert!(
                    popped || a.list.len() <= 2 * live + COMPACT_MIN + 1,
                    "{} entries for {live} live actions", a.list.len()
                );
            }
        }
    }
}
