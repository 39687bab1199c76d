//! [`MallocAllocator`]: every allocation is its own C `malloc` block, so it
//! can be handed to C code that calls `free`, and a [`MallocBlock`] can be
//! freed or resized one at a time (the memory-regions protocol:
//! `deallocate`, `reallocate`), through that owning handle only. Blocks
//! still allocated when the session closes are freed then.
//!
//! The C calls (`calloc`, `malloc`, `realloc`, `posix_memalign`, `free`)
//! are the unsafe mechanism of this file.

use super::SegmentAllocator;
use super::chunk::carve;
use crate::error::{Error, Result};
use crate::segment::{Primitive, Segment};
use crate::session::Session;
use crate::sync::{Arc, Mutex};
use core::ffi::c_void;
use core::fmt;
use libc::{calloc, free, malloc, posix_memalign, realloc};
use std::collections::HashMap;

/// What `malloc` aligns every block to (glibc and musl on 64-bit: 16).
const MALLOC_ALIGN: usize = 2 * core::mem::size_of::<usize>();

/// A C heap block of `size > 0` bytes aligned to `align`, zeroed if asked;
/// its address (exposed) or `None`.
pub(crate) fn c_alloc(size: usize, align: usize, zeroed: bool) -> Option<usize> {
    debug_assert!(size > 0 && align.is_power_of_two());
    if align <= MALLOC_ALIGN {
        // SAFETY: plain C allocation calls with a non-zero size.
        let p = unsafe {
            if zeroed {
                calloc(1, size)
            } else {
                malloc(size)
            }
        };
        if p.is_null() {
            return None;
        }
        if p.addr() % align == 0 {
            return Some(p.expose_provenance());
        }
        // C only promises alignment for objects that fit the size (Miri
        // gives a 3-byte block 2-byte alignment): fall back below.
        // SAFETY: `p` is the live block just allocated.
        unsafe { free(p) };
    }
    let mut out = core::ptr::null_mut();
    let align = align.max(core::mem::size_of::<*mut c_void>());
    // SAFETY: `out` is a valid place for the result; `align` is a power of
    // two and a multiple of the pointer size, as POSIX requires.
    let rc = unsafe { posix_memalign(&mut out, align, size) };
    if rc != 0 || out.is_null() {
        return None;
    }
    if zeroed {
        // SAFETY: `out` is a fresh block of `size` writable bytes.
        unsafe { core::ptr::write_bytes(out.cast::<u8>(), 0, size) };
    }
    Some(out.expose_provenance())
}

/// Frees a block from [`c_alloc`].
///
/// # Safety
///
/// `addr` must be a live block returned by `c_alloc` (or `c_realloc`) and
/// not be used afterwards.
pub(crate) unsafe fn c_free(addr: usize) {
    let p: *mut c_void = core::ptr::with_exposed_provenance_mut(addr);
    // SAFETY: the caller guarantees `p` is a live C heap block.
    unsafe { free(p) }
}

/// Resizes a block from [`c_alloc`] of `old` bytes aligned to `align` to
/// `new > 0` bytes; bytes past `old` are zeroed. On failure the old block
/// is untouched and `None` is returned.
///
/// # Safety
///
/// `addr` must be a live block of `old` bytes returned by `c_alloc` with
/// the same `align`; on success it must not be used afterwards.
pub(crate) unsafe fn c_realloc(addr: usize, old: usize, new: usize, align: usize) -> Option<usize> {
    let p: *mut c_void = core::ptr::with_exposed_provenance_mut(addr);
    // C's realloc aligns like malloc: for `new >= MALLOC_ALIGN` that is the
    // fundamental alignment (which `align` does not exceed here); smaller
    // blocks move by hand so their alignment is kept.
    let q = if align <= MALLOC_ALIGN && new >= MALLOC_ALIGN {
        // SAFETY: `p` is a live malloc block (caller) and `new > 0`.
        let q = unsafe { realloc(p, new) };
        if q.is_null() {
            return None;
        }
        q
    } else {
        let q: *mut c_void = core::ptr::with_exposed_provenance_mut(c_alloc(new, align, false)?);
        // SAFETY: both blocks are live and distinct; `min(old, new)` bytes
        // are in bounds of both.
        unsafe {
            core::ptr::copy_nonoverlapping(p.cast::<u8>(), q.cast::<u8>(), old.min(new));
            free(p);
        }
        q
    };
    if new > old {
        // SAFETY: `q` has `new` bytes; the tail `old .. new` is in bounds.
        unsafe { core::ptr::write_bytes(q.cast::<u8>().add(old), 0, new - old) };
    }
    Some(q.expose_provenance())
}

