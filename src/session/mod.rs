//! Sessions: explicit lifetimes for native memory.
//!
//! A [`Session`] owns memory (arena chunks, mapped files, libraries, upcall
//! stubs) and frees it when it closes, all at once. Four kinds exist:
//!
//! | kind | who may access | who may close | closes when |
//! |---|---|---|---|
//! | [`Session::confined`] | the creating thread | the creating thread | `close()`, or the last handle drops |
//! | [`Session::shared`] | any thread | any thread | `close()`, or the last handle drops |
//! | [`Session::global`] | any thread | nobody | never |
//! | [`Session::auto`] | any thread | nobody | the last handle drops |
//!
//! While an [`AcquireGuard`] is held the session cannot close: `close()` fails
//! with [`Error::Busy`], and `close_blocking()` waits. Plain accesses through
//! [`Session::enter`] never make another thread's close fail: close waits for
//! the few that are in flight, and later ones fail with [`Error::Closed`]; a
//! close from inside one of the calling thread's own windows (an `enter`
//! token, a `Marshal` encode/decode, an upcall) is [`Error::InUse`]. The protocol is in
//! `state.rs` (a plain access on a shared session: `enter.rs`, a per-thread
//! slot instead of a read-modify-write) and is model-checked by `loom-tests/`.

pub(crate) mod actions;
mod enter;
mod keep;
pub(crate) mod state;

#[cfg(loom)]
pub use state::broken;

use crate::error::{Error, Result};
use core::fmt;
use core::marker::PhantomData;
use std::time::{Duration, Instant};

pub(crate) use state::Core;
use state::Handle;

/// The kind of a [`Session`].
///
/// # Examples
///
/// ```
/// use memscope::{Session, SessionKind};
/// assert_eq!(Session::shared().kind(), SessionKind::Shared);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// Only the creating thread may access, acquire or close it.
    Confined,
    /// Any thread may access, acquire or close it.
    Shared,
    /// Never closes.
    Global,
    /// Closes itself when its last handle is dropped.
    Auto,
}

/// A memory lifetime. Cheap to clone (an `Arc`), `Send + Sync`.
///
/// # Examples
///
/// ```
/// use memscope::{Error, Session};
///
/// let session = Session::shared();
/// let guard = session.acquire()?;
/// assert_eq!(session.close(), Err(Error::Busy { acquired: 1 }));
/// drop(guard);
/// session.close()?;
/// assert!(!session.is_alive());
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Clone)]
pub struct Session {
    core: Handle,
}

/// A memscope thread id, as reported by [`Session::owner`] and
/// [`Error::WrongThread`].
///
/// # Examples
///
/// ```
/// let a = memscope::session::current_thread();
/// let b = std::thread::spawn(memscope::session::current_thread).join().unwrap();
/// assert_ne!(a, b);
/// ```
pub fn current_thread() -> u64 {
    crate::sync::current_thread_id()
}

/// Test knob (hidden): the next thread to be given a memscope thread id gets
/// one of at least `to`. Ids only grow, so they stay unique; this lets a test
/// reach thread ids that would otherwise take millions of threads.
///
/// # Examples
///
/// ```
/// let now = memscope::session::current_thread();
/// memscope::session::__advance_thread_ids(now + 1000);
/// let later = std::thread::spawn(memscope::session::current_thread).join().unwrap();
/// assert!(later >= now + 1000);
/// ```
#[doc(hidden)]
#[cfg(not(loom))]
pub fn __advance_thread_ids(to: u64) {
    crate::sync::advance_thread_ids(to);
}

impl Session {
    #[inline]
    fn new(kind: SessionKind) -> Session {
        Session {
            core: Handle::new(kind),
        }
    }

    /// A session only the calling thread may use, acquire or close.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session};
    /// let s = Session::confined();
    /// let s2 = s.clone();
    /// let err = std::thread::spawn(move || s2.close()).join().unwrap();
    /// assert!(matches!(err, Err(Error::WrongThread { .. })));
    /// s.close()?;
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    #[doc(alias = "ofConfined")]
    pub fn confined() -> Session {
        Session::new(SessionKind::Confined)
    }

