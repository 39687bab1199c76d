//! The front-door API (issue 18): the prelude, root re-exports, allocation
//! by layout and by value.

use memscope::marshal::AllocateExt;
use memscope::prelude::*;

c_struct! {
    /// A struct with padding after `tag`.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Pair {
        /// One byte.
        pub tag: u8,
        /// Eight bytes, 8-aligned.
        pub v: u64,
    }
}

#[test]
fn allocate_layout_of_overflow_is_an_error_not_a_panic() {
    let arena = Arena::confined();
    assert!(matches!(
        arena.allocate_layout_of(&c::INT, usize::MAX),
        Err(Error::InvalidLayout { .. })
    ));
    assert!(matches!(
        arena.allocate_layout_of(
            &MemoryLayout::sequence(1 << 40, c::LONG_LONG).unwrap(),
            1 << 30
        ),
        Err(Error::InvalidLayout { .. })
    ));
}

#[test]
fn allocate_layout_of_rounds_each_element_to_its_alignment() {
    let arena = Arena::confined();
    let l = MemoryLayout::c_struct([c::DOUBLE, c::CHAR]).unwrap(); // size 16
    let seg = arena.allocate_layout_of(&l, 3).unwrap();
    assert_eq!(seg.len(), 48);
    assert_eq!(seg.address().as_ptr::<u8>() as usize % 8, 0);
    assert!(seg.to_vec().unwrap().iter().all(|&b| b == 0));
}

#[test]
fn allocate_from_writes_the_value_and_zeroes_its_padding() {
    // Dirty the arena's memory first so zeroing is observable after a reset
    // (reset keeps the chunk, and the next allocation reuses its bytes).
    let mut arena = Arena::confined();
    arena.allocate(64, 8).unwrap().fill(0xff).unwrap();
    arena.reset();
    assert_eq!(
        arena.allocate_uninit(8, 8).unwrap().get::<u64>(0).unwrap(),
        u64::MAX
    );
    arena.reset();
    let p = Pair {
        tag: 7,
        v: u64::MAX,
    };
    let seg = arena.allocate_from(&p).unwrap();
    assert_eq!(Pair::read_from(&seg, 0).unwrap(), p);
    let bytes = seg.to_vec().unwrap();
    assert_eq!(&bytes[1..8], &[0; 7], "padding is zero");
}

#[test]
fn allocate_from_slice_round_trips_through_read_seq() {
    let arena = Arena::confined();
    let vals = [Pair { tag: 1, v: 2 }, Pair { tag: 3, v: 4 }];
    let seg = arena.allocate_from_slice(&vals).unwrap();
    assert_eq!(seg.len(), 32);
    let mut out = [Pair { tag: 0, v: 0 }; 2];
    memscope::marshal::read_seq_into(&seg, 0, &mut out).unwrap();
    assert_eq!(out, vals);
    let empty: [Pair; 0] = [];
    assert_eq!(arena.allocate_from_slice(&empty).unwrap().len(), 0);
}

#[test]
fn allocate_from_works_on_every_allocator_kind() {
    let s = Session::shared();
    let m = MallocAllocator::new(s.clone()).unwrap();
    assert_eq!(m.allocate_from(&5i32).unwrap().get::<i32>(0).unwrap(), 5);
    let n = stack::frame(|f| f.allocate_from(&6i32).and_then(|g| g.get::<i32>(0))).unwrap();
    assert_eq!(n, 6);
    s.close().unwrap();
    assert_eq!(m.allocate_from(&5i32).unwrap_err(), Error::Closed);
}

#[test]
fn root_re_exports_name_the_same_types() {
    let a: memscope::Arena = memscope::alloc::Arena::confined();
    let _: &dyn Fn() -> memscope::Linker = &memscope::linker::Linker::native;
    assert_eq!(memscope::c::INT.size(), 4);
    drop(a);
}

// ----- owned segments (issue 18.1) -------------------------------------------

