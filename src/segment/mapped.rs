//! Mapped files as segments (memmap2), plus `flush` (msync) and `load`.
//!
//! The mapping is owned by a close action of the session: it is unmapped
//! when the session closes, after every guard is gone and every plain
//! access has drained, so no segment can touch it afterwards.

use super::Segment;
use super::raw::{self, RawSegment};
use crate::error::{Error, Result};
use crate::session::Session;
use core::ptr::NonNull;
use std::path::Path;

/// How [`Segment::map_file`] maps a file.
///
/// # Examples
///
/// ```
/// assert_ne!(memscope::segment::MapMode::ReadOnly, memscope::segment::MapMode::ReadWrite);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapMode {
    /// Shared, read-only: the segment is read-only (writes give
    /// [`Error::ReadOnly`]).
    ReadOnly,
    /// Shared, read-write: writes go to the file (see
    /// [`Segment::flush`]).
    ReadWrite,
}

impl<'s> Segment<'s> {
    /// Maps `len` bytes of the file at `path`, starting at byte `offset`,
    /// into memory owned by `session` (unmapped when it closes; a global
    /// session never unmaps). `len == 0` maps nothing and gives an empty
    /// segment.
    ///
    /// # Safety
    ///
    /// The file must not be truncated, and its mapped bytes must not be
    /// modified by other processes or other mappings, while the session is
    /// open: either would make reads through this segment data races (or
    /// `SIGBUS`), which no check here can see (the same duty as
    /// `memmap2::MmapOptions::map`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be opened or mapped;
    /// [`Error::OutOfBounds`] if `offset + len` is past the end of the file;
    /// [`Error::Closed`] if the session is closed (nothing stays mapped).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Session, Segment, segment::MapMode};
    /// let path = std::env::temp_dir().join(format!("memscope-doc-{}", std::process::id()));
    /// std::fs::write(&path, b"hello, file")?;
    /// let s = Session::shared();
    /// // SAFETY: nothing else touches the temporary file.
    /// let seg = unsafe { Segment::map_file(&path, 7, 4, MapMode::ReadOnly, &s) }?;
    /// assert_eq!(seg.to_vec()?, b"file");
    /// assert!(seg.is_read_only());
    /// s.close()?; // unmaps
    /// assert!(seg.to_vec().is_err());
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn map_file(
        path: impl AsRef<Path>,
        offset: u64,
        len: usize,
        mode: MapMode,
        session: &'s Session,
    ) -> Result<Segment<'s>> {
        // Fail early (and with the right error) on a closed session.
        drop(session.enter()?);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(mode == MapMode::ReadWrite)
            .open(path.as_ref())?;
        let file_len = file.metadata()?.len();
        let end = u64::try_from(len)
            .ok()
            .and_then(|l| offset.checked_add(l))
            .filter(|&e| e <= file_len);
        if end.is_none() {
            return Err(Error::OutOfBounds {
                offset: usize::try_from(offset).unwrap_or(usize::MAX),
                len,
                size: usize::try_from(file_len).unwrap_or(usize::MAX),
            });
        }
        let read_only = mode == MapMode::ReadOnly;
        if len == 0 {
            let seg = Segment {
                read_only,
                mapped: true,
                // SAFETY: a zero-size segment touches no memory.
                ..unsafe { Segment::from_raw_parts(RawSegment::empty(), session) }
            };
            return Ok(seg);
        }
        let mut opts = memmap2::MmapOptions::new();
        opts.offset(offset).len(len);
        let map = if read_only {
            opts.map_raw_read_only(&file)?
        } else {
            opts.map_raw(&file)?
        };
        let ptr = NonNull::new(map.as_mut_ptr()).ok_or(Error::NullAddress)?;
        debug_assert_eq!(
            map.len(),
            len,
            "memmap2 mapped {} bytes, asked {len}",
            map.len()
        );
        // Loom: the mapping's bytes, shadowed from here to the unmap (the
        // shadow is freed, a write of every byte then a tombstone, just
        // before the mapping drops).
        #[cfg(loom)]
        let map = crate::shadow::Shadowed::new(map, ptr.as_ptr().addr(), len);
        // The close action owns the mapping: unmapped exactly when the
        // session frees its memory. If the session closed meanwhile, the
        // action already ran (unmapped) and we report Closed.
        let owned = session.add_close_action(move || drop(map));
        #[cfg(loom)]
        if owned.is_err() && crate::session::state::twin_on("MapUnmapOnClosed") {
            // A map_file that also unmaps the mapping itself when the
            // close action was refused (which already ran it).
            crate::shadow::free(ptr.as_ptr().addr(), len);
        }
        owned?;
        let raw = RawSegment { ptr, len };
        // SAFETY: `ptr .. ptr + len` is a live mapping of `len` bytes that
        // stays mapped until the session's close actions run; the file is
        // not changed behind our back (this function's `# Safety`); a
        // read-only mapping gives a read-only segment, so it is never
        // written.
        let seg = unsafe { Segment::from_raw_parts(raw, session) };
        Ok(Segment {
            read_only,
            mapped: true,
            ..seg
        })
    }

    /// Whether the segment (or the segment it was sliced from) is a mapped
    /// file.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = memscope::segment::HeapSegment::new(1, 1)?;
    /// assert!(!h.as_segment().is_mapped());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    /// Writes the segment's modified pages back to the file (`msync`,
    /// synchronous) — Java's `force()`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the segment is not a mapped file;
    /// [`Error::Io`] if the OS call fails (or on non-Unix platforms);
    /// [`Error::Closed`], [`Error::WrongThread`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Session, Segment, segment::MapMode};
    /// let path = std::env::temp_dir().join(format!("memscope-flush-{}", std::process::id()));
    /// std::fs::write(&path, [0u8; 8])?;
    /// let s = Session::shared();
    /// let mut seg = unsafe { Segment::map_file(&path, 0, 8, MapMode::ReadWrite, &s) }?;
    /// seg.set(0, 0x2a2a_2a2au32)?;
    /// seg.flush()?;
    /// assert_eq!(&std::fs::read(&path)?[..4], b"****");
    /// # s.close()?;
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Result<()> {
        self.require_mapped()?;
        let len = self.len();
        let r = self.with_access(0, len, 1, |p| {
            // SAFETY: `p .. p + len` lies inside a live mapping (with_access
            // + enter), which `msync` only reads page tables of.
            unsafe { raw::msync(p, len) }
        })?;
        r.map_err(Error::from)
    }

    /// Faults every page of the mapping into memory (reads one byte per
    /// page) — Java's `load()`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the segment is not a mapped file;
    /// [`Error::Closed`], [`Error::WrongThread`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Session, Segment, segment::MapMode};
    /// let path = std::env::temp_dir().join(format!("memscope-load-{}", std::process::id()));
    /// std::fs::write(&path, [1u8; 100])?;
    /// let s = Session::shared();
    /// let seg = unsafe { Segment::map_file(&path, 0, 100, MapMode::ReadOnly, &s) }?;
    /// seg.load()?;
    /// # s.close()?;
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(&self) -> Result<()> {
        self.require_mapped()?;
        let len = self.len();
        self.with_access(0, len, 1, |p| {
            // SAFETY: `p .. p + len` is in bounds (with_access) and live
            // (enter); reads only.
            unsafe { raw::touch_pages(p, len, raw::page_size()) }
        })
    }

    fn require_mapped(&self) -> Result<()> {
        if self.mapped {
            Ok(())
        } else {
            Err(Error::InvalidArgument {
                reason: "not a mapped-file segment".into(),
            })
        }
    }
}
