//! Mapped files as segments (memmap2): read-only and read-write mappings,
//! flush/load, bounds against the file, unmapping at close. Not for Miri
//! (it cannot mmap).
#![allow(clippy::undocumented_unsafe_blocks)] // every map here is of a private temp file

use memscope::segment::{HeapSegment, MapMode};
use memscope::{Error, Segment, Session};
use std::path::PathBuf;

/// A temporary file removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        let p = std::env::temp_dir().join(format!(
            "memscope-test-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&p, contents).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn read_only_mappings_read_the_file_and_refuse_writes() {
    let f = TempFile::new("ro", b"0123456789");
    let s = Session::shared();
    let mut seg = unsafe { Segment::map_file(&f.0, 2, 5, MapMode::ReadOnly, &s) }.unwrap();
    assert_eq!(seg.to_vec().unwrap(), b"23456");
    assert!(seg.is_read_only() && seg.is_mapped());
    assert_eq!(seg.set(0, 1u8), Err(Error::ReadOnly));
    assert_eq!(seg.fill(0), Err(Error::ReadOnly));
    assert!(seg.slice(1, 2).unwrap().is_mapped());
    seg.load().unwrap();
    seg.flush().unwrap();
    s.close().unwrap();
    assert_eq!(seg.to_vec(), Err(Error::Closed));
}

#[test]
fn read_write_mappings_write_through_to_the_file() {
    let f = TempFile::new("rw", &[0u8; 8192]);
    let s = Session::shared();
    {
        let mut seg =
            unsafe { Segment::map_file(&f.0, 4096, 4096, MapMode::ReadWrite, &s) }.unwrap();
        seg.set_cstr(10, "mapped").unwrap();
        seg.slice_mut(100, 8)
            .unwrap()
            .set(0, 0x1122_3344u32)
            .unwrap();
        seg.slice(8, 100).unwrap().flush().unwrap();
        seg.flush().unwrap();
    }
    s.close().unwrap();
    let bytes = std::fs::read(&f.0).unwrap();
    assert_eq!(&bytes[4096 + 10..4096 + 17], b"mapped\0");
    assert_eq!(
        u32::from_ne_bytes(bytes[4196..4200].try_into().unwrap()),
        0x1122_3344
    );
    assert!(bytes[..4096].iter().all(|&b| b == 0));
}

#[test]
fn mapping_past_the_end_of_the_file_is_out_of_bounds() {
    let f = TempFile::new("short", b"abc");
    let s = Session::shared();
    assert!(matches!(
        unsafe { Segment::map_file(&f.0, 0, 4, MapMode::ReadOnly, &s) },
        Err(Error::OutOfBounds { size: 3, .. })
    ));
    assert!(matches!(
        unsafe { Segment::map_file(&f.0, u64::MAX, 1, MapMode::ReadOnly, &s) },
        Err(Error::OutOfBounds { .. })
    ));
    let empty = unsafe { Segment::map_file(&f.0, 3, 0, MapMode::ReadOnly, &s) }.unwrap();
    assert!(empty.is_empty() && empty.is_mapped());
    assert!(matches!(
        unsafe { Segment::map_file(f.0.join("nope"), 0, 1, MapMode::ReadOnly, &s) },
        Err(Error::Io { .. })
    ));
}

#[test]
fn mapping_into_a_closed_session_fails() {
    let f = TempFile::new("closed", b"abc");
    let s = Session::shared();
    s.close().unwrap();
    assert_eq!(
        unsafe { Segment::map_file(&f.0, 0, 3, MapMode::ReadOnly, &s) }.unwrap_err(),
        Error::Closed
    );
}

#[test]
fn the_close_action_unmaps() {
    let f = TempFile::new("unmap", &[7u8; 64]);
    let s = Session::shared();
    let seg = unsafe { Segment::map_file(&f.0, 0, 64, MapMode::ReadOnly, &s) }.unwrap();
    let addr = seg.address();
    let g = s.acquire().unwrap();
    assert_eq!(seg.guarded(&g).unwrap().as_slice(), &[7u8; 64]);
    assert_eq!(s.close(), Err(Error::Busy { acquired: 1 }));
    drop(g);
    s.close().unwrap();
    assert_eq!(seg.get::<u8>(0), Err(Error::Closed));
    assert_eq!(seg.address(), addr);
}

#[test]
fn flush_and_load_need_a_mapping() {
    let h = HeapSegment::new(8, 8).unwrap();
    assert!(matches!(
        h.as_segment().flush(),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        h.as_segment().load(),
        Err(Error::InvalidArgument { .. })
    ));
}
