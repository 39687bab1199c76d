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

    /// A mutex with parking_lot's shape (`lock()` returns the guard) whose
    /// data lives in a loom cell beside a `loom::sync::Mutex<()>`: a locked
    /// access is a tracked cell access made while the loom mutex is held,
    /// and [`with_unlocked`] is a tracked cell access made WITHOUT the lock,
    /// as in the real build. So a lock-free confined path (`claim_arena`,
    /// `close_confined`, confined `add_close_action`,
    /// `run_actions_unlocked`, `close_unique`, `reset`) is checked as it
    /// really runs: an access from another thread that is not ordered with
    /// it (by the lock, a handle count's Release/Acquire, a spawn or a join)
    /// is a "Causality violation" (issue 13; LOOM.md).
    pub(crate) struct Mutex<T> {
        lock: loom::sync::Mutex<()>,
        data: loom::cell::UnsafeCell<T>,
    }

    // SAFETY: the data is reached only through a guard (the loom mutex held)
    // or `with_unlocked` (the caller's exclusivity contract, which loom
    // checks through the cell); it moves between threads with them.
    unsafe impl<T: Send> Sync for Mutex<T> {}
    // SAFETY: the mutex owns its data; sending it sends the data.
    unsafe impl<T: Send> Send for Mutex<T> {}

    impl<T> core::fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("Mutex").finish_non_exhaustive()
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Mutex::new(T::default())
        }
    }

    /// The guard: the loom lock plus the tracked write access to the data
    /// (ended before the lock is released).
    pub(crate) struct MutexGuard<'a, T> {
        m: &'a Mutex<T>,
        ptr: Option<loom::cell::MutPtr<T>>,
        lock: Option<loom::sync::MutexGuard<'a, ()>>,
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Mutex {
                lock: loom::sync::Mutex::new(()),
                data: loom::cell::UnsafeCell::new(v),
            }
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            let lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            MutexGuard {
                m: self,
                ptr: Some(self.data.get_mut()),
                lock: Some(lock),
            }
        }
    }

    impl<T> core::ops::Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            match &self.ptr {
                // SAFETY: the guard holds the lock; loom tracks the access
                // until the guard drops (or waits).
                Some(p) => unsafe { p.deref() },
                None => unreachable!("the access ends only in drop or wait"),
            }
        }
    }

    impl<T> core::ops::DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            match &self.ptr {
                // SAFETY: as for Deref; the guard is borrowed uniquely.
                Some(p) => unsafe { p.deref() },
                None => unreachable!("the access ends only in drop or wait"),
            }
        }
    }

    impl<T> Drop for MutexGuard<'_, T> {
        fn drop(&mut self) {
            // The data access ends before the unlock.
            drop(self.ptr.take());
            drop(self.lock.take());
        }
    }

    /// Loom: runs `f` on the data without the lock, as a tracked access of
    /// the data's loom cell: loom reports any access by another thread that
    /// is not ordered with this one (the real build's contract, checked).
    ///
    /// # Safety
    ///
    /// As the std version: no concurrent access to `m`.
    pub(crate) unsafe fn with_unlocked<T, R>(m: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
        let p = m.data.get_mut();
        // SAFETY: exclusivity is the caller's contract, and loom checks it
        // (the access is tracked until `p` drops, after `f`).
        f(unsafe { p.deref() })
    }

    /// `loom::sync::Condvar` with a guard-in, guard-out API shared with the std build.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }
        pub(crate) fn wait<'a, T>(&self, mut g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            // End the data access, sleep on the loom lock, then take it up
            // again (as a real condvar wait does).
            drop(g.ptr.take());
            let lock = g.lock.take().expect("a guard holds its lock");
            let lock = self.0.wait(lock).unwrap_or_else(|e| e.into_inner());
            g.lock = Some(lock);
            g.ptr = Some(g.m.data.get_mut());
            g
        }
        /// Loom does not model time. A deadline that has already passed
        /// (`close_timeout(Duration::ZERO)`) times out at once, after
        /// letting the other threads run with the lock released (a real
        /// timed wait unlocks too); a later deadline is an untimed wait that
        /// reports "not timed out". So the time-out branch is reachable in a
        /// model.
        pub(crate) fn wait_until<'a, T>(
            &self,
            mut g: MutexGuard<'a, T>,
            deadline: std::time::Instant,
        ) -> (MutexGuard<'a, T>, bool) {
            if std::time::Instant::now() >= deadline {
                drop(g.ptr.take());
                drop(g.lock.take());
                loom::thread::yield_now();
                let lock = g.m.lock.lock().unwrap_or_else(|e| e.into_inner());
                g.lock = Some(lock);
                g.ptr = Some(g.m.data.get_mut());
                return (g, true);
            }
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

// ----- Counted: reference counting loom sees (issue 13, linker lifetimes) -----

/// Under loom: std's `Arc`/`Weak` (which decide when the value drops), plus
/// a loom counter that every clone, upgrade and drop also counts, as
/// `Arc::drop` does: Relaxed increments, a Release decrement, and after
/// the decrement that takes it to zero an Acquire fence. So loom sees every
/// holder's uses happen-before the value's drop (loom cannot see std's
/// counting; loom's own `Arc` has no `Weak`). The std count and the loom
/// count move together: no loom operation lies between the two.
#[cfg(loom)]
pub(crate) use counted::{Counted, CountedWeak};
/// `std::sync::Arc`/`Weak` outside loom (the same types, no cost).
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc as Counted, Weak as CountedWeak};

