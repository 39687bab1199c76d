//! Marshaling: Rust values in and out of native memory by layout.
//!
//! Two ways in:
//!
//! * **Static**: the [`Marshal`] trait — a type's [`MemoryLayout`] plus
//!   `write_to`/`read_from` a segment. Implemented for the C scalars, `bool`,
//!   [`Address`], `Option<Address>` (None = NULL) and arrays `[T; N]`, and
//!   generated for `#[repr(C)]` structs, unions, enums and flag sets by
//!   [`c_struct!`](crate::c_struct), [`c_union!`](crate::c_union),
//!   [`c_enum!`](crate::c_enum) and [`c_flags!`](crate::c_flags), which
//!   assert *at compile time* that the C layout memscope computes equals
//!   Rust's (`offset_of!`, `size_of`, `align_of`).
//! * **With pointers**: [`MarshalIn`] for values whose C form points to
//!   other memory (`char *` members, pointers to structs): [`encode_in`]
//!   writes the pointed-to data into memory from any
//!   [`SegmentAllocator`] and stores the
//!   addresses; [`Encoded::decode`] and [`Decoder`] read back, following a
//!   pointer only into known segments (coffi's `serialize` with a session).
//! * **Dynamic**: [`Value`] read and written through a run-time
//!   [`MemoryLayout`] (Janet `ffi/read`/`ffi/write`), and [`StructView`] to
//!   get and set members by path (`view.set("p.y", Value::I32(3))`).
//!
//! A whole value costs one bounds check, one alignment check and one
//! liveness check; the bytes are then encoded from/decoded into a plain
//! byte slice (the unsafe part is one small file, `marshal/bytes.rs`).
//!
//! # Unions
//!
//! [`Value::read`] reads a union as [`Value::Bytes`] (its whole size): the
//! active member is not recorded in memory. Read a particular member by path
//! ([`StructView::get`]`("u.f")`) or with [`MemoryLayout::select`].
//! [`Value::write`] of a union accepts `Bytes` of the union's size, or a
//! value matching one of its members (the first that matches, in order),
//! written at offset 0 with the other bytes left as they were.

#[doc(hidden)]
pub mod abi;
mod alloc_ext;
mod bytes;
mod deep;
mod macros;
mod value;
mod view;

pub use alloc_ext::AllocateExt;
pub use deep::{
    Decoder, Encoded, Encoder, MAX_POINTER_DEPTH, MAX_POINTER_FOLLOWS, MarshalIn, encode_in,
};
pub use value::Value;
pub use view::{SeqIter, StructView, read_seq, read_seq_into, seq_of, write_seq};

use crate::alloc::SegmentAllocator;
use crate::error::{Error, Result};
use crate::layout::{MemoryLayout, ValueKind};
use crate::segment::{Address, Segment};
use crate::session::AcquireGuard;
use core::marker::PhantomData;

/// A Rust type with a C layout: its [`MemoryLayout`], and how to encode it
/// into and decode it from exactly [`SIZE`](Self::SIZE) bytes.
///
/// Implement [`encode`](Self::encode) and [`decode`](Self::decode);
/// [`write_to`](Self::write_to) and [`read_from`](Self::read_from) are
/// provided (one checked segment access each). The derive-like macros
/// [`c_struct!`](crate::c_struct) etc. implement it for you.
///
/// # Examples
///
/// ```
/// use memscope::{Session, Segment, marshal::Marshal, segment::Address};
/// let s = Session::global();
/// let mut buf = [0u64; 2];
/// // SAFETY: `buf` outlives the segment and is only used through it.
/// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(buf.as_mut_ptr()), 16, &s) }?;
/// [1u32, 2, 3, 4].write_to(&mut seg, 0)?;
/// assert_eq!(<[u32; 4]>::read_from(&seg, 0)?, [1, 2, 3, 4]);
/// assert_eq!(u32::layout().size(), 4);
/// # Ok::<(), memscope::Error>(())
/// ```
pub trait Marshal: Sized {
    /// Size in bytes of the C representation (`layout().size()`).
    const SIZE: usize;
    /// Alignment in bytes of the C representation (`layout().align()`).
    const ALIGN: usize;

    /// The x86-64 System V register class of each of the first 16 bytes
    /// (what [`c_union!`](crate::c_union) needs to pass a union by value as
    /// C does; see `marshal/abi.rs`). Provided for the crate's impls and the
    /// macros; a hand-written impl may leave the default (its bytes count as
    /// INTEGER, right for anything without floats).
    #[doc(hidden)]
    const __ABI: abi::AbiBytes = abi::unknown(Self::SIZE);

    /// The C layout of this type.
    fn layout() -> MemoryLayout;

    /// Encodes `self` into `out` (native byte order).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `out.len() != SIZE`.
    fn encode(&self, out: &mut [u8]) -> Result<()>;

