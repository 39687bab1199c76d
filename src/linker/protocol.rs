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

/// Acquires an upcall stub argument's session for the duration of the call
/// (`None` only under the broken twin `DowncallNoAcquire`): C may call the
/// stub until the call returns, so it must not be freed before.
#[inline]
pub(crate) fn acquire_stub(stub: &super::UpcallStub) -> Result<Option<AcquireGuard<'_>>> {
    if crate::session::state::twin_on("DowncallNoAcquire") {
        return Ok(None);
    }
    stub.session().acquire().map(Some)
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
