//! Marshaling: `Marshal` impls and macros, dynamic `Value`s, views, C
//! strings, byte orders, and round-trip property tests (Miri-safe: no FFI).

use memscope::alloc::SegmentAllocator;
use memscope::layout::{ByteOrder, LayoutKind, MemoryLayout, ValueKind, c};
use memscope::marshal::{
    Marshal, StructView, Value, read_cstring, seq_of, write_cstring, write_seq,
};
use memscope::segment::Address;
use memscope::{Error, Result, Segment, Session, c_enum, c_flags, c_struct, c_union};
use proptest::prelude::*;
use std::cell::RefCell;

/// 16-byte aligned zeroed backing memory for segments.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct A16([u8; 16]);

struct Buf {
    mem: Vec<A16>,
    len: usize,
}

impl Buf {
    fn new(len: usize) -> Buf {
        Buf {
            mem: vec![A16([0; 16]); len.div_ceil(16).max(1)],
            len,
        }
    }
    fn seg<'s>(&mut self, s: &'s Session) -> Segment<'s> {
        let p = self.mem.as_mut_ptr().cast::<u8>();
        // SAFETY: `mem` has at least `len` bytes, outlives every segment made
        // from it in these tests, and is only accessed through one segment
        // at a time.
        unsafe { Segment::from_raw(Address::from_ptr(p), self.len, s) }.unwrap()
    }
    fn bytes(&self) -> Vec<u8> {
        self.mem.iter().flat_map(|a| a.0).take(self.len).collect()
    }
}

/// A minimal allocator for the C-string helpers: leaks boxes into raw
/// pointers (so moving them cannot invalidate handed-out segments) and
/// frees them on drop.
struct Heap {
    session: Session,
    chunks: RefCell<Vec<*mut [u8]>>,
}

impl SegmentAllocator for Heap {
    fn allocate_uninit(&self, size: usize, _align: usize) -> Result<Segment<'_>> {
        let raw = Box::into_raw(vec![0u8; size].into_boxed_slice());
        self.chunks.borrow_mut().push(raw);
        // SAFETY: `raw` is a live allocation of `size` bytes, freed only
        // when the heap drops, which outlives the returned segment's borrow.
        unsafe { Segment::from_raw(Address::from_ptr(raw.cast::<u8>()), size, &self.session) }
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        for raw in self.chunks.get_mut().drain(..) {
            // SAFETY: made by Box::into_raw above and freed only here.
            drop(unsafe { Box::from_raw(raw) });
        }
    }
}

c_struct! {
    /// A 2-D point.
    #[derive(Clone, Copy, Debug, PartialEq, Default)]
    pub struct Point { x: i32, y: i32 }
}

c_struct! {
    /// The 5-field record the bench uses too.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Record { id: u64, kind: u8, pos: Point, weight: f64, next: Address }
}

c_struct! {
    /// Arrays and bools in a struct.
    #[derive(Debug, PartialEq)]
    pub struct Mixed { flag: bool, vals: [i16; 3], pts: [Point; 2], tail: u8 }
}

c_union! {
    /// An int, a float or bytes.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub union Num { i: i32, f: f32, b: [u8; 8] }
}

c_enum! {
    /// A colour.
    pub enum Color {
        /// Red.
        Red = 0,
        /// Green.
        Green = 1,
        /// Blue.
        Blue = 7,
    }
}

c_flags! {
    /// Permissions.
    pub struct Perm: u16 {
        /// Read.
        const R = 1;
        /// Write.
        const W = 2;
        /// Execute.
        const X = 0x100;
    }
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 3 } else { n },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- Marshal

#[test]
fn scalars_round_trip_through_a_segment() {
    let s = Session::global();
    let mut b = Buf::new(64);
    let mut seg = b.seg(&s);
    (-5i8).write_to(&mut seg, 0).unwrap();
    0xbeefu16.write_to(&mut seg, 2).unwrap();
    (-7i32).write_to(&mut seg, 4).unwrap();
    u64::MAX.write_to(&mut seg, 8).unwrap();
    1.25f32.write_to(&mut seg, 16).unwrap();
    (-0.5f64).write_to(&mut seg, 24).unwrap();
    true.write_to(&mut seg, 32).unwrap();
    Address::new(0x1234).write_to(&mut seg, 40).unwrap();
    assert_eq!(i8::read_from(&seg, 0).unwrap(), -5);
    assert_eq!(u16::read_from(&seg, 2).unwrap(), 0xbeef);
    assert_eq!(i32::read_from(&seg, 4).unwrap(), -7);
    assert_eq!(u64::read_from(&seg, 8).unwrap(), u64::MAX);
    assert_eq!(f32::read_from(&seg, 16).unwrap(), 1.25);
    assert_eq!(f64::read_from(&seg, 24).unwrap(), -0.5);
    assert!(bool::read_from(&seg, 32).unwrap());
    assert_eq!(Address::read_from(&seg, 40).unwrap(), Address::new(0x1234));
    // agrees with the segment's own accessors
    assert_eq!(seg.get::<i32>(4).unwrap(), -7);
}

#[test]
fn bool_reads_any_nonzero_byte_as_true() {
    assert!(bool::decode(&[2]).unwrap());
    assert!(!bool::decode(&[0]).unwrap());
}

