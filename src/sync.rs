//! The loom switch: every atomic, cell, `Arc`, mutex, condvar, thread-local and
//! thread id in memscope comes through this module.
//!
//! Under `--cfg loom` it re-exports loom's model types so that `loom-tests/` can
//! model-check the session, arena and stack protocols; otherwise it re-exports
//! `std`'s atomics, `parking_lot`'s locks and a zero-cost `UnsafeCell` wrapper
//! with loom's `with`/`with_mut` API. Code outside this module never names
//! `std::sync::atomic` or `std::thread_local!` directly (see LOOM.md: anything
//! that bypasses the shim is invisible to loom).

#![allow(unused_imports, dead_code, unreachable_pub)]

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::hint::spin_loop;
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::sync::atomic::{
        AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };
    pub(crate) use loom::thread;
    pub(crate) use loom::thread::yield_now;
    pub(crate) use loom::{lazy_static, thread_local};

    /// `loom::sync::Mutex` with parking_lot's shape: `lock()` returns the guard.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Mutex(loom::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// Loom: takes the lock (loom still checks the caller's exclusivity).
    ///
    /// # Safety
    ///
    /// As the std version: no concurrent access to `m`.
    pub(crate) unsafe fn with_unlocked<T, R>(m: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut m.lock())
    }

    /// `loom::sync::Condvar` with a guard-in, guard-out API shared with the std build.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }
        pub(crate) fn wait<'a, T>(&self, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(g).unwrap_or_else(|e| e.into_inner())
        }
        /// Loom does not model time: a timed wait is an untimed wait that
        /// reports "not timed out".
        pub(crate) fn wait_until<'a, T>(
            &self,
            g: MutexGuard<'a, T>,
            _deadline: std::time::Instant,
        ) -> (MutexGuard<'a, T>, bool) {
            (self.wait(g), false)
        }
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(not(loom))]
mod imp {
    pub(crate) use core::hint::spin_loop;
    pub(crate) use core::sync::atomic::{
        AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };
    pub(crate) use std::sync::Arc;
    pub(crate) use std::thread;
    pub(crate) use std::thread::yield_now;
    pub(crate) use std::thread_local;

    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    /// Runs `f` on `m`'s data without taking the lock (no atomic
    /// read-modify-write: the confined-session fast path).
    ///
    /// # Safety
    ///
    /// No other thread may access `m` while `f` runs, every earlier access
    /// by another thread must happen-before this call, and `f` must not touch
    /// `m` itself.
    #[inline(always)]
    pub(crate) unsafe fn with_unlocked<T, R>(m: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the caller guarantees exclusive access (see above), so this
        // is the only reference to the data while `f` runs.
        f(unsafe { &mut *m.data_ptr() })
    }

    /// parking_lot's condvar with a guard-in, guard-out API shared with the loom build.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) const fn new() -> Self {
            Condvar(parking_lot::Condvar::new())
        }
        pub(crate) fn wait<'a, T>(&self, mut g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut g);
            g
        }
        /// Waits until notified or until `deadline`; the flag is `true` on time-out.
        pub(crate) fn wait_until<'a, T>(
            &self,
            mut g: MutexGuard<'a, T>,
            deadline: std::time::Instant,
        ) -> (MutexGuard<'a, T>, bool) {
            let r = self.0.wait_until(&mut g, deadline);
            (g, r.timed_out())
        }
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// `std::cell::UnsafeCell` with loom's closure-based API, so the same code
    /// compiles against both (crossbeam's `primitive` module does the same).
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        #[inline(always)]
        pub(crate) const fn new(v: T) -> Self {
            UnsafeCell(core::cell::UnsafeCell::new(v))
        }
    }

    impl<T: ?Sized> UnsafeCell<T> {
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

pub(crate) use imp::*;

/// The next thread id to hand out (std build).
#[cfg(not(loom))]
static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);

/// Test knob: makes the next thread that asks get an id of at least `to`
/// (ids only ever grow, so they stay unique). Lets a test reach thread ids
/// that would otherwise take millions of threads.
#[cfg(not(loom))]
pub(crate) fn advance_thread_ids(to: u64) {
    NEXT_THREAD_ID.fetch_max(to, Ordering::Relaxed);
}

/// A small integer naming a thread, unique for the life of the process
/// (loom: for the life of one model execution). Zero is never handed out.
#[inline]
pub(crate) fn current_thread_id() -> u64 {
    #[cfg(not(loom))]
    {
        std::thread_local! {
            // Const-initialised (0 = not yet assigned): reading it is one
            // thread-relative load, with no lazy-init state to check.
            static ID: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
        }
        ID.with(|id| {
            let v = id.get();
            if v != 0 {
                v
            } else {
                let v = NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed);
                id.set(v);
                v
            }
        })
    }
    #[cfg(loom)]
    {
        loom::lazy_static! {
            static ref NEXT: AtomicU64 = AtomicU64::new(1);
        }
        loom::thread_local! {
            static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        ID.with(|id| *id)
    }
}

/// Pads and aligns a value to a cache line so that per-thread shards do not
/// share one: crossbeam's `CachePadded` (generic, so loom atomics fit in it,
/// and sized per architecture).
pub(crate) use crossbeam::utils::CachePadded;

/// How many per-core slots a sharded structure should have: available
/// parallelism rounded up to a power of two, at most 64 (computed once).
#[cfg(not(loom))]
pub(crate) fn per_core_slots() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .next_power_of_two()
            .min(64)
    })
}
