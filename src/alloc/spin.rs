//! The lock of an arena's cold path: a test-and-test-and-set spin lock.
//!
//! An arena's `slow` state is locked rarely (refills, release, reset,
//! statistics) and held briefly, and nearly always uncontended: a confined
//! arena's lock is taken by its owner thread, by others only for statistics
//! or limits. What its cost is made of, then, is the uncontended pair: a
//! parking mutex pays an atomic read-modify-write to lock *and* one to unlock
//! (it must see parked waiters), ~9 ns each here; this lock pays one to lock
//! and a plain Release store to unlock (PERFORMANCE.md row 4: open + allocate
//! and close of a confined arena). A waiter spins briefly, then yields the CPU
//! (a holder that was descheduled gets to run); it never parks.
//!
//! Under loom the data lives in a loom cell, so a model sees every access
//! made under the lock, and the broken twin `SpinRelaxedUnlock` (unlock with
//! a Relaxed store) must be caught as a data race.

use crate::sync::{AtomicBool, Ordering, spin_loop, yield_now};
use core::ops::{Deref, DerefMut};

/// A mutex whose uncontended lock + unlock costs one atomic
/// read-modify-write (see the module docs).
pub(crate) struct SpinMutex<T> {
    locked: AtomicBool,
    #[cfg(not(loom))]
    data: core::cell::UnsafeCell<T>,
    #[cfg(loom)]
    data: loom::cell::UnsafeCell<T>,
}

// SAFETY: the data is reached only through a guard, and `locked` (Acquire
// CAS to lock, Release store to unlock) makes guards exclusive and orders
// each holder's accesses before the next holder's; the data moves between
// threads with its guards, hence `T: Send`.
unsafe impl<T: Send> Sync for SpinMutex<T> {}
// SAFETY: the mutex owns its data; sending it sends the data.
unsafe impl<T: Send> Send for SpinMutex<T> {}

/// Exclusive access to a [`SpinMutex`]'s data until dropped.
pub(crate) struct SpinGuard<'a, T> {
    m: &'a SpinMutex<T>,
    /// Loom: the tracked write access, ended before the unlock.
    #[cfg(loom)]
    ptr: Option<loom::cell::MutPtr<T>>,
}

impl<T> SpinMutex<T> {
    pub(crate) fn new(v: T) -> SpinMutex<T> {
        SpinMutex {
            locked: AtomicBool::new(false),
            #[cfg(not(loom))]
            data: core::cell::UnsafeCell::new(v),
            #[cfg(loom)]
            data: loom::cell::UnsafeCell::new(v),
        }
    }

    /// Locks, spinning (then yielding) while another thread holds the lock.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        // Acquire: pairs with the previous holder's Release unlock, so its
        // accesses to the data happen-before ours.
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SpinGuard {
            m: self,
            #[cfg(loom)]
            ptr: Some(self.data.get_mut()),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            // Test before test-and-set: wait on a plain load (no cache-line
            // ping-pong), then try again. Not crossbeam's `Backoff`: under
            // loom every spin must yield through the shim's `yield_now`
            // (Backoff yields through std's, which loom does not see, so
            // the model would exceed its branch bound).
            while self.locked.load(Ordering::Relaxed) {
                spins = spins.saturating_add(1);
                if cfg!(loom) || spins > 64 {
                    yield_now();
                } else {
                    spin_loop();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Runs `f` on the data without taking the lock (loom: a tracked access
    /// of the data's loom cell, also without the lock, so a model checks the
    /// caller's claim of exclusivity as the real build relies on it).
    ///
    /// # Safety
    ///
    /// No other thread may access the mutex while `f` runs, every earlier
    /// access by another thread must happen-before this call, and `f` must
    /// not touch the mutex itself.
    #[inline(always)]
    pub(crate) unsafe fn with_unlocked<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        #[cfg(not(loom))]
        {
            // SAFETY: exclusive access is the caller's contract, so this is
            // the only reference to the data while `f` runs.
            f(unsafe { &mut *self.data.get() })
        }
        #[cfg(loom)]
        {
            let p = self.data.get_mut();
            // SAFETY: exclusivity is the caller's contract, and loom checks
            // it (the access is tracked until `p` drops, after `f`).
            f(unsafe { p.deref() })
        }
    }

    /// The data, through a unique borrow of the mutex (no locking).
    #[cfg(not(loom))]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        #[cfg(not(loom))]
        {
            // SAFETY: the guard holds the lock (`lock`), so no other
            // reference to the data exists while it lives.
            unsafe { &*self.m.data.get() }
        }
        #[cfg(loom)]
        {
            match &self.ptr {
                // SAFETY: as above; loom tracks the access until the guard
                // drops.
                Some(p) => unsafe { p.deref() },
                None => unreachable!("the access ends only in drop"),
            }
        }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        #[cfg(not(loom))]
        {
            // SAFETY: the guard holds the lock (`lock`) and is borrowed
            // uniquely, so this is the only reference to the data.
            unsafe { &mut *self.m.data.get() }
        }
        #[cfg(loom)]
        {
            match &self.ptr {
                // SAFETY: as above; loom tracks the access until the guard
                // drops.
                Some(p) => unsafe { p.deref() },
                None => unreachable!("the access ends only in drop"),
            }
        }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(loom)]
        drop(self.ptr.take());
        if crate::session::state::twin_on("SpinRelaxedUnlock") {
            self.m.locked.store(false, Ordering::Relaxed);
            return;
        }
        // Release: our accesses to the data happen-before the next holder's
        // Acquire lock.
        self.m.locked.store(false, Ordering::Release);
    }
}

impl<T> core::fmt::Debug for SpinMutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpinMutex").finish_non_exhaustive()
    }
}
