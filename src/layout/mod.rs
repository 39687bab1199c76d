//! Layouts: the shape of C data, as values.
//!
//! A [`MemoryLayout`] is a size, an alignment, an optional name and a
//! [`LayoutKind`]: a C scalar ([`ValueKind`]), a struct, a union, a sequence
//! (C array) or padding. Struct members are stored *in order with their
//! padding members included*, so a member's offset is the sum of the sizes
//! before it — exactly Java's `MemoryLayout` model, and what the
//! [`marshal`](crate::marshal) module and the linker walk.
//!
//! Three ways to build a struct:
//!
//! * [`MemoryLayout::struct_of`]: explicit (Java). You insert the padding;
//!   a misaligned member is an [`Error::InvalidLayout`] naming it.
//! * [`MemoryLayout::c_struct`]: the platform C compiler's rules — padding
//!   before each member to its alignment, and trailing padding to the
//!   struct's alignment.
//! * [`MemoryLayout::packed`]: `__attribute__((packed))` — no padding at all,
//!   alignment 1.
//!
//! Members are found by path: `"a.b[3].c"` ([`MemoryLayout::byte_offset`],
//! [`MemoryLayout::select`]) or typed [`PathElement`]s.
//!
//! Every constructor validates: zero or overflowing sizes, non-power-of-two
//! alignments, duplicate names, misaligned members and nesting deeper than
//! [`MAX_DEPTH`] return [`Error::InvalidLayout`], never a panic. The depth
//! bound is what keeps every recursive walk over a layout (reading, writing,
//! printing, comparing, dropping, path resolution, the linker's C type
//! checks) within a few hundred stack frames.

pub mod c;
mod display;
mod path;

pub use path::{OffsetHandle, PathElement};

use crate::error::{Error, Result};

/// The byte order of a scalar in memory: the same type segments use
/// ([`crate::segment::ByteOrder`]), so a layout's order can be passed to
/// `get_with`/`set_with` directly.
///
/// # Examples
///
/// ```
/// use memscope::layout::{ByteOrder, MemoryLayout, ValueKind};
/// let be = MemoryLayout::value(ValueKind::U16).with_order(ByteOrder::Big);
/// assert_eq!(be.order(), ByteOrder::Big);
/// assert_eq!(MemoryLayout::value(ValueKind::U16).order(), ByteOrder::Native);
/// assert_ne!(ByteOrder::Native.resolve(), ByteOrder::Native);
/// ```
pub use crate::segment::ByteOrder;

impl ByteOrder {
    /// The default order of layouts: [`ByteOrder::Native`].
    pub const NATIVE: ByteOrder = ByteOrder::Native;

    /// Whether values in this order need no byte swap on this machine
    /// (`Native`, or the machine's own `Little`/`Big`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::ByteOrder;
    /// assert!(ByteOrder::Native.is_native());
    /// assert_ne!(ByteOrder::Big.is_native(), ByteOrder::Little.is_native());
    /// ```
    #[inline(always)]
    pub const fn is_native(self) -> bool {
        matches!(
            (self.resolve(), cfg!(target_endian = "little")),
            (ByteOrder::Little, true) | (ByteOrder::Big, false)
        )
    }
}

/// A C scalar type.
///
/// Sizes are fixed except [`ValueKind::Address`] (a pointer: the platform's
/// pointer size). Natural alignments are the platform C ABI's (Rust's
/// `align_of` of the matching type, which `repr(C)` guarantees agrees).
///
/// # Examples
///
/// ```
/// use memscope::layout::ValueKind;
/// assert_eq!(ValueKind::I16.size(), 2);
/// assert_eq!(ValueKind::Address.size(), core::mem::size_of::<usize>());
/// assert_eq!(ValueKind::F64.c_name(), "double");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// C `_Bool` (one byte; reads treat any non-zero byte as `true`).
    Bool,
    /// `int8_t`.
    I8,
    /// `uint8_t`.
    U8,
    /// `int16_t`.
    I16,
    /// `uint16_t`.
    U16,
    /// `int32_t`.
    I32,
    /// `uint32_t`.
    U32,
    /// `int64_t`.
    I64,
    /// `uint64_t`.
    U64,
    /// `float`.
    F32,
    /// `double`.
    F64,
    /// `void *`.
    Address,
}