#[test]
fn option_address_none_is_null() {
    let s = Session::global();
    let mut b = Buf::new(8);
    let mut seg = b.seg(&s);
    Some(Address::new(8)).write_to(&mut seg, 0).unwrap();
    assert_eq!(seg.get::<usize>(0).unwrap(), 8);
    None::<Address>.write_to(&mut seg, 0).unwrap();
    assert_eq!(seg.get::<usize>(0).unwrap(), 0);
    assert_eq!(Option::<Address>::read_from(&seg, 0).unwrap(), None);
}

#[test]
fn arrays_marshal_element_by_element() {
    let s = Session::global();
    let mut b = Buf::new(16);
    let mut seg = b.seg(&s);
    [1.0f32, 2.0, 3.0, 4.0].write_to(&mut seg, 0).unwrap();
    assert_eq!(seg.get::<f32>(12).unwrap(), 4.0);
    assert_eq!(
        <[f32; 4]>::read_from(&seg, 0).unwrap(),
        [1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(
        <[u16; 3]>::layout(),
        MemoryLayout::sequence(3, c::UINT16_T).unwrap()
    );
}

#[test]
fn encode_with_wrong_length_is_an_error() {
    let mut short = [0u8; 3];
    assert!(matches!(
        7u32.encode(&mut short),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        u32::decode(&short),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(Point::decode(&[0; 9]).is_err());
    assert!(<[u8; 4]>::decode(&[0; 3]).is_err());
}

#[test]
fn access_errors_propagate() {
    let s = Session::shared();
    let mut b = Buf::new(8);
    let mut seg = b.seg(&s);
    assert!(matches!(
        7u64.write_to(&mut seg, 1),
        Err(Error::OutOfBounds {
            offset: 1,
            len: 8,
            size: 8
        })
    ));
    assert!(matches!(
        7u32.write_to(&mut seg, 2),
        Err(Error::Misaligned { align: 4, .. })
    ));
    assert!(matches!(
        Point::read_from(&seg, usize::MAX),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        Value::read(&c::INT, &seg, 6),
        Err(Error::OutOfBounds { .. })
    ));
    s.close().unwrap();
    assert_eq!(Point::read_from(&seg, 0), Err(Error::Closed));
    assert_eq!(Point::default().write_to(&mut seg, 0), Err(Error::Closed));
    assert_eq!(Value::read(&c::INT, &seg, 0), Err(Error::Closed));
}

#[test]
fn c_struct_layout_matches_rust_layout() {
    let l = Record::layout();
    assert_eq!(l.name(), Some("Record"));
    assert_eq!(l.size(), size_of::<Record>());
    assert_eq!(l.align(), align_of::<Record>());
    assert_eq!(
        l.byte_offset("id").unwrap(),
        core::mem::offset_of!(Record, id)
    );
    assert_eq!(
        l.byte_offset("kind").unwrap(),
        core::mem::offset_of!(Record, kind)
    );
    assert_eq!(
        l.byte_offset("pos.y").unwrap(),
        core::mem::offset_of!(Record, pos) + 4
    );
    assert_eq!(
        l.byte_offset("weight").unwrap(),
        core::mem::offset_of!(Record, weight)
    );
    assert_eq!(
        l.byte_offset("next").unwrap(),
        core::mem::offset_of!(Record, next)
    );
    // the same layout memscope computes from scratch
    let manual = MemoryLayout::c_struct([
        c::UINT64_T.with_name("id"),
        c::UINT8_T.with_name("kind"),
        MemoryLayout::c_struct([c::INT.with_name("x"), c::INT.with_name("y")])
            .unwrap()
            .with_name("pos"),
        c::DOUBLE.with_name("weight"),
        c::POINTER.with_name("next"),
    ])
    .unwrap();
    assert!(l.same_shape(&manual), "{l}\n{manual}");
    let m = Mixed::layout();
    assert_eq!(m.size(), size_of::<Mixed>());
    assert_eq!(
        m.byte_offset("pts[1].y").unwrap(),
        core::mem::offset_of!(Mixed, pts) + 12
    );
    assert_eq!(
        m.byte_offset("tail").unwrap(),
        core::mem::offset_of!(Mixed, tail)
    );
}

fn record(id: u64, kind: u8, x: i32, y: i32, weight: f64, next: usize) -> Record {
    Record {
        id,
        kind,
        pos: Point { x, y },
        weight,
        next: Address::new(next),
    }
}

#[test]
fn c_struct_bytes_are_rusts_bytes() {
    let r = record(1, 2, -3, 4, 5.5, 0x60);
    let s = Session::global();
    let mut b = Buf::new(size_of::<Record>());
    let mut seg = b.seg(&s);
    r.write_to(&mut seg, 0).unwrap();
    // SAFETY: the buffer is 16-aligned, zero-initialised (padding included)
    // and holds a fully written Record.
    let back: Record = unsafe { core::ptr::read(b.mem.as_ptr().cast::<Record>()) };
    assert_eq!(back, r);
    // and the other way: Rust's bytes (no padding in Point) read by memscope
    let mut pb = Buf::new(8);
    // SAFETY: 8 zeroed, 16-aligned bytes; Point has no padding.
    unsafe { core::ptr::write(pb.mem.as_mut_ptr().cast::<Point>(), Point { x: 9, y: -9 }) };
    let seg = pb.seg(&s);
    assert_eq!(Point::read_from(&seg, 0).unwrap(), Point { x: 9, y: -9 });
}

#[test]
fn c_struct_write_leaves_padding_untouched() {
    let s = Session::global();
    let mut b = Buf::new(size_of::<Record>());
    {
        let mut seg = b.seg(&s);
        for i in 0..seg.len() {
            seg.set::<u8>(i, 0xAA).unwrap();
        }
        record(0, 0, 0, 0, 0.0, 0).write_to(&mut seg, 0).unwrap();
    }
    let bytes = b.bytes();
    // `kind` is at 8, `pos` at 12: bytes 9..12 are padding
    assert_eq!(&bytes[9..12], &[0xAA; 3]);
    assert_eq!(bytes[8], 0);
}

#[test]
fn nested_and_array_fields_round_trip() {
    let s = Session::global();
    let mut b = Buf::new(64);
    let mut seg = b.seg(&s);
    let m = Mixed {
        flag: true,
        vals: [1, -2, 3],
        pts: [Point { x: 1, y: 2 }, Point { x: 3, y: 4 }],
        tail: 9,
    };
    m.write_to(&mut seg, 0).unwrap();
    assert_eq!(Mixed::read_from(&seg, 0).unwrap(), m);
    let v = Value::read(&Mixed::layout(), &seg, 0).unwrap();
    assert_eq!(
        v,
        Value::Struct(vec![
            Value::Bool(true),
            Value::Array(vec![Value::I16(1), Value::I16(-2), Value::I16(3)]),
            Value::Array(vec![
                Value::Struct(vec![Value::I32(1), Value::I32(2)]),
                Value::Struct(vec![Value::I32(3), Value::I32(4)]),
            ]),
            Value::U8(9),
        ])
    );
}

#[test]
fn c_union_members_share_bytes() {
    assert_eq!(size_of::<Num>(), 8);
    assert_eq!(align_of::<Num>(), 4);
    let mut n = Num::new(Num::i, &-1).unwrap();
    assert_eq!(n.get(Num::b).unwrap(), [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    n.set(Num::f, &2.0).unwrap();
    assert_eq!(n.get(Num::i).unwrap(), 2.0f32.to_bits() as i32);
    let s = Session::global();
    let mut b = Buf::new(8);
    let mut seg = b.seg(&s);
    n.write_to(&mut seg, 0).unwrap();
    assert_eq!(Num::read_from(&seg, 0).unwrap(), n);
    assert_eq!(seg.get::<f32>(0).unwrap(), 2.0);
    let l = Num::layout();
    assert!(matches!(l.kind(), LayoutKind::Union(m) if m.len() == 3));
    assert_eq!(l.size(), 8);
}

#[test]
fn c_enum_rejects_unknown_values() {
    let s = Session::global();
    let mut b = Buf::new(4);
    let mut seg = b.seg(&s);
    Color::Blue.write_to(&mut seg, 0).unwrap();
    assert_eq!(seg.get::<i32>(0).unwrap(), 7);
    assert_eq!(Color::read_from(&seg, 0).unwrap(), Color::Blue);
    seg.set::<i32>(0, 3).unwrap();
    let e = Color::read_from(&seg, 0).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { reason } if reason.contains("Color")),
        "{e}"
    );
    assert_eq!(Color::try_from(1).unwrap(), Color::Green);
    assert_eq!(i32::from(Color::Blue), 7);
    assert_eq!(Color::VARIANTS.len(), 3);
    assert_eq!(Color::layout().value_kind(), Some(ValueKind::I32));
}

#[test]
fn c_flags_reject_undeclared_bits() {
    let s = Session::global();
    let mut b = Buf::new(2);
    let mut seg = b.seg(&s);
    let p = Perm::R | Perm::X;
    p.write_to(&mut seg, 0).unwrap();
    assert_eq!(seg.get::<u16>(0).unwrap(), 0x101);
    assert_eq!(Perm::read_from(&seg, 0).unwrap(), p);
    seg.set::<u16>(0, 0x104).unwrap();
    assert!(Perm::read_from(&seg, 0).is_err());
    assert_eq!(Perm::from_bits_truncate(0x104), Perm::X);
    assert_eq!(
        format!("{:?}", Perm::from_bits_retain(0x105)),
        "Perm(R | X | 0x4)"
    );
    assert_eq!(!Perm::W, Perm::R | Perm::X);
    let mut q = Perm::empty();
    q.insert(Perm::W);
    assert!(q.contains(Perm::W) && !q.intersects(Perm::R));
    q.remove(Perm::W);
    assert!(q.is_empty());
}

// ---------------------------------------------------------------- Value

#[test]
fn value_type_mismatch_is_invalid_argument_and_writes_nothing() {
    let s = Session::global();
    let mut b = Buf::new(16);
    let mut seg = b.seg(&s);
    let l = Point::layout();
    let bad = Value::Struct(vec![Value::I32(1), Value::F32(2.0)]);
    let e = bad.write(&l, &mut seg, 0).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { reason } if reason.contains("`y`") && reason.contains("float")),
        "{e}"
    );
    assert_eq!(seg.get::<i32>(0).unwrap(), 0, "x must not be written");
    for bad in [
        Value::Struct(vec![Value::I32(1)]),
        Value::Array(vec![Value::I32(1), Value::I32(2)]),
        Value::I64(1),
        Value::Bytes(vec![0; 7]),
    ] {
        assert!(matches!(
            bad.write(&l, &mut seg, 0),
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert!(Value::Bytes(vec![1; 8]).write(&l, &mut seg, 0).is_ok());
    assert_eq!(seg.get::<i32>(4).unwrap(), 0x0101_0101);
}

#[test]
fn unions_read_as_bytes_and_write_their_first_matching_member() {
    let s = Session::global();
    let mut b = Buf::new(8);
    let mut seg = b.seg(&s);
    let u = MemoryLayout::union_of([c::INT.with_name("i"), c::DOUBLE.with_name("d")]).unwrap();
    Value::F64(1.0).write(&u, &mut seg, 0).unwrap();
    assert_eq!(
        Value::read(&u, &seg, 0).unwrap(),
        Value::Bytes(1.0f64.to_ne_bytes().to_vec())
    );
    Value::I32(5).write(&u, &mut seg, 0).unwrap();
    let mut view = StructView::new(&u, &mut seg, 0).unwrap();
    assert_eq!(view.get("i").unwrap(), Value::I32(5));
    view.set("d", Value::F64(-2.0)).unwrap();
    assert_eq!(view.get("d").unwrap(), Value::F64(-2.0));
    assert!(Value::U8(1).write(&u, &mut seg, 0).is_err());
}

#[test]
fn big_endian_values_are_stored_most_significant_byte_first() {
    let s = Session::global();
    let mut b = Buf::new(16);
    let mut seg = b.seg(&s);
    let be32 = c::UINT32_T.with_order(ByteOrder::Big);
    let le32 = c::UINT32_T.with_order(ByteOrder::Little);
    Value::U32(0x0102_0304).write(&be32, &mut seg, 0).unwrap();
    Value::U32(0x0102_0304).write(&le32, &mut seg, 4).unwrap();
    Value::F64(1.0)
        .write(&c::DOUBLE.with_order(ByteOrder::Big), &mut seg, 8)
        .unwrap();
    assert_eq!(
        Value::read(&be32, &seg, 0).unwrap(),
        Value::U32(0x0102_0304)
    );
    assert_eq!(
        Value::read(&le32, &seg, 0).unwrap(),
        Value::U32(0x0403_0201)
    );
    let bytes = b.bytes();
    assert_eq!(&bytes[0..4], &[1, 2, 3, 4]);
    assert_eq!(&bytes[4..8], &[4, 3, 2, 1]);
    assert_eq!(&bytes[8..16], &1.0f64.to_be_bytes());
}

#[test]
fn network_header_round_trips_with_mixed_orders() {
    let hdr = MemoryLayout::c_struct([
        c::UINT16_T.with_name("port").with_order(ByteOrder::Big),
        c::UINT16_T.with_name("len"),
        c::UINT32_T.with_name("addr").with_order(ByteOrder::Big),
    ])
    .unwrap();
    let s = Session::global();
    let mut b = Buf::new(8);
    let mut seg = b.seg(&s);
    let v = Value::Struct(vec![Value::U16(80), Value::U16(3), Value::U32(0x7f00_0001)]);
    v.write(&hdr, &mut seg, 0).unwrap();
    assert_eq!(Value::read(&hdr, &seg, 0).unwrap(), v);
    assert_eq!(&b.bytes()[0..2], &[0, 80]);
    assert_eq!(&b.bytes()[4..8], &[0x7f, 0, 0, 1]);
}

#[test]
fn misaligned_dynamic_access_is_an_error_but_packed_is_not() {
    let s = Session::global();
    let mut b = Buf::new(16);
    let mut seg = b.seg(&s);
    let p = MemoryLayout::c_struct([c::INT.with_name("x")]).unwrap();
    assert!(matches!(
        Value::read(&p, &seg, 1),
        Err(Error::Misaligned { .. })
    ));
    let packed = MemoryLayout::packed([c::CHAR.with_name("c"), c::INT.with_name("x")]).unwrap();
    let v = Value::Struct(vec![Value::I8(1), Value::I32(-1)]);
    v.write(&packed, &mut seg, 3).unwrap();
    assert_eq!(Value::read(&packed, &seg, 3).unwrap(), v);
    assert_eq!(seg.get_unaligned::<i32>(4).unwrap(), -1);
}

// ---------------------------------------------------------------- views

#[test]
fn struct_view_gets_and_sets_by_path() {
    let line = MemoryLayout::c_struct([
        Point::layout().with_name("p"),
        Point::layout().with_name("q"),
        MemoryLayout::sequence(3, Point::layout())
            .unwrap()
            .with_name("pts"),
    ])
    .unwrap();
    let s = Session::global();
    let mut b = Buf::new(line.size());
    let mut seg = b.seg(&s);
    {
        let mut view = StructView::new(&line, &mut seg, 0).unwrap();
        view.set("p.y", Value::I32(3)).unwrap();
        view.set("pts[2].x", Value::I32(-4)).unwrap();
        view.set_as("q", &Point { x: 5, y: 6 }).unwrap();
        assert_eq!(view.get("p.y").unwrap(), Value::I32(3));
        assert_eq!(view.get_as::<Point>("q").unwrap(), Point { x: 5, y: 6 });
        assert_eq!(view.get_as::<i32>("pts[2].x").unwrap(), -4);
        assert!(matches!(
            view.get("pts[3].x"),
            Err(Error::InvalidLayout { .. })
        ));
        assert!(matches!(
            view.get_as::<f32>("p.x"),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            view.set("p.x", Value::F32(1.0)),
            Err(Error::InvalidArgument { .. })
        ));
    }
    let ro = StructView::new(&line, &seg, 0).unwrap();
    assert_eq!(ro.get("q.x").unwrap(), Value::I32(5));
    assert_eq!(seg.get::<i32>(16 + 2 * 8).unwrap(), -4);
    assert!(StructView::new(&line, &seg, 1).is_err());
}

#[test]
fn seq_of_reads_arrays_of_structs() {
    let s = Session::global();
    let mut b = Buf::new(8 * 5);
    let mut seg = b.seg(&s);
    let pts: Vec<Point> = (0..5).map(|i| Point { x: i, y: -i }).collect();
    write_seq(&mut seg, 0, &pts).unwrap();
    let back: Vec<Point> = seq_of::<Point>(&seg).collect::<Result<_>>().unwrap();
    assert_eq!(back, pts);
    assert_eq!(seq_of::<Point>(&seg).len(), 5);
    assert!(matches!(
        write_seq(&mut seg, 8, &pts),
        Err(Error::OutOfBounds { .. })
    ));
    assert_eq!(
        seq_of::<Point>(&seg).nth(4).unwrap().unwrap(),
        pts[4],
        "nothing was written"
    );
}

// ---------------------------------------------------------------- strings

#[test]
fn c_strings_round_trip_through_an_allocator() {
    let heap = Heap {
        session: Session::global(),
        chunks: RefCell::default(),
    };
    let seg = write_cstring(&heap, "grüße").unwrap();
    assert_eq!(seg.len(), "grüße".len() + 1);
    assert_eq!(seg.get::<u8>(seg.len() - 1).unwrap(), 0);
    assert_eq!(read_cstring(&seg, 0).unwrap(), "grüße");
    assert_eq!(read_cstring(&seg, 1).unwrap(), "rüße");
    assert!(read_cstring(&seg, 3).is_err()); // starts inside "ü"
    assert!(matches!(
        write_cstring(&heap, "a\0b"),
        Err(Error::InvalidString { .. })
    ));
    let empty = write_cstring(&heap, "").unwrap();
    assert_eq!(read_cstring(&empty, 0).unwrap(), "");
}

#[test]
fn bad_c_strings_are_errors() {
    let s = Session::global();
    let mut b = Buf::new(4);
    let mut seg = b.seg(&s);
    for (i, x) in [b'a', 0xff, 0, b'z'].into_iter().enumerate() {
        seg.set(i, x).unwrap();
    }
    assert!(matches!(
        read_cstring(&seg, 0),
        Err(Error::InvalidString { .. })
    )); // not UTF-8
    assert!(matches!(
        read_cstring(&seg, 3),
        Err(Error::InvalidString { .. })
    )); // no NUL
    assert_eq!(read_cstring(&seg, 2).unwrap(), "");
    assert!(matches!(
        read_cstring(&seg, 4),
        Err(Error::InvalidString { .. })
    ));
    assert!(matches!(
        read_cstring(&seg, 5),
        Err(Error::OutOfBounds { .. })
    ));
}

// ---------------------------------------------------------------- properties

fn leaf() -> impl Strategy<Value = MemoryLayout> {
    (
        prop::sample::select(ValueKind::ALL.to_vec()),
        prop::sample::select(vec![ByteOrder::NATIVE, ByteOrder::Big, ByteOrder::Little]),
    )
        .prop_map(|(k, o)| MemoryLayout::value(k).with_order(o))
}

fn named(ms: Vec<MemoryLayout>) -> Vec<MemoryLayout> {
    ms.into_iter()
        .enumerate()
        .map(|(i, m)| m.with_name(&format!("m{i}")))
        .collect()
}

fn layout_strategy() -> impl Strategy<Value = MemoryLayout> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4)
                .prop_map(|ms| MemoryLayout::c_struct(named(ms)).unwrap()),
            prop::collection::vec(inner.clone(), 1..4)
                .prop_map(|ms| MemoryLayout::packed(named(ms)).unwrap()),
            prop::collection::vec(inner.clone(), 1..3)
                .prop_map(|ms| MemoryLayout::union_of(named(ms)).unwrap()),
            (0usize..4, inner).prop_filter_map("element size multiple of align", |(n, e)| {
                MemoryLayout::sequence(n, e).ok()
            }),
        ]
    })
}

