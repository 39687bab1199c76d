#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod alloc;
pub mod error;
pub mod segment;
pub mod session;
pub(crate) mod sync;

pub use error::{Error, Result};
pub use segment::{Address, Segment};
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
}

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
    pub use crate::segment::{Address, Segment};
    pub use crate::session::{AcquireGuard, Session, SessionKind};
    pub use crate::{Error, Result, bind, c_enum, c_flags, c_struct, c_union};
}