    /// A session any thread may use, acquire or close.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = memscope::Session::shared();
    /// let s2 = s.clone();
    /// std::thread::spawn(move || s2.close()).join().unwrap()?;
    /// assert!(!s.is_alive());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    #[doc(alias = "ofShared")]
    pub fn shared() -> Session {
        Session::new(SessionKind::Shared)
    }

    /// The process-wide session that never closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session, SessionKind};
    /// let g = Session::global();
    /// assert!(matches!(g.close(), Err(Error::NotCloseable { kind: SessionKind::Global })));
    /// assert!(g.is_alive());
    /// ```
    #[doc(alias = "Arena.global")]
    pub fn global() -> Session {
        #[cfg(not(loom))]
        {
            static GLOBAL: std::sync::OnceLock<Session> = std::sync::OnceLock::new();
            GLOBAL
                .get_or_init(|| Session::new(SessionKind::Global))
                .clone()
        }
        #[cfg(loom)]
        {
            Session::new(SessionKind::Global)
        }
    }

    /// A session that closes itself when its last handle (and with it every
    /// segment, which borrows or owns a handle) is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// let s = memscope::Session::auto();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let r = ran.clone();
    /// s.add_close_action(move || r.store(true, Ordering::SeqCst))?;
    /// let s2 = s.clone();
    /// drop(s);
    /// assert!(!ran.load(Ordering::SeqCst));
    /// drop(s2);
    /// assert!(ran.load(Ordering::SeqCst));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "ofAuto")]
    pub fn auto() -> Session {
        Session::new(SessionKind::Auto)
    }

    /// The kind of this session.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::Session::auto().kind(), memscope::SessionKind::Auto);
    /// ```
    pub fn kind(&self) -> SessionKind {
        self.core.kind
    }

    /// The owner thread of a confined session (see [`current_thread`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Session, session::current_thread};
    /// assert_eq!(Session::confined().owner(), Some(current_thread()));
    /// assert_eq!(Session::shared().owner(), None);
    /// ```
    pub fn owner(&self) -> Option<u64> {
        (self.core.kind == SessionKind::Confined).then_some(self.core.owner())
    }

    /// A process-unique number naming this session (for logs).
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = (memscope::Session::shared(), memscope::Session::shared());
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> u64 {
        self.core.id()
    }

