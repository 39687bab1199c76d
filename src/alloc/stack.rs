//! The per-thread stack allocator: LIFO frames over one thread-local chunk.
//!
//! [`frame`] opens a frame on the calling thread's stack and runs a closure
//! with it; every allocation made through the [`Frame`] is released, all at
//! once, when the closure returns (or unwinds). Frames nest. Allocating is a
//! plain bump of the thread's stack top (no atomics, no lock); a request
//! that does not fit falls back to a zeroed heap block that the frame frees
//! at its end. The linker marshals temporary arguments here.
//!
//! Memory is zeroed on allocation (`allocate`): stack memory is reused by
//! every frame, and a small constant-size zeroing inlines to a few stores,
//! which is cheaper than clearing a whole frame at its end.
//! `allocate_uninit` skips it: the bytes are initialised, though stale
//! (the chunk starts zeroed and segments only ever write initialised
//! values). Raw handouts may get uninitialised bytes written into them (the
//! `allocator-api2` bridge: a collection's padding, a `MaybeUninit`; the
//! linker's argument buffers): they raise the stack's *uninit mark*, below
//! which bytes may be uninitialised, and
//! an `allocate_uninit` that lands below the mark zeroes up to it first (one
//! memset, then the mark drops; loads of the mark cost one compare).
//!
//! Segments from a frame borrow the `&Frame`, which the closure receives
//! for a lifetime it cannot return (`impl FnOnce(&Frame) -> R`): they cannot
//! escape the frame. Their session is the global session (the frame's
//! lifetime is enforced by the borrow, not by a close).
//!
//! # Examples
//!
//! ```
//! use memscope::alloc::{SegmentAllocator, stack};
//! let sum = stack::frame(|f| {
//!     let mut a = f.allocate_value(40u32)?;
//!     let b = f.allocate_value(2u32)?;
//!     a.set(0, a.get::<u32>(0)? + b.get::<u32>(0)?)?;
//!     a.get::<u32>(0)
//! })?;
//! assert_eq!(sum, 42);
//! # Ok::<(), memscope::Error>(())
//! ```

use super::SegmentAllocator;
use super::chunk::{Chunk, bump_in, carve};
use crate::error::{Error, Result};
use crate::segment::Segment;
use crate::session::Session;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::marker::PhantomData;

/// Bytes of each thread's stack (requests that do not fit go to the heap).
///
/// # Examples
///
/// ```
/// use memscope::alloc::{SegmentAllocator, stack};
/// stack::frame(|f| {
///     let big = f.allocate(stack::STACK_SIZE + 1, 8).unwrap(); // a heap block
///     assert_eq!(big.len(), stack::STACK_SIZE + 1);
/// });
/// ```
#[cfg(not(loom))]
pub const STACK_SIZE: usize = 64 * 1024;
/// Bytes of each thread's stack (requests that do not fit go to the heap).
#[cfg(loom)]
pub const STACK_SIZE: usize = 64;

const UNINIT: u8 = 0;
const READY: u8 = 1;
const DEAD: u8 = 2;

/// The hot state of a thread's stack: plain `Cell`s in a thread-local with
/// no destructor, so reaching it costs one thread-local address and no
/// "is it initialised / destroyed" check.
struct Hot {
    /// Next free address and the chunk's end (`1, 0`: nothing fits).
    top: Cell<usize>,
    end: Cell<usize>,
    /// The uninit mark: every byte of the chunk at or above it is
    /// initialised; below it, bytes the bridge handed out may not be
    /// (0: the whole chunk is initialised). Never above `end`.
    uninit: Cell<usize>,
    /// Frames open on this thread.
    depth: Cell<usize>,
    /// Heap blocks held by open frames (mirrors `Cold::overflow.len()`).
    overflow: Cell<usize>,
    /// The session segments get (points into `Cold`), or null.
    session: Cell<*const Session>,
    state: Cell<u8>,
}

impl Hot {
    const fn new() -> Hot {
        Hot {
            top: Cell::new(1),
            end: Cell::new(0),
            uninit: Cell::new(0),
            depth: Cell::new(0),
            overflow: Cell::new(0),
            session: Cell::new(core::ptr::null()),
            state: Cell::new(UNINIT),
        }
    }
}

/// What the thread's stack owns: freed (and the hot state reset) when the
/// thread exits.
struct Cold {
    chunk: Option<Chunk>,
    /// Heap blocks of frames that outgrew the stack, innermost last.
    overflow: Vec<Chunk>,
    /// Boxed so that its address (kept in `Hot::session`) is stable.
    session: Option<Box<Session>>,
    /// The hot state to reset on drop.
    hot: *const Hot,
}

