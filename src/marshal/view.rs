//! Views: members by name over a segment, and sequences of `Marshal` values.

use super::{Marshal, Value, bytes};
use crate::error::{Error, Result};
use crate::layout::MemoryLayout;
use crate::segment::Segment;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

/// A struct (or any layout) at an offset of a segment, with members read and
/// written by path (`"p.y"`, `"pts[2].x"`). `S` is `&Segment` (read-only
/// view) or `&mut Segment` (read-write).
///
/// # Examples
///
/// ```
/// use memscope::{Session, Segment, segment::Address, layout::{c, MemoryLayout}};
/// use memscope::marshal::{StructView, Value};
/// let s = Session::global();
/// let mut buf = [0u32; 4];
/// // SAFETY: `buf` outlives the segment and is only used through it.
/// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(buf.as_mut_ptr()), 16, &s) }?;
/// let point = MemoryLayout::c_struct([c::INT.with_name("x"), c::INT.with_name("y")])?;
/// let line = MemoryLayout::c_struct([point.clone().with_name("p"), point.with_name("q")])?;
/// let mut view = StructView::new(&line, &mut seg, 0)?;
/// view.set("p.y", Value::I32(3))?;
/// view.set_as::<i32>("q.x", &-1)?;
/// assert_eq!(view.get("p.y")?, Value::I32(3));
/// assert_eq!(view.get_as::<i32>("q.x")?, -1);
/// assert!(view.get("p.z").is_err());
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Debug)]
pub struct StructView<'l, S> {
    layout: &'l MemoryLayout,
    seg: S,
    offset: usize,
}

impl<'l, 's, S: Deref<Target = Segment<'s>>> StructView<'l, S> {
    /// A view of `layout` at `offset` of `seg`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if the layout does not fit at `offset`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, layout::c, marshal::StructView};
    /// # let s = Session::global();
    /// # let mut b = [0u8; 4];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// assert!(StructView::new(&c::INT, &seg, 0).is_ok());
    /// assert!(StructView::new(&c::INT, &seg, 1).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn new(layout: &'l MemoryLayout, seg: S, offset: usize) -> Result<Self> {
        match offset.checked_add(layout.size()) {
            Some(end) if end <= seg.len() => Ok(StructView {
                layout,
                seg,
                offset,
            }),
            _ => Err(Error::OutOfBounds {
                offset,
                len: layout.size(),
                size: seg.len(),
            }),
        }
    }

    /// The viewed layout.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, layout::c, marshal::StructView};
    /// # let s = Session::global();
    /// # let mut b = [0u8; 4];
    /// # let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// assert_eq!(StructView::new(&c::INT, &seg, 0)?.layout(), &c::INT);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn layout(&self) -> &'l MemoryLayout {
        self.layout
    }

    /// The offset of the view in its segment.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, layout::c, marshal::StructView};
    /// # let s = Session::global();
    /// # let mut b = [0u32; 2];
    /// # let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
    /// assert_eq!(StructView::new(&c::INT, &seg, 4)?.offset(), 4);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn offset(&self) -> usize {
        self.offset
    }

    fn locate(&self, path: &str) -> Result<(&'l MemoryLayout, usize)> {
        let (l, o) = self.layout.select_with_offset(path)?;
        // Cannot overflow: o < layout.size() and offset + size was checked.
        Ok((l, self.offset + o))
    }

    /// Reads the member at `path` as a [`Value`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for a bad path; [`Value::read`]'s errors.
    ///
    /// # Examples
    ///
    /// See [`StructView`].
    pub fn get(&self, path: &str) -> Result<Value> {
        let (l, o) = self.locate(path)?;
        Value::read(l, &self.seg, o)
    }

    /// Reads the whole viewed value.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, layout::c, marshal::{StructView, Value}};
    /// # let s = Session::global();
    /// # let mut b = [9i32];
    /// # let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// assert_eq!(StructView::new(&c::INT, &seg, 0)?.read()?, Value::I32(9));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn read(&self) -> Result<Value> {
        Value::read(self.layout, &self.seg, self.offset)
    }

    /// A read-only view of the member at `path` (a nested struct, an array
    /// element: `"pts[2]"`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for a bad path.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, layout::{c, MemoryLayout}};
    /// # use memscope::marshal::{StructView, Value};
    /// # let s = Session::global();
    /// let mut b = [1i32, 2, 3, 4];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 16, &s) }?;
    /// let pt = MemoryLayout::c_struct([c::INT.with_name("x"), c::INT.with_name("y")])?;
    /// let pts = MemoryLayout::sequence(2, pt)?;
    /// let view = StructView::new(&pts, &seg, 0)?;
    /// let second = view.view("[1]")?;
    /// assert_eq!((second.offset(), second.get("y")?), (8, Value::I32(4)));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn view(&self, path: &str) -> Result<StructView<'l, &Segment<'s>>> {
        let (l, o) = self.locate(path)?;
        Ok(StructView {
            layout: l,
            seg: &*self.seg,
            offset: o,
        })
    }

    /// Reads the member at `path` as a `T`, whose layout must have the same
    /// shape as the member's (names ignored).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the shapes differ; as [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// See [`StructView`].
    pub fn get_as<T: Marshal>(&self, path: &str) -> Result<T> {
        let (l, o) = self.locate(path)?;
        check_shape::<T>(l, path)?;
        T::read_from(&self.seg, o)
    }
}

