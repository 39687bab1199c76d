//! Property tests over layout construction and `Value` reading (issue 12,
//! "prove it"): random shapes — structs, unions, sequences with counts up to
//! `usize::MAX`, padding, nesting up to 100 000 levels — and random bytes.
//! Every operation ends in an `Error` or a correct value, never a panic,
//! a stack overflow or a runaway allocation. Deep cases run on a thread
//! with a 2 MiB stack, proving the depth bound (`MAX_DEPTH`).
//!
//! No FFI: runs under Miri (`PROPTEST_CASES` sets the case count; 64 by
//! default, fewer and shallower cases under Miri).

use memscope::layout::{ByteOrder, LayoutKind, MAX_DEPTH, MemoryLayout, ValueKind, c};
use memscope::marshal::Value;
use memscope::segment::Address;
use memscope::{Error, Segment, Session};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config() -> Config {
    config_with(if cfg!(miri) { 4 } else { 64 })
}

/// Fewer cases for the deep tests (each walks up to DEEPEST levels).
fn deep_config() -> Config {
    config_with(if cfg!(miri) { 2 } else { 16 })
}

fn config_with(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The deepest nesting the deep cases try (beyond MAX_DEPTH on purpose).
const DEEPEST: usize = if cfg!(miri) { 700 } else { 100_000 };

/// Runs `f` on a thread with a 2 MiB stack; a panic there fails the test.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .expect("no panic on a 2 MiB stack")
}

/// A recipe for a layout; building it may fail (that is part of the test).
#[derive(Clone, Debug)]
enum Shape {
    Scalar(ValueKind, bool),
    Padding(usize),
    Seq(usize, Box<Shape>),
    CStruct(Vec<Shape>),
    Struct(Vec<Shape>),
    Packed(Vec<Shape>),
    Union(Vec<Shape>),
    Aligned(usize, Box<Shape>),
}

/// Mostly modest depths, sometimes the deepest.
fn depth() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 1usize..=(2 * MAX_DEPTH),
        1 => Just(DEEPEST),
        1 => (DEEPEST / 2)..=DEEPEST,
    ]
}

fn count() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..4,
        1 => Just(1usize << 20),
        1 => Just(1usize << 40),
        1 => Just(usize::MAX),
        1 => Just(usize::MAX / 2),
        1 => any::<usize>(),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    let leaf = prop_oneof![
        (prop::sample::select(ValueKind::ALL.to_vec()), any::<bool>())
            .prop_map(|(k, be)| Shape::Scalar(k, be)),
        prop_oneof![
            8 => 0usize..5,
            1 => Just(usize::MAX),
            1 => Just(isize::MAX as usize),
        ]
        .prop_map(Shape::Padding),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            2 => (count(), inner.clone()).prop_map(|(n, s)| Shape::Seq(n, Box::new(s))),
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Shape::CStruct),
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Shape::Struct),
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Shape::Packed),
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Shape::Union),
            1 => (prop::sample::select(vec![0usize, 1, 2, 3, 4, 8, 8, 16, 16, 1 << 20]), inner)
                .prop_map(|(a, s)| Shape::Aligned(a, Box::new(s))),
        ]
    })
}

/// Builds the layout; member names are unique per group.
fn build(s: &Shape) -> memscope::Result<MemoryLayout> {
    let named = |v: &[Shape]| -> memscope::Result<Vec<MemoryLayout>> {
        v.iter()
            .enumerate()
            .map(|(i, m)| Ok(build(m)?.with_name(&format!("m{i}"))))
            .collect()
    };
    Ok(match s {
        Shape::Scalar(k, be) => {
            let l = MemoryLayout::value(*k);
            if *be { l.with_order(ByteOrder::Big) } else { l }
        }
        Shape::Padding(n) => MemoryLayout::padding(*n)?,
        Shape::Seq(n, e) => MemoryLayout::sequence(*n, build(e)?)?,
        Shape::CStruct(m) => MemoryLayout::c_struct(named(m)?)?,
        Shape::Struct(m) => MemoryLayout::struct_of(named(m)?)?,
        Shape::Packed(m) => MemoryLayout::packed(named(m)?)?,
        Shape::Union(m) => MemoryLayout::union_of(named(m)?)?,
        Shape::Aligned(a, e) => build(e)?.with_align(*a)?,
    })
}