impl Cold {
    const fn new() -> Cold {
        Cold {
            chunk: None,
            overflow: Vec::new(),
            session: None,
            hot: core::ptr::null(),
        }
    }
}

impl Drop for Cold {
    fn drop(&mut self) {
        // Under loom every thread-local is a heap object dropped at thread
        // end, `Hot` possibly first: leave it alone there (the twin path
        // resets it by hand).
        if !self.hot.is_null() && !cfg!(loom) {
            // SAFETY: `hot` is this thread's hot state, a thread-local
            // without destructor, so still valid while this one runs.
            let hot = unsafe { &*self.hot };
            hot.state.set(DEAD);
            hot.top.set(1);
            hot.end.set(0);
            hot.uninit.set(0);
            hot.session.set(core::ptr::null());
        }
    }
}

#[cfg(not(loom))]
crate::sync::thread_local! {
    static HOT: Hot = const { Hot::new() };
    static COLD: RefCell<Cold> = const { RefCell::new(Cold::new()) };
}
#[cfg(loom)]
crate::sync::thread_local! {
    static HOT: Hot = Hot::new();
    static COLD: RefCell<Cold> = RefCell::new(Cold::new());
}
// The broken twin `StackNotPerThread`: `std` thread-locals, which all loom
// threads of a model share (LOOM.md), so two threads' frames interleave.
#[cfg(loom)]
std::thread_local! {
    static HOT_STD: Hot = const { Hot::new() };
    static COLD_STD: RefCell<Cold> = const { RefCell::new(Cold::new()) };
}

#[cfg(loom)]
#[inline(always)]
fn twin() -> bool {
    super::twins::on(super::twins::Twin::StackNotPerThread)
}

/// Runs `f` on this thread's cold state; `None` once it is destroyed.
fn with_cold<R>(f: impl FnOnce(&mut Cold) -> R) -> Option<R> {
    #[cfg(loom)]
    if twin() {
        return COLD_STD.try_with(|c| f(&mut c.borrow_mut())).ok();
    }
    COLD.try_with(|c| f(&mut c.borrow_mut())).ok()
}

#[cold]
#[inline(never)]
fn init(hot: &Hot) {
    if hot.state.get() != UNINIT || hot.depth.get() != 0 {
        // Destroyed (thread exit), or a frame is open: an open frame's mark
        // must stay a cursor of the same chunk.
        return;
    }
    let done = with_cold(|c| {
        if c.session.is_none() {
            c.session = Some(Box::new(Session::global()));
        }
        if c.chunk.is_none() {
            c.chunk = Chunk::new(STACK_SIZE, 16);
        }
        c.hot = hot;
        let session: *const Session = c.session.as_deref().map_or(core::ptr::null(), |s| s);
        hot.session.set(session);
        if let Some(ch) = &c.chunk {
            hot.top.set(ch.addr());
            hot.end.set(ch.end());
            // A chunk (re)installed here is this thread's stack chunk from
            // now on; a mark of an earlier chunk must not survive it.
            hot.uninit.set(0);
            hot.state.set(READY);
        }
    });
    if done.is_none() {
        hot.state.set(DEAD);
    }
}

/// Opens a frame on this thread's stack, runs `f` with it, and releases
/// everything the frame allocated when `f` returns or unwinds.
///
/// During thread exit (after this thread's stack was destroyed) the frame
/// still runs `f`, but its allocations fail with [`Error::Closed`].
///
/// # Examples
///
/// ```
/// use memscope::alloc::{SegmentAllocator, stack};
/// let first = stack::frame(|f| f.allocate(16, 8).map(|s| s.address()))?;
/// let again = stack::frame(|f| f.allocate(16, 8).map(|s| s.address()))?;
/// assert_eq!(first, again); // LIFO: the second frame reuses the memory
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// A segment cannot leave its frame:
///
/// ```compile_fail
/// use memscope::alloc::{SegmentAllocator, stack};
/// let escaped = stack::frame(|f| f.allocate(8, 8).unwrap()); // error: borrowed data escapes
/// ```
#[inline]
pub fn frame<R>(f: impl FnOnce(&Frame) -> R) -> R {
    #[cfg(loom)]
    if twin() {
        return HOT_STD.with(|h| {
            /// Do not keep loom objects (the session) past this model run,
            /// even when a model thread panics.
            struct Reset<'a>(&'a Hot);
            impl Drop for Reset<'_> {
                fn drop(&mut self) {
                    if self.0.depth.get() == 0 || std::thread::panicking() {
                        let _ = with_cold(|c| *c = Cold::new());
                        self.0.state.set(UNINIT);
                        self.0.depth.set(0);
                        self.0.overflow.set(0);
                        self.0.top.set(1);
                        self.0.end.set(0);
                        self.0.uninit.set(0);
                        self.0.session.set(core::ptr::null());
                    }
                }
            }
            let _reset = Reset(h);
            run(h, f)
        });
    }
    // Only the address goes through `with` (a tiny closure that inlines);
    // the user's closure runs outside it.
    let hot: *const Hot = HOT.with(|h| h as *const Hot);
    // SAFETY: `HOT` is this thread's hot state; it lives as long as the
    // thread (a destructor-free thread-local; under loom, until the model
    // thread ends), which outlives this call.
    run(unsafe { &*hot }, f)
}

