//! Marshaling that allocates: values whose C form holds pointers (`char *`,
//! `struct node *`), coffi's `serialize` with a session.
//!
//! A [`MarshalIn`] type has a *flat* C form (a [`Marshal`] type, usually a
//! [`c_struct!`](crate::c_struct) with [`Address`] members). Encoding
//! ([`encode_in`]) writes what the value points to — strings, boxed
//! structs, arrays — into memory from a [`SegmentAllocator`] through an
//! [`Encoder`], stores their addresses in the flat form, and allocates the
//! flat form itself; the result, an [`Encoded`], borrows the allocator, so
//! every pointer it holds stays valid while it lives. Decoding reads back
//! through a [`Decoder`], which follows a pointer only into one of the
//! segments it was given (bounds-checked; strings must end with a NUL
//! inside that segment; every read is a checked segment access, so a closed
//! session gives `Closed`), and bounds how deep and how many pointers it
//! follows, so a cycle written by C is an error, not a stack overflow.
//!
//! No `unsafe` here: every byte goes through `Segment`'s checked API.

use super::{AllocateExt, Marshal};
use crate::alloc::SegmentAllocator;
use crate::error::{Error, Result};
use crate::segment::{Address, Segment};
use core::cell::Cell;
use core::marker::PhantomData;
use std::ffi::CString;

/// The deepest chain of pointers an [`Encoder`] or [`Decoder`] follows
/// (a longer one, or a cycle, is [`Error::InvalidArgument`]). Walk longer
/// lists iteratively with [`Decoder::flat`].
pub const MAX_POINTER_DEPTH: usize = 256;

/// The most pointers one [`Decoder`] follows in all (shared sub-objects are
/// read once per pointer to them, so a DAG written by C cannot make a
/// decode exponential).
pub const MAX_POINTER_FOLLOWS: usize = 1 << 16;

/// A Rust value whose C form points to other memory (see the
/// [`marshal` module docs](crate::marshal)). Implemented for the scalars and [`Address`]
/// (flat: themselves), `String` and `CString` (`char *`), `Box<T>`
/// (`T *`), `Option<T>` of a pointer type (NULL for `None`) and arrays.
///
/// # Examples
///
/// A struct with a `char *` and a pointer to another struct:
///
/// ```
/// use memscope::{Arena, c_struct, segment::Address};
/// use memscope::marshal::{Decoder, Encoder, MarshalIn, encode_in};
///
/// c_struct! {
///     /// `struct person { const char *name; int age; struct person *boss; }`
///     #[derive(Clone, Copy, Debug)]
///     pub struct CPerson { pub name: Address, pub age: i32, pub boss: Address }
/// }
///
/// #[derive(Debug, PartialEq)]
/// struct Person { name: String, age: i32, boss: Option<Box<Person>> }
///
/// impl MarshalIn for Person {
///     type Flat = CPerson;
///     fn flatten_in<A: memscope::SegmentAllocator + ?Sized>(
///         &self,
///         enc: &mut Encoder<'_, A>,
///     ) -> memscope::Result<CPerson> {
///         Ok(CPerson {
///             name: self.name.flatten_in(enc)?,
///             age: self.age,
///             boss: self.boss.flatten_in(enc)?,
///         })
///     }
///     fn unflatten(c: &CPerson, dec: &Decoder<'_, '_>) -> memscope::Result<Person> {
///         Ok(Person {
///             name: String::unflatten(&c.name, dec)?,
///             age: c.age,
///             boss: Option::unflatten(&c.boss, dec)?,
///         })
///     }
/// }
///
/// let arena = Arena::confined();
/// let p = Person {
///     name: "Ada".into(),
///     age: 36,
///     boss: Some(Box::new(Person { name: "Charles".into(), age: 51, boss: None })),
/// };
/// let enc = encode_in(&p, &arena)?;
/// // `enc.segment()` is the `struct person` to hand to C.
/// let name = enc.segment().get::<Address>(0)?;
/// assert_eq!(enc.decoder().string(name)?, "Ada");
/// assert_eq!(enc.decode()?, p);
/// # Ok::<(), memscope::Error>(())
/// ```
pub trait MarshalIn: Sized {
    /// The C form written where the value goes.
    type Flat: Marshal;

    /// Writes what `self` points to through `enc` and returns the flat form
    /// holding the addresses.
    ///
    /// # Errors
    ///
    /// The allocator's errors; [`Error::InvalidString`] for a string with a
    /// NUL byte; [`Error::InvalidArgument`] past [`MAX_POINTER_DEPTH`].
    fn flatten_in<A: SegmentAllocator + ?Sized>(
        &self,
        enc: &mut Encoder<'_, A>,
    ) -> Result<Self::Flat>;

