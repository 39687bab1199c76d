//! Views and bulk operations: slices, read-only views, copy/fill/mismatch,
//! chunks, C strings and hex dumps.

use super::Segment;
use super::raw;
use crate::error::{Error, Result};
use core::fmt;
use std::ffi::CString;

impl<'s> Segment<'s> {
    /// A read-only view of `len` bytes at `offset`. It borrows `self`
    /// shared, so it is read-only even if `self` is writable (use
    /// [`slice_mut`](Self::slice_mut) to write).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] (overflow-safe).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, Error};
    /// # let s = Session::global();
    /// let mut b = [1u8, 2, 3, 4];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// let mid = seg.slice(1, 2)?;
    /// assert_eq!(mid.to_vec()?, [2, 3]);
    /// assert!(mid.is_read_only());
    /// assert!(matches!(seg.slice(3, 2), Err(Error::OutOfBounds { offset: 3, len: 2, size: 4 })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    #[doc(alias = "asSlice")]
    pub fn slice(&self, offset: usize, len: usize) -> Result<Segment<'_>> {
        Ok(self.derive(self.raw.sub(offset, len)?, true))
    }

    /// A writable view of `len` bytes at `offset` (read-only if `self` is).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8; 4];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// seg.slice_mut(2, 2)?.set(0, 9u8)?;
    /// assert_eq!(seg.get::<u8>(2)?, 9);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn slice_mut(&mut self, offset: usize, len: usize) -> Result<Segment<'_>> {
        Ok(self.derive(self.raw.sub(offset, len)?, false))
    }

    /// A read-only view from `offset` to the end.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if `offset > len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [1u8, 2, 3];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// assert_eq!(seg.slice_from(1)?.to_vec()?, [2, 3]);
    /// assert_eq!(seg.slice_from(3)?.len(), 0);
    /// assert!(seg.slice_from(4).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn slice_from(&self, offset: usize) -> Result<Segment<'_>> {
        let len = self.rest(offset)?;
        self.slice(offset, len)
    }

    /// A writable view from `offset` to the end.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if `offset > len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8; 3];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// seg.slice_from_mut(1)?.fill(7)?;
    /// assert_eq!(seg.to_vec()?, [0, 7, 7]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn slice_from_mut(&mut self, offset: usize) -> Result<Segment<'_>> {
        let len = self.rest(offset)?;
        self.slice_mut(offset, len)
    }

    fn rest(&self, offset: usize) -> Result<usize> {
        self.len()
            .checked_sub(offset)
            .ok_or_else(|| Error::OutOfBounds {
                offset,
                len: 0,
                size: self.len(),
            })
    }

    /// Two read-only views: `0 .. mid` and `mid .. len()`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if `mid > len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [1u8, 2, 3];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// let (a, z) = seg.split_at(1)?;
    /// assert_eq!((a.len(), z.len()), (1, 2));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn split_at(&self, mid: usize) -> Result<(Segment<'_>, Segment<'_>)> {
        let rest = self.rest(mid)?;
        Ok((self.slice(0, mid)?, self.slice(mid, rest)?))
    }

    /// Two disjoint writable views: `0 .. mid` and `mid .. len()`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if `mid > len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8; 4];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// let (mut lo, mut hi) = seg.split_at_mut(2)?;
    /// lo.fill(1)?;
    /// hi.fill(2)?;
    /// assert_eq!(seg.to_vec()?, [1, 1, 2, 2]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn split_at_mut(&mut self, mid: usize) -> Result<(Segment<'_>, Segment<'_>)> {
        let rest = self.rest(mid)?;
        let lo = self.raw.sub(0, mid)?;
        let hi = self.raw.sub(mid, rest)?;
        // The two ranges are disjoint, so two writable views are fine: each
        // is exclusive for its bytes, and both borrow `self` mutably.
        let (a, b) = (self.derive(lo, false), self.derive(hi, false));
        Ok((a, b))
    }

    /// A read-only view of the whole segment.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, Error};
    /// # let s = Session::global();
    /// let mut b = [0u8; 1];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 1, &s) }?;
    /// let mut ro = seg.as_read_only();
    /// assert_eq!(ro.set(0, 1u8), Err(Error::ReadOnly));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn as_read_only(&self) -> Segment<'_> {
        self.derive(self.raw, true)
    }

    /// Copies `len` bytes from `src` at `src_offset` to `dst` at
    /// `dst_offset` (a `memmove`: correct even if the ranges overlap). Both
    /// sessions are checked once.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] for either range, [`Error::ReadOnly`] for
    /// `dst`, [`Error::Closed`]/[`Error::WrongThread`] for either session.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let (mut a, mut b) = ([1u8, 2, 3], [0u8; 3]);
    /// let src = unsafe { Segment::from_raw(Address::from_ptr(a.as_mut_ptr()), 3, &s) }?;
    /// let mut dst = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// Segment::copy(&src, 1, &mut dst, 0, 2)?;
    /// assert_eq!(dst.to_vec()?, [2, 3, 0]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn copy(
        src: &Segment<'_>,
        src_offset: usize,
        dst: &mut Segment<'_>,
        dst_offset: usize,
        len: usize,
    ) -> Result<()> {
        dst.check_writable()?;
        let s = src.raw.check(src_offset, len)?;
        let d = dst.raw.check(dst_offset, len)?;
        src.enter_then(|| {
            dst.enter_then(|| {
                // SAFETY: both ranges in bounds (checked above) and live (both
                // sessions entered); `dst` is exclusive (`&mut`) and writable
                // (checked); `raw::copy` is a memmove, so overlap is fine.
                unsafe { raw::copy(s, d, len) }
            })
        })?
    }

    /// Copies `len` bytes within the segment from `src_offset` to
    /// `dst_offset` (`memmove`: the ranges may overlap).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`], [`Error::ReadOnly`], [`Error::Closed`],
    /// [`Error::WrongThread`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [1u8, 2, 3, 4];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// seg.copy_within(0, 1, 3)?;
    /// assert_eq!(seg.to_vec()?, [1, 1, 2, 3]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn copy_within(&mut self, src_offset: usize, dst_offset: usize, len: usize) -> Result<()> {
        self.check_writable()?;
        let s = self.raw.check(src_offset, len)?;
        let d = self.raw.check(dst_offset, len)?;
        self.enter_then(|| {
            // SAFETY: both ranges in bounds (checked above), live (entered),
            // exclusive (`&mut self`), writable (checked); memmove allows overlap.
            unsafe { raw::copy(s, d, len) }
        })
    }

    /// Copies all of `src` to the start of `self` (Java `copyFrom`).
    ///
    /// # Errors
    ///
    /// As [`copy`](Self::copy); [`Error::OutOfBounds`] if `src` is longer.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let (mut a, mut b) = ([5u8; 2], [0u8; 3]);
    /// let src = unsafe { Segment::from_raw(Address::from_ptr(a.as_mut_ptr()), 2, &s) }?;
    /// let mut dst = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// dst.copy_from(&src)?;
    /// assert_eq!(dst.to_vec()?, [5, 5, 0]);
    /// assert!(src.as_read_only().len() == 2);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn copy_from(&mut self, src: &Segment<'_>) -> Result<()> {
        Segment::copy(src, 0, self, 0, src.len())
    }

    /// Sets every byte to `byte` (`memset`, one liveness check).
    ///
    /// # Errors
    ///
    /// [`Error::ReadOnly`], [`Error::Closed`], [`Error::WrongThread`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8; 3];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// seg.fill(0xab)?;
    /// assert_eq!(seg.to_vec()?, [0xab; 3]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn fill(&mut self, byte: u8) -> Result<()> {
        self.check_writable()?;
        let len = self.len();
        self.with_access(0, len, 1, |p| {
            // SAFETY: the whole segment (with_access), live (enter),
            // exclusive (`&mut self`), writable (checked above).
            unsafe { raw::fill(p, byte, len) }
        })
    }

    /// Sets every byte to zero.
    ///
    /// # Errors
    ///
    /// As [`fill`](Self::fill).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [9u8; 2];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// seg.clear()?;
    /// assert_eq!(seg.to_vec()?, [0, 0]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn clear(&mut self) -> Result<()> {
        self.fill(0)
    }

    /// The offset of the first byte where `self` and `other` differ; `None`
    /// if they are equal. If one is a prefix of the other, the shorter
    /// length (Java `mismatch`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]/[`Error::WrongThread`] for either session.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let (mut a, mut b) = ([1u8, 2, 3], [1u8, 9, 3]);
    /// let x = unsafe { Segment::from_raw(Address::from_ptr(a.as_mut_ptr()), 3, &s) }?;
    /// let y = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// assert_eq!(x.mismatch(&y)?, Some(1));
    /// assert_eq!(x.mismatch(&x.slice(0, 3)?)?, None);
    /// assert_eq!(x.mismatch(&x.slice(0, 2)?)?, Some(2));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn mismatch(&self, other: &Segment<'_>) -> Result<Option<usize>> {
        let (a, b) = (self.raw, other.raw);
        self.enter_then(|| {
            other.enter_then(|| {
                // SAFETY: each whole segment is in bounds by construction,
                // live (both entered) and not written during the call (we
                // hold `&` of both, and writes need `&mut`); the slices do
                // not outlive the closure.
                let (x, y) = unsafe {
                    (
                        raw::bytes(a.ptr.as_ptr(), a.len),
                        raw::bytes(b.ptr.as_ptr(), b.len),
                    )
                };
                match x.iter().zip(y).position(|(p, q)| p != q) {
                    Some(i) => Some(i),
                    None if x.len() == y.len() => None,
                    None => Some(x.len().min(y.len())),
                }
            })
        })?
    }

    /// A copy of the bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::WrongThread`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [4u8, 2];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// assert_eq!(seg.to_vec()?, vec![4, 2]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.len()];
        self.copy_to_slice(0, &mut v)?;
        Ok(v)
    }

    /// An iterator of read-only views of `size` bytes each (the last may be
    /// shorter), like `<[u8]>::chunks`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `size == 0`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [1u8, 2, 3, 4, 5];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 5, &s) }?;
    /// let lens: Vec<usize> = seg.chunks(2)?.map(|c| c.len()).collect();
    /// assert_eq!(lens, [2, 2, 1]);
    /// assert!(seg.chunks(0).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn chunks(&self, size: usize) -> Result<Chunks<'_>> {
        if size == 0 {
            return Err(Error::InvalidArgument {
                reason: "chunk size must be non-zero".into(),
            });
        }
        Ok(Chunks {
            seg: self.as_read_only(),
            size,
            next: 0,
        })
    }

    /// Reads the NUL-terminated bytes starting at `offset` (without the
    /// NUL). The search stops at the end of the segment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidString`] if there is no NUL before the end;
    /// [`Error::OutOfBounds`] if `offset > len()`; [`Error::Closed`],
    /// [`Error::WrongThread`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, Error};
    /// # let s = Session::global();
    /// let mut b = *b"hi\0ab";
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 5, &s) }?;
    /// assert_eq!(seg.get_cstr(0)?.as_bytes(), b"hi");
    /// assert!(matches!(seg.get_cstr(3), Err(Error::InvalidString { .. })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn get_cstr(&self, offset: usize) -> Result<CString> {
        let len = self.rest(offset)?;
        let v = self.with_access(offset, len, 1, |p| {
            // SAFETY: `p .. p + len` in bounds (with_access), live (enter),
            // not written (we hold `&self`); the slice ends with the closure.
            let bytes = unsafe { raw::bytes(p, len) };
            bytes
                .iter()
                .position(|&b| b == 0)
                .map(|n| bytes[..=n].to_vec())
        })?;
        let v = v.ok_or_else(|| Error::InvalidString {
            reason: format!(
                "no NUL terminator between offset {offset} and the end of the segment ({} bytes)",
                self.len()
            ),
        })?;
        CString::from_vec_with_nul(v).map_err(|e| Error::InvalidString {
            reason: e.to_string(),
        })
    }

    /// Reads the NUL-terminated UTF-8 string at `offset`.
    ///
    /// # Errors
    ///
    /// As [`get_cstr`](Self::get_cstr); [`Error::InvalidString`] if the
    /// bytes are not UTF-8.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, Error};
    /// # let s = Session::global();
    /// let mut b = *b"ok\0\xff\0";
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 5, &s) }?;
    /// assert_eq!(seg.get_string(0)?, "ok");
    /// assert!(matches!(seg.get_string(3), Err(Error::InvalidString { .. })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn get_string(&self, offset: usize) -> Result<String> {
        self.get_cstr(offset)?
            .into_string()
            .map_err(|e| Error::InvalidString {
                reason: format!("not UTF-8 at offset {offset}: {}", e.utf8_error()),
            })
    }

    /// Reads the NUL-terminated string at `offset`, replacing invalid UTF-8
    /// with U+FFFD.
    ///
    /// # Errors
    ///
    /// As [`get_cstr`](Self::get_cstr).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = *b"a\xffb\0";
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// assert_eq!(seg.get_string_lossy(0)?, "a\u{fffd}b");
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn get_string_lossy(&self, offset: usize) -> Result<String> {
        Ok(self.get_cstr(offset)?.to_string_lossy().into_owned())
    }

    /// Writes `text` and a NUL terminator at `offset`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidString`] if `text` contains a NUL;
    /// [`Error::OutOfBounds`] if `text.len() + 1` bytes do not fit;
    /// [`Error::ReadOnly`], [`Error::Closed`], [`Error::WrongThread`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, Error};
    /// # let s = Session::global();
    /// let mut b = [0xffu8; 4];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// seg.set_cstr(0, "abc")?;
    /// assert_eq!(seg.get_string(0)?, "abc");
    /// assert!(matches!(seg.set_cstr(0, "a\0b"), Err(Error::InvalidString { .. })));
    /// assert!(matches!(seg.set_cstr(1, "abc"), Err(Error::OutOfBounds { .. })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn set_cstr(&mut self, offset: usize, text: &str) -> Result<()> {
        if let Some(i) = text.bytes().position(|b| b == 0) {
            return Err(Error::InvalidString {
                reason: format!("interior NUL byte at index {i}"),
            });
        }
        self.check_writable()?;
        let n = text
            .len()
            .checked_add(1)
            .ok_or_else(|| Error::OutOfBounds {
                offset,
                len: usize::MAX,
                size: self.len(),
            })?;
        self.with_access(offset, n, 1, |p| {
            // SAFETY: `p .. p + n` in bounds (with_access), live (enter),
            // exclusive (`&mut self`), writable (checked); `text` is a Rust
            // string, not segment memory (no `&str` into it can coexist with
            // `&mut self`).
            unsafe {
                raw::write_slice(text.as_bytes(), p);
                raw::fill(p.add(text.len()), 0, 1);
            }
        })
    }

    /// A `hexdump -C`-style dump of the whole segment.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::WrongThread`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = *b"Hello";
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 5, &s) }?;
    /// assert_eq!(
    ///     seg.hexdump()?,
    ///     "00000000  48 65 6c 6c 6f                                    |Hello|\n"
    /// );
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn hexdump(&self) -> Result<String> {
        let mut out = String::new();
        HexDump {
            bytes: &self.to_vec()?,
            base: 0,
        }
        .write_to(&mut out)
        .map_err(|_| Error::InvalidArgument {
            reason: "formatting failed".into(),
        })?;
        Ok(out)
    }
}