impl<'l, 's, S: DerefMut<Target = Segment<'s>>> StructView<'l, S> {
    /// Writes `value` to the member at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for a bad path; [`Value::write`]'s errors.
    ///
    /// # Examples
    ///
    /// See [`StructView`].
    pub fn set(&mut self, path: &str, value: Value) -> Result<()> {
        let (l, o) = self.locate(path)?;
        value.write(l, &mut self.seg, o)
    }

    /// A read-write view of the member at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for a bad path.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, layout::{c, MemoryLayout}};
    /// # use memscope::marshal::{StructView, Value};
    /// # let s = Session::global();
    /// let mut b = [0i32; 4];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 16, &s) }?;
    /// let pt = MemoryLayout::c_struct([c::INT.with_name("x"), c::INT.with_name("y")])?;
    /// let pts = MemoryLayout::sequence(2, pt)?;
    /// let mut view = StructView::new(&pts, &mut seg, 0)?;
    /// view.view_mut("[1]")?.set("x", Value::I32(7))?;
    /// assert_eq!(seg.get::<i32>(8)?, 7);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn view_mut(&mut self, path: &str) -> Result<StructView<'l, &mut Segment<'s>>> {
        let (l, o) = self.locate(path)?;
        Ok(StructView {
            layout: l,
            seg: &mut *self.seg,
            offset: o,
        })
    }

    /// Writes the whole viewed value.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, layout::c, marshal::{StructView, Value}};
    /// # let s = Session::global();
    /// # let mut b = [0i32];
    /// # let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 4, &s) }?;
    /// StructView::new(&c::INT, &mut seg, 0)?.write(&Value::I32(4))?;
    /// assert_eq!(seg.get::<i32>(0)?, 4);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn write(&mut self, value: &Value) -> Result<()> {
        value.write(self.layout, &mut self.seg, self.offset)
    }

    /// Writes a `T` to the member at `path` (shapes must agree).
    ///
    /// # Errors
    ///
    /// As [`get_as`](Self::get_as) and [`set`](Self::set).
    ///
    /// # Examples
    ///
    /// See [`StructView`].
    pub fn set_as<T: Marshal>(&mut self, path: &str, value: &T) -> Result<()> {
        let (l, o) = self.locate(path)?;
        check_shape::<T>(l, path)?;
        value.write_to(&mut self.seg, o)
    }
}

fn check_shape<T: Marshal>(l: &MemoryLayout, path: &str) -> Result<()> {
    let t = T::layout();
    if t.same_shape(l) {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            reason: format!("member `{path}` is `{l}`, not `{t}`"),
        })
    }
}

