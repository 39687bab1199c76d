//! Layout construction, validation, paths and printing (Miri-safe: no FFI).

use memscope::Error;
use memscope::layout::{ByteOrder, LayoutKind, MemoryLayout, PathElement, ValueKind, c};

fn reason(e: Error) -> String {
    match e {
        Error::InvalidLayout { reason } => reason,
        other => panic!("expected InvalidLayout, got {other:?}"),
    }
}

fn point() -> MemoryLayout {
    MemoryLayout::c_struct([c::INT.with_name("x"), c::INT.with_name("y")])
        .unwrap()
        .with_name("point")
}

#[test]
fn values_have_natural_size_and_alignment() {
    for k in ValueKind::ALL {
        let l = MemoryLayout::value(k);
        assert_eq!(l.size(), k.size());
        assert_eq!(l.align(), k.align());
        assert!(l.align().is_power_of_two());
        assert_eq!(l.value_kind(), Some(k));
        assert_eq!(l.order(), ByteOrder::NATIVE);
    }
    assert_eq!(
        MemoryLayout::value(ValueKind::Address).size(),
        size_of::<usize>()
    );
}

#[test]
fn c_struct_inserts_padding_between_and_after_members() {
    let s = MemoryLayout::c_struct([
        c::CHAR.with_name("c"),
        c::DOUBLE.with_name("d"),
        c::SHORT.with_name("s"),
    ])
    .unwrap();
    assert_eq!((s.size(), s.align()), (24, 8));
    let kinds: Vec<(usize, bool, usize)> = s
        .members_with_offsets()
        .map(|(o, m)| (o, m.is_padding(), m.size()))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, false, 1),
            (1, true, 7),
            (8, false, 8),
            (16, false, 2),
            (18, true, 6)
        ]
    );
}

#[test]
fn c_struct_equals_struct_of_with_explicit_padding() {
    let implicit = MemoryLayout::c_struct([c::CHAR.with_name("a"), c::INT.with_name("b")]).unwrap();
    let explicit = MemoryLayout::struct_of([
        c::CHAR.with_name("a"),
        MemoryLayout::padding(3).unwrap(),
        c::INT.with_name("b"),
    ])
    .unwrap();
    assert_eq!(implicit, explicit);
}

#[test]
fn packed_struct_has_no_padding_and_alignment_one() {
    let p = MemoryLayout::packed([
        c::CHAR.with_name("c"),
        c::DOUBLE.with_name("d"),
        c::SHORT.with_name("s"),
    ])
    .unwrap();
    assert_eq!((p.size(), p.align()), (11, 1));
    assert_eq!(p.byte_offset("d").unwrap(), 1);
    assert_eq!(p.byte_offset("s").unwrap(), 9);
    assert_eq!(p.select("d").unwrap().align(), 1);
}

#[test]
fn union_size_is_largest_member_rounded_to_alignment() {
    let u = MemoryLayout::union_of([
        MemoryLayout::sequence(5, c::CHAR).unwrap().with_name("c"),
        c::INT.with_name("i"),
    ])
    .unwrap();
    assert_eq!((u.size(), u.align()), (8, 4));
    assert_eq!(u.byte_offset("i").unwrap(), 0);
    assert_eq!(u.byte_offset("c[4]").unwrap(), 4);
}

#[test]
fn sequences_multiply_and_allow_zero_length() {
    let a = MemoryLayout::sequence(3, point()).unwrap();
    assert_eq!((a.size(), a.align()), (24, 4));
    assert_eq!(a.byte_offset("[2].y").unwrap(), 20);
    let flex = MemoryLayout::sequence(0, c::INT).unwrap();
    assert_eq!(flex.size(), 0);
}

#[test]
fn paths_string_and_typed_agree() {
    let inner = MemoryLayout::c_struct([c::CHAR.with_name("t"), c::INT.with_name("c")]).unwrap();
    let outer = MemoryLayout::c_struct([
        c::SHORT.with_name("h"),
        MemoryLayout::sequence(4, inner).unwrap().with_name("b"),
    ])
    .unwrap()
    .with_name("outer");
    let a = MemoryLayout::c_struct([c::CHAR.with_name("z"), outer.with_name("a")]).unwrap();
    let by_str = a.byte_offset("a.b[3].c").unwrap();
    let by_el = a
        .byte_offset_of(&[
            PathElement::Field("a"),
            PathElement::Field("b"),
            PathElement::Index(3),
            PathElement::Field("c"),
        ])
        .unwrap();
    assert_eq!(by_str, by_el);
    assert_eq!(by_str, 4 + 4 + 3 * 8 + 4);
    assert_eq!(a.select("a.b[3]").unwrap().size(), 8);
    assert_eq!(a.select("a.b[3].c").unwrap(), &c::INT.with_name("c"));
}