fn scalar_value(k: ValueKind) -> BoxedStrategy<Value> {
    match k {
        ValueKind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ValueKind::I8 => any::<i8>().prop_map(Value::I8).boxed(),
        ValueKind::U8 => any::<u8>().prop_map(Value::U8).boxed(),
        ValueKind::I16 => any::<i16>().prop_map(Value::I16).boxed(),
        ValueKind::U16 => any::<u16>().prop_map(Value::U16).boxed(),
        ValueKind::I32 => any::<i32>().prop_map(Value::I32).boxed(),
        ValueKind::U32 => any::<u32>().prop_map(Value::U32).boxed(),
        ValueKind::I64 => any::<i64>().prop_map(Value::I64).boxed(),
        ValueKind::U64 => any::<u64>().prop_map(Value::U64).boxed(),
        // NaN != NaN: keep floats comparable (bit patterns are tested by
        // the byte-level property below)
        ValueKind::F32 => any::<f32>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(Value::F32)
            .boxed(),
        ValueKind::F64 => any::<f64>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(Value::F64)
            .boxed(),
        ValueKind::Address => any::<usize>()
            .prop_map(|a| Value::Address(Address::new(a)))
            .boxed(),
    }
}

fn value_strategy(l: &MemoryLayout) -> BoxedStrategy<Value> {
    match l.kind() {
        LayoutKind::Value(k) => scalar_value(*k),
        LayoutKind::Struct(ms) => ms
            .iter()
            .filter(|m| !m.is_padding())
            .map(value_strategy)
            .collect::<Vec<_>>()
            .prop_map(Value::Struct)
            .boxed(),
        LayoutKind::Sequence { count, element } => {
            prop::collection::vec(value_strategy(element), *count..=*count)
                .prop_map(Value::Array)
                .boxed()
        }
        LayoutKind::Union(_) | LayoutKind::Padding => {
            prop::collection::vec(any::<u8>(), l.size()..=l.size())
                .prop_map(Value::Bytes)
                .boxed()
        }
    }
}

