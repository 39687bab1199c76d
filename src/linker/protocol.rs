//! The linker's two lifetime protocols, in one place so loom can check them
//! (`loom-tests/tests/loom_linker.rs`; DESIGN.md semantics 13):
//!
//! * a segment passed to a downcall as a pointer is **acquired** for the
//!   call, so `close()` fails with `Busy` instead of freeing it mid-call;
//! * an upcall **enters** its session (a plain access) before it touches
//!   anything the session owns, so a racing close waits for it before the
//!   close action that frees the stub runs — or the upcall sees `Closed`.

use crate::session::AcquireGuard;
use crate::session::state::{Core, Handle};

use crate::{Result, Segment};

/// Acquires a downcall argument's session for the duration of the call
/// (`None` only under the broken twin `DowncallNoAcquire`).
#[inline]
pub(crate) fn acquire_argument<'a>(seg: &'a Segment<'_>) -> Result<Option<AcquireGuard<'a>>> {
    if crate::session::state::twin_on("DowncallNoAcquire") {
        return Ok(None);
    }
    seg.session().acquire().map(Some)
}

/// Holds an upcall stub argument's session for the duration of the call
/// (`None` only under the broken twin `DowncallNoAcquire`): C may call the
/// stub until the call returns, so it must not be freed before; and the
/// stub's upcalls on this thread meanwhile need no session entry of their
/// own (see [`StubHold`]).
#[inline]
pub(crate) fn acquire_stub(stub: &super::UpcallStub) -> Result<Option<StubHold>> {
    if crate::session::state::twin_on("DowncallNoAcquire") {
        return Ok(None);
    }
    StubHold::new(stub.session()).map(Some)
}

// The thread's hold mark: (core address, how many holds of this thread
// mark it). One core at a time: a hold of another core while one is marked
// is taken unmarked (its upcalls then enter as usual). loom's
// thread_local! (edition 2018 macro) takes no `const {}` init.
#[cfg(not(loom))]
crate::sync::thread_local! {
    static HELD: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}
#[cfg(loom)]
crate::sync::thread_local! {
    static HELD: std::cell::Cell<(usize, usize)> = std::cell::Cell::new((0, 0));
}

/// Whether a [`StubHold`] of the calling thread holds the session of
/// `core` open right now (one thread-local load and compare).
#[inline(always)]
pub(crate) fn held_here(core: *const Core) -> bool {
    #[cfg(loom)]
    if crate::session::state::twin_on("HeldMarkAnySession") {
        // Broken: any hold of this thread counts, whatever it holds.
        return HELD.try_with(|h| h.get().1 != 0).unwrap_or(false);
    }
    HELD.try_with(|h| {
        let (c, n) = h.get();
        n != 0 && c == core as usize
    })
    .unwrap_or(false)
}

/// A session held open by this thread around calls into C that may call
/// its upcall stubs back (made by a downcall for each stub argument, or by
/// [`UpcallStub::hold`](super::UpcallStub::hold)).
///
/// While it lives, the session is **acquired** (`close()` gives
/// [`Busy`](crate::Error::Busy)), this thread is inside a **user window**
/// of it (a `close()`/`close_blocking()` from this thread — from inside an
/// upcall, say — gives [`InUse`](crate::Error::InUse), never a free or a
/// hang), it holds a **handle** of it (the last handle cannot drop), and the
/// thread is **marked**: a direct typed upcall of a stub of this session
/// running on this thread skips its own session entry (an RMW pair and a
/// handle clone) for one thread-local compare — the row 13 fast path.
/// Sound because nothing can free the stub while the hold lives, and the
/// hold cannot end during an upcall on its thread (it is owned by a frame
/// below the upcall, and it is `!Send`). Forgetting it (`mem::forget`)
/// leaks the session (it can never close), never a stale mark: the held
/// handle keeps the core from being freed or reused.
///
/// # Examples
///
/// ```
/// use memscope::{Error, Session, linker::Linker};
/// let s = Session::shared();
/// let stub = Linker::native().upcall_typed(move |x: i32| x + 1, &s)?;
/// let f = unsafe { stub.as_fn::<extern "C" fn(i32) -> i32>() }?;
/// {
///     let _hold = stub.hold()?;
///     assert_eq!(f(1), 2); // C calling back here enters nothing
///     assert!(matches!(s.close(), Err(Error::InUse)));
/// }
/// s.close()?;
/// # Ok::<(), memscope::Error>(())
/// ```
#[must_use = "the session is released as soon as the hold drops"]
pub struct StubHold {
    session: crate::Session,
    /// The acquire's shard (`None` under the broken twin `StubHoldNoPin`).
    guard: Option<usize>,
    /// The window's shard (`None` under the broken twin).
    window: Option<usize>,
    marked: bool,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl std::fmt::Debug for StubHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubHold")
            .field("session", &self.session)
            .field("marked", &self.marked)
            .finish()
    }
}

