//! The per-thread stack allocator: LIFO frames over one thread-local chunk.
//!
//! [`frame`] opens a frame on the calling thread's stack and runs a closure
//! with it; every allocation made through the [`Frame`] is released, all at
//! once, when the closure returns (or unwinds). Frames nest. Allocating is a
//! plain bump of the thread's stack top (no atomics, no lock). A frame that
//! outgrows the current block moves on to the thread's next *overflow
//! block* (each at least twice the one before, made on first need and kept
//! for later frames, so a thread whose frames keep overflowing settles at
//! no system allocation per frame; blocks over [`KEEP_MAX`] are freed when
//! their frame ends, and [`trim`] frees every kept one). The linker
//! marshals temporary arguments here. Each allocation takes its size
//! rounded up to 8 bytes of the stack (its segment has the size asked
//! for), so the stack top stays 8-aligned and a bump of alignment up to 8
//! is a subtract, a compare and a store.
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

/// Bytes of each thread's first stack block (frames that outgrow it go on
/// in bigger overflow blocks).
///
/// # Examples
///
/// ```
/// use memscope::alloc::{SegmentAllocator, stack};
/// stack::frame(|f| {
///     let big = f.allocate(stack::STACK_SIZE + 1, 8).unwrap(); // an overflow block
///     assert_eq!(big.len(), stack::STACK_SIZE + 1);
/// });
/// ```
#[cfg(not(loom))]
pub const STACK_SIZE: usize = 64 * 1024;
/// Bytes of each thread's first stack block.
#[cfg(loom)]
pub const STACK_SIZE: usize = 64;

/// Overflow blocks bigger than this are freed when the frame that made
/// them ends instead of being kept for the next frame (a one-off huge
/// request does not pin its memory to the thread).
///
/// # Examples
///
/// ```
/// use memscope::alloc::{SegmentAllocator, stack};
/// stack::frame(|f| {
///     let s = f.allocate(stack::KEEP_MAX + 1, 8).unwrap(); // freed at frame end
///     assert_eq!(s.len(), stack::KEEP_MAX + 1);
/// });
/// ```
pub const KEEP_MAX: usize = 4 << 20;

/// The depth a destroyed stack jumps to (see `Drop for Cold`).
const DEAD_DEPTH: u32 = 1 << 31;

const UNINIT: u8 = 0;
const READY: u8 = 1;
const DEAD: u8 = 2;

/// The hot state of a thread's stack: plain `Cell`s in a thread-local with
/// no destructor, so reaching it costs one thread-local address and no
/// "is it initialised / destroyed" check.
struct Hot {
    /// Next free address and the block's end (`0, 0`: nothing fits).
    /// `top <= end` always, and `top` is a multiple of 8 (blocks are
    /// 16-aligned and every bump rounds its size up to 8), so a bump of
    /// alignment up to 8 needs no rounding and no overflow check.
    top: Cell<usize>,
    end: Cell<usize>,
    /// The uninit mark: every byte of the chunk at or above it is
    /// initialised; below it, bytes the bridge handed out may not be
    /// (0: the whole chunk is initialised). Never above `end`.
    uninit: Cell<usize>,
    /// Frames open on this thread.
    depth: Cell<u32>,
    /// The index in `Cold::blocks` of the block `top`/`end` bump in (0:
    /// the first block); it only grows while a frame is open, and a frame's
    /// end restores the index it started in.
    block: Cell<u32>,
    /// The session segments get (points into `Cold`), or null.
    session: Cell<*const Session>,
    state: Cell<u8>,
}

impl Hot {
    const fn new() -> Hot {
        Hot {
            top: Cell::new(0),
            end: Cell::new(0),
            uninit: Cell::new(0),
            depth: Cell::new(0),
            block: Cell::new(0),
            session: Cell::new(core::ptr::null()),
            state: Cell::new(UNINIT),
        }
    }
}

/// One block of the thread's stack.
struct Block {
    chunk: Chunk,
    /// The block's uninit mark while it is not the current block (the
    /// current block's lives in `Hot::uninit`).
    uninit: usize,
}