impl ValueKind {
    /// Every kind, in declaration order.
    pub const ALL: [ValueKind; 12] = [
        ValueKind::Bool,
        ValueKind::I8,
        ValueKind::U8,
        ValueKind::I16,
        ValueKind::U16,
        ValueKind::I32,
        ValueKind::U32,
        ValueKind::I64,
        ValueKind::U64,
        ValueKind::F32,
        ValueKind::F64,
        ValueKind::Address,
    ];

    /// Size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::layout::ValueKind::F32.size(), 4);
    /// ```
    pub const fn size(self) -> usize {
        use core::mem::size_of;
        match self {
            ValueKind::Bool => size_of::<bool>(),
            ValueKind::I8 | ValueKind::U8 => 1,
            ValueKind::I16 | ValueKind::U16 => 2,
            ValueKind::I32 | ValueKind::U32 | ValueKind::F32 => 4,
            ValueKind::I64 | ValueKind::U64 | ValueKind::F64 => 8,
            ValueKind::Address => size_of::<usize>(),
        }
    }

    /// Natural (C ABI) alignment in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::layout::ValueKind::I32.align(), 4);
    /// ```
    pub const fn align(self) -> usize {
        use core::mem::align_of;
        match self {
            ValueKind::Bool => align_of::<bool>(),
            ValueKind::I8 | ValueKind::U8 => 1,
            ValueKind::I16 | ValueKind::U16 => align_of::<u16>(),
            ValueKind::I32 | ValueKind::U32 => align_of::<u32>(),
            ValueKind::F32 => align_of::<f32>(),
            ValueKind::I64 | ValueKind::U64 => align_of::<u64>(),
            ValueKind::F64 => align_of::<f64>(),
            ValueKind::Address => align_of::<usize>(),
        }
    }

    /// The C spelling (`<stdint.h>` names for integers).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::layout::ValueKind::U16.c_name(), "uint16_t");
    /// ```
    pub const fn c_name(self) -> &'static str {
        match self {
            ValueKind::Bool => "bool",
            ValueKind::I8 => "int8_t",
            ValueKind::U8 => "uint8_t",
            ValueKind::I16 => "int16_t",
            ValueKind::U16 => "uint16_t",
            ValueKind::I32 => "int32_t",
            ValueKind::U32 => "uint32_t",
            ValueKind::I64 => "int64_t",
            ValueKind::U64 => "uint64_t",
            ValueKind::F32 => "float",
            ValueKind::F64 => "double",
            ValueKind::Address => "void *",
        }
    }

    /// Whether this is a floating-point kind.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memscope::layout::ValueKind::F64.is_float());
    /// ```
    pub const fn is_float(self) -> bool {
        matches!(self, ValueKind::F32 | ValueKind::F64)
    }
}

/// What a [`MemoryLayout`] is.
///
/// # Examples
///
/// ```
/// use memscope::layout::{LayoutKind, MemoryLayout, ValueKind};
/// let l = MemoryLayout::value(ValueKind::I32);
/// assert_eq!(l.kind(), &LayoutKind::Value(ValueKind::I32));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum LayoutKind {
    /// A C scalar.
    Value(ValueKind),
    /// Members in order, padding members included (offset = sum of the
    /// sizes before).
    Struct(Vec<MemoryLayout>),
    /// Members all at offset 0.
    Union(Vec<MemoryLayout>),
    /// `count` elements of `element` back to back (a C array).
    Sequence {
        /// Number of elements.
        count: usize,
        /// The element layout.
        element: Box<MemoryLayout>,
    },
    /// Unused bytes.
    Padding,
}

/// The shape of some C data: kind, size, alignment, optional name and (for
/// scalars) byte order.
///
/// # Examples
///
/// ```
/// use memscope::layout::{c, MemoryLayout};
/// let point = MemoryLayout::c_struct([
///     c::INT.with_name("x"),
///     c::INT.with_name("y"),
/// ])?
/// .with_name("point");
/// assert_eq!(point.size(), 8);
/// assert_eq!(point.byte_offset("y")?, 4);
/// assert_eq!(point.to_string(), "struct point { int32_t x; int32_t y; }");
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryLayout {
    kind: LayoutKind,
    size: usize,
    align: usize,
    name: Option<String>,
    order: ByteOrder,
    /// Nesting depth: 1 for a scalar or padding, 1 + the deepest member for
    /// a group or sequence; at most [`MAX_DEPTH`].
    depth: usize,
}

