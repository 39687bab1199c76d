//! `c_struct!`, `c_union!`, `c_enum!`, `c_flags!`: Rust declarations of C
//! types with their `Marshal` impls and compile-time layout assertions.

/// Declares a `#[repr(C)]` struct, implements [`Marshal`](crate::marshal::Marshal)
/// for it, and asserts **at compile time** that the C layout memscope computes
/// from the fields' `Marshal::SIZE`/`ALIGN` (the C compiler's rule,
/// [`c_struct_placement`](crate::layout::c_struct_placement)) equals Rust's:
/// every `offset_of!`, `size_of` and `align_of`. Every field type must
/// implement `Marshal` with `SIZE`/`ALIGN` equal to its Rust size and
/// alignment (so `Option<Address>` cannot be a field; use `Address`).
///
/// `layout()` is a [`MemoryLayout`](crate::MemoryLayout) named after the
/// struct, members named after the fields, padding explicit. Encoding writes
/// each field at its offset and leaves padding bytes untouched.
///
/// # Examples
///
/// ```
/// use memscope::{c_struct, marshal::Marshal, Session, Segment, segment::Address};
/// c_struct! {
///     /// A point.
///     #[derive(Clone, Copy, Debug, PartialEq)]
///     pub struct Point { pub x: i32, pub y: i32 }
/// }
/// c_struct! {
///     /// A tagged point.
///     #[derive(Debug, PartialEq)]
///     pub struct Tagged { pub tag: u8, pub at: Point, pub w: f64 }
/// }
/// assert_eq!(Tagged::layout().byte_offset("at.y")?, 8);
/// assert_eq!(Tagged::layout().size(), 24);
/// let s = Session::global();
/// let mut buf = [0u64; 3];
/// // SAFETY: `buf` outlives the segment and is only used through it.
/// let mut seg = unsafe { Segment::from_raw(Address::from_ptr(buf.as_mut_ptr()), 24, &s) }?;
/// let t = Tagged { tag: 1, at: Point { x: 2, y: 3 }, w: 0.5 };
/// t.write_to(&mut seg, 0)?;
/// assert_eq!(Tagged::read_from(&seg, 0)?, t);
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// A field whose C size differs from its Rust size is rejected at compile
/// time (`Option<Address>` is 16 bytes in Rust, 8 in C):
///
/// ```compile_fail
/// use memscope::{c_struct, segment::Address};
/// c_struct! {
///     /// Does not compile.
///     pub struct Bad { pub p: Option<Address> }
/// }
/// ```
///
/// # Packed structs
///
/// `packed struct` declares a `#[repr(C, packed)]` struct with the layout of
/// C's `__attribute__((packed))` ([`MemoryLayout::packed`](crate::MemoryLayout::packed)):
/// no padding, alignment 1, members at any offset. Encoding and decoding go
/// through byte slices, so members are read and written unaligned wherever
/// the struct lies. Every field type must be `Copy` (a packed field is read
/// by copy; a reference to it could be unaligned); a packed struct is not
/// passed by value through `bind!`/`as_fn` (it does not implement `CRepr`).
///
/// ```
/// use memscope::{c_struct, Arena, SegmentAllocator, marshal::Marshal};
/// c_struct! {
///     /// `struct __attribute__((packed)) { char tag; uint32_t len; uint16_t id; }`
///     #[derive(Clone, Copy, Debug, PartialEq)]
///     pub packed struct Header { pub tag: u8, pub len: u32, pub id: u16 }
/// }
/// assert_eq!((Header::SIZE, Header::ALIGN), (7, 1));
/// assert_eq!(Header::layout().byte_offset("id")?, 5);
/// let arena = Arena::confined();
/// let mut seg = arena.allocate(16, 8)?;
/// let h = Header { tag: 1, len: 0x0102_0304, id: 0xbeef };
/// h.write_to(&mut seg, 3)?; // any offset: alignment 1
/// assert_eq!(seg.get_unaligned::<u32>(4)?, 0x0102_0304);
/// assert_eq!(Header::read_from(&seg, 3)?, h);
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// A packed field that is not `Copy` does not compile:
///
/// ```compile_fail,E0507
/// use memscope::c_struct;
/// c_struct! {
///     /// Does not compile: `Inner` is not `Copy`.
///     pub packed struct Outer { pub a: u8, pub b: Inner }
/// }
/// c_struct! {
///     /// Not `Copy`.
///     pub struct Inner { pub x: u32 }
/// }
/// ```
#[macro_export]
macro_rules! c_struct {
    (
        $(#[$meta:meta])*
        $vis:vis packed struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C, packed)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty ),+
        }

        const _: () = {
            use $crate::marshal::Marshal as _M;
            // Packed: every member at alignment 1.
            let (offsets, size, align) = match $crate::layout::c_struct_placement(
                [$( (<$ty as _M>::SIZE, 1) ),+],
            ) {
                ::core::option::Option::Some(p) => p,
                ::core::option::Option::None => panic!(
                    concat!("c_struct!: `", stringify!($name), "` has no valid packed layout")
                ),
            };
            let rust_offsets = [$( ::core::mem::offset_of!($name, $field) ),+];
            let mut i = 0;
            while i < offsets.len() {
                assert!(
                    offsets[i] == rust_offsets[i],
                    concat!("c_struct!: a member offset of packed `", stringify!($name), "` differs from C's")
                );
                i += 1;
            }
            assert!(size == ::core::mem::size_of::<$name>(),
                concat!("c_struct!: size of packed `", stringify!($name), "` differs from C's"));
            assert!(align == ::core::mem::align_of::<$name>());
            $(
                assert!(
                    <$ty as _M>::SIZE == ::core::mem::size_of::<$ty>(),
                    concat!("c_struct!: field `", stringify!($field),
                        "`: its Marshal size differs from its Rust size")
                );
            )+
        };

        impl $crate::marshal::Marshal for $name {
            const SIZE: usize = ::core::mem::size_of::<$name>();
            const ALIGN: usize = 1;

            fn layout() -> $crate::MemoryLayout {
                $crate::MemoryLayout::packed([
                    $( <$ty as $crate::marshal::Marshal>::layout().with_name(stringify!($field)) ),+
                ])
                .ok()
                .filter(|l| l.size() == ::core::mem::size_of::<$name>())
                .unwrap_or_else(|| $crate::MemoryLayout::__opaque(::core::mem::size_of::<$name>(), 1))
                .with_name(stringify!($name))
            }

            #[inline]
            fn encode(&self, out: &mut [u8]) -> $crate::Result<()> {
                let out = $crate::marshal::fixed_mut::<{ ::core::mem::size_of::<$name>() }>(out)?;
                $(
                    {
                        const O: usize = ::core::mem::offset_of!($name, $field);
                        const N: usize = <$ty as $crate::marshal::Marshal>::SIZE;
                        // A copy: a reference to a packed field may be unaligned.
                        let v: $ty = self.$field;
                        <$ty as $crate::marshal::Marshal>::encode(&v, &mut out[O..O + N])?;
                    }
                )+
                ::core::result::Result::Ok(())
            }

            #[inline]
            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                let bytes = $crate::marshal::fixed::<{ ::core::mem::size_of::<$name>() }>(bytes)?;
                ::core::result::Result::Ok($name {
                    $(
                        $field: {
                            const O: usize = ::core::mem::offset_of!($name, $field);
                            const N: usize = <$ty as $crate::marshal::Marshal>::SIZE;
                            <$ty as $crate::marshal::Marshal>::decode(&bytes[O..O + N])?
                        },
                    )+
                })
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty ),+
        }

        const _: () = {
            use $crate::marshal::Marshal as _M;
            let (offsets, size, align) = match $crate::layout::c_struct_placement(
                [$( (<$ty as _M>::SIZE, <$ty as _M>::ALIGN) ),+],
            ) {
                ::core::option::Option::Some(p) => p,
                ::core::option::Option::None => panic!(
                    concat!("c_struct!: `", stringify!($name), "` has no valid C layout")
                ),
            };
            let rust_offsets = [$( ::core::mem::offset_of!($name, $field) ),+];
            let mut i = 0;
            while i < offsets.len() {
                assert!(
                    offsets[i] == rust_offsets[i],
                    concat!("c_struct!: a member offset of `", stringify!($name), "` differs from C's")
                );
                i += 1;
            }
            assert!(size == ::core::mem::size_of::<$name>(),
                concat!("c_struct!: size of `", stringify!($name), "` differs from C's"));
            assert!(align == ::core::mem::align_of::<$name>(),
                concat!("c_struct!: alignment of `", stringify!($name), "` differs from C's"));
            $(
                assert!(
                    <$ty as _M>::SIZE == ::core::mem::size_of::<$ty>()
                        && <$ty as _M>::ALIGN == ::core::mem::align_of::<$ty>(),
                    concat!("c_struct!: field `", stringify!($field),
                        "`: its Marshal size/alignment differ from its Rust size/alignment")
                );
            )+
        };

        // SAFETY: `#[repr(C)]`, and the const block above checked that its
        // offsets, size and alignment are C's; every field is itself a
        // C-representation type (the bounds, checked where the type is used
        // as one), so every bit pattern C hands back is a valid value.
        unsafe impl $crate::linker::CRepr for $name
        where
            $( for<'__c> $ty: $crate::linker::CReprField, )+
        {
        }

        impl $crate::marshal::Marshal for $name {
            const SIZE: usize = ::core::mem::size_of::<$name>();
            const ALIGN: usize = ::core::mem::align_of::<$name>();
            const __ABI: $crate::marshal::abi::AbiBytes = {
                let acc = [$crate::marshal::abi::NONE; 16];
                $(
                    let acc = $crate::marshal::abi::place(
                        acc,
                        ::core::mem::offset_of!($name, $field),
                        <$ty as $crate::marshal::Marshal>::__ABI,
                        <$ty as $crate::marshal::Marshal>::SIZE,
                    );
                )+
                acc
            };

            fn layout() -> $crate::MemoryLayout {
                // An error here means a member's hand-written `Marshal` impl
                // reports a layout that disagrees with its SIZE/ALIGN: the
                // struct is then opaque bytes of its (compiler-checked) size.
                $crate::MemoryLayout::__struct_at_offsets(
                    [$( (
                        ::core::mem::offset_of!($name, $field),
                        <$ty as $crate::marshal::Marshal>::layout().with_name(stringify!($field)),
                    ) ),+],
                    ::core::mem::size_of::<$name>(),
                    ::core::mem::align_of::<$name>(),
                )
                .unwrap_or_else(|_| $crate::MemoryLayout::__opaque(
                    ::core::mem::size_of::<$name>(),
                    ::core::mem::align_of::<$name>(),
                ))
                .with_name(stringify!($name))
            }

            #[inline]
            fn encode(&self, out: &mut [u8]) -> $crate::Result<()> {
                let out = $crate::marshal::fixed_mut::<{ ::core::mem::size_of::<$name>() }>(out)?;
                $(
                    {
                        const O: usize = ::core::mem::offset_of!($name, $field);
                        const N: usize = <$ty as $crate::marshal::Marshal>::SIZE;
                        <$ty as $crate::marshal::Marshal>::encode(&self.$field, &mut out[O..O + N])?;
                    }
                )+
                ::core::result::Result::Ok(())
            }

            #[inline]
            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                let bytes = $crate::marshal::fixed::<{ ::core::mem::size_of::<$name>() }>(bytes)?;
                ::core::result::Result::Ok($name {
                    $(
                        $field: {
                            const O: usize = ::core::mem::offset_of!($name, $field);
                            const N: usize = <$ty as $crate::marshal::Marshal>::SIZE;
                            <$ty as $crate::marshal::Marshal>::decode(&bytes[O..O + N])?
                        },
                    )+
                })
            }
        }
    };
}

