//! The arena: a bump allocator tied to a session, shared by threads.
//!
//! This file is the public face ([`Arena`], [`LocalArena`]): opening,
//! closing, statistics, limits, `reset`, and which mechanism an allocation
//! goes to. Each mechanism has its own file, which says what it owns and
//! what it may touch:
//!
//! * `state.rs` — the arena's state (`Inner`, and `Slow` under one spin
//!   lock, `spin.rs`), chunk records, size rules, finding a chunk (kept,
//!   pooled or fresh); imports none of its siblings.
//! * `cold.rs` — the cold path: refills, huge allocations, limits,
//!   statistics, release, `reset` (which keeps the largest chunk, as
//!   bumpalo keeps its last).
//! * `slots.rs` — the slot table: `&Arena` on a shared session bumps a
//!   per-core slot word with one CAS.
//! * `tcache.rs` — the thread chunk cache: after a streak of slot-word
//!   bumps, a thread bumps a chunk of its own with plain cells.
//! * `local.rs` — [`Arena::local`]'s per-thread handle.
//! * `confined.rs` — a confined session's cursor (owner thread, plain
//!   bump) and its standby first chunk.
//! * `zeroing.rs` — clean-mark zeroing of recycled chunks, and the windows
//!   in which chunk bytes may be written.
//! * `spare.rs` — recycling dropped arenas' states per thread.
//!
//! The session knows nothing of arenas: an arena registers its state as
//! the session's close action (`session::state::CloseHook`, one `Arc`
//! clone, no box), and withdraws it when dropped first.
//!
//! # What close can race with
//!
//! The close action (after the session is marked closed and in-flight
//! plain accesses drained) takes the lock, marks the arena released, swaps
//! every slot word to `CLOSED` (reading each slot's final offset, so it
//! knows how much of each chunk to clear) and returns the chunks to the
//! pool. A `&Arena` bump racing it either wins its CAS before the swap (its
//! segment's accesses then fail with `Closed`) or sees `CLOSED` and returns
//! [`Error::Closed`]; bumps never touch chunk memory. The single-owner
//! cursors' one write, zeroing, is confined to the windows of `zeroing.rs`.
//! Segment reads and writes are protected by the session protocol.
//!
//! If the arena was used through the `allocator-api2` bridge, close does not
//! free the chunks (collections may still point into them, and the bridge
//! promises validity for the arena borrow); they are freed when the arena is
//! dropped. Dropping an arena whose session is still open frees its chunks
//! at once: no segment can outlive the arena borrow.

mod cold;
mod confined;
mod local;
mod slots;
mod spare;
mod state;
mod tcache;
mod zeroing;

pub(crate) use spare::trim as trim_spares;
pub(crate) use state::layout_error;

use super::SegmentAllocator;
use super::chunk::carve;
use super::twins::{Twin, on};
use crate::error::{Error, Result};
use crate::segment::{OwnedSegment, Segment};
use crate::session::Session;
use crate::session::actions::{ActionKey, Hook};
use crate::session::state::Action;
use crate::sync::{Arc, AtomicBool, Ordering};
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use state::{Inner, layout_ok};

/// A bump allocator whose memory is freed, all at once, when its session
/// closes. `Send + Sync`: many threads may allocate from one `&Arena` (no
/// lock on the fast path); [`Arena::local`] gives a thread an even cheaper
/// handle. `allocate` zeroes (fresh chunks are zero already; recycled bytes
/// are zeroed in one memset when the first zeroing allocation reaches
/// them), `allocate_uninit` hands recycled bytes out as they are, and
/// allocations carry no header.
///
/// Zero-size requests succeed with an empty segment whose address is the
/// alignment (no memory is used).
///
/// # Examples
///
/// ```
/// use memscope::alloc::{Arena, SegmentAllocator};
/// use memscope::Error;
///
/// let arena = Arena::shared();
/// std::thread::scope(|s| {
///     for t in 0..2u64 {
///         let arena = &arena;
///         s.spawn(move || {
///             let mut seg = arena.allocate(8, 8).unwrap();
///             seg.set(0, t).unwrap();
///         });
///     }
/// });
/// let seg = arena.allocate(16, 8)?;
/// assert_eq!(seg.get::<u64>(8)?, 0); // zeroed
/// drop(seg);
/// arena.close()?;
/// assert_eq!(arena.allocate(16, 8).unwrap_err(), Error::Closed);
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct Arena {
    session: Session,
    /// The arena's state; taken (to be recycled) only by `drop`.
    inner: ManuallyDrop<Arc<Inner>>,
    /// The registration of the state's close action, withdrawn by `drop`
    /// (so a long-lived session does not keep one action per dropped arena).
    key: Option<ActionKey>,
    /// Set once an owned segment was handed out (`allocate_owned`): owned
    /// segments hold session handles, not borrows of the arena, so `drop`
    /// and `reset` must leave the chunks to the session's close.
    owned: AtomicBool,
}

