//! The unsafe core of marshaling: one checked access to a segment, exposed
//! to safe code as a byte slice of exactly the requested length.
//!
//! Everything else in `marshal/` encodes and decodes plain `&[u8]` /
//! `&mut [u8]`, so a whole struct costs one bounds check, one alignment check
//! and one liveness check (`Session::enter`, free for global sessions).

use crate::error::Result;
use crate::segment::Segment;

/// Runs `f` on `len` bytes at `offset` of `seg` after checking bounds,
/// alignment of the address to `align` (a power of two), and the session.
#[inline(always)]
pub(crate) fn with_bytes<R>(
    seg: &Segment<'_>,
    offset: usize,
    len: usize,
    align: usize,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R> {
    seg.with_access(offset, len, align, |p| {
        // SAFETY: `with_access` checked that `p .. p + len` lies inside the
        // segment and entered the session, so the memory is live for the
        // closure; segment memory is initialised (allocators never expose
        // uninitialised bytes, `Segment::from_raw` requires readable memory);
        // writes need `&mut Segment`, so none can overlap this shared borrow.
        f(unsafe { core::slice::from_raw_parts(p, len) })
    })
}

/// As [`with_bytes`], mutably; fails with `Error::ReadOnly` for read-only
/// segments.
#[inline(always)]
pub(crate) fn with_bytes_mut<R>(
    seg: &mut Segment<'_>,
    offset: usize,
    len: usize,
    align: usize,
    f: impl FnOnce(&mut [u8]) -> R,
) -> Result<R> {
    seg.check_writable()?;
    seg.with_access(offset, len, align, |p| {
        // SAFETY: as in `with_bytes`; in addition `&mut Segment` makes this
        // the only access to the segment's bytes, and the segment is
        // writable (checked above).
        f(unsafe { core::slice::from_raw_parts_mut(p, len) })
    })
}