    /// Whether the session is open. For a shared session this is a snapshot:
    /// another thread may close it right after.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = memscope::Session::shared();
    /// assert!(s.is_alive());
    /// s.close()?;
    /// assert!(!s.is_alive());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        self.core.is_alive()
    }

    /// How many acquire guards are held right now (a snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = memscope::Session::shared();
    /// let _g = s.acquire()?;
    /// assert_eq!(s.acquired(), 1);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn acquired(&self) -> usize {
        self.core.acquired()
    }

    /// Keeps the session open until the returned guard drops.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after close; [`Error::WrongThread`] for a confined
    /// session used from another thread; [`Error::TooManyAcquires`] past
    /// 2^29 guards on one shard.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session};
    /// let s = Session::shared();
    /// {
    ///     let _a = s.acquire()?;
    ///     let _b = s.acquire()?; // nested acquires count
    ///     assert_eq!(s.close(), Err(Error::Busy { acquired: 2 }));
    /// }
    /// s.close()?;
    /// assert_eq!(s.acquire().unwrap_err(), Error::Closed);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn acquire(&self) -> Result<AcquireGuard<'_>> {
        let shard = self.core.acquire()?;
        Ok(AcquireGuard {
            core: &self.core,
            shard,
            _not_send: PhantomData,
        })
    }

    /// Acquires every session in `sessions` (in order), runs `f`, then
    /// releases them. If one acquire fails, the ones already taken are
    /// released and the error is returned without running `f`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session};
    /// let (a, b) = (Session::shared(), Session::shared());
    /// let n = Session::with_acquired(&[&a, &b], || {
    ///     assert_eq!(a.close(), Err(Error::Busy { acquired: 1 }));
    ///     42
    /// })?;
    /// assert_eq!(n, 42);
    /// b.close()?;
    /// assert_eq!(Session::with_acquired(&[&a, &b], || ()), Err(Error::Closed));
    /// assert_eq!(a.acquired(), 0);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "with-acquired")]
    #[doc(alias = "with-memory-region")]
    pub fn with_acquired<R>(sessions: &[&Session], f: impl FnOnce() -> R) -> Result<R> {
        // The common cases hold their guards on the stack: a guard per
        // request must not cost a heap allocation.
        match sessions {
            [] => Ok(f()),
            [a] => {
                let _g = a.acquire()?;
                Ok(f())
            }
            [a, b] => {
                let _ga = a.acquire()?;
                let _gb = b.acquire()?;
                Ok(f())
            }
            _ => {
                let mut guards = Vec::with_capacity(sessions.len());
                for s in sessions {
                    guards.push(s.acquire()?);
                }
                let r = f();
                drop(guards);
                Ok(r)
            }
        }
    }

    /// Starts a plain (unguarded) access: while the returned token lives the
    /// session's memory is not freed, but unlike a guard it does **not** make
    /// `close()` fail — close waits for the token instead. Keep it short (one
    /// read or write): segments use it around each unguarded access.
    ///
    /// A close of this session from the thread that holds the token (while
    /// it lives) fails with [`Error::InUse`]: for a confined session it would
    /// free the memory under the token, for a shared one wait for it
    /// forever. Never leak the token (`mem::forget`): a close from another
    /// thread would wait for it forever. Use [`acquire`](Self::acquire) for
    /// anything longer than one access.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after close (or once a close has begun freeing);
    /// [`Error::WrongThread`] for a confined session used elsewhere.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session};
    /// let s = Session::shared();
    /// {
    ///     let _in = s.enter()?;
    ///     // ... touch the session's memory ...
    ///     assert_eq!(s.close(), Err(Error::InUse)); // not from inside
    /// }
    /// s.close()?;
    /// assert!(s.enter().is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn enter(&self) -> Result<Access<'_>> {
        let shard = self.core.enter_user()?;
        Ok(Access {
            core: &self.core,
            shard,
            _not_send: PhantomData,
        })
    }

    /// The library's own short plain access (one read or write; no user
    /// code runs inside it): as [`enter`](Self::enter), minus the window
    /// record a close from inside would need (nothing can close from inside).
    #[inline(always)]
    pub(crate) fn enter_lib(&self) -> Result<LibAccess<'_>> {
        let shard = self.core.enter()?;
        Ok(LibAccess {
            core: &self.core,
            shard,
        })
    }

    /// Closes the session: runs its close actions (newest first) and frees its
    /// memory. Succeeds exactly once.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] while guards are held (nothing is freed);
    /// [`Error::InUse`] from inside one of this session's access windows on
    /// the calling thread (a [`Session::enter`] token, a `Marshal`
    /// `encode`/`decode`, an upcall of one of its stubs; nothing is freed);
    /// [`Error::Closed`] the second time; [`Error::NotCloseable`] for global
    /// and auto sessions; [`Error::WrongThread`] for a confined session closed
    /// from another thread; [`Error::CloseActionPanicked`] if an action
    /// panicked — the session is closed and every other action ran.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session};
    /// let s = Session::shared();
    /// s.close()?;
    /// assert_eq!(s.close(), Err(Error::Closed));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn close(&self) -> Result<()> {
        self.core.close()
    }

    /// Closes the session, first waiting (parked, not spinning) for every
    /// guard to be released.
    ///
    /// # Errors
    ///
    /// As [`close`](Self::close), except that it never returns `Busy`;
    /// [`Error::Closed`] if another thread closed it while this one waited.
    /// A confined session cannot wait (only its owner, the caller, could
    /// release its guards): it behaves exactly like `close`, `Busy` included.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = memscope::Session::shared();
    /// let s2 = s.clone();
    /// let worker = std::thread::spawn(move || {
    ///     let _g = s2.acquire().unwrap();
    ///     std::thread::sleep(std::time::Duration::from_millis(20));
    /// });
    /// std::thread::sleep(std::time::Duration::from_millis(5));
    /// s.close_blocking()?; // returns once the worker's guard is gone
    /// worker.join().unwrap();
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn close_blocking(&self) -> Result<()> {
        self.core.close_blocking(None)
    }

    /// Like [`close_blocking`](Self::close_blocking), but gives up after
    /// `timeout` with [`Error::Busy`] (the session stays open).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memscope::{Error, Session};
    /// let s = Session::shared();
    /// let g = s.acquire()?;
    /// assert_eq!(s.close_timeout(Duration::from_millis(10)), Err(Error::Busy { acquired: 1 }));
    /// drop(g);
    /// s.close_timeout(Duration::from_millis(10))?;
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn close_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        self.core.close_blocking(Some(deadline))
    }

    /// Registers `action` to run exactly once when the session closes, after
    /// its memory can no longer be reached. Actions run newest first.
    ///
    /// If the session is already closed (or closes while this call races it),
    /// the action runs at once, on this thread, and `Err(Error::Closed)` is
    /// returned so the caller knows. Actions of a global session never run.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] (the action already ran, see above);
    /// [`Error::WrongThread`] for a confined session from another thread
    /// (the action is dropped without running: it was never registered).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use memscope::{Error, Session};
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let s = Session::shared();
    /// for i in 0..3 {
    ///     let log = log.clone();
    ///     s.add_close_action(move || log.lock().unwrap().push(i))?;
    /// }
    /// s.close()?;
    /// assert_eq!(*log.lock().unwrap(), [2, 1, 0]);
    /// let l = log.clone();
    /// assert_eq!(s.add_close_action(move || l.lock().unwrap().push(9)), Err(Error::Closed));
    /// assert_eq!(log.lock().unwrap().last(), Some(&9));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn add_close_action(&self, action: impl FnOnce() + Send + 'static) -> Result<()> {
        self.core
            .add_close_action(state::Action::Boxed(Box::new(action)))
    }

    /// Keeps `other` open until this session closes (this session holds an
    /// acquire on it).
    ///
    /// Keeping the global session alive is a no-op (it never closes).
    /// `Session::global().keep_alive(&other)` keeps `other` open for the
    /// rest of the process, and with it its memory; calling it again for the
    /// same session takes no second hold and costs nothing more.
    ///
    /// # Errors
    ///
    /// Whatever acquiring `other` gives ([`Error::Closed`] …);
    /// [`Error::InvalidArgument`] if `other` is this session, or if `other`
    /// already keeps this session open, directly or through other sessions
    /// (a cycle: none of them could ever close); if `other` is
    /// confined, this session must be confined to the same thread, else
    /// [`Error::WrongThread`]; [`Error::Closed`] if this session is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session};
    /// let (outer, inner) = (Session::shared(), Session::shared());
    /// outer.keep_alive(&inner)?;
    /// assert_eq!(inner.close(), Err(Error::Busy { acquired: 1 }));
    /// // The other way round would be a cycle.
    /// assert!(matches!(inner.keep_alive(&outer), Err(Error::InvalidArgument { .. })));
    /// outer.close()?;
    /// inner.close()?;
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn keep_alive(&self, other: &Session) -> Result<()> {
        if self.core.ptr_eq(&other.core) {
            return Err(Error::InvalidArgument {
                reason: "a session cannot keep itself alive".into(),
            });
        }
        if other.kind() == SessionKind::Confined
            && (self.kind() != SessionKind::Confined || self.core.owner() != other.core.owner())
        {
            return Err(Error::WrongThread {
                owner: other.core.owner(),
                current: if self.kind() == SessionKind::Confined {
                    self.core.owner()
                } else {
                    current_thread()
                },
            });
        }
        // Checked first so that registering the action below can only fail
        // with `Closed` (which runs it): a hold is never leaked.
        self.core.check_thread()?;
        if other.kind() == SessionKind::Global {
            // The global session never closes: holding it is a no-op, and
            // registers nothing.
            return if self.is_alive() {
                Ok(())
            } else {
                Err(Error::Closed)
            };
        }
        if self.kind() == SessionKind::Global {
            return self.keep_forever(other);
        }
        let held = other.clone();
        // A close action runs exactly once, so each hold is released once.
        let confined = other.kind() == SessionKind::Confined;
        let shard = if confined {
            other.core.keep_confined()?;
            0
        } else {
            other.core.acquire()?
        };
        let release = move |held: &Session| {
            if confined {
                held.core.unkeep();
            } else {
                held.core.release(shard);
            }
        };
        // The hold is taken first, so a racing `other.keep_alive(self)` is
        // ordered with this one by the graph's lock: one of them sees the
        // other's edge.
        let (keeper, kept) = (self.id(), other.id());
        if !keep::add(keeper, kept) {
            release(&held);
            return Err(Error::InvalidArgument {
                reason: format!(
                    "keep_alive cycle: session {kept} already keeps session {keeper} \
                     open (directly or through others), so neither could close"
                ),
            });
        }
        let action = Box::new(move || {
            release(&held);
            keep::remove(keeper, kept);
        });
        // If this session is already closed the action runs at once (and
        // releases the hold) and `Err(Closed)` comes back.
        self.core.add_close_action(state::Action::Boxed(action))
    }

    /// `global.keep_alive(other)`: holds `other` open for the rest of the
    /// process, once: a repeated call for the same session takes no second
    /// hold and registers nothing more.
    fn keep_forever(&self, other: &Session) -> Result<()> {
        let shard = other.core.acquire()?;
        if !other.core.mark_kept_forever() {
            other.core.release(shard);
            return Ok(());
        }
        let held = other.clone();
        // Never runs (the global session never closes): it owns the handle
        // and the hold for good.
        self.core
            .add_close_action(state::Action::Boxed(Box::new(move || {
                held.core.release(shard)
            })))
    }

    /// Hidden (tests and loom models): like
    /// [`add_close_action`](Self::add_close_action), but the returned key
    /// can withdraw the action again with
    /// [`__withdraw_close_action`](Self::__withdraw_close_action). The
    /// crate's allocators use the same mechanism to unregister when they
    /// are dropped before their session closes.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = memscope::Session::shared();
    /// let key = s.__add_withdrawable_close_action(|| unreachable!())?;
    /// assert_eq!(s.__pending_close_actions()?, 1);
    /// assert!(s.__withdraw_close_action(key));
    /// assert_eq!(s.__pending_close_actions()?, 0);
    /// s.close()?; // runs nothing
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(hidden)]
    pub fn __add_withdrawable_close_action(
        &self,
        action: impl FnOnce() + Send + 'static,
    ) -> Result<CloseActionKey> {
        self.core
            .add_close_action_keyed(state::Action::Boxed(Box::new(action)))
            .map(CloseActionKey)
    }

    /// Hidden: withdraws an action registered by
    /// [`__add_withdrawable_close_action`](Self::__add_withdrawable_close_action)
    /// on this session. `true`: it was withdrawn and will never run (it is
    /// dropped here). `false`: it has run or will run (a close took it), the
    /// key is another session's, or this is a confined session used from
    /// another thread (the action stays registered).
    ///
    /// # Examples
    ///
    /// ```
    /// let s = memscope::Session::shared();
    /// let key = s.__add_withdrawable_close_action(|| ())?;
    /// s.close()?;
    /// assert!(!s.__withdraw_close_action(key)); // it ran
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(hidden)]
    pub fn __withdraw_close_action(&self, key: CloseActionKey) -> bool {
        self.core.withdraw_close_action(key.0).is_some()
    }

    /// Hidden (tests): how many close actions this session holds that have
    /// not run or been withdrawn (a snapshot).
    ///
    /// # Errors
    ///
    /// [`Error::WrongThread`] for a confined session used from another thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = memscope::Session::shared();
    /// s.add_close_action(|| ())?;
    /// assert_eq!(s.__pending_close_actions()?, 1);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(hidden)]
    pub fn __pending_close_actions(&self) -> Result<usize> {
        self.core.pending_close_actions()
    }

    /// Crate-internal: the core's address, for an upcall stub (see
    /// `state::Handle::from_stub`).
    #[inline]
    pub(crate) fn core_ptr(&self) -> *const Core {
        self.core.as_ptr()
    }

    /// Crate-internal: the state behind the handle.
    #[inline(always)]
    #[allow(dead_code)]
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.core, f)
    }
}