impl Arena {
    /// An arena whose memory belongs to `session` (freed when it closes).
    /// An arena on a confined session is only usable from its owner thread
    /// and has an atomic-free fast path.
    ///
    /// # Errors
    ///
    /// [`Error::WrongThread`] for a confined session from another thread
    /// than its owner (the arena could not register the close action that
    /// frees its memory); [`Error::Closed`] if the session is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session, alloc::{Arena, SegmentAllocator}};
    /// let session = Session::shared();
    /// let arena = Arena::new(session.clone())?;
    /// let seg = arena.allocate(4, 4)?;
    /// assert_eq!(seg.session(), &session);
    ///
    /// let confined = Session::confined();
    /// let other = confined.clone();
    /// let r = std::thread::spawn(move || Arena::new(other).map(drop)).join().unwrap();
    /// assert!(matches!(r, Err(Error::WrongThread { .. })));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn new(session: Session) -> Result<Arena> {
        let (arena, registered) = Arena::open(session);
        // On an error the arena (dropped here) frees what it took.
        registered.map(|()| arena)
    }

    /// The arena, and whether its close action is registered on the session
    /// (`Err(Closed)`: the session was closed and the action ran at once;
    /// `Err(WrongThread)`: not registered).
    fn open(session: Session) -> (Arena, Result<()>) {
        let kind = session.kind();
        let owner = session.owner().unwrap_or(0);
        let inner = spare::take(kind, owner).unwrap_or_else(|| Arc::new(Inner::fresh(kind, owner)));
        // Two holders: this arena and the close action registered below
        // (`spare.rs`). Unshared until the clone: a plain store.
        inner.holders.store(2, Ordering::Relaxed);
        // No boxed closure: the action is the state itself (one Arc clone).
        let hook = Hook::new(Arc::clone(&inner));
        let (key, registered) = match session.core().add_close_action_keyed(Action::Hook(hook)) {
            Ok(k) => (Some(k), Ok(())),
            // The session was closed: the action ran (and let go) at once.
            Err(Error::Closed) => (None, Err(Error::Closed)),
            // Not registered (the action was dropped unrun): its hold goes.
            Err(e) => {
                spare::let_go(&inner, 1);
                (None, Err(e))
            }
        };
        let arena = Arena {
            session,
            inner: ManuallyDrop::new(inner),
            key,
            owned: AtomicBool::new(false),
        };
        (arena, registered)
    }

    /// An arena with its own new shared session.
    ///
    /// # Examples
    ///
    /// ```
    /// let arena = memscope::alloc::Arena::shared();
    /// assert_eq!(arena.session().kind(), memscope::SessionKind::Shared);
    /// ```
    #[doc(alias = "ofShared")]
    pub fn shared() -> Arena {
        // A new session of this thread: registration cannot fail.
        Arena::open(Session::shared()).0
    }

    /// An arena with its own new confined session (this thread only).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let arena = Arena::confined();
    /// let arena2 = &arena;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert!(arena2.allocate(8, 8).is_err())); // WrongThread
    /// });
    /// assert!(arena.allocate(8, 8).is_ok());
    /// ```
    #[doc(alias = "ofConfined")]
    pub fn confined() -> Arena {
        // A new session owned by this thread: registration cannot fail.
        Arena::open(Session::confined()).0
    }

    /// The session the memory belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// let arena = memscope::alloc::Arena::shared();
    /// arena.session().close()?; // same as arena.close()
    /// assert!(!arena.session().is_alive());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    #[inline(always)]
    fn inner(&self) -> &Inner {
        &self.inner
    }

    /// A confined arena's cursor address, if this thread may read it.
    fn cursor(&self) -> Option<usize> {
        let i = self.inner();
        if !i.confined {
            return None;
        }
        i.cur.with(|c| c.ptr).ok()
    }

    /// Closes the arena's session: every allocation is freed at once.
    ///
    /// # Errors
    ///
    /// As [`Session::close`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, alloc::{Arena, SegmentAllocator}};
    /// let arena = Arena::shared();
    /// let seg = arena.allocate(8, 8)?;
    /// arena.close()?;
    /// assert_eq!(seg.get::<u64>(0), Err(Error::Closed));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn close(&self) -> Result<()> {
        self.session.close()
    }

    /// A per-thread handle that bumps without atomics in a chunk of its own
    /// (blink-alloc's `local()`). Its segments belong to this arena's session.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let arena = Arena::shared();
    /// std::thread::scope(|s| {
    ///     for _ in 0..2 {
    ///         s.spawn(|| {
    ///             let local = arena.local();
    ///             for _ in 0..100 {
    ///                 local.allocate(16, 8).unwrap();
    ///             }
    ///         });
    ///     }
    /// });
    /// assert!(arena.allocated_bytes() >= 3200);
    /// ```
    pub fn local(&self) -> LocalArena<'_> {
        LocalArena {
            arena: self,
            inner: self.inner(),
            cur: Cell::new(1),
            end: Cell::new(0),
            base: Cell::new(0),
            clean: Cell::new(0),
            rec: Cell::new(None),
            _not_send: PhantomData,
        }
    }

    /// Caps the bytes of chunks this arena may reserve; requests past it
    /// fail with [`Error::OutOfMemory`]. `None` removes the cap. On a
    /// confined arena, call it from the owner thread before allocating to
    /// keep the recycled first chunk (see [`reserved_bytes`](Self::reserved_bytes))
    /// from being used when it is larger than the cap.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, alloc::{Arena, SegmentAllocator}};
    /// let arena = Arena::shared();
    /// arena.set_allocation_limit(Some(64 * 1024));
    /// assert!(matches!(arena.allocate(1 << 20, 8), Err(Error::OutOfMemory { .. })));
    /// assert!(arena.allocate(1024, 8).is_ok());
    /// ```
    pub fn set_allocation_limit(&self, limit: Option<usize>) {
        self.inner().set_limit(limit);
    }

    /// The cap set by [`set_allocation_limit`](Self::set_allocation_limit).
    ///
    /// # Examples
    ///
    /// ```
    /// let arena = memscope::alloc::Arena::shared();
    /// assert_eq!(arena.allocation_limit(), None);
    /// ```
    pub fn allocation_limit(&self) -> Option<usize> {
        self.inner().slow.lock().limit
    }

    /// Bytes handed out so far, including alignment padding (a snapshot).
    /// A chunk held by a live [`LocalArena`] counts as fully used, as does
    /// a confined arena's current chunk when asked from another thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let arena = Arena::confined();
    /// arena.allocate(16, 8)?;
    /// arena.allocate(16, 8)?;
    /// assert_eq!(arena.allocated_bytes(), 32);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn allocated_bytes(&self) -> usize {
        self.inner().stats(self.cursor()).0
    }

    /// Bytes of chunks reserved from the system (or the pool). A confined
    /// arena may start with a small recycled chunk already attached (its
    /// first allocation is then a plain bump); that chunk is counted here,
    /// and by [`chunks`](Self::chunks), once something was allocated in it
    /// (the allocation limit counts it from the start).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let arena = Arena::shared();
    /// arena.allocate(16, 8)?;
    /// assert!(arena.reserved_bytes() >= 16);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn reserved_bytes(&self) -> usize {
        self.inner().stats(self.cursor()).1
    }

    /// How many chunks the arena holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let arena = Arena::shared();
    /// assert_eq!(arena.chunks(), 0);
    /// arena.allocate(16, 8)?;
    /// assert_eq!(arena.chunks(), 1);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn chunks(&self) -> usize {
        self.inner().stats(self.cursor()).2
    }

    /// Frees every allocation at once (the chunks go back to the pool) and
    /// keeps the arena open. Needs `&mut self`: no segment can still exist.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{Arena, SegmentAllocator};
    /// let mut arena = Arena::confined();
    /// arena.allocate(64, 8)?;
    /// arena.reset();
    /// assert_eq!(arena.allocated_bytes(), 0);
    /// assert_eq!(arena.allocate(8, 8)?.get::<u64>(0)?, 0);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn reset(&mut self) {
        if self.owned.load(Ordering::Relaxed) && !on(Twin::ResetIgnoresOwned) {
            // Owned segments may point into every chunk: move on to a fresh
            // state on the same session and leave this one (pinned, so its
            // drop frees nothing) to the session's close. If none can be
            // made (the session is closed, or this is not a confined
            // session's owner thread), keep everything as it is.
            if let Ok(fresh) = Arena::new(self.session.clone()) {
                fresh.set_allocation_limit(self.allocation_limit());
                drop(core::mem::replace(self, fresh));
            }
            return;
        }
        self.inner().reset();
    }

    /// Marks the arena as having handed out an owned segment (see the
    /// `owned` field).
    #[inline]
    pub(crate) fn pin_for_owned(&self) {
        self.owned.store(true, Ordering::Relaxed);
    }

    /// Marks the arena as used by the allocator-api2 bridge: from now on
    /// close keeps the chunks until the arena is dropped. Cheap after the
    /// first call.
    #[inline(always)]
    pub(crate) fn bridge_mark(&self) -> Result<()> {
        // Relaxed is enough: the flag is only ever set under `slow` after
        // `s.bridged = true` and only while the arena is not released, so a
        // `true` here means release (which reads `s.bridged` under the same
        // lock) keeps the chunks.
        if self.inner().bridged.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.bridge_mark_slow()
    }

    #[cold]
    #[inline(never)]
    fn bridge_mark_slow(&self) -> Result<()> {
        self.inner().bridge_mark_slow()
    }

    /// Bumps and returns the start address (contents unspecified).
    #[inline(always)]
    pub(crate) fn bump(&self, size: usize, align: usize) -> Result<usize> {
        self.bump_z::<false>(size, align)
    }

    /// Bumps and returns the start address; `Z`: the bytes are zero.
    #[inline(always)]
    fn bump_z<const Z: bool>(&self, size: usize, align: usize) -> Result<usize> {
        let inner = self.inner();
        if !inner.confined {
            return inner.bump_cached::<Z>(size, align, &self.session);
        }
        if !layout_ok(size, align) {
            return Err(layout_error(size, align));
        }
        if let Some(a) = inner.bump_confined::<Z>(size, align) {
            return Ok(a);
        }
        if let Some(e) = inner.cur.not_mine() {
            return Err(e);
        }
        inner.bump_slow(Some(&inner.cur), size, align, Z)
    }
}

