//! Reading what C hands back by address (Java `MemorySegment.reinterpret`,
//! ctypes `string_at`/`from_address`): an [`Address`] a downcall returned
//! or an upcall received, turned in one call into a checked [`Segment`]
//! of a size the caller gives (or a type's, or up to the NUL C put there),
//! or into an owned copy (`T`, `CString`, `String`).
//!
//! One of the few files with `unsafe` code: `strlen` over memory only the
//! caller can vouch for. Each function is `unsafe` for that reason alone;
//! what it returns is checked from then on.

use std::ffi::{CStr, CString};

use crate::marshal::Marshal;
use crate::{Address, Error, Result, Segment, Session};

/// The global session as a `'static` reference (the default session of
/// reinterpreted segments).
fn global() -> &'static Session {
    static GLOBAL: std::sync::OnceLock<Session> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(Session::global)
}

fn non_null(a: Address) -> Result<Address> {
    if a.is_null() {
        Err(Error::NullAddress)
    } else {
        Ok(a)
    }
}

fn aligned(a: Address, align: usize) -> Result<Address> {
    let align = align.max(1);
    if !a.get().is_multiple_of(align) {
        return Err(Error::Misaligned {
            addr: a.get(),
            align,
        });
    }
    Ok(a)
}

/// `strlen(p)`.
///
/// # Safety
///
/// `p` is non-null and points to a NUL-terminated byte string readable up
/// to and including its NUL.
unsafe fn c_strlen(p: Address) -> usize {
    // SAFETY: the caller's contract: readable up to a NUL, which CStr finds.
    unsafe { CStr::from_ptr(p.as_ptr::<std::ffi::c_char>()) }.count_bytes()
}