    /// Rebuilds a value from its flat form, following its pointers through
    /// `dec`.
    ///
    /// # Errors
    ///
    /// As the [`Decoder`] methods.
    fn unflatten(flat: &Self::Flat, dec: &Decoder<'_, '_>) -> Result<Self>;
}

/// Allocates what a [`MarshalIn`] value points to (see
/// [`MarshalIn::flatten_in`]) and records every segment it made, so that a
/// [`Decoder`] can later follow pointers into them.
///
/// # Examples
///
/// ```
/// use memscope::{Arena, marshal::Encoder};
/// let arena = Arena::confined();
/// let mut enc = Encoder::new(&arena);
/// let s = enc.cstring("hi")?;
/// assert_eq!(enc.segments().len(), 1);
/// assert_eq!(enc.decoder().string(s)?, "hi");
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct Encoder<'a, A: SegmentAllocator + ?Sized> {
    alloc: &'a A,
    regions: Vec<Segment<'a>>,
    depth: usize,
}

impl<'a, A: SegmentAllocator + ?Sized> Encoder<'a, A> {
    /// An encoder allocating from `alloc`.
    ///
    /// # Examples
    ///
    /// See [`Encoder`].
    pub fn new(alloc: &'a A) -> Encoder<'a, A> {
        Encoder {
            alloc,
            regions: Vec::new(),
            depth: 0,
        }
    }

    /// `text` as a NUL-terminated string; its address.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidString`] for a NUL byte in `text`; the allocator's.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Arena, marshal::Encoder};
    /// let arena = Arena::confined();
    /// let mut enc = Encoder::new(&arena);
    /// assert!(enc.cstring("a\0b").is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn cstring(&mut self, text: &str) -> Result<Address> {
        let seg = self.alloc.allocate_cstring(text)?;
        Ok(self.keep(seg))
    }

    /// `value`'s flat form (and what it points to); the flat form's address.
    ///
    /// # Errors
    ///
    /// As [`MarshalIn::flatten_in`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Arena, marshal::Encoder};
    /// let arena = Arena::confined();
    /// let mut enc = Encoder::new(&arena);
    /// let p = enc.value(&7u32)?;
    /// assert_eq!(enc.decoder().value::<u32>(p)?, 7);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn value<T: MarshalIn>(&mut self, value: &T) -> Result<Address> {
        self.enter()?;
        let flat = value.flatten_in(self);
        self.depth -= 1;
        let seg = self.alloc.allocate_from(&flat?)?;
        Ok(self.keep(seg))
    }

    /// `values`' flat forms, consecutive (a C array); its address.
    ///
    /// # Errors
    ///
    /// As [`value`](Self::value).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Arena, marshal::Encoder};
    /// let arena = Arena::confined();
    /// let mut enc = Encoder::new(&arena);
    /// let names = [String::from("a"), String::from("bc")];
    /// let p = enc.slice(&names)?;
    /// assert_eq!(enc.decoder().slice::<String>(p, 2)?, names);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn slice<T: MarshalIn>(&mut self, values: &[T]) -> Result<Address> {
        self.enter()?;
        let flats: Result<Vec<T::Flat>> = values.iter().map(|v| v.flatten_in(self)).collect();
        self.depth -= 1;
        let seg = self.alloc.allocate_from_slice(&flats?)?;
        Ok(self.keep(seg))
    }

    /// The segments made so far (each string, value and array).
    ///
    /// # Examples
    ///
    /// See [`Encoder`].
    pub fn segments(&self) -> &[Segment<'a>] {
        &self.regions
    }

    /// A decoder over the segments made so far.
    ///
    /// # Examples
    ///
    /// See [`Encoder`].
    pub fn decoder(&self) -> Decoder<'_, 'a> {
        Decoder::new(&self.regions)
    }

    fn enter(&mut self) -> Result<()> {
        if self.depth >= MAX_POINTER_DEPTH {
            return Err(too_deep());
        }
        self.depth += 1;
        Ok(())
    }

    fn keep(&mut self, seg: Segment<'a>) -> Address {
        let a = seg.address();
        self.regions.push(seg);
        a
    }
}

impl<A: SegmentAllocator + ?Sized> core::fmt::Debug for Encoder<'_, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encoder")
            .field("segments", &self.regions.len())
            .finish()
    }
}