#[derive(Debug, Default)]
struct Blocks {
    /// Live blocks: address -> (size, align).
    live: HashMap<usize, (usize, usize)>,
    closed: bool,
}

impl Blocks {
    fn free_all(&mut self) {
        self.closed = true;
        for (a, _) in self.live.drain() {
            // SAFETY: every entry of `live` is a block from `c_alloc` not yet
            // freed (entries are removed when a block is freed or moved).
            unsafe { c_free(a) };
        }
    }
}

/// An allocator of individual C heap blocks tied to a session. Blocks from
/// [`allocate_block`](Self::allocate_block) are [`MallocBlock`]s, owned
/// handles that can be freed ([`deallocate`](Self::deallocate)) or resized
/// ([`reallocate`](Self::reallocate)) one by one; segments from the
/// [`SegmentAllocator`] methods cannot (they are plain views, like every
/// other allocator's). Every block left is freed when the session closes
/// (or the allocator is dropped).
///
/// Only the owning handle can free a block: `deallocate` consumes a
/// `MallocBlock`, and views of it (`slice`, `as_read_only`, `split_at`, a
/// segment from the trait methods) are `Segment`s, which it does not take;
/// a view borrows the block, so the block cannot be freed while one lives.
///
/// Zero-size requests get an empty segment at address `align` (no block).
///
/// # Examples
///
/// ```
/// use memscope::alloc::MallocAllocator;
/// let m = MallocAllocator::new(memscope::Session::shared())?;
/// let mut block = m.allocate_block(8, 8)?;
/// block.set(0, 7u64)?;
/// let block = m.reallocate(block, 64)?;
/// assert_eq!((block.get::<u64>(0)?, block.get::<u64>(56)?), (7, 0));
/// m.deallocate(block)?;
/// assert_eq!(m.live_blocks(), 0);
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// A view is not a block, so it cannot be freed under the original:
///
/// ```compile_fail,E0308
/// use memscope::alloc::MallocAllocator;
/// let m = MallocAllocator::new(memscope::Session::shared())?;
/// let block = m.allocate_block(16, 8)?;
/// m.deallocate(block.slice(0, 16)?)?; // error: expected `MallocBlock`, found `Segment`
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// ```compile_fail,E0505
/// use memscope::alloc::MallocAllocator;
/// let m = MallocAllocator::new(memscope::Session::shared())?;
/// let block = m.allocate_block(16, 8)?;
/// let view = block.as_read_only();
/// m.deallocate(block)?; // error: cannot move out of `block` while borrowed
/// view.get::<u8>(0)?;
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct MallocAllocator {
    session: Session,
    blocks: Arc<Mutex<Blocks>>,
    /// The close action's registration, withdrawn by `drop` (which frees
    /// the blocks itself), so a long-lived session does not keep one action
    /// per dropped allocator.
    key: Option<crate::session::actions::ActionKey>,
}

