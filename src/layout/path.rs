//! Layout paths: `"a.b[3].c"` strings and typed [`PathElement`]s.

use super::{LayoutKind, MemoryLayout, invalid};
use crate::error::Result;
use crate::segment::{Primitive, Segment};
use core::fmt;

/// One step of a layout path (Java `MemoryLayout.PathElement`).
///
/// # Examples
///
/// ```
/// use memscope::layout::{c, MemoryLayout, PathElement};
/// let s = MemoryLayout::c_struct([
///     c::CHAR.with_name("tag"),
///     MemoryLayout::sequence(4, c::INT)?.with_name("v"),
/// ])?;
/// let off = s.byte_offset_of(&[PathElement::Field("v"), PathElement::Index(2)])?;
/// assert_eq!(off, 4 + 2 * 4);
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// An open element ([`PathElement::sequence_element`], `[*]` in a string
/// path) leaves the index free: the path then names one member of *every*
/// element, and the accessors take the free indices as arguments
/// ([`MemoryLayout::byte_offset_with`], [`MemoryLayout::offset_handle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathElement<'a> {
    /// A named member of a struct or union.
    Field(&'a str),
    /// An element of a sequence.
    Index(usize),
    /// Any element of a sequence: a free index, given when the offset is
    /// computed (Java's open `sequenceElement()`).
    Open,
}

impl<'a> PathElement<'a> {
    /// The member called `name` (Java `groupElement(name)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::PathElement;
    /// assert_eq!(PathElement::group_element("x"), PathElement::Field("x"));
    /// ```
    #[doc(alias = "groupElement")]
    pub const fn group_element(name: &'a str) -> PathElement<'a> {
        PathElement::Field(name)
    }

    /// Any element of a sequence, its index left free (Java's open
    /// `sequenceElement()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout, PathElement};
    /// let pts = MemoryLayout::sequence(10, MemoryLayout::c_struct([
    ///     c::INT.with_name("x"), c::INT.with_name("y"),
    /// ])?)?;
    /// let path = [PathElement::sequence_element(), PathElement::Field("y")];
    /// assert_eq!(pts.byte_offset_with(&path, &[3])?, 3 * 8 + 4);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "sequenceElement")]
    pub const fn sequence_element() -> PathElement<'a> {
        PathElement::Open
    }

    /// Element `index` of a sequence (Java `sequenceElement(index)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::PathElement;
    /// assert_eq!(PathElement::sequence_element_at(2), PathElement::Index(2));
    /// ```
    pub const fn sequence_element_at(index: usize) -> PathElement<'a> {
        PathElement::Index(index)
    }
}

impl fmt::Display for PathElement<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Index(i) => write!(f, "[{i}]"),
            PathElement::Open => write!(f, "[*]"),
        }
    }
}

/// The offsets of a layout path with free indices (Java's
/// `byteOffsetHandle` and the coordinates of a path's `varHandle`):
/// `offset(&[i, j, ..]) = base + i * stride_0 + j * stride_1 + ..`, each
/// index checked against its sequence's count. It also reads and writes the
/// value at that offset of a segment, so a field of every element of a
/// sequence of structs is one handle.
///
/// # Examples
///
/// ```
/// use memscope::{Arena, SegmentAllocator, layout::{c, MemoryLayout}};
/// let point = MemoryLayout::c_struct([c::INT.with_name("x"), c::INT.with_name("y")])?;
/// let points = MemoryLayout::sequence(4, point)?;
/// let y = points.offset_handle("[*].y")?;
/// assert_eq!(y.strides(), &[8]);
/// let arena = Arena::confined();
/// let mut seg = arena.allocate(points.size(), points.align())?;
/// for i in 0..4 {
///     y.set(&mut seg, &[i], 10 * i as i32)?;
/// }
/// assert_eq!(seg.get::<i32>(3 * 8 + 4)?, 30);
/// assert_eq!(y.get::<i32>(&seg, &[2])?, 20);
/// assert!(y.get::<i32>(&seg, &[4]).is_err()); // index out of range
/// assert!(y.get::<i64>(&seg, &[0]).is_err()); // not the member's type
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct OffsetHandle {
    base: usize,
    strides: Vec<usize>,
    counts: Vec<usize>,
    target: MemoryLayout,
}