fn layout_and_value() -> impl Strategy<Value = (MemoryLayout, Value)> {
    layout_strategy().prop_flat_map(|l| {
        let v = value_strategy(&l);
        (Just(l), v)
    })
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn random_values_round_trip_through_random_layouts((l, v) in layout_and_value(), slack in 0usize..3) {
        let s = Session::global();
        let offset = slack * l.align().min(16);
        let mut b = Buf::new(offset + l.size());
        let mut seg = b.seg(&s);
        v.write(&l, &mut seg, offset).unwrap();
        prop_assert_eq!(Value::read(&l, &seg, offset).unwrap(), v.clone());
        // encode/decode on plain bytes agree with the segment path
        let mut bytes = vec![0u8; l.size()];
        v.encode(&l, &mut bytes).unwrap();
        prop_assert_eq!(Value::decode(&l, &bytes).unwrap(), v);
    }

    #[test]
    fn byte_swapped_layout_reads_swapped_scalars(k in prop::sample::select(ValueKind::ALL.to_vec()), raw in any::<u64>()) {
        let s = Session::global();
        let mut b = Buf::new(8);
        let mut seg = b.seg(&s);
        let n = k.size();
        for i in 0..n {
            seg.set::<u8>(i, (raw >> (8 * i)) as u8).unwrap();
        }
        let le = MemoryLayout::value(k).with_order(ByteOrder::Little);
        let be = MemoryLayout::value(k).with_order(ByteOrder::Big);
        let mut lb = vec![0u8; n];
        Value::read(&le, &seg, 0).unwrap().encode(&le, &mut lb).unwrap();
        let mut bb = vec![0u8; n];
        Value::read(&be, &seg, 0).unwrap().encode(&be, &mut bb).unwrap();
        if k != ValueKind::Bool {
            // whatever the bits (NaNs included), both orders store them back unchanged
            let orig: Vec<u8> = (0..n).map(|i| (raw >> (8 * i)) as u8).collect();
            prop_assert_eq!(&lb, &orig);
            prop_assert_eq!(&bb, &orig);
        }
        // a value written big-endian reads back byte-reversed as little-endian
        if let Value::U32(x) = Value::read(&be, &seg, 0).unwrap() {
            prop_assert_eq!(Value::read(&le, &seg, 0).unwrap(), Value::U32(x.swap_bytes()));
        }
    }

    #[test]
    fn records_round_trip_and_agree_with_the_dynamic_path(
        id in any::<u64>(), kind in any::<u8>(), x in any::<i32>(), y in any::<i32>(),
        w in -1e300f64..1e300, next in any::<usize>(),
    ) {
        let r = record(id, kind, x, y, w, next);
        let s = Session::global();
        let mut b = Buf::new(size_of::<Record>());
        let mut seg = b.seg(&s);
        r.write_to(&mut seg, 0).unwrap();
        prop_assert_eq!(Record::read_from(&seg, 0).unwrap(), r);
        let dynamic = Value::read(&Record::layout(), &seg, 0).unwrap();
        prop_assert_eq!(dynamic.clone(), Value::Struct(vec![
            Value::U64(id), Value::U8(kind),
            Value::Struct(vec![Value::I32(x), Value::I32(y)]),
            Value::F64(w), Value::Address(Address::new(next)),
        ]));
        // written dynamically, read statically
        let mut b2 = Buf::new(size_of::<Record>());
        let mut seg2 = b2.seg(&s);
        dynamic.write(&Record::layout(), &mut seg2, 0).unwrap();
        prop_assert_eq!(Record::read_from(&seg2, 0).unwrap(), r);
    }

    #[test]
    fn random_paths_never_panic(path in "[a-z0-9\\[\\]\\.]{0,12}") {
        let l = MemoryLayout::c_struct([
            Point::layout().with_name("p"),
            MemoryLayout::sequence(3, c::INT).unwrap().with_name("a"),
        ]).unwrap();
        let _ = l.byte_offset(&path);
        let _ = l.select(&path);
    }

    #[test]
    fn random_layout_parameters_never_panic(
        sizes in prop::collection::vec(0usize..=usize::MAX, 1..4),
        aligns in prop::collection::vec(0usize..=usize::MAX, 1..4),
        count in 0usize..=usize::MAX,
    ) {
        let mut ms = Vec::new();
        for (i, (sz, al)) in sizes.iter().zip(&aligns).enumerate() {
            if let Ok(p) = MemoryLayout::padding(*sz).and_then(|p| p.with_align(*al)) {
                ms.push(p.with_name(&format!("f{i}")));
            }
        }
        if !ms.is_empty() {
            let _ = MemoryLayout::struct_of(ms.clone());
            let _ = MemoryLayout::c_struct(ms.clone());
            let _ = MemoryLayout::packed(ms.clone());
            let _ = MemoryLayout::union_of(ms.clone());
            let _ = MemoryLayout::sequence(count, ms[0].clone());
        }
    }
}

