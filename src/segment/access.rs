//! Typed access beyond `get`/`set`: byte order, indexed access, bulk copies
//! to and from Rust slices, and the chunked element iterator.

use super::{Numeric, Primitive, Segment};
use crate::error::{Error, Result};

/// The byte order of a value in memory.
///
/// # Examples
///
/// ```
/// use memscope::segment::ByteOrder;
/// assert_eq!(ByteOrder::Native.resolve(), if cfg!(target_endian = "little") {
///     ByteOrder::Little
/// } else {
///     ByteOrder::Big
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ByteOrder {
    /// Least significant byte first (x86, most ARM).
    Little,
    /// Most significant byte first ("network order").
    Big,
    /// The order of the machine this runs on.
    #[default]
    Native,
}

impl ByteOrder {
    /// `Little` or `Big`: `Native` resolved for this machine.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::segment::ByteOrder;
    /// assert_eq!(ByteOrder::Big.resolve(), ByteOrder::Big);
    /// ```
    #[inline(always)]
    pub const fn resolve(self) -> ByteOrder {
        match self {
            ByteOrder::Native if cfg!(target_endian = "little") => ByteOrder::Little,
            ByteOrder::Native => ByteOrder::Big,
            o => o,
        }
    }

    /// Whether values in this order must be byte-swapped on this machine.
    #[inline(always)]
    const fn swaps(self) -> bool {
        !matches!(
            (self.resolve(), cfg!(target_endian = "little")),
            (ByteOrder::Little, true) | (ByteOrder::Big, false)
        )
    }

    #[inline(always)]
    fn apply<T: Primitive>(self, v: T) -> T {
        if self.swaps() { v.swap_bytes() } else { v }
    }
}

/// `index * size` as a byte offset; an overflow reports as out of bounds.
#[inline(always)]
fn index_offset(index: usize, size: usize, seg_len: usize) -> Result<usize> {
    // A `match`, not `ok_or(..)`: building the error eagerly would put
    // `Error`'s drop glue on the hot path.
    match index.checked_mul(size) {
        Some(off) => Ok(off),
        None => Err(Error::OutOfBounds {
            offset: usize::MAX,
            len: size,
            size: seg_len,
        }),
    }
}