fn make_owned_from_a_local_arena() -> OwnedSegment {
    let arena = Arena::shared();
    let mut seg = arena.allocate_owned(16, 8).unwrap();
    seg.set(0, 0x1122_3344_5566_7788u64).unwrap();
    seg
}

#[test]
fn owned_segment_returned_from_the_function_that_made_its_arena_stays_readable() {
    let seg = make_owned_from_a_local_arena();
    // The arena value is gone; its session lives on through the handle.
    assert!(seg.session().is_alive());
    assert_eq!(seg.get::<u64>(0).unwrap(), 0x1122_3344_5566_7788);
    assert_eq!(seg.get::<u64>(8).unwrap(), 0, "zeroed");
    // The last handle is the segment's: dropping it closes the session.
    let probe = seg.session().clone();
    drop(seg);
    assert!(probe.is_alive(), "a second handle keeps it open");
    probe.close().unwrap();
}

#[test]
fn owned_segment_survives_the_drop_of_its_arena_until_the_session_closes() {
    let session = Session::shared();
    let arena = Arena::new(session.clone()).unwrap();
    let mut owned = arena.allocate_owned(64, 8).unwrap();
    // Borrowed segments of the same arena after the owned one are fine too.
    arena.allocate(64, 8).unwrap().fill(0xee).unwrap();
    owned.set(0, 0xabcd_u64).unwrap();
    drop(arena); // must not free or pool the chunk
    // Chunks given back would be reused here (the pool hands them out) or
    // freed (trim_pool; Miri would report the use after free below).
    memscope::alloc::trim_pool();
    let other = Arena::new(session.clone()).unwrap();
    for _ in 0..4 {
        other.allocate(64, 8).unwrap().fill(0x11).unwrap();
    }
    assert_eq!(owned.get::<u64>(0).unwrap(), 0xabcd);
    owned.as_segment_mut().fill(0x5a).unwrap();
    assert!(owned.to_vec().unwrap().iter().all(|&b| b == 0x5a));
    // A guard makes close fail and frees nothing.
    let g = session.acquire().unwrap();
    assert_eq!(session.close(), Err(Error::Busy { acquired: 1 }));
    assert_eq!(owned.as_segment().guarded(&g).unwrap().as_slice()[63], 0x5a);
    drop(g);
    session.close().unwrap();
    assert_eq!(owned.get::<u8>(0), Err(Error::Closed));
    assert_eq!(owned.set(0, 1u8), Err(Error::Closed));
    assert_eq!(owned.to_vec(), Err(Error::Closed));
    assert_eq!(owned.slice(0, 8).unwrap().get::<u64>(0), Err(Error::Closed));
}

#[test]
fn arena_reset_after_an_owned_allocation_never_reuses_its_bytes() {
    let mut arena = Arena::confined();
    arena.set_allocation_limit(Some(1 << 20));
    let mut owned = arena.allocate_owned(32, 8).unwrap();
    owned.set(0, 7u64).unwrap();
    let (lo, hi) = (owned.address().get(), owned.address().get() + 32);
    for _ in 0..3 {
        arena.reset();
        assert_eq!(
            arena.allocation_limit(),
            Some(1 << 20),
            "reset keeps the limit"
        );
        for _ in 0..8 {
            let mut s = arena.allocate(32, 8).unwrap();
            let a = s.address().get();
            assert!(
                a + 32 <= lo || a >= hi,
                "reset handed out an owned segment's bytes"
            );
            assert_eq!(s.get::<u64>(0).unwrap(), 0);
            s.fill(0xff).unwrap();
        }
    }
    assert_eq!(owned.get::<u64>(0).unwrap(), 7);
    assert_eq!(arena.session(), owned.session(), "same session after reset");
    drop(arena);
    assert_eq!(owned.get::<u64>(0).unwrap(), 7);
}

