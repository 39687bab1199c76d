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
#[macro_export]
macro_rules! c_struct {
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
            let (offsets, size, align) = $crate::layout::c_struct_placement(
                [$( (<$ty as _M>::SIZE, <$ty as _M>::ALIGN) ),+],
            );
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

        impl $crate::marshal::Marshal for $name {
            const SIZE: usize = ::core::mem::size_of::<$name>();
            const ALIGN: usize = ::core::mem::align_of::<$name>();

            fn layout() -> $crate::MemoryLayout {
                $crate::MemoryLayout::__struct_at_offsets(
                    [$( (
                        ::core::mem::offset_of!($name, $field),
                        <$ty as $crate::marshal::Marshal>::layout().with_name(stringify!($field)),
                    ) ),+],
                    ::core::mem::size_of::<$name>(),
                    ::core::mem::align_of::<$name>(),
                )
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
                Ok(())
            }

            #[inline]
            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                let bytes = $crate::marshal::fixed::<{ ::core::mem::size_of::<$name>() }>(bytes)?;
                Ok($name {
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