    /// Decodes a value from `bytes`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `bytes.len() != SIZE` or the bytes are
    /// not a valid value (an unknown enum value, unknown flag bits).
    fn decode(bytes: &[u8]) -> Result<Self>;

    /// Writes `self` at `offset` of `seg` (aligned to `ALIGN`).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`], [`Error::Misaligned`], [`Error::ReadOnly`],
    /// [`Error::Closed`], [`Error::WrongThread`].
    #[inline]
    #[doc(alias = "serialize")]
    fn write_to(&self, seg: &mut Segment<'_>, offset: usize) -> Result<()> {
        bytes::with_bytes_mut(seg, offset, Self::SIZE, Self::ALIGN, |b| self.encode(b))
    }

    /// Reads a value at `offset` of `seg` (aligned to `ALIGN`).
    ///
    /// # Errors
    ///
    /// As [`write_to`](Self::write_to) (no `ReadOnly`), plus
    /// [`decode`](Self::decode)'s.
    #[inline]
    #[doc(alias = "deserialize")]
    fn read_from(seg: &Segment<'_>, offset: usize) -> Result<Self> {
        bytes::with_bytes(seg, offset, Self::SIZE, Self::ALIGN, |b| Self::decode(b))
    }

    /// As [`write_to`](Self::write_to), with the liveness check replaced by
    /// `guard` (DESIGN 8): bounds and alignment only — the fast path for
    /// shared sessions in loops.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `guard` holds another session; bounds,
    /// alignment and [`Error::ReadOnly`] errors as `write_to`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, Segment, segment::Address, marshal::Marshal};
    /// let s = Session::shared();
    /// let mut b = [0u32; 4];
    /// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 16, &s) }?;
    /// let g = s.acquire()?;
    /// for i in 0..4 {
    ///     (i as u32).write_guarded(&mut seg, &g, 4 * i)?;
    /// }
    /// assert_eq!(u32::read_guarded(&seg, &g, 12)?, 3);
    /// let other = Session::shared();
    /// assert!(1u32.write_guarded(&mut seg, &other.acquire()?, 0).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline]
    fn write_guarded(
        &self,
        seg: &mut Segment<'_>,
        guard: &AcquireGuard<'_>,
        offset: usize,
    ) -> Result<()> {
        bytes::with_bytes_guarded_mut(seg, guard, offset, Self::SIZE, Self::ALIGN, |b| {
            self.encode(b)
        })
    }

    /// As [`read_from`](Self::read_from), with the liveness check replaced
    /// by `guard`.
    ///
    /// # Errors
    ///
    /// As [`write_guarded`](Self::write_guarded) (no `ReadOnly`), plus
    /// [`decode`](Self::decode)'s.
    ///
    /// # Examples
    ///
    /// See [`write_guarded`](Self::write_guarded).
    #[inline]
    fn read_guarded(seg: &Segment<'_>, guard: &AcquireGuard<'_>, offset: usize) -> Result<Self> {
        bytes::with_bytes_guarded(seg, guard, offset, Self::SIZE, Self::ALIGN, |b| {
            Self::decode(b)
        })
    }
}

#[cold]
#[inline(never)]
fn length_error(want: usize, got: usize) -> Error {
    Error::InvalidArgument {
        reason: format!("marshal: expected {want} byte(s), got {got}"),
    }
}

/// `bytes` as a fixed-size array reference, or [`Error::InvalidArgument`].
/// Used by [`Marshal`] implementations (and the macros) so that, once the
/// length is known, every field access is free of bounds checks.
///
/// # Examples
///
/// ```
/// let b = [1u8, 2, 3];
/// let a: &[u8; 3] = memscope::marshal::fixed(&b)?;
/// assert_eq!(a, &[1, 2, 3]);
/// assert!(memscope::marshal::fixed::<4>(&b).is_err());
/// # Ok::<(), memscope::Error>(())
/// ```
#[inline(always)]
pub fn fixed<const N: usize>(bytes: &[u8]) -> Result<&[u8; N]> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| length_error(N, len))
}

/// Mutable version of [`fixed`].
///
/// # Examples
///
/// ```
/// let mut b = [0u8; 2];
/// *memscope::marshal::fixed_mut::<2>(&mut b)? = [7, 8];
/// assert_eq!(b, [7, 8]);
/// # Ok::<(), memscope::Error>(())
/// ```
#[inline(always)]
pub fn fixed_mut<const N: usize>(bytes: &mut [u8]) -> Result<&mut [u8; N]> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| length_error(N, len))
}

