//! How [`c_union!`](crate::c_union) types are passed by value: a storage
//! type whose register classes are C's.
//!
//! A C union of at most 16 bytes is passed in registers on x86-64 System V
//! (and AArch64, for homogeneous float aggregates): each eightbyte is SSE
//! if every member scalar overlapping it is floating point, else INTEGER.
//! Rust classifies a `#[repr(C)]` struct by its fields the same way, so the
//! macro stores the union's bytes as one chunk per eightbyte whose Rust type
//! has C's class: `f64` / `[f32; n]` for an SSE eightbyte, `[uA; n]`
//! (`A` = the union's alignment, at most 8) for an INTEGER one. A union of
//! more than 16 bytes is passed in memory by both, and is stored as bytes.
//!
//! The classes come from [`Marshal::__ABI`](super::Marshal::__ABI): per
//! byte of the first 16, what scalar covers it. Hand-written `Marshal`
//! impls that do not declare it count as INTEGER (the pre-existing
//! behaviour): declare it if such a type holds floats and is passed inside
//! a union by value.
//!
//! All items are `#[doc(hidden)]`: they are the macros' implementation.

/// Per byte of a type's first 16: [`NONE`] (padding or past the end),
/// [`SSE`], [`INTEGER`] or [`UNKNOWN`]. Merging is `max`.
pub type AbiBytes = [u8; 16];

/// No scalar covers the byte.
pub const NONE: u8 = 0;
/// A `float`/`double` covers the byte.
pub const SSE: u8 = 1;
/// An integer or pointer covers the byte.
pub const INTEGER: u8 = 2;
/// A type that did not declare its classes covers the byte.
pub const UNKNOWN: u8 = 3;

/// The classes of a type of `size` bytes that did not declare them.
pub const fn unknown(size: usize) -> AbiBytes {
    scalar(size, UNKNOWN)
}

/// `size` bytes of one class (a scalar, or a type treated as one).
pub const fn scalar(size: usize, class: u8) -> AbiBytes {
    let mut out = [NONE; 16];
    let mut i = 0;
    while i < size && i < 16 {
        out[i] = class;
        i += 1;
    }
    out
}

/// `acc` with `member` (of `size` bytes) merged in at byte offset `at`.
pub const fn place(mut acc: AbiBytes, at: usize, member: AbiBytes, size: usize) -> AbiBytes {
    let mut i = 0;
    while i < size && i < 16 {
        if at >= 16 || i >= 16 - at {
            break;
        }
        let j = at + i;
        if member[i] > acc[j] {
            acc[j] = member[i];
        }
        i += 1;
    }
    acc
}

/// `count` elements of `elem` (each `size` bytes) back to back.
pub const fn repeat(elem: AbiBytes, size: usize, count: usize) -> AbiBytes {
    let mut acc = [NONE; 16];
    let mut k = 0;
    while k < count && size > 0 && k * size < 16 {
        acc = place(acc, k * size, elem, size);
        k += 1;
    }
    acc
}

/// Chunk kinds ([`Chunk`]'s first parameter).
pub const K_U8: u8 = 0;
/// `[u16; n]`.
pub const K_U16: u8 = 1;
/// `[u32; n]`.
pub const K_U32: u8 = 2;
/// `[u64; n]`.
pub const K_U64: u8 = 3;
/// `[f32; n]`.
pub const K_F32: u8 = 4;
/// `[f64; n]`.
pub const K_F64: u8 = 5;
/// A shape no Rust type classifies as C does: no storage type exists, so
/// the union does not compile.
pub const K_UNSUPPORTED: u8 = 255;

/// Storage chunk `k` (0 or 1) of a union of `size` bytes aligned to
/// `align` whose members' classes merge to `abi`: `(kind, count)`.
pub const fn chunk(abi: AbiBytes, size: usize, align: usize, k: usize) -> (u8, usize) {
    if size > 16 {
        // Passed in memory by C and Rust alike: plain bytes.
        return if k == 0 { (K_U8, size) } else { (K_U8, 0) };
    }
    let len = if k == 0 {
        if size < 8 { size } else { 8 }
    } else {
        size.saturating_sub(8)
    };
    if len == 0 {
        return (K_U8, 0);
    }
    let mut class = NONE;
    let mut i = 8 * k;
    while i < 8 * k + len {
        if abi[i] > class {
            class = abi[i];
        }
        i += 1;
    }
    let a = if align > 8 { 8 } else { align };
    if a == 0 || len % a != 0 {
        return (K_UNSUPPORTED, 0);
    }
    if class == SSE {
        if len == 8 && a == 8 {
            (K_F64, 1)
        } else if a >= 4 && len % 4 == 0 {
            (K_F32, len / 4)
        } else {
            (K_UNSUPPORTED, 0)
        }
    } else {
        // INTEGER, UNKNOWN (treated as INTEGER), or no data at all.
        match a {
            1 => (K_U8, len),
            2 => (K_U16, len / 2),
            4 => (K_U32, len / 4),
            _ => (K_U64, len / 8),
        }
    }
}