#[test]
fn arrays_of_structs_through_sub_views() {
    let pts = MemoryLayout::sequence(4, Point::layout()).unwrap();
    let s = Session::global();
    let mut b = Buf::new(pts.size());
    let mut seg = b.seg(&s);
    {
        let mut view = StructView::new(&pts, &mut seg, 0).unwrap();
        for i in 0..4 {
            let mut el = view.view_mut(&format!("[{i}]")).unwrap();
            el.set("x", Value::I32(i)).unwrap();
            el.set("y", Value::I32(10 * i)).unwrap();
        }
        assert!(view.view_mut("[4]").is_err());
        let third = view.view("[2]").unwrap();
        assert_eq!(third.offset(), 16);
        assert_eq!(
            third.read().unwrap(),
            Value::Struct(vec![Value::I32(2), Value::I32(20)])
        );
    }
    let all = memscope::marshal::read_seq::<Point>(&seg, 0, 4).unwrap();
    assert_eq!(all[3], Point { x: 3, y: 30 });
    let mut two = [Point::default(); 2];
    memscope::marshal::read_seq_into(&seg, 16, &mut two).unwrap();
    assert_eq!(two, [Point { x: 2, y: 20 }, Point { x: 3, y: 30 }]);
    assert!(memscope::marshal::read_seq::<Point>(&seg, 8, 4).is_err());
    assert!(memscope::marshal::read_seq::<Point>(&seg, 0, usize::MAX).is_err());
}

