//! Dynamic values read and written through a run-time layout (Janet
//! `ffi/read` / `ffi/write`).

use super::bytes;
use crate::error::{Error, Result};
use crate::layout::{ByteOrder, LayoutKind, MemoryLayout, ValueKind};
use crate::segment::{Address, Segment};

/// A C value of any layout, for code that only knows the layout at run time.
///
/// Structs hold one value per *non-padding* member, in order; sequences one
/// per element; unions and padding read as `Bytes`. `Bytes` of exactly the
/// layout's size may be written to any layout (raw bytes).
///
/// Values may nest arbitrarily deep (safe code can build a million nested
/// `Struct`s): `Drop`, `Clone` and `PartialEq` walk them with a heap stack,
/// not recursion, and `Debug` prints levels below
/// [`MAX_DEPTH`](crate::layout::MAX_DEPTH) as `..`. Values *read* from
/// memory are as deep as their layout (at most `MAX_DEPTH`).
///
/// # Examples
///
/// ```
/// use memscope::{Session, Segment, segment::Address, layout::{c, MemoryLayout}, marshal::Value};
/// let s = Session::global();
/// let mut buf = [0u64; 2];
/// // SAFETY: `buf` outlives the segment and is only used through it.
/// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(buf.as_mut_ptr()), 16, &s) }?;
/// let l = MemoryLayout::c_struct([c::CHAR.with_name("c"), c::DOUBLE.with_name("d")])?;
/// let v = Value::Struct(vec![Value::I8(7), Value::F64(2.5)]);
/// v.write(&l, &mut seg, 0)?;
/// assert_eq!(Value::read(&l, &seg, 0)?, v);
/// // a type mismatch is an error, and nothing is written
/// assert!(Value::Struct(vec![Value::I8(1), Value::I32(2)]).write(&l, &mut seg, 0).is_err());
/// # Ok::<(), memscope::Error>(())
/// ```
pub enum Value {
    /// `_Bool`.
    Bool(bool),
    /// `int8_t`.
    I8(i8),
    /// `uint8_t`.
    U8(u8),
    /// `int16_t`.
    I16(i16),
    /// `uint16_t`.
    U16(u16),
    /// `int32_t`.
    I32(i32),
    /// `uint32_t`.
    U32(u32),
    /// `int64_t`.
    I64(i64),
    /// `uint64_t`.
    U64(u64),
    /// `float`.
    F32(f32),
    /// `double`.
    F64(f64),
    /// `void *`.
    Address(Address),
    /// A struct: one value per non-padding member, in order.
    Struct(Vec<Value>),
    /// A sequence: one value per element.
    Array(Vec<Value>),
    /// Raw bytes: padding, a union, or any layout written raw.
    Bytes(Vec<u8>),
}