macro_rules! scalar_marshal {
    ($($t:ty => $kind:expr),* $(,)?) => {$(
        impl Marshal for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            const ALIGN: usize = core::mem::align_of::<$t>();
            const __ABI: abi::AbiBytes = abi::scalar(
                core::mem::size_of::<$t>(),
                if $kind.is_float() { abi::SSE } else { abi::INTEGER },
            );
            fn layout() -> MemoryLayout {
                MemoryLayout::value($kind)
            }
            #[inline(always)]
            fn encode(&self, out: &mut [u8]) -> Result<()> {
                *fixed_mut::<{ core::mem::size_of::<$t>() }>(out)? = self.to_ne_bytes();
                Ok(())
            }
            #[inline(always)]
            fn decode(bytes: &[u8]) -> Result<Self> {
                Ok(<$t>::from_ne_bytes(*fixed::<{ core::mem::size_of::<$t>() }>(bytes)?))
            }
        }
    )*};
}

scalar_marshal!(
    i8 => ValueKind::I8,
    u8 => ValueKind::U8,
    i16 => ValueKind::I16,
    u16 => ValueKind::U16,
    i32 => ValueKind::I32,
    u32 => ValueKind::U32,
    i64 => ValueKind::I64,
    u64 => ValueKind::U64,
    f32 => ValueKind::F32,
    f64 => ValueKind::F64,
    usize => crate::layout::c::int_kind(core::mem::size_of::<usize>(), false),
    isize => crate::layout::c::int_kind(core::mem::size_of::<isize>(), true),
);

impl Marshal for bool {
    const SIZE: usize = 1;
    const ALIGN: usize = 1;
    const __ABI: abi::AbiBytes = abi::scalar(1, abi::INTEGER);
    fn layout() -> MemoryLayout {
        MemoryLayout::value(ValueKind::Bool)
    }
    #[inline(always)]
    fn encode(&self, out: &mut [u8]) -> Result<()> {
        fixed_mut::<1>(out)?[0] = u8::from(*self);
        Ok(())
    }
    /// Any non-zero byte reads as `true` (as [`Segment::get`] does).
    #[inline(always)]
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(fixed::<1>(bytes)?[0] != 0)
    }
}

impl Marshal for Address {
    const SIZE: usize = core::mem::size_of::<usize>();
    const ALIGN: usize = core::mem::align_of::<usize>();
    const __ABI: abi::AbiBytes = abi::scalar(Self::SIZE, abi::INTEGER);
    fn layout() -> MemoryLayout {
        MemoryLayout::value(ValueKind::Address)
    }
    #[inline(always)]
    fn encode(&self, out: &mut [u8]) -> Result<()> {
        self.get().encode(out)
    }
    #[inline(always)]
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(Address::new(usize::decode(bytes)?))
    }
}

/// A nullable pointer: `None` is written as NULL and NULL reads as `None`.
/// (Its Rust size differs from C's, so it cannot be a
/// [`c_struct!`](crate::c_struct) field: use [`Address`] there.)
impl Marshal for Option<Address> {
    const SIZE: usize = core::mem::size_of::<usize>();
    const ALIGN: usize = core::mem::align_of::<usize>();
    const __ABI: abi::AbiBytes = abi::scalar(Self::SIZE, abi::INTEGER);
    fn layout() -> MemoryLayout {
        MemoryLayout::value(ValueKind::Address)
    }
    #[inline(always)]
    fn encode(&self, out: &mut [u8]) -> Result<()> {
        self.unwrap_or(Address::NULL).encode(out)
    }
    #[inline(always)]
    fn decode(bytes: &[u8]) -> Result<Self> {
        let a = Address::decode(bytes)?;
        Ok(if a.is_null() { None } else { Some(a) })
    }
}

impl<T: Marshal, const N: usize> Marshal for [T; N] {
    const SIZE: usize = T::SIZE * N;
    const ALIGN: usize = T::ALIGN;
    const __ABI: abi::AbiBytes = abi::repeat(T::__ABI, T::SIZE, N);
    fn layout() -> MemoryLayout {
        // An error means T's hand-written impl reports a layout that
        // disagrees with its SIZE/ALIGN (or nests too deep): opaque bytes.
        MemoryLayout::sequence(N, T::layout())
            .ok()
            .filter(|l| l.size() == Self::SIZE && l.align() == Self::ALIGN)
            .unwrap_or_else(|| MemoryLayout::__opaque(Self::SIZE, Self::ALIGN))
    }
    #[inline]
    fn encode(&self, out: &mut [u8]) -> Result<()> {
        if out.len() != Self::SIZE {
            return Err(length_error(Self::SIZE, out.len()));
        }
        for (x, chunk) in self.iter().zip(out.chunks_exact_mut(T::SIZE.max(1))) {
            x.encode(chunk)?;
        }
        Ok(())
    }
    #[inline]
    fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != Self::SIZE {
            return Err(length_error(Self::SIZE, bytes.len()));
        }
        let items: Vec<T> = if T::SIZE == 0 {
            (0..N).map(|_| T::decode(&[])).collect::<Result<_>>()?
        } else {
            bytes
                .chunks_exact(T::SIZE)
                .map(T::decode)
                .collect::<Result<_>>()?
        };
        items
            .try_into()
            .map_err(|v: Vec<T>| length_error(N, v.len()))
    }
}