#[test]
fn guarded_marshal_checks_the_guard_and_bounds() {
    let s = Session::shared();
    let other = Session::shared();
    let mut b = Buf::new(16);
    let mut seg = b.seg(&s);
    let g = s.acquire().unwrap();
    Point { x: 1, y: 2 }.write_guarded(&mut seg, &g, 8).unwrap();
    assert_eq!(
        Point::read_guarded(&seg, &g, 8).unwrap(),
        Point { x: 1, y: 2 }
    );
    assert!(matches!(
        Point::read_guarded(&seg, &g, 12),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        Point::read_guarded(&seg, &g, 2),
        Err(Error::Misaligned { .. })
    ));
    let og = other.acquire().unwrap();
    assert!(matches!(
        Point::default().write_guarded(&mut seg, &og, 0),
        Err(Error::InvalidArgument { .. })
    ));
    // while the guard is held, close is refused and the memory stays readable
    assert!(matches!(s.close(), Err(Error::Busy { .. })));
    assert_eq!(Point::read_from(&seg, 8).unwrap(), Point { x: 1, y: 2 });
}

// ------------------------------------------------- issue 12: bounds on bad input

/// Runs `f` on a thread with a 2 MiB stack (the default for spawned threads).
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn reading_huge_sequences_of_zero_sized_elements_is_an_error() {
    let s = Session::global();
    let mut b = Buf::new(8);
    let seg = b.seg(&s);
    let zst = MemoryLayout::sequence(0, c::INT).unwrap();
    for count in [usize::MAX, 1 << 40, 1 << 20] {
        let l = MemoryLayout::sequence(count, zst.clone()).unwrap();
        assert!(matches!(
            Value::read(&l, &seg, 0),
            Err(Error::InvalidLayout { .. })
        ));
        assert!(matches!(
            Value::decode(&l, &[]),
            Err(Error::InvalidLayout { .. })
        ));
    }
    // nested: 2^16 * 2^16 zero-sized values overflow the bound too
    let inner = MemoryLayout::sequence(1 << 16, zst.clone()).unwrap();
    let outer = MemoryLayout::sequence(1 << 16, inner).unwrap();
    assert!(Value::read(&outer, &seg, 0).is_err());
    // a modest count still reads
    let ok = MemoryLayout::sequence(3, zst).unwrap();
    assert_eq!(
        Value::read(&ok, &seg, 0).unwrap(),
        Value::Array(vec![Value::Array(vec![]); 3])
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "MAX_DEPTH nesting: minutes under Miri; the shallow reads cover the unsafe access"
)]
fn reading_a_max_depth_layout_fits_a_small_stack() {
    on_small_stack(|| {
        let mut l = c::INT;
        for _ in 1..memscope::layout::MAX_DEPTH {
            l = MemoryLayout::c_struct([l]).unwrap();
        }
        let s = Session::global();
        let mut b = Buf::new(4);
        let mut seg = b.seg(&s);
        seg.set::<i32>(0, 9).unwrap();
        let v = Value::read(&l, &seg, 0).unwrap();
        v.write(&l, &mut seg, 0).unwrap();
        assert_eq!(Value::read(&l, &seg, 0).unwrap(), v);
        let mut leaf = &v;
        while let Value::Struct(m) = leaf {
            leaf = &m[0];
        }
        assert_eq!(leaf, &Value::I32(9));
    });
}