impl OffsetHandle {
    /// How many free indices [`offset`](Self::offset) takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let m = MemoryLayout::sequence(2, MemoryLayout::sequence(3, c::INT)?)?;
    /// assert_eq!(m.offset_handle("[*][*]")?.free_indices(), 2);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn free_indices(&self) -> usize {
        self.strides.len()
    }

    /// The byte stride of each free index, outermost first.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let m = MemoryLayout::sequence(2, MemoryLayout::sequence(3, c::INT)?)?;
    /// assert_eq!(m.offset_handle("[*][*]")?.strides(), &[12, 4]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// The offset with every free index at 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let s = MemoryLayout::c_struct([c::INT.with_name("n"), MemoryLayout::sequence(3, c::INT)?.with_name("v")])?;
    /// assert_eq!(s.offset_handle("v[*]")?.base(), 4);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn base(&self) -> usize {
        self.base
    }

    /// The layout the path selects (one element's member).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let a = MemoryLayout::sequence(3, c::SHORT)?;
    /// assert_eq!(a.offset_handle("[*]")?.layout().size(), 2);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn layout(&self) -> &MemoryLayout {
        &self.target
    }

    /// The byte offset for these free indices.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for the
    /// wrong number of indices; [`Error::InvalidLayout`](crate::Error::InvalidLayout)
    /// for an index out of its sequence's range.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let m = MemoryLayout::sequence(2, MemoryLayout::sequence(3, c::INT)?)?;
    /// let h = m.offset_handle("[*][*]")?;
    /// assert_eq!(h.offset(&[1, 2])?, 12 + 8);
    /// assert!(h.offset(&[2, 0]).is_err());
    /// assert!(h.offset(&[1]).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn offset(&self, indices: &[usize]) -> Result<usize> {
        if indices.len() != self.strides.len() {
            return Err(crate::Error::InvalidArgument {
                reason: format!(
                    "the path has {} free index(es), {} given",
                    self.strides.len(),
                    indices.len()
                ),
            });
        }
        let mut off = self.base;
        for ((&i, &stride), &count) in indices.iter().zip(&self.strides).zip(&self.counts) {
            if i >= count {
                return Err(invalid(format!(
                    "free index {i} out of range for a sequence of {count} element(s)"
                )));
            }
            // Cannot overflow: i < count, and every offset inside the
            // layout fits its (checked) size.
            off += i * stride;
        }
        Ok(off)
    }

    /// Reads the selected value for these indices from `seg` (which holds
    /// the whole layout from offset 0).
    ///
    /// # Errors
    ///
    /// As [`offset`](Self::offset); [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// if the selected layout is not a value layout of `T`'s size; then as
    /// [`Segment::get`] (honouring the layout's byte order and alignment:
    /// an unaligned layout reads unaligned).
    ///
    /// # Examples
    ///
    /// See [`OffsetHandle`].
    pub fn get<T: Primitive>(&self, seg: &Segment<'_>, indices: &[usize]) -> Result<T> {
        let off = self.offset(indices)?;
        self.check_value::<T>()?;
        if self.target.align() < <T as Primitive>::ALIGN {
            seg.get_unaligned_with(off, self.target.order())
        } else {
            seg.get_with(off, self.target.order())
        }
    }

    /// Writes the selected value for these indices into `seg`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), plus [`Segment::set`]'s.
    ///
    /// # Examples
    ///
    /// See [`OffsetHandle`].
    pub fn set<T: Primitive>(
        &self,
        seg: &mut Segment<'_>,
        indices: &[usize],
        value: T,
    ) -> Result<()> {
        let off = self.offset(indices)?;
        self.check_value::<T>()?;
        if self.target.align() < <T as Primitive>::ALIGN {
            seg.set_unaligned_with(off, value, self.target.order())
        } else {
            seg.set_with(off, value, self.target.order())
        }
    }

    /// The selected layout is a value of `T`'s size and class (integer or
    /// floating point; signedness is the caller's choice, as for `get`).
    fn check_value<T: Primitive>(&self) -> Result<()> {
        match self.target.value_kind() {
            Some(k) if k.size() == T::SIZE && k.is_float() == T::IS_FLOAT => Ok(()),
            _ => Err(crate::Error::InvalidArgument {
                reason: format!(
                    "the path selects `{}`, not a `{}`",
                    self.target,
                    core::any::type_name::<T>()
                ),
            }),
        }
    }
}