#[test]
fn unknown_field_is_an_error_naming_it() {
    let r = reason(point().byte_offset("z").unwrap_err());
    assert!(r.contains("`z`"), "{r}");
    let nested = MemoryLayout::c_struct([point().with_name("p")]).unwrap();
    let r = reason(nested.byte_offset("p.q").unwrap_err());
    assert!(r.contains("`q`") && r.contains("`p`"), "{r}");
}

#[test]
fn index_out_of_range_is_an_error() {
    let a = MemoryLayout::sequence(4, c::INT).unwrap().with_name("a");
    let s = MemoryLayout::c_struct([a]).unwrap();
    assert_eq!(s.byte_offset("a[3]").unwrap(), 12);
    let r = reason(s.byte_offset("a[4]").unwrap_err());
    assert!(r.contains("index 4") && r.contains("4 element"), "{r}");
    assert!(s.byte_offset("a[18446744073709551615]").is_err());
}

#[test]
fn field_of_scalar_and_index_of_struct_are_errors() {
    let r = reason(point().byte_offset("x.y").unwrap_err());
    assert!(r.contains("not a struct"), "{r}");
    let r = reason(point().byte_offset("[0]").unwrap_err());
    assert!(r.contains("not a sequence"), "{r}");
}

#[test]
fn malformed_paths_are_errors() {
    for p in ["", "x.", ".x", "x..y", "x[", "x[a]", "x]", "x[1]y"] {
        assert!(
            matches!(point().byte_offset(p), Err(Error::InvalidLayout { .. })),
            "{p:?}"
        );
    }
}

#[test]
fn misaligned_member_in_struct_of_is_an_error_naming_it() {
    let r = reason(
        MemoryLayout::struct_of([c::CHAR.with_name("c"), c::INT.with_name("count")]).unwrap_err(),
    );
    assert!(r.contains("`count`") && r.contains("offset 1"), "{r}");
    // an unnamed member is named by position
    let r = reason(MemoryLayout::struct_of([c::CHAR, c::SHORT]).unwrap_err());
    assert!(r.contains("#1"), "{r}");
    // the same members packed are fine
    assert!(MemoryLayout::packed([c::CHAR.with_name("c"), c::INT.with_name("count")]).is_ok());
}

#[test]
fn duplicate_member_names_are_errors() {
    let r =
        reason(MemoryLayout::c_struct([c::INT.with_name("a"), c::INT.with_name("a")]).unwrap_err());
    assert!(r.contains("duplicate") && r.contains("`a`"), "{r}");
    assert!(MemoryLayout::union_of([c::INT.with_name("u"), c::FLOAT.with_name("u")]).is_err());
    assert!(MemoryLayout::packed([c::INT.with_name("p"), c::FLOAT.with_name("p")]).is_err());
}

#[test]
fn zero_sizes_are_errors() {
    assert!(reason(MemoryLayout::padding(0).unwrap_err()).contains("zero"));
    assert!(MemoryLayout::struct_of([]).is_err());
    assert!(MemoryLayout::c_struct([]).is_err());
    assert!(MemoryLayout::packed([]).is_err());
    assert!(MemoryLayout::union_of([]).is_err());
}

#[test]
fn overflowing_sizes_are_errors() {
    assert!(reason(MemoryLayout::sequence(usize::MAX, c::INT).unwrap_err()).contains("overflow"));
    assert!(MemoryLayout::sequence(usize::MAX / 2 + 1, c::CHAR).is_err());
    assert!(MemoryLayout::padding(usize::MAX).is_err());
    let huge = MemoryLayout::padding(isize::MAX as usize).unwrap();
    assert!(MemoryLayout::struct_of([huge.clone(), c::CHAR]).is_err());
    assert!(MemoryLayout::c_struct([huge.clone(), c::INT]).is_err());
    assert!(MemoryLayout::sequence(2, huge.clone()).is_err());
    assert!(huge.with_align(2).is_err());
}