/// One block of a [`MallocAllocator`], owned: the only handle that
/// [`MallocAllocator::deallocate`] and [`MallocAllocator::reallocate`]
/// accept. It reads like a [`Segment`] (it dereferences to one, and every
/// view of it borrows it); writes go through [`set`](Self::set) or
/// [`segment_mut`](Self::segment_mut). Not `Clone`, and no safe code can
/// make one except the allocator, so a block is freed at most once and
/// never under a live view. Dropped without `deallocate`, the block stays
/// allocated until the session closes or the allocator is dropped
/// ([`into_segment`](Self::into_segment) says so explicitly).
///
/// # Examples
///
/// ```
/// use memscope::alloc::MallocAllocator;
/// let m = MallocAllocator::new(memscope::Session::shared())?;
/// let mut block = m.allocate_block(16, 8)?;
/// block.segment_mut().fill(0xab)?;
/// let (head, _tail) = block.split_at(8)?; // views borrow the block
/// assert_eq!(head.get::<u8>(7)?, 0xab);
/// m.deallocate(block)?;
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct MallocBlock<'a> {
    seg: Segment<'a>,
    align: usize,
    /// The owning allocator's block table (identity only).
    owner: *const Mutex<Blocks>,
}

// SAFETY: a `MallocBlock` is a `Segment` (Send + Sync, see its impls) plus
// an alignment and an identity pointer that is only ever compared, never
// dereferenced.
unsafe impl Send for MallocBlock<'_> {}
// SAFETY: as above: `&MallocBlock` exposes only `&Segment` and plain values.
unsafe impl Sync for MallocBlock<'_> {}

impl<'a> MallocBlock<'a> {
    /// Writes `value` at `offset` (as [`Segment::set`]).
    ///
    /// # Errors
    ///
    /// As [`Segment::set`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = memscope::alloc::MallocAllocator::new(memscope::Session::shared())?;
    /// let mut block = m.allocate_block(4, 4)?;
    /// block.set(0, 42u32)?;
    /// assert_eq!(block.get::<u32>(0)?, 42);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn set<T: Primitive>(&mut self, offset: usize, value: T) -> Result<()> {
        self.seg.set(offset, value)
    }

    /// A writable view of the whole block, borrowing it exclusively (the
    /// block itself can only be reached through `&`, so that nothing can
    /// swap the segment inside a block for another).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = memscope::alloc::MallocAllocator::new(memscope::Session::shared())?;
    /// let mut block = m.allocate_block(8, 8)?;
    /// block.segment_mut().set_cstr(0, "hi")?;
    /// assert_eq!(block.get_string(0)?, "hi");
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn segment_mut(&mut self) -> Segment<'_> {
        self.seg.derive(self.seg.raw, false)
    }

    /// Gives up freeing the block one by one: it becomes a plain segment,
    /// freed when the session closes or the allocator is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = memscope::alloc::MallocAllocator::new(memscope::Session::shared())?;
    /// let seg = m.allocate_block(8, 8)?.into_segment();
    /// assert_eq!((seg.len(), m.live_blocks()), (8, 1));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn into_segment(self) -> Segment<'a> {
        self.seg
    }
}

impl<'a> core::ops::Deref for MallocBlock<'a> {
    type Target = Segment<'a>;

    fn deref(&self) -> &Segment<'a> {
        &self.seg
    }
}

impl fmt::Debug for MallocBlock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MallocBlock")
            .field("address", &self.seg.address())
            .field("len", &self.seg.len())
            .field("align", &self.align)
            .finish()
    }
}