#[inline(always)]
fn run<R>(hot: &Hot, f: impl FnOnce(&Frame) -> R) -> R {
    if hot.state.get() != READY {
        init(hot);
    }
    let depth = hot.depth.get() + 1;
    hot.depth.set(depth);
    let frame = Frame {
        hot,
        session: hot.session.get(),
        mark: hot.top.get(),
        overflow_mark: hot.overflow.get(),
        depth,
        _not_send: PhantomData,
    };
    f(&frame)
}

/// A frame of the per-thread stack (see [`frame`]). Allocations are valid
/// until the frame ends; only the innermost open frame of a thread may
/// allocate (an outer one gets [`Error::InvalidArgument`]), which keeps
/// release strictly LIFO. Not `Send`/`Sync`.
///
/// # Examples
///
/// ```
/// use memscope::{Error, alloc::{SegmentAllocator, stack}};
/// stack::frame(|outer| {
///     let a = outer.allocate(8, 8)?;
///     stack::frame(|inner| {
///         assert!(matches!(outer.allocate(8, 8), Err(Error::InvalidArgument { .. })));
///         let b = inner.allocate(8, 8)?;
///         assert_ne!(a.address(), b.address());
///         Ok::<(), Error>(())
///     })
/// })?;
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct Frame {
    hot: *const Hot,
    /// The stack's session, or null (thread exit).
    session: *const Session,
    mark: usize,
    overflow_mark: usize,
    depth: usize,
    _not_send: PhantomData<*const ()>,
}

impl Frame {
    #[inline(always)]
    fn hot(&self) -> &Hot {
        // SAFETY: `hot` is this thread's hot stack state, a thread-local
        // without destructor (valid for the whole thread); the Frame is
        // !Send and lives inside the `with` call that produced the pointer.
        unsafe { &*self.hot }
    }

    /// Bumps for raw use (the `allocator-api2` bridge, the linker's
    /// argument buffers): the block may end up holding uninitialised bytes,
    /// so the uninit mark rises past it. Returns the start address.
    #[inline(always)]
    pub(crate) fn bump(&self, size: usize, align: usize) -> Result<usize> {
        self.bump_m::<RAW>(size, align)
    }

    /// Bumps the thread's stack top; returns the start address. `M`: what
    /// the bytes are for (`ZEROED`; `UNINIT_BYTES`: initialised bytes, zeroed
    /// here if they lie below the uninit mark; `RAW`: raises the mark).
    #[inline(always)]
    fn bump_m<const M: u8>(&self, size: usize, align: usize) -> Result<usize> {
        if !(align.is_power_of_two() && size <= isize::MAX as usize - (align - 1)) {
            return Err(super::arena::layout_error(size, align));
        }
        let h = self.hot();
        if h.depth.get() == self.depth
            && let Some((start, new)) = bump_in(h.top.get(), h.end.get(), size, align)
        {
            h.top.set(new);
            if M == UNINIT_BYTES && start < h.uninit.get() {
                scrub(h, start);
            }
            if M == RAW && new > h.uninit.get() {
                h.uninit.set(new);
            }
            return Ok(start);
        }
        // Heap blocks are fresh zeroed chunks, freed when the frame ends and
        // never reused: nothing to mark or scrub.
        self.bump_slow(size, align)
    }