#[cold]
fn too_deep() -> Error {
    Error::InvalidArgument {
        reason: format!("marshal: a pointer chain deeper than {MAX_POINTER_DEPTH} (a cycle?)"),
    }
}

/// Follows pointers of flat forms, but only into its segments: an address
/// outside them, a string without a NUL inside its segment, a chain deeper
/// than [`MAX_POINTER_DEPTH`] or more than [`MAX_POINTER_FOLLOWS`] pointers
/// are errors. Every read is a checked segment access.
///
/// # Examples
///
/// ```
/// use memscope::{Arena, Error, SegmentAllocator, marshal::Decoder, segment::Address};
/// let arena = Arena::confined();
/// let s = arena.allocate_cstring("text")?;
/// let segs = [s];
/// let dec = Decoder::new(&segs);
/// assert_eq!(dec.string(segs[0].address())?, "text");
/// assert_eq!(dec.string(Address::NULL), Err(Error::NullAddress));
/// assert!(dec.string(Address::new(8)).is_err()); // in none of its segments
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct Decoder<'r, 'a> {
    regions: &'r [Segment<'a>],
    depth: Cell<usize>,
    follows: Cell<usize>,
}

impl<'r, 'a> Decoder<'r, 'a> {
    /// A decoder that follows pointers into `regions` only.
    ///
    /// # Examples
    ///
    /// See [`Decoder`].
    pub fn new(regions: &'r [Segment<'a>]) -> Decoder<'r, 'a> {
        Decoder {
            regions,
            depth: Cell::new(0),
            follows: Cell::new(0),
        }
    }

    /// The segment holding `addr .. addr + len`, and the offset of `addr`.
    fn resolve(&self, addr: Address, len: usize) -> Result<(&'r Segment<'a>, usize)> {
        if addr.is_null() {
            return Err(Error::NullAddress);
        }
        let n = self.follows.get() + 1;
        if n > MAX_POINTER_FOLLOWS {
            return Err(Error::InvalidArgument {
                reason: format!("marshal: more than {MAX_POINTER_FOLLOWS} pointers followed"),
            });
        }
        self.follows.set(n);
        let a = addr.get();
        for seg in self.regions {
            let base = seg.address().get();
            if let Some(off) = a.checked_sub(base)
                && off <= seg.len()
                && len <= seg.len() - off
            {
                return Ok((seg, off));
            }
        }
        Err(Error::InvalidArgument {
            reason: format!(
                "marshal: {len} byte(s) at {addr} lie in none of the decoder's segments"
            ),
        })
    }

    /// The NUL-terminated UTF-8 string at `addr` (the NUL must lie inside
    /// the segment holding `addr`).
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`]; [`Error::InvalidArgument`] for an address in
    /// none of the segments (or past the limits); [`Error::InvalidString`]
    /// for no NUL or bad UTF-8; [`Segment::get_string`]'s.
    ///
    /// # Examples
    ///
    /// See [`Decoder`].
    pub fn string(&self, addr: Address) -> Result<String> {
        let (seg, off) = self.resolve(addr, 1)?;
        seg.get_string(off)
    }

    /// As [`string`](Self::string), any bytes but NUL.
    ///
    /// # Errors
    ///
    /// As [`string`](Self::string) (no UTF-8 check).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Arena, SegmentAllocator, marshal::Decoder};
    /// let arena = Arena::confined();
    /// let segs = [arena.allocate_cstring("c")?];
    /// assert_eq!(Decoder::new(&segs).cstring(segs[0].address())?.as_bytes(), b"c");
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn cstring(&self, addr: Address) -> Result<CString> {
        let (seg, off) = self.resolve(addr, 1)?;
        seg.get_cstr(off)
    }

    /// The flat value at `addr`, without following its pointers (walk a
    /// long list iteratively with this).
    ///
    /// # Errors
    ///
    /// As [`string`](Self::string), then as [`Marshal::read_from`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Arena, marshal::{AllocateExt, Decoder}};
    /// let arena = Arena::confined();
    /// let segs = [arena.allocate_from(&[1u16, 2])?];
    /// assert_eq!(Decoder::new(&segs).flat::<[u16; 2]>(segs[0].address())?, [1, 2]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn flat<F: Marshal>(&self, addr: Address) -> Result<F> {
        let (seg, off) = self.resolve(addr, F::SIZE)?;
        F::read_from(seg, off)
    }

    /// The value whose flat form is at `addr`, its pointers followed.
    ///
    /// # Errors
    ///
    /// As [`flat`](Self::flat) and [`MarshalIn::unflatten`].
    ///
    /// # Examples
    ///
    /// See [`Encoder::value`].
    pub fn value<T: MarshalIn>(&self, addr: Address) -> Result<T> {
        let flat = self.flat::<T::Flat>(addr)?;
        self.nested(|| T::unflatten(&flat, self))
    }

    /// `n` values whose flat forms lie consecutively at `addr`.
    ///
    /// # Errors
    ///
    /// As [`value`](Self::value); [`Error::InvalidArgument`] if `n` flat
    /// forms overflow.
    ///
    /// # Examples
    ///
    /// See [`Encoder::slice`].
    pub fn slice<T: MarshalIn>(&self, addr: Address, n: usize) -> Result<Vec<T>> {
        let size = <T::Flat as Marshal>::SIZE;
        let total = n.checked_mul(size).ok_or_else(|| Error::InvalidArgument {
            reason: format!("marshal: {n} elements of {size} bytes overflow"),
        })?;
        let (seg, off) = self.resolve(addr, total)?;
        let mut out = Vec::new();
        out.try_reserve(n).map_err(|_| Error::OutOfMemory {
            size: total,
            align: 1,
        })?;
        for i in 0..n {
            let flat = <T::Flat as Marshal>::read_from(seg, off + i * size)?;
            out.push(self.nested(|| T::unflatten(&flat, self))?);
        }
        Ok(out)
    }

    fn nested<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        let d = self.depth.get();
        if d >= MAX_POINTER_DEPTH {
            return Err(too_deep());
        }
        self.depth.set(d + 1);
        let r = f();
        self.depth.set(d);
        r
    }
}

impl core::fmt::Debug for Decoder<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decoder")
            .field("segments", &self.regions.len())
            .field("follows", &self.follows.get())
            .finish()
    }
}

/// A value encoded by [`encode_in`]: its flat form's segment (what C gets)
/// and every segment it points into, all borrowing the allocator.
///
/// # Examples
///
/// ```
/// use memscope::{Arena, marshal::encode_in};
/// let arena = Arena::confined();
/// let enc = encode_in(&Some(Box::new(String::from("hi"))), &arena)?;
/// assert_eq!(enc.segment().len(), 8); // one pointer
/// assert_eq!(enc.decode()?, Some(Box::new(String::from("hi"))));
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct Encoded<'a, T> {
    root: Segment<'a>,
    regions: Vec<Segment<'a>>,
    _value: PhantomData<fn() -> T>,
}