#[cfg(loom)]
mod counted {
    use std::mem::ManuallyDrop;

    type Count = std::sync::Arc<ManuallyDrop<loom::sync::atomic::AtomicUsize>>;

    /// See [`super::Counted`].
    pub(crate) struct Counted<T> {
        // Declared first: dropped after `Drop::drop` has counted the drop.
        arc: std::sync::Arc<T>,
        n: Count,
    }

    /// See [`super::Counted`].
    pub(crate) struct CountedWeak<T> {
        weak: std::sync::Weak<T>,
        n: Count,
    }

    /// A failing model unwinds through drops outside its execution, where
    /// loom objects must not be touched.
    fn off() -> bool {
        std::thread::panicking()
    }

    impl<T> Counted<T> {
        pub(crate) fn new(v: T) -> Self {
            Counted {
                arc: std::sync::Arc::new(v),
                // Leaked with the value's last holder (ManuallyDrop): a
                // loom object must not be dropped outside its execution.
                n: std::sync::Arc::new(ManuallyDrop::new(loom::sync::atomic::AtomicUsize::new(1))),
            }
        }
        pub(crate) fn downgrade(this: &Self) -> CountedWeak<T> {
            CountedWeak {
                weak: std::sync::Arc::downgrade(&this.arc),
                n: this.n.clone(),
            }
        }
    }

    impl<T> CountedWeak<T> {
        pub(crate) fn upgrade(&self) -> Option<Counted<T>> {
            let arc = self.weak.upgrade()?;
            if !off() {
                self.n.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
            }
            Some(Counted {
                arc,
                n: self.n.clone(),
            })
        }
    }

    impl<T> Clone for Counted<T> {
        fn clone(&self) -> Self {
            if !off() {
                self.n.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
            }
            Counted {
                arc: self.arc.clone(),
                n: self.n.clone(),
            }
        }
    }

    impl<T> Clone for CountedWeak<T> {
        fn clone(&self) -> Self {
            CountedWeak {
                weak: self.weak.clone(),
                n: self.n.clone(),
            }
        }
    }

    impl<T> Drop for Counted<T> {
        fn drop(&mut self) {
            use loom::sync::atomic::{Ordering, fence};
            if !off() && self.n.fetch_sub(1, Ordering::Release) == 1 {
                fence(Ordering::Acquire);
            }
        }
    }

    impl<T> core::ops::Deref for Counted<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.arc
        }
    }
}