impl Value {
    /// A short name of the variant, for messages.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::marshal::Value::I32(1).type_name(), "int32_t");
    /// ```
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::I8(_) => "int8_t",
            Value::U8(_) => "uint8_t",
            Value::I16(_) => "int16_t",
            Value::U16(_) => "uint16_t",
            Value::I32(_) => "int32_t",
            Value::U32(_) => "uint32_t",
            Value::I64(_) => "int64_t",
            Value::U64(_) => "uint64_t",
            Value::F32(_) => "float",
            Value::F64(_) => "double",
            Value::Address(_) => "void *",
            Value::Struct(_) => "struct",
            Value::Array(_) => "array",
            Value::Bytes(_) => "bytes",
        }
    }

    /// The members of a `Struct` or elements of an `Array`, moved out
    /// (`Value` implements `Drop`, so patterns cannot move them out).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::marshal::Value;
    /// let v = Value::Struct(vec![Value::I8(1), Value::I8(2)]);
    /// assert_eq!(v.into_children(), Some(vec![Value::I8(1), Value::I8(2)]));
    /// assert_eq!(Value::I8(1).into_children(), None);
    /// ```
    pub fn into_children(mut self) -> Option<Vec<Value>> {
        match &mut self {
            Value::Struct(v) | Value::Array(v) => Some(core::mem::take(v)),
            _ => None,
        }
    }

    /// The bytes of a `Bytes` value, moved out.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::marshal::Value;
    /// assert_eq!(Value::Bytes(vec![1, 2]).into_bytes(), Some(vec![1, 2]));
    /// assert_eq!(Value::U8(1).into_bytes(), None);
    /// ```
    pub fn into_bytes(mut self) -> Option<Vec<u8>> {
        match &mut self {
            Value::Bytes(b) => Some(core::mem::take(b)),
            _ => None,
        }
    }

    /// The scalar kind of a scalar value.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{layout::ValueKind, marshal::Value};
    /// assert_eq!(Value::U16(1).value_kind(), Some(ValueKind::U16));
    /// assert_eq!(Value::Bytes(vec![]).value_kind(), None);
    /// ```
    pub fn value_kind(&self) -> Option<ValueKind> {
        Some(match self {
            Value::Bool(_) => ValueKind::Bool,
            Value::I8(_) => ValueKind::I8,
            Value::U8(_) => ValueKind::U8,
            Value::I16(_) => ValueKind::I16,
            Value::U16(_) => ValueKind::U16,
            Value::I32(_) => ValueKind::I32,
            Value::U32(_) => ValueKind::U32,
            Value::I64(_) => ValueKind::I64,
            Value::U64(_) => ValueKind::U64,
            Value::F32(_) => ValueKind::F32,
            Value::F64(_) => ValueKind::F64,
            Value::Address(_) => ValueKind::Address,
            _ => return None,
        })
    }

    /// Reads a value of `layout` at `offset` of `seg`.
    ///
    /// The whole layout is checked once (bounds, alignment of the start to
    /// `layout.align()`, liveness); scalars honour their byte order.
    ///
    /// The number of values a read produces is bounded by the bytes it
    /// reads: at most `(layout.size() + 1) * MAX_DEPTH +`
    /// [`MAX_ZERO_SIZED_VALUES`](Self::MAX_ZERO_SIZED_VALUES) (only layouts
    /// with huge sequences of zero-sized elements exceed it), and every
    /// allocation is fallible.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`], [`Error::Misaligned`], [`Error::Closed`],
    /// [`Error::WrongThread`]; [`Error::InvalidLayout`] for a layout that
    /// would produce more values than the bound above;
    /// [`Error::OutOfMemory`] if the values cannot be allocated.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// use memscope::layout::{ByteOrder, MemoryLayout, ValueKind};
    /// use memscope::marshal::Value;
    /// # let s = Session::global();
    /// let mut b = [0x12u8, 0x34];
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 2, &s) }?;
    /// let be = MemoryLayout::value(ValueKind::U16).with_order(ByteOrder::Big);
    /// assert_eq!(Value::read(&be, &seg, 0)?, Value::U16(0x1234));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn read(layout: &MemoryLayout, seg: &Segment<'_>, offset: usize) -> Result<Value> {
        check_read_budget(layout)?;
        bytes::with_bytes(seg, offset, layout.size(), layout.align(), |b| {
            decode(layout, b)
        })
    }

    /// The number of values a read of a zero-sized layout may produce
    /// beyond the per-byte allowance (see [`read`](Self::read)): 65 536.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{layout::{c, MemoryLayout}, marshal::Value};
    /// let zst = MemoryLayout::sequence(0, c::INT)?;
    /// let huge = MemoryLayout::sequence(usize::MAX, zst)?;
    /// assert_eq!(huge.size(), 0);
    /// assert!(Value::decode(&huge, &[]).is_err()); // refused, not a panic
    /// assert!(Value::MAX_ZERO_SIZED_VALUES >= 1 << 16);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub const MAX_ZERO_SIZED_VALUES: usize = 1 << 16;

    /// Writes `self` as `layout` at `offset` of `seg`. The value is checked
    /// against the layout first, so a mismatch writes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a value that does not match the layout
    /// (the message gives the path); as [`read`](Self::read), plus
    /// [`Error::ReadOnly`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address};
    /// use memscope::layout::{c, MemoryLayout};
    /// use memscope::marshal::Value;
    /// # let s = Session::global();
    /// let mut b = [0i32; 3];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 12, &s) }?;
    /// let a = MemoryLayout::sequence(3, c::INT)?;
    /// Value::Array(vec![Value::I32(1), Value::I32(2), Value::I32(3)]).write(&a, &mut seg, 0)?;
    /// assert_eq!(seg.get::<i32>(8)?, 3);
    /// assert!(Value::Array(vec![Value::I32(1)]).write(&a, &mut seg, 0).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn write(&self, layout: &MemoryLayout, seg: &mut Segment<'_>, offset: usize) -> Result<()> {
        check(self, layout)?;
        bytes::with_bytes_mut(seg, offset, layout.size(), layout.align(), |b| {
            encode(self, layout, b);
            Ok(())
        })
    }

    /// Whether `self` can be written as `layout` (what [`write`](Self::write)
    /// checks before touching memory).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the first mismatching path.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{layout::c, marshal::Value};
    /// assert!(Value::I32(1).check(&c::INT).is_ok());
    /// assert!(Value::F32(1.0).check(&c::INT).is_err());
    /// ```
    pub fn check(&self, layout: &MemoryLayout) -> Result<()> {
        Ok(check(self, layout)?)
    }

    /// Decodes a value of `layout` from exactly `layout.size()` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `bytes.len() != layout.size()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{layout::c, marshal::Value};
    /// assert_eq!(Value::decode(&c::SHORT, &7i16.to_ne_bytes())?, Value::I16(7));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn decode(layout: &MemoryLayout, bytes: &[u8]) -> Result<Value> {
        if bytes.len() != layout.size() {
            return Err(super::length_error(layout.size(), bytes.len()));
        }
        check_read_budget(layout)?;
        decode(layout, bytes)
    }

    /// Encodes `self` as `layout` into exactly `layout.size()` bytes (bytes
    /// of padding and of unwritten union members are left as they are).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a length or type mismatch.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{layout::c, marshal::Value};
    /// let mut b = [0u8; 2];
    /// Value::I16(-2).encode(&c::SHORT, &mut b)?;
    /// assert_eq!(b, (-2i16).to_ne_bytes());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn encode(&self, layout: &MemoryLayout, out: &mut [u8]) -> Result<()> {
        if out.len() != layout.size() {
            return Err(super::length_error(layout.size(), out.len()));
        }
        check(self, layout)?;
        encode(self, layout, out);
        Ok(())
    }
}