    #[cold]
    #[inline(never)]
    fn bump_slow(&self, size: usize, align: usize) -> Result<usize> {
        let h = self.hot();
        if h.depth.get() != self.depth {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "stack frame {} is not the innermost ({} frames are open)",
                    self.depth,
                    h.depth.get()
                ),
            });
        }
        if self.session.is_null() {
            return Err(Error::Closed);
        }
        if size == 0 {
            return Ok(align);
        }
        let c = Chunk::new(size, align).ok_or(Error::OutOfMemory { size, align })?;
        let a = c.addr();
        let n = with_cold(|cold| {
            cold.overflow.push(c);
            cold.overflow.len()
        })
        .ok_or(Error::Closed)?;
        h.overflow.set(n);
        Ok(a)
    }

    /// Bytes of the thread's stack this frame (and frames inside it) use.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::alloc::{SegmentAllocator, stack};
    /// stack::frame(|f| {
    ///     f.allocate(24, 8).unwrap();
    ///     assert_eq!(f.used(), 24);
    /// });
    /// ```
    pub fn used(&self) -> usize {
        self.hot().top.get().saturating_sub(self.mark)
    }

    #[inline(always)]
    fn session(&self) -> &Session {
        debug_assert!(!self.session.is_null(), "bump succeeded without a session");
        // SAFETY: non-null (a successful bump implies READY, which sets it),
        // and it points into this thread's `Cold` state (boxed), which is
        // only dropped at thread exit, never while a frame is open.
        unsafe { &*self.session }
    }
}

impl SegmentAllocator for Frame {
    /// Stale bytes, but never uninitialised ones (see the module docs).
    #[inline(always)]
    fn allocate_uninit(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let a = self.bump_m::<UNINIT_BYTES>(size, align)?;
        // SAFETY: `a .. a + size` is a range of this thread's stack chunk
        // above every live allocation (only the innermost frame bumps, and
        // frames release LIFO), or a heap block of this frame, or empty; it
        // stays allocated until this frame ends, and the segment borrows the
        // frame.
        Ok(unsafe { carve(a, size, self.session()) })
    }

    /// Zeroes the allocation (a few stores for small constant sizes).
    #[inline(always)]
    fn allocate(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let a = self.bump_m::<ZEROED>(size, align)?;
        if size != 0 {
            let p: *mut u8 = core::ptr::with_exposed_provenance_mut(a);
            // SAFETY: `a .. a + size` was just bumped past in this thread's
            // stack chunk (or is a fresh heap block): writable, and no live
            // segment covers it.
            unsafe { core::ptr::write_bytes(p, 0, size) };
        }
        // SAFETY: as in `allocate_uninit`.
        Ok(unsafe { carve(a, size, self.session()) })
    }
}

impl Drop for Frame {
    #[inline(always)]
    fn drop(&mut self) {
        let h = self.hot();
        if h.depth.get() != self.depth {
            // Impossible with a per-thread stack (frames are closures, so
            // they end LIFO); the loom twin that shares one stack between
            // threads gets here. Leave the stack alone, and report it unless
            // already unwinding (a panic in a destructor then would abort).
            h.depth.set(h.depth.get().saturating_sub(1));
            debug_assert!(
                std::thread::panicking(),
                "stack frame {} ended while {} frames were open",
                self.depth,
                h.depth.get() + 1
            );
            return;
        }
        h.depth.set(self.depth - 1);
        h.top.set(self.mark);
        if h.overflow.get() > self.overflow_mark {
            free_overflow(h, self.overflow_mark);
        }
    }
}

/// What a bump is for (`Frame::bump_m`).
const ZEROED: u8 = 0;
const UNINIT_BYTES: u8 = 1;
const RAW: u8 = 2;

/// An `allocate_uninit` at `start` (just bumped past in the stack chunk)
/// lies below the uninit mark: zeroes `start .. mark` in one memset, so
/// every byte from `start` on is initialised, and drops the mark to `start`.
#[cold]
#[inline(never)]
fn scrub(h: &Hot, start: usize) {
    let mark = h.uninit.get();
    // SAFETY: `start .. mark` lies in this thread's stack chunk (`start` was
    // just bumped in it; the mark is an end of a bridge block of the same
    // chunk, reset to 0 whenever a chunk is installed) at or above the stack
    // top before this bump, so no live segment or collection covers it
    // (frames release LIFO and their borrows end with them).
    unsafe { super::chunk::zero(start, mark - start) };
    h.uninit.set(start);
}

/// Frees the heap blocks of frames that ended (cold: only frames that
/// outgrew the stack get here).
#[cold]
#[inline(never)]
fn free_overflow(h: &Hot, mark: usize) {
    let _ = with_cold(|c| c.overflow.truncate(mark));
    h.overflow.set(mark);
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("depth", &self.depth)
            .field("used", &self.used())
            .finish()
    }
}