#[test]
fn deep_values_drop_clone_compare_and_print_on_a_small_stack() {
    on_small_stack(|| {
        let mut v = Value::I32(1);
        let depth = if cfg!(miri) { 600 } else { 100_000 };
        for i in 0..depth {
            v = if i % 2 == 0 {
                Value::Struct(vec![v, Value::U8(2)])
            } else {
                Value::Array(vec![v])
            };
        }
        let w = v.clone();
        assert_eq!(v, w);
        let mut x = w.clone();
        // change the innermost leaf: equality must look all the way down
        let mut cur = &mut x;
        loop {
            match cur {
                Value::Struct(m) | Value::Array(m) => cur = &mut m[0],
                leaf => {
                    *leaf = Value::I32(2);
                    break;
                }
            }
        }
        assert_ne!(v, x);
        let text = format!("{v:?}");
        assert!(text.starts_with("Array([Struct([Array(["));
        assert!(text.contains(".."));
        drop((v, w, x));
    });
}

#[test]
fn value_debug_and_eq_match_the_derived_forms() {
    let v = Value::Struct(vec![
        Value::I8(7),
        Value::Array(vec![Value::F64(2.5), Value::Bytes(vec![1, 2])]),
    ]);
    assert_eq!(
        format!("{v:?}"),
        "Struct([I8(7), Array([F64(2.5), Bytes([1, 2])])])"
    );
    assert_ne!(Value::F64(f64::NAN), Value::F64(f64::NAN));
    assert_eq!(Value::F64(0.0), Value::F64(-0.0));
    assert_ne!(Value::Struct(vec![]), Value::Array(vec![]));
    assert_ne!(
        Value::Struct(vec![Value::I8(1)]),
        Value::Struct(vec![Value::I8(1), Value::I8(2)])
    );
}

