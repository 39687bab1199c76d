//! Property tests: random sequences of offsets, lengths, widths and
//! alignments thrown at a segment (and at a random window of it, writable or
//! read-only) give the same bytes and the same errors as a `Vec<u8>` model.

use memscope::segment::HeapSegment;
use memscope::{Error, Segment};
use proptest::prelude::*;

const SIZE: usize = 64;

#[derive(Debug, Clone)]
enum Op {
    Get {
        width: usize,
        off: usize,
        aligned: bool,
    },
    Set {
        width: usize,
        off: usize,
        val: u64,
        aligned: bool,
    },
    Fill {
        byte: u8,
    },
    CopyWithin {
        src: usize,
        dst: usize,
        len: usize,
    },
    CopyFromSlice {
        off: usize,
        data: Vec<u8>,
    },
    SliceToVec {
        off: usize,
        len: usize,
    },
    Cstr {
        off: usize,
    },
    SetCstr {
        off: usize,
        text: String,
    },
}

fn offset() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0..SIZE + 8,
        1 => (usize::MAX - 16)..=usize::MAX,
        1 => any::<usize>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let width = prop_oneof![Just(1usize), Just(2), Just(4), Just(8)];
    prop_oneof![
        (width.clone(), offset(), any::<bool>()).prop_map(|(width, off, aligned)| Op::Get {
            width,
            off,
            aligned
        }),
        (width, offset(), any::<u64>(), any::<bool>()).prop_map(|(width, off, val, aligned)| {
            Op::Set {
                width,
                off,
                val,
                aligned,
            }
        }),
        any::<u8>().prop_map(|byte| Op::Fill { byte }),
        (offset(), offset(), offset()).prop_map(|(src, dst, len)| Op::CopyWithin { src, dst, len }),
        (offset(), proptest::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(off, data)| Op::CopyFromSlice { off, data }),
        (offset(), offset()).prop_map(|(off, len)| Op::SliceToVec { off, len }),
        offset().prop_map(|off| Op::Cstr { off }),
        (offset(), "[a-c\u{0}]{0,6}").prop_map(|(off, text)| Op::SetCstr { off, text }),
    ]
}

/// The model's bounds check (same contract as the segment's).
fn check(off: usize, len: usize, size: usize) -> Result<(), Error> {
    match off.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::OutOfBounds {
            offset: off,
            len,
            size,
        }),
    }
}

fn check_aligned(
    base: usize,
    off: usize,
    len: usize,
    align: usize,
    size: usize,
) -> Result<(), Error> {
    check(off, len, size)?;
    let addr = base + off;
    if !addr.is_multiple_of(align) {
        return Err(Error::Misaligned { addr, align });
    }
    Ok(())
}

fn read_model(m: &[u8], off: usize, width: usize) -> u64 {
    let b = &m[off..off + width];
    match width {
        1 => b[0] as u64,
        2 => u16::from_ne_bytes(b.try_into().unwrap()) as u64,
        4 => u32::from_ne_bytes(b.try_into().unwrap()) as u64,
        _ => u64::from_ne_bytes(b.try_into().unwrap()),
    }
}

fn write_model(m: &mut [u8], off: usize, width: usize, val: u64) {
    let bytes = val.to_ne_bytes();
    let b: &[u8] = match width {
        1 => &bytes[..1],
        2 => &(val as u16).to_ne_bytes()[..],
        4 => &(val as u32).to_ne_bytes()[..],
        _ => &bytes[..],
    };
    let owned = b.to_vec();
    m[off..off + width].copy_from_slice(&owned);
}

fn seg_get(seg: &Segment<'_>, width: usize, off: usize, aligned: bool) -> Result<u64, Error> {
    match (width, aligned) {
        (1, true) => seg.get::<u8>(off).map(u64::from),
        (1, false) => seg.get_unaligned::<u8>(off).map(u64::from),
        (2, true) => seg.get::<u16>(off).map(u64::from),
        (2, false) => seg.get_unaligned::<u16>(off).map(u64::from),
        (4, true) => seg.get::<u32>(off).map(u64::from),
        (4, false) => seg.get_unaligned::<u32>(off).map(u64::from),
        (_, true) => seg.get::<u64>(off),
        (_, false) => seg.get_unaligned::<u64>(off),
    }
}