impl<'s> Segment<'s> {
    /// Reads a `T` at `offset` (aligned) stored in byte order `order`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::{Address, ByteOrder}};
    /// # let s = Session::global();
    /// let mut b = [0x12u8, 0x34, 0, 0];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// assert_eq!(seg.get_with::<u16>(0, ByteOrder::Big)?, 0x1234);
    /// assert_eq!(seg.get_with::<u16>(0, ByteOrder::Little)?, 0x3412);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn get_with<T: Primitive>(&self, offset: usize, order: ByteOrder) -> Result<T> {
        self.get::<T>(offset).map(|v| order.apply(v))
    }

    /// Writes `value` at `offset` (aligned) in byte order `order`.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::{Address, ByteOrder}};
    /// # let s = Session::global();
    /// let mut b = [0u8; 4];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// seg.set_with(0, 0x0102_0304u32, ByteOrder::Big)?;
    /// assert_eq!(seg.get::<u8>(0)?, 1);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn set_with<T: Primitive>(
        &mut self,
        offset: usize,
        value: T,
        order: ByteOrder,
    ) -> Result<()> {
        self.set(offset, order.apply(value))
    }

    /// Reads a `T` at `offset`, any alignment, in byte order `order`
    /// (packed wire formats).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::{Address, ByteOrder}};
    /// # let s = Session::global();
    /// let mut b = [0xffu8, 0, 0, 0, 7];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 5, &s) }?;
    /// assert_eq!(seg.get_unaligned_with::<u32>(1, ByteOrder::Big)?, 7);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn get_unaligned_with<T: Primitive>(&self, offset: usize, order: ByteOrder) -> Result<T> {
        self.get_unaligned::<T>(offset).map(|v| order.apply(v))
    }

    /// Writes `value` at `offset`, any alignment, in byte order `order`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::{Address, ByteOrder}};
    /// # let s = Session::global();
    /// let mut b = [0u8; 3];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
    /// seg.set_unaligned_with(1, 0xabcdu16, ByteOrder::Little)?;
    /// assert_eq!(seg.to_vec()?, [0, 0xcd, 0xab]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn set_unaligned_with<T: Primitive>(
        &mut self,
        offset: usize,
        value: T,
        order: ByteOrder,
    ) -> Result<()> {
        self.set_unaligned(offset, order.apply(value))
    }

    /// Reads a little-endian `T` at `offset` (aligned).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [1u8, 0];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// assert_eq!(seg.get_le::<u16>(0)?, 1);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn get_le<T: Primitive>(&self, offset: usize) -> Result<T> {
        self.get_with(offset, ByteOrder::Little)
    }

    /// Reads a big-endian `T` at `offset` (aligned).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8, 1];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// assert_eq!(seg.get_be::<u16>(0)?, 1);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn get_be<T: Primitive>(&self, offset: usize) -> Result<T> {
        self.get_with(offset, ByteOrder::Big)
    }

    /// Writes a little-endian `T` at `offset` (aligned).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8; 2];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// seg.set_le(0, 0x0102u16)?;
    /// assert_eq!(seg.to_vec()?, [2, 1]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn set_le<T: Primitive>(&mut self, offset: usize, value: T) -> Result<()> {
        self.set_with(offset, value, ByteOrder::Little)
    }

    /// Writes a big-endian `T` at `offset` (aligned).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u8; 2];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// seg.set_be(0, 0x0102u16)?;
    /// assert_eq!(seg.to_vec()?, [1, 2]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn set_be<T: Primitive>(&mut self, offset: usize, value: T) -> Result<()> {
        self.set_with(offset, value, ByteOrder::Big)
    }

    /// Reads element `index` of an array of `T` starting at offset 0
    /// (offset `index * size_of::<T>()`, aligned).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); an index whose offset overflows is
    /// [`Error::OutOfBounds`] with `offset: usize::MAX`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [10u32, 20, 30];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 12, &s) }?;
    /// assert_eq!(seg.get_at_index::<u32>(2)?, 30);
    /// assert!(seg.get_at_index::<u32>(3).is_err());
    /// assert!(seg.get_at_index::<u32>(usize::MAX).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    #[doc(alias = "getAtIndex")]
    pub fn get_at_index<T: Primitive>(&self, index: usize) -> Result<T> {
        self.get(index_offset(index, T::SIZE, self.len())?)
    }

    /// Writes element `index` of an array of `T` starting at offset 0.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set) and [`get_at_index`](Self::get_at_index).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0u16; 4];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
    /// seg.set_at_index(3, 9u16)?;
    /// assert_eq!(seg.get::<u16>(6)?, 9);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    #[doc(alias = "setAtIndex")]
    pub fn set_at_index<T: Primitive>(&mut self, index: usize, value: T) -> Result<()> {
        self.set(index_offset(index, T::SIZE, self.len())?, value)
    }

    /// Copies `dst.len()` values of `T` starting at `offset` (aligned to
    /// `T`) into `dst`, with one liveness check for the whole copy.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] (also when `dst.len() * size_of::<T>()`
    /// overflows), [`Error::Misaligned`], [`Error::Closed`],
    /// [`Error::WrongThread`]. On error `dst` is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [1u32, 2, 3, 4];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 16, &s) }?;
    /// let mut out = [0u32; 2];
    /// seg.copy_to_slice(8, &mut out)?;
    /// assert_eq!(out, [3, 4]);
    /// assert!(seg.copy_to_slice(12, &mut out).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn copy_to_slice<T: Primitive>(&self, offset: usize, dst: &mut [T]) -> Result<()> {
        let bytes = byte_len::<T>(offset, dst.len(), self.len())?;
        self.with_access(offset, bytes, T::ALIGN, |p| {
            // SAFETY: `p .. p + bytes` is in bounds (with_access), live for
            // the closure (enter), not written concurrently (writes need
            // `&mut Segment`), and does not overlap `dst`: a `&mut` into this
            // segment's memory needs `&mut Segment` (`GuardedMut`), which
            // cannot coexist with the `&self` borrow held here.
            unsafe { T::read_slice_raw(p, dst) }
        })
    }

    /// Copies `src` into the segment starting at `offset` (aligned to `T`),
    /// with one liveness check for the whole copy.
    ///
    /// # Errors
    ///
    /// As [`copy_to_slice`](Self::copy_to_slice), plus [`Error::ReadOnly`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::global();
    /// let mut b = [0i16; 4];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
    /// seg.copy_from_slice(2, &[-1i16, 5])?;
    /// assert_eq!(seg.get::<i16>(4)?, 5);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn copy_from_slice<T: Primitive>(&mut self, offset: usize, src: &[T]) -> Result<()> {
        self.check_writable()?;
        let bytes = byte_len::<T>(offset, src.len(), self.len())?;
        self.with_access(offset, bytes, T::ALIGN, |p| {
            // SAFETY: in bounds and aligned (with_access), live (enter),
            // exclusive (`&mut self`), writable (checked above); `src` is a
            // shared Rust borrow, so it is not this segment's memory, which
            // only `&mut self`-derived views could alias mutably.
            unsafe { super::raw::write_slice(src, p) }
        })
    }

    /// An iterator over the segment as an array of `T` (from offset 0).
    /// It copies up to [`Elements::CHUNK`] values at a time under one
    /// liveness check, so the per-element cost is close to a slice's; each
    /// item is a `Result` because the session may close between chunks.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the length is not a multiple of
    /// `size_of::<T>()`; [`Error::Misaligned`] if the start of a non-empty
    /// segment is not aligned to `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// # let s = Session::shared();
    /// let mut b = [1i32, 2, 3];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 12, &s) }?;
    /// let sum: i32 = seg.elements::<i32>()?.sum::<memscope::Result<i32>>()?;
    /// assert_eq!(sum, 6);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn elements<T: Primitive>(&self) -> Result<Elements<'_, T>> {
        if !self.len().is_multiple_of(T::SIZE) {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "segment of {} byte(s) is not a whole number of {}-byte elements",
                    self.len(),
                    T::SIZE
                ),
            });
        }
        if !self.is_empty() {
            self.raw.check_aligned(0, 0, T::ALIGN)?;
        }
        Ok(Elements {
            seg: self.as_read_only(),
            next: 0,
            buf: Vec::new(),
            pos: 0,
        })
    }
}

