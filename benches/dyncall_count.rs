//! Row 11 under callgrind: `dyncall_count PATH N` makes N calls of one
//! dynamic-call path to `add(int,int)` / `blank()` (tests/c/testlib.c).
//! Instructions per call: run it under `valgrind --tool=callgrind` with two
//! N and divide the difference of the totals by the difference of the N.
//! Paths: raw_add, call_add, call_as_add, call_with_add, raw_blank,
//! call_blank, call_as_blank, call_with_blank.

use std::ffi::c_void;
use std::hint::black_box;

use libffi::middle::{Cif, CodePtr, Type, arg};
use memscope::Session;
use memscope::layout::c;
use memscope::linker::{DowncallOptions, FunctionDescriptor, Library, Linker};
use memscope::marshal::Value;

fn main() {
    let mut a = std::env::args().skip(1);
    let path = a.next().expect("PATH");
    let n: u64 = a.next().expect("N").parse().expect("N is a number");
    let so = std::env::temp_dir().join(format!("libmemscope_count_{}.so", std::process::id()));
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/c/testlib.c");
    let st = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-pthread", "-o"])
        .arg(&so)
        .arg(src)
        .status()
        .expect("cc");
    assert!(st.success());
    // SAFETY: our own test library has no initialisers.
    let lib = unsafe { Library::open(so.to_str().unwrap(), &Session::global()) }.unwrap();
    let _ = std::fs::remove_file(&so);
    let add = lib.lookup("add").unwrap();
    let blank = lib.lookup("blank").unwrap();
    // SAFETY: `int add(int, int)`, `void blank(void)`.
    let (dadd, dblank) = unsafe {
        (
            Linker::native()
                .downcall(
                    &add,
                    &FunctionDescriptor::of(Some(c::INT), &[c::INT, c::INT]),
                    DowncallOptions::default(),
                )
                .unwrap(),
            Linker::native()
                .downcall(
                    &blank,
                    &FunctionDescriptor::of(None, &[]),
                    DowncallOptions::default(),
                )
                .unwrap(),
        )
    };
    let acif = Cif::new([Type::i32(), Type::i32()], Type::i32());
    let acode = CodePtr(add.address().as_ptr::<c_void>());
    let bcif = Cif::new([], Type::void());
    let bcode = CodePtr(blank.address().as_ptr::<c_void>());
    let mut sum = 0i64;
    for _ in 0..n {
        let (x, y) = (black_box(1i32), black_box(2i32));
        let r: i32 = match path.as_str() {
            // SAFETY: the cif matches `int add(int, int)`.
            "raw_add" => unsafe { acif.call::<i32>(acode, &[arg(&x), arg(&y)]) },
            "call_add" => match dadd.call(&[Value::I32(x), Value::I32(y)]) {
                Ok(Some(Value::I32(r))) => r,
                _ => unreachable!(),
            },
            "call_as_add" => dadd.call_as::<i32>(&[x.into(), y.into()]).unwrap(),
            "call_with_add" => match dadd.call_with(&[x.into(), y.into()]) {
                Ok(Some(Value::I32(r))) => r,
                _ => unreachable!(),
            },
            "raw_blank" => {
                // SAFETY: the cif matches `void blank(void)`.
                unsafe { bcif.call::<()>(bcode, &[]) };
                0
            }
            "call_blank" => dblank.call(black_box(&[])).unwrap().map_or(0, |_| 1),
            "call_as_blank" => {
                dblank.call_as::<()>(black_box(&[])).unwrap();
                0
            }
            "call_with_blank" => dblank.call_with(black_box(&[])).unwrap().map_or(0, |_| 1),
            p => panic!("unknown path {p}"),
        };
        sum += i64::from(r);
    }
    println!("{path} {n} {sum}");
}
