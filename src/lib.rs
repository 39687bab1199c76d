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