macro_rules! conv_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Value {
                Value::$v(x)
            }
        }
    )*};
}
conv_from!(bool => Bool, i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32,
    i64 => I64, u64 => U64, f32 => F32, f64 => F64, Address => Address);

fn get<const N: usize>(b: &[u8], order: ByteOrder) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    if !order.is_native() {
        a.reverse();
    }
    a
}

fn put<const N: usize>(out: &mut [u8], mut a: [u8; N], order: ByteOrder) {
    if !order.is_native() {
        a.reverse();
    }
    out[..N].copy_from_slice(&a);
}

fn decode_scalar(kind: ValueKind, b: &[u8], o: ByteOrder) -> Value {
    match kind {
        ValueKind::Bool => Value::Bool(b[0] != 0),
        ValueKind::I8 => Value::I8(i8::from_ne_bytes(get(b, o))),
        ValueKind::U8 => Value::U8(b[0]),
        ValueKind::I16 => Value::I16(i16::from_ne_bytes(get(b, o))),
        ValueKind::U16 => Value::U16(u16::from_ne_bytes(get(b, o))),
        ValueKind::I32 => Value::I32(i32::from_ne_bytes(get(b, o))),
        ValueKind::U32 => Value::U32(u32::from_ne_bytes(get(b, o))),
        ValueKind::I64 => Value::I64(i64::from_ne_bytes(get(b, o))),
        ValueKind::U64 => Value::U64(u64::from_ne_bytes(get(b, o))),
        ValueKind::F32 => Value::F32(f32::from_ne_bytes(get(b, o))),
        ValueKind::F64 => Value::F64(f64::from_ne_bytes(get(b, o))),
        ValueKind::Address => Value::Address(Address::new(usize::from_ne_bytes(get(b, o)))),
    }
}