impl PartialEq for Session {
    /// Two handles are equal when they name the same session.
    fn eq(&self, other: &Self) -> bool {
        self.core.ptr_eq(&other.core)
    }
}
impl Eq for Session {}

/// Hidden: the key of a withdrawable close action (see
/// [`Session::__add_withdrawable_close_action`]); withdrawing consumes it.
///
/// # Examples
///
/// ```
/// let s = memscope::Session::shared();
/// let key: memscope::session::CloseActionKey = s.__add_withdrawable_close_action(|| ())?;
/// assert!(s.__withdraw_close_action(key));
/// # Ok::<(), memscope::Error>(())
/// ```
#[doc(hidden)]
#[derive(Debug)]
pub struct CloseActionKey(actions::ActionKey);

/// Proof that a session is acquired: while it lives the session cannot close.
/// Dropping it releases. Not `Send`: a guard is released by the thread that
/// took it.
///
/// # Examples
///
/// ```
/// let s = memscope::Session::shared();
/// let g = s.acquire()?;
/// assert!(s.close().is_err());
/// drop(g);
/// assert!(s.close().is_ok());
/// # Ok::<(), memscope::Error>(())
/// ```
#[must_use = "if unused the session is released immediately"]
#[clippy::has_significant_drop]
pub struct AcquireGuard<'s> {
    core: &'s Core,
    shard: usize,
    _not_send: PhantomData<*const ()>,
}