/// The deepest nesting of structs, unions and sequences a layout may have
/// (a scalar is depth 1, `struct { int x; }` depth 2). Constructors return
/// [`Error::InvalidLayout`] beyond it, so recursive walks over a layout are
/// bounded (512 frames of a few hundred bytes fit any thread's stack).
///
/// # Examples
///
/// ```
/// use memscope::layout::{c, MemoryLayout, MAX_DEPTH};
/// let mut l = c::INT;
/// for _ in 1..MAX_DEPTH {
///     l = MemoryLayout::sequence(1, l)?;
/// }
/// assert_eq!(l.depth(), MAX_DEPTH);
/// assert!(MemoryLayout::sequence(1, l).is_err());
/// # Ok::<(), memscope::Error>(())
/// ```
pub const MAX_DEPTH: usize = 512;

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidLayout {
        reason: reason.into(),
    }
}

/// `offset` rounded up to `align` (a power of two), or `None` on overflow.
///
/// # Examples
///
/// ```
/// use memscope::layout::align_up;
/// assert_eq!(align_up(5, 4), Some(8));
/// assert_eq!(align_up(usize::MAX, 2), None);
/// ```
pub const fn align_up(offset: usize, align: usize) -> Option<usize> {
    if align == 0 || !align.is_power_of_two() {
        return None;
    }
    match offset.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// The C compiler's placement of struct members given as `(size, align)`:
/// their offsets, the struct's size (with trailing padding) and alignment,
/// or `None` for an alignment that is not a power of two or a size that
/// overflows `isize::MAX`. Used by [`c_struct!`](crate::c_struct) in
/// compile-time assertions (where `None` becomes a compile error); the
/// run-time [`MemoryLayout::c_struct`] applies the same rule.
///
/// # Examples
///
/// ```
/// use memscope::layout::c_struct_placement;
/// // struct { char c; double d; short s; }
/// const P: Option<([usize; 3], usize, usize)> = c_struct_placement([(1, 1), (8, 8), (2, 2)]);
/// assert_eq!(P, Some(([0, 8, 16], 24, 8)));
/// assert_eq!(c_struct_placement([(1, 3)]), None);
/// assert_eq!(c_struct_placement([(usize::MAX, 1)]), None);
/// ```
pub const fn c_struct_placement<const N: usize>(
    members: [(usize, usize); N],
) -> Option<([usize; N], usize, usize)> {
    let mut offsets = [0usize; N];
    let mut offset = 0usize;
    let mut max_align = 1usize;
    let mut i = 0;
    while i < N {
        let (size, align) = members[i];
        if !align.is_power_of_two() {
            return None;
        }
        offset = match align_up(offset, align) {
            Some(o) => o,
            None => return None,
        };
        offsets[i] = offset;
        offset = match offset.checked_add(size) {
            Some(o) => o,
            None => return None,
        };
        if align > max_align {
            max_align = align;
        }
        i += 1;
    }
    match align_up(offset, max_align) {
        Some(size) if size <= isize::MAX as usize => Some((offsets, size, max_align)),
        _ => None,
    }
}

/// The C compiler's size and alignment of a union of members given as
/// `(size, align)`: the largest size rounded up to the largest alignment,
/// or `None` for an alignment that is not a power of two or a size that
/// overflows `isize::MAX`. Used by [`c_union!`](crate::c_union) in
/// compile-time assertions (where `None` becomes a compile error); at run
/// time [`MemoryLayout::union_of`] applies the same rule.
///
/// # Examples
///
/// ```
/// use memscope::layout::c_union_placement;
/// // union { char c[5]; int i; }
/// assert_eq!(c_union_placement([(5, 1), (4, 4)]), Some((8, 4)));
/// assert_eq!(c_union_placement([(4, 0)]), None);
/// assert_eq!(c_union_placement([(usize::MAX, 2)]), None);
/// ```
pub const fn c_union_placement<const N: usize>(
    members: [(usize, usize); N],
) -> Option<(usize, usize)> {
    let mut size = 0usize;
    let mut max_align = 1usize;
    let mut i = 0;
    while i < N {
        let (s, a) = members[i];
        if !a.is_power_of_two() {
            return None;
        }
        if s > size {
            size = s;
        }
        if a > max_align {
            max_align = a;
        }
        i += 1;
    }
    match align_up(size, max_align) {
        Some(s) if s <= isize::MAX as usize => Some((s, max_align)),
        _ => None,
    }
}

/// Validates a final size/alignment pair: the alignment a power of two, the
/// size (rounded to the alignment) at most `isize::MAX`.
fn check_size_align(size: usize, align: usize, what: &str) -> Result<()> {
    if align == 0 || !align.is_power_of_two() {
        return Err(invalid(format!(
            "{what}: alignment {align} is not a power of two"
        )));
    }
    if size > isize::MAX as usize - (align - 1) {
        return Err(invalid(format!(
            "{what}: size {size} aligned to {align} overflows isize::MAX"
        )));
    }
    Ok(())
}

/// A member's name for messages: its name, or `#index`.
fn member_label(m: &MemoryLayout, i: usize) -> String {
    match &m.name {
        Some(n) => format!("`{n}`"),
        None => format!("#{i}"),
    }
}

/// Duplicate member names are an error; O(n) expected (one hash set).
fn check_unique_names(members: &[MemoryLayout], what: &str) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(members.len());
    for m in members {
        if let Some(n) = &m.name
            && !seen.insert(n.as_str())
        {
            return Err(invalid(format!("{what}: duplicate member name `{n}`")));
        }
    }
    Ok(())
}