/// Declares a C union as a `#[repr(C)]` Rust struct of the union's size and
/// alignment holding its bytes (always initialised, so every member can be
/// read safely), with a typed handle constant per member
/// (`Num::i: UnionField<Num, i32>`) used by `new`, `get` and `set`, and its
/// [`Marshal`](crate::marshal::Marshal) impl. Compile-time assertions check
/// that the Rust size and alignment equal the C union's
/// ([`c_union_placement`](crate::layout::c_union_placement)).
///
/// Members may not be called `new`, `zeroed`, `get`, `set` or `as_bytes`.
/// Setting a member writes its bytes and leaves the rest as they were.
///
/// # Examples
///
/// ```
/// use memscope::{c_union, marshal::Marshal};
/// c_union! {
///     /// An int, a float or a long.
///     #[derive(Clone, Copy, Debug, PartialEq)]
///     pub union Num { pub i: i32, pub f: f32, pub l: i64 }
/// }
/// assert_eq!((Num::SIZE, Num::ALIGN), (8, 8));
/// let mut n = Num::new(Num::f, &1.0f32)?;
/// assert_eq!(n.get(Num::i)?, 1.0f32.to_bits() as i32); // type punning is fine
/// n.set(Num::l, &-1)?;
/// assert_eq!(n.get(Num::f)?.to_bits(), u32::MAX);
/// assert_eq!(Num::layout().to_string(), "union Num { int32_t i; float f; int64_t l; }");
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// Members whose C layout differs from Rust's do not compile:
///
/// ```compile_fail
/// use memscope::{c_union, segment::Address};
/// c_union! {
///     /// Does not compile.
///     pub union Bad { pub p: Option<Address>, pub i: i32 }
/// }
/// ```
#[macro_export]
macro_rules! c_union {
    // The members' classes merged at offset 0.
    (@abi $($ty:ty),+) => {{
        let acc = [$crate::marshal::abi::NONE; 16];
        $(
            let acc = $crate::marshal::abi::place(
                acc,
                0,
                <$ty as $crate::marshal::Marshal>::__ABI,
                <$ty as $crate::marshal::Marshal>::SIZE,
            );
        )+
        acc
    }};
    // Storage chunk `$k`'s kind (`$which` 0) or element count (1).
    (@chunk $k:literal, $which:tt, $($ty:ty),+) => {{
        let (size, align) = match $crate::layout::c_union_placement(
            [$( (<$ty as $crate::marshal::Marshal>::SIZE, <$ty as $crate::marshal::Marshal>::ALIGN) ),+]
        ) {
            ::core::option::Option::Some(p) => p,
            ::core::option::Option::None => (0, 0),
        };
        $crate::marshal::abi::chunk($crate::c_union!(@abi $($ty),+), size, align, $k).$which
    }};
    (
        $(#[$meta:meta])*
        $vis:vis union $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name {
            _align: [($($ty,)+); 0],
            bytes: $crate::marshal::abi::UnionStorage<
                <$crate::marshal::abi::Chunk<
                    { $crate::c_union!(@chunk 0, 0, $($ty),+) },
                    { $crate::c_union!(@chunk 0, 1, $($ty),+) },
                > as $crate::marshal::abi::PickChunk>::T,
                <$crate::marshal::abi::Chunk<
                    { $crate::c_union!(@chunk 1, 0, $($ty),+) },
                    { $crate::c_union!(@chunk 1, 1, $($ty),+) },
                > as $crate::marshal::abi::PickChunk>::T,
            >,
        }

        // SAFETY: `#[repr(C)]` storage of primitive chunks whose register
        // classes are C's for this union (`marshal::abi`), size and
        // alignment checked against C below; every bit pattern is valid.
        unsafe impl $crate::linker::CRepr for $name {}

        const _: () = {
            use $crate::marshal::Marshal as _M;
            let (size, align) = match $crate::layout::c_union_placement(
                [$( (<$ty as _M>::SIZE, <$ty as _M>::ALIGN) ),+],
            ) {
                ::core::option::Option::Some(p) => p,
                ::core::option::Option::None => panic!(
                    concat!("c_union!: `", stringify!($name), "` has no valid C layout")
                ),
            };
            assert!(size == ::core::mem::size_of::<$name>(),
                concat!("c_union!: size of `", stringify!($name), "` differs from C's"));
            assert!(align == ::core::mem::align_of::<$name>(),
                concat!("c_union!: alignment of `", stringify!($name), "` differs from C's"));
            assert!(
                $crate::marshal::abi::supported(<$name as _M>::__ABI, size, align),
                concat!("c_union!: no Rust type passes `", stringify!($name),
                    "` by value in the registers C uses")
            );
            $(
                assert!(
                    <$ty as _M>::SIZE == ::core::mem::size_of::<$ty>()
                        && <$ty as _M>::ALIGN == ::core::mem::align_of::<$ty>(),
                    concat!("c_union!: member `", stringify!($field),
                        "`: its Marshal size/alignment differ from its Rust size/alignment")
                );
            )+
        };

        #[allow(dead_code, non_upper_case_globals)]
        impl $name {
            $(
                $(#[$fmeta])*
                $fvis const $field: $crate::marshal::UnionField<$name, $ty> =
                    $crate::marshal::UnionField::new(stringify!($field));
            )+

            /// The union with every byte zero.
            pub const fn zeroed() -> Self {
                $name { _align: [], bytes: $crate::marshal::abi::UnionStorage::ZERO }
            }

            /// The union holding `value` in `member` (other bytes zero).
            pub fn new<T: $crate::marshal::Marshal>(
                member: $crate::marshal::UnionField<Self, T>,
                value: &T,
            ) -> $crate::Result<Self> {
                let mut u = Self::zeroed();
                u.set(member, value)?;
                ::core::result::Result::Ok(u)
            }

            /// Reads the union's bytes as `member`.
            pub fn get<T: $crate::marshal::Marshal>(
                &self,
                member: $crate::marshal::UnionField<Self, T>,
            ) -> $crate::Result<T> {
                match self.bytes.as_bytes().get(..T::SIZE) {
                    ::core::option::Option::Some(b) => T::decode(b),
                    ::core::option::Option::None => ::core::result::Result::Err($crate::Error::InvalidArgument {
                        reason: ::std::format!("union member `{}` does not fit", member.name()),
                    }),
                }
            }

            /// Writes `value` as `member` (the other bytes keep their values).
            pub fn set<T: $crate::marshal::Marshal>(
                &mut self,
                member: $crate::marshal::UnionField<Self, T>,
                value: &T,
            ) -> $crate::Result<()> {
                match self.bytes.as_bytes_mut().get_mut(..T::SIZE) {
                    ::core::option::Option::Some(b) => <T as $crate::marshal::Marshal>::encode(value, b),
                    ::core::option::Option::None => ::core::result::Result::Err($crate::Error::InvalidArgument {
                        reason: ::std::format!("union member `{}` does not fit", member.name()),
                    }),
                }
            }

            /// The union's bytes.
            pub fn as_bytes(&self) -> &[u8] {
                self.bytes.as_bytes()
            }
        }

        impl $crate::marshal::Marshal for $name {
            const SIZE: usize = ::core::mem::size_of::<$name>();
            const ALIGN: usize = ::core::mem::align_of::<$name>();
            const __ABI: $crate::marshal::abi::AbiBytes = $crate::c_union!(@abi $($ty),+);

            fn layout() -> $crate::MemoryLayout {
                // As for c_struct!: an inconsistent member impl makes the
                // union opaque bytes of its (compiler-checked) size.
                $crate::MemoryLayout::__union_from_parts(
                    [$( <$ty as $crate::marshal::Marshal>::layout().with_name(stringify!($field)) ),+],
                    ::core::mem::size_of::<$name>(),
                    ::core::mem::align_of::<$name>(),
                )
                .unwrap_or_else(|_| $crate::MemoryLayout::__opaque(
                    ::core::mem::size_of::<$name>(),
                    ::core::mem::align_of::<$name>(),
                ))
                .with_name(stringify!($name))
            }

            #[inline]
            fn encode(&self, out: &mut [u8]) -> $crate::Result<()> {
                $crate::marshal::fixed_mut::<{ ::core::mem::size_of::<$name>() }>(out)?
                    .copy_from_slice(self.bytes.as_bytes());
                ::core::result::Result::Ok(())
            }

            #[inline]
            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                ::core::result::Result::Ok($name {
                    _align: [],
                    bytes: $crate::marshal::abi::UnionStorage::from_bytes(
                        $crate::marshal::fixed::<{ ::core::mem::size_of::<$name>() }>(bytes)?,
                    )?,
                })
            }
        }
    };
}

/// Declares a C enum: a `#[repr(i32)]` Rust enum (deriving `Clone, Copy,
/// Debug, PartialEq, Eq, Hash` — do not derive them again) with
/// [`Marshal`](crate::marshal::Marshal) as a C `int`. Reading a value that
/// is not one of the variants is an [`Error::InvalidArgument`](crate::Error::InvalidArgument).
///
/// # Examples
///
/// ```
/// use memscope::{c_enum, marshal::Marshal};
/// c_enum! {
///     /// A colour.
///     pub enum Color { Red = 0, Green = 1, Blue = 4 }
/// }
/// assert_eq!(Color::from_i32(4), Some(Color::Blue));
/// assert_eq!(Color::Green.name(), "Green");
/// assert_eq!(Color::decode(&1i32.to_ne_bytes())?, Color::Green);
/// assert!(Color::decode(&2i32.to_ne_bytes()).is_err());
/// assert_eq!(Color::layout().size(), 4);
/// # Ok::<(), memscope::Error>(())
/// ```
#[macro_export]
macro_rules! c_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $var:ident = $val:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(i32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $var = $val ),+
        }

        #[allow(dead_code)]
        impl $name {
            /// Every variant, in declaration order.
            pub const VARIANTS: &'static [$name] = &[$($name::$var),+];

            /// The variant with C value `v`, if any.
            pub const fn from_i32(v: i32) -> ::core::option::Option<Self> {
                $( if v == $name::$var as i32 { return ::core::option::Option::Some($name::$var); } )+
                ::core::option::Option::None
            }

            /// The C value.
            pub const fn to_i32(self) -> i32 {
                self as i32
            }

            /// The variant's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$var => stringify!($var), )+
                }
            }
        }

        impl ::core::convert::TryFrom<i32> for $name {
            type Error = $crate::Error;
            fn try_from(v: i32) -> $crate::Result<Self> {
                $name::from_i32(v).ok_or_else(|| $crate::Error::InvalidArgument {
                    reason: ::std::format!(concat!("{} is not a value of enum ", stringify!($name)), v),
                })
            }
        }

        impl ::core::convert::From<$name> for i32 {
            fn from(v: $name) -> i32 {
                v as i32
            }
        }

        // `bind!` passes a C enum as its `int` and checks what C returns.
        impl $crate::linker::BindArg for $name {
            type C = i32;
            type Hold<'h> = ();
            fn layout() -> $crate::MemoryLayout {
                <$name as $crate::marshal::Marshal>::layout()
            }
            #[inline(always)]
            fn prepare(&self) -> $crate::Result<(i32, ())> {
                ::core::result::Result::Ok((*self as i32, ()))
            }
        }

        impl $crate::linker::BindRet for $name {
            type C = i32;
            fn layout() -> ::core::option::Option<$crate::MemoryLayout> {
                ::core::option::Option::Some(<$name as $crate::marshal::Marshal>::layout())
            }
            #[inline]
            fn from_c(c: i32) -> $crate::Result<$name> {
                <$name as $crate::marshal::Marshal>::decode(&c.to_ne_bytes())
            }
        }

        impl $crate::marshal::Marshal for $name {
            const SIZE: usize = ::core::mem::size_of::<i32>();
            const ALIGN: usize = ::core::mem::align_of::<i32>();

            fn layout() -> $crate::MemoryLayout {
                $crate::MemoryLayout::value($crate::ValueKind::I32).with_name(stringify!($name))
            }

            #[inline]
            fn encode(&self, out: &mut [u8]) -> $crate::Result<()> {
                <i32 as $crate::marshal::Marshal>::encode(&(*self as i32), out)
            }

            #[inline]
            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                <$name as ::core::convert::TryFrom<i32>>::try_from(<i32 as $crate::marshal::Marshal>::decode(bytes)?)
            }
        }
    };
}