/// Encodes `value` with memory from `alloc`: what it points to, then its
/// flat form (coffi's `serialize` with a session).
///
/// # Errors
///
/// As [`MarshalIn::flatten_in`].
///
/// # Examples
///
/// See [`MarshalIn`].
#[doc(alias = "serialize")]
pub fn encode_in<'a, T: MarshalIn, A: SegmentAllocator + ?Sized>(
    value: &T,
    alloc: &'a A,
) -> Result<Encoded<'a, T>> {
    let mut enc = Encoder::new(alloc);
    let flat = value.flatten_in(&mut enc)?;
    let root = alloc.allocate_from(&flat)?;
    Ok(Encoded {
        root,
        regions: enc.regions,
        _value: PhantomData,
    })
}

impl<'a, T: MarshalIn> Encoded<'a, T> {
    /// The flat form (pass it, or its address, to C).
    ///
    /// # Examples
    ///
    /// See [`Encoded`].
    pub fn segment(&self) -> &Segment<'a> {
        &self.root
    }

    /// The flat form, writable (C-style updates before decoding back).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Arena, marshal::encode_in};
    /// let arena = Arena::confined();
    /// let mut enc = encode_in(&[1u32, 2], &arena)?;
    /// enc.segment_mut().set(4, 5u32)?;
    /// assert_eq!(enc.decode()?, [1, 5]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn segment_mut(&mut self) -> &mut Segment<'a> {
        &mut self.root
    }

    /// The segments the flat form points into (strings, values, arrays).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Arena, marshal::encode_in};
    /// let arena = Arena::confined();
    /// let enc = encode_in(&[String::from("a"), String::from("b")], &arena)?;
    /// assert_eq!(enc.segments().len(), 2);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn segments(&self) -> &[Segment<'a>] {
        &self.regions
    }

    /// A decoder following pointers into this value's segments.
    ///
    /// # Examples
    ///
    /// See [`MarshalIn`].
    pub fn decoder(&self) -> Decoder<'_, 'a> {
        Decoder::new(&self.regions)
    }

    /// Reads the value back (after C may have changed it): the flat form,
    /// then its pointers, each checked to lie in this value's segments.
    ///
    /// # Errors
    ///
    /// As [`Decoder::value`].
    ///
    /// # Examples
    ///
    /// See [`Encoded`].
    #[doc(alias = "deserialize")]
    pub fn decode(&self) -> Result<T> {
        let flat = T::Flat::read_from(&self.root, 0)?;
        T::unflatten(&flat, &self.decoder())
    }
}