/// An iterator over the `T`s stored back to back in a segment; see
/// [`seq_of`].
#[derive(Debug)]
pub struct SeqIter<'a, 's, T> {
    seg: &'a Segment<'s>,
    next: usize,
    end: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: Marshal> Iterator for SeqIter<'_, '_, T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        if self.next >= self.end {
            return None;
        }
        let i = self.next;
        self.next += 1;
        // Cannot overflow: i < len / SIZE.
        Some(T::read_from(self.seg, i * T::SIZE))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl<T: Marshal> ExactSizeIterator for SeqIter<'_, '_, T> {}

/// The `T`s stored back to back from offset 0 of `seg` (coffi `seq-of`):
/// `seg.len() / T::SIZE` of them (a partial tail is ignored; a zero-size
/// `T` yields nothing). Each item is one checked read.
///
/// # Examples
///
/// ```
/// # use memscope::{Session, Segment, segment::Address};
/// # let s = Session::global();
/// let mut b = [1u16, 2, 3];
/// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 6, &s) }?;
/// let v: Vec<u16> = memscope::marshal::seq_of::<u16>(&seg).collect::<Result<_, _>>()?;
/// assert_eq!(v, [1, 2, 3]);
/// # Ok::<(), memscope::Error>(())
/// ```
pub fn seq_of<'a, 's, T: Marshal>(seg: &'a Segment<'s>) -> SeqIter<'a, 's, T> {
    let end = seg.len().checked_div(T::SIZE).unwrap_or(0);
    SeqIter {
        seg,
        next: 0,
        end,
        _t: PhantomData,
    }
}

/// Writes `values` back to back from `offset` of `seg`, with one bounds,
/// alignment and liveness check for the whole run.
///
/// # Errors
///
/// [`Error::OutOfBounds`] if they do not fit (nothing is written);
/// [`Error::Misaligned`], [`Error::ReadOnly`], [`Error::Closed`],
/// [`Error::WrongThread`].
///
/// # Examples
///
/// ```
/// # use memscope::{Session, Segment, segment::Address};
/// # let s = Session::global();
/// let mut b = [0u32; 3];
/// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 12, &s) }?;
/// memscope::marshal::write_seq(&mut seg, 4, &[7u32, 8])?;
/// assert_eq!(seg.get::<u32>(8)?, 8);
/// assert!(memscope::marshal::write_seq(&mut seg, 4, &[1u32, 2, 3]).is_err());
/// # Ok::<(), memscope::Error>(())
/// ```
pub fn write_seq<T: Marshal>(seg: &mut Segment<'_>, offset: usize, values: &[T]) -> Result<()> {
    let total = run_len::<T>(seg, offset, values.len())?;
    bytes::with_bytes_mut(seg, offset, total, T::ALIGN, |b| {
        if T::SIZE == 0 {
            return Ok(());
        }
        values
            .iter()
            .zip(b.chunks_exact_mut(T::SIZE))
            .try_for_each(|(v, chunk)| v.encode(chunk))
    })
}

/// `count * T::SIZE`, or `OutOfBounds` on overflow.
fn run_len<T: Marshal>(seg: &Segment<'_>, offset: usize, count: usize) -> Result<usize> {
    count.checked_mul(T::SIZE).ok_or(Error::OutOfBounds {
        offset,
        len: usize::MAX,
        size: seg.len(),
    })
}

/// Reads `out.len()` `T`s stored back to back from `offset` of `seg` into
/// `out`, with one bounds, alignment and liveness check for the whole run.
///
/// # Errors
///
/// As [`write_seq`] (no `ReadOnly`), plus [`Marshal::decode`]'s (then `out`
/// holds the elements before the bad one).
///
/// # Examples
///
/// ```
/// # use memscope::{Session, Segment, segment::Address};
/// # let s = Session::global();
/// let mut b = [5i16, 6, 7];
/// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 6, &s) }?;
/// let mut out = [0i16; 2];
/// memscope::marshal::read_seq_into(&seg, 2, &mut out)?;
/// assert_eq!(out, [6, 7]);
/// # Ok::<(), memscope::Error>(())
/// ```
pub fn read_seq_into<T: Marshal>(seg: &Segment<'_>, offset: usize, out: &mut [T]) -> Result<()> {
    let total = run_len::<T>(seg, offset, out.len())?;
    bytes::with_bytes(seg, offset, total, T::ALIGN, |b| {
        if T::SIZE == 0 {
            return out
                .iter_mut()
                .try_for_each(|o| T::decode(&[]).map(|v| *o = v));
        }
        out.iter_mut()
            .zip(b.chunks_exact(T::SIZE))
            .try_for_each(|(o, chunk)| T::decode(chunk).map(|v| *o = v))
    })
}

/// Reads `count` `T`s stored back to back from `offset` of `seg` (one
/// check for the whole run).
///
/// # Errors
///
/// As [`read_seq_into`]; [`Error::InvalidArgument`] for more than
/// [`Value::MAX_ZERO_SIZED_VALUES`] elements of a zero-sized `T`.
///
/// # Examples
///
/// ```
/// # use memscope::{Session, Segment, segment::Address};
/// # let s = Session::global();
/// let mut b = [1u8, 2, 3];
/// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 3, &s) }?;
/// assert_eq!(memscope::marshal::read_seq::<u8>(&seg, 1, 2)?, [2, 3]);
/// assert!(memscope::marshal::read_seq::<u8>(&seg, 1, 3).is_err());
/// # Ok::<(), memscope::Error>(())
/// ```
pub fn read_seq<T: Marshal>(seg: &Segment<'_>, offset: usize, count: usize) -> Result<Vec<T>> {
    if T::SIZE == 0 && count > Value::MAX_ZERO_SIZED_VALUES {
        // No bytes bound the count of a zero-sized type: refuse a huge one
        // rather than decode it `count` times (issue 12).
        return Err(Error::InvalidArgument {
            reason: format!(
                "read_seq: {count} zero-sized elements (at most {})",
                Value::MAX_ZERO_SIZED_VALUES
            ),
        });
    }
    let total = run_len::<T>(seg, offset, count)?;
    bytes::with_bytes(seg, offset, total, T::ALIGN, |b| {
        if T::SIZE == 0 {
            return (0..count).map(|_| T::decode(&[])).collect();
        }
        b.chunks_exact(T::SIZE).map(T::decode).collect()
    })
}
