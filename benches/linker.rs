//! Linker benches (PERFORMANCE.md rows 10–13): typed and dynamic downcalls,
//! struct-by-value calls and a qsort upcall, each next to its floor (a plain
//! function-pointer call into the same C library, or raw libffi). The C
//! library is `tests/c/testlib.c`, compiled here with `cc -O2`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::ffi::c_void;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use libffi::middle::{Cif, CodePtr, Type, arg};
use memscope::layout::{MemoryLayout, c};
use memscope::linker::{DowncallOptions, FunctionDescriptor, Library, Linker};
use memscope::marshal::Value;
use memscope::{Address, Session};

fn build_testlib() -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join(format!("libmemscope_bench_{}.so", std::process::id()));
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/c/testlib.c");
    let st = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-pthread", "-o"])
        .arg(&out)
        .arg(src)
        .status()
        .expect("cc is needed for the linker benches");
    assert!(st.success());
    out.to_str().unwrap().to_owned()
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Complex {
    re: f64,
    im: f64,
}

memscope::c_struct! {
    /// `Complex` again, with `Marshal` (for `bind!`).
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct MComplex { re: f64, im: f64 }
}

memscope::bind! {
    struct Bound {
        fn add(a: i32, b: i32) -> i32;
        fn cswap(a: MComplex) -> MComplex;
    }
}

type AddFn = extern "C" fn(i32, i32) -> i32;
type SwapFn = extern "C" fn(Complex) -> Complex;
type QsortFn = unsafe extern "C" fn(
    *mut c_void,
    usize,
    usize,
    extern "C" fn(*const c_void, *const c_void) -> i32,
);
type CmpFn = extern "C" fn(*const c_void, *const c_void) -> i32;