impl Arena {
    #[inline(always)]
    fn carve_z<const Z: bool>(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let a = self.bump_z::<Z>(size, align)?;
        // SAFETY: `a .. a + size` was bumped past in a chunk this arena owns
        // (or `size == 0` and `a == align != 0`); no other allocation gets
        // it; the chunk stays allocated until the session's close action or
        // the arena's drop, and the segment borrows the arena.
        Ok(unsafe { carve(a, size, &self.session) })
    }
}

impl SegmentAllocator for Arena {
    /// Recycled bytes are handed out as they are (no zeroing at all).
    #[inline(always)]
    fn allocate_uninit(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.carve_z::<false>(size, align)
    }

    /// Zeroed: fresh chunk memory is zero already; recycled bytes below a
    /// chunk's clean mark are zeroed (in one memset) when first reached.
    #[inline(always)]
    fn allocate(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.carve_z::<true>(size, align)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // Owned segments (`allocate_owned`) may still reach the chunks while
        // the session is open: the close action (left registered) frees
        // them. The mark was set through `&self`, before this `&mut self`.
        // Only this arena's own hold on the state goes.
        if self.owned.load(Ordering::Relaxed) && !self.inner().closed.load(Ordering::Acquire) {
            // SAFETY: drop: the field is never used again.
            let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
            if spare::let_go(&inner, 1) {
                // The close ran meanwhile and let go of its hold: the state
                // is drained, recycle it as the normal path does.
                spare::give(inner);
            }
            return;
        }
        // Unregister the close action first (it would only find nothing to
        // do); if a close has already taken it, it runs or ran as before.
        // A withdrawn action never runs: its hold on the state is ours.
        let mut holds = 1;
        if let Some(key) = self.key.take()
            && let Some(a) = self.session.core().withdraw_close_action(key)
        {
            drop(a);
            holds += 1;
        }
        // No segment or handle borrows the arena any more: free now, even if
        // the session stays open (its close action will find nothing to do).
        // Skipped when the close action already released everything (it
        // sets `closed` under the lock after draining the chunks, unless the
        // bridge made it keep them).
        let i = self.inner();
        if !i.closed.load(Ordering::Acquire) || i.bridged.load(Ordering::Relaxed) {
            i.release(true);
        }
        // SAFETY: drop: the field is never used again.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        if spare::let_go(&inner, holds) {
            spare::give(inner);
        }
    }
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (used, reserved, chunks) = self.inner().stats(self.cursor());
        f.debug_struct("Arena")
            .field("session", &self.session)
            .field("allocated_bytes", &used)
            .field("reserved_bytes", &reserved)
            .field("chunks", &chunks)
            .finish()
    }
}