impl<'s> Segment<'s> {
    /// Runs `f` on `len` values of `T` starting at `offset` (aligned to
    /// `T`) as a plain `&[T]`: bounds, alignment, thread and liveness are
    /// checked once for the whole range, and `f`'s loop then runs at slice
    /// speed (it vectorizes; PERFORMANCE.md row 9).
    ///
    /// `f` runs inside an access window of the session (as
    /// [`Session::enter`](crate::Session::enter)): a close from another
    /// thread waits for it to return, and a close from inside `f` on this
    /// thread is [`Error::InUse`]. Keep `f` short on a shared session that
    /// others may close; for a long scan use
    /// [`fold_chunks`](Self::fold_chunks), which lets a close in between
    /// chunks.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] (also when `len * size_of::<T>()` overflows),
    /// [`Error::Misaligned`], [`Error::Closed`], [`Error::WrongThread`];
    /// `f` does not run.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// let s = Session::shared();
    /// let mut b: Vec<i32> = (1..=100).collect();
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 400, &s) }?;
    /// let sum: i32 = seg.read_range::<i32, _>(4, 99, |xs| xs.iter().sum())?;
    /// assert_eq!(sum, 5049);
    /// assert!(seg.read_range::<i32, _>(4, 100, |xs| xs.len()).is_err()); // past the end
    /// assert!(seg.read_range::<i32, _>(2, 1, |xs| xs.len()).is_err()); // misaligned
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    pub fn read_range<T: Numeric, R>(
        &self,
        offset: usize,
        len: usize,
        f: impl FnOnce(&[T]) -> R,
    ) -> Result<R> {
        let bytes = byte_len::<T>(offset, len, self.len())?;
        let p = self.raw.check_aligned(offset, bytes, T::ALIGN)?;
        // A user window: `f` is user code (it may try to close).
        let _in = self.session.enter()?;
        // SAFETY: `p .. p + bytes` is in bounds and aligned (checked above),
        // live while `_in` is held (close waits for it, or is `InUse` from
        // this thread), not written concurrently (writes need `&mut
        // Segment`, atomic views too, and `&self` is borrowed for `f`), and
        // `T: Numeric` accepts any bytes.
        let xs = unsafe { super::raw::values::<T>(p, len) };
        Ok(f(xs))
    }

    /// Folds the segment, viewed as an array of `T` (from offset 0), chunk
    /// by chunk: each chunk (up to [`FOLD_CHUNK_BYTES`](Self::FOLD_CHUNK_BYTES)
    /// bytes) is a plain `&[T]` into the segment's memory, checked once and
    /// read inside one access window, so `f`'s loop runs at slice speed;
    /// between chunks the session may close, and the fold then stops with
    /// [`Error::Closed`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the length is not a multiple of
    /// `size_of::<T>()`; [`Error::Misaligned`] if the start of a non-empty
    /// segment is not aligned to `T`; [`Error::Closed`],
    /// [`Error::WrongThread`] (before any chunk, or between two). A close
    /// from inside `f` on this thread is [`Error::InUse`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// let s = Session::shared();
    /// let mut b: Vec<u32> = (0..10_000).collect();
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 40_000, &s) }?;
    /// let sum = seg.fold_chunks::<u32, u64>(0, |a, xs| a + xs.iter().map(|&x| x as u64).sum::<u64>())?;
    /// assert_eq!(sum, 9_999 * 10_000 / 2);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn fold_chunks<T: Numeric, B>(
        &self,
        init: B,
        mut f: impl FnMut(B, &[T]) -> B,
    ) -> Result<B> {
        let n = super::check_array::<T>(&self.raw)?;
        if n == 0 {
            // No chunk, but the same answer on a closed session or a wrong thread.
            drop(self.session.enter()?);
            return Ok(init);
        }
        let per = (Self::FOLD_CHUNK_BYTES / T::SIZE).max(1);
        let mut acc = init;
        let mut i = 0;
        while i < n {
            let m = per.min(n - i);
            acc = self.read_range::<T, B>(i * T::SIZE, m, |xs| f(acc, xs))?;
            i += m;
        }
        Ok(acc)
    }

    /// How many bytes one chunk of [`fold_chunks`](Self::fold_chunks)
    /// covers (one liveness check each).
    pub const FOLD_CHUNK_BYTES: usize = 64 * 1024;
}