/// How many values decoding `layout` produces (`None` on overflow).
fn value_count(layout: &MemoryLayout) -> Option<usize> {
    match layout.kind() {
        LayoutKind::Value(_) | LayoutKind::Union(_) | LayoutKind::Padding => Some(1),
        LayoutKind::Struct(members) => members
            .iter()
            .filter(|m| !m.is_padding())
            .try_fold(1usize, |n, m| n.checked_add(value_count(m)?)),
        LayoutKind::Sequence { count, element } => {
            count.checked_mul(value_count(element)?)?.checked_add(1)
        }
    }
}

/// Refuses a layout whose read would produce more values than its bytes
/// allow ([`Value::read`]'s bound), before anything is allocated.
fn check_read_budget(layout: &MemoryLayout) -> Result<()> {
    let budget = layout
        .size()
        .saturating_add(1)
        .saturating_mul(crate::layout::MAX_DEPTH)
        .saturating_add(Value::MAX_ZERO_SIZED_VALUES);
    match value_count(layout) {
        Some(n) if n <= budget => Ok(()),
        n => Err(Error::InvalidLayout {
            reason: format!(
                "reading {} value(s) from {} byte(s) exceeds the bound of {budget} \
                 (a sequence of too many zero-sized elements)",
                n.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string()),
                layout.size()
            ),
        }),
    }
}

/// A vector for `n` items, or [`Error::OutOfMemory`].
fn try_vec<T>(n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        size: n.saturating_mul(core::mem::size_of::<T>()),
        align: core::mem::align_of::<T>(),
    })?;
    Ok(v)
}

/// Decodes `layout` from `b` (`b.len() == layout.size()`, established by
/// the caller's checked access). Recursion is bounded by the layout's
/// depth ([`MAX_DEPTH`](crate::layout::MAX_DEPTH)); allocation is fallible.
pub(super) fn decode(layout: &MemoryLayout, b: &[u8]) -> Result<Value> {
    Ok(match layout.kind() {
        LayoutKind::Value(k) => decode_scalar(*k, b, layout.order()),
        LayoutKind::Struct(members) => {
            let mut out = try_vec(members.iter().filter(|m| !m.is_padding()).count())?;
            for (o, m) in layout.members_with_offsets() {
                if !m.is_padding() {
                    out.push(decode(m, &b[o..o + m.size()])?);
                }
            }
            Value::Struct(out)
        }
        LayoutKind::Sequence { count, element } => {
            let sz = element.size();
            let mut out = try_vec(*count)?;
            for i in 0..*count {
                out.push(decode(element, &b[i * sz..(i + 1) * sz])?);
            }
            Value::Array(out)
        }
        LayoutKind::Union(_) | LayoutKind::Padding => {
            let mut out = try_vec(b.len())?;
            out.extend_from_slice(b);
            Value::Bytes(out)
        }
    })
}

/// A value/layout mismatch found by [`check`]; the path is collected (in
/// reverse) only on the way out of a failure, so checking costs no
/// allocation when the value fits.
pub(super) struct Mismatch {
    rev_path: Vec<String>,
    expected: String,
    found: &'static str,
    why: String,
}

impl From<Box<Mismatch>> for Error {
    fn from(m: Box<Mismatch>) -> Error {
        let mut path = String::new();
        for el in m.rev_path.iter().rev() {
            if !path.is_empty() && !el.starts_with('[') {
                path.push('.');
            }
            path.push_str(el);
        }
        if path.is_empty() {
            path.push_str("<root>");
        }
        Error::InvalidArgument {
            reason: format!(
                "value does not match layout at `{path}`: expected {}, found {}{}",
                m.expected, m.found, m.why
            ),
        }
    }
}