impl<T> core::fmt::Debug for Encoded<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encoded")
            .field("segment", &self.root)
            .field("segments", &self.regions.len())
            .finish()
    }
}

macro_rules! flat_is_self {
    ($($t:ty),* $(,)?) => {$(
        impl MarshalIn for $t {
            type Flat = $t;
            #[inline]
            fn flatten_in<A: SegmentAllocator + ?Sized>(&self, _: &mut Encoder<'_, A>) -> Result<$t> {
                Ok(*self)
            }
            #[inline]
            fn unflatten(flat: &$t, _: &Decoder<'_, '_>) -> Result<$t> {
                Ok(*flat)
            }
        }
    )*};
}

flat_is_self!(
    i8, u8, i16, u16, i32, u32, i64, u64, f32, f64, usize, isize, bool, Address
);

/// `char *` (UTF-8, NUL-terminated).
impl MarshalIn for String {
    type Flat = Address;
    fn flatten_in<A: SegmentAllocator + ?Sized>(
        &self,
        enc: &mut Encoder<'_, A>,
    ) -> Result<Address> {
        enc.cstring(self)
    }
    fn unflatten(flat: &Address, dec: &Decoder<'_, '_>) -> Result<String> {
        dec.string(*flat)
    }
}

/// `char *` (any bytes, NUL-terminated).
impl MarshalIn for CString {
    type Flat = Address;
    fn flatten_in<A: SegmentAllocator + ?Sized>(
        &self,
        enc: &mut Encoder<'_, A>,
    ) -> Result<Address> {
        let bytes = self.as_bytes_with_nul();
        let mut seg = enc.alloc.allocate_uninit(bytes.len(), 1)?;
        seg.copy_from_slice(0, bytes)?;
        Ok(enc.keep(seg))
    }
    fn unflatten(flat: &Address, dec: &Decoder<'_, '_>) -> Result<CString> {
        dec.cstring(*flat)
    }
}

/// `T *` to one `T` (never NULL; use `Option<Box<T>>` for a nullable one).
impl<T: MarshalIn> MarshalIn for Box<T> {
    type Flat = Address;
    fn flatten_in<A: SegmentAllocator + ?Sized>(
        &self,
        enc: &mut Encoder<'_, A>,
    ) -> Result<Address> {
        enc.value(&**self)
    }
    fn unflatten(flat: &Address, dec: &Decoder<'_, '_>) -> Result<Box<T>> {
        dec.value(*flat).map(Box::new)
    }
}

/// A nullable pointer: `None` is NULL.
impl<T: MarshalIn<Flat = Address>> MarshalIn for Option<T> {
    type Flat = Address;
    fn flatten_in<A: SegmentAllocator + ?Sized>(
        &self,
        enc: &mut Encoder<'_, A>,
    ) -> Result<Address> {
        match self {
            Some(v) => v.flatten_in(enc),
            None => Ok(Address::NULL),
        }
    }
    fn unflatten(flat: &Address, dec: &Decoder<'_, '_>) -> Result<Option<T>> {
        if flat.is_null() {
            Ok(None)
        } else {
            T::unflatten(flat, dec).map(Some)
        }
    }
}

/// An inline array of `N` flat forms (`T x[N]` as a struct member).
impl<T: MarshalIn, const N: usize> MarshalIn for [T; N]
where
    [T::Flat; N]: Marshal,
{
    type Flat = [T::Flat; N];
    fn flatten_in<A: SegmentAllocator + ?Sized>(
        &self,
        enc: &mut Encoder<'_, A>,
    ) -> Result<[T::Flat; N]> {
        let v: Vec<T::Flat> = self
            .iter()
            .map(|x| x.flatten_in(enc))
            .collect::<Result<_>>()?;
        v.try_into().map_err(|_| Error::InvalidArgument {
            reason: "marshal: array length changed".into(),
        })
    }
    fn unflatten(flat: &[T::Flat; N], dec: &Decoder<'_, '_>) -> Result<[T; N]> {
        let v: Vec<T> = flat
            .iter()
            .map(|f| T::unflatten(f, dec))
            .collect::<Result<_>>()?;
        v.try_into().map_err(|_| Error::InvalidArgument {
            reason: "marshal: array length changed".into(),
        })
    }
}
