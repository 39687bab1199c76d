//! Owned segments: a segment that holds a handle of its session instead of
//! borrowing one, so it is a plain value (a struct field, a return value, a
//! cache entry, a message to another thread).

use super::raw::RawSegment;
use super::{Address, Primitive, Segment};
use crate::error::Result;
use crate::session::Session;
use core::fmt;

/// A segment that owns a handle of its session (an `Arc` clone) instead of
/// borrowing it: it can be stored next to the arena that made it, returned
/// from the function that made the arena, kept in a cache or sent to another
/// thread, and it keeps an [auto](Session::auto) session open while it
/// lives. Every access is still checked as a [`Segment`]'s is: bounds,
/// alignment, liveness (a closed session gives [`Error::Closed`]) and thread
/// (a confined session's segment gives [`Error::WrongThread`] anywhere but
/// on its owner thread).
///
/// [`Error::Closed`]: crate::Error::Closed
/// [`Error::WrongThread`]: crate::Error::WrongThread
///
/// # Which one to use
///
/// | use | when |
/// |---|---|
/// | [`Segment<'s>`](Segment) | the default: free to make (no atomic operation), scoped by the borrow checker to its allocator or session handle. Every allocator returns these. |
/// | `OwnedSegment` | the segment must outlive the scope of the allocator value: a field of a struct that also holds the arena, a return value, a cache, a `'static` thread. Costs an `Arc` increment to make and a decrement to drop. |
///
/// Get one from [`Arena::allocate_owned`](crate::alloc::Arena::allocate_owned) (or [`OwnedSegment::from_raw`]);
/// view it as a `Segment` with [`as_segment`](Self::as_segment) (read-only,
/// like `&Segment`) or [`as_segment_mut`](Self::as_segment_mut) (writable,
/// borrowing `self` mutably), both free. `OwnedSegment` is not `Clone`: two
/// writable owners of the same bytes could race from two threads. Split it
/// into disjoint owned parts with [`split_at`](Self::split_at) instead.
///
/// The memory stays valid while the session is open, whatever happens to
/// the allocator value: an arena that has handed out owned segments leaves
/// its chunks to its session's close when dropped, and its `reset` starts
/// fresh chunks instead of reusing them (see [`Arena::allocate_owned`](crate::alloc::Arena::allocate_owned)).
///
/// # Examples
///
/// A segment returned from the function that made its arena:
///
/// ```
/// use memscope::{Arena, Error, OwnedSegment};
/// fn make() -> Result<OwnedSegment, Error> {
///     let arena = Arena::shared();
///     let mut seg = arena.allocate_owned(16, 8)?;
///     seg.set(0, 42u64)?;
///     Ok(seg) // the arena value drops here; the memory stays with the session
/// }
/// let seg = make()?;
/// assert_eq!(seg.get::<u64>(0)?, 42);
/// // Sent to another thread ('static, no scope needed):
/// let back = std::thread::spawn(move || seg.get::<u64>(8).map(|v| (v, seg))).join().unwrap()?;
/// assert_eq!(back.0, 0);
/// back.1.session().close()?;
/// assert_eq!(back.1.get::<u64>(0), Err(Error::Closed));
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// Stored beside its arena:
///
/// ```
/// use memscope::{Arena, OwnedSegment};
/// struct Parser {
///     arena: Arena,
///     header: OwnedSegment,
/// }
/// let arena = Arena::confined();
/// let header = arena.allocate_owned(64, 8)?;
/// let p = Parser { arena, header };
/// assert_eq!(p.header.len(), 64);
/// assert_eq!(p.header.session(), p.arena.session());
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// Not `Clone` (two writable owners could race):
///
/// ```compile_fail,E0599
/// let arena = memscope::Arena::shared();
/// let a = arena.allocate_owned(8, 8)?;
/// let b = a.clone(); // error[E0599]: no method named `clone`
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// One writable view at a time:
///
/// ```compile_fail,E0499
/// let arena = memscope::Arena::shared();
/// let mut a = arena.allocate_owned(8, 8)?;
/// let mut v1 = a.as_segment_mut();
/// let mut v2 = a.as_segment_mut(); // error[E0499]: borrowed mutably twice
/// v1.set(0, 1u64)?;
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// A view does not outlive the owned segment:
///
/// ```compile_fail,E0597
/// let arena = memscope::Arena::shared();
/// let view = {
///     let a = arena.allocate_owned(8, 8)?;
///     a.as_segment() // error[E0597]: `a` does not live long enough
/// };
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct OwnedSegment {
    raw: RawSegment,
    session: Session,
    read_only: bool,
}

