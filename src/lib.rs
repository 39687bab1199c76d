//! **Native memory with explicit lifetimes**: memory shared between threads,
//! memory handed to and received from C, and C libraries bound at run time.
//! memscope is to Rust what `java.lang.foreign` is to Java: [sessions](Session)
//! give memory a lifetime, [segments](Segment) are checked views of it,
//! [arenas](Arena) and other [allocators](alloc) hand it out fast,
//! [layouts](layout) describe C data, and the [`linker`] calls C and
//! lets C call back. The concurrency protocol is model-checked with loom.
//!
//! ```
//! use memscope::prelude::*;
//!
//! let arena = Arena::shared();                     // Sync: share &arena across threads
//! let mut seg = arena.allocate_array::<i32>(4)?;   // zeroed, aligned, checked
//! seg.set_at_index(2, 7)?;
//! assert!(matches!(seg.get_at_index::<i32>(4), Err(Error::OutOfBounds { .. })));
//! let strlen = Library::libc()?.lookup("strlen")?;
//! let strlen = unsafe { strlen.as_fn::<unsafe extern "C" fn(*const u8) -> usize>()? };
//! let text = arena.allocate_cstring("hello")?;
//! assert_eq!(unsafe { (strlen.get())(text.address().as_ptr()) }, 5);
//! arena.close()?;                                  // frees the arena's memory at once
//! assert_eq!(seg.get::<i32>(8), Err(Error::Closed)); // never a dangling read
//! # Ok::<(), memscope::Error>(())
//! ```
//!
//! Where to go next:
//! * [`Session`]: confined, shared, global and auto lifetimes; guards
//!   ([`Session::acquire`], [`Session::with_acquired`]) and close actions.
//! * [`Segment`]: bounds-, alignment-, liveness- and thread-checked access,
//!   byte orders, slices, strings, iterators, cursors, mapped files.
//! * [`alloc`]: [`Arena`] (with per-thread [`LocalArena`] handles), the
//!   per-thread [`stack`] allocator, slicing/prefix and malloc allocators,
//!   the [`allocator_api2`] bridge.
//! * [`layout`] and [`marshal`]: C structs, unions and arrays,
//!   [`c_struct!`], [`Marshal`], dynamic [`Value`]s.
//! * [`linker`]: [`Library`], [`Symbol::as_fn`], [`bind!`], [`Downcall`],
//!   [`UpcallStub`].
//! * Guides: [coming from Java FFM, coffi, ctypes or
//!   bumpalo](guide::coming_from), [performance targets and
//!   peers](guide::performance), [what loom checks](guide::loom). The
//!   contract (semantics, module map, decisions as built) is `DESIGN.md`,
//!   shipped with the crate's source.
//! * [`prelude`]: the common types and traits in one `use`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod alloc;
pub mod error;
pub mod segment;
pub mod session;
#[cfg(loom)]
mod shadow;
pub(crate) mod sync;
/// Loom only: what the models may ask of the shadow of memory loom cannot
/// see (`src/shadow.rs`), for their leak asserts.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_shadow {
    /// Whether a live shadowed range starts at `base`.
    pub fn is_live(base: usize) -> bool {
        crate::shadow::is_live(base)
    }
    /// How many shadowed ranges are live.
    pub fn live_ranges() -> usize {
        crate::shadow::live_ranges()
    }
}
#[cfg(loom)]
mod twins;

pub use error::{Error, Result};
pub use segment::{Address, OwnedSegment, Segment};
pub use session::{AcquireGuard, Session, SessionKind};
pub mod layout;
pub mod marshal;
pub use layout::{ByteOrder, LayoutKind, MemoryLayout, PathElement, ValueKind};
pub use marshal::{Marshal, Value};
pub mod linker;

/// Guides that are not about one item.
pub mod guide {
    #[doc = include_str!("../docs/coming_from.md")]
    pub mod coming_from {}
    #[doc = include_str!("../docs/performance.md")]
    pub mod performance {}
    #[doc = include_str!("../docs/loom.md")]
    pub mod loom {}
}

// The README's examples stay doctests (the README is the repository's front
// page; the crate's front page is the shorter text above).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

// The types most programs name, at the root (Java's `Arena`, `Linker`,
// `SymbolLookup`, `FunctionDescriptor` are top-level names there too).
pub use alloc::{Arena, LocalArena, MallocAllocator, SegmentAllocator, stack};
pub use layout::c;
pub use linker::{Downcall, FunctionDescriptor, Library, Linker, Symbol, UpcallStub};

/// The `allocator-api2` crate (version 0.2) that memscope's allocators
/// implement `Allocator` for. Use it through this path: a plain
/// `cargo add allocator-api2` picks 0.4, whose `Allocator` trait is a
/// different trait, and `Vec::new_in(&arena)` then fails with E0277.
///
/// ```
/// use memscope::allocator_api2::vec::Vec;
/// use memscope::Arena;
///
/// let arena = Arena::confined();
/// let mut v: Vec<u32, &Arena> = Vec::new_in(&arena);
/// v.extend([1, 2, 3]);
/// assert_eq!(v.iter().sum::<u32>(), 6);
/// ```
pub use allocator_api2;

/// Everything a program usually needs, in one `use`.
///
/// The traits matter most: `arena.allocate(..)` resolves only with
/// [`SegmentAllocator`] in scope, `point.write_to(..)` only with [`Marshal`].
///
/// ```
/// use memscope::prelude::*;
///
/// let arena = Arena::confined();
/// let mut seg = arena.allocate_array::<i32>(4)?;
/// seg.set_at_index(1, 7)?;
/// assert_eq!(seg.get_at_index::<i32>(1)?, 7);
/// let layout = MemoryLayout::c_struct([c::INT.with_name("x"), c::DOUBLE.with_name("w")])?;
/// assert_eq!(layout.size(), 16);
/// # Ok::<(), memscope::Error>(())
/// ```
pub mod prelude {
    pub use crate::alloc::{Arena, LocalArena, MallocAllocator, SegmentAllocator, stack};
    pub use crate::layout::{self, ByteOrder, MemoryLayout, PathElement, c};
    pub use crate::linker::{
        Arg, Downcall, DowncallOptions, FunctionDescriptor, Library, Linker, Symbol, UpcallStub,
    };
    pub use crate::marshal::{AllocateExt, Marshal, Value};
    pub use crate::segment::{Address, OwnedSegment, Segment};
    pub use crate::session::{AcquireGuard, Session, SessionKind};
    pub use crate::{Error, Result, bind, c_enum, c_flags, c_struct, c_union};
}