fn seg_set(
    seg: &mut Segment<'_>,
    width: usize,
    off: usize,
    val: u64,
    aligned: bool,
) -> Result<(), Error> {
    match (width, aligned) {
        (1, true) => seg.set(off, val as u8),
        (1, false) => seg.set_unaligned(off, val as u8),
        (2, true) => seg.set(off, val as u16),
        (2, false) => seg.set_unaligned(off, val as u16),
        (4, true) => seg.set(off, val as u32),
        (4, false) => seg.set_unaligned(off, val as u32),
        (_, true) => seg.set(off, val),
        (_, false) => seg.set_unaligned(off, val),
    }
}

fn run(window: (usize, usize), read_only: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut heap = HeapSegment::new(SIZE, 16).unwrap();
    let mut model = vec![0u8; SIZE];
    let mut whole = heap.as_segment_mut();
    let (woff, wlen) = window;
    // Writes in read-only runs go through `view.as_read_only()`, which must
    // refuse them with ReadOnly before any other check.
    let mut view = whole.slice_mut(woff, wlen).unwrap();
    let base = view.address().get();
    let m = &mut model[woff..woff + wlen];
    for op in ops {
        match op {
            Op::Get {
                width,
                off,
                aligned,
            } => {
                let want = if *aligned {
                    check_aligned(base, *off, *width, *width, wlen)
                } else {
                    check(*off, *width, wlen)
                }
                .map(|()| read_model(m, *off, *width));
                prop_assert_eq!(seg_get(&view, *width, *off, *aligned), want);
            }
            Op::Set {
                width,
                off,
                val,
                aligned,
            } => {
                let want = if read_only {
                    Err(Error::ReadOnly)
                } else if *aligned {
                    check_aligned(base, *off, *width, *width, wlen)
                } else {
                    check(*off, *width, wlen)
                };
                let got = if read_only {
                    seg_set(
                        &mut view.as_read_only().slice_mut(0, wlen).unwrap(),
                        *width,
                        *off,
                        *val,
                        *aligned,
                    )
                } else {
                    seg_set(&mut view, *width, *off, *val, *aligned)
                };
                prop_assert_eq!(&got, &want);
                if want.is_ok() {
                    write_model(m, *off, *width, *val);
                }
            }
            Op::Fill { byte } => {
                let got = if read_only {
                    view.as_read_only().slice_mut(0, wlen).unwrap().fill(*byte)
                } else {
                    view.fill(*byte)
                };
                if read_only {
                    prop_assert_eq!(got, Err(Error::ReadOnly));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    m.fill(*byte);
                }
            }
            Op::CopyWithin { src, dst, len } => {
                let want = if read_only {
                    Err(Error::ReadOnly)
                } else {
                    check(*src, *len, wlen).and_then(|()| check(*dst, *len, wlen))
                };
                let got = if read_only {
                    view.as_read_only()
                        .slice_mut(0, wlen)
                        .unwrap()
                        .copy_within(*src, *dst, *len)
                } else {
                    view.copy_within(*src, *dst, *len)
                };
                prop_assert_eq!(&got, &want);
                if want.is_ok() {
                    m.copy_within(*src..*src + *len, *dst);
                }
            }
            Op::CopyFromSlice { off, data } => {
                let want = if read_only {
                    Err(Error::ReadOnly)
                } else {
                    check(*off, data.len(), wlen)
                };
                let got = if read_only {
                    view.as_read_only()
                        .slice_mut(0, wlen)
                        .unwrap()
                        .copy_from_slice(*off, data)
                } else {
                    view.copy_from_slice(*off, data)
                };
                prop_assert_eq!(&got, &want);
                if want.is_ok() {
                    m[*off..*off + data.len()].copy_from_slice(data);
                }
            }
            Op::SliceToVec { off, len } => {
                let want = check(*off, *len, wlen).map(|()| m[*off..*off + *len].to_vec());
                let got = view.slice(*off, *len).and_then(|s| s.to_vec());
                prop_assert_eq!(got, want);
            }
            Op::Cstr { off } => {
                let want = match wlen.checked_sub(*off) {
                    None => Err("oob"),
                    Some(_) => match m[*off..].iter().position(|&b| b == 0) {
                        Some(n) => Ok(m[*off..*off + n].to_vec()),
                        None => Err("nonul"),
                    },
                };
                let got = view.get_cstr(*off);
                match (&got, &want) {
                    (Ok(c), Ok(w)) => prop_assert_eq!(c.as_bytes(), &w[..]),
                    (Err(Error::OutOfBounds { .. }), Err("oob")) => {}
                    (Err(Error::InvalidString { .. }), Err("nonul")) => {}
                    _ => prop_assert!(false, "get_cstr({off}) gave {got:?}, model {want:?}"),
                }
            }
            Op::SetCstr { off, text } => {
                let got = if read_only {
                    view.as_read_only()
                        .slice_mut(0, wlen)
                        .unwrap()
                        .set_cstr(*off, text)
                } else {
                    view.set_cstr(*off, text)
                };
                if text.contains('\0') {
                    prop_assert!(matches!(got, Err(Error::InvalidString { .. })), "{got:?}");
                } else if read_only {
                    prop_assert_eq!(got, Err(Error::ReadOnly));
                } else {
                    let want = check(*off, text.len() + 1, wlen);
                    prop_assert_eq!(&got, &want);
                    if want.is_ok() {
                        m[*off..*off + text.len()].copy_from_slice(text.as_bytes());
                        m[*off + text.len()] = 0;
                    }
                }
            }
        }
        // After every step the whole buffer matches the model.
        prop_assert_eq!(whole_bytes(&view, wlen), m.to_vec());
    }
    prop_assert_eq!(whole.to_vec().unwrap(), model);
    Ok(())
}