// SAFETY: as for `Segment`: a pointer + length into memory kept alive until
// the session closes (the constructors' contract), plus a `Session` handle
// (Send + Sync). Plain writes need `&mut OwnedSegment` (or a view that
// borrows it mutably), confined sessions re-check the thread on every
// access, and the memory is only freed by a close that the access protocol
// (enter/guard) excludes.
unsafe impl Send for OwnedSegment {}
// SAFETY: through `&OwnedSegment` only read-only views exist; concurrent
// reads are not a data race, and writes need `&mut OwnedSegment`.
unsafe impl Sync for OwnedSegment {}

impl OwnedSegment {
    /// The owned form of an allocator's fresh segment of `session`: for
    /// allocators that keep the memory until the session closes (see
    /// `Arena::allocate_owned`, which pins its arena first).
    pub(crate) fn from_allocated(seg: Segment<'_>, session: Session) -> OwnedSegment {
        OwnedSegment {
            raw: seg.raw,
            session,
            read_only: false,
        }
    }

    /// An owned view of `size` bytes at `addr` that belongs to `session`
    /// (the owned form of [`Segment::from_raw`]).
    ///
    /// # Safety
    ///
    /// Unless `size == 0`, `addr .. addr + size` must be valid for reads and
    /// writes until `session` closes (whatever other values are dropped
    /// meanwhile), and no other code may access those bytes while this
    /// segment (or a part or view of it) is in use.
    ///
    /// # Errors
    ///
    /// As [`Segment::from_raw`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{OwnedSegment, Session, segment::Address};
    /// let session = Session::shared();
    /// let buf: &'static mut [u64; 2] = Box::leak(Box::new([7, 8]));
    /// // SAFETY: leaked: valid for ever, and only reached through `seg`.
    /// let seg = unsafe { OwnedSegment::from_raw(Address::from_ptr(buf.as_mut_ptr()), 16, session) }?;
    /// assert_eq!(seg.get::<u64>(8)?, 8);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub unsafe fn from_raw(addr: Address, size: usize, session: Session) -> Result<OwnedSegment> {
        // SAFETY: forwarded: this function's contract is `Segment::from_raw`'s
        // for the session's whole open life.
        let raw = unsafe { Segment::from_raw(addr, size, &session) }?.raw;
        Ok(OwnedSegment {
            raw,
            session,
            read_only: false,
        })
    }

    /// A read-only view (free: no atomic operation). Read-only because
    /// `&self` may be shared: two writable views from `&self` could race.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Arena, Error};
    /// let arena = Arena::shared();
    /// let seg = arena.allocate_owned(8, 8)?;
    /// let view = seg.as_segment();
    /// assert_eq!(view.get::<u64>(0)?, 0);
    /// assert!(view.is_read_only());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn as_segment(&self) -> Segment<'_> {
        // SAFETY: the bytes are valid while `self.session` is open (the
        // constructors' contract) and only reached through `self`; the view
        // borrows `self`, so neither the handle nor the bytes' owner goes away
        // under it, and it is read-only, so views from `&self` never write.
        let mut s = unsafe { Segment::from_raw_parts(self.raw, &self.session) };
        s.read_only = true;
        s
    }

    /// A writable view (read-only if this segment is), borrowing `self`
    /// mutably: no other view exists while it lives.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Arena, Error};
    /// let arena = Arena::shared();
    /// let mut seg = arena.allocate_owned(8, 8)?;
    /// seg.as_segment_mut().fill(0xab)?;
    /// assert_eq!(seg.get::<u8>(7)?, 0xab);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn as_segment_mut(&mut self) -> Segment<'_> {
        // SAFETY: as `as_segment`; writable only if `self` is, and exclusive:
        // the view borrows `self` mutably, and `self` is the only way to the
        // bytes (not `Clone`; `split_at` makes disjoint parts).
        let mut s = unsafe { Segment::from_raw_parts(self.raw, &self.session) };
        s.read_only = self.read_only;
        s
    }

    /// The size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::Arena::shared().allocate_owned(3, 1)?.len(), 3);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.raw.len
    }

    /// Whether the size is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memscope::Arena::shared().allocate_owned(0, 1)?.is_empty());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }

    /// The start address.
    ///
    /// # Examples
    ///
    /// ```
    /// let seg = memscope::Arena::shared().allocate_owned(8, 8)?;
    /// assert_eq!(seg.address(), seg.as_segment().address());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn address(&self) -> Address {
        Address(self.raw.addr())
    }

    /// The session that owns the memory (this segment holds a handle of it).
    ///
    /// # Examples
    ///
    /// ```
    /// let arena = memscope::Arena::shared();
    /// let seg = arena.allocate_owned(8, 8)?;
    /// assert_eq!(seg.session(), arena.session());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Whether writes are refused.
    ///
    /// # Examples
    ///
    /// ```
    /// let seg = memscope::Arena::shared().allocate_owned(8, 8)?;
    /// assert!(seg.into_read_only().is_read_only());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// This segment, refusing writes from now on.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::Error;
    /// let mut seg = memscope::Arena::shared().allocate_owned(8, 8)?.into_read_only();
    /// assert_eq!(seg.set(0, 1u64), Err(Error::ReadOnly));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn into_read_only(mut self) -> OwnedSegment {
        self.read_only = true;
        self
    }

    /// Reads a `T` at `offset` (as [`Segment::get`]).
    ///
    /// # Errors
    ///
    /// As [`Segment::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::Error;
    /// let seg = memscope::Arena::shared().allocate_owned(8, 8)?;
    /// assert_eq!(seg.get::<u32>(4)?, 0);
    /// assert!(matches!(seg.get::<u64>(4), Err(Error::OutOfBounds { .. })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn get<T: Primitive>(&self, offset: usize) -> Result<T> {
        self.as_segment().get(offset)
    }

    /// Writes a `T` at `offset` (as [`Segment::set`]).
    ///
    /// # Errors
    ///
    /// As [`Segment::set`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut seg = memscope::Arena::shared().allocate_owned(8, 8)?;
    /// seg.set(0, 5u64)?;
    /// assert_eq!(seg.get::<u64>(0)?, 5);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn set<T: Primitive>(&mut self, offset: usize, value: T) -> Result<()> {
        self.as_segment_mut().set(offset, value)
    }

    /// A copy of the bytes (as [`Segment::to_vec`]).
    ///
    /// # Errors
    ///
    /// As [`Segment::to_vec`].
    ///
    /// # Examples
    ///
    /// ```
    /// let seg = memscope::Arena::shared().allocate_owned(2, 1)?;
    /// assert_eq!(seg.to_vec()?, [0, 0]);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        self.as_segment().to_vec()
    }

    /// A read-only borrowed view of `offset .. offset + len`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`](crate::Error::OutOfBounds).
    ///
    /// # Examples
    ///
    /// ```
    /// let seg = memscope::Arena::shared().allocate_owned(16, 8)?;
    /// assert_eq!(seg.slice(8, 8)?.len(), 8);
    /// assert!(seg.slice(9, 8).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn slice(&self, offset: usize, len: usize) -> Result<Segment<'_>> {
        let raw = self.raw.sub(offset, len)?;
        Ok(self.as_segment().derive_detached(raw))
    }

    /// A writable borrowed view of `offset .. offset + len`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`](crate::Error::OutOfBounds).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut seg = memscope::Arena::shared().allocate_owned(16, 8)?;
    /// seg.slice_mut(8, 8)?.set(0, 3u64)?;
    /// assert_eq!(seg.get::<u64>(8)?, 3);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn slice_mut(&mut self, offset: usize, len: usize) -> Result<Segment<'_>> {
        let raw = self.raw.sub(offset, len)?;
        Ok(self.as_segment_mut().derive_detached(raw))
    }

    /// The owned part `offset .. offset + len` (the rest is let go; the
    /// memory itself belongs to the session and stays until it closes).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`](crate::Error::OutOfBounds) (and `self` is
    /// dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let seg = memscope::Arena::shared().allocate_owned(16, 8)?;
    /// let a = seg.address();
    /// let tail = seg.into_slice(8, 8)?;
    /// assert_eq!(tail.address().get(), a.get() + 8);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn into_slice(mut self, offset: usize, len: usize) -> Result<OwnedSegment> {
        self.raw = self.raw.sub(offset, len)?;
        Ok(self)
    }

    /// Two owned, disjoint parts `0 .. mid` and `mid .. len` (each holds a
    /// handle of the session): hand them to two threads.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`](crate::Error::OutOfBounds) if `mid > len`
    /// (and `self` is dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let seg = memscope::Arena::shared().allocate_owned(16, 8)?;
    /// let (mut a, mut b) = seg.split_at(8)?;
    /// let t = std::thread::spawn(move || { b.set(0, 2u64).map(|()| b) });
    /// a.set(0, 1u64)?;
    /// let b = t.join().unwrap()?;
    /// assert_eq!((a.get::<u64>(0)?, b.get::<u64>(0)?), (1, 2));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn split_at(self, mid: usize) -> Result<(OwnedSegment, OwnedSegment)> {
        let head = self.raw.sub(0, mid)?;
        let tail = self.raw.sub(mid, self.raw.len - mid)?;
        let other = OwnedSegment {
            raw: tail,
            session: self.session.clone(),
            read_only: self.read_only,
        };
        Ok((
            OwnedSegment {
                raw: head,
                session: self.session,
                read_only: self.read_only,
            },
            other,
        ))
    }
}

