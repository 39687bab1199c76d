//! Loom models of the session protocol (DESIGN.md semantics 1–5).
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use memscope::session::broken::{Twin, with_twin};
use memscope::{Error, Session};

/// "Memory" owned by a session: a loom cell that the close action frees
/// (a `with_mut` write, so loom sees a race with any unsynchronised read),
/// plus a flag that readers assert on.
struct Memory {
    cell: UnsafeCell<u64>,
    live: AtomicBool,
}

// SAFETY: every access to `cell` goes through loom's UnsafeCell, which
// reports any unsynchronised concurrent access: that is the point of the model.
unsafe impl Sync for Memory {}
// SAFETY: as above; the cell holds a plain u64.
unsafe impl Send for Memory {}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

fn session_with_memory() -> (Session, Arc<Memory>) {
    let s = Session::shared();
    let m = Arc::new(Memory {
        cell: UnsafeCell::new(7),
        live: AtomicBool::new(true),
    });
    let m2 = m.clone();
    s.add_close_action(move || {
        m2.live.store(false, Ordering::Relaxed);
        m2.cell.with_mut(|p| unsafe { *p = 0xdead });
    })
    .unwrap();
    (s, m)
}

/// A guard held by one thread while another closes: close either fails with
/// Busy (and frees nothing) or the acquire fails with Closed.
fn acquire_vs_close() {
    model(|| {
        let (s, m) = session_with_memory();
        let s2 = s.clone();
        let m2 = m.clone();
        let t = thread::spawn(move || {
            if let Ok(g) = s2.acquire() {
                assert!(
                    m2.live.load(Ordering::Relaxed),
                    "memory freed under a guard"
                );
                m2.cell.with(|p| assert_eq!(unsafe { *p }, 7));
                drop(g);
            }
        });
        match s.close() {
            Ok(()) | Err(Error::Busy { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
        t.join().unwrap();
    });
}

#[test]
fn loom_acquire_vs_close() {
    acquire_vs_close();
}

#[test]
#[should_panic]
fn twin_check_then_increment_is_caught() {
    with_twin(Twin::CheckThenIncrement, acquire_vs_close);
}

#[test]
#[should_panic]
fn twin_relaxed_release_is_caught() {
    with_twin(Twin::RelaxedRelease, acquire_vs_close);
}