impl StubHold {
    /// Acquires `session`, opens a user window on it and marks the thread.
    pub(crate) fn new(session: &crate::Session) -> Result<StubHold> {
        let core = session.core();
        let (guard, window) = if crate::session::state::twin_on("StubHoldNoPin") {
            // Broken: the mark without anything that keeps the session open.
            (None, None)
        } else {
            let g = core.acquire()?;
            match core.enter_user() {
                Ok(w) => (Some(g), Some(w)),
                Err(e) => {
                    core.release(g);
                    return Err(e);
                }
            }
        };
        let addr = core as *const Core as usize;
        let marked = HELD
            .try_with(|h| {
                let (c, n) = h.get();
                if n == 0 || c == addr {
                    h.set((addr, n + 1));
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        Ok(StubHold {
            session: session.clone(),
            guard,
            window,
            marked,
            _not_send: std::marker::PhantomData,
        })
    }

    /// The session held open.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, linker::Linker};
    /// let s = Session::shared();
    /// let stub = Linker::native().upcall_typed(|| 1i32, &s)?;
    /// assert_eq!(stub.hold()?.session(), &s);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn session(&self) -> &crate::Session {
        &self.session
    }
}

impl Drop for StubHold {
    fn drop(&mut self) {
        if self.marked {
            let _ = HELD.try_with(|h| {
                let (c, n) = h.get();
                h.set((c, n - 1));
            });
        }
        let core = self.session.core();
        // The window ends before the acquire is released (a closer that
        // gets past the guards would otherwise spin on the window).
        if let Some(w) = self.window {
            core.exit_user(w);
        }
        if let Some(g) = self.guard {
            core.release(g);
        }
        // `session` (the handle) drops after this body.
    }
}

/// An upcall's window on its session; ends on drop. It holds a handle of
/// the session (made from the stub's raw core pointer) until the window has
/// ended: the last handle cannot drop under a running upcall, and if this
/// one is the last, the session closes right after the window (which frees
/// the stub's closure data: the trampoline drops this token only once it
/// holds no reference to that data).
pub(crate) struct Entered {
    /// `None` for the global session (never closes) and under the broken
    /// twin `UpcallNoHandle`.
    _handle: Option<Handle>,
    core: *const Core,
    /// `None` if entering failed (the handle is still held, so that its
    /// drop, which may close the session, happens where the token drops).
    shard: Option<usize>,
}

impl Drop for Entered {
    #[inline]
    fn drop(&mut self) {
        if let Some(i) = self.shard {
            // SAFETY: the core is live: `_handle` holds it, or it is the
            // global session's (never freed), or (the broken twin only)
            // nothing does.
            unsafe { (*self.core).exit_user(i) };
        }
        // `_handle` drops after this body: the window has ended by then.
    }
}

/// Enters the core at `core` (a stub's, from `Session::core_ptr`) for one
/// upcall. The token is `None` only under the broken twin `UpcallNoEnter`;
/// on an error it is the hold without a window: drop it as the window.
///
/// # Safety
///
/// As `Handle::from_stub`: the stub's closure has not been freed.
#[inline]
pub(crate) unsafe fn enter_upcall(core: *const Core) -> (Option<Entered>, Result<()>) {
    if crate::session::state::twin_on("UpcallNoEnter") {
        return (None, Ok(()));
    }
    // SAFETY: live (the caller's contract).
    let global = unsafe { (*core).kind } == crate::SessionKind::Global;
    let handle = if global || crate::session::state::twin_on("UpcallNoHandle") {
        // A global session never closes: nothing to hold (no RMW pair).
        None
    } else {
        // SAFETY: the caller's contract.
        Some(unsafe { Handle::from_stub(core) })
    };
    // SAFETY: live: `handle` holds it (or, under the broken twin, the
    // caller's contract alone).
    let entered = unsafe { (*core).enter_user() };
    let token = Entered {
        _handle: handle,
        core,
        shard: entered.as_ref().ok().copied(),
    };
    (Some(token), entered.map(|_| ()))
}

/// Loom hooks: the protocol steps above, callable from `loom-tests`.
#[cfg(loom)]
pub mod hooks {
    use super::*;
    use crate::Session;

    /// What [`Downcall::call_with`](crate::linker::Downcall::call_with)
    /// does for each segment argument (`None` under the broken twin
    /// `DowncallNoAcquire`).
    pub fn acquire_argument<'a>(seg: &'a Segment<'_>) -> Result<Option<AcquireGuard<'a>>> {
        super::acquire_argument(seg)
    }

    /// A hold of `session` by this thread ([`StubHold`]: what a downcall
    /// takes for each stub argument; `StubHoldNoPin` breaks it).
    pub fn hold(session: &Session) -> Result<StubHold> {
        StubHold::new(session)
    }

    /// What a direct typed upcall checks first: whether this thread holds
    /// `session` open (then it skips [`enter_upcall`]).
    pub fn held_here(session: &Session) -> bool {
        super::held_here(session.core_ptr())
    }

    /// What an upcall stub does before running the user's code.
    pub fn enter_upcall(session: &Session) -> Result<Option<impl Drop + '_>> {
        // SAFETY: `session` is a live handle of the core.
        let (token, entered) = unsafe { super::enter_upcall(session.core_ptr()) };
        entered.map(|()| token)
    }

    /// What a stub's closure data holds: its session's core by raw pointer,
    /// not a handle (so the last handle can drop while an upcall runs).
    #[derive(Debug, Clone, Copy)]
    pub struct StubCore(*const Core);

    // SAFETY: a pointer to a `Sync` core, dereferenced only by `enter`,
    // whose contract keeps it live.
    unsafe impl Send for StubCore {}
    // SAFETY: as for Send.
    unsafe impl Sync for StubCore {}

    impl StubCore {
        /// The raw core of `session`, as `closure::make` takes it.
        pub fn of(session: &Session) -> StubCore {
            StubCore(session.core_ptr())
        }

        /// What the stub's trampoline does before running the user's code.
        ///
        /// # Safety
        ///
        /// The core must be live: as for a real stub, its session's close
        /// actions (which free the stub) must not have run yet.
        pub unsafe fn enter(&self) -> Result<Option<impl Drop + use<>>> {
            // SAFETY: live (the caller's contract).
            let (token, entered) = unsafe { super::enter_upcall(self.0) };
            entered.map(|()| token)
        }
    }
}
