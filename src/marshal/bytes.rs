//! The unsafe core of marshaling: one checked access to a segment, exposed
//! to safe code as a byte slice of exactly the requested length.
//!
//! Everything else in `marshal/` encodes and decodes plain `&[u8]` /
//! `&mut [u8]`, so a whole struct costs one bounds check, one alignment check
//! and one liveness check (`Session::enter`, free for global sessions).

use crate::error::{Error, Result};
use crate::segment::Segment;
use crate::session::{Access, AcquireGuard, Session, SessionKind};

/// Bounds (overflow-safe) and alignment check only.
#[inline(always)]
fn check(seg: &Segment<'_>, offset: usize, len: usize, align: usize) -> Result<*mut u8> {
    if align > 1 {
        seg.raw.check_aligned(offset, len, align)
    } else {
        seg.raw.check(offset, len)
    }
}

/// Enters `session` unless it is global (a global session never closes and
/// has no owner thread, so there is nothing to check).
#[inline(always)]
fn enter_unless_global(session: &Session) -> Result<Option<Access<'_>>> {
    if session.kind() == SessionKind::Global {
        Ok(None)
    } else {
        session.enter().map(Some)
    }
}

/// Runs `f` on `len` bytes at `offset` of `seg` after checking bounds,
/// alignment of the address to `align` (a power of two), and the session
/// (liveness and thread, held until `f` returns; nothing to check for a
/// global session, which never closes and has no owner thread).
#[inline(always)]
pub(crate) fn with_bytes<R>(
    seg: &Segment<'_>,
    offset: usize,
    len: usize,
    align: usize,
    f: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<R> {
    let p = check(seg, offset, len, align)?;
    let _access = enter_unless_global(seg.session())?;
    // SAFETY: `p .. p + len` lies inside the segment (checked above) and the
    // session is entered (or global, never closing) until `_access` drops
    // after `f`, so the memory is live; segment memory is initialised
    // (allocators never expose uninitialised bytes, `Segment::from_raw`
    // requires readable memory); writes need `&mut Segment`, so none can
    // overlap this shared borrow.
    f(unsafe { core::slice::from_raw_parts(p, len) })
}

/// As [`with_bytes`], mutably; fails with `Error::ReadOnly` for read-only
/// segments.
#[inline(always)]
pub(crate) fn with_bytes_mut<R>(
    seg: &mut Segment<'_>,
    offset: usize,
    len: usize,
    align: usize,
    f: impl FnOnce(&mut [u8]) -> Result<R>,
) -> Result<R> {
    seg.check_writable()?;
    let p = check(seg, offset, len, align)?;
    let _access = enter_unless_global(seg.session())?;
    // SAFETY: as in `with_bytes`; in addition `&mut Segment` makes this the
    // only access to the segment's bytes, and the segment is writable
    // (checked above).
    f(unsafe { core::slice::from_raw_parts_mut(p, len) })
}

/// Checks that `guard` holds `seg`'s session.
#[inline(always)]
fn check_guard(seg: &Segment<'_>, guard: &AcquireGuard<'_>) -> Result<()> {
    if guard.holds(seg.session()) {
        Ok(())
    } else {
        Err(wrong_guard(guard.session_id(), seg.session().id()))
    }
}

#[cold]
#[inline(never)]
fn wrong_guard(held: u64, wanted: u64) -> Error {
    Error::InvalidArgument {
        reason: format!("guard holds session {held}, segment belongs to session {wanted}"),
    }
}

/// As [`with_bytes`], but the liveness check is replaced by `guard` (the
/// session cannot close while it is held): bounds and alignment only.
#[inline(always)]
pub(crate) fn with_bytes_guarded<R>(
    seg: &Segment<'_>,
    guard: &AcquireGuard<'_>,
    offset: usize,
    len: usize,
    align: usize,
    f: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<R> {
    check_guard(seg, guard)?;
    let p = check(seg, offset, len, align)?;
    // SAFETY: `p .. p + len` is inside the segment (check); the
    // guard holds the segment's session (checked above), so its memory stays
    // live while `guard` is borrowed, i.e. for this call; initialised and
    // free of concurrent writes as in `with_bytes`.
    f(unsafe { core::slice::from_raw_parts(p, len) })
}

/// As [`with_bytes_mut`], guarded (see [`with_bytes_guarded`]).
#[inline(always)]
pub(crate) fn with_bytes_guarded_mut<R>(
    seg: &mut Segment<'_>,
    guard: &AcquireGuard<'_>,
    offset: usize,
    len: usize,
    align: usize,
    f: impl FnOnce(&mut [u8]) -> Result<R>,
) -> Result<R> {
    check_guard(seg, guard)?;
    seg.check_writable()?;
    let p = check(seg, offset, len, align)?;
    // SAFETY: as in `with_bytes_guarded`; `&mut Segment` makes this the only
    // access, and the segment is writable (checked above).
    f(unsafe { core::slice::from_raw_parts_mut(p, len) })
}