#[cold]
#[inline(never)]
fn mismatch(layout: &MemoryLayout, v: &Value, why: String) -> Box<Mismatch> {
    Box::new(Mismatch {
        rev_path: Vec::new(),
        expected: describe(layout),
        found: v.type_name(),
        why,
    })
}

fn describe(l: &MemoryLayout) -> String {
    match l.kind() {
        LayoutKind::Value(k) => k.c_name().to_string(),
        LayoutKind::Struct(_) => "struct".into(),
        LayoutKind::Union(_) => "union".into(),
        LayoutKind::Sequence { count, .. } => format!("array of {count}"),
        LayoutKind::Padding => format!("{} byte(s) of padding", l.size()),
    }
}

/// Checks that `v` can be written as `layout` (nothing is written).
pub(super) fn check(v: &Value, layout: &MemoryLayout) -> Result<(), Box<Mismatch>> {
    if let Value::Bytes(b) = v {
        return if b.len() == layout.size() {
            Ok(())
        } else {
            Err(mismatch(
                layout,
                v,
                format!(" of {} byte(s) (need {})", b.len(), layout.size()),
            ))
        };
    }
    match (layout.kind(), v) {
        (LayoutKind::Value(k), _) => {
            if v.value_kind() == Some(*k) {
                Ok(())
            } else {
                Err(mismatch(layout, v, String::new()))
            }
        }
        (LayoutKind::Struct(members), Value::Struct(vals)) => {
            let fields = members.iter().filter(|m| !m.is_padding()).count();
            if fields != vals.len() {
                return Err(mismatch(
                    layout,
                    v,
                    format!(" of {} value(s) (need {fields})", vals.len()),
                ));
            }
            let fields = members.iter().enumerate().filter(|(_, m)| !m.is_padding());
            for ((i, m), x) in fields.zip(vals) {
                check(x, m).map_err(|mut e| {
                    e.rev_path.push(match m.name() {
                        Some(n) => n.to_string(),
                        None => format!("#{i}"),
                    });
                    e
                })?;
            }
            Ok(())
        }
        (LayoutKind::Sequence { count, element }, Value::Array(vals)) => {
            if vals.len() != *count {
                return Err(mismatch(
                    layout,
                    v,
                    format!(" of {} element(s)", vals.len()),
                ));
            }
            for (i, x) in vals.iter().enumerate() {
                check(x, element).map_err(|mut e| {
                    e.rev_path.push(format!("[{i}]"));
                    e
                })?;
            }
            Ok(())
        }
        (LayoutKind::Union(members), _) => {
            if members
                .iter()
                .any(|m| !m.is_padding() && check(v, m).is_ok())
            {
                Ok(())
            } else {
                Err(mismatch(layout, v, " matching no member".to_string()))
            }
        }
        _ => Err(mismatch(layout, v, String::new())),
    }
}

fn encode_scalar(v: &Value, out: &mut [u8], o: ByteOrder) {
    match *v {
        Value::Bool(x) => out[0] = u8::from(x),
        Value::I8(x) => out[0] = x as u8,
        Value::U8(x) => out[0] = x,
        Value::I16(x) => put(out, x.to_ne_bytes(), o),
        Value::U16(x) => put(out, x.to_ne_bytes(), o),
        Value::I32(x) => put(out, x.to_ne_bytes(), o),
        Value::U32(x) => put(out, x.to_ne_bytes(), o),
        Value::I64(x) => put(out, x.to_ne_bytes(), o),
        Value::U64(x) => put(out, x.to_ne_bytes(), o),
        Value::F32(x) => put(out, x.to_ne_bytes(), o),
        Value::F64(x) => put(out, x.to_ne_bytes(), o),
        Value::Address(a) => put(out, a.get().to_ne_bytes(), o),
        Value::Struct(_) | Value::Array(_) | Value::Bytes(_) => {}
    }
}

