//! `std::io` over a segment: [`SegmentCursor`] implements `Read`, `BufRead`,
//! `Seek` and (for writable cursors) `Write`, so parsers and serialisers
//! can work on native memory directly.
//!
//! A cursor holds an acquire guard on the segment's session for its whole
//! life: `fill_buf` hands out `&[u8]` into the segment, which must not
//! dangle, and every read/write skips the per-call liveness check.

use super::Segment;
use super::raw::{self, RawSegment};
use crate::error::Result;
use crate::session::AcquireGuard;
use core::marker::PhantomData;
use std::io;

/// A `Read + BufRead + Seek (+ Write)` cursor over a segment.
///
/// Made by [`Segment::cursor`] (read-only; writes fail with
/// `io::ErrorKind::PermissionDenied`) or [`Segment::cursor_mut`]. While it
/// lives the session is acquired: `close()` fails with `Busy`. Writing past
/// the end writes nothing (`Ok(0)`, so `write_all` reports `WriteZero`), as
/// `std::io::Cursor<&mut [u8]>` does.
///
/// # Examples
///
/// ```
/// use std::io::{BufRead, Read, Seek, SeekFrom, Write};
/// # use memscope::{Session, Segment, segment::Address};
/// let s = Session::shared();
/// let mut b = [0u8; 16];
/// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 16, &s) }?;
/// {
///     let mut w = seg.cursor_mut()?;
///     writeln!(w, "one")?;
///     writeln!(w, "two")?;
/// }
/// let mut r = seg.cursor()?;
/// let mut line = String::new();
/// r.read_line(&mut line)?;
/// assert_eq!(line, "one\n");
/// r.seek(SeekFrom::Start(4))?;
/// let mut three = [0u8; 3];
/// r.read_exact(&mut three)?;
/// assert_eq!(&three, b"two");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SegmentCursor<'a> {
    raw: RawSegment,
    pos: u64,
    read_only: bool,
    _guard: AcquireGuard<'a>,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'s> Segment<'s> {
    /// A read-only cursor at position 0 (acquires the session).
    ///
    /// # Errors
    ///
    /// Whatever [`Session::acquire`](crate::Session::acquire) returns
    /// ([`Error::Closed`](crate::Error::Closed),
    /// [`Error::WrongThread`](crate::Error::WrongThread) …).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = *b"abc";
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// let mut text = String::new();
    /// seg.cursor()?.read_to_string(&mut text)?;
    /// assert_eq!(text, "abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "to-stream")]
    pub fn cursor(&self) -> Result<SegmentCursor<'_>> {
        Ok(SegmentCursor {
            raw: self.raw,
            pos: 0,
            read_only: true,
            _guard: self.session.acquire()?,
            _borrow: PhantomData,
        })
    }

    /// A read-write cursor at position 0 (acquires the session). Writes
    /// fail if the segment is read-only.
    ///
    /// # Errors
    ///
    /// As [`cursor`](Self::cursor).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8; 2];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// seg.cursor_mut()?.write_all(&[1, 2])?;
    /// assert!(seg.cursor_mut()?.write_all(&[1, 2, 3]).is_err());
    /// assert_eq!(seg.to_vec()?, [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cursor_mut(&mut self) -> Result<SegmentCursor<'_>> {
        Ok(SegmentCursor {
            raw: self.raw,
            pos: 0,
            read_only: self.read_only,
            _guard: self.session.acquire()?,
            _borrow: PhantomData,
        })
    }
}

impl SegmentCursor<'_> {
    /// The current position.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// # let mut b = [0u8; 2];
    /// # let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// assert_eq!(seg.cursor()?.position(), 0);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves to `pos` (may be past the end; reads then return 0 bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// # let mut b = [0u8; 2];
    /// # let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// let mut c = seg.cursor()?;
    /// c.set_position(9);
    /// assert_eq!(c.remaining(), 0);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn set_position(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// Bytes left between the position and the end.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// # let mut b = [0u8; 2];
    /// # let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// assert_eq!(seg.cursor()?.remaining(), 2);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn remaining(&self) -> usize {
        self.rest().1
    }

    /// (offset, bytes left): the position clamped to the end.
    #[inline]
    fn rest(&self) -> (usize, usize) {
        let off = usize::try_from(self.pos)
            .unwrap_or(usize::MAX)
            .min(self.raw.len);
        (off, self.raw.len - off)
    }

    #[inline]
    fn remaining_bytes(&self) -> &[u8] {
        let (off, n) = self.rest();
        match self.raw.check(off, n) {
            // SAFETY: in bounds (checked); live because `_guard` holds the
            // session acquired; not written while this `&[u8]` (borrowing
            // `self`) lives: this cursor's writes need `&mut self`, and other
            // writers need `&mut Segment`, which the cursor's borrow excludes.
            Ok(p) => unsafe { raw::bytes(p, n) },
            Err(_) => &[],
        }
    }
}

impl io::Read for SegmentCursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let src = self.remaining_bytes();
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::BufRead for SegmentCursor<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(self.remaining_bytes())
    }

    fn consume(&mut self, amt: usize) {
        let n = amt.min(self.remaining());
        self.pos += n as u64;
    }
}

impl io::Write for SegmentCursor<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                crate::Error::ReadOnly,
            ));
        }
        let (off, left) = self.rest();
        let n = left.min(buf.len());
        if let Ok(p) = self.raw.check(off, n) {
            // SAFETY: in bounds (checked); live (`_guard`); exclusive: a
            // writable cursor borrows its segment mutably; writable: the
            // cursor is not read-only (checked above); `buf` is a Rust slice
            // that cannot alias it (no `&[u8]` into the segment coexists
            // with the `&mut` borrow).
            unsafe { raw::write_slice(&buf[..n], p) };
        }
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Seek for SegmentCursor<'_> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let (base, delta) = match to {
            io::SeekFrom::Start(p) => {
                self.pos = p;
                return Ok(p);
            }
            io::SeekFrom::End(d) => (self.raw.len as u64, d),
            io::SeekFrom::Current(d) => (self.pos, d),
        };
        match base.checked_add_signed(delta) {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid seek to a negative or overflowing position",
            )),
        }
    }
}