/// Declares a set of C bit flags: a `#[repr(transparent)]` newtype over an
/// unsigned integer with a constant per flag, set operations, a `Debug` that
/// prints flag names, and [`Marshal`](crate::marshal::Marshal) as the
/// integer. Reading bits that are not declared flags is an
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) (use
/// `from_bits_retain` to keep them).
///
/// # Examples
///
/// ```
/// use memscope::{c_flags, marshal::Marshal};
/// c_flags! {
///     /// Access rights.
///     pub struct Perm: u32 {
///         /// May read.
///         const READ = 1;
///         /// May write.
///         const WRITE = 2;
///         /// May execute.
///         const EXEC = 4;
///     }
/// }
/// let rw = Perm::READ | Perm::WRITE;
/// assert!(rw.contains(Perm::READ) && !rw.contains(Perm::EXEC));
/// assert_eq!(format!("{rw:?}"), "Perm(READ | WRITE)");
/// assert_eq!(Perm::decode(&3u32.to_ne_bytes())?, rw);
/// assert!(Perm::decode(&8u32.to_ne_bytes()).is_err());
/// assert_eq!(Perm::from_bits(8), None);
/// # Ok::<(), memscope::Error>(())
/// ```
#[macro_export]
macro_rules! c_flags {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident : $t:ty {
            $( $(#[$fmeta:meta])* const $flag:ident = $val:expr; )+
        }
    ) => {
        $(#[$meta])*
        #[repr(transparent)]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        $vis struct $name($t);

        // SAFETY: `repr(transparent)` over `$t`, a C-representation integer:
        // every bit pattern C can return is a valid value of the struct.
        unsafe impl $crate::linker::CRepr for $name where for<'__c> $t: $crate::linker::CRepr {}

        #[allow(dead_code)]
        impl $name {
            $( $(#[$fmeta])* pub const $flag: $name = $name($val); )+

            /// Every declared flag.
            pub const ALL: $name = $name(0 $(| $val)+);

            /// No flags.
            pub const fn empty() -> Self {
                $name(0)
            }

            /// The raw bits.
            pub const fn bits(self) -> $t {
                self.0
            }

            /// The flags in `bits`, or `None` if it has undeclared bits.
            pub const fn from_bits(bits: $t) -> ::core::option::Option<Self> {
                if bits & !Self::ALL.0 == 0 { ::core::option::Option::Some($name(bits)) } else { ::core::option::Option::None }
            }

            /// `bits` with undeclared bits dropped.
            pub const fn from_bits_truncate(bits: $t) -> Self {
                $name(bits & Self::ALL.0)
            }

            /// `bits` as they are, undeclared bits included.
            pub const fn from_bits_retain(bits: $t) -> Self {
                $name(bits)
            }

            /// Whether no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// Whether every flag of `other` is set.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// Whether any flag of `other` is set.
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }

            /// Sets the flags of `other`.
            pub fn insert(&mut self, other: Self) {
                self.0 |= other.0;
            }

            /// Clears the flags of `other`.
            pub fn remove(&mut self, other: Self) {
                self.0 &= !other.0;
            }
        }

        impl ::core::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, o: Self) -> Self {
                $name(self.0 | o.0)
            }
        }
        impl ::core::ops::BitAnd for $name {
            type Output = Self;
            fn bitand(self, o: Self) -> Self {
                $name(self.0 & o.0)
            }
        }
        impl ::core::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, o: Self) {
                self.0 |= o.0;
            }
        }
        impl ::core::ops::BitAndAssign for $name {
            fn bitand_assign(&mut self, o: Self) {
                self.0 &= o.0;
            }
        }
        impl ::core::ops::Not for $name {
            type Output = Self;
            /// The declared flags not in `self`.
            fn not(self) -> Self {
                $name(!self.0 & Self::ALL.0)
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(concat!(stringify!($name), "("))?;
                let mut first = true;
                let mut rest = self.0;
                $(
                    if $val != 0 && self.0 & $val == $val {
                        if !first { f.write_str(" | ")?; }
                        f.write_str(stringify!($flag))?;
                        first = false;
                        rest &= !$val;
                    }
                )+
                if rest != 0 {
                    if !first { f.write_str(" | ")?; }
                    write!(f, "{:#x}", rest)?;
                }
                f.write_str(")")
            }
        }

        impl $crate::marshal::Marshal for $name {
            const SIZE: usize = ::core::mem::size_of::<$t>();
            const ALIGN: usize = ::core::mem::align_of::<$t>();

            fn layout() -> $crate::MemoryLayout {
                <$t as $crate::marshal::Marshal>::layout().with_name(stringify!($name))
            }

            #[inline]
            fn encode(&self, out: &mut [u8]) -> $crate::Result<()> {
                <$t as $crate::marshal::Marshal>::encode(&self.0, out)
            }

            #[inline]
            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                let bits = <$t as $crate::marshal::Marshal>::decode(bytes)?;
                $name::from_bits(bits).ok_or_else(|| $crate::Error::InvalidArgument {
                    reason: ::std::format!(
                        concat!("undeclared bits {:#x} in flags ", stringify!($name)),
                        bits & !$name::ALL.0
                    ),
                })
            }
        }
    };
}
