//! Segment behaviour: checked access, views, bulk operations, strings,
//! cursors, atomic views and borrowed/owned memory (DESIGN.md semantics 6–9).
//! Miri-clean: `cargo +nightly miri test -p memscope --test segment`.
#![allow(clippy::undocumented_unsafe_blocks)]

use memscope::alloc::SegmentAllocator;
use memscope::segment::{Address, ByteOrder, HeapSegment};
use memscope::{Error, Segment, Session};
use std::cell::RefCell;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::sync::atomic::Ordering;

/// A segment over `buf` (8-aligned storage) owned by `s`.
fn seg<'s>(buf: &mut [u64], s: &'s Session) -> Segment<'s> {
    unsafe { Segment::from_raw(Address::from_ptr(buf.as_mut_ptr()), buf.len() * 8, s) }.unwrap()
}

/// A toy allocator over HeapSegments, for `clone_into`.
struct HeapAlloc {
    session: Session,
    blocks: RefCell<Vec<HeapSegment>>,
}

impl SegmentAllocator for HeapAlloc {
    fn allocate_uninit(&self, size: usize, align: usize) -> memscope::Result<Segment<'_>> {
        let mut h = HeapSegment::new(size, align)?;
        let addr = h.as_segment_mut().address();
        self.blocks.borrow_mut().push(h);
        // The block lives (unmoved on the heap) as long as `self`.
        unsafe { Segment::from_raw(addr, size, &self.session) }
    }
}

#[test]
fn values_round_trip_for_every_primitive() {
    let s = Session::shared();
    let mut b = [0u64; 4];
    let mut g = seg(&mut b, &s);
    g.set(0, -5i8).unwrap();
    assert_eq!(g.get::<i8>(0).unwrap(), -5);
    g.set(2, 0xbeefu16).unwrap();
    assert_eq!(g.get::<u16>(2).unwrap(), 0xbeef);
    g.set(4, 1.25f32).unwrap();
    assert_eq!(g.get::<f32>(4).unwrap(), 1.25);
    g.set(8, -2.5f64).unwrap();
    assert_eq!(g.get::<f64>(8).unwrap(), -2.5);
    // `b` is only 8-aligned: u128 (16-aligned) goes unaligned here ...
    g.set_unaligned(16, u128::MAX - 1).unwrap();
    assert_eq!(g.get_unaligned::<u128>(16).unwrap(), u128::MAX - 1);
    // ... and aligned in 16-aligned memory.
    let mut h = HeapSegment::new(32, 16).unwrap();
    h.as_segment_mut().set(16, u128::MAX - 1).unwrap();
    assert_eq!(h.as_segment().get::<u128>(16).unwrap(), u128::MAX - 1);
    g.set(0, true).unwrap();
    assert!(g.get::<bool>(0).unwrap());
    g.set(8, Address::new(0x1234)).unwrap();
    assert_eq!(g.get::<Address>(8).unwrap(), Address::new(0x1234));
}

#[test]
fn byte_orders_read_the_same_bytes_differently() {
    let s = Session::global();
    let mut b = [0u64; 1];
    let mut g = seg(&mut b, &s);
    g.set_be(0, 0x0102_0304u32).unwrap();
    assert_eq!(g.to_vec().unwrap()[..4], [1, 2, 3, 4]);
    assert_eq!(g.get_be::<u32>(0).unwrap(), 0x0102_0304);
    assert_eq!(g.get_le::<u32>(0).unwrap(), 0x0403_0201);
    assert_eq!(
        g.get_with::<u32>(0, ByteOrder::Native).unwrap(),
        g.get::<u32>(0).unwrap()
    );
    g.set_le(4, 1.5f32).unwrap();
    assert_eq!(g.get_le::<f32>(4).unwrap(), 1.5);
    g.set_unaligned_with(1, 0xaabbu16, ByteOrder::Big).unwrap();
    assert_eq!(
        g.get_unaligned_with::<u16>(1, ByteOrder::Big).unwrap(),
        0xaabb
    );
    assert!(matches!(
        g.get_with::<u16>(1, ByteOrder::Big),
        Err(Error::Misaligned { align: 2, .. })
    ));
}