/// A `hexdump -C` formatter over a byte slice (what [`Segment::hexdump`]
/// and `Display for Segment` print).
///
/// # Examples
///
/// ```
/// use memscope::segment::HexDump;
/// let s = HexDump { bytes: &[0x41, 0x00], base: 0x10 }.to_string();
/// assert!(s.starts_with("00000010  41 00"));
/// assert!(s.ends_with("|A.|\n"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HexDump<'a> {
    /// The bytes to print.
    pub bytes: &'a [u8],
    /// The offset printed for the first byte.
    pub base: usize,
}

impl HexDump<'_> {
    fn write_to(&self, f: &mut impl fmt::Write) -> fmt::Result {
        for (row, line) in self.bytes.chunks(16).enumerate() {
            write!(f, "{:08x} ", self.base.wrapping_add(row * 16))?;
            for i in 0..16 {
                if i == 8 {
                    f.write_char(' ')?;
                }
                match line.get(i) {
                    Some(b) => write!(f, " {b:02x}")?,
                    None => f.write_str("   ")?,
                }
            }
            f.write_str("  |")?;
            for &b in line {
                let c = if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                };
                f.write_char(c)?;
            }
            f.write_str("|\n")?;
        }
        Ok(())
    }
}

impl fmt::Display for HexDump<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

