//! Layout paths: `"a.b[3].c"` strings and typed [`PathElement`]s.

use super::{LayoutKind, MemoryLayout, invalid};
use crate::error::Result;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathElement<'a> {
    /// A named member of a struct or union.
    Field(&'a str),
    /// An element of a sequence.
    Index(usize),
}

impl fmt::Display for PathElement<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(n) => write!(f, ".{n}"),
            PathElement::Index(i) => write!(f, "[{i}]"),
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