#[test]
fn bad_alignments_are_errors() {
    for a in [0, 3, 6, 12, usize::MAX] {
        assert!(
            matches!(c::INT.with_align(a), Err(Error::InvalidLayout { .. })),
            "{a}"
        );
    }
    assert_eq!(c::INT.with_align(1).unwrap().align(), 1);
    assert_eq!(c::INT.with_align(64).unwrap().align(), 64);
    // a group cannot go below its members' alignment
    let r = reason(point().with_align(2).unwrap_err());
    assert!(r.contains("below"), "{r}");
    assert!(
        MemoryLayout::sequence(2, c::INT)
            .unwrap()
            .with_align(1)
            .is_err()
    );
    assert_eq!(point().with_align(16).unwrap().align(), 16);
}

#[test]
fn sequence_of_element_with_size_not_multiple_of_alignment_is_an_error() {
    let odd = c::CHAR.with_align(4).unwrap(); // size 1, align 4
    let r = reason(MemoryLayout::sequence(2, odd).unwrap_err());
    assert!(r.contains("multiple"), "{r}");
}

#[test]
fn over_aligned_member_moves_and_rounds_the_struct() {
    let s = MemoryLayout::c_struct([
        c::CHAR.with_name("c"),
        c::INT.with_align(16).unwrap().with_name("x"),
    ])
    .unwrap();
    assert_eq!(
        (s.size(), s.align(), s.byte_offset("x").unwrap()),
        (32, 16, 16)
    );
}

#[test]
fn byte_order_applies_recursively() {
    let s = MemoryLayout::c_struct([
        c::SHORT.with_name("a"),
        MemoryLayout::sequence(2, c::INT).unwrap().with_name("b"),
    ])
    .unwrap()
    .with_order(ByteOrder::Big);
    assert_eq!(s.select("a").unwrap().order(), ByteOrder::Big);
    assert_eq!(s.select("b[1]").unwrap().order(), ByteOrder::Big);
    assert!(!s.same_shape(&s.clone().with_order(ByteOrder::Little)));
}

#[test]
fn unaligned_keeps_sizes_and_offsets() {
    let s = MemoryLayout::c_struct([c::CHAR.with_name("c"), c::DOUBLE.with_name("d")]).unwrap();
    let u = s.clone().unaligned();
    assert_eq!(u.size(), s.size());
    assert_eq!(u.align(), 1);
    assert_eq!(u.byte_offset("d").unwrap(), 8);
    assert_eq!(u.select("d").unwrap().align(), 1);
}

#[test]
fn same_shape_ignores_names_only() {
    assert!(point().same_shape(&point().without_name()));
    let other = MemoryLayout::c_struct([c::INT.with_name("a"), c::FLOAT.with_name("b")]).unwrap();
    assert!(!point().same_shape(&other));
}

#[test]
fn layouts_print_as_c() {
    assert_eq!(
        point().to_string(),
        "struct point { int32_t x; int32_t y; }"
    );
    let s = MemoryLayout::c_struct([
        c::INT8_T.with_name("tag"),
        point().with_name("p"),
        MemoryLayout::sequence(2, MemoryLayout::sequence(3, c::DOUBLE).unwrap())
            .unwrap()
            .with_name("m"),
        c::POINTER.with_name("next"),
    ])
    .unwrap()
    .with_name("thing");
    assert_eq!(
        s.to_string(),
        "struct thing { int8_t tag; uint8_t _pad0[3] /* padding */; \
         struct { int32_t x; int32_t y; } p; uint8_t _pad1[4] /* padding */; \
         double m[2][3]; void *next; }"
    );
    let p = MemoryLayout::packed([c::INT8_T.with_name("c"), c::INT.with_name("i")]).unwrap();
    assert_eq!(
        p.to_string(),
        "struct __attribute__((packed)) { int8_t c; int32_t i; }"
    );
    let u = MemoryLayout::union_of([c::INT.with_name("i"), c::FLOAT.with_name("f")])
        .unwrap()
        .with_name("num");
    assert_eq!(u.to_string(), "union num { int32_t i; float f; }");
    assert_eq!(
        c::UINT16_T
            .with_order(ByteOrder::Big)
            .with_name("port")
            .to_string(),
        if ByteOrder::Big.is_native() {
            "uint16_t port".to_string()
        } else {
            "uint16_t port /* big-endian */".to_string()
        }
    );
    assert_eq!(
        c::INT.with_align(16).unwrap().with_name("x").to_string(),
        "_Alignas(16) int32_t x"
    );
}

