//! Executable code segments (Janet `ffi/jitfn`).
//!
//! The code is copied into an anonymous mapping while it is writable, then
//! the mapping is switched to read + execute (`mprotect` through memmap2's
//! `make_exec`): it is never writable and executable at once (W^X). The
//! session's close unmaps it.

use std::fmt;

use super::library::Symbol;
use crate::sync::{Counted, CountedWeak};
use crate::{Address, Error, Result, Session};

/// The read + execute mapping, held by the session's close action and by
/// every [`Symbol`] of it (`Counted`: std's `Arc` outside loom); unmapped
/// when the last of them drops.
pub(crate) struct CodeMap {
    map: memmap2::Mmap,
}

/// Loom: the unmap. The code range was registered in `crate::shadow` at
/// map time; it is freed (a write of all, then a tombstone) just before
/// the mapping drops.
#[cfg(loom)]
impl Drop for CodeMap {
    fn drop(&mut self) {
        crate::shadow::free(self.map.as_ptr().addr(), self.map.len());
    }
}

/// Machine code mapped read + execute, tied to a session.
///
/// # Examples
///
/// ```
/// # #[cfg(target_arch = "x86_64")] {
/// use memscope::{Session, linker::ExecutableSegment};
/// let s = Session::shared();
/// // mov eax, 42; ret
/// let code = ExecutableSegment::from_code(&[0xb8, 42, 0, 0, 0, 0xc3], &s)?;
/// let sym = code.symbol()?;
/// // SAFETY: the bytes are a complete `int f(void)` for x86-64.
/// let f = unsafe { sym.as_fn::<extern "C" fn() -> i32>() }?;
/// assert_eq!((f.get())(), 42);
/// # }
/// # Ok::<(), memscope::Error>(())
/// ```
pub struct ExecutableSegment {
    map: CountedWeak<CodeMap>,
    addr: Address,
    len: usize,
    session: Session,
}

impl fmt::Debug for ExecutableSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutableSegment")
            .field("addr", &self.addr)
            .field("len", &self.len)
            .finish()
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Io {
        kind: e.kind(),
        message: e.to_string(),
    }
}

impl ExecutableSegment {
    /// Copies `code` into fresh memory and makes it executable (never
    /// writable at the same time). Closing `session` unmaps it, unless a
    /// [`Symbol`] from [`symbol`](Self::symbol) still holds it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for empty code; [`Error::Io`] if mapping
    /// or `mprotect` fails (e.g. a system that forbids executable mappings);
    /// [`Error::Closed`] if the session is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Session, linker::ExecutableSegment};
    /// let s = Session::shared();
    /// let code = ExecutableSegment::from_code(&[0xc3], &s)?;
    /// assert_eq!(code.len(), 1);
    /// assert!(ExecutableSegment::from_code(&[], &s).is_err());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn from_code(code: &[u8], session: &Session) -> Result<ExecutableSegment> {
        if code.is_empty() {
            return Err(Error::InvalidArgument {
                reason: "no machine code".into(),
            });
        }
        drop(session.enter()?);
        let mut m = memmap2::MmapMut::map_anon(code.len()).map_err(io)?;
        m.copy_from_slice(code);
        let map = m.make_exec().map_err(io)?;
        #[cfg(loom)]
        crate::shadow::register(map.as_ptr().addr(), map.len());
        let m = Counted::new(CodeMap { map });
        let addr = Address::from_ptr(m.map.as_ptr());
        let weak = Counted::downgrade(&m);
        session.add_close_action(move || drop(m))?;
        Ok(ExecutableSegment {
            map: weak,
            addr,
            len: code.len(),
            session: session.clone(),
        })
    }

    /// The code's size in bytes.
    ///
    /// # Examples
    ///
    /// See [`from_code`](Self::from_code).
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        self.len
    }

    /// The code's start address.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::{Session, linker::ExecutableSegment};
    /// let s = Session::shared();
    /// assert!(!ExecutableSegment::from_code(&[0xc3], &s)?.address().is_null());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn address(&self) -> Address {
        self.addr
    }

    /// A symbol for the code's start that keeps the mapping alive.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the session has closed.
    ///
    /// # Examples
    ///
    /// See [`ExecutableSegment`].
    pub fn symbol(&self) -> Result<Symbol> {
        let _in = self.session.enter()?;
        let m = self.map.upgrade().ok_or(Error::Closed)?;
        Ok(Symbol::kept(self.addr, format!("jit@{}", self.addr), m))
    }
}