impl Address {
    /// The `size` bytes at this address as a segment of `session` (Java
    /// `reinterpret(size, arena, cleanup)` without the cleanup): bounds-,
    /// session- and thread-checked from then on. The same as
    /// [`Segment::from_raw`], as a method on the address C returned.
    ///
    /// # Safety
    ///
    /// Unless `size == 0`: `self .. self + size` must be memory that is
    /// valid for reads — and for writes, if the segment is written — for as
    /// long as `session` is open, and that nothing else (C code, another
    /// segment over the same bytes) accesses while the segment is in use.
    /// Pick a session that closes before the memory is freed (C's buffer
    /// lives until you `free` it; a pointer into a library's data lives
    /// until the library is unloaded).
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`] for NULL with a non-zero size;
    /// [`Error::OutOfBounds`] if `self + size` overflows.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Address, Session};
    /// let mut v = [1u32, 2, 3];
    /// let p = Address::from_ptr(v.as_mut_ptr()); // as C would return it
    /// let s = Session::shared();
    /// // SAFETY: `v` outlives the session's use and is only used through it.
    /// let seg = unsafe { p.reinterpret(12, &s) }?;
    /// assert_eq!(seg.get::<u32>(8)?, 3);
    /// assert!(seg.get::<u32>(12).is_err()); // checked from now on
    /// s.close()?;
    /// assert!(seg.get::<u32>(0).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "from_address")]
    #[doc(alias = "as-segment")]
    pub unsafe fn reinterpret<'s>(self, size: usize, session: &'s Session) -> Result<Segment<'s>> {
        // SAFETY: forwarded (# Safety is from_raw's).
        unsafe { Segment::from_raw(self, size, session) }
    }

    /// [`reinterpret`](Self::reinterpret) into the global session (never
    /// closes): for memory that lives as long as the program — static data
    /// of a library that is never unloaded, say.
    ///
    /// # Safety
    ///
    /// As [`reinterpret`](Self::reinterpret), for the rest of the program:
    /// the memory must never be freed or unmapped while the segment (or a
    /// view of it) is used.
    ///
    /// # Errors
    ///
    /// As [`reinterpret`](Self::reinterpret).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::Address;
    /// static TABLE: [u16; 4] = [10, 20, 30, 40];
    /// let p = Address::from_ptr(TABLE.as_ptr());
    /// // SAFETY: a static, never freed; only read.
    /// let seg = unsafe { p.reinterpret_global(8) }?;
    /// assert_eq!(seg.as_read_only().get::<u16>(6)?, 40);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "reinterpret")]
    pub unsafe fn reinterpret_global(self, size: usize) -> Result<Segment<'static>> {
        // SAFETY: forwarded (# Safety), for the global session's lifetime.
        unsafe { Segment::from_raw(self, size, global()) }
    }

    /// The `T` at this address as a segment of `session`, sized by `T`'s C
    /// layout and checked for its alignment: read it with
    /// [`read_seq`](crate::marshal::read_seq) or a
    /// [`StructView`](crate::marshal::StructView).
    ///
    /// # Safety
    ///
    /// As [`reinterpret`](Self::reinterpret) with `size = T::SIZE`: the
    /// address holds a C object of `T`'s layout, valid (for reads, and for
    /// writes if written) while `session` is open and not accessed by
    /// anything else meanwhile.
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`]; [`Error::Misaligned`] if the address is not
    /// aligned for `T`; [`Error::OutOfBounds`] on overflow.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Address, Session, marshal::read_seq};
    /// memscope::c_struct! {
    ///     #[derive(Clone, Copy, Debug, PartialEq)]
    ///     struct Pt { x: i32, y: f64 }
    /// }
    /// let mut pt = Pt { x: 7, y: 0.5 };
    /// let p = Address::from_ptr(&raw mut pt); // as C would return it
    /// let s = Session::shared();
    /// // SAFETY: `pt` outlives the segment's use and is only used through it.
    /// let seg = unsafe { p.reinterpret_as::<Pt>(&s) }?;
    /// assert_eq!(seg.len(), 16);
    /// assert_eq!(read_seq::<Pt>(&seg, 0, 1)?[0], Pt { x: 7, y: 0.5 });
    /// assert!(matches!(unsafe { Address::new(3).reinterpret_as::<Pt>(&s) },
    ///                  Err(memscope::Error::Misaligned { .. })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "reinterpret")]
    pub unsafe fn reinterpret_as<'s, T: Marshal>(
        self,
        session: &'s Session,
    ) -> Result<Segment<'s>> {
        let a = aligned(non_null(self)?, T::ALIGN)?;
        // SAFETY: forwarded (# Safety) with T's size.
        unsafe { Segment::from_raw(a, T::SIZE, session) }
    }

    /// The NUL-terminated C string at this address as a **read-only**
    /// segment of `session`, its length found for you (`strlen`): the
    /// string's bytes without the NUL. Read it with
    /// [`to_vec`](crate::Segment::to_vec) or copy it out with
    /// [`read_c_string`](Self::read_c_string).
    ///
    /// # Safety
    ///
    /// The address must point to a NUL-terminated byte string that is
    /// readable up to and including its NUL now (the length is found by
    /// reading it) and stays unchanged and readable while `session` is
    /// open.
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`] for NULL.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Address, Session};
    /// let p = Address::from_ptr(c"hello".as_ptr()); // as C would return it
    /// let s = Session::shared();
    /// // SAFETY: a static C string.
    /// let seg = unsafe { p.reinterpret_c_str(&s) }?;
    /// assert_eq!(seg.len(), 5);
    /// assert_eq!(seg.get::<u8>(4)?, b'o');
    /// assert!(seg.is_read_only());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "reinterpret")]
    #[doc(alias = "getString")]
    pub unsafe fn reinterpret_c_str<'s>(self, session: &'s Session) -> Result<Segment<'s>> {
        let a = non_null(self)?;
        // SAFETY: non-null (checked); NUL-terminated and readable (the
        // caller's contract).
        let len = unsafe { c_strlen(a) };
        // SAFETY: the `len` bytes before the NUL are readable while the
        // session is open (the caller's contract); the segment is made
        // read-only below, so nothing writes through it.
        let mut seg = unsafe { Segment::from_raw(a, len, session) }?;
        seg.read_only = true;
        Ok(seg)
    }

    /// A copy of the `T` at this address (ctypes `T.from_address(a)` then
    /// a copy): decoded from `T::SIZE` bytes, alignment checked.
    ///
    /// # Safety
    ///
    /// The address must point to `T::SIZE` readable bytes holding a C
    /// object of `T`'s layout, not written by anything else during the
    /// copy.
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`]; [`Error::Misaligned`]; what `T::decode`
    /// reports for bytes that are no `T` (a `c_enum!` with an unknown
    /// value, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::Address;
    /// let x = 0x1234_5678u32;
    /// // SAFETY: `x` is a live u32.
    /// assert_eq!(unsafe { Address::from_ptr(&raw const x).read::<u32>() }?, 0x1234_5678);
    /// assert!(unsafe { Address::NULL.read::<u32>() }.is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub unsafe fn read<T: Marshal>(self) -> Result<T> {
        let a = aligned(non_null(self)?, T::ALIGN)?;
        // SAFETY: `T::SIZE` readable bytes at `a`, not written meanwhile
        // (the caller's contract); the slice lives only for the decode.
        let bytes = unsafe { std::slice::from_raw_parts(a.as_ptr::<u8>(), T::SIZE) };
        T::decode(bytes)
    }

    /// A copy of the NUL-terminated C string at this address (ctypes
    /// `string_at`, Java `getString(0)` as bytes).
    ///
    /// # Safety
    ///
    /// The address must point to a NUL-terminated byte string readable up
    /// to and including its NUL, not written by anything else during the
    /// copy.
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`] for NULL.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::Address;
    /// let p = Address::from_ptr(c"from C".as_ptr());
    /// // SAFETY: a static C string.
    /// assert_eq!(unsafe { p.read_c_string() }?.as_c_str(), c"from C");
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "string_at")]
    pub unsafe fn read_c_string(self) -> Result<CString> {
        let a = non_null(self)?;
        // SAFETY: non-null; NUL-terminated and readable (the caller's
        // contract); copied before returning.
        Ok(unsafe { CStr::from_ptr(a.as_ptr::<std::ffi::c_char>()) }.to_owned())
    }

    /// A copy of the NUL-terminated UTF-8 C string at this address as a
    /// `String` (Java `getString(0)`).
    ///
    /// # Safety
    ///
    /// As [`read_c_string`](Self::read_c_string).
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`] for NULL; [`Error::InvalidString`] if the
    /// bytes are not UTF-8.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::Address;
    /// // SAFETY: static C strings.
    /// assert_eq!(unsafe { Address::from_ptr(c"héllo".as_ptr()).read_string() }?, "héllo");
    /// assert!(unsafe { Address::from_ptr(c"\xff".as_ptr()).read_string() }.is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "getString")]
    pub unsafe fn read_string(self) -> Result<String> {
        // SAFETY: forwarded (# Safety).
        let s = unsafe { self.read_c_string() }?;
        s.into_string().map_err(|e| Error::InvalidString {
            reason: format!("not UTF-8: {}", e.utf8_error()),
        })
    }
}