/// Encodes `v` as `layout` into `out` (`out.len() == layout.size()`); `v`
/// has passed [`check`].
pub(super) fn encode(v: &Value, layout: &MemoryLayout, out: &mut [u8]) {
    if let Value::Bytes(b) = v {
        out.copy_from_slice(b);
        return;
    }
    match (layout.kind(), v) {
        (LayoutKind::Value(_), _) => encode_scalar(v, out, layout.order()),
        (LayoutKind::Struct(_), Value::Struct(vals)) => {
            let fields = layout
                .members_with_offsets()
                .filter(|(_, m)| !m.is_padding());
            for ((o, m), x) in fields.zip(vals) {
                encode(x, m, &mut out[o..o + m.size()]);
            }
        }
        (LayoutKind::Sequence { element, .. }, Value::Array(vals)) => {
            let sz = element.size();
            for (i, x) in vals.iter().enumerate() {
                encode(x, element, &mut out[i * sz..(i + 1) * sz]);
            }
        }
        (LayoutKind::Union(members), _) => {
            if let Some(m) = members
                .iter()
                .find(|m| !m.is_padding() && check(v, m).is_ok())
            {
                encode(v, m, &mut out[..m.size()]);
            }
        }
        _ => {}
    }
}

// ------------------------------------------------- deep values without recursion

impl Value {
    /// The children of a `Struct` or `Array`.
    fn children(&self) -> Option<&[Value]> {
        match self {
            Value::Struct(v) | Value::Array(v) => Some(v),
            _ => None,
        }
    }

    /// A copy of a value without children (`Struct`/`Array` become empty).
    fn shallow_clone(&self) -> Value {
        match self {
            Value::Bool(x) => Value::Bool(*x),
            Value::I8(x) => Value::I8(*x),
            Value::U8(x) => Value::U8(*x),
            Value::I16(x) => Value::I16(*x),
            Value::U16(x) => Value::U16(*x),
            Value::I32(x) => Value::I32(*x),
            Value::U32(x) => Value::U32(*x),
            Value::I64(x) => Value::I64(*x),
            Value::U64(x) => Value::U64(*x),
            Value::F32(x) => Value::F32(*x),
            Value::F64(x) => Value::F64(*x),
            Value::Address(x) => Value::Address(*x),
            Value::Bytes(b) => Value::Bytes(b.clone()),
            Value::Struct(v) => Value::Struct(Vec::with_capacity(v.len())),
            Value::Array(v) => Value::Array(Vec::with_capacity(v.len())),
        }
    }

    /// Equality of two values without looking at children.
    fn shallow_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::I8(a), Value::I8(b)) => a == b,
            (Value::U8(a), Value::U8(b)) => a == b,
            (Value::I16(a), Value::I16(b)) => a == b,
            (Value::U16(a), Value::U16(b)) => a == b,
            (Value::I32(a), Value::I32(b)) => a == b,
            (Value::U32(a), Value::U32(b)) => a == b,
            (Value::I64(a), Value::I64(b)) => a == b,
            (Value::U64(a), Value::U64(b)) => a == b,
            (Value::F32(a), Value::F32(b)) => a == b,
            (Value::F64(a), Value::F64(b)) => a == b,
            (Value::Address(a), Value::Address(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Struct(a), Value::Struct(b)) | (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len()
            }
            _ => false,
        }
    }

    /// Pushes a child built bottom-up into its parent under construction.
    fn push_child(&mut self, child: Value) {
        if let Value::Struct(v) | Value::Array(v) = self {
            v.push(child);
        }
    }
}

/// Iterative: a million nested structs drop without a million frames.
impl Drop for Value {
    // Inline, so that dropping a scalar (every argument of a dynamic call)
    // is a compare in the caller, not a call (issue 16, row 11).
    #[inline]
    fn drop(&mut self) {
        let (Value::Struct(children) | Value::Array(children)) = self else {
            return;
        };
        if !children.is_empty() {
            drop_deep(children);
        }
    }
}