#[test]
fn indexed_access_checks_overflowing_indices() {
    let s = Session::global();
    let mut b = [0u64; 2];
    let mut g = seg(&mut b, &s);
    for i in 0..4 {
        g.set_at_index(i, i as u32 * 10).unwrap();
    }
    assert_eq!(g.get_at_index::<u32>(3).unwrap(), 30);
    assert!(matches!(
        g.get_at_index::<u32>(4),
        Err(Error::OutOfBounds {
            offset: 16,
            len: 4,
            size: 16
        })
    ));
    assert!(matches!(
        g.get_at_index::<u64>(usize::MAX / 4),
        Err(Error::OutOfBounds {
            offset: usize::MAX,
            ..
        })
    ));
    assert!(g.set_at_index(usize::MAX, 1u8).is_err());
}

#[test]
fn bulk_copies_match_element_access() {
    let s = Session::shared();
    let mut b = [0u64; 4];
    let mut g = seg(&mut b, &s);
    g.copy_from_slice(4, &[1i32, -2, 3]).unwrap();
    let mut out = [0i32; 3];
    g.copy_to_slice(4, &mut out).unwrap();
    assert_eq!(out, [1, -2, 3]);
    assert_eq!(g.get::<i32>(8).unwrap(), -2);
    assert!(matches!(
        g.copy_to_slice(2, &mut out),
        Err(Error::Misaligned { align: 4, .. })
    ));
    assert!(matches!(
        g.copy_from_slice(24, &[0u32; 3]),
        Err(Error::OutOfBounds { .. })
    ));
    let mut huge = [0u8; 0];
    g.copy_to_slice(32, &mut huge).unwrap();
}

#[test]
fn bool_reads_never_produce_invalid_bools() {
    let s = Session::global();
    let mut b = [0u64; 1];
    let mut g = seg(&mut b, &s);
    g.copy_from_slice(0, &[0u8, 1, 2, 255]).unwrap();
    let mut out = [false; 4];
    g.copy_to_slice(0, &mut out).unwrap();
    assert_eq!(out, [false, true, true, true]);
    let v: Vec<bool> = g
        .slice(0, 4)
        .unwrap()
        .elements::<bool>()
        .unwrap()
        .collect::<memscope::Result<_>>()
        .unwrap();
    assert_eq!(v, [false, true, true, true]);
}

#[test]
fn slices_of_slices_stay_in_bounds() {
    let s = Session::global();
    let mut b = [0u64; 4];
    let mut g = seg(&mut b, &s);
    for i in 0..32 {
        g.set(i, i as u8).unwrap();
    }
    let a = g.slice(8, 16).unwrap();
    let c = a.slice(4, 8).unwrap();
    assert_eq!(c.to_vec().unwrap(), (12u8..20).collect::<Vec<_>>());
    assert_eq!(c.address().get(), g.address().get() + 12);
    assert!(matches!(
        c.slice(1, 8),
        Err(Error::OutOfBounds {
            offset: 1,
            len: 8,
            size: 8
        })
    ));
    assert!(c.slice(usize::MAX, 2).is_err());
    assert!(c.slice(2, usize::MAX).is_err());
    assert!(c.slice(usize::MAX, usize::MAX).is_err());
    assert_eq!(c.slice(8, 0).unwrap().len(), 0);
    assert!(c.get::<u8>(usize::MAX).is_err());
    let (l, r) = c.split_at(3).unwrap();
    assert_eq!((l.len(), r.len()), (3, 5));
    assert!(c.split_at(9).is_err());
    assert!(c.slice_from(9).is_err());
}