impl MallocAllocator {
    /// An allocator whose blocks belong to `session`.
    ///
    /// # Errors
    ///
    /// [`Error::WrongThread`] for a confined session from another thread
    /// than its owner (the allocator could not register the close action
    /// that frees its blocks); [`Error::Closed`] if the session is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, alloc::{MallocAllocator, SegmentAllocator}};
    /// let m = MallocAllocator::new(memscope::Session::shared())?;
    /// let seg = m.allocate(16, 8)?;
    /// m.session().close()?; // frees the block
    /// assert_eq!(seg.get::<u8>(0), Err(Error::Closed));
    /// assert_eq!(m.allocate(16, 8).unwrap_err(), Error::Closed);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn new(session: Session) -> Result<MallocAllocator> {
        let blocks = Arc::new(Mutex::new(Blocks::default()));
        let b2 = blocks.clone();
        let key = session
            .core()
            .add_close_action_keyed(crate::session::state::Action::Boxed(Box::new(move || {
                b2.lock().free_all()
            })))?;
        Ok(MallocAllocator {
            session,
            blocks,
            key: Some(key),
        })
    }

    /// The session the blocks belong to.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = memscope::Session::shared();
    /// assert_eq!(memscope::alloc::MallocAllocator::new(s.clone())?.session(), &s);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// How many blocks are allocated (a snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{MallocAllocator, SegmentAllocator};
    /// let m = MallocAllocator::new(memscope::Session::shared())?;
    /// let _a = m.allocate(1, 1)?;
    /// assert_eq!(m.live_blocks(), 1);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn live_blocks(&self) -> usize {
        self.blocks.lock().live.len()
    }

    fn alloc(&self, size: usize, align: usize, zeroed: bool) -> Result<Segment<'_>> {
        super::check_layout(size, align)?;
        let mut b = self.blocks.lock();
        if b.closed {
            return Err(Error::Closed);
        }
        if size == 0 {
            // SAFETY: an empty segment at a non-zero address touches nothing.
            return Ok(unsafe { carve(align, 0, &self.session) });
        }
        let a = c_alloc(size, align, zeroed).ok_or(Error::OutOfMemory { size, align })?;
        b.live.insert(a, (size, align));
        // SAFETY: `a` is a fresh, exposed C block of `size` bytes, recorded
        // in `live`; it is freed only by `deallocate`/`reallocate`, which
        // consume its `MallocBlock` (the one owning handle: views of it
        // borrow it, and a segment from the trait methods has none), or by
        // the close action / drop (after which the segment cannot access
        // it: the session is closed, or the segment's borrow of `self` has
        // ended).
        Ok(unsafe { carve(a, size, &self.session) })
    }

    fn block<'a>(&'a self, seg: Segment<'a>, align: usize) -> MallocBlock<'a> {
        MallocBlock {
            seg,
            align,
            owner: Arc::as_ptr(&self.blocks),
        }
    }

    /// A zeroed block of `size` bytes aligned to `align` that can be freed
    /// ([`deallocate`](Self::deallocate)) or resized
    /// ([`reallocate`](Self::reallocate)) on its own.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`], [`Error::OutOfMemory`]; [`Error::Closed`]
    /// after close.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = memscope::alloc::MallocAllocator::new(memscope::Session::shared())?;
    /// let block = m.allocate_block(32, 16)?;
    /// assert_eq!((block.len(), block.address().get() % 16), (32, 0));
    /// assert_eq!(block.get::<u64>(24)?, 0);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn allocate_block(&self, size: usize, align: usize) -> Result<MallocBlock<'_>> {
        let seg = self.alloc(size, align, true)?;
        Ok(self.block(seg, align))
    }

    /// Checks that `block` is one of this allocator's live blocks; returns
    /// its `(size, align)`.
    fn check_mine(&self, b: &Blocks, block: &MallocBlock<'_>) -> Result<(usize, usize)> {
        let foreign = || Error::InvalidArgument {
            reason: format!(
                "block of session {} does not belong to this allocator (session {})",
                block.seg.session().id(),
                self.session.id()
            ),
        };
        if !core::ptr::eq(block.owner, Arc::as_ptr(&self.blocks)) {
            return Err(foreign());
        }
        if b.closed {
            return Err(Error::Closed);
        }
        if block.seg.is_empty() {
            return Ok((0, block.align));
        }
        let a = block.seg.address().get();
        match b.live.get(&a) {
            // Always the case: a block is made only by this allocator, for
            // a block it records, and consumed when it is freed or moved.
            Some(&(size, align)) if size == block.seg.len() => Ok((size, align)),
            _ => Err(Error::InvalidArgument {
                reason: format!("0x{a:x} ({} B) is not a live block", block.seg.len()),
            }),
        }
    }

    /// Frees `block` now (memory-regions `deallocate`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `block` is another allocator's;
    /// [`Error::Closed`] after close (the block is already freed).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = memscope::alloc::MallocAllocator::new(memscope::Session::shared())?;
    /// let block = m.allocate_block(32, 8)?;
    /// m.deallocate(block)?;
    /// assert_eq!(m.live_blocks(), 0);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn deallocate(&self, block: MallocBlock<'_>) -> Result<()> {
        let mut b = self.blocks.lock();
        let (size, _) = self.check_mine(&b, &block)?;
        if size != 0 {
            let a = block.seg.address().get();
            b.live.remove(&a);
            // SAFETY: `a` was a live block (in `live`, now removed), and its
            // one owning handle has been consumed by this call: views of it
            // borrowed that handle, so none is left.
            unsafe { c_free(a) };
        }
        Ok(())
    }

    /// Resizes `block` to `new_size` bytes (C `realloc`): the contents up
    /// to the smaller size are kept, new bytes are zero. On failure the
    /// old block stays allocated (until close).
    ///
    /// # Errors
    ///
    /// As [`deallocate`](Self::deallocate), plus [`Error::OutOfMemory`] and
    /// [`Error::InvalidLayout`] for an overflowing size.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::MallocAllocator;
    /// let m = MallocAllocator::new(memscope::Session::shared())?;
    /// let mut block = m.allocate_block(2, 2)?;
    /// block.set(0, 0x1122u16)?;
    /// let block = m.reallocate(block, 1)?;
    /// assert_eq!(block.len(), 1);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn reallocate<'a>(
        &'a self,
        block: MallocBlock<'_>,
        new_size: usize,
    ) -> Result<MallocBlock<'a>> {
        let mut b = self.blocks.lock();
        let (old, align) = self.check_mine(&b, &block)?;
        super::check_layout(new_size, align)?;
        if old == 0 {
            drop((b, block));
            return self.allocate_block(new_size, align);
        }
        let a = block.seg.address().get();
        if new_size == 0 {
            b.live.remove(&a);
            // SAFETY: `a` is a live block whose one owning handle was
            // consumed (views borrowed it, so none is left).
            unsafe { c_free(a) };
            // SAFETY: an empty segment at a non-zero address touches nothing.
            let seg = unsafe { carve(align, 0, &self.session) };
            return Ok(self.block(seg, align));
        }
        // SAFETY: `a` is a live block of `old` bytes aligned to `align`
        // (from `live`); its one owning handle was consumed by this call.
        let n = unsafe { c_realloc(a, old, new_size, align) }.ok_or(Error::OutOfMemory {
            size: new_size,
            align,
        })?;
        b.live.remove(&a);
        b.live.insert(n, (new_size, align));
        // SAFETY: as in `alloc`: a live, exposed block of `new_size` bytes
        // recorded in `live`, whose one owning handle is returned.
        let seg = unsafe { carve(n, new_size, &self.session) };
        Ok(self.block(seg, align))
    }
}

impl SegmentAllocator for MallocAllocator {
    /// Zeroed too (`calloc`): fresh `malloc` memory is uninitialised, and
    /// safe reads must never see uninitialised bytes.
    fn allocate_uninit(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.alloc(size, align, true)
    }

    fn allocate(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.alloc(size, align, true)
    }
}

impl Drop for MallocAllocator {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            drop(self.session.core().withdraw_close_action(key));
        }
        // No segment borrows the allocator any more.
        self.blocks.lock().free_all();
    }
}

impl fmt::Debug for MallocAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MallocAllocator")
            .field("session", &self.session)
            .field("live_blocks", &self.live_blocks())
            .finish()
    }
}
