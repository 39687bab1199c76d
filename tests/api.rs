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
