//! Shared helpers for the loom models in `tests/` (built only with
//! `--cfg loom`): memory that a session's close action frees, visible to
//! loom, and a model runner that prints its iteration count.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use memscope::Session;

/// "Memory" owned by a session: a loom cell that the close action frees (a
/// `with_mut` write, so loom reports any read that is not ordered before the
/// free), plus a flag readers assert on.
#[derive(Debug)]
pub struct Memory {
    cell: UnsafeCell<u64>,
    live: AtomicBool,
}

// SAFETY: every access to `cell` goes through loom's UnsafeCell, which
// reports any unsynchronised concurrent access: that is the point of a model.
unsafe impl Sync for Memory {}
// SAFETY: as above; the cell holds a plain u64.
unsafe impl Send for Memory {}

impl Memory {
    /// Live memory holding 7.
    pub fn new() -> Arc<Memory> {
        Arc::new(Memory {
            cell: UnsafeCell::new(7),
            live: AtomicBool::new(true),
        })
    }

    /// Reads the memory as a user would under a guard or a plain access: it
    /// must be live and unfreed.
    pub fn read(&self) {
        assert!(self.live.load(Ordering::Relaxed), "memory freed under use");
        // SAFETY: loom checks this read against the free in the close action.
        self.cell
            .with(|p| assert_eq!(unsafe { *p }, 7, "read freed memory"));
    }

    /// Frees the memory (what a close action does).
    pub fn free(&self) {
        self.live.store(false, Ordering::Relaxed);
        // SAFETY: loom checks this write against every read of the cell.
        self.cell.with_mut(|p| unsafe { *p = 0xdead });
    }

    /// Whether `free` has run (as seen by this thread).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }
}

/// Registers a close action on `s` that frees `m`.
pub fn free_on_close(s: &Session, m: &Arc<Memory>) {
    let m2 = m.clone();
    s.add_close_action(move || m2.free())
        .expect("session open when the model starts");
}

/// A shared session whose close action frees a fresh `Memory`.
pub fn session_with_memory() -> (Session, Arc<Memory>) {
    let s = Session::shared();
    let m = Memory::new();
    free_on_close(&s, &m);
    (s, m)
}

/// Runs `f` under loom (preemption bound 3 unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise) and prints `loom model NAME: N iterations`.
pub fn model_named(name: &str, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize as StdCount, Ordering::Relaxed};
    let count = std::sync::Arc::new(StdCount::new(0));
    let c = count.clone();
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(move || {
        c.fetch_add(1, Relaxed);
        f()
    });
    println!("loom model {name}: {} iterations", count.load(Relaxed));
}

/// [`model_named`], named after the running test (libtest names its threads
/// after the tests).
pub fn model(f: impl Fn() + Sync + Send + 'static) {
    let name = std::thread::current().name().unwrap_or("?").to_string();
    model_named(name.trim_start_matches("loom_"), f);
}