/// The aggregate part of `Value`'s drop, out of line.
#[inline(never)]
fn drop_deep(children: &mut Vec<Value>) {
    if children
        .iter()
        .all(|c| c.children().is_none_or(<[Value]>::is_empty))
    {
        return; // shallow: the children's own drops do not recurse
    }
    let mut stack = vec![core::mem::take(children)];
    while let Some(mut level) = stack.pop() {
        for c in &mut level {
            if let Value::Struct(g) | Value::Array(g) = c
                && !g.is_empty()
            {
                stack.push(core::mem::take(g));
            }
        }
        // Every child of `level` is now shallow: dropping it is flat.
    }
}

/// Iterative (see [`Drop`]).
impl Clone for Value {
    fn clone(&self) -> Value {
        let Some(children) = self.children() else {
            return self.shallow_clone();
        };
        // (source children, next index, value under construction)
        let mut stack: Vec<(&[Value], usize, Value)> = vec![(children, 0, self.shallow_clone())];
        loop {
            let top = stack
                .last_mut()
                .expect("the stack holds the root until it is returned");
            let src = top.0;
            if let Some(c) = src.get(top.1) {
                top.1 += 1;
                match c.children() {
                    Some(g) => stack.push((g, 0, c.shallow_clone())),
                    None => top.2.push_child(c.shallow_clone()),
                }
                continue;
            }
            let done = match stack.pop() {
                Some((_, _, v)) => v,
                None => unreachable!("checked by last_mut above"),
            };
            match stack.last_mut() {
                Some(parent) => parent.2.push_child(done),
                None => return done,
            }
        }
    }
}

/// Iterative (see [`Drop`]); floats compare as floats (`NaN != NaN`).
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        let mut stack: Vec<(&Value, &Value)> = vec![(self, other)];
        while let Some((a, b)) = stack.pop() {
            if !a.shallow_eq(b) {
                return false;
            }
            if let (Some(x), Some(y)) = (a.children(), b.children()) {
                stack.extend(x.iter().zip(y));
            }
        }
        true
    }
}

/// As `#[derive(Debug)]` would print it, with levels deeper than
/// [`MAX_DEPTH`](crate::layout::MAX_DEPTH) shown as `..`.
impl core::fmt::Debug for Value {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        DebugAt(self, 0).fmt(f)
    }
}

struct DebugAt<'a>(&'a Value, usize);

impl core::fmt::Debug for DebugAt<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self.0 {
            Value::Bool(x) => return f.debug_tuple("Bool").field(x).finish(),
            Value::I8(x) => return f.debug_tuple("I8").field(x).finish(),
            Value::U8(x) => return f.debug_tuple("U8").field(x).finish(),
            Value::I16(x) => return f.debug_tuple("I16").field(x).finish(),
            Value::U16(x) => return f.debug_tuple("U16").field(x).finish(),
            Value::I32(x) => return f.debug_tuple("I32").field(x).finish(),
            Value::U32(x) => return f.debug_tuple("U32").field(x).finish(),
            Value::I64(x) => return f.debug_tuple("I64").field(x).finish(),
            Value::U64(x) => return f.debug_tuple("U64").field(x).finish(),
            Value::F32(x) => return f.debug_tuple("F32").field(x).finish(),
            Value::F64(x) => return f.debug_tuple("F64").field(x).finish(),
            Value::Address(x) => return f.debug_tuple("Address").field(x).finish(),
            Value::Bytes(x) => return f.debug_tuple("Bytes").field(x).finish(),
            Value::Struct(_) => "Struct",
            Value::Array(_) => "Array",
        };
        let children = self.0.children().unwrap_or(&[]);
        if self.1 >= crate::layout::MAX_DEPTH {
            return write!(f, "{name}(..)");
        }
        let depth = self.1 + 1;
        f.debug_tuple(name)
            .field(&DebugList(children, depth))
            .finish()
    }
}

struct DebugList<'a>(&'a [Value], usize);

impl core::fmt::Debug for DebugList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|v| DebugAt(v, self.1)))
            .finish()
    }
}