#[test]
fn owned_segment_of_a_confined_session_refuses_other_threads() {
    let arena = Arena::confined();
    let mut owned = arena.allocate_owned(8, 8).unwrap();
    owned.set(0, 3u64).unwrap();
    // Moved to another thread ('static: no scope), it refuses every access
    // there, and comes back working.
    let owned = std::thread::spawn(move || {
        assert!(matches!(
            owned.get::<u64>(0),
            Err(Error::WrongThread { .. })
        ));
        let mut o = owned;
        assert!(matches!(o.set(0, 1u64), Err(Error::WrongThread { .. })));
        assert!(matches!(o.to_vec(), Err(Error::WrongThread { .. })));
        assert!(matches!(
            o.session().close(),
            Err(Error::WrongThread { .. })
        ));
        o
    })
    .join()
    .unwrap();
    assert_eq!(owned.get::<u64>(0).unwrap(), 3);
    // Dropped on another thread while the arena keeps the session: fine.
    std::thread::spawn(move || drop(owned)).join().unwrap();
    assert!(arena.session().is_alive());
    // The arena cannot allocate owned segments from another thread either.
    let r = std::thread::scope(|s| {
        s.spawn(|| arena.allocate_owned(8, 8).map(drop))
            .join()
            .unwrap()
    });
    assert!(matches!(r, Err(Error::WrongThread { .. })));
}

#[test]
fn owned_segment_of_a_confined_session_dropped_last_on_another_thread_closes_it() {
    let owned = {
        let arena = Arena::confined();
        arena.allocate_owned(8, 8).unwrap()
    };
    // The owned segment holds the only handle; dropping it elsewhere closes
    // the session there (the last handle's drop), freeing nothing twice.
    std::thread::spawn(move || drop(owned)).join().unwrap();
}

#[test]
fn owned_halves_of_a_shared_session_are_written_from_two_threads() {
    let seg = Arena::shared().allocate_owned(64, 8).unwrap();
    let (a, b) = seg.split_at(32).unwrap();
    let handles: Vec<_> = [(a, 1u8), (b, 2u8)]
        .into_iter()
        .map(|(mut part, v)| {
            std::thread::spawn(move || {
                part.as_segment_mut().fill(v).unwrap();
                part
            })
        })
        .collect();
    let parts: Vec<OwnedSegment> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(parts[0].to_vec().unwrap().iter().all(|&x| x == 1));
    assert!(parts[1].to_vec().unwrap().iter().all(|&x| x == 2));
    assert_eq!(parts[1].address().get(), parts[0].address().get() + 32);
    // Closing from any thread (shared) makes both parts fail.
    let s = parts[0].session().clone();
    std::thread::spawn(move || s.close().unwrap())
        .join()
        .unwrap();
    assert_eq!(parts[0].get::<u8>(0), Err(Error::Closed));
    assert_eq!(parts[1].get::<u8>(0), Err(Error::Closed));
}

#[test]
fn owned_segment_keeps_an_auto_session_open() {
    let arena = Arena::new(Session::auto()).unwrap();
    let mut owned = arena.allocate_owned(8, 8).unwrap();
    drop(arena);
    owned.set(0, 9u64).unwrap();
    assert_eq!(owned.get::<u64>(0).unwrap(), 9);
    assert!(matches!(
        owned.session().close(),
        Err(Error::NotCloseable { .. })
    ));
}