/// A typed handle on one member of a [`c_union!`](crate::c_union) type:
/// `U::member` constants are these, used with `get`/`set`/`new`.
///
/// # Examples
///
/// ```
/// memscope::c_union! {
///     /// An int or a float.
///     pub union Num { pub i: i32, pub f: f32 }
/// }
/// let n = Num::new(Num::f, &1.5f32)?;
/// assert_eq!(n.get(Num::f)?, 1.5);
/// assert_eq!(Num::f.name(), "f");
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct UnionField<U, T> {
    name: &'static str,
    _p: PhantomData<fn() -> (U, T)>,
}

impl<U, T> UnionField<U, T> {
    /// A handle for the member called `name` (used by the macro).
    ///
    /// # Examples
    ///
    /// ```
    /// let f: memscope::marshal::UnionField<(), u8> = memscope::marshal::UnionField::new("b");
    /// assert_eq!(f.name(), "b");
    /// ```
    pub const fn new(name: &'static str) -> Self {
        UnionField {
            name,
            _p: PhantomData,
        }
    }

    /// The member's name.
    ///
    /// # Examples
    ///
    /// ```
    /// let f: memscope::marshal::UnionField<(), u8> = memscope::marshal::UnionField::new("b");
    /// assert_eq!(f.name(), "b");
    /// ```
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<U, T> Clone for UnionField<U, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<U, T> Copy for UnionField<U, T> {}
impl<U, T> core::fmt::Debug for UnionField<U, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "UnionField({})", self.name)
    }
}

/// Writes `text` as a NUL-terminated C string into a new segment from
/// `alloc` (Panama `allocateFrom(String)`).
///
/// # Errors
///
/// [`Error::InvalidString`] for an interior NUL; the allocator's errors.
///
/// # Examples
///
/// ```
/// # use memscope::{Session, Segment, segment::Address, alloc::SegmentAllocator, Result};
/// # struct Heap(Session, std::cell::RefCell<Vec<*mut [u8]>>);
/// # impl SegmentAllocator for Heap {
/// #     fn allocate_uninit(&self, size: usize, _align: usize) -> Result<Segment<'_>> {
/// #         let raw = Box::into_raw(vec![0u8; size].into_boxed_slice());
/// #         self.1.borrow_mut().push(raw); // leaked on purpose in this example
/// #         unsafe { Segment::from_raw(Address::from_ptr(raw.cast::<u8>()), size, &self.0) }
/// #     }
/// # }
/// # let heap = Heap(Session::global(), Default::default());
/// use memscope::marshal::{read_cstring, write_cstring};
/// let seg = write_cstring(&heap, "héllo")?;
/// assert_eq!(seg.len(), 7);
/// assert_eq!(read_cstring(&seg, 0)?, "héllo");
/// assert!(write_cstring(&heap, "a\0b").is_err());
/// # Ok::<(), memscope::Error>(())
/// ```
pub fn write_cstring<'a, A: SegmentAllocator + ?Sized>(
    alloc: &'a A,
    text: &str,
) -> Result<Segment<'a>> {
    alloc.allocate_cstring(text)
}

/// Reads the NUL-terminated UTF-8 string starting at `offset` of `seg`; the
/// terminator must lie inside the segment.
///
/// # Errors
///
/// [`Error::InvalidString`] if there is no NUL before the segment's end or
/// the bytes are not UTF-8; [`Error::OutOfBounds`] for an offset past the
/// end; [`Error::Closed`], [`Error::WrongThread`].
///
/// # Examples
///
/// ```
/// # use memscope::{Session, Segment, segment::Address};
/// # let s = Session::global();
/// let mut b = *b"hi\0there";
/// let seg = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }?;
/// assert_eq!(memscope::marshal::read_cstring(&seg, 0)?, "hi");
/// assert!(memscope::marshal::read_cstring(&seg, 3).is_err()); // no NUL after "there"
/// # Ok::<(), memscope::Error>(())
/// ```
pub fn read_cstring(seg: &Segment<'_>, offset: usize) -> Result<String> {
    let len = seg.len().checked_sub(offset).ok_or(Error::OutOfBounds {
        offset,
        len: 0,
        size: seg.len(),
    })?;
    bytes::with_bytes(seg, offset, len, 1, |b| {
        let end = b
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| Error::InvalidString {
                reason: format!("no NUL terminator in the {len} byte(s) after offset {offset}"),
            })?;
        core::str::from_utf8(&b[..end])
            .map(str::to_owned)
            .map_err(|e| Error::InvalidString {
                reason: format!("not UTF-8: {e}"),
            })
    })
}