#[test]
fn read_only_views_refuse_every_write() {
    let s = Session::shared();
    let mut b = [0u64; 2];
    let g = seg(&mut b, &s);
    let mut ro = g.as_read_only();
    assert_eq!(ro.set(0, 1u8), Err(Error::ReadOnly));
    assert_eq!(ro.set_unaligned(1, 1u16), Err(Error::ReadOnly));
    assert_eq!(ro.fill(1), Err(Error::ReadOnly));
    assert_eq!(ro.clear(), Err(Error::ReadOnly));
    assert_eq!(ro.copy_from_slice(0, &[1u8]), Err(Error::ReadOnly));
    assert_eq!(ro.copy_within(0, 1, 1), Err(Error::ReadOnly));
    assert_eq!(ro.set_cstr(0, "x"), Err(Error::ReadOnly));
    assert_eq!(ro.set_at_index(0, 1u32), Err(Error::ReadOnly));
    let other = g.slice(0, 4).unwrap();
    assert_eq!(ro.copy_from(&other), Err(Error::ReadOnly));
    // A writable slice of a read-only view is still read-only.
    let mut sub = ro.slice_mut(0, 4).unwrap();
    assert_eq!(sub.set(0, 1u8), Err(Error::ReadOnly));
    let guard = s.acquire().unwrap();
    assert!(matches!(ro.guarded_mut(&guard), Err(Error::ReadOnly)));
    assert!(matches!(ro.atomics(&guard), Err(Error::ReadOnly)));
    let mut c = ro.cursor_mut().unwrap();
    let e = c.write(&[1]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    drop(c);
    drop(guard);
    assert_eq!(g.to_vec().unwrap(), [0u8; 16]);
}

#[test]
fn split_at_mut_gives_disjoint_writable_halves() {
    let s = Session::global();
    let mut b = [0u64; 1];
    let mut g = seg(&mut b, &s);
    let (mut lo, mut hi) = g.split_at_mut(3).unwrap();
    lo.fill(1).unwrap();
    hi.fill(2).unwrap();
    assert!(hi.set(5, 9u8).is_err());
    assert_eq!(g.to_vec().unwrap(), [1, 1, 1, 2, 2, 2, 2, 2]);
    assert!(g.split_at_mut(9).is_err());
}

#[test]
fn copies_are_memmoves() {
    let s = Session::global();
    let mut b = [0u64; 1];
    let mut g = seg(&mut b, &s);
    g.copy_from_slice(0, &[1u8, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    g.copy_within(0, 2, 6).unwrap();
    assert_eq!(g.to_vec().unwrap(), [1, 2, 1, 2, 3, 4, 5, 6]);
    g.copy_within(2, 0, 6).unwrap();
    assert_eq!(g.to_vec().unwrap(), [1, 2, 3, 4, 5, 6, 5, 6]);
    assert!(g.copy_within(0, 3, 6).is_err());
    assert!(g.copy_within(usize::MAX, 0, 2).is_err());

    let mut c = [0u64; 1];
    let mut d = seg(&mut c, &s);
    Segment::copy(&g, 4, &mut d, 1, 4).unwrap();
    assert_eq!(d.to_vec().unwrap(), [0, 5, 6, 5, 6, 0, 0, 0]);
    assert!(matches!(
        Segment::copy(&g, 5, &mut d, 0, 4),
        Err(Error::OutOfBounds { .. })
    ));
    let mut big = [0u64; 2];
    let big = seg(&mut big, &s);
    assert!(d.copy_from(&big).is_err());
    let h = HeapSegment::from_vec(vec![9; 3]);
    d.copy_from(&h.as_segment()).unwrap();
    assert_eq!(d.get::<u8>(2).unwrap(), 9);
}

#[test]
fn mismatch_reports_first_difference_or_prefix_length() {
    let s = Session::global();
    let x = HeapSegment::from_vec(vec![1, 2, 3, 4]);
    let y = HeapSegment::from_vec(vec![1, 2, 0, 4]);
    let (x, y) = (x.as_segment(), y.as_segment());
    assert_eq!(x.mismatch(&y).unwrap(), Some(2));
    assert_eq!(x.mismatch(&x.slice(0, 4).unwrap()).unwrap(), None);
    assert_eq!(x.mismatch(&x.slice(0, 1).unwrap()).unwrap(), Some(1));
    let empty = unsafe { Segment::from_raw(Address::NULL, 0, &s) }.unwrap();
    assert_eq!(empty.mismatch(&empty).unwrap(), None);
    assert_eq!(x.mismatch(&empty).unwrap(), Some(0));
}

#[test]
fn clone_into_copies_to_the_allocator() {
    let a = HeapAlloc {
        session: Session::shared(),
        blocks: RefCell::new(Vec::new()),
    };
    let h = HeapSegment::from_vec(vec![3, 1, 4, 1, 5]);
    let c = h.as_segment().clone_into(&a).unwrap();
    assert_eq!(c.to_vec().unwrap(), [3, 1, 4, 1, 5]);
    assert_eq!(c.session(), &a.session);
    assert_eq!(a.blocks.borrow().len(), 1);
}

#[test]
fn elements_iterate_in_chunks_and_report_closed() {
    let s = Session::shared();
    let n = if cfg!(miri) { 1500 } else { 5000 };
    let mut v: Vec<u32> = (0..n).collect();
    let g = unsafe { Segment::from_raw(Address::from_ptr(v.as_mut_ptr()), n as usize * 4, &s) }
        .unwrap();
    let sum: u64 = g
        .elements::<u32>()
        .unwrap()
        .map(|x| x.unwrap() as u64)
        .sum();
    assert_eq!(sum, (n as u64 - 1) * n as u64 / 2);
    assert!(g.slice(0, 6).unwrap().elements::<u32>().is_err());
    assert!(matches!(
        g.slice(2, 8).unwrap().elements::<u32>(),
        Err(Error::Misaligned { .. })
    ));
    let mut it = g.elements::<u32>().unwrap();
    assert_eq!(it.next(), Some(Ok(0)));
    s.close().unwrap();
    // The first chunk was loaded before the close; the next one fails once.
    let rest: Vec<_> = it.collect();
    assert_eq!(rest.last(), Some(&Err(Error::Closed)));
    assert_eq!(rest.iter().filter(|r| r.is_err()).count(), 1);
}

#[test]
fn chunks_cover_the_segment() {
    let h = HeapSegment::from_vec((0..10).collect());
    let seg = h.as_segment();
    let parts: Vec<Vec<u8>> = seg
        .chunks(4)
        .unwrap()
        .map(|c| c.to_vec().unwrap())
        .collect();
    assert_eq!(parts, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    assert_eq!(seg.chunks(4).unwrap().len(), 3);
    assert!(seg.chunks(0).is_err());
    assert!(seg.chunks(4).unwrap().all(|c| c.is_read_only()));
}

#[test]
fn c_strings_are_bounded_by_the_segment() {
    let mut h = HeapSegment::new(8, 1).unwrap();
    let mut g = h.as_segment_mut();
    g.set_cstr(0, "abc").unwrap();
    assert_eq!(g.get_string(0).unwrap(), "abc");
    assert_eq!(g.get_string(1).unwrap(), "bc");
    assert_eq!(g.get_cstr(3).unwrap().as_bytes(), b"");
    g.fill(b'x').unwrap();
    assert!(matches!(g.get_cstr(0), Err(Error::InvalidString { .. })));
    assert!(matches!(g.get_cstr(8), Err(Error::InvalidString { .. })));
    assert!(matches!(g.get_cstr(9), Err(Error::OutOfBounds { .. })));
    assert!(matches!(
        g.get_cstr(usize::MAX),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        g.set_cstr(0, "nul\0inside"),
        Err(Error::InvalidString { .. })
    ));
    assert!(matches!(
        g.set_cstr(1, "1234567"),
        Err(Error::OutOfBounds { .. })
    ));
    g.set_cstr(1, "123456").unwrap();
    g.copy_from_slice(0, &[0xffu8, 0xfe, b'a', 0]).unwrap();
    assert!(matches!(g.get_string(0), Err(Error::InvalidString { .. })));
    assert_eq!(g.get_string_lossy(0).unwrap(), "\u{fffd}\u{fffd}a");
}

#[test]
fn hexdump_and_display_show_the_bytes() {
    let h = HeapSegment::from_vec(b"0123456789abcdefXY".to_vec());
    let dump = h.as_segment().hexdump().unwrap();
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(
        lines[0],
        "00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|"
    );
    assert!(lines[1].starts_with("00000010  58 59"));
    assert!(lines[1].ends_with("|XY|"));
    let shown = h.as_segment().to_string();
    assert!(shown.contains("18 byte(s)"));
    assert!(shown.contains(&dump));
    let s = Session::shared();
    let mut b = [0u64; 1];
    let g = seg(&mut b, &s);
    s.close().unwrap();
    assert!(g.to_string().contains("unreadable"));
    assert_eq!(g.hexdump(), Err(Error::Closed));
}

#[test]
fn cursors_read_write_seek_and_hold_the_session() {
    let s = Session::shared();
    let mut b = [0u64; 2];
    let mut g = seg(&mut b, &s);
    {
        let mut w = g.cursor_mut().unwrap();
        assert_eq!(s.close(), Err(Error::Busy { acquired: 1 }));
        w.write_all(b"line1\nline2\n").unwrap();
        assert_eq!(w.position(), 12);
        w.seek(SeekFrom::End(-1)).unwrap();
        w.write_all(b"Z").unwrap();
        assert_eq!(
            w.write_all(b"overflow").unwrap_err().kind(),
            std::io::ErrorKind::WriteZero
        );
        assert!(w.seek(SeekFrom::Current(-100)).is_err());
        assert_eq!(w.seek(SeekFrom::Start(100)).unwrap(), 100);
        assert_eq!(w.write(b"x").unwrap(), 0);
    }
    let mut r = g.cursor().unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "line1\n");
    assert_eq!(r.fill_buf().unwrap()[..5], *b"line2");
    r.consume(4);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert_eq!(rest.len(), 16 - 10);
    assert_eq!(rest[0], b'2');
    assert_eq!(*rest.last().unwrap(), b'Z');
    assert_eq!(r.read(&mut [0u8; 4]).unwrap(), 0);
    drop(r);
    s.close().unwrap();
    assert_eq!(g.cursor().unwrap_err(), Error::Closed);
}

#[test]
fn atomic_views_check_alignment_bounds_and_guard() {
    let s = Session::shared();
    let other = Session::shared();
    let mut b = [0u64; 2];
    let mut g = seg(&mut b, &s);
    let og = other.acquire().unwrap();
    assert!(matches!(g.atomics(&og), Err(Error::InvalidArgument { .. })));
    let guard = s.acquire().unwrap();
    let v = g.atomics(&guard).unwrap();
    assert_eq!(v.len(), 16);
    assert!(matches!(v.atomic_u64(4), Err(Error::Misaligned { .. })));
    assert!(matches!(v.atomic_u32(6), Err(Error::Misaligned { .. })));
    assert!(matches!(v.atomic_u32(14), Err(Error::OutOfBounds { .. })));
    assert!(matches!(v.atomic_u32(16), Err(Error::OutOfBounds { .. })));
    assert!(matches!(
        v.atomic_u16(usize::MAX - 1),
        Err(Error::OutOfBounds { .. })
    ));
    v.atomic_u8(15).unwrap().store(1, Ordering::Relaxed);
    v.atomic_i32(0).unwrap().store(-1, Ordering::Relaxed);
    v.atomic_i64(8).unwrap().fetch_add(2, Ordering::Relaxed);
    assert_eq!(
        v.atomic_usize(8).unwrap().load(Ordering::Relaxed),
        2 + (1usize << 56)
    );
    drop(guard);
    assert_eq!(g.get::<i32>(0).unwrap(), -1);
}

#[test]
fn two_threads_share_a_segment_through_atomic_views_and_guards() {
    let iters = if cfg!(miri) { 20 } else { 10_000 };
    let s = Session::shared();
    let mut b = [0u64; 2];
    let mut g = seg(&mut b, &s);
    {
        let guard = s.acquire().unwrap();
        let view = g.atomics(&guard).unwrap();
        std::thread::scope(|t| {
            for _ in 0..2 {
                t.spawn(move || {
                    let c = view.atomic_u64(0).unwrap();
                    let hi = view.atomic_u32(8).unwrap();
                    for _ in 0..iters {
                        c.fetch_add(1, Ordering::Relaxed);
                        hi.fetch_max(7, Ordering::AcqRel);
                    }
                });
            }
            assert_eq!(s.close(), Err(Error::Busy { acquired: 1 }));
        });
    }
    assert_eq!(g.get::<u64>(0).unwrap(), 2 * iters);
    assert_eq!(g.get::<u32>(8).unwrap(), 7);

    // Then both threads read it under their own guards, in place.
    let shared = &g;
    let sums: Vec<u64> = std::thread::scope(|t| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                t.spawn(move || {
                    let s = shared.session();
                    let guard = s.acquire().unwrap();
                    let view = shared.guarded(&guard).unwrap();
                    view.as_slice_of::<u64>().unwrap().iter().sum::<u64>()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(sums, [2 * iters + 7, 2 * iters + 7]);
    s.close().unwrap();
}

#[test]
fn guarded_views_skip_liveness_but_check_shape() {
    let s = Session::shared();
    let mut b = [0u64; 2];
    let mut g = seg(&mut b, &s);
    let guard = s.acquire().unwrap();
    {
        let mut w = g.guarded_mut(&guard).unwrap();
        w.as_mut_slice_of::<u32>()
            .unwrap()
            .copy_from_slice(&[1, 2, 3, 4]);
        w.copy_within(0, 4, 4).unwrap();
        assert_eq!(w.get::<u32>(4).unwrap(), 1);
        w.set(12, 9u32).unwrap();
        assert!(w.set(13, 9u32).is_err());
        assert!(w.copy_from_slice(15, &[1, 2]).is_err());
        w.copy_from_slice(14, &[1, 2]).unwrap();
        assert_eq!(w.as_slice()[14..], [1, 2]);
        assert_eq!(w.as_slice_of::<u64>().unwrap().len(), 2);
    }
    let r = g.slice(0, 12).unwrap();
    let v = r.guarded(&guard).unwrap();
    assert_eq!(v.as_slice_of::<u32>().unwrap(), &[1, 1, 3]);
    assert!(matches!(
        v.as_slice_of::<u64>(),
        Err(Error::InvalidArgument { .. })
    ));
    let odd = g.slice(1, 8).unwrap();
    assert!(matches!(
        odd.guarded(&guard).unwrap().as_slice_of::<u32>(),
        Err(Error::Misaligned { .. })
    ));
    assert_eq!(
        odd.guarded(&guard).unwrap().get_unaligned::<u8>(0).unwrap(),
        0
    );
    let other = Session::shared();
    let og = other.acquire().unwrap();
    assert!(matches!(g.guarded(&og), Err(Error::InvalidArgument { .. })));
}

#[test]
fn closed_sessions_fail_every_access() {
    let s = Session::shared();
    let mut b = [0u64; 2];
    let mut g = seg(&mut b, &s);
    s.close().unwrap();
    assert_eq!(g.get::<u8>(0), Err(Error::Closed));
    assert_eq!(g.set(0, 1u8), Err(Error::Closed));
    assert_eq!(g.fill(0), Err(Error::Closed));
    assert_eq!(g.to_vec(), Err(Error::Closed));
    assert_eq!(g.get_cstr(0), Err(Error::Closed));
    assert_eq!(g.copy_within(0, 1, 1), Err(Error::Closed));
    assert_eq!(g.mismatch(&g.slice(0, 1).unwrap()), Err(Error::Closed));
    assert!(s.acquire().is_err());
    // Bounds are checked first: bad input reports the bad input.
    assert!(matches!(g.get::<u8>(99), Err(Error::OutOfBounds { .. })));
}

#[test]
fn confined_segments_refuse_other_threads() {
    let s = Session::confined();
    let mut b = [0u64; 1];
    let mut g = seg(&mut b, &s);
    g.set(0, 5u8).unwrap();
    let seg_ref = &g;
    std::thread::scope(|t| {
        t.spawn(move || {
            assert!(matches!(
                seg_ref.get::<u8>(0),
                Err(Error::WrongThread { .. })
            ));
            assert!(matches!(seg_ref.to_vec(), Err(Error::WrongThread { .. })));
            assert!(matches!(seg_ref.cursor(), Err(Error::WrongThread { .. })));
        });
    });
    assert_eq!(g.get::<u8>(0).unwrap(), 5);
    s.close().unwrap();
}

#[test]
fn null_and_empty_segments_behave() {
    let s = Session::global();
    assert_eq!(
        unsafe { Segment::from_raw(Address::NULL, 1, &s) }.unwrap_err(),
        Error::NullAddress
    );
    assert!(matches!(
        unsafe { Segment::from_raw(Address::new(usize::MAX), 2, &s) },
        Err(Error::OutOfBounds { .. })
    ));
    let mut e = unsafe { Segment::from_raw(Address::NULL, 0, &s) }.unwrap();
    assert_eq!(e.to_vec().unwrap(), Vec::<u8>::new());
    e.fill(1).unwrap();
    assert!(e.get::<u8>(0).is_err());
    assert_eq!(e.elements::<u64>().unwrap().count(), 0);
    assert_eq!(e.chunks(3).unwrap().count(), 0);
    assert!(matches!(e.get_cstr(0), Err(Error::InvalidString { .. })));
    assert_eq!(e.hexdump().unwrap(), "");
    let g = s.acquire().unwrap();
    assert_eq!(e.guarded(&g).unwrap().as_slice(), &[] as &[u8]);
    assert!(e.atomics(&g).unwrap().atomic_u8(0).is_err());
}

#[test]
fn borrowed_rust_memory_is_lent_for_the_closure() {
    let mut v = [0u16; 4];
    let addr = Segment::with_slice(&mut v, |seg| {
        seg.set_at_index(2, 7u16).unwrap();
        seg.set_be(0, 0x0102u16).unwrap();
        assert!(seg.get::<u16>(8).is_err());
        assert_eq!(seg.session().kind(), memscope::SessionKind::Confined);
        seg.address()
    });
    assert_eq!(addr, Address::from_ptr(v.as_ptr()));
    assert_eq!(v[2], 7);
    assert_eq!(v[0], u16::from_be(0x0102));
    let sum = Segment::with_slice_ref(&[true, false, true], |seg| {
        (0..3).filter(|&i| seg.get::<bool>(i).unwrap()).count()
    });
    assert_eq!(sum, 2);
    let n = Segment::with_slice_ref::<u8, _>(&[], |seg| seg.len());
    assert_eq!(n, 0);
}

#[test]
fn heap_segments_own_aligned_zeroed_bytes() {
    let mut h = HeapSegment::new(32, 32).unwrap();
    assert_eq!(h.as_segment().address().get() % 32, 0);
    assert_eq!(h.to_vec().unwrap(), [0u8; 32]);
    h.as_segment_mut().set(24, u64::MAX).unwrap();
    assert_eq!(h.as_segment().get::<u64>(24).unwrap(), u64::MAX);
    assert!(h.as_segment().as_read_only().is_read_only());
    assert!(HeapSegment::new(8, 0).is_err());
    assert!(HeapSegment::new(usize::MAX, 8).is_err());
    let z = HeapSegment::new(0, 16).unwrap();
    assert!(z.is_empty());
    assert_eq!(z.as_segment().address().get() % 16, 0);
    let e = HeapSegment::from_vec(Vec::new());
    assert_eq!(e.to_vec().unwrap(), Vec::<u8>::new());
}

#[test]
fn segments_and_views_have_the_documented_markers() {
    fn send_sync<T: Send + Sync>() {}
    fn copy<T: Copy>() {}
    send_sync::<Segment<'static>>();
    send_sync::<memscope::segment::AtomicView<'static>>();
    copy::<memscope::segment::AtomicView<'static>>();
    send_sync::<HeapSegment>();
}

#[test]
fn next_chunk_hands_out_the_rest_in_runs() {
    let s = Session::shared();
    let n = 2100usize;
    let mut v: Vec<u16> = (0..n as u16).collect();
    let g = unsafe { Segment::from_raw(Address::from_ptr(v.as_mut_ptr()), n * 2, &s) }.unwrap();
    let mut it = g.elements::<u16>().unwrap();
    assert_eq!(it.next(), Some(Ok(0)));
    assert_eq!(it.next(), Some(Ok(1)));
    let mut lens = Vec::new();
    let mut all = vec![0u16, 1];
    while let Some(c) = it.next_chunk() {
        let c = c.unwrap();
        lens.push(c.len());
        all.extend_from_slice(c);
    }
    assert_eq!(lens, [1022, 1024, 52]);
    assert_eq!(all, v);
    assert!(it.next().is_none());
}

#[test]
fn lent_slices_are_confined_to_the_lending_thread() {
    let mut v = [1u8, 2];
    Segment::with_slice(&mut v, |seg| {
        let seg = &*seg;
        std::thread::scope(|t| {
            t.spawn(|| assert!(matches!(seg.get::<u8>(0), Err(Error::WrongThread { .. }))));
        });
        assert_eq!(seg.get::<u8>(1).unwrap(), 2);
    });
}

#[test]
fn debug_stays_short_and_display_elides_big_segments() {
    let h = HeapSegment::new(5000, 8).unwrap();
    let seg = h.as_segment();
    let d = format!("{seg:?}");
    assert!(d.starts_with("Segment {") && d.len() < 200, "{d}");
    let shown = seg.to_string();
    assert!(shown.contains("read-only"));
    assert!(
        shown.ends_with("... 904 more byte(s)\n"),
        "{}",
        &shown[shown.len() - 40..]
    );
    assert!(format!("{h:?}").starts_with("HeapSegment"));
}

// ----- checks hoisted out of loops (issue 15) ------------------------------------

#[test]
fn read_range_checks_once_then_hands_the_range_as_a_slice() {
    for s in [Session::global(), Session::confined(), Session::shared()] {
        let mut b: Vec<u64> = (0..16).collect();
        let sg = seg(&mut b, &s);
        assert_eq!(
            sg.read_range::<u32, _>(8, 4, |xs| xs.to_vec()).unwrap(),
            [1, 0, 2, 0]
        );
        assert_eq!(sg.read_range::<u64, _>(120, 1, |xs| xs[0]).unwrap(), 15);
        assert_eq!(sg.read_range::<u64, _>(128, 0, |xs| xs.len()).unwrap(), 0);
        assert!(matches!(
            sg.read_range::<u64, _>(8, 16, |_| ()),
            Err(Error::OutOfBounds { offset: 8, .. })
        ));
        assert!(matches!(
            sg.read_range::<u64, _>(0, usize::MAX, |_| ()),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            sg.read_range::<u64, _>(4, 1, |_| ()),
            Err(Error::Misaligned { align: 8, .. })
        ));
        // `f` does not run on an error.
        let mut ran = false;
        let _ = sg.read_range::<u64, _>(4, 1, |_| ran = true);
        assert!(!ran);
    }
}

#[test]
fn read_range_is_a_window_close_from_inside_is_in_use_and_closed_refuses() {
    for s in [Session::confined(), Session::shared()] {
        let mut b = [7u64; 2];
        let sg = seg(&mut b, &s);
        let r = sg.read_range::<u64, _>(0, 2, |xs| (s.close(), xs[1]));
        assert_eq!(r.unwrap(), (Err(Error::InUse), 7));
        s.close().unwrap();
        assert_eq!(
            sg.read_range::<u64, _>(0, 2, |xs| xs[0]).unwrap_err(),
            Error::Closed
        );
        assert_eq!(
            sg.fold_chunks::<u64, u64>(0, |a, xs| a + xs[0])
                .unwrap_err(),
            Error::Closed
        );
    }
}

#[test]
fn read_range_refuses_another_thread_on_a_confined_session() {
    let s = Session::confined();
    let mut b = [1u64; 2];
    let addr = Address::from_ptr(b.as_mut_ptr());
    let owner = s.clone();
    std::thread::scope(|t| {
        t.spawn(|| {
            // SAFETY: `b` outlives the segment; only read here.
            let sg = unsafe { Segment::from_raw(addr, 16, &owner) }.unwrap();
            assert!(matches!(
                sg.read_range::<u64, _>(0, 2, |xs| xs[0]),
                Err(Error::WrongThread { .. })
            ));
            assert!(matches!(
                sg.fold_chunks::<u64, u64>(0, |a, _| a),
                Err(Error::WrongThread { .. })
            ));
        });
    });
}

#[test]
fn fold_chunks_covers_every_element_once_in_order() {
    let per = Segment::FOLD_CHUNK_BYTES / 8;
    let n = 2 * per + 3; // three chunks, the last one short
    let s = Session::shared();
    let mut b: Vec<u64> = (0..n as u64).collect();
    let sg = seg(&mut b, &s);
    let (sum, chunks, next) = sg
        .fold_chunks::<u64, (u64, usize, u64)>((0, 0, 0), |(sum, c, next), xs| {
            assert!(!xs.is_empty() && xs.len() <= per);
            assert_eq!(xs[0], next, "chunks in order, none skipped");
            (sum + xs.iter().sum::<u64>(), c + 1, xs[xs.len() - 1] + 1)
        })
        .unwrap();
    assert_eq!(chunks, 3);
    assert_eq!(next, n as u64);
    assert_eq!(sum, (n as u64 - 1) * n as u64 / 2);
    // Length not a multiple of the element, misaligned start, empty.
    assert!(matches!(
        sg.slice(0, 12)
            .unwrap()
            .fold_chunks::<u64, ()>((), |_, _| ()),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        sg.slice(4, 16)
            .unwrap()
            .fold_chunks::<u64, ()>((), |_, _| ()),
        Err(Error::Misaligned { .. })
    ));
    assert_eq!(
        sg.slice(0, 0)
            .unwrap()
            .fold_chunks::<u64, u32>(5, |_, _| 0)
            .unwrap(),
        5
    );
}