#[test]
fn owned_segment_views_and_parts_check_bounds_and_writability() {
    let arena = Arena::shared();
    let mut owned = arena.allocate_owned(16, 8).unwrap();
    assert!(owned.as_segment().is_read_only());
    assert_eq!(owned.as_segment().set(0, 1u8), Err(Error::ReadOnly));
    assert!(!owned.as_segment_mut().is_read_only());
    assert!(matches!(owned.slice(8, 9), Err(Error::OutOfBounds { .. })));
    assert!(matches!(
        owned.slice_mut(usize::MAX, 2),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        owned.get::<u64>(12),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(owned.get::<u64>(4), Err(Error::Misaligned { .. })));
    owned.slice_mut(8, 8).unwrap().set(0, 4u64).unwrap();
    let tail = owned.into_slice(8, 8).unwrap();
    assert_eq!(tail.get::<u64>(0).unwrap(), 4);
    assert!(matches!(
        tail.into_slice(4, 5),
        Err(Error::OutOfBounds { .. })
    ));
    let seg = arena.allocate_owned(8, 8).unwrap();
    assert!(matches!(seg.split_at(9), Err(Error::OutOfBounds { .. })));
    let mut ro = arena.allocate_owned(8, 8).unwrap().into_read_only();
    assert_eq!(ro.set(0, 1u64), Err(Error::ReadOnly));
    assert_eq!(ro.as_segment_mut().set(0, 1u64), Err(Error::ReadOnly));
    let (mut a, _) = ro.split_at(4).unwrap();
    assert_eq!(a.set(0, 1u32), Err(Error::ReadOnly), "parts stay read-only");
    // A failed allocation is an error, not a pinned half-state.
    assert!(matches!(
        arena.allocate_owned(8, 3),
        Err(Error::InvalidLayout { .. })
    ));
    arena.close().unwrap();
    assert_eq!(arena.allocate_owned(8, 8).unwrap_err(), Error::Closed);
}

#[test]
fn owned_segments_work_with_a_bridged_arena() {
    use memscope::allocator_api2::vec::Vec as AVec;
    let session = Session::shared();
    let arena = Arena::new(session.clone()).unwrap();
    let owned = arena.allocate_owned(8, 8).unwrap();
    {
        let mut v = AVec::new_in(&arena);
        v.extend([1u64, 2, 3]);
        assert_eq!(v.iter().sum::<u64>(), 6);
    }
    drop(arena);
    assert_eq!(owned.get::<u64>(0).unwrap(), 0);
    session.close().unwrap();
    assert_eq!(owned.get::<u64>(0), Err(Error::Closed));
}

// ----- layout paths with free indices, packed structs (issue 18.4) ----------

#[test]
fn open_path_elements_give_strided_offsets_checked_per_index() {
    use memscope::layout::PathElement::{Field, Index, Open};
    let point =
        MemoryLayout::c_struct([c::CHAR.with_name("tag"), c::DOUBLE.with_name("w")]).unwrap();
    let rows = MemoryLayout::sequence(5, point).unwrap();
    let table = MemoryLayout::c_struct([c::INT.with_name("n"), rows.with_name("rows")]).unwrap();
    // rows start at 8 (double alignment), each row is 16 bytes, w at +8.
    let h = table.offset_handle("rows[*].w").unwrap();
    assert_eq!(
        (h.base(), h.strides(), h.free_indices()),
        (16, &[16][..], 1)
    );
    for i in 0..5 {
        assert_eq!(h.offset(&[i]).unwrap(), 16 + 16 * i);
        assert_eq!(
            table
                .byte_offset_with(&[Field("rows"), Open, Field("w")], &[i])
                .unwrap(),
            table
                .byte_offset_of(&[Field("rows"), Index(i), Field("w")])
                .unwrap()
        );
    }
    assert!(matches!(h.offset(&[5]), Err(Error::InvalidLayout { .. })));
    assert!(matches!(
        h.offset(&[usize::MAX]),
        Err(Error::InvalidLayout { .. })
    ));
    assert!(matches!(h.offset(&[]), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        h.offset(&[0, 0]),
        Err(Error::InvalidArgument { .. })
    ));
    // Open elements where there is no sequence, and fixed-path accessors
    // given an open element, are errors.
    assert!(matches!(
        table.offset_handle("n[*]"),
        Err(Error::InvalidLayout { .. })
    ));
    assert!(matches!(
        table.offset_handle("[*]"),
        Err(Error::InvalidLayout { .. })
    ));
    assert!(matches!(
        table.byte_offset("rows[*].w"),
        Err(Error::InvalidLayout { .. })
    ));
    assert!(matches!(
        table.offset_handle("rows[*].zz"),
        Err(Error::InvalidLayout { .. })
    ));
    // Two free indices: row-major strides.
    let grid = MemoryLayout::sequence(3, MemoryLayout::sequence(4, c::SHORT).unwrap()).unwrap();
    let g = grid.offset_handle("[*][*]").unwrap();
    assert_eq!(g.strides(), &[8, 2]);
    let mut seen = std::collections::HashSet::new();
    for i in 0..3 {
        for j in 0..4 {
            let o = g.offset(&[i, j]).unwrap();
            assert!(o + 2 <= grid.size());
            assert!(seen.insert(o), "two index pairs share an offset");
        }
    }
    assert_eq!(
        grid.offset_handle("[1][*]").unwrap().offset(&[3]).unwrap(),
        8 + 6
    );
    // A flexible array member (count 0) has no valid index.
    let flex = MemoryLayout::c_struct([
        c::INT.with_name("n"),
        MemoryLayout::sequence(0, c::INT).unwrap().with_name("v"),
    ])
    .unwrap();
    assert!(flex.offset_handle("v[*]").unwrap().offset(&[0]).is_err());
}

#[test]
fn offset_handles_read_and_write_a_field_of_every_element() {
    let point = MemoryLayout::c_struct([c::INT.with_name("x"), c::FLOAT.with_name("y")]).unwrap();
    let pts = MemoryLayout::sequence(6, point).unwrap();
    let x = pts.offset_handle("[*].x").unwrap();
    let y = pts.offset_handle("[*].y").unwrap();
    let arena = Arena::confined();
    let mut seg = arena.allocate(pts.size(), pts.align()).unwrap();
    for i in 0..6 {
        x.set(&mut seg, &[i], i as i32 * 3).unwrap();
        y.set(&mut seg, &[i], i as f32 / 2.0).unwrap();
    }
    for i in 0..6 {
        assert_eq!(seg.get::<i32>(8 * i).unwrap(), i as i32 * 3);
        assert_eq!(y.get::<f32>(&seg, &[i]).unwrap(), i as f32 / 2.0);
    }
    // Wrong value type: size or class differs.
    assert!(matches!(
        x.get::<i64>(&seg, &[0]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        x.get::<f32>(&seg, &[0]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        y.set(&mut seg, &[0], 1i32),
        Err(Error::InvalidArgument { .. })
    ));
    // Selecting a struct, not a value, is refused by get/set.
    let whole = pts.offset_handle("[*]").unwrap();
    assert_eq!(whole.offset(&[2]).unwrap(), 16);
    assert!(whole.get::<u64>(&seg, &[0]).is_err());
    // Segment checks still apply: a shorter segment is out of bounds.
    let short = seg.slice(0, 16).unwrap();
    assert!(matches!(
        x.get::<i32>(&short, &[2]),
        Err(Error::OutOfBounds { .. })
    ));
    // A packed layout's members are read unaligned, big-endian honoured.
    let p = MemoryLayout::packed([
        c::CHAR.with_name("c"),
        c::INT.with_name("i").with_order(ByteOrder::Big),
    ])
    .unwrap();
    let ps = MemoryLayout::sequence(3, p).unwrap();
    let i_h = ps.offset_handle("[*].i").unwrap();
    assert_eq!(i_h.strides(), &[5]);
    let mut buf = arena.allocate(ps.size(), 1).unwrap();
    i_h.set(&mut buf, &[1], 0x0102_0304i32).unwrap();
    assert_eq!(buf.to_vec().unwrap()[6..10], [1, 2, 3, 4]);
    assert_eq!(i_h.get::<i32>(&buf, &[1]).unwrap(), 0x0102_0304);
}

c_struct! {
    /// `struct __attribute__((packed)) { char c; int64_t v; uint16_t s; double d; }`
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub packed struct Packed {
        /// At 0.
        pub c: u8,
        /// At 1 (unaligned).
        pub v: i64,
        /// At 9.
        pub s: u16,
        /// At 11.
        pub d: f64,
    }
}

c_struct! {
    /// A normal struct holding a packed one: the packed member has
    /// alignment 1.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct HoldsPacked {
        /// At 0.
        pub a: u8,
        /// At 1.
        pub p: Packed,
        /// At 20 (4-aligned).
        pub n: u32,
    }
}

#[test]
fn packed_c_struct_has_cs_packed_layout_and_round_trips_at_any_offset() {
    use memscope::marshal::Marshal;
    assert_eq!((Packed::SIZE, Packed::ALIGN), (19, 1));
    let l = Packed::layout();
    let want = MemoryLayout::packed([
        u8::layout().with_name("c"),
        i64::layout().with_name("v"),
        u16::layout().with_name("s"),
        f64::layout().with_name("d"),
    ])
    .unwrap()
    .with_name("Packed");
    assert_eq!(l, want, "{l}");
    assert_eq!(l.byte_offset("d").unwrap(), 11);
    assert_eq!(
        (
            HoldsPacked::SIZE,
            HoldsPacked::layout().byte_offset("n").unwrap()
        ),
        (24, 20)
    );
    let v = Packed {
        c: 0xaa,
        v: -2,
        s: 0x1234,
        d: 2.5,
    };
    let arena = Arena::confined();
    let mut seg = arena.allocate(64, 8).unwrap();
    for off in [0usize, 1, 3, 7, 13] {
        seg.fill(0).unwrap();
        v.write_to(&mut seg, off).unwrap();
        assert_eq!(Packed::read_from(&seg, off).unwrap(), v);
        assert_eq!(seg.get::<u8>(off).unwrap(), 0xaa);
        assert_eq!(seg.get_unaligned::<i64>(off + 1).unwrap(), -2);
        assert_eq!(seg.get_unaligned::<u16>(off + 9).unwrap(), 0x1234);
        assert_eq!(seg.get_unaligned::<f64>(off + 11).unwrap(), 2.5);
        assert_eq!(
            seg.get::<u8>(off + 19).unwrap(),
            0,
            "nothing written past the size"
        );
    }
    assert!(matches!(
        v.write_to(&mut seg, 50),
        Err(Error::OutOfBounds { .. })
    ));
    let h = HoldsPacked { a: 1, p: v, n: 7 };
    h.write_to(&mut seg, 8).unwrap();
    assert_eq!(HoldsPacked::read_from(&seg, 8).unwrap(), h);
    assert_eq!(seg.get_unaligned::<i64>(8 + 2).unwrap(), -2);
    // Dynamic values agree with the static encoding.
    let dynv = Value::read(&l, &seg, 8 + 1).unwrap();
    assert_eq!(
        dynv,
        Value::Struct(vec![
            Value::U8(0xaa),
            Value::I64(-2),
            Value::U16(0x1234),
            Value::F64(2.5)
        ])
    );
}

// ----- marshaling that allocates (issue 18.3) --------------------------------

mod deep {
    use memscope::marshal::{Decoder, Encoder, MAX_POINTER_DEPTH, Marshal, MarshalIn, encode_in};
    use memscope::prelude::*;

    c_struct! {
        /// `struct node { int32_t v; const char *label; struct node *next; }`
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct CNode {
            /// A value.
            pub v: i32,
            /// `char *`.
            pub label: Address,
            /// `struct node *`, NULL at the end.
            pub next: Address,
        }
    }

    #[derive(Debug, PartialEq)]
    pub struct Node {
        pub v: i32,
        pub label: String,
        pub next: Option<Box<Node>>,
    }

    impl MarshalIn for Node {
        type Flat = CNode;
        fn flatten_in<A: SegmentAllocator + ?Sized>(
            &self,
            enc: &mut Encoder<'_, A>,
        ) -> Result<CNode> {
            Ok(CNode {
                v: self.v,
                label: self.label.flatten_in(enc)?,
                next: self.next.flatten_in(enc)?,
            })
        }
        fn unflatten(c: &CNode, dec: &Decoder<'_, '_>) -> Result<Node> {
            Ok(Node {
                v: c.v,
                label: String::unflatten(&c.label, dec)?,
                next: Option::unflatten(&c.next, dec)?,
            })
        }
    }

    fn list(n: i32) -> Node {
        let mut head = Node {
            v: n,
            label: format!("n{n}"),
            next: None,
        };
        for v in (0..n).rev() {
            head = Node {
                v,
                label: format!("n{v}"),
                next: Some(Box::new(head)),
            };
        }
        head
    }

    #[test]
    fn structs_with_strings_and_pointers_round_trip_through_any_allocator() {
        let l = list(3);
        let arena = Arena::confined();
        let enc = encode_in(&l, &arena).unwrap();
        assert_eq!(enc.segment().len(), CNode::SIZE);
        // 4 labels + 3 boxed nodes.
        assert_eq!(enc.segments().len(), 7);
        let flat = CNode::read_from(enc.segment(), 0).unwrap();
        assert_eq!(enc.decoder().string(flat.label).unwrap(), "n0");
        let second: CNode = enc.decoder().flat(flat.next).unwrap();
        assert_eq!(second.v, 1);
        assert_eq!(enc.decode().unwrap(), l);

        // The same through a stack frame and a prefix allocator.
        stack::frame(|f| {
            assert_eq!(encode_in(&l, f).and_then(|e| e.decode()).unwrap(), l);
        });
        let backing = arena.allocate(1024, 16).unwrap();
        let mut prefix = memscope::alloc::PrefixAllocator::new(backing);
        for _ in 0..2 {
            assert_eq!(encode_in(&l, &prefix).and_then(|e| e.decode()).unwrap(), l);
            prefix.reset();
        }
        // Out of room is an allocator error, not a panic.
        let tiny = arena.allocate(16, 8).unwrap();
        let small = memscope::alloc::SlicingAllocator::new(tiny);
        assert!(matches!(
            encode_in(&l, &small),
            Err(Error::OutOfMemory { .. })
        ));
        // A NUL inside a string is refused at encode time.
        let bad = Node {
            v: 0,
            label: "a\0b".into(),
            next: None,
        };
        assert!(matches!(
            encode_in(&bad, &arena),
            Err(Error::InvalidString { .. })
        ));
        // CString, arrays and slices.
        let cs = std::ffi::CString::new(vec![0xffu8, 1]).unwrap();
        assert_eq!(encode_in(&cs, &arena).unwrap().decode().unwrap(), cs);
        let arr = [Some(Box::new(5u16)), None];
        assert_eq!(encode_in(&arr, &arena).unwrap().decode().unwrap(), arr);
        let mut e = Encoder::new(&arena);
        let p = e.slice(&[list(0), list(1)]).unwrap();
        assert_eq!(e.decoder().slice::<Node>(p, 2).unwrap(), [list(0), list(1)]);
        assert!(matches!(
            e.decoder().slice::<Node>(p, 3),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            e.decoder().slice::<Node>(p, usize::MAX),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn decode_checks_every_pointer_c_may_have_changed() {
        let arena = Arena::confined();
        let l = list(1);
        let mut enc = encode_in(&l, &arena).unwrap();
        let flat = CNode::read_from(enc.segment(), 0).unwrap();
        let label_off = CNode::layout().byte_offset("label").unwrap();
        let next_off = CNode::layout().byte_offset("next").unwrap();
        // A pointer outside the value's segments (an unrelated allocation).
        let stranger = arena.allocate_cstring("elsewhere").unwrap();
        enc.segment_mut()
            .set(label_off, stranger.address())
            .unwrap();
        assert!(matches!(enc.decode(), Err(Error::InvalidArgument { .. })));
        // A pointer into the middle of a string is fine; one byte before
        // its segment is not.
        enc.segment_mut()
            .set(label_off, Address::new(flat.label.get() + 1))
            .unwrap();
        assert_eq!(enc.decode().unwrap().label, "0");
        enc.segment_mut()
            .set(label_off, Address::new(flat.label.get() - 1))
            .unwrap();
        assert!(enc.decode().is_err());
        // NULL where a string must be.
        enc.segment_mut().set(label_off, Address::NULL).unwrap();
        assert_eq!(enc.decode().unwrap_err(), Error::NullAddress);
        enc.segment_mut().set(label_off, flat.label).unwrap();
        // A `next` pointer into the middle of a node: not enough bytes left.
        enc.segment_mut()
            .set(next_off, Address::new(flat.next.get() + 8))
            .unwrap();
        assert!(matches!(enc.decode(), Err(Error::InvalidArgument { .. })));
        enc.segment_mut().set(next_off, flat.next).unwrap();
        assert_eq!(enc.decode().unwrap(), l);
        // A string whose NUL C overwrote: no terminator inside its segment.
        let mut e = Encoder::new(&arena);
        let s = e.cstring("ab").unwrap();
        drop(e);
        let mut raw = arena.allocate_cstring("xy").unwrap();
        raw.set(2, b'z').unwrap();
        let segs = [raw];
        assert!(matches!(
            Decoder::new(&segs).string(segs[0].address()),
            Err(Error::InvalidString { .. })
        ));
        assert!(matches!(
            Decoder::new(&segs).string(s),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn a_cycle_written_by_c_is_an_error_not_a_stack_overflow() {
        let arena = Arena::confined();
        let l = list(2);
        let mut enc = encode_in(&l, &arena).unwrap();
        let next_off = CNode::layout().byte_offset("next").unwrap();
        // Point the last node back at the second: n1 -> n2 -> n1 -> ...
        let first = CNode::read_from(enc.segment(), 0).unwrap();
        let second: CNode = enc.decoder().flat(first.next).unwrap();
        let last_addr = second.next;
        // Copies of the nodes' segments (the originals stay borrowed by
        // `enc`), then the two copied nodes pointed at each other.
        let mut regions: Vec<Segment<'_>> = Vec::new();
        for s in enc.segments() {
            let mut c = arena.allocate(s.len(), 8).unwrap();
            c.copy_from(s).unwrap();
            regions.push(c);
        }
        let index_of = |a: Address| {
            enc.segments()
                .iter()
                .position(|s| s.address() == a)
                .unwrap()
        };
        let (i_second, i_last) = (index_of(first.next), index_of(last_addr));
        let (second_copy, last_copy) = (regions[i_second].address(), regions[i_last].address());
        regions[i_second].set(next_off, last_copy).unwrap();
        regions[i_last].set(next_off, second_copy).unwrap();
        // Labels still point into the original segments: give both.
        let mut all: Vec<Segment<'_>> = regions;
        for s in enc.segments() {
            all.push(s.as_read_only());
        }
        let dec = Decoder::new(&all);
        let r = dec.value::<Node>(second_copy);
        assert!(
            matches!(r, Err(Error::InvalidArgument { ref reason }) if reason.contains(&MAX_POINTER_DEPTH.to_string())),
            "{r:?}"
        );
        // The untouched original still decodes.
        enc.segment_mut().set(0, 9i32).unwrap();
        assert_eq!(enc.decode().unwrap().v, 9);
    }

    #[test]
    fn decode_after_close_is_closed_and_encode_deeper_than_the_limit_is_an_error() {
        let arena = Arena::shared();
        let enc = encode_in(&list(1), &arena).unwrap();
        arena.close().unwrap();
        assert_eq!(enc.decode().unwrap_err(), Error::Closed);
        drop(enc);
        // A Rust list longer than the pointer depth limit.
        let arena = Arena::confined();
        let long = list(MAX_POINTER_DEPTH as i32 + 1);
        assert!(matches!(
            encode_in(&long, &arena),
            Err(Error::InvalidArgument { .. })
        ));
        // Just under the limit (shorter under Miri: the limit itself is
        // checked above, and the round trip is the same code).
        let ok = list(if cfg!(miri) {
            16
        } else {
            MAX_POINTER_DEPTH as i32 - 2
        });
        assert_eq!(encode_in(&ok, &arena).unwrap().decode().unwrap(), ok);
        // Drop long lists iteratively (a recursive Box drop is the test's
        // own stack, not the library's).
        for mut l in [long, ok] {
            while let Some(n) = l.next.take() {
                l = *n;
            }
        }
    }
}