impl MemoryLayout {
    /// A leaf (scalar or padding: depth 1); groups go through [`nest`](Self::nest).
    const fn raw(kind: LayoutKind, size: usize, align: usize) -> MemoryLayout {
        MemoryLayout {
            kind,
            size,
            align,
            name: None,
            order: ByteOrder::NATIVE,
            depth: 1,
        }
    }

    /// A struct, union or sequence: its depth is one more than its deepest
    /// member's, and must not exceed [`MAX_DEPTH`].
    fn nest(kind: LayoutKind, size: usize, align: usize, what: &str) -> Result<MemoryLayout> {
        let inner = match &kind {
            LayoutKind::Struct(m) | LayoutKind::Union(m) => {
                m.iter().map(|m| m.depth).max().unwrap_or(0)
            }
            LayoutKind::Sequence { element, .. } => element.depth,
            LayoutKind::Value(_) | LayoutKind::Padding => 0,
        };
        if inner >= MAX_DEPTH {
            return Err(invalid(format!(
                "{what}: nesting deeper than MAX_DEPTH ({MAX_DEPTH})"
            )));
        }
        let mut l = MemoryLayout::raw(kind, size, align);
        l.depth = inner + 1;
        Ok(l)
    }

    /// The nesting depth: 1 for a scalar or padding, one more than the
    /// deepest member for a struct, union or sequence (at most
    /// [`MAX_DEPTH`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// assert_eq!(c::INT.depth(), 1);
    /// let s = MemoryLayout::c_struct([MemoryLayout::sequence(2, c::INT)?])?;
    /// assert_eq!(s.depth(), 3);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// A scalar with its natural size and alignment, native byte order.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{MemoryLayout, ValueKind};
    /// let d = MemoryLayout::value(ValueKind::F64);
    /// assert_eq!((d.size(), d.align()), (8, 8));
    /// ```
    pub const fn value(kind: ValueKind) -> MemoryLayout {
        MemoryLayout::raw(LayoutKind::Value(kind), kind.size(), kind.align())
    }