/// How many bytes `Display for Segment` prints before eliding the rest.
const DISPLAY_LIMIT: usize = 4096;

/// Prints a header line and a hex dump of (up to 4 KiB of) the bytes, or
/// the error if the segment cannot be read (closed session, wrong thread).
impl fmt::Display for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "segment {} + {} byte(s), session {}{}",
            self.address(),
            self.len(),
            self.session.id(),
            if self.read_only { ", read-only" } else { "" }
        )?;
        let n = self.len().min(DISPLAY_LIMIT);
        let bytes = self.slice(0, n).and_then(|s| s.to_vec());
        match bytes {
            Ok(bytes) => {
                HexDump {
                    bytes: &bytes,
                    base: 0,
                }
                .write_to(f)?;
                if n < self.len() {
                    writeln!(f, "... {} more byte(s)", self.len() - n)?;
                }
                Ok(())
            }
            Err(e) => writeln!(f, "<unreadable: {e}>"),
        }
    }
}

/// Iterator returned by [`Segment::chunks`].
///
/// # Examples
///
/// ```
/// # use memscope::{Session, Segment, segment::Address};
/// # let s = Session::global();
/// let mut b = [0u8; 4];
/// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
/// assert_eq!(seg.chunks(4)?.count(), 1);
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Debug)]
pub struct Chunks<'a> {
    seg: Segment<'a>,
    size: usize,
    next: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let rest = self.seg.len() - self.next;
        if rest == 0 {
            return None;
        }
        let n = rest.min(self.size);
        let raw = self.seg.raw.sub(self.next, n).ok()?;
        self.next += n;
        Some(Segment {
            raw,
            session: self.seg.session,
            read_only: true,
            mapped: self.seg.mapped,
            _marker: core::marker::PhantomData,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.seg.len() - self.next).div_ceil(self.size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Chunks<'_> {}