/// Parses `"a.b[3].c"` (a leading `[i]` is allowed for sequences).
pub(crate) fn parse(path: &str) -> Result<Vec<PathElement<'_>>> {
    let bad = |why: &str| invalid(format!("path `{path}`: {why}"));
    let mut out = Vec::new();
    let bytes = path.as_bytes();
    let mut i = 0;
    let mut need_field = true; // at start or after '.'
    let mut first = true;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => {
                if need_field && !first {
                    return Err(bad("expected a field name after `.`"));
                }
                let close = path[i..]
                    .find(']')
                    .map(|c| c + i)
                    .ok_or_else(|| bad("unclosed `[`"))?;
                let digits = &path[i + 1..close];
                if digits == "*" {
                    out.push(PathElement::Open);
                    i = close + 1;
                    need_field = false;
                    first = false;
                    continue;
                }
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("an index must be decimal digits"));
                }
                let n: usize = digits.parse().map_err(|_| bad("index overflows usize"))?;
                out.push(PathElement::Index(n));
                i = close + 1;
                need_field = false;
            }
            b'.' => {
                if need_field {
                    return Err(bad("empty field name"));
                }
                need_field = true;
                i += 1;
            }
            _ => {
                if !need_field {
                    return Err(bad("expected `.` or `[` between elements"));
                }
                let end = path[i..]
                    .find(['.', '['])
                    .map(|e| e + i)
                    .unwrap_or(path.len());
                let name = &path[i..end];
                if name.contains(']') {
                    return Err(bad("unexpected `]`"));
                }
                out.push(PathElement::Field(name));
                i = end;
                need_field = false;
            }
        }
        first = false;
    }
    if need_field && !first {
        return Err(bad("ends with `.`"));
    }
    if out.is_empty() {
        return Err(bad("empty path"));
    }
    Ok(out)
}