/// A per-thread handle on an [`Arena`] (see [`Arena::local`]): bumps plain
/// `Cell`s in a chunk taken from the arena, so its fast path has no atomic
/// read-modify-write. Not `Send`/`Sync`. Dropping it records how much of
/// its chunk it used; the chunk itself stays the arena's until close.
///
/// # Examples
///
/// ```
/// use memscope::alloc::{Arena, SegmentAllocator};
/// let arena = Arena::shared();
/// let local = arena.local();
/// let mut seg = local.allocate(8, 8)?;
/// seg.set(0, 42u64)?;
/// assert_eq!(seg.get::<u64>(0)?, 42);
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// It stays on its thread:
///
/// ```compile_fail
/// let arena = memscope::alloc::Arena::shared();
/// let local = arena.local();
/// std::thread::scope(|s| { s.spawn(move || drop(local)); }); // error: not `Send`
/// ```
pub struct LocalArena<'a> {
    arena: &'a Arena,
    inner: &'a Inner,
    cur: Cell<usize>,
    end: Cell<usize>,
    base: Cell<usize>,
    /// The chunk's clean mark (see `Cursor`).
    clean: Cell<usize>,
    /// The chunk record this handle bumps in.
    rec: Cell<Option<usize>>,
    _not_send: PhantomData<*const ()>,
}

