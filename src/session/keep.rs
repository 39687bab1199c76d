//! The `keep_alive` graph: which session holds which open, so that a hold
//! that would close a cycle (`a` keeps `b` keeps … keeps `a`) is refused:
//! no session of such a cycle could ever close, and their close actions
//! would never run.
//!
//! Nodes are session ids, which never repeat (see `state::next_session_id`),
//! so an edge can only ever name the sessions it was made for. An edge is
//! added, under one process-wide lock, after the hold is taken and before
//! the keeper's close action is registered, and removed by that action when
//! it releases the hold. Global sessions are no nodes: nothing can keep the
//! global session (that is a no-op), so it can be in no cycle.

use std::collections::{BTreeMap, BTreeSet};

use crate::sync::Mutex;

/// keeper id -> ids it keeps (one entry per hold: holds may repeat).
type Graph = BTreeMap<u64, Vec<u64>>;

#[cfg(not(loom))]
fn with_graph<R>(f: impl FnOnce(&mut Graph) -> R) -> R {
    static GRAPH: Mutex<Graph> = Mutex::new(BTreeMap::new());
    f(&mut GRAPH.lock())
}

#[cfg(loom)]
fn with_graph<R>(f: impl FnOnce(&mut Graph) -> R) -> R {
    crate::sync::lazy_static! {
        static ref GRAPH: Mutex<Graph> = Mutex::new(BTreeMap::new());
    }
    f(&mut GRAPH.lock())
}

/// Whether `to` is reachable from `from` (or is `from`).
fn reaches(g: &Graph, from: u64, to: u64) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(n) = stack.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n)
            && let Some(next) = g.get(&n)
        {
            stack.extend(next.iter().copied().filter(|m| !seen.contains(m)));
        }
    }
    false
}

/// Records "`keeper` keeps `kept`" unless `kept` already (transitively)
/// keeps `keeper`; `false` if that would close a cycle.
pub(crate) fn add(keeper: u64, kept: u64) -> bool {
    if super::state::twin_on("KeepGraphCheckThenAdd") {
        if with_graph(|g| reaches(g, kept, keeper)) {
            return false;
        }
        crate::sync::yield_now();
        with_graph(|g| g.entry(keeper).or_default().push(kept));
        return true;
    }
    with_graph(|g| {
        if reaches(g, kept, keeper) {
            return false;
        }
        g.entry(keeper).or_default().push(kept);
        true
    })
}

/// Removes one "`keeper` keeps `kept`" recorded by [`add`].
pub(crate) fn remove(keeper: u64, kept: u64) {
    with_graph(|g| {
        if let Some(v) = g.get_mut(&keeper) {
            if let Some(i) = v.iter().rposition(|&m| m == kept) {
                v.swap_remove(i);
            }
            if v.is_empty() {
                g.remove(&keeper);
            }
        }
    });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Holds may repeat and are released one by one; once every hold is
    /// released the graph holds nothing of them (it would otherwise grow
    /// with every `keep_alive` ever made on a long-lived process), and an
    /// edge gone is no longer a path for the cycle check.
    #[test]
    fn released_holds_leave_nothing_in_the_graph() {
        // Far above any real session id (ids count up from 0 and never
        // repeat), so tests running beside this one cannot collide.
        let (a, b, c) = (u64::MAX - 3, u64::MAX - 2, u64::MAX - 1);
        assert!(add(a, b));
        assert!(add(a, b), "a repeated hold");
        assert!(add(a, c));
        assert!(add(b, c));
        assert!(!add(c, a), "c -> a closes a cycle through b or directly");
        assert!(!add(b, a), "b -> a closes a cycle");
        remove(a, b);
        assert!(!add(b, a), "a still keeps b once");
        remove(a, b);
        assert!(add(b, a), "a no longer keeps b");
        remove(b, a);
        remove(a, c);
        remove(b, c);
        with_graph(|g| {
            for n in [a, b, c] {
                assert!(
                    !g.contains_key(&n),
                    "{n} left in the graph: {:?}",
                    g.get(&n)
                );
            }
        });
    }
}