impl MemoryLayout {
    /// The layout at `path` and its byte offset from the start of `self`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`](crate::Error::InvalidLayout) for an unknown
    /// field, an index out of range, a field of a non-group or an index of a
    /// non-sequence (the message names the element).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout, PathElement};
    /// let s = MemoryLayout::c_struct([c::CHAR.with_name("a"), c::DOUBLE.with_name("b")])?;
    /// let (l, off) = s.select_path(&[PathElement::Field("b")])?;
    /// assert_eq!((l.size(), off), (8, 8));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn select_path(&self, path: &[PathElement<'_>]) -> Result<(&MemoryLayout, usize)> {
        let mut cur = self;
        let mut offset = 0usize;
        let mut walked = String::new();
        for el in path {
            let here = if walked.is_empty() {
                "the layout".to_string()
            } else {
                format!("`{}`", walked.trim_start_matches('.'))
            };
            match (*el, &cur.kind) {
                (PathElement::Field(name), LayoutKind::Struct(_) | LayoutKind::Union(_)) => {
                    let (o, m) = cur
                        .members_with_offsets()
                        .find(|(_, m)| m.name() == Some(name))
                        .ok_or_else(|| invalid(format!("no member `{name}` in {here}")))?;
                    offset += o;
                    cur = m;
                }
                (PathElement::Index(i), LayoutKind::Sequence { count, element }) => {
                    if i >= *count {
                        return Err(invalid(format!(
                            "index {i} out of range for {here} of {count} element(s)"
                        )));
                    }
                    // Cannot overflow: i < count and count * size was checked.
                    offset += i * element.size;
                    cur = element;
                }
                (PathElement::Field(name), _) => {
                    return Err(invalid(format!(
                        "field `{name}` of {here}, which is not a struct or union"
                    )));
                }
                (PathElement::Index(i), _) => {
                    return Err(invalid(format!(
                        "index [{i}] of {here}, which is not a sequence"
                    )));
                }
                (PathElement::Open, _) => {
                    return Err(invalid(format!(
                        "open element [*] after {here}: give its index \
                         (byte_offset_with, offset_handle)"
                    )));
                }
            }
            walked.push_str(&el.to_string());
        }
        Ok((cur, offset))
    }

    /// The byte offset of the member at a typed path.
    ///
    /// # Errors
    ///
    /// As [`select_path`](Self::select_path).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout, PathElement::*};
    /// let a = MemoryLayout::sequence(3, MemoryLayout::c_struct([c::INT.with_name("x")])?)?;
    /// assert_eq!(a.byte_offset_of(&[Index(2), Field("x")])?, 8);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn byte_offset_of(&self, path: &[PathElement<'_>]) -> Result<usize> {
        Ok(self.select_path(path)?.1)
    }

    /// The byte offset of the member at `path` (`"a.b[3].c"`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`](crate::Error::InvalidLayout) for a malformed
    /// path, or as [`select_path`](Self::select_path).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let inner = MemoryLayout::c_struct([c::CHAR.with_name("t"), c::INT.with_name("c")])?;
    /// let outer = MemoryLayout::c_struct([
    ///     c::SHORT.with_name("h"),
    ///     MemoryLayout::sequence(4, inner)?.with_name("b"),
    /// ])?;
    /// assert_eq!(outer.byte_offset("b[3].c")?, 4 + 3 * 8 + 4);
    /// assert!(outer.byte_offset("b[4].c").is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn byte_offset(&self, path: &str) -> Result<usize> {
        self.byte_offset_of(&parse(path)?)
    }

    /// The member layout at `path` (`"a.b[3].c"`).
    ///
    /// # Errors
    ///
    /// As [`byte_offset`](Self::byte_offset).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let s = MemoryLayout::c_struct([c::CHAR.with_name("a"), c::DOUBLE.with_name("b")])?;
    /// assert_eq!(s.select("b")?, &c::DOUBLE.with_name("b"));
    /// assert!(s.select("zz").is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn select(&self, path: &str) -> Result<&MemoryLayout> {
        Ok(self.select_path(&parse(path)?)?.0)
    }

    /// The member layout and its offset at `path` (`"a.b[3].c"`).
    ///
    /// # Errors
    ///
    /// As [`byte_offset`](Self::byte_offset).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let s = MemoryLayout::c_struct([c::CHAR.with_name("a"), c::DOUBLE.with_name("b")])?;
    /// assert_eq!(s.select_with_offset("b")?.1, 8);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn select_with_offset(&self, path: &str) -> Result<(&MemoryLayout, usize)> {
        self.select_path(&parse(path)?)
    }

    /// The offset handle of a path that may hold open elements
    /// ([`PathElement::Open`]): the base offset, and a stride and count per
    /// free index (Java's `byteOffsetHandle`).
    ///
    /// # Errors
    ///
    /// As [`select_path`](Self::select_path) (an open element of a
    /// non-sequence is an error too).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout, PathElement::*};
    /// let row = MemoryLayout::c_struct([c::DOUBLE.with_name("w"), c::INT.with_name("id")])?;
    /// let table = MemoryLayout::sequence(100, row)?;
    /// let id = table.offset_handle_of(&[Open, Field("id")])?;
    /// assert_eq!((id.base(), id.strides()), (8, &[16][..]));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn offset_handle_of(&self, path: &[PathElement<'_>]) -> Result<OffsetHandle> {
        let mut base = 0usize;
        let mut strides = Vec::new();
        let mut counts = Vec::new();
        let mut cur = self;
        let mut start = 0;
        // Walk fixed runs with `select_path`; each open element adds a
        // stride.
        for (k, el) in path.iter().enumerate() {
            if *el != PathElement::Open {
                continue;
            }
            let (l, o) = cur.select_path(&path[start..k])?;
            base += o;
            match &l.kind {
                LayoutKind::Sequence { count, element } => {
                    strides.push(element.size);
                    counts.push(*count);
                    cur = element;
                }
                _ => {
                    return Err(invalid(format!(
                        "open element [*] at position {k} of a path selects no sequence"
                    )));
                }
            }
            start = k + 1;
        }
        let (l, o) = cur.select_path(&path[start..])?;
        Ok(OffsetHandle {
            base: base + o,
            strides,
            counts,
            target: l.clone(),
        })
    }

    /// [`offset_handle_of`](Self::offset_handle_of) for a string path,
    /// `[*]` being an open element (`"rows[*].id"`).
    ///
    /// # Errors
    ///
    /// As [`byte_offset`](Self::byte_offset).
    ///
    /// # Examples
    ///
    /// See [`OffsetHandle`].
    #[doc(alias = "byteOffsetHandle")]
    #[doc(alias = "varHandle")]
    pub fn offset_handle(&self, path: &str) -> Result<OffsetHandle> {
        self.offset_handle_of(&parse(path)?)
    }

    /// The byte offset of a path whose open elements take `indices`, in
    /// order (Java's `byteOffsetHandle(path).invoke(indices)`).
    ///
    /// # Errors
    ///
    /// As [`OffsetHandle::offset`] and [`offset_handle_of`](Self::offset_handle_of).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout, PathElement::*};
    /// let grid = MemoryLayout::sequence(3, MemoryLayout::sequence(4, c::SHORT)?)?;
    /// assert_eq!(grid.byte_offset_with(&[Open, Open], &[2, 1])?, 2 * 8 + 2);
    /// assert_eq!(grid.byte_offset_with(&[Index(2), Open], &[1])?, 2 * 8 + 2);
    /// assert!(grid.byte_offset_with(&[Open, Open], &[3, 0]).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn byte_offset_with(&self, path: &[PathElement<'_>], indices: &[usize]) -> Result<usize> {
        self.offset_handle_of(path)?.offset(indices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_indices() {
        assert_eq!(
            parse("a.b[3].c").unwrap(),
            [
                PathElement::Field("a"),
                PathElement::Field("b"),
                PathElement::Index(3),
                PathElement::Field("c")
            ]
        );
        assert_eq!(
            parse("[1][2]").unwrap(),
            [PathElement::Index(1), PathElement::Index(2)]
        );
        assert_eq!(
            parse("a[*].b[*]").unwrap(),
            [
                PathElement::Field("a"),
                PathElement::Open,
                PathElement::Field("b"),
                PathElement::Open
            ]
        );
        assert_eq!(parse("[*]").unwrap(), [PathElement::Open]);
    }

    #[test]
    fn rejects_malformed_paths() {
        for p in [
            "",
            ".",
            "a.",
            ".a",
            "a..b",
            "a[",
            "a[]",
            "a[**]",
            "a[*",
            "a[x]",
            "a]b",
            "a[1]b",
            "a.[1]",
            "a[99999999999999999999999]",
        ] {
            assert!(parse(p).is_err(), "{p:?} parsed");
        }
    }
}