// ----- user code inside the access window (issue 12, UB item 3) -------------

/// A `Marshal` type whose `encode` closes a session (held in the value) and
/// whose `decode` closes the session in `CLOSE_IN_DECODE`, recording what
/// close returned; then it touches the bytes it was given.
struct Closer(Session);

thread_local! {
    static CLOSE_IN_DECODE: RefCell<Option<Session>> = const { RefCell::new(None) };
    static CLOSE_RESULT: RefCell<Option<Result<()>>> = const { RefCell::new(None) };
}

impl Marshal for Closer {
    const SIZE: usize = 8;
    const ALIGN: usize = 8;
    fn layout() -> MemoryLayout {
        c::LONG_LONG
    }
    fn encode(&self, out: &mut [u8]) -> Result<()> {
        let r = self.0.close();
        CLOSE_RESULT.with(|c| *c.borrow_mut() = Some(r));
        out.copy_from_slice(&7u64.to_ne_bytes()); // writes the (live?) block
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        let s = CLOSE_IN_DECODE
            .with(|c| c.borrow().clone())
            .expect("a session");
        let r = s.close();
        CLOSE_RESULT.with(|c| *c.borrow_mut() = Some(r));
        assert_eq!(bytes[0], 7); // reads the (live?) block
        Ok(Closer(s))
    }
}

fn last_close() -> Option<Result<()>> {
    CLOSE_RESULT.with(|c| c.borrow_mut().take())
}

fn arena_segment_round_trip(s: &Session, close_in: &str) {
    let arena = memscope::alloc::Arena::new(s.clone()).unwrap();
    let mut seg = arena.allocate(8, 8).unwrap();
    if close_in == "encode" {
        Closer(s.clone()).write_to(&mut seg, 0).unwrap();
    } else {
        7u64.write_to(&mut seg, 0).unwrap();
        CLOSE_IN_DECODE.with(|c| *c.borrow_mut() = Some(s.clone()));
        Closer::read_from(&seg, 0).unwrap();
        CLOSE_IN_DECODE.with(|c| *c.borrow_mut() = None);
    }
    assert_eq!(last_close(), Some(Err(Error::InUse)));
    // The window is over: the block is still there, and close now works.
    assert_eq!(seg.get::<u64>(0).unwrap(), 7);
    s.close().unwrap();
    assert_eq!(seg.get::<u64>(0), Err(Error::Closed));
}

#[test]
fn marshal_encode_that_closes_its_confined_session_gets_an_error_not_a_free() {
    arena_segment_round_trip(&Session::confined(), "encode");
}

#[test]
fn marshal_decode_that_closes_its_confined_session_gets_an_error_not_a_free() {
    arena_segment_round_trip(&Session::confined(), "decode");
}

#[test]
fn marshal_encode_that_closes_its_shared_session_gets_an_error_not_a_hang() {
    arena_segment_round_trip(&Session::shared(), "encode");
}

#[test]
fn marshal_decode_that_closes_its_shared_session_gets_an_error_not_a_hang() {
    arena_segment_round_trip(&Session::shared(), "decode");
}

#[test]
fn marshal_encode_may_close_another_session() {
    let (s, other) = (Session::confined(), Session::shared());
    let arena = memscope::alloc::Arena::new(s.clone()).unwrap();
    let mut seg = arena.allocate(8, 8).unwrap();
    Closer(other.clone()).write_to(&mut seg, 0).unwrap();
    assert_eq!(last_close(), Some(Ok(())));
    assert!(!other.is_alive());
}

#[test]
fn read_seq_of_a_huge_count_of_zero_sized_elements_is_an_error() {
    let s = Session::global();
    let mut b = Buf::new(8);
    let seg = b.seg(&s);
    assert!(matches!(
        memscope::marshal::read_seq::<[u8; 0]>(&seg, 0, usize::MAX),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(
        memscope::marshal::read_seq::<[u8; 0]>(&seg, 0, 3)
            .unwrap()
            .len(),
        3
    );
}