impl<'s> Segment<'s> {
    /// A view of `raw` (inside `self`, checked by the caller) with this
    /// segment's session, lifetime and flags.
    #[inline(always)]
    fn derive_detached(self, raw: RawSegment) -> Segment<'s> {
        Segment { raw, ..self }
    }

    /// An owned segment over the same bytes, holding a clone of the session
    /// handle (Java's segments are values; this is the way to one from a
    /// segment whose memory is the session's until it closes).
    ///
    /// # Safety
    ///
    /// The memory must stay valid until the session closes — true of
    /// [`Segment::from_raw`] memory (its contract), *not* of what an
    /// allocator hands out (an arena's `reset` or drop, a stack frame's end
    /// or a `PrefixAllocator::reset` reuses or frees it first; use
    /// [`Arena::allocate_owned`](crate::alloc::Arena::allocate_owned)) — and `self` and its views must no longer
    /// be used to write while the owned segment lives (two writers could
    /// race).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Session, Segment, segment::Address};
    /// let session = Session::shared();
    /// let buf: &'static mut [u32; 1] = Box::leak(Box::new([9]));
    /// // SAFETY: leaked memory, reached only through this segment.
    /// let seg = unsafe { Segment::from_raw(Address::from_ptr(buf.as_mut_ptr()), 4, &session) }?;
    /// // SAFETY: valid for ever; `seg` is not used again.
    /// let owned = unsafe { seg.to_owned_segment() };
    /// drop(session);
    /// assert_eq!(owned.get::<u32>(0)?, 9);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub unsafe fn to_owned_segment(&self) -> OwnedSegment {
        OwnedSegment {
            raw: self.raw,
            session: self.session.clone(),
            read_only: self.read_only,
        }
    }
}

impl fmt::Debug for OwnedSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSegment")
            .field("address", &self.address())
            .field("len", &self.raw.len)
            .field("session", &self.session.id())
            .field("read_only", &self.read_only)
            .finish()
    }
}
