//! The crate's one error type.
//!
//! Every fallible operation in memscope returns [`Result<T>`]; bad input is
//! always an [`Error`] value carrying the numbers that caused it, never a panic.

use crate::session::SessionKind;

/// `Result<T, memscope::Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong in memscope.
///
/// Variants carry the values that caused the error; addresses print in hex.
///
/// # Examples
///
/// ```
/// use memscope::{Error, Session};
///
/// let s = Session::shared();
/// s.close().unwrap();
/// assert_eq!(s.acquire().unwrap_err(), Error::Closed);
/// assert_eq!(s.close().unwrap_err().to_string(), "session is already closed");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The session is closed (or was closed while the operation waited).
    #[error("session is already closed")]
    Closed,
    /// `close()` found acquire guards still held.
    #[error("session is busy: {acquired} acquire guard(s) held")]
    Busy {
        /// How many guards were held when close looked.
        acquired: usize,
    },
    /// `close()` was called from inside one of the session's own access
    /// windows on the calling thread (a [`Session::enter`](crate::Session::enter)
    /// token, a [`Marshal`](crate::marshal::Marshal) `encode`/`decode`, an
    /// upcall of one of its stubs): closing there would free the memory under
    /// that window, or wait for it forever. Nothing was closed; close after
    /// the window ends.
    #[error("session is in use by this thread: close from inside one of its access windows")]
    InUse,
    /// A confined session was used from a thread other than its owner.
    #[error("session is confined to thread {owner}, but was used from thread {current}")]
    WrongThread {
        /// The owner thread's memscope id.
        owner: u64,
        /// The calling thread's memscope id.
        current: u64,
    },
    /// Global and auto sessions cannot be closed explicitly.
    #[error("a {kind:?} session cannot be closed explicitly")]
    NotCloseable {
        /// The kind of the session.
        kind: SessionKind,
    },
    /// The acquire counter would overflow.
    #[error("too many acquires: {count} held")]
    TooManyAcquires {
        /// The count that was reached.
        count: usize,
    },
    /// One or more close actions panicked; the session *is* closed and every
    /// other action ran.
    #[error("{count} close action(s) panicked; first: {first}")]
    CloseActionPanicked {
        /// How many actions panicked.
        count: usize,
        /// The first panic's message.
        first: String,
    },
    /// An argument that is not an offset, size or layout was invalid.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: String,
    },
    /// An access fell outside the segment.
    #[error(
        "access of {len} byte(s) at offset {offset} is out of bounds of a segment of {size} byte(s)"
    )]
    OutOfBounds {
        /// Requested offset.
        offset: usize,
        /// Requested length in bytes.
        len: usize,
        /// The segment's size.
        size: usize,
    },
    /// An access needed an alignment the address does not have.
    #[error("address 0x{addr:x} is not aligned to {align}")]
    Misaligned {
        /// The address that was accessed.
        addr: usize,
        /// The alignment the type needs.
        align: usize,
    },
    /// A write to a read-only segment.
    #[error("segment is read-only")]
    ReadOnly,
    /// The NULL address was dereferenced.
    #[error("null address")]
    NullAddress,
    /// An allocator could not satisfy a request.
    #[error("out of memory: {size} byte(s) aligned to {align} could not be allocated")]
    OutOfMemory {
        /// Requested size.
        size: usize,
        /// Requested alignment.
        align: usize,
    },
    /// A size/alignment/layout was invalid (zero, overflowing, non-power-of-two,
    /// misaligned member, unknown field …).
    #[error("invalid layout: {reason}")]
    InvalidLayout {
        /// What was wrong, naming the field where there is one.
        reason: String,
    },
    /// Bytes that should be a C string or UTF-8 were not.
    #[error("invalid string: {reason}")]
    InvalidString {
        /// What was wrong.
        reason: String,
    },
    /// An I/O operation (mapping a file, flushing) failed.
    #[error("I/O error ({kind:?}): {message}")]
    Io {
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// The I/O error's message.
        message: String,
    },
    /// A function signature cannot be linked.
    #[error("invalid signature: {reason}")]
    InvalidSignature {
        /// What was wrong.
        reason: String,
    },
    /// A library could not be loaded.
    #[error("cannot load library {name}: {reason}")]
    LibraryLoad {
        /// The path or name asked for.
        name: String,
        /// The loader's message.
        reason: String,
    },
    /// A symbol is not in the library.
    #[error("symbol not found: {name}")]
    SymbolNotFound {
        /// The symbol's name.
        name: String,
    },
    /// A Rust upcall panicked; the panic was caught before it reached C.
    #[error("upcall panicked: {message}")]
    UpcallPanicked {
        /// The panic's message.
        message: String,
    },
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Turns a caught panic payload into a message.
pub(crate) fn panic_message(p: &(dyn core::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