impl<'a> LocalArena<'a> {
    /// The arena this handle allocates from.
    ///
    /// # Examples
    ///
    /// ```
    /// let arena = memscope::alloc::Arena::shared();
    /// let local = arena.local();
    /// assert!(std::ptr::eq(local.arena(), &arena));
    /// ```
    pub fn arena(&self) -> &'a Arena {
        self.arena
    }

    /// Bumps and returns the start address (contents unspecified).
    #[inline(always)]
    pub(crate) fn bump(&self, size: usize, align: usize) -> Result<usize> {
        self.bump_z::<false>(size, align)
    }

    #[inline(always)]
    fn carve_z<const Z: bool>(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let a = self.bump_z::<Z>(size, align)?;
        // SAFETY: `a .. a + size` lies in a chunk the arena gave to this
        // handle alone (or its own huge chunk, or `size == 0`); the cursor
        // only moves forward; the chunk stays allocated until the session's
        // close action or the arena's drop, and the segment borrows `self`,
        // which borrows the arena.
        Ok(unsafe { carve(a, size, &self.arena.session) })
    }
}

impl SegmentAllocator for LocalArena<'_> {
    /// Recycled bytes are handed out as they are (no zeroing at all).
    #[inline(always)]
    fn allocate_uninit(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.carve_z::<false>(size, align)
    }

    /// Zeroed, as [`Arena`]'s `allocate`.
    #[inline(always)]
    fn allocate(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.carve_z::<true>(size, align)
    }
}

impl Drop for LocalArena<'_> {
    fn drop(&mut self) {
        self.hand_back();
    }
}

impl fmt::Debug for LocalArena<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalArena")
            .field("session", &self.arena.session.id())
            .field("free", &self.end.get().saturating_sub(self.cur.get()))
            .finish()
    }
}

// Owned segments (`segment/owned.rs`) from an arena.
impl Arena {
    /// `size` zeroed bytes aligned to `align`, as an [`OwnedSegment`] (one
    /// bump plus a session-handle clone). The memory belongs to the arena's
    /// session and is freed when it closes — by `close()`, or when its last
    /// handle (the arena's or an owned segment's) is dropped.
    ///
    /// Once an arena has handed out an owned segment, dropping the arena no
    /// longer frees its chunks (the session's close does), and
    /// [`reset`](Arena::reset) moves on to fresh chunks instead of reusing
    /// the old ones (which stay until the session closes). An arena on the
    /// [global](Session::global) session never closes: its owned segments
    /// live for the process.
    ///
    /// # Errors
    ///
    /// As [`SegmentAllocator::allocate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Arena, Error, Session};
    /// let session = Session::shared();
    /// let arena = Arena::new(session.clone())?;
    /// let mut seg = arena.allocate_owned(8, 8)?;
    /// drop(arena); // the chunk stays: the session is open
    /// seg.set(0, 1u64)?;
    /// assert_eq!(seg.get::<u64>(0)?, 1);
    /// session.close()?;
    /// assert_eq!(seg.get::<u64>(0), Err(Error::Closed));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "allocate_value_segment")]
    pub fn allocate_owned(&self, size: usize, align: usize) -> Result<OwnedSegment> {
        let seg = self.allocate(size, align)?;
        // Before the borrow of `self` ends: a drop or reset (which need the
        // arena exclusively) sees the mark.
        self.pin_for_owned();
        Ok(OwnedSegment::from_allocated(seg, self.session().clone()))
    }
}