    /// What this layout is.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{LayoutKind, MemoryLayout};
    /// assert_eq!(MemoryLayout::padding(3)?.kind(), &LayoutKind::Padding);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn kind(&self) -> &LayoutKind {
        &self.kind
    }

    /// Size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::layout::c::SHORT.size(), 2);
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// Alignment in bytes (a power of two).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::layout::c::CHAR.align(), 1);
    /// ```
    pub fn align(&self) -> usize {
        self.align
    }

    /// The name, if one was given with [`with_name`](Self::with_name).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::layout::c::INT.with_name("n").name(), Some("n"));
    /// assert_eq!(memscope::layout::c::INT.name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The byte order of a scalar ([`ByteOrder::NATIVE`] unless set with
    /// [`with_order`](Self::with_order); meaningless for other kinds).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, ByteOrder};
    /// assert_eq!(c::INT.with_order(ByteOrder::Big).order(), ByteOrder::Big);
    /// ```
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    /// The scalar kind, if this is a [`LayoutKind::Value`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, ValueKind};
    /// assert_eq!(c::DOUBLE.value_kind(), Some(ValueKind::F64));
    /// ```
    pub fn value_kind(&self) -> Option<ValueKind> {
        match self.kind {
            LayoutKind::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The members of a struct or union (padding included); empty otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let s = MemoryLayout::c_struct([c::CHAR, c::INT])?;
    /// assert_eq!(s.members().len(), 3); // char, 3 bytes padding, int
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn members(&self) -> &[MemoryLayout] {
        match &self.kind {
            LayoutKind::Struct(m) | LayoutKind::Union(m) => m,
            _ => &[],
        }
    }

    /// Whether this is padding.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memscope::layout::MemoryLayout::padding(1)?.is_padding());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn is_padding(&self) -> bool {
        matches!(self.kind, LayoutKind::Padding)
    }

    /// A struct with members exactly as given (Java `structLayout`): insert
    /// [`padding`](Self::padding) yourself. The alignment is the largest
    /// member alignment; the size is the sum of the member sizes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for no members, a member whose offset is not
    /// a multiple of its alignment (the message names it), duplicate member
    /// names, or an overflowing size.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let ok = MemoryLayout::struct_of([
    ///     c::CHAR.with_name("c"),
    ///     MemoryLayout::padding(3)?,
    ///     c::INT.with_name("i"),
    /// ])?;
    /// assert_eq!(ok.size(), 8);
    /// let bad = MemoryLayout::struct_of([c::CHAR.with_name("c"), c::INT.with_name("i")]);
    /// assert!(bad.unwrap_err().to_string().contains("`i`"));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn struct_of(members: impl IntoIterator<Item = MemoryLayout>) -> Result<MemoryLayout> {
        let members: Vec<MemoryLayout> = members.into_iter().collect();
        if members.is_empty() {
            return Err(invalid("struct: a struct needs at least one member"));
        }
        check_unique_names(&members, "struct")?;
        let mut offset = 0usize;
        let mut align = 1usize;
        for (i, m) in members.iter().enumerate() {
            if !offset.is_multiple_of(m.align) {
                return Err(invalid(format!(
                    "struct: member {} at offset {offset} is not aligned to its alignment {}",
                    member_label(m, i),
                    m.align
                )));
            }
            offset = offset.checked_add(m.size).ok_or_else(|| {
                invalid(format!(
                    "struct: size overflows at member {}",
                    member_label(m, i)
                ))
            })?;
            align = align.max(m.align);
        }
        check_size_align(offset, align, "struct")?;
        MemoryLayout::nest(LayoutKind::Struct(members), offset, align, "struct")
    }

    /// A struct laid out as the platform C compiler does: padding before each
    /// member up to its alignment, and trailing padding up to the struct's
    /// alignment.
    ///
    /// # Errors
    ///
    /// As [`struct_of`](Self::struct_of) (duplicate names, no members,
    /// overflow).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// // struct { char c; void *p; } is 16 bytes on x86-64
    /// let s = MemoryLayout::c_struct([c::CHAR.with_name("c"), c::POINTER.with_name("p")])?;
    /// assert_eq!(s.size(), 2 * c::POINTER.size());
    /// assert_eq!(s.byte_offset("p")?, c::POINTER.size());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn c_struct(members: impl IntoIterator<Item = MemoryLayout>) -> Result<MemoryLayout> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        let mut align = 1usize;
        for (i, m) in members.into_iter().enumerate() {
            let placed = align_up(offset, m.align).ok_or_else(|| {
                invalid(format!(
                    "struct: size overflows at member {}",
                    member_label(&m, i)
                ))
            })?;
            if placed > offset {
                out.push(MemoryLayout::padding(placed - offset)?);
            }
            offset = placed.checked_add(m.size).ok_or_else(|| {
                invalid(format!(
                    "struct: size overflows at member {}",
                    member_label(&m, i)
                ))
            })?;
            align = align.max(m.align);
            out.push(m);
        }
        if out.is_empty() {
            return Err(invalid("struct: a struct needs at least one member"));
        }
        let end = align_up(offset, align).ok_or_else(|| invalid("struct: size overflows"))?;
        if end > offset {
            out.push(MemoryLayout::padding(end - offset)?);
        }
        MemoryLayout::struct_of(out)
    }

    /// A struct with no padding and alignment 1, as
    /// `__attribute__((packed))` (Janet `:pack`). Members keep their own
    /// internal layout but are made [`unaligned`](Self::unaligned).
    ///
    /// # Errors
    ///
    /// As [`struct_of`](Self::struct_of).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let p = MemoryLayout::packed([c::CHAR.with_name("c"), c::INT.with_name("i")])?;
    /// assert_eq!((p.size(), p.align(), p.byte_offset("i")?), (5, 1, 1));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn packed(members: impl IntoIterator<Item = MemoryLayout>) -> Result<MemoryLayout> {
        MemoryLayout::struct_of(members.into_iter().map(MemoryLayout::unaligned))
    }

    /// A union: every member at offset 0; the size is the largest member's
    /// rounded up to the largest alignment (C's rule: a union has no place
    /// for an explicit trailing padding member).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for no members, duplicate names, overflow.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let u = MemoryLayout::union_of([
    ///     MemoryLayout::sequence(5, c::CHAR)?.with_name("c"),
    ///     c::INT.with_name("i"),
    /// ])?;
    /// assert_eq!((u.size(), u.align()), (8, 4));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn union_of(members: impl IntoIterator<Item = MemoryLayout>) -> Result<MemoryLayout> {
        let members: Vec<MemoryLayout> = members.into_iter().collect();
        if members.is_empty() {
            return Err(invalid("union: a union needs at least one member"));
        }
        check_unique_names(&members, "union")?;
        let size = members.iter().map(|m| m.size).max().unwrap_or(0);
        let align = members.iter().map(|m| m.align).max().unwrap_or(1);
        let size = align_up(size, align).ok_or_else(|| invalid("union: size overflows"))?;
        check_size_align(size, align, "union")?;
        MemoryLayout::nest(LayoutKind::Union(members), size, align, "union")
    }

    /// `count` elements of `element` back to back (C `element[count]`).
    /// `count` may be 0 (a flexible array member).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] if the element's size is not a multiple of
    /// its alignment (the elements after the first would be misaligned), or
    /// the total size overflows.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let a = MemoryLayout::sequence(4, c::INT)?;
    /// assert_eq!(a.size(), 16);
    /// assert!(MemoryLayout::sequence(usize::MAX, c::INT).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn sequence(count: usize, element: MemoryLayout) -> Result<MemoryLayout> {
        if !element.size.is_multiple_of(element.align) {
            return Err(invalid(format!(
                "sequence: element size {} is not a multiple of its alignment {}",
                element.size, element.align
            )));
        }
        let size = count.checked_mul(element.size).ok_or_else(|| {
            invalid(format!(
                "sequence: {count} elements of {} bytes overflow",
                element.size
            ))
        })?;
        check_size_align(size, element.align, "sequence")?;
        let align = element.align;
        MemoryLayout::nest(
            LayoutKind::Sequence {
                count,
                element: Box::new(element),
            },
            size,
            align,
            "sequence",
        )
    }

    /// Opaque bytes of `size` and `align` (a padding layout): what a
    /// [`Marshal`](crate::marshal::Marshal) impl made by a macro reports when
    /// its members' layouts are inconsistent with its size (a hand-written
    /// member impl whose `layout()` disagrees with its `SIZE`) or nest too
    /// deep. Never fails: a bad alignment becomes 1 and the size is clamped
    /// to what a layout may have.
    #[doc(hidden)]
    pub fn __opaque(size: usize, align: usize) -> MemoryLayout {
        let align = if align.is_power_of_two() { align } else { 1 };
        let size = size.min((isize::MAX as usize) & !(align - 1));
        MemoryLayout::raw(LayoutKind::Padding, size, align)
    }

    /// A struct from members at known offsets, with padding inserted in the
    /// gaps and at the end up to `size`. Used by [`c_struct!`](crate::c_struct),
    /// whose offsets, size and alignment come from the Rust compiler
    /// (`offset_of!`, `size_of`, `align_of`) and are asserted at compile
    /// time to be C's.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for an alignment that is not a power of two,
    /// members out of order, overlapping, misaligned, running past `size` or
    /// aligned more than the struct, a `size` that is not a multiple of
    /// `align` or overflows, duplicate names, nesting beyond [`MAX_DEPTH`].
    #[doc(hidden)]
    pub fn __struct_at_offsets(
        members: impl IntoIterator<Item = (usize, MemoryLayout)>,
        size: usize,
        align: usize,
    ) -> Result<MemoryLayout> {
        check_size_align(size, align, "struct")?;
        if !size.is_multiple_of(align) {
            return Err(invalid(format!(
                "struct: size {size} is not a multiple of its alignment {align}"
            )));
        }
        let mut out = Vec::new();
        let mut end = 0usize;
        for (i, (offset, m)) in members.into_iter().enumerate() {
            let label = member_label(&m, i);
            if offset < end {
                return Err(invalid(format!(
                    "struct: member {label} at offset {offset} overlaps the member before it"
                )));
            }
            if m.align > align || !offset.is_multiple_of(m.align) {
                return Err(invalid(format!(
                    "struct: member {label} at offset {offset} with alignment {} does not fit a struct aligned to {align}",
                    m.align
                )));
            }
            let m_end = offset
                .checked_add(m.size)
                .filter(|e| *e <= size)
                .ok_or_else(|| {
                    invalid(format!(
                        "struct: member {label} at offset {offset} runs past the struct's size {size}"
                    ))
                })?;
            if offset > end {
                out.push(MemoryLayout::raw(LayoutKind::Padding, offset - end, 1));
            }
            end = m_end;
            out.push(m);
        }
        if size > end {
            out.push(MemoryLayout::raw(LayoutKind::Padding, size - end, 1));
        }
        if out.is_empty() {
            return Err(invalid("struct: a struct needs at least one member"));
        }
        check_unique_names(&out, "struct")?;
        MemoryLayout::nest(LayoutKind::Struct(out), size, align, "struct")
    }

    /// A union from members and the size and alignment the Rust compiler
    /// gave it. Used by [`c_union!`](crate::c_union), which asserts at
    /// compile time that they equal C's.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for an alignment that is not a power of two,
    /// a member larger or more aligned than the union, a `size` that is not
    /// a multiple of `align` or overflows, no members, duplicate names,
    /// nesting beyond [`MAX_DEPTH`].
    #[doc(hidden)]
    pub fn __union_from_parts(
        members: impl IntoIterator<Item = MemoryLayout>,
        size: usize,
        align: usize,
    ) -> Result<MemoryLayout> {
        check_size_align(size, align, "union")?;
        if !size.is_multiple_of(align) {
            return Err(invalid(format!(
                "union: size {size} is not a multiple of its alignment {align}"
            )));
        }
        let members: Vec<MemoryLayout> = members.into_iter().collect();
        if members.is_empty() {
            return Err(invalid("union: a union needs at least one member"));
        }
        for (i, m) in members.iter().enumerate() {
            if m.size > size || m.align > align {
                return Err(invalid(format!(
                    "union: member {} ({} bytes, alignment {}) does not fit a union of {size} bytes aligned to {align}",
                    member_label(m, i),
                    m.size,
                    m.align
                )));
            }
        }
        check_unique_names(&members, "union")?;
        MemoryLayout::nest(LayoutKind::Union(members), size, align, "union")
    }

    /// `size` unused bytes, alignment 1.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for a zero or overflowing size.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::MemoryLayout;
    /// assert_eq!(MemoryLayout::padding(3)?.size(), 3);
    /// assert!(MemoryLayout::padding(0).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn padding(size: usize) -> Result<MemoryLayout> {
        if size == 0 {
            return Err(invalid("padding: size must not be zero"));
        }
        check_size_align(size, 1, "padding")?;
        Ok(MemoryLayout::raw(LayoutKind::Padding, size, 1))
    }

    /// The same layout with a name (used by paths and printing).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::layout::c::LONG.with_name("n").name(), Some("n"));
    /// ```
    pub fn with_name(mut self, name: &str) -> MemoryLayout {
        self.name = Some(name.to_string());
        self
    }

    /// The same layout without a name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::layout::c::INT.with_name("n").without_name().name(), None);
    /// ```
    pub fn without_name(mut self) -> MemoryLayout {
        self.name = None;
        self
    }

    /// The same layout with another alignment. Scalars and padding accept
    /// any power of two (alignment 1 = unaligned access); a struct, union or
    /// sequence may not go below its members' alignment (Java's rule; use
    /// [`unaligned`](Self::unaligned) or [`packed`](Self::packed) for that).
    /// The size does not change.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for a zero or non-power-of-two alignment, or
    /// one below the members' alignment.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// assert_eq!(c::INT.with_align(16)?.align(), 16);
    /// assert!(c::INT.with_align(3).is_err());
    /// let s = MemoryLayout::c_struct([c::INT])?;
    /// assert!(s.with_align(2).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn with_align(mut self, align: usize) -> Result<MemoryLayout> {
        check_size_align(self.size, align, "with_align")?;
        let min = match &self.kind {
            LayoutKind::Struct(m) | LayoutKind::Union(m) => {
                m.iter().map(|m| m.align).max().unwrap_or(1)
            }
            LayoutKind::Sequence { element, .. } => element.align,
            LayoutKind::Value(_) | LayoutKind::Padding => 1,
        };
        if align < min {
            return Err(invalid(format!(
                "with_align: alignment {align} is below the members' alignment {min}"
            )));
        }
        self.align = align;
        Ok(self)
    }

    /// The same layout with every scalar (recursively) and the layout
    /// itself at alignment 1; sizes and offsets unchanged. This is what a
    /// member of a packed struct becomes.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let s = MemoryLayout::c_struct([c::CHAR, c::INT])?.unaligned();
    /// assert_eq!((s.size(), s.align()), (8, 1));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn unaligned(mut self) -> MemoryLayout {
        self.make_unaligned();
        self
    }

    fn make_unaligned(&mut self) {
        self.align = 1;
        match &mut self.kind {
            LayoutKind::Struct(m) | LayoutKind::Union(m) => {
                m.iter_mut().for_each(MemoryLayout::make_unaligned)
            }
            LayoutKind::Sequence { element, .. } => element.make_unaligned(),
            LayoutKind::Value(_) | LayoutKind::Padding => {}
        }
    }

    /// The same layout with every scalar in it (recursively) in byte order
    /// `order`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, ByteOrder, MemoryLayout};
    /// let hdr = MemoryLayout::c_struct([c::SHORT.with_name("port")])?.with_order(ByteOrder::Big);
    /// assert_eq!(hdr.select("port")?.order(), ByteOrder::Big);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn with_order(mut self, order: ByteOrder) -> MemoryLayout {
        self.set_order(order);
        self
    }

    fn set_order(&mut self, order: ByteOrder) {
        self.order = order;
        match &mut self.kind {
            LayoutKind::Struct(m) | LayoutKind::Union(m) => {
                m.iter_mut().for_each(|x| x.set_order(order))
            }
            LayoutKind::Sequence { element, .. } => element.set_order(order),
            LayoutKind::Value(_) | LayoutKind::Padding => {}
        }
    }

    /// The members of a struct or union with their byte offsets (padding
    /// included); empty for other kinds.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{c, MemoryLayout};
    /// let s = MemoryLayout::c_struct([c::CHAR.with_name("a"), c::INT.with_name("b")])?;
    /// let offs: Vec<usize> = s.members_with_offsets().map(|(o, _)| o).collect();
    /// assert_eq!(offs, [0, 1, 4]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn members_with_offsets(&self) -> impl Iterator<Item = (usize, &MemoryLayout)> + '_ {
        let is_struct = matches!(self.kind, LayoutKind::Struct(_));
        let mut offset = 0usize;
        self.members().iter().map(move |m| {
            let o = offset;
            if is_struct {
                // Cannot overflow: the sum of the sizes was checked at construction.
                offset += m.size;
            }
            (o, m)
        })
    }

    /// Whether two layouts have the same shape: kinds, sizes, alignments,
    /// byte orders and counts equal, names ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// assert!(c::INT.with_name("a").same_shape(&c::INT.with_name("b")));
    /// assert!(!c::INT.same_shape(&c::FLOAT));
    /// ```
    pub fn same_shape(&self, other: &MemoryLayout) -> bool {
        if self.size != other.size || self.align != other.align {
            return false;
        }
        match (&self.kind, &other.kind) {
            (LayoutKind::Value(a), LayoutKind::Value(b)) => {
                a == b && self.order.resolve() == other.order.resolve()
            }
            (LayoutKind::Struct(a), LayoutKind::Struct(b))
            | (LayoutKind::Union(a), LayoutKind::Union(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_shape(y))
            }
            (
                LayoutKind::Sequence {
                    count: c1,
                    element: e1,
                },
                LayoutKind::Sequence {
                    count: c2,
                    element: e2,
                },
            ) => c1 == c2 && e1.same_shape(e2),
            (LayoutKind::Padding, LayoutKind::Padding) => true,
            _ => false,
        }
    }
}