fn linker(c: &mut Criterion) {
    let path = build_testlib();
    // The floor: libloading's own function pointers into the same library.
    // SAFETY: our test library; the types match testlib.c.
    let raw = unsafe { libloading::Library::new(&path) }.unwrap();
    // SAFETY: as above.
    let direct_add: AddFn = *unsafe { raw.get::<AddFn>(b"add") }.unwrap();
    // SAFETY: as above.
    let direct_swap: SwapFn = *unsafe { raw.get::<SwapFn>(b"cswap") }.unwrap();

    let s = Session::global();
    // SAFETY: our own test library.
    let lib = unsafe { Library::open(&path, &s) }.unwrap();
    let add_sym = lib.lookup("add").unwrap();
    let swap_sym = lib.lookup("cswap").unwrap();

    // ---- row 10: add(int,int) with the signature known at compile time
    // SAFETY: `int add(int, int)`.
    let typed_add = unsafe { add_sym.as_fn::<AddFn>() }.unwrap();
    let mut g = c.benchmark_group("row10_add_typed");
    g.bench_function("direct_fn_pointer", |b| {
        b.iter(|| direct_add(black_box(1), black_box(2)))
    });
    g.bench_function("memscope_typed", |b| {
        b.iter(|| (typed_add.get())(black_box(1), black_box(2)))
    });
    // bind!: a typed function-pointer call behind a `Result`.
    // SAFETY: the bound declarations match testlib.c.
    let bound10 = unsafe { Bound::load(&lib) }.unwrap();
    g.bench_function("memscope_bind_macro", |b| {
        b.iter(|| bound10.add(black_box(1), black_box(2)).unwrap())
    });
    g.finish();

    // ---- row 11: add through a run-time descriptor vs raw libffi
    let d = FunctionDescriptor::of(Some(c::INT), &[c::INT, c::INT]);
    // SAFETY: `int add(int, int)`.
    let dyn_add =
        unsafe { Linker::native().downcall(&add_sym, &d, DowncallOptions::default()) }.unwrap();
    let cif = Cif::new([Type::i32(), Type::i32()], Type::i32());
    let code = CodePtr(add_sym.address().as_ptr::<c_void>());
    // SAFETY: the bound declarations match testlib.c.
    let bound = unsafe { Bound::load(&lib) }.unwrap();
    let mut g = c.benchmark_group("row11_add_dynamic");
    g.bench_function("raw_libffi_cif_call", |b| {
        b.iter(|| {
            let (x, y) = (black_box(1i32), black_box(2i32));
            // SAFETY: the cif matches `int add(int, int)`.
            unsafe { cif.call::<i32>(code, &[arg(&x), arg(&y)]) }
        })
    });
    // The result handed on as the `Option<Value>` itself (black-boxed in
    // memory) ...
    g.bench_function("memscope_downcall_call", |b| {
        b.iter(|| {
            dyn_add
                .call(&[Value::I32(black_box(1)), Value::I32(black_box(2))])
                .unwrap()
        })
    });
    // ... and consumed as the i32 it is, like the raw libffi and bind! rows.
    g.bench_function("memscope_downcall_call_i32", |b| {
        b.iter(
            || match dyn_add.call(&[Value::I32(black_box(1)), Value::I32(black_box(2))]) {
                Ok(Some(Value::I32(r))) => r,
                _ => unreachable!(),
            },
        )
    });
    g.bench_function("memscope_bind_macro", |b| {
        b.iter(|| bound.add(black_box(1), black_box(2)).unwrap())
    });
    g.finish();

    // ---- row 12: {double,double} f({double,double})
    // SAFETY: `Complex cswap(Complex)`.
    let typed_swap = unsafe { swap_sym.as_fn::<SwapFn>() }.unwrap();
    let cl = MemoryLayout::c_struct([c::DOUBLE, c::DOUBLE]).unwrap();
    let ds = FunctionDescriptor::of(Some(cl.clone()), &[cl]);
    // SAFETY: `Complex cswap(Complex)`.
    let dyn_swap =
        unsafe { Linker::native().downcall(&swap_sym, &ds, DowncallOptions::default()) }.unwrap();
    let scif = Cif::new(
        [Type::structure([Type::f64(), Type::f64()])],
        Type::structure([Type::f64(), Type::f64()]),
    );
    let scode = CodePtr(swap_sym.address().as_ptr::<c_void>());
    let mut g = c.benchmark_group("row12_struct_by_value");
    g.bench_function("direct_fn_pointer", |b| {
        b.iter(|| direct_swap(black_box(Complex { re: 1.0, im: 2.0 })))
    });
    g.bench_function("memscope_typed", |b| {
        b.iter(|| (typed_swap.get())(black_box(Complex { re: 1.0, im: 2.0 })))
    });
    g.bench_function("raw_libffi_cif_call", |b| {
        b.iter(|| {
            let x = black_box(Complex { re: 1.0, im: 2.0 });
            // SAFETY: the cif matches `Complex cswap(Complex)`.
            unsafe { scif.call::<Complex>(scode, &[arg(&x)]) }
        })
    });
    g.bench_function("memscope_downcall_call", |b| {
        b.iter(|| {
            let v = Value::Struct(vec![Value::F64(black_box(1.0)), Value::F64(2.0)]);
            dyn_swap.call(&[v]).unwrap()
        })
    });
    // The allocation-free dynamic path: the argument as raw bytes, the
    // struct returned straight into a caller segment.
    let mut out_h = memscope::segment::HeapSegment::new(16, 8).unwrap();
    let mut out = out_h.as_segment_mut();
    g.bench_function("memscope_downcall_bytes_call_into", |b| {
        b.iter(|| {
            let x = black_box(Complex { re: 1.0, im: 2.0 });
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&x.re.to_ne_bytes());
            bytes[8..].copy_from_slice(&x.im.to_ne_bytes());
            dyn_swap
                .call_into(&[memscope::linker::Arg::Bytes(&bytes)], &mut out)
                .unwrap();
            black_box(out.get::<f64>(0).unwrap())
        })
    });
    g.bench_function("memscope_downcall_call_with_frame", |b| {
        b.iter(|| {
            let x = black_box(Complex { re: 1.0, im: 2.0 });
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&x.re.to_ne_bytes());
            bytes[8..].copy_from_slice(&x.im.to_ne_bytes());
            dyn_swap
                .call_with_frame(&[memscope::linker::Arg::Bytes(&bytes)], |_, r| {
                    r.unwrap().get::<f64>(0).unwrap()
                })
                .unwrap()
        })
    });
    g.bench_function("memscope_bind_macro", |b| {
        b.iter(|| {
            bound
                .cswap(black_box(MComplex { re: 1.0, im: 2.0 }))
                .unwrap()
        })
    });
    g.finish();

    // ---- row 13: libc qsort of 1,000 ints, C comparator vs Rust upcalls
    let libc = Library::libc().unwrap();
    let qsort_sym = libc.lookup("qsort").unwrap();
    // SAFETY: libc's qsort prototype.
    let qsort = unsafe { qsort_sym.as_fn::<QsortFn>() }.unwrap();
    let cmp_sym = lib.lookup("cmp_int").unwrap();
    // SAFETY: `int cmp_int(const void *, const void *)`.
    let c_cmp = unsafe { cmp_sym.as_fn::<CmpFn>() }.unwrap();
    let unsorted: Vec<i32> = (0..1000).map(|i| (i * 7919 + 13) % 1000).collect();
    let confined = Session::confined();
    let shared = Session::shared();
    let rust_cmp = |a: Address, b: Address| -> i32 {
        // SAFETY: qsort passes pointers to elements of the array.
        let (x, y) = unsafe { (*a.as_ptr::<i32>(), *b.as_ptr::<i32>()) };
        (x > y) as i32 - (x < y) as i32
    };
    let stub_confined = Linker::native().upcall_typed(rust_cmp, &confined).unwrap();
    let stub_shared = Linker::native().upcall_typed(rust_cmp, &shared).unwrap();
    // A capturing closure has state: it runs through a direct typed
    // trampoline (a slot, direct.rs) that enters its session per call —
    // unless this thread holds the session for the call (`hold`, or a
    // downcall with the stub as `Arg::Stub`), which skips the entry.
    let flip = black_box(1i32);
    let stub_capturing = Linker::native()
        .upcall_typed(move |a: Address, b: Address| flip * rust_cmp(a, b), &shared)
        .unwrap();
    let stub_capturing_conf = Linker::native()
        .upcall_typed(
            move |a: Address, b: Address| flip * rust_cmp(a, b),
            &confined,
        )
        .unwrap();
    let dcmp = FunctionDescriptor::of(Some(c::INT), &[c::POINTER, c::POINTER]);
    let stub_dyn = Linker::native()
        .upcall(
            move |a: &[Value]| match (&a[0], &a[1]) {
                (Value::Address(x), Value::Address(y)) => Value::I32(rust_cmp(*x, *y)),
                _ => Value::I32(0),
            },
            &dcmp,
            &confined,
        )
        .unwrap();
    // The floor for a closure with state: a raw libffi closure, no session.
    unsafe extern "C" fn raw_cb(
        _cif: &libffi::low::ffi_cif,
        result: &mut u64,
        args: *const *const c_void,
        flip: &i32,
    ) {
        // SAFETY: libffi passes two pointer arguments, each pointing to an
        // element pointer of the array qsort sorts.
        let (x, y) = unsafe {
            let a = *(*args).cast::<*const i32>();
            let b = *(*args.add(1)).cast::<*const i32>();
            (*a, *b)
        };
        *result = (flip * ((x > y) as i32 - (x < y) as i32)) as i64 as u64;
    }
    let raw_closure = libffi::middle::Closure::new(
        Cif::new([Type::pointer(), Type::pointer()], Type::i32()),
        raw_cb,
        &flip,
    );
    // SAFETY: the closure has the comparator's signature.
    let f_raw: CmpFn = unsafe { std::mem::transmute(*raw_closure.code_ptr()) };
    // SAFETY: the stubs have the comparator signature and their sessions are open.
    let f_conf = unsafe { stub_confined.as_fn::<CmpFn>() }.unwrap();
    // SAFETY: as above.
    let f_shared = unsafe { stub_shared.as_fn::<CmpFn>() }.unwrap();
    // SAFETY: as above.
    let f_capt = unsafe { stub_capturing.as_fn::<CmpFn>() }.unwrap();
    // SAFETY: as above.
    let f_capt_conf = unsafe { stub_capturing_conf.as_fn::<CmpFn>() }.unwrap();
    // SAFETY: as above.
    let f_dyn = unsafe { stub_dyn.as_fn::<CmpFn>() }.unwrap();
    let mut g = c.benchmark_group("row13_qsort_1000");
    // (name, comparator, stub held around each sort)
    for (name, cmp, held) in [
        ("c_comparator", c_cmp.get(), None),
        ("raw_libffi_closure", f_raw, None),
        ("rust_typed_upcall_confined", f_conf, None),
        ("rust_typed_upcall_shared", f_shared, None),
        ("rust_typed_capturing_shared", f_capt, None),
        ("rust_typed_capturing_confined", f_capt_conf, None),
        (
            "rust_typed_capturing_shared_held",
            f_capt,
            Some(&stub_capturing),
        ),
        (
            "rust_typed_capturing_confined_held",
            f_capt_conf,
            Some(&stub_capturing_conf),
        ),
        ("rust_dynamic_upcall", f_dyn, None),
    ] {
        let mut v = unsorted.clone();
        // SAFETY: `v` holds 1,000 i32; the comparator fits.
        unsafe { (qsort.get())(v.as_mut_ptr().cast(), v.len(), 4, cmp) };
        assert!(v.windows(2).all(|w| w[0] <= w[1]), "{name} did not sort");
        g.bench_function(name, |b| {
            b.iter(|| {
                v.copy_from_slice(&unsorted);
                // Held: the session entered once per sort, not per compare.
                let hold = held.map(|s: &memscope::UpcallStub| s.hold().unwrap());
                // SAFETY: as above.
                unsafe { (qsort.get())(v.as_mut_ptr().cast(), v.len(), 4, cmp) };
                drop(hold);
                black_box(v[0])
            })
        });
    }
    // qsort as a Downcall with the stub as `Arg::Stub`: the call holds the
    // stub's session (as `held` above), the way a binding passes it.
    let dq = FunctionDescriptor::of(None, &[c::POINTER, c::SIZE_T, c::SIZE_T, c::POINTER]);
    // SAFETY: `void qsort(void *, size_t, size_t, int (*)(const void *, const void *))`.
    let dyn_qsort =
        unsafe { Linker::native().downcall(&qsort_sym, &dq, DowncallOptions::default()) }.unwrap();
    for (name, stub) in [
        (
            "rust_typed_capturing_confined_arg_stub",
            &stub_capturing_conf,
        ),
        ("rust_typed_capturing_shared_arg_stub", &stub_capturing),
    ] {
        let mut v = unsorted.clone();
        let sort = |v: &mut Vec<i32>| {
            v.copy_from_slice(&unsorted);
            let base = Address::from_ptr(v.as_mut_ptr());
            dyn_qsort
                .call_with(&[
                    Value::Address(base).into(),
                    Value::U64(1000).into(),
                    Value::U64(4).into(),
                    memscope::linker::Arg::Stub(stub),
                ])
                .unwrap();
        };
        sort(&mut v);
        assert!(v.windows(2).all(|w| w[0] <= w[1]), "{name} did not sort");
        g.bench_function(name, |b| {
            b.iter(|| {
                sort(&mut v);
                black_box(v[0])
            })
        });
    }
    g.finish();
    // One comparator call from Rust through the C function pointer (no
    // qsort around it): what each path adds per upcall.
    let (x, y) = (3i32, 4i32);
    let (px, py) = (&raw const x as *const c_void, &raw const y as *const c_void);
    let mut g = c.benchmark_group("row13_one_upcall");
    for (name, cmp, held) in [
        ("c_comparator", c_cmp.get(), None),
        ("raw_libffi_closure", f_raw, None),
        ("rust_typed_stateless_confined", f_conf, None),
        ("rust_typed_capturing_confined", f_capt_conf, None),
        ("rust_typed_capturing_shared", f_capt, None),
        (
            "rust_typed_capturing_confined_held",
            f_capt_conf,
            Some(&stub_capturing_conf),
        ),
        (
            "rust_typed_capturing_shared_held",
            f_capt,
            Some(&stub_capturing),
        ),
    ] {
        let hold = held.map(|s: &memscope::UpcallStub| s.hold().unwrap());
        g.bench_function(name, |b| b.iter(|| cmp(black_box(px), black_box(py))));
        drop(hold);
    }
    g.finish();
    drop(raw_closure);
    confined.close().unwrap();
    shared.close().unwrap();
}

criterion_group!(benches, linker);
criterion_main!(benches);
