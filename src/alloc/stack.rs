//! The per-thread stack allocator: LIFO frames over one thread-local chunk.
//!
//! [`frame`] opens a frame on the calling thread's stack and runs a closure
//! with it; every allocation made through the [`Frame`] is released, all at
//! once, when the closure returns (or unwinds). Frames nest. Allocating is a
//! plain bump of the thread's stack top (no atomics, no lock); a request
//! that does not fit falls back to a zeroed heap block that the frame frees
//! at its end. The linker marshals temporary arguments here.
//!
//! Memory is zeroed: the part of the stack above the top is kept all-zero
//! (a frame's end clears what the frame used, in one `memset`), so a zeroed
//! allocation costs no per-allocation `memset`.
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
use super::chunk::{Chunk, align_up, carve};
use crate::error::{Error, Result};
use crate::segment::Segment;
use crate::session::Session;
use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;

/// Bytes of each thread's stack (requests that do not fit go to the heap).
#[cfg(not(loom))]
pub const STACK_SIZE: usize = 64 * 1024;
/// Bytes of each thread's stack (requests that do not fit go to the heap).
#[cfg(loom)]
pub const STACK_SIZE: usize = 64;

struct Stack {
    chunk: Option<Chunk>,
    /// Next free address, and the end of the chunk (`1, 0` before the chunk
    /// exists: nothing fits).
    top: usize,
    end: usize,
    /// Frames open on this thread.
    depth: usize,
    /// Heap blocks of frames that outgrew the stack, innermost last.
    overflow: Vec<Chunk>,
    session: Option<Session>,
}

impl Stack {
    const fn new() -> Stack {
        Stack {
            chunk: None,
            top: 1,
            end: 0,
            depth: 0,
            overflow: Vec::new(),
            session: None,
        }
    }

    #[cold]
    #[inline(never)]
    fn init(&mut self) {
        if self.session.is_none() {
            self.session = Some(Session::global());
        }
        if self.chunk.is_none() {
            if let Some(c) = Chunk::new(STACK_SIZE, 16) {
                self.top = c.addr();
                self.end = c.end();
                self.chunk = Some(c);
            }
        }
    }
}

/// The thread's stack; `UnsafeCell` because frames reach it through a raw
/// pointer while user code (which may open nested frames) runs.
struct StackCell(UnsafeCell<Stack>);

#[cfg(not(loom))]
crate::sync::thread_local! {
    static STACK: StackCell = const { StackCell(UnsafeCell::new(Stack::new())) };
}
#[cfg(loom)]
crate::sync::thread_local! {
    static STACK: StackCell = StackCell(UnsafeCell::new(Stack::new()));
}
// The broken twin `StackNotPerThread`: a std thread-local, which all loom
// threads of a model share (LOOM.md), so two threads' frames interleave.
#[cfg(loom)]
std::thread_local! {
    static STACK_STD: StackCell = StackCell(UnsafeCell::new(Stack::new()));
}

/// Opens a frame on this thread's stack, runs `f` with it, and releases
/// everything the frame allocated when `f` returns or unwinds.
///
/// # Panics
///
/// Only if called while this thread's thread-locals are being destroyed.
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
#[inline]
pub fn frame<R>(f: impl FnOnce(&Frame) -> R) -> R {
    #[cfg(loom)]
    if crate::session::state::twin_on("StackNotPerThread") {
        return STACK_STD.with(|s| {
            /// Do not keep loom objects (the session) past this model run,
            /// even when a model thread panics.
            struct Reset<'a>(&'a StackCell);
            impl Drop for Reset<'_> {
                fn drop(&mut self) {
                    let st = self.0.0.get();
                    // SAFETY: only done when no frame is open on this stack
                    // or the thread is unwinding out of the model run.
                    unsafe {
                        if (*st).depth == 0 || std::thread::panicking() {
                            *st = Stack::new();
                        }
                    }
                }
            }
            let _reset = Reset(s);
            run(s, f)
        });
    }
    STACK.with(|s| run(s, f))
}