#[test]
fn kinds_are_inspectable() {
    let s = point();
    match s.kind() {
        LayoutKind::Struct(m) => assert_eq!(m.len(), 2),
        other => panic!("{other:?}"),
    }
    let a = MemoryLayout::sequence(3, c::SHORT).unwrap();
    match a.kind() {
        LayoutKind::Sequence { count, element } => {
            assert_eq!(*count, 3);
            assert_eq!(**element, c::SHORT);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn c_types_match_rust_ffi_types() {
    use core::ffi::*;
    assert_eq!(c::CHAR.size(), size_of::<c_char>());
    assert_eq!(c::SHORT.size(), size_of::<c_short>());
    assert_eq!(c::INT.size(), size_of::<c_int>());
    assert_eq!(c::LONG.size(), size_of::<c_long>());
    assert_eq!(c::LONG.align(), align_of::<c_long>());
    assert_eq!(c::LONG_LONG.size(), size_of::<c_longlong>());
    assert_eq!(c::SIZE_T.size(), size_of::<usize>());
    assert_eq!(c::POINTER.size(), size_of::<*const c_void>());
    assert_eq!(c::DOUBLE.align(), align_of::<c_double>());
}

// ------------------------------------------------- issue 12: bounds on bad input

/// Runs `f` on a thread with a 2 MiB stack (the default for spawned
/// threads), so a recursion that is not bounded overflows it.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

/// A layout `depth` levels deep alternating sequences, structs and unions.
fn deep(depth: usize) -> memscope::Result<MemoryLayout> {
    let mut l = c::INT.with_name("leaf");
    for i in 1..depth {
        l = match i % 3 {
            0 => MemoryLayout::sequence(1, l)?,
            1 => MemoryLayout::c_struct([c::CHAR.with_name("c"), l.with_name("m")])?,
            _ => MemoryLayout::union_of([l.with_name("u"), c::SHORT.with_name("s")])?,
        };
    }
    Ok(l)
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe layout code at MAX_DEPTH: minutes under Miri; runs natively in cargo test"
)]
fn layouts_deeper_than_max_depth_are_refused() {
    use memscope::layout::MAX_DEPTH;
    let l = deep(MAX_DEPTH).unwrap();
    assert_eq!(l.depth(), MAX_DEPTH);
    for r in [
        MemoryLayout::sequence(1, l.clone()),
        MemoryLayout::struct_of([l.clone()]),
        MemoryLayout::c_struct([l.clone()]),
        MemoryLayout::packed([l.clone()]),
        MemoryLayout::union_of([l.clone()]),
        MemoryLayout::__struct_at_offsets([(0, l.clone())], l.size(), l.align()),
        MemoryLayout::__union_from_parts([l.clone()], l.size(), l.align()),
    ] {
        assert!(reason(r.unwrap_err()).contains("MAX_DEPTH"));
    }
    assert!(deep(MAX_DEPTH + 1).is_err());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe layout code at MAX_DEPTH: minutes under Miri; runs natively in cargo test"
)]
fn walks_over_a_max_depth_layout_fit_a_small_stack() {
    on_small_stack(|| {
        let l = deep(memscope::layout::MAX_DEPTH).unwrap();
        let l2 = l.clone();
        assert_eq!(l, l2);
        assert!(l.same_shape(&l2));
        if !cfg!(miri) {
            // Printing is O(size * depth): too slow for Miri at MAX_DEPTH
            // (tests/value_props.rs covers the other walks there).
            assert!(!format!("{l:?}").is_empty());
            assert!(l.to_string().contains("int32_t"));
        }
        let _ = l.clone().unaligned().with_order(ByteOrder::Big);
        let mut path = Vec::new();
        let mut cur = &l;
        while let Some(step) = match cur.kind() {
            LayoutKind::Sequence { element, .. } => Some((PathElement::Index(0), &**element)),
            LayoutKind::Struct(m) => Some((PathElement::Field("m"), &m[m.len() - 1])),
            LayoutKind::Union(m) => Some((PathElement::Field("u"), &m[0])),
            _ => None,
        } {
            path.push(step.0);
            cur = step.1;
        }
        let (leaf, _) = l.select_path(&path).unwrap();
        assert_eq!(leaf.value_kind(), Some(ValueKind::I32));
        assert_eq!(path.len(), memscope::layout::MAX_DEPTH - 1);
        drop(l2);
    });
}

#[test]
fn hidden_macro_constructors_check_their_input() {
    let int = || c::INT.with_name("i");
    // align 0, not a power of two
    assert!(MemoryLayout::__struct_at_offsets([(0, int())], 4, 0).is_err());
    assert!(MemoryLayout::__struct_at_offsets([(0, int())], 4, 3).is_err());
    // a size too small for the members, or not a multiple of the alignment
    assert!(MemoryLayout::__struct_at_offsets([(0, int())], 2, 4).is_err());
    assert!(MemoryLayout::__struct_at_offsets([(4, int())], 6, 2).is_err());
    assert!(MemoryLayout::__struct_at_offsets([(0, int())], 6, 4).is_err());
    // overlapping, misaligned, over-aligned members; no members; overflow
    assert!(
        MemoryLayout::__struct_at_offsets([(0, int()), (2, c::INT.with_name("j"))], 8, 4).is_err()
    );
    assert!(MemoryLayout::__struct_at_offsets([(2, int())], 8, 4).is_err());
    assert!(MemoryLayout::__struct_at_offsets([(0, c::DOUBLE)], 8, 4).is_err());
    assert!(MemoryLayout::__struct_at_offsets([(usize::MAX - 1, c::CHAR)], usize::MAX, 1).is_err());
    assert!(MemoryLayout::__struct_at_offsets([(0, int()), (4, int())], 8, 4).is_err());
    let ok = MemoryLayout::__struct_at_offsets([(4, int())], 12, 4).unwrap();
    assert_eq!(
        (ok.size(), ok.align(), ok.byte_offset("i").unwrap()),
        (12, 4, 4)
    );
    assert_eq!(ok.members().len(), 3); // padding, i, padding

    assert!(MemoryLayout::__union_from_parts([int()], 4, 0).is_err());
    assert!(MemoryLayout::__union_from_parts([int()], 2, 2).is_err());
    assert!(MemoryLayout::__union_from_parts([int()], 4, 2).is_err());
    assert!(MemoryLayout::__union_from_parts([int()], 6, 4).is_err());
    assert!(MemoryLayout::__union_from_parts([], 4, 4).is_err());
    assert!(MemoryLayout::__union_from_parts([int(), int()], 4, 4).is_err());
    let u = MemoryLayout::__union_from_parts([int()], 8, 8).unwrap();
    assert_eq!((u.size(), u.align()), (8, 8));

    // the fallback the macros use never fails
    let o = MemoryLayout::__opaque(usize::MAX, 0);
    assert_eq!(o.align(), 1);
    assert!(o.size() <= isize::MAX as usize);
}

#[test]
fn placement_functions_return_none_on_bad_input() {
    use memscope::layout::{c_struct_placement, c_union_placement};
    assert_eq!(c_struct_placement([(4, 0)]), None);
    assert_eq!(c_struct_placement([(4, 6)]), None);
    assert_eq!(c_struct_placement([(usize::MAX, 1), (1, 1)]), None);
    assert_eq!(c_struct_placement([(isize::MAX as usize, 1), (1, 2)]), None);
    assert_eq!(c_struct_placement([(1, 1), (4, 4)]), Some(([0, 4], 8, 4)));
    assert_eq!(c_union_placement([(4, 0)]), None);
    assert_eq!(c_union_placement([(usize::MAX, 1)]), None);
    assert_eq!(c_union_placement([(usize::MAX - 2, 4)]), None);
    assert_eq!(c_union_placement([(5, 1), (4, 4)]), Some((8, 4)));
}

#[test]
fn duplicate_names_are_found_among_a_hundred_thousand_members() {
    // (Fewer under Miri, which runs the quadratic and linear checks alike slowly.)
    let n = if cfg!(miri) { 300 } else { 100_000 };
    let names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
    let members = || names.iter().map(|n| c::CHAR.with_name(n));
    let s = MemoryLayout::struct_of(members()).unwrap();
    assert_eq!(s.size(), n);
    assert_eq!(s.byte_offset(&format!("f{}", n - 1)).unwrap(), n - 1);
    let mid = format!("f{}", n / 2);
    let dup = MemoryLayout::struct_of(members().chain([c::CHAR.with_name(&mid)]));
    assert!(reason(dup.unwrap_err()).contains(&format!("duplicate member name `{mid}`")));
    let dup = MemoryLayout::union_of(members().chain([c::CHAR.with_name("f0")]));
    assert!(reason(dup.unwrap_err()).contains("`f0`"));
    // unnamed members never collide
    let anon = MemoryLayout::c_struct((0..n).map(|_| c::CHAR)).unwrap();
    assert_eq!(anon.members().len(), n);
}