/// Whether a union of this shape has a storage type (see [`chunk`]).
pub const fn supported(abi: AbiBytes, size: usize, align: usize) -> bool {
    chunk(abi, size, align, 0).0 != K_UNSUPPORTED && chunk(abi, size, align, 1).0 != K_UNSUPPORTED
}

/// A chunk of kind `K` and `N` elements; [`PickChunk::T`] is its type.
#[derive(Debug)]
pub struct Chunk<const K: u8, const N: usize>;

/// Maps a [`Chunk`] to its Rust array type.
pub trait PickChunk {
    /// The array type.
    type T: ChunkArray;
}

impl<const N: usize> PickChunk for Chunk<K_U8, N> {
    type T = [u8; N];
}
impl<const N: usize> PickChunk for Chunk<K_U16, N> {
    type T = [u16; N];
}
impl<const N: usize> PickChunk for Chunk<K_U32, N> {
    type T = [u32; N];
}
impl<const N: usize> PickChunk for Chunk<K_U64, N> {
    type T = [u64; N];
}
impl<const N: usize> PickChunk for Chunk<K_F32, N> {
    type T = [f32; N];
}
impl<const N: usize> PickChunk for Chunk<K_F64, N> {
    type T = [f64; N];
}

mod sealed {
    pub trait Sealed {}
}

/// An array of a primitive number type: no padding, every bit pattern
/// valid, all bytes initialised. Sealed: only the six array types above.
pub trait ChunkArray: Copy + sealed::Sealed + 'static {
    /// All bytes zero.
    const ZERO: Self;
}

macro_rules! chunk_array {
    ($($t:ty),*) => {$(
        impl<const N: usize> sealed::Sealed for [$t; N] {}
        impl<const N: usize> ChunkArray for [$t; N] {
            const ZERO: Self = [0 as $t; N];
        }
    )*};
}
chunk_array!(u8, u16, u32, u64, f32, f64);

/// The storage of a [`c_union!`](crate::c_union) type: two chunks, `A` at
/// offset 0 and `B` right after it, with no padding (checked at compile
/// time), so it is exactly its bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UnionStorage<A: ChunkArray, B: ChunkArray> {
    a: A,
    b: B,
}

impl<A: ChunkArray, B: ChunkArray> UnionStorage<A, B> {
    /// Compile-time check (evaluated by every method): no padding between
    /// or after the chunks, so every byte of `Self` belongs to a chunk.
    const NO_PADDING: () = assert!(
        core::mem::size_of::<A>().is_multiple_of(core::mem::align_of::<B>())
            && core::mem::size_of::<Self>()
                == core::mem::size_of::<A>() + core::mem::size_of::<B>(),
        "union storage chunks must not leave padding"
    );

    /// Every byte zero.
    pub const ZERO: Self = {
        #[allow(clippy::let_unit_value)]
        let () = Self::NO_PADDING;
        UnionStorage {
            a: A::ZERO,
            b: B::ZERO,
        }
    };

    /// The bytes.
    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8] {
        #[allow(clippy::let_unit_value)]
        let () = Self::NO_PADDING;
        // SAFETY: `Self` is `repr(C)` of two arrays of primitive numbers
        // with no padding (NO_PADDING, checked at compile time above), so
        // all `size_of::<Self>()` bytes are initialised; the slice borrows
        // `self`.
        unsafe {
            core::slice::from_raw_parts(
                (self as *const Self).cast::<u8>(),
                core::mem::size_of::<Self>(),
            )
        }
    }

    /// The bytes, writable.
    #[inline(always)]
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        #[allow(clippy::let_unit_value)]
        let () = Self::NO_PADDING;
        // SAFETY: as in `as_bytes`; in addition every bit pattern is a valid
        // value of the chunks' integer and float types, so any bytes written
        // through the slice leave `self` valid. The slice borrows `self`
        // exclusively.
        unsafe {
            core::slice::from_raw_parts_mut(
                (self as *mut Self).cast::<u8>(),
                core::mem::size_of::<Self>(),
            )
        }
    }

    /// The storage holding `bytes`, or `InvalidArgument` for a wrong length.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<Self> {
        let mut s = Self::ZERO;
        let out = s.as_bytes_mut();
        if out.len() != bytes.len() {
            return Err(super::length_error(out.len(), bytes.len()));
        }
        out.copy_from_slice(bytes);
        Ok(s)
    }
}

impl<A: ChunkArray, B: ChunkArray> Default for UnionStorage<A, B> {
    fn default() -> Self {
        Self::ZERO
    }
}

/// Bytewise (a union has no typed value to compare).
impl<A: ChunkArray, B: ChunkArray> PartialEq for UnionStorage<A, B> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl<A: ChunkArray, B: ChunkArray> Eq for UnionStorage<A, B> {}

impl<A: ChunkArray, B: ChunkArray> core::hash::Hash for UnionStorage<A, B> {
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        self.as_bytes().hash(h);
    }
}

/// The bytes, as `[u8; N]` would print.
impl<A: ChunkArray, B: ChunkArray> core::fmt::Debug for UnionStorage<A, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_bytes()).finish()
    }
}