#[inline(always)]
fn run<R>(cell: &StackCell, f: impl FnOnce(&Frame) -> R) -> R {
    let st = cell.0.get();
    // SAFETY: `st` points into this thread's thread-local, alive for the
    // whole call; no other reference to the Stack exists right now (frames
    // only hold the raw pointer and make short-lived `&mut`s that never
    // span a call into user code).
    let frame = unsafe {
        let s = &mut *st;
        if s.session.is_none() || s.chunk.is_none() {
            s.init();
        }
        s.depth += 1;
        Frame {
            st,
            mark: s.top,
            overflow_mark: s.overflow.len(),
            depth: s.depth,
            _not_send: PhantomData,
        }
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
    st: *mut Stack,
    mark: usize,
    overflow_mark: usize,
    depth: usize,
    _not_send: PhantomData<*const ()>,
}

impl Frame {
    /// Bumps the thread's stack top; returns the start address.
    #[inline(always)]
    pub(crate) fn bump(&self, size: usize, align: usize) -> Result<usize> {
        if !(align.is_power_of_two() && size <= isize::MAX as usize - (align - 1)) {
            return Err(super::arena::layout_error(size, align));
        }
        // SAFETY: `st` is this thread's stack (the Frame is !Send and lives
        // inside the `with` call that produced the pointer); the `&mut` ends
        // before this function returns and no user code runs meanwhile.
        let s = unsafe { &mut *self.st };
        if s.depth == self.depth {
            if let Some(start) = align_up(s.top, align) {
                if start <= s.end && s.end - start >= size {
                    s.top = start + size;
                    return Ok(start);
                }
            }
        }
        self.bump_slow(size, align)
    }

    #[cold]
    #[inline(never)]
    fn bump_slow(&self, size: usize, align: usize) -> Result<usize> {
        // SAFETY: as in `bump`.
        let s = unsafe { &mut *self.st };
        if s.depth != self.depth {
            return Err(Error::InvalidArgument {
                reason: format!(
                    "stack frame {} is not the innermost ({} frames are open)",
                    self.depth, s.depth
                ),
            });
        }
        if size == 0 {
            return Ok(align);
        }
        let c = Chunk::new(size, align).ok_or(Error::OutOfMemory { size, align })?;
        let a = c.addr();
        s.overflow.push(c);
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
        // SAFETY: as in `bump` (a read only).
        let s = unsafe { &*self.st };
        s.top.saturating_sub(self.mark)
    }

    fn session(&self) -> &Session {
        // SAFETY: the session was set by `init` before this frame was made
        // and is never removed while the thread's stack lives.
        let s = unsafe { &*self.st };
        s.session.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl SegmentAllocator for Frame {
    #[inline(always)]
    fn allocate_uninit(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        let a = self.bump(size, align)?;
        let session = self.session();
        // SAFETY: `a .. a + size` is a range of this thread's stack chunk
        // above every live allocation (only the innermost frame bumps, and
        // frames release LIFO), or a heap block of this frame, or empty; it
        // stays allocated until this frame ends, and the segment borrows the
        // frame.
        Ok(unsafe { carve(a, size, session) })
    }

    /// Same as `allocate_uninit`: the stack above its top is always zero.
    #[inline(always)]
    fn allocate(&self, size: usize, align: usize) -> Result<Segment<'_>> {
        self.allocate_uninit(size, align)
    }
}

impl Drop for Frame {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: as in `bump`; no segment of this frame is alive (they
        // borrow `&self`, and we have `&mut self`).
        let s = unsafe { &mut *self.st };
        if s.depth != self.depth {
            // Impossible with a per-thread stack (frames are closures, so
            // they end LIFO); the loom twin that shares one stack between
            // threads gets here. Leave the stack alone, and report it unless
            // already unwinding (a panic in a destructor then would abort).
            s.depth = s.depth.saturating_sub(1);
            debug_assert!(
                std::thread::panicking(),
                "stack frame {} ended while {} frames were open",
                self.depth,
                s.depth + 1
            );
            return;
        }
        s.depth -= 1;
        if crate::session::state::twin_on("StackNoRestore") {
            return;
        }
        if s.top > self.mark {
            let n = s.top - self.mark;
            let p: *mut u8 = core::ptr::with_exposed_provenance_mut(self.mark);
            // SAFETY: `mark .. top` is inside the stack chunk (both were
            // cursor values of it) and only this frame's (now dead)
            // allocations used it.
            unsafe { core::ptr::write_bytes(p, 0, n) };
            s.top = self.mark;
        }
        s.overflow.truncate(self.overflow_mark);
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("depth", &self.depth)
            .field("used", &self.used())
            .finish()
    }
}