impl AcquireGuard<'_> {
    /// The id of the session this guard holds open.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = memscope::Session::shared();
    /// assert_eq!(s.acquire()?.session_id(), s.id());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn session_id(&self) -> u64 {
        self.core.id()
    }

    #[allow(dead_code)]
    pub(crate) fn core(&self) -> &Core {
        self.core
    }

    /// Whether this guard holds `session` open. Compares the cores, not the
    /// ids: both are alive here (the guard borrows a handle of its session,
    /// and `session` is one), and a core is only reused once every handle
    /// of it is gone, so equal addresses mean the same session (issue 12:
    /// matching by id let one session's guard unlock another's segment).
    #[inline(always)]
    pub(crate) fn holds(&self, session: &Session) -> bool {
        core::ptr::eq(self.core, session.core())
    }
}

impl Drop for AcquireGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.core.release(self.shard);
    }
}

impl fmt::Debug for AcquireGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireGuard")
            .field("session", &self.core.id())
            .finish()
    }
}

/// A plain access in flight (see [`Session::enter`]). Dropping it ends the
/// access.
///
/// # Examples
///
/// ```
/// let s = memscope::Session::shared();
/// let a = s.enter()?;
/// drop(a);
/// # Ok::<(), memscope::Error>(())
/// ```
#[must_use = "the access ends when this is dropped"]
pub struct Access<'s> {
    core: &'s Core,
    shard: usize,
    _not_send: PhantomData<*const ()>,
}

impl Drop for Access<'_> {
    #[inline]
    fn drop(&mut self) {
        self.core.exit_user(self.shard);
    }
}

impl fmt::Debug for Access<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("session", &self.core.id())
            .finish()
    }
}

/// A library-internal plain access (see [`Session::enter_lib`]); no user
/// code runs while it lives. Ends on drop.
pub(crate) struct LibAccess<'s> {
    core: &'s Core,
    shard: usize,
}

impl Drop for LibAccess<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.core.exit(self.shard);
    }
}