/// What the thread's stack owns: freed (and the hot state reset) when the
/// thread exits.
struct Cold {
    /// The first block (`STACK_SIZE`), then the overflow blocks, each at
    /// least twice the size of the one before. Blocks past `Hot::block`
    /// hold no live allocation (frames move forward only and end LIFO).
    blocks: Vec<Block>,
    /// Boxed so that its address (kept in `Hot::session`) is stable.
    session: Option<Box<Session>>,
    /// The hot state to reset on drop.
    hot: *const Hot,
}

impl Cold {
    const fn new() -> Cold {
        Cold {
            blocks: Vec::new(),
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
            hot.top.set(0);
            hot.end.set(0);
            hot.uninit.set(0);
            hot.session.set(core::ptr::null());
            // Frames still open (if any) no longer match the depth, so
            // their ends leave `top`/`end` at `0, 0` (`top <= end`); frames
            // opened from now on nest above the poison and match.
            hot.depth.set(DEAD_DEPTH);
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
        if c.blocks.is_empty()
            && let Some(chunk) = Chunk::new(STACK_SIZE, 16)
        {
            c.blocks.push(Block { chunk, uninit: 0 });
        }
        c.hot = hot;
        let session: *const Session = c.session.as_deref().map_or(core::ptr::null(), |s| s);
        hot.session.set(session);
        if let Some(b) = c.blocks.first() {
            hot.top.set(b.chunk.addr());
            hot.end.set(b.chunk.end());
            hot.block.set(0);
            // The mark of the block installed here, never one of another.
            hot.uninit.set(b.uninit);
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
                        let _ = with_cold(|c| {
                            let old = core::mem::replace(c, Cold::new());
                            // Loom: a failing model (a race the shadow of
                            // stack memory caught) unwinds here, where the
                            // old state's loom objects (its session
                            // handle) must not be touched: leaked.
                            #[cfg(loom)]
                            if std::thread::panicking() {
                                core::mem::forget(old);
                                return;
                            }
                            drop(old);
                        });
                        self.0.state.set(UNINIT);
                        self.0.depth.set(0);
                        self.0.block.set(0);
                        self.0.top.set(0);
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
    run(hot_state(), f)
}

/// This thread's hot state. Only the address goes through `with` (a tiny
/// closure that inlines to a thread-pointer offset).
#[inline(always)]
fn hot_state() -> &'static Hot {
    #[cfg(loom)]
    if twin() {
        let hot: *const Hot = HOT_STD.with(|h| h as *const Hot);
        // SAFETY: as below, for the std thread-local of the twin.
        return unsafe { &*hot };
    }
    let hot: *const Hot = HOT.with(|h| h as *const Hot);
    // SAFETY: `HOT` is this thread's hot state, a destructor-free
    // thread-local (under loom, one that lives until the model thread
    // ends). The `'static` is a lie across threads only: every caller
    // (`frame`, a `Frame`'s methods, `trim`) uses it on this thread within
    // a call, and `Frame` is `!Send`.
    unsafe { &*hot }
}

#[inline(always)]
fn run<R>(hot: &Hot, f: impl FnOnce(&Frame) -> R) -> R {
    if hot.state.get() != READY {
        init(hot);
    }
    let depth = hot.depth.get() + 1;
    hot.depth.set(depth);
    // Two words: the frame lives in memory (its drop runs on unwind), so
    // each word is a store at every frame entry.
    let frame = Frame {
        mark: hot.top.get(),
        depth,
        block: hot.block.get(),
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
    /// The stack top when the frame began (in block `block`).
    mark: usize,
    /// This frame's nesting depth (1: outermost).
    depth: u32,
    /// The block the frame began in.
    block: u32,
    _not_send: PhantomData<*const ()>,
}

impl Frame {
    /// This thread's hot state (the frame is `!Send`, so it is the state
    /// of the thread that opened the frame).
    #[inline(always)]
    fn hot(&self) -> &Hot {
        hot_state()
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
            && let Some((start, new)) = fit(h.top.get(), h.end.get(), size, align)
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
        self.bump_slow(size, align, M)
    }

    /// Not the innermost frame, thread exit, or the current block is full:
    /// moves on to the next overflow block (reusing it if the request fits,
    /// else making a bigger one) and bumps there with `mode`'s marking.
    #[cold]
    #[inline(never)]
    fn bump_slow(&self, size: usize, align: usize, mode: u8) -> Result<usize> {
        let h = self.hot();
        if h.state.get() != READY {
            return Err(Error::Closed);
        }
        if h.depth.get() != self.depth {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "stack frame {} is not the innermost ({} frames are open)",
                    self.depth,
                    h.depth.get()
                ),
            });
        }
        if h.session.get().is_null() || h.state.get() != READY {
            return Err(Error::Closed);
        }
        if size == 0 {
            return Ok(align);
        }
        with_cold(|c| {
            let i = h.block.get() as usize;
            let next = i + 1;
            let fits = |b: &Block| fit(b.chunk.addr(), b.chunk.end(), size, align).is_some();
            if c.blocks.get(next).is_none_or(|b| !fits(b)) {
                // Blocks from `next` on are free: replace them by one that
                // fits, at least twice the current one.
                let cur = c.blocks.get(i).map_or(STACK_SIZE, |b| b.chunk.len());
                // Room for the alignment, the rounding to 8, and the
                // strict end of `fit`.
                let len = size
                    .checked_add(align + 4095 + 8)
                    .map(|n| n & !4095)
                    .ok_or(Error::OutOfMemory { size, align })?
                    .max(cur.saturating_mul(2));
                c.blocks.truncate(next);
                let chunk = Chunk::new(len, align).ok_or(Error::OutOfMemory { size, align })?;
                c.blocks.push(Block { chunk, uninit: 0 });
            }
            if let Some(b) = c.blocks.get_mut(i) {
                b.uninit = h.uninit.get();
            }
            let b = &c.blocks[next];
            h.block.set(next as u32);
            h.top.set(b.chunk.addr());
            h.end.set(b.chunk.end());
            h.uninit.set(b.uninit);
            Ok::<(), Error>(())
        })
        .ok_or(Error::Closed)??;
        let Some((start, new)) = fit(h.top.get(), h.end.get(), size, align) else {
            unreachable!("a fresh or fitting overflow block refused the bump");
        };
        h.top.set(new);
        if mode == UNINIT_BYTES && start < h.uninit.get() {
            scrub(h, start);
        }
        if mode == RAW && new > h.uninit.get() {
            h.uninit.set(new);
        }
        Ok(start)
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
    ///
    /// A frame that moved on to an overflow block also counts the tail of
    /// each block it left and every block it filled.
    pub fn used(&self) -> usize {
        let h = self.hot();
        if h.block.get() == self.block {
            return h.top.get().saturating_sub(self.mark);
        }
        with_cold(|c| {
            let (from, to) = (self.block as usize, h.block.get() as usize);
            let mut n = 0usize;
            for (i, b) in c.blocks.iter().enumerate().take(to + 1).skip(from) {
                let lo = if i == from { self.mark } else { b.chunk.addr() };
                let hi = if i == to { h.top.get() } else { b.chunk.end() };
                n = n.saturating_add(hi.saturating_sub(lo));
            }
            n
        })
        .unwrap_or(0)
    }

    #[inline(always)]
    fn session(&self) -> &Session {
        let s = self.hot().session.get();
        debug_assert!(!s.is_null(), "bump succeeded without a session");
        // SAFETY: non-null (a successful bump implies READY, which sets it),
        // and it points into this thread's `Cold` state (boxed), which is
        // only dropped at thread exit, never while a frame is open.
        unsafe { &*s }
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
        // stays allocated until this frame ends (an overflow block is only
        // freed or replaced once the frame that bumped in it ended), and the
        // segment borrows the frame.
        Ok(unsafe { carve(a, size, self.session()) })
    }

    /// Zeroes the allocation (a few stores for small constant sizes).
    #[inline(always)]
    fn allocate(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let a = self.bump_m::<ZEROED>(size, align)?;
        if size != 0 {
            // SAFETY: `a .. a + size` was just bumped past in this thread's
            // stack (its current block, a chunk): writable, and no live
            // segment covers it. (`zero` also touches the chunk's loom
            // cells, so a model sees two threads' frames writing the same
            // bytes.)
            unsafe { super::chunk::zero(a, size) };
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
            mismatched_end(h, self.depth);
            return;
        }
        h.depth.set(self.depth - 1);
        h.top.set(self.mark);
        if h.block.get() != self.block {
            back_to_block(h, self.block);
        }
    }
}

/// One bump of the stack: where `size` bytes aligned to `align` start at
/// `top` (8-aligned, `<= end`) and the top after them (`size` rounded up to
/// 8, so tops stay 8-aligned), if that top is *below* `end` (strictly: the
/// `0, 0` of a destroyed stack then refuses even an empty request). The
/// caller has checked the layout (`size <= isize::MAX - (align - 1)`).
#[inline(always)]
fn fit(top: usize, end: usize, size: usize, align: usize) -> Option<(usize, usize)> {
    debug_assert!(
        top <= end && top.is_multiple_of(8),
        "stack top {top:#x} end {end:#x}"
    );
    let n = (size + 7) & !7;
    if align <= 8 {
        // `top` is aligned already, and `end - top` cannot wrap.
        if n < end.wrapping_sub(top) {
            return Some((top, top + n));
        }
        return None;
    }
    match bump_in(top, end, n, align) {
        Some((start, new)) if new < end => Some((start, new)),
        _ => None,
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

/// A frame ended whose depth is not the stack's: it was open when thread
/// exit destroyed the stack (leave `top`/`end` at `0, 0`), or it is the
/// loom twin that shares one stack between threads (impossible with a
/// per-thread stack: frames are closures, so they end LIFO). Leave the
/// stack alone, and report the twin's case unless already unwinding (a
/// panic in a destructor then would abort).
#[cold]
#[inline(never)]
fn mismatched_end(h: &Hot, depth: u32) {
    if h.state.get() == DEAD {
        return;
    }
    h.depth.set(h.depth.get().saturating_sub(1));
    debug_assert!(
        std::thread::panicking(),
        "stack frame {} ended while {} frames were open",
        depth,
        h.depth.get() + 1
    );
}

/// A frame that moved on to overflow blocks ended: makes `block` (where
/// it began, and where `top`, already restored, lies) current again, and
/// frees the blocks past it that are bigger than [`KEEP_MAX`]; the others
/// are kept for the next frame that overflows.
#[cold]
#[inline(never)]
fn back_to_block(h: &Hot, block: u32) {
    let ok = with_cold(|c| {
        let i = block as usize;
        if let Some(b) = c.blocks.get_mut(h.block.get() as usize) {
            b.uninit = h.uninit.get();
        }
        let b = c.blocks.get(i)?;
        h.block.set(block);
        h.end.set(b.chunk.end());
        h.uninit.set(b.uninit);
        // Sizes grow along the list: the first one over the limit and
        // everything after it go.
        if let Some(k) = c.blocks[i + 1..]
            .iter()
            .position(|b| b.chunk.len() > KEEP_MAX)
        {
            c.blocks.truncate(i + 1 + k);
        }
        Some(())
    });
    if !matches!(ok, Some(Some(()))) {
        // Thread exit destroyed the blocks: nothing fits any more.
        h.top.set(0);
        h.end.set(0);
        h.uninit.set(0);
    }
}

/// Frees this thread's kept overflow blocks (the first block stays). Does
/// nothing while a frame is open on this thread.
///
/// Returns the bytes freed.
///
/// # Examples
///
/// ```
/// use memscope::alloc::{SegmentAllocator, stack};
/// stack::frame(|f| f.allocate(stack::STACK_SIZE * 2, 8).map(|_| ()))?;
/// assert!(stack::trim() >= stack::STACK_SIZE * 2); // the kept block
/// assert_eq!(stack::trim(), 0);
/// # Ok::<(), memscope::Error>(())
/// ```
pub fn trim() -> usize {
    let h = hot_state();
    if h.depth.get() != 0 {
        return 0;
    }
    with_cold(|c| {
        let freed = c.blocks.iter().skip(1).map(|b| b.chunk.len()).sum();
        c.blocks.truncate(1);
        freed
    })
    .unwrap_or(0)
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("depth", &self.depth)
            .field("used", &self.used())
            .finish()
    }
}