/// Checks a built layout's invariants.
fn check_layout(l: &MemoryLayout) {
    assert!(l.align().is_power_of_two());
    assert!(l.size() <= isize::MAX as usize);
    assert!((1..=MAX_DEPTH).contains(&l.depth()));
    if let LayoutKind::Struct(m) = l.kind() {
        let sum = m.iter().try_fold(0usize, |a, m| a.checked_add(m.size()));
        assert_eq!(sum, Some(l.size()));
        for (o, m) in l.members_with_offsets() {
            assert_eq!(o % m.align(), 0);
        }
    }
    if let LayoutKind::Union(m) = l.kind() {
        assert!(m.iter().all(|m| m.size() <= l.size()));
    }
    assert_eq!(l.clone(), *l);
    assert!(l.same_shape(l));
    let _ = format!("{l:?}");
    let _ = l.to_string();
}

/// 16-byte aligned memory for segments.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct A16([u8; 16]);

fn with_segment<R>(bytes: &[u8], f: impl FnOnce(&mut Segment<'_>) -> R) -> R {
    let s = Session::global();
    let mut mem = vec![A16([0; 16]); bytes.len().div_ceil(16).max(1)];
    let p = mem.as_mut_ptr().cast::<u8>();
    // SAFETY: `mem` holds at least `bytes.len()` bytes, outlives the segment
    // and is only accessed through it.
    let mut seg = unsafe { Segment::from_raw(Address::from_ptr(p), bytes.len(), &s) }.unwrap();
    for (i, b) in bytes.iter().enumerate() {
        seg.set::<u8>(i, *b).unwrap();
    }
    f(&mut seg)
}

/// Reads `l` from `bytes` (as long as `l.size()`): an error, or a value that
/// matches the layout and re-encodes stably.
fn read_and_check(l: &MemoryLayout, bytes: &[u8]) -> Result<(), TestCaseError> {
    let decoded = Value::decode(l, bytes);
    let read = with_segment(bytes, |seg| Value::read(l, seg, 0));
    // The test's memory is 16-byte aligned: a more aligned layout may be
    // refused as misaligned (or be aligned by chance).
    let read = match read {
        Err(Error::Misaligned { .. }) if l.align() > 16 => decoded.clone(),
        r => r,
    };
    match (&read, &decoded) {
        (Ok(v), Ok(w)) => {
            // Floats may be NaN: compare by bytes, not by value.
            let mut b1 = bytes.to_vec();
            v.encode(l, &mut b1).unwrap();
            let mut b2 = bytes.to_vec();
            w.encode(l, &mut b2).unwrap();
            prop_assert_eq!(&b1, &b2);
            // Normalised bytes (bools become 0/1) are a fixed point.
            let v2 = Value::decode(l, &b1).unwrap();
            let mut b3 = b1.clone();
            v2.encode(l, &mut b3).unwrap();
            prop_assert_eq!(&b1, &b3);
            v.check(l).unwrap();
            let _ = format!("{v:?}");
            let c = v.clone();
            let _ = c == *v;
            // Writing through a segment agrees with encode.
            if l.align() <= 16 {
                let written = with_segment(bytes, |seg| {
                    v.write(l, seg, 0).unwrap();
                    (0..bytes.len())
                        .map(|i| seg.get::<u8>(i).unwrap())
                        .collect::<Vec<u8>>()
                });
                prop_assert_eq!(written, b1);
            }
        }
        (Err(e), Err(f)) => {
            prop_assert!(
                matches!(e, Error::InvalidLayout { .. } | Error::OutOfMemory { .. }),
                "{e:?}"
            );
            prop_assert_eq!(e, f);
        }
        _ => prop_assert!(false, "read {read:?} and decode {decoded:?} disagree"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_layouts_build_or_fail_and_read_or_fail(s in shape(), seed in any::<u64>()) {
        let Ok(l) = build(&s) else { return Ok(()) };
        check_layout(&l);
        const MAX_BYTES: usize = 4096;
        if l.size() <= MAX_BYTES {
            let mut x = seed | 1;
            let bytes: Vec<u8> = (0..l.size())
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            read_and_check(&l, &bytes)?;
        } else {
            // Too big for the test's memory: the segment is too small.
            let r = with_segment(&[0u8; 64], |seg| Value::read(&l, seg, 0));
            prop_assert!(
                matches!(r, Err(Error::OutOfBounds { .. }) | Err(Error::InvalidLayout { .. })),
                "{r:?}"
            );
            prop_assert!(Value::decode(&l, &[0u8; 64]).is_err());
        }
    }

    #[test]
    fn values_that_do_not_fit_are_refused(s in shape(), t in shape()) {
        let (Ok(a), Ok(b)) = (build(&s), build(&t)) else { return Ok(()) };
        if a.size() > 4096 || b.size() > 4096 {
            return Ok(());
        }
        let bytes = vec![0u8; a.size()];
        let Ok(v) = Value::decode(&a, &bytes) else { return Ok(()) };
        // Writing a value of layout `a` as layout `b`: Ok exactly when it
        // checks, and then it round-trips by bytes.
        let mut out = vec![0u8; b.size()];
        match v.encode(&b, &mut out) {
            Ok(()) => prop_assert!(v.check(&b).is_ok()),
            Err(e) => prop_assert!(
                matches!(e, Error::InvalidArgument { .. }),
                "{e:?}"
            ),
        }
    }

    #[test]
    fn zero_sized_sequences_with_huge_counts_are_refused(n in count(), m in count()) {
        let zst = MemoryLayout::sequence(0, c::INT).unwrap();
        let inner = MemoryLayout::sequence(n, zst).unwrap();
        let Ok(outer) = MemoryLayout::sequence(m, inner) else { return Ok(()) };
        prop_assert_eq!(outer.size(), 0);
        read_and_check(&outer, &[])?;
    }
}

proptest! {
    #![proptest_config(deep_config())]

    #[test]
    fn deep_layouts_stop_at_max_depth_on_a_small_stack(
        depth in depth(),
        // Packed levels re-align the whole subtree (O(depth) each): not
        // under Miri.
        kinds in prop::collection::vec(0u8..(if cfg!(miri) { 3 } else { 4 }), 1..16),
    ) {
        let (built, refused) = on_small_stack(move || {
            let mut l = c::INT.with_name("leaf");
            let mut built = 1;
            let mut refused = None;
            for i in 1..depth {
                // Consume `l`, except for the one attempt expected to fail.
                let arg = if l.depth() == MAX_DEPTH { l.clone() } else {
                    std::mem::replace(&mut l, c::INT)
                };
                let next = match kinds[i % kinds.len()] {
                    0 => MemoryLayout::sequence(1, arg),
                    1 => MemoryLayout::c_struct([c::CHAR.with_name("c"), arg.with_name("m")]),
                    2 => MemoryLayout::union_of([arg.with_name("u")]),
                    _ => MemoryLayout::packed([arg.with_name("p")]),
                };
                match next {
                    Ok(n) => {
                        l = n;
                        built += 1;
                    }
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            // Every walk over the deepest layout fits the stack. (Printing
            // is O(size * depth): too slow for Miri at MAX_DEPTH.)
            if cfg!(miri) {
                assert_eq!(l.clone(), l);
            } else {
                check_layout(&l);
            }
            let bytes = vec![0x5au8; l.size()];
            let v = Value::decode(&l, &bytes).unwrap();
            let mut out = bytes.clone();
            v.encode(&l, &mut out).unwrap();
            assert_eq!(Value::decode(&l, &out).unwrap(), v);
            drop((v, l));
            (built, refused)
        });
        prop_assert_eq!(built, depth.min(MAX_DEPTH));
        match refused {
            None => prop_assert!(depth <= MAX_DEPTH),
            Some(e) => {
                prop_assert!(depth > MAX_DEPTH);
                prop_assert!(matches!(e, Error::InvalidLayout { .. }), "{e:?}");
            }
        }
    }

    #[test]
    fn deep_values_are_dropped_cloned_compared_and_printed_on_a_small_stack(
        depth in depth(),
        kinds in prop::collection::vec(any::<bool>(), 1..16),
    ) {
        on_small_stack(move || {
            let mut v = Value::U16(7);
            for i in 0..depth {
                v = if kinds[i % kinds.len()] {
                    Value::Struct(vec![Value::Bytes(vec![1]), v])
                } else {
                    Value::Array(vec![v])
                };
            }
            let w = v.clone();
            assert_eq!(v, w);
            assert_ne!(v, Value::Array(vec![]));
            let text = format!("{w:?}");
            assert_eq!(text.contains(".."), depth > MAX_DEPTH);
            // A deep value against a shallow layout is refused, not recursed.
            let l = MemoryLayout::c_struct([c::INT]).unwrap();
            assert!(v.check(&l).is_err());
            let mut out = [0u8; 4];
            assert!(v.encode(&l, &mut out).is_err());
            drop((v, w));
        });
    }
}
