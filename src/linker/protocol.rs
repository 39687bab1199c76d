//! The linker's two lifetime protocols, in one place so loom can check them
//! (`loom-tests/tests/loom_linker.rs`; DESIGN.md semantics 13):
//!
//! * a segment passed to a downcall as a pointer is **acquired** for the
//!   call, so `close()` fails with `Busy` instead of freeing it mid-call;
//! * an upcall **enters** its session (a plain access) before it touches
//!   anything the session owns, so a racing close waits for it before the
//!   close action that frees the stub runs — or the upcall sees `Closed`.

use crate::session::AcquireGuard;
use crate::session::state::Core;
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

/// An upcall's plain access to its session; ends on drop.
#[derive(Debug)]
pub(crate) struct Entered<'a> {
    core: &'a Core,
    shard: usize,
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        self.core.exit(self.shard);
    }
}

/// Enters `core` for one upcall (`None` only under the broken twin).
#[inline]
pub(crate) fn enter_upcall(core: &Core) -> Result<Option<Entered<'_>>> {
    if crate::session::state::twin_on("UpcallNoEnter") {
        return Ok(None);
    }
    let shard = core.enter()?;
    Ok(Some(Entered { core, shard }))
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
        super::enter_upcall(session.core())
    }
}