/// `n` values of `T` in bytes; overflow reports as out of bounds.
#[inline(always)]
fn byte_len<T: Primitive>(offset: usize, n: usize, seg_len: usize) -> Result<usize> {
    match n.checked_mul(T::SIZE) {
        Some(b) => Ok(b),
        None => Err(Error::OutOfBounds {
            offset,
            len: usize::MAX,
            size: seg_len,
        }),
    }
}

/// Iterator returned by [`Segment::elements`].
///
/// # Examples
///
/// ```
/// # use memscope::{Session, Segment, segment::Address};
/// # let s = Session::global();
/// let mut b = [7u8, 8];
/// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
/// let v: Vec<u8> = seg.elements::<u8>()?.collect::<memscope::Result<_>>()?;
/// assert_eq!(v, [7, 8]);
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Debug)]
pub struct Elements<'a, T: Primitive> {
    seg: Segment<'a>,
    /// Byte offset of the next chunk to load.
    next: usize,
    buf: Vec<T>,
    pos: usize,
}

impl<T: Primitive> Elements<'_, T> {
    /// How many values one liveness check covers.
    pub const CHUNK: usize = 1024;

    /// Loads the next chunk into `buf` under one liveness check.
    #[inline(never)]
    fn refill(&mut self) -> Option<Result<()>> {
        let remaining = (self.seg.len() - self.next) / T::SIZE;
        if remaining == 0 {
            return None;
        }
        let n = remaining.min(Self::CHUNK);
        let bytes = n * T::SIZE;
        let buf = &mut self.buf;
        let r = self.seg.with_access(self.next, bytes, 1, |p| {
            if buf.len() >= n {
                // Every chunk after the first is no larger than the first,
                // so this is the common path: one bulk copy.
                buf.truncate(n);
                // SAFETY: `p .. p + bytes` is in bounds (with_access), live
                // (enter), not written (the segment is borrowed shared by
                // this iterator), and `buf` is our own Vec.
                unsafe { T::read_slice_raw(p, buf) }
            } else {
                buf.clear();
                buf.extend((0..n).map(|i| {
                    // SAFETY: `i * SIZE + SIZE <= bytes`, otherwise as above.
                    unsafe { T::read_raw(p.add(i * T::SIZE)) }
                }));
            }
        });
        match r {
            Ok(()) => {
                self.next += bytes;
                self.pos = 0;
                Some(Ok(()))
            }
            Err(e) => {
                // Stop after reporting the error once.
                self.next = self.seg.len();
                self.buf.clear();
                self.pos = 0;
                Some(Err(e))
            }
        }
    }

    /// The next run of values (up to [`CHUNK`](Self::CHUNK) of them, copied
    /// under one liveness check) as a slice: the fastest way to consume a
    /// segment without a guard, since the loop over the slice vectorizes.
    /// Values already returned by [`next`](Iterator::next) are skipped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// let s = Session::shared();
    /// let mut b: Vec<i32> = (1..=3000).collect();
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 12000, &s) }?;
    /// let mut it = seg.elements::<i32>()?;
    /// let mut sum = 0i64;
    /// while let Some(chunk) = it.next_chunk() {
    ///     sum += chunk?.iter().map(|&x| x as i64).sum::<i64>();
    /// }
    /// assert_eq!(sum, 3000 * 3001 / 2);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn next_chunk(&mut self) -> Option<Result<&[T]>> {
        if self.pos >= self.buf.len()
            && let Err(e) = self.refill()?
        {
            return Some(Err(e));
        }
        let start = self.pos;
        self.pos = self.buf.len();
        Some(Ok(&self.buf[start..]))
    }
}

impl<T: Primitive> Iterator for Elements<'_, T> {
    type Item = Result<T>;

    #[inline]
    fn next(&mut self) -> Option<Result<T>> {
        if let Some(v) = self.buf.get(self.pos) {
            self.pos += 1;
            return Some(Ok(*v));
        }
        match self.refill()? {
            Ok(()) => {
                self.pos = 1;
                Some(Ok(self.buf[0]))
            }
            Err(e) => Some(Err(e)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.buf.len() - self.pos) + (self.seg.len() - self.next) / T::SIZE;
        (0, Some(n))
    }

    /// Chunk by chunk (what `for_each`, `count`, `fold` … use): the inner
    /// loop runs over a plain slice.
    fn fold<B, F: FnMut(B, Result<T>) -> B>(mut self, init: B, mut f: F) -> B {
        let mut acc = init;
        while let Some(chunk) = self.next_chunk() {
            match chunk {
                Ok(values) => {
                    for &v in values {
                        acc = f(acc, Ok(v));
                    }
                }
                Err(e) => acc = f(acc, Err(e)),
            }
        }
        acc
    }
}