fn whole_bytes(view: &Segment<'_>, wlen: usize) -> Vec<u8> {
    view.slice(0, wlen).unwrap().to_vec().unwrap()
}

fn window() -> impl Strategy<Value = (usize, usize)> {
    (0..SIZE).prop_flat_map(|off| (Just(off), 0..=SIZE - off))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 512 },
        // Under Miri (isolated: no file system) failures are not persisted.
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        ..ProptestConfig::default()
    })]

    #[test]
    fn segment_matches_a_vec_model(
        window in window(),
        read_only in proptest::bool::weighted(0.2),
        ops in proptest::collection::vec(op(), 1..if cfg!(miri) { 10 } else { 40 }),
    ) {
        run(window, read_only, &ops)?;
    }

    #[test]
    fn slices_of_slices_match_subslices(
        a in offset(), b in offset(), c in offset(), d in offset(),
    ) {
        let heap = HeapSegment::from_vec((0..SIZE as u8).collect());
        let seg = heap.as_segment();
        let model: Vec<u8> = (0..SIZE as u8).collect();
        let outer = seg.slice(a, b);
        prop_assert_eq!(outer.is_ok(), check(a, b, SIZE).is_ok());
        if let Ok(outer) = outer {
            let inner = outer.slice(c, d);
            prop_assert_eq!(&inner.as_ref().err().cloned(), &check(c, d, b).err());
            if let Ok(inner) = inner {
                prop_assert_eq!(inner.to_vec().unwrap(), model[a + c..a + c + d].to_vec());
                prop_assert_eq!(inner.address().get(), seg.address().get() + a + c);
            }
        }
    }

    #[test]
    fn bulk_readers_agree_with_to_vec(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        chunk in 1usize..40,
        big_endian in any::<bool>(),
    ) {
        let n = bytes.len() / 4 * 4;
        let h = HeapSegment::from_vec(bytes[..n].to_vec());
        let seg = h.as_segment();
        let mut aligned = HeapSegment::new(n, 4).unwrap();
        aligned.as_segment_mut().copy_from(&seg).unwrap();
        let seg = aligned.as_segment();
        let words: Vec<u32> = seg.elements::<u32>().unwrap().collect::<Result<_, _>>().unwrap();
        let model: Vec<u32> = bytes[..n].chunks(4).map(|c| u32::from_ne_bytes(c.try_into().unwrap())).collect();
        prop_assert_eq!(&words, &model);
        let mut it = seg.elements::<u32>().unwrap();
        let first = it.next();
        let mut rest = Vec::new();
        while let Some(c) = it.next_chunk() {
            rest.extend_from_slice(c.unwrap());
        }
        prop_assert_eq!(first.map(|r| r.unwrap()), model.first().copied());
        prop_assert_eq!(&rest[..], model.get(1..).unwrap_or(&[]));
        let joined: Vec<u8> = seg.chunks(chunk).unwrap().flat_map(|c| c.to_vec().unwrap()).collect();
        prop_assert_eq!(&joined[..], &bytes[..n]);
        let order = if big_endian { memscope::segment::ByteOrder::Big } else { memscope::segment::ByteOrder::Little };
        for (i, w) in model.iter().enumerate() {
            let want = if big_endian { u32::from_be_bytes(w.to_ne_bytes()) } else { u32::from_le_bytes(w.to_ne_bytes()) };
            prop_assert_eq!(seg.get_with::<u32>(i * 4, order).unwrap(), want);
        }
    }
}
