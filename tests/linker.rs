//! Linker tests: a C library of our own (`tests/c/testlib.c`, compiled here
//! with `cc`), libc, upcalls, globals, JIT code and `bind!`.

use std::ffi::CStr;
use std::sync::OnceLock;

use memscope::layout::{MemoryLayout, ValueKind, c};
use memscope::linker::{
    Arg, DowncallOptions, ExecutableSegment, FunctionDescriptor, Library, Linker, PanicPolicy,
    Symbol, SymbolLookup,
};
use memscope::marshal::Value;
use memscope::{Address, Error, Segment, Session, SessionKind};

/// Builds `tests/c/testlib.c` once per test binary, into target/tmp.
fn testlib_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).unwrap();
        let out = dir.join(format!("libmemscope_test_{}.so", std::process::id()));
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c/testlib.c");
        let st = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-shared", "-fPIC", "-O2", "-pthread", "-o"])
            .arg(&out)
            .arg(src)
            .status()
            .expect("a C compiler (cc) is needed for the linker tests");
        assert!(st.success(), "compiling {src} failed");
        out.to_str().unwrap().to_owned()
    })
}

/// The test library in a session of its own (global: lives for the test).
fn testlib() -> Library {
    // SAFETY: our own test library has no initialisers.
    unsafe { Library::open(testlib_path(), &Session::global()) }.unwrap()
}

fn link(
    lib: &Library,
    name: &str,
    ret: Option<MemoryLayout>,
    args: &[MemoryLayout],
) -> memscope::linker::Downcall {
    let sym = lib.lookup(name).unwrap();
    // SAFETY: every call site passes the C prototype from testlib.c.
    unsafe {
        Linker::native().downcall(
            &sym,
            &FunctionDescriptor::of(ret, args),
            DowncallOptions::default(),
        )
    }
    .unwrap()
}

fn v(layout: ValueKind) -> MemoryLayout {
    MemoryLayout::value(layout)
}

fn call1(lib: &Library, name: &str, k: ValueKind, x: Value) -> Value {
    link(lib, name, Some(v(k)), &[v(k)])
        .call(&[x])
        .unwrap()
        .unwrap()
}

// ---------------------------------------------------------------- libraries

#[test]
fn bad_library_path_is_library_load_error() {
    let s = Session::shared();
    // SAFETY: nothing is loaded.
    let r = unsafe { Library::open("/no/such/dir/libnothing.so", &s) };
    assert!(
        matches!(r, Err(Error::LibraryLoad { ref name, .. }) if name == "/no/such/dir/libnothing.so")
    );
}

#[test]
fn names_with_nul_are_invalid_strings() {
    let s = Session::shared();
    // SAFETY: rejected before loading.
    assert!(matches!(
        // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
        unsafe { Library::open("lib\0c.so", &s) },
        Err(Error::InvalidString { .. })
    ));
    assert!(matches!(
        testlib().lookup("ad\0d"),
        Err(Error::InvalidString { .. })
    ));
}

#[test]
fn missing_symbol_is_symbol_not_found() {
    assert_eq!(
        testlib().lookup("no_such_function").unwrap_err(),
        Error::SymbolNotFound {
            name: "no_such_function".into()
        }
    );
}

#[test]
fn chained_lookup_falls_through_to_the_next_library() {
    let chain = testlib().or(Library::libc().unwrap());
    assert!(chain.lookup("add").is_ok());
    assert!(chain.lookup("strlen").is_ok());
    assert!(matches!(
        chain.lookup("zzz_nope"),
        Err(Error::SymbolNotFound { .. })
    ));
}

#[test]
fn closed_session_refuses_lookups_but_symbols_keep_the_library_loaded() {
    let s = Session::shared();
    // SAFETY: our own test library.
    let lib = unsafe { Library::open(testlib_path(), &s) }.unwrap();
    let add = link(&lib, "add", Some(c::INT), &[c::INT, c::INT]);
    let sym = lib.lookup("add").unwrap();
    assert!(!sym.is_closed());
    s.close().unwrap();
    assert!(sym.is_closed());
    assert_eq!(lib.lookup("add").unwrap_err(), Error::Closed);
    // Calls through a downcall of the closed library fail, as Java's do,
    // through every entry point ...
    assert_eq!(
        add.call(&[Value::I32(2), Value::I32(3)]).unwrap_err(),
        Error::Closed
    );
    assert_eq!(
        add.call_with(&[2.into(), 3.into()]).unwrap_err(),
        Error::Closed
    );
    assert_eq!(
        add.call_as::<i32>(&[2.into(), 3.into()]).unwrap_err(),
        Error::Closed
    );
    // ... but the symbol still holds the library mapped: its code runs.
    // SAFETY: `int add(int, int)`, kept loaded by `sym`.
    let f = unsafe { sym.as_fn::<extern "C" fn(i32, i32) -> i32>() }.unwrap();
    assert_eq!((f.get())(2, 3), 5);
    // SAFETY: rejected: session closed.
    assert_eq!(
        // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
        unsafe { Library::open(testlib_path(), &s) }.unwrap_err(),
        Error::Closed
    );
}

// ---------------------------------------------------------------- scalars

#[test]
fn every_scalar_round_trips_at_its_extremes() {
    let lib = testlib();
    macro_rules! check {
        ($name:literal, $k:ident, $t:ty, [$($x:expr),*]) => {
            for x in [$($x),*] {
                let x: $t = x;
                assert_eq!(call1(&lib, $name, ValueKind::$k, Value::$k(x)), Value::$k(x), "{} {x:?}", $name);
            }
        };
    }
    check!("id_i8", I8, i8, [i8::MIN, i8::MAX, -1, 0]);
    check!("id_u8", U8, u8, [u8::MIN, u8::MAX, 1]);
    check!("id_i16", I16, i16, [i16::MIN, i16::MAX, -1]);
    check!("id_u16", U16, u16, [0, u16::MAX, 1]);
    check!("id_i32", I32, i32, [i32::MIN, i32::MAX, -1]);
    check!("id_u32", U32, u32, [0, u32::MAX, 1]);
    check!("id_i64", I64, i64, [i64::MIN, i64::MAX, -1]);
    check!("id_u64", U64, u64, [0, u64::MAX, 1]);
    check!(
        "id_f32",
        F32,
        f32,
        [f32::MIN, f32::MAX, -0.0, f32::MIN_POSITIVE, f32::INFINITY]
    );
    check!(
        "id_f64",
        F64,
        f64,
        [
            f64::MIN,
            f64::MAX,
            -1.5,
            f64::MIN_POSITIVE,
            f64::NEG_INFINITY
        ]
    );
    let p = Address::from_ptr(0xdead_beef_usize as *const u8);
    assert_eq!(
        call1(&lib, "id_ptr", ValueKind::Address, Value::Address(p)),
        Value::Address(p)
    );
    assert_eq!(
        call1(
            &lib,
            "id_ptr",
            ValueKind::Address,
            Value::Address(Address::NULL)
        ),
        Value::Address(Address::NULL)
    );
    assert_eq!(
        call1(&lib, "not_bool", ValueKind::Bool, Value::Bool(true)),
        Value::Bool(false)
    );
    assert_eq!(
        call1(&lib, "not_bool", ValueKind::Bool, Value::Bool(false)),
        Value::Bool(true)
    );
    let nan = call1(&lib, "id_f64", ValueKind::F64, Value::F64(f64::NAN));
    assert!(matches!(nan, Value::F64(x) if x.is_nan()));
}

#[test]
fn small_integers_are_sign_and_zero_extended() {
    let lib = testlib();
    let w = |name: &str, a: ValueKind, r: ValueKind, x: Value| {
        link(&lib, name, Some(v(r)), &[v(a)])
            .call(&[x])
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        w("widen_i8", ValueKind::I8, ValueKind::I32, Value::I8(-1)),
        Value::I32(-1)
    );
    assert_eq!(
        w(
            "widen_i8",
            ValueKind::I8,
            ValueKind::I32,
            Value::I8(i8::MIN)
        ),
        Value::I32(-128)
    );
    assert_eq!(
        w("widen_u8", ValueKind::U8, ValueKind::U32, Value::U8(255)),
        Value::U32(255)
    );
    assert_eq!(
        w(
            "widen_i16",
            ValueKind::I16,
            ValueKind::I32,
            Value::I16(i16::MIN)
        ),
        Value::I32(-32768)
    );
    assert_eq!(
        w("widen_i32", ValueKind::I32, ValueKind::I64, Value::I32(-1)),
        Value::I64(-1)
    );
    assert_eq!(
        w("neg_i8", ValueKind::I8, ValueKind::I8, Value::I8(i8::MAX)),
        Value::I8(-127)
    );
    let f = link(
        &lib,
        "sum_mixed",
        Some(c::LONG),
        &[
            v(ValueKind::I8),
            v(ValueKind::U8),
            v(ValueKind::I16),
            v(ValueKind::U16),
            v(ValueKind::I32),
            v(ValueKind::U32),
            v(ValueKind::I64),
        ],
    );
    let r = f
        .call(&[
            Value::I8(-1),
            Value::U8(255),
            Value::I16(-1),
            Value::U16(65535),
            Value::I32(-1),
            Value::U32(u32::MAX),
            Value::I64(-1),
        ])
        .unwrap();
    assert_eq!(
        r,
        Some(Value::I64(-1 + 255 - 1 + 65535 - 1 + u32::MAX as i64 - 1))
    );
}

#[test]
fn twelve_doubles_arrive_in_order_past_the_registers() {
    let lib = testlib();
    let f = link(&lib, "weighted12", Some(c::DOUBLE), &[c::DOUBLE; 12]);
    let args: Vec<Value> = (0..12).map(|i| Value::F64(f64::from(i) + 0.5)).collect();
    let want: f64 = (0..12)
        .map(|i| (f64::from(i) + 0.5) * f64::from(i + 1))
        .sum();
    assert_eq!(f.call(&args).unwrap(), Some(Value::F64(want)));
    let mut layouts = Vec::new();
    let mut args = Vec::new();
    let mut want = 0.0;
    for i in 0..8 {
        layouts.push(c::INT);
        layouts.push(c::DOUBLE);
        args.push(Value::I32(i + 1));
        args.push(Value::F64(f64::from(i) * 0.25));
        want += f64::from((2 * i + 1) * (i + 1)) + f64::from(2 * i + 2) * f64::from(i) * 0.25;
    }
    let g = link(&lib, "mixed10", Some(c::DOUBLE), &layouts);
    assert_eq!(g.call(&args).unwrap(), Some(Value::F64(want)));
}

#[test]
fn wrong_argument_count_or_type_is_an_error_not_a_call() {
    let add = link(&testlib(), "add", Some(c::INT), &[c::INT, c::INT]);
    assert!(matches!(
        add.call(&[Value::I32(1)]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        add.call(&[Value::I32(1), Value::I64(2)]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        add.call(&[Value::I32(1), Value::F64(2.0)]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        add.call_with(&[Arg::CStr(c"x"), Value::I32(1).into()]),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(
        add.call(&[Value::I32(i32::MAX), Value::I32(1)]).unwrap(),
        Some(Value::I32(i32::MIN))
    );
}

// ---------------------------------------------------------------- structs

fn complex() -> MemoryLayout {
    MemoryLayout::c_struct([c::DOUBLE.with_name("re"), c::DOUBLE.with_name("im")]).unwrap()
}

#[test]
fn mixed_int_double_struct_by_value() {
    let l = MemoryLayout::c_struct([c::INT.with_name("x"), c::DOUBLE.with_name("y")]).unwrap();
    let f = link(&testlib(), "scale_id", Some(l.clone()), &[l, c::INT]);
    let r = f
        .call(&[
            Value::Struct(vec![Value::I32(-3), Value::F64(1.5)]),
            Value::I32(4),
        ])
        .unwrap();
    assert_eq!(
        r,
        Some(Value::Struct(vec![Value::I32(-12), Value::F64(6.0)]))
    );
}

#[test]
fn two_double_struct_in_and_out() {
    let f = link(&testlib(), "cmul", Some(complex()), &[complex(), complex()]);
    let a = Value::Struct(vec![Value::F64(1.0), Value::F64(2.0)]);
    let b = Value::Struct(vec![Value::F64(3.0), Value::F64(-1.0)]);
    assert_eq!(
        f.call(&[a, b]).unwrap(),
        Some(Value::Struct(vec![Value::F64(5.0), Value::F64(5.0)]))
    );
}

#[test]
fn twelve_byte_struct_followed_by_more_arguments() {
    let three = MemoryLayout::c_struct([c::INT, c::INT, c::INT]).unwrap();
    let f = link(
        &testlib(),
        "three_then",
        Some(c::LONG),
        &[three, c::LONG, c::DOUBLE, c::INT],
    );
    let r = f
        .call(&[
            Value::Struct(vec![Value::I32(1), Value::I32(2), Value::I32(3)]),
            Value::I64(1000),
            Value::F64(20000.0),
            Value::I32(300000),
        ])
        .unwrap();
    assert_eq!(r, Some(Value::I64(1 + 20 + 300 + 1000 + 20000 + 300000)));
}

#[test]
fn seventeen_u32_struct_in_memory_in_and_out() {
    let big = MemoryLayout::c_struct([MemoryLayout::sequence(17, c::UINT).unwrap()]).unwrap();
    assert_eq!(big.size(), 68);
    let vals: Vec<Value> = (0..17).map(|i| Value::U32(u32::MAX / 4 + i)).collect();
    let arg = Value::Struct(vec![Value::Array(vals.clone())]);
    let twice = link(
        &testlib(),
        "big_twice",
        Some(big.clone()),
        std::slice::from_ref(&big),
    );
    let want: Vec<Value> = (0..17)
        .map(|i| Value::U32((u32::MAX / 4 + i).wrapping_mul(2)))
        .collect();
    assert_eq!(
        twice.call(std::slice::from_ref(&arg)).unwrap(),
        Some(Value::Struct(vec![Value::Array(want)]))
    );
    let sum = link(&testlib(), "big_sum", Some(c::ULONG), &[big, c::INT]);
    let want: u64 = (0..17u64).map(|i| u64::from(u32::MAX / 4) + i).sum::<u64>() - 1;
    assert_eq!(
        sum.call(&[arg, Value::I32(-1)]).unwrap(),
        Some(Value::U64(want))
    );
}

#[test]
fn nested_struct_by_value() {
    let vec2 = MemoryLayout::c_struct([c::FLOAT, c::FLOAT]).unwrap();
    let nested = MemoryLayout::c_struct([vec2, c::SHORT, c::CHAR]).unwrap();
    assert_eq!(nested.size(), 12);
    let f = link(
        &testlib(),
        "nested_move",
        Some(nested.clone()),
        &[nested, c::FLOAT],
    );
    let n = Value::Struct(vec![
        Value::Struct(vec![Value::F32(1.0), Value::F32(2.0)]),
        Value::I16(41),
        Value::I8(b'a' as i8),
    ]);
    let r = f.call(&[n, Value::F32(0.5)]).unwrap().unwrap();
    assert_eq!(
        r,
        Value::Struct(vec![
            Value::Struct(vec![Value::F32(1.5), Value::F32(1.5)]),
            Value::I16(42),
            Value::I8(b'Z' as i8),
        ])
    );
}

#[test]
fn unions_by_value_use_the_right_register_class() {
    let u = MemoryLayout::union_of([c::LONG, c::DOUBLE]).unwrap();
    let f = link(&testlib(), "union_bump", Some(u.clone()), &[u, c::INT]);
    let as_int = Value::Bytes(41i64.to_ne_bytes().to_vec());
    assert_eq!(
        f.call(&[as_int, Value::I32(0)]).unwrap(),
        Some(Value::Bytes(42i64.to_ne_bytes().to_vec()))
    );
    let as_double = Value::Bytes(1.25f64.to_ne_bytes().to_vec());
    assert_eq!(
        f.call(&[as_double, Value::I32(1)]).unwrap(),
        Some(Value::Bytes(1.75f64.to_ne_bytes().to_vec()))
    );
    let fb = MemoryLayout::union_of([c::FLOAT, c::UINT]).unwrap();
    let g = link(&testlib(), "float_bits", Some(c::UINT), &[fb]);
    let r = g
        .call(&[Value::Bytes(1.0f32.to_ne_bytes().to_vec())])
        .unwrap();
    assert_eq!(r, Some(Value::U32(1.0f32.to_bits())));
}

#[test]
fn char_array_inside_a_struct() {
    let person = MemoryLayout::c_struct([
        MemoryLayout::sequence(16, c::CHAR)
            .unwrap()
            .with_name("name"),
        c::INT.with_name("age"),
    ])
    .unwrap();
    let f = link(&testlib(), "person_older", Some(person.clone()), &[person]);
    let mut name: Vec<Value> = b"alice".iter().map(|&b| Value::I8(b as i8)).collect();
    name.resize(16, Value::I8(0));
    let r = f
        .call(&[Value::Struct(vec![
            Value::Array(name.clone()),
            Value::I32(29),
        ])])
        .unwrap()
        .unwrap();
    name[0] = Value::I8(b'A' as i8);
    assert_eq!(r, Value::Struct(vec![Value::Array(name), Value::I32(30)]));
}

// ---------------------------------------------------------------- pointers

#[test]
fn strings_in_and_c_allocated_strings_out() {
    let lib = testlib();
    let strlen = link(&lib, "c_strlen", Some(c::SIZE_T), &[c::POINTER]);
    assert_eq!(
        strlen.call_with(&[Arg::CStr(c"four")]).unwrap(),
        Some(Value::U64(4))
    );
    let greet = link(&lib, "greet", Some(c::POINTER), &[c::POINTER]);
    let Some(Value::Address(p)) = greet.call_with(&[Arg::CStr(c"rust")]).unwrap() else {
        panic!()
    };
    // SAFETY: greet returns a NUL-terminated malloc'd string.
    let s = unsafe { CStr::from_ptr(p.as_ptr()) };
    assert_eq!(s.to_str().unwrap(), "hello, rust");
    let free = link(&lib, "c_free", None, &[c::POINTER]);
    assert_eq!(free.call(&[Value::Address(p)]).unwrap(), None);
}

#[test]
fn out_pointers_through_segments() {
    let lib = testlib();
    let s = Session::shared();
    let mut a = [0i32; 1];
    let mut b = [0f64; 1];
    // SAFETY: the buffers outlive the segments and are used only through them.
    let sa = unsafe { Segment::from_raw(Address::from_ptr(a.as_mut_ptr()), 4, &s) }.unwrap();
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let sb = unsafe { Segment::from_raw(Address::from_ptr(b.as_mut_ptr()), 8, &s) }.unwrap();
    let f = link(&lib, "out_pair", None, &[c::POINTER, c::POINTER]);
    f.call_with(&[Arg::Segment(&sa), Arg::Segment(&sb)])
        .unwrap();
    assert_eq!(sa.get::<i32>(0).unwrap(), 42);
    assert_eq!(sb.get::<f64>(0).unwrap(), 2.5);
    assert_eq!(
        s.acquired(),
        0,
        "argument sessions are released after the call"
    );
    let fill = link(&lib, "fill_bytes", None, &[c::POINTER, c::SIZE_T, c::UCHAR]);
    let mut buf = [0u8; 8];
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let seg = unsafe { Segment::from_raw(Address::from_ptr(buf.as_mut_ptr()), 8, &s) }.unwrap();
    fill.call_with(&[
        Arg::Segment(&seg),
        Value::U64(8).into(),
        Value::U8(0xab).into(),
    ])
    .unwrap();
    assert_eq!(seg.get::<u64>(0).unwrap(), 0xabab_abab_abab_abab);
    s.close().unwrap();
    assert_eq!(
        fill.call_with(&[
            Arg::Segment(&seg),
            Value::U64(8).into(),
            Value::U8(1).into()
        ])
        .unwrap_err(),
        Error::Closed
    );
}

#[test]
fn a_segment_argument_cannot_be_closed_during_the_call() {
    let lib = testlib();
    let data = Session::shared();
    let stubs = Session::shared();
    let mut v = [5i32, 3, 9, 1];
    // SAFETY: `v` outlives the segment and is used only through it.
    let seg = unsafe { Segment::from_raw(Address::from_ptr(v.as_mut_ptr()), 16, &data) }.unwrap();
    let d2 = data.clone();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let cmp = Linker::native()
        .upcall_typed(
            move |a: Address, b: Address| -> i32 {
                seen2.lock().unwrap().push(d2.close());
                // SAFETY: qsort passes pointers into the array.
                let (x, y) = unsafe { (*a.as_ptr::<i32>(), *b.as_ptr::<i32>()) };
                x.cmp(&y) as i32
            },
            &stubs,
        )
        .unwrap();
    let sort = link(
        &lib,
        "sort_ints",
        None,
        &[c::POINTER, c::SIZE_T, c::POINTER],
    );
    sort.call_with(&[
        Arg::Segment(&seg),
        Value::U64(4).into(),
        Value::Address(cmp.address()).into(),
    ])
    .unwrap();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|r| *r == Err(Error::Busy { acquired: 1 })),
        "{seen:?}"
    );
    assert_eq!(
        [seg.get::<i32>(0).unwrap(), seg.get::<i32>(12).unwrap()],
        [1, 9]
    );
    data.close().unwrap();
}

// ---------------------------------------------------------------- upcalls

#[test]
fn callbacks_returning_ints_small_ints_strings_and_structs() {
    let lib = testlib();
    let s = Session::shared();
    let mul = Linker::native()
        .upcall_typed(|a: i32, b: i32| a.wrapping_mul(b), &s)
        .unwrap();
    let apply = link(
        &lib,
        "apply_int",
        Some(c::INT),
        &[c::POINTER, c::INT, c::INT],
    );
    let r = apply
        .call(&[Value::Address(mul.address()), Value::I32(-6), Value::I32(7)])
        .unwrap();
    assert_eq!(r, Some(Value::I32(-42)));

    let neg = Linker::native()
        .upcall_typed(|x: i8| x.wrapping_neg(), &s)
        .unwrap();
    let small = link(
        &lib,
        "apply_small",
        Some(c::INT),
        &[c::POINTER, v(ValueKind::I8)],
    );
    assert_eq!(
        small
            .call(&[Value::Address(neg.address()), Value::I8(5)])
            .unwrap(),
        Some(Value::I32(-5))
    );
    assert_eq!(
        small
            .call(&[Value::Address(neg.address()), Value::I8(-128)])
            .unwrap(),
        Some(Value::I32(-128))
    );

    static WORDS: [&CStr; 3] = [c"zero", c"one", c"three"];
    let word = Linker::native()
        .upcall_typed(|k: i32| Address::from_ptr(WORDS[k as usize].as_ptr()), &s)
        .unwrap();
    let apply_str = link(&lib, "apply_str", Some(c::SIZE_T), &[c::POINTER, c::INT]);
    assert_eq!(
        apply_str
            .call(&[Value::Address(word.address()), Value::I32(2)])
            .unwrap(),
        Some(Value::U64(5))
    );

    let swap = Linker::native()
        .upcall(
            |a: &[Value]| match &a[0] {
                Value::Struct(f) => Value::Struct(vec![f[1].clone(), f[0].clone()]),
                other => panic!("{other:?}"),
            },
            &FunctionDescriptor::of(Some(complex()), &[complex()]),
            &s,
        )
        .unwrap();
    let apply_c = link(
        &lib,
        "apply_complex",
        Some(complex()),
        &[c::POINTER, complex()],
    );
    let r = apply_c
        .call(&[
            Value::Address(swap.address()),
            Value::Struct(vec![Value::F64(1.0), Value::F64(-2.0)]),
        ])
        .unwrap();
    assert_eq!(
        r,
        Some(Value::Struct(vec![Value::F64(-2.0), Value::F64(1.0)]))
    );
    assert_eq!(swap.take_panic(), None);
    s.close().unwrap();
}

#[test]
fn libc_qsort_with_a_rust_comparator() {
    let libc = Library::libc().unwrap();
    let s = Session::confined();
    let cmp = Linker::native()
        .upcall_typed(
            |a: Address, b: Address| -> i32 {
                // SAFETY: qsort passes pointers to elements of the array.
                let (x, y) = unsafe { (*a.as_ptr::<i32>(), *b.as_ptr::<i32>()) };
                x.cmp(&y) as i32
            },
            &s,
        )
        .unwrap();
    let qsort = link(
        &libc,
        "qsort",
        None,
        &[c::POINTER, c::SIZE_T, c::SIZE_T, c::POINTER],
    );
    let mut v: Vec<i32> = (0..1000).map(|i| (i * 7919) % 1000 - 500).collect();
    let mut want = v.clone();
    want.sort();
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let seg = unsafe { Segment::from_raw(Address::from_ptr(v.as_mut_ptr()), 4000, &s) }.unwrap();
    qsort
        .call_with(&[
            Arg::Segment(&seg),
            Value::U64(1000).into(),
            Value::U64(4).into(),
            Value::Address(cmp.address()).into(),
        ])
        .unwrap();
    assert_eq!(v, want);
    s.close().unwrap();
}

#[test]
fn a_panicking_upcall_returns_zero_and_keeps_the_panic() {
    let lib = testlib();
    let s = Session::shared();
    let stub = Linker::native()
        .upcall_typed(
            |a: i32, _b: i32| -> i32 {
                if a == 13 {
                    panic!("unlucky {a}")
                }
                a
            },
            &s,
        )
        .unwrap();
    let apply = link(
        &lib,
        "apply_int",
        Some(c::INT),
        &[c::POINTER, c::INT, c::INT],
    );
    assert_eq!(
        apply
            .call(&[
                Value::Address(stub.address()),
                Value::I32(13),
                Value::I32(0)
            ])
            .unwrap(),
        Some(Value::I32(0))
    );
    assert_eq!(
        stub.take_panic(),
        Some(Error::UpcallPanicked {
            message: "unlucky 13".into()
        })
    );
    assert_eq!(
        apply
            .call(&[
                Value::Address(stub.address()),
                Value::I32(12),
                Value::I32(0)
            ])
            .unwrap(),
        Some(Value::I32(12))
    );
    assert_eq!(stub.take_panic(), None);
    // A dynamic upcall returning the wrong type is recorded too.
    let d = FunctionDescriptor::of(Some(c::INT), &[c::INT, c::INT]);
    let wrong = Linker::native()
        .upcall(|_| Value::F64(1.0), &d, &s)
        .unwrap();
    assert_eq!(
        apply
            .call(&[
                Value::Address(wrong.address()),
                Value::I32(1),
                Value::I32(2)
            ])
            .unwrap(),
        Some(Value::I32(0))
    );
    assert!(matches!(
        wrong.take_panic(),
        Some(Error::InvalidArgument { .. })
    ));
    s.close().unwrap();
}

#[test]
fn a_panicking_capturing_upcall_returns_zero_and_keeps_the_panic() {
    let lib = testlib();
    let s = Session::shared();
    let unlucky = 13;
    let stub = Linker::native()
        .upcall_typed(
            move |a: i32, b: i32| -> i32 {
                assert_ne!(a, unlucky, "unlucky");
                a + b
            },
            &s,
        )
        .unwrap();
    let apply = link(
        &lib,
        "apply_int",
        Some(c::INT),
        &[c::POINTER, c::INT, c::INT],
    );
    let call = |a| {
        apply
            .call(&[Value::Address(stub.address()), Value::I32(a), Value::I32(1)])
            .unwrap()
    };
    assert_eq!(call(13), Some(Value::I32(0)));
    assert!(
        matches!(stub.take_panic(), Some(Error::UpcallPanicked { message }) if message.contains("unlucky"))
    );
    assert_eq!(call(1), Some(Value::I32(2)));
    assert_eq!(stub.take_panic(), None);
    s.close().unwrap();
}

#[test]
fn upcalls_from_a_thread_c_created_work() {
    let lib = testlib();
    let s = Session::shared();
    let tid = std::sync::Arc::new(std::sync::Mutex::new(None));
    let t2 = tid.clone();
    let stub = Linker::native()
        .upcall_typed(
            move |a: i32, b: i32| {
                *t2.lock().unwrap() = Some(std::thread::current().id());
                a + b
            },
            &s,
        )
        .unwrap();
    let f = link(
        &lib,
        "call_in_thread",
        Some(c::INT),
        &[c::POINTER, c::INT, c::INT],
    );
    assert_eq!(
        f.call(&[
            Value::Address(stub.address()),
            Value::I32(40),
            Value::I32(2)
        ])
        .unwrap(),
        Some(Value::I32(42))
    );
    assert_ne!(tid.lock().unwrap().unwrap(), std::thread::current().id());
    // A confined session's stub refuses upcalls from other threads.
    let conf = Session::confined();
    // (A capturing closure: it has state the session guards. A stateless
    // closure runs through a plain function and needs no session check.)
    let k = 0i32;
    let stub2 = Linker::native()
        .upcall_typed(move |a: i32, b: i32| a + b + k, &conf)
        .unwrap();
    assert_eq!(
        f.call(&[
            Value::Address(stub2.address()),
            Value::I32(1),
            Value::I32(2)
        ])
        .unwrap(),
        Some(Value::I32(0))
    );
    assert!(matches!(
        stub2.take_panic(),
        Some(Error::WrongThread { .. })
    ));
    s.close().unwrap();
    conf.close().unwrap();
}

#[test]
fn an_upcall_stub_is_freed_when_its_session_closes() {
    let s = Session::shared();
    let stub = Linker::native().upcall_typed(|x: i32| x + 1, &s).unwrap();
    // SAFETY: signature matches.
    let f = unsafe { stub.as_fn::<extern "C" fn(i32) -> i32>() }.unwrap();
    assert_eq!(f(1), 2);
    s.close().unwrap();
    // SAFETY: refused: closed.
    assert_eq!(
        // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
        unsafe { stub.as_fn::<extern "C" fn(i32) -> i32>() }.unwrap_err(),
        Error::Closed
    );
    assert_eq!(
        Linker::native().upcall_typed(|x: i32| x, &s).unwrap_err(),
        Error::Closed
    );
}

#[test]
fn function_pointers_returned_by_c_are_callable() {
    let lib = testlib();
    let get = link(&lib, "get_add", Some(c::POINTER), &[]);
    let Some(Value::Address(p)) = get.call(&[]).unwrap() else {
        panic!()
    };
    // SAFETY: get_add returns `add`, which lives in the (global) test library.
    let sym = unsafe { Symbol::from_address(p) }.unwrap();
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let add = unsafe {
        Linker::native().downcall(
            &sym,
            &FunctionDescriptor::of(Some(c::INT), &[c::INT, c::INT]),
            DowncallOptions::default(),
        )
    }
    .unwrap();
    assert_eq!(
        add.call(&[Value::I32(20), Value::I32(22)]).unwrap(),
        Some(Value::I32(42))
    );
    assert_eq!(
        // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
        unsafe { Symbol::from_address(Address::NULL) }.unwrap_err(),
        Error::NullAddress
    );
}

#[test]
fn typed_function_pointers_call_directly() {
    let lib = testlib();
    let sym = lib.lookup("add").unwrap();
    // SAFETY: `int add(int, int)`.
    let add = unsafe { sym.as_fn::<extern "C" fn(i32, i32) -> i32>() }.unwrap();
    assert_eq!((add.get())(i32::MAX, 1), i32::MIN);
    assert_eq!((*add)(2, 2), 4);
    assert!(matches!(
        // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
        unsafe { sym.as_fn::<u8>() },
        Err(Error::InvalidSignature { .. })
    ));
}

// ---------------------------------------------------------------- varargs, errno

#[test]
fn variadic_calls_snprintf_and_vsum() {
    let lib = testlib();
    let vsum = link_var(
        &lib,
        "vsum",
        Some(c::DOUBLE),
        &[c::INT, c::DOUBLE, c::DOUBLE, c::DOUBLE],
        1,
    );
    assert_eq!(
        vsum.call(&[
            Value::I32(3),
            Value::F64(0.5),
            Value::F64(1.0),
            Value::F64(2.0)
        ])
        .unwrap(),
        Some(Value::F64(3.5))
    );
    let many: Vec<MemoryLayout> = std::iter::once(c::INT).chain([c::LONG; 10]).collect();
    let vl = link_var(&lib, "vsum_long", Some(c::LONG), &many, 1);
    let mut args = vec![Value::I32(10)];
    args.extend((1..=10).map(|i| Value::I64(i64::MAX / 16 + i)));
    assert_eq!(
        vl.call(&args).unwrap(),
        Some(Value::I64((1..=10).map(|i| i64::MAX / 16 + i).sum()))
    );

    let libc = Library::libc().unwrap();
    let snprintf = link_var(
        &libc,
        "snprintf",
        Some(c::INT),
        &[
            c::POINTER,
            c::SIZE_T,
            c::POINTER,
            c::INT,
            c::DOUBLE,
            c::POINTER,
        ],
        3,
    );
    let s = Session::shared();
    let mut buf = [0u8; 64];
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let seg = unsafe { Segment::from_raw(Address::from_ptr(buf.as_mut_ptr()), 64, &s) }.unwrap();
    let n = snprintf
        .call_with(&[
            Arg::Segment(&seg),
            Value::U64(64).into(),
            Arg::CStr(c"%d|%.2f|%s"),
            Value::I32(-7).into(),
            Value::F64(1.23456).into(),
            Arg::CStr(c"ok"),
        ])
        .unwrap();
    assert_eq!(n, Some(Value::I32(10)));
    assert_eq!(&buf[..11], b"-7|1.23|ok\0");
}

#[test]
fn structs_and_unions_pass_in_variadic_positions() {
    let lib = testlib();
    // double va_points(int n, ...) with n IntDouble {int32_t x; double y;}
    let pt = MemoryLayout::c_struct([c::INT, c::DOUBLE]).unwrap();
    for n in [1usize, 3, 9] {
        let mut layouts = vec![c::INT];
        let mut args = vec![Value::I32(n as i32)];
        let mut want = 0.0;
        for i in 0..n {
            layouts.push(pt.clone());
            let (x, y) = (i as i32 * 100 - 7, i as f64 * 0.25);
            args.push(Value::Struct(vec![Value::I32(x), Value::F64(y)]));
            want += f64::from(x) + y;
        }
        let f = link_var(&lib, "va_points", Some(c::DOUBLE), &layouts, 1);
        assert_eq!(f.call(&args).unwrap(), Some(Value::F64(want)), "{n} points");
    }
    // Every class: SSE struct, INTEGER and SSE unions, a MEMORY struct,
    // mixed with scalar varargs; weights check the order.
    let umix8 = MemoryLayout::union_of([c::LONG, c::DOUBLE]).unwrap();
    let ufd = MemoryLayout::union_of([c::FLOAT, c::DOUBLE]).unwrap();
    let big = MemoryLayout::c_struct([MemoryLayout::sequence(17, c::UINT).unwrap()]).unwrap();
    let f = link_var(
        &lib,
        "va_kinds",
        Some(c::DOUBLE),
        &[
            c::POINTER,
            complex(),
            umix8.clone(),
            c::LONG,
            ufd,
            big,
            c::DOUBLE,
            umix8,
        ],
        1,
    );
    let big_bytes: Vec<u8> = (0..17u32).flat_map(|i| (i * 1000).to_ne_bytes()).collect();
    let r = f
        .call_with(&[
            Arg::CStr(c"culfbdu"),
            Value::Struct(vec![Value::F64(1.5), Value::F64(0.25)]).into(),
            Arg::Bytes(&(-40i64).to_ne_bytes()),
            Value::I64(7).into(),
            Arg::Bytes(&2.5f64.to_ne_bytes()),
            Arg::Bytes(&big_bytes),
            Value::F64(-0.5).into(),
            Arg::Bytes(&(1i64 << 40).to_ne_bytes()),
        ])
        .unwrap();
    let big_sum: f64 = (0..17).map(|i| f64::from(i * 1000)).sum();
    let want = 15.25
        + 2.0 * -40.0
        + 3.0 * 7.0
        + 4.0 * 2.5
        + 5.0 * big_sum
        + 6.0 * -0.5
        + 7.0 * (1u64 << 40) as f64;
    assert_eq!(r, Some(Value::F64(want)));
}

fn link_var(
    lib: &Library,
    name: &str,
    ret: Option<MemoryLayout>,
    args: &[MemoryLayout],
    first: usize,
) -> memscope::linker::Downcall {
    let sym = lib.lookup(name).unwrap();
    // SAFETY: the call sites pass the C prototypes.
    unsafe {
        Linker::native().downcall(
            &sym,
            &FunctionDescriptor::of(ret, args).variadic(first),
            DowncallOptions::default(),
        )
    }
    .unwrap()
}

#[test]
fn signatures_are_checked_at_link_time() {
    let lib = testlib();
    let sym = lib.lookup("vsum").unwrap();
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let try_link = |d: FunctionDescriptor| unsafe {
        Linker::native().downcall(&sym, &d, DowncallOptions::default())
    };
    for promoted in [
        c::FLOAT,
        c::SHORT,
        c::CHAR,
        v(ValueKind::U8),
        v(ValueKind::U16),
        v(ValueKind::Bool),
    ] {
        let d = FunctionDescriptor::of(Some(c::DOUBLE), &[c::INT, promoted]).variadic(1);
        assert!(matches!(try_link(d), Err(Error::InvalidSignature { .. })));
    }
    let past = FunctionDescriptor::of(Some(c::DOUBLE), &[c::INT]).variadic(2);
    assert!(matches!(
        try_link(past),
        Err(Error::InvalidSignature { .. })
    ));
    let packed = MemoryLayout::packed([c::CHAR, c::INT]).unwrap();
    assert!(matches!(
        try_link(FunctionDescriptor::of(None, &[packed])),
        Err(Error::InvalidSignature { .. })
    ));
    let array = MemoryLayout::sequence(4, c::INT).unwrap();
    assert!(matches!(
        try_link(FunctionDescriptor::of(None, &[array])),
        Err(Error::InvalidSignature { .. })
    ));
    if let Ok(empty) = MemoryLayout::c_struct([]) {
        assert!(matches!(
            try_link(FunctionDescriptor::of(Some(empty), &[])),
            Err(Error::InvalidSignature { .. })
        ));
    }
    let pad = MemoryLayout::padding(4).unwrap();
    assert!(matches!(
        try_link(FunctionDescriptor::of(None, &[pad])),
        Err(Error::InvalidSignature { .. })
    ));
    // Aggregates in a variadic position are C (issue 16): accepted; an
    // array by value still is not.
    let agg_vararg = FunctionDescriptor::of(None, &[c::INT, complex()]).variadic(1);
    assert!(try_link(agg_vararg).is_ok());
    let array_vararg =
        FunctionDescriptor::of(None, &[c::INT, MemoryLayout::sequence(2, c::INT).unwrap()])
            .variadic(1);
    assert!(matches!(
        try_link(array_vararg),
        Err(Error::InvalidSignature { .. })
    ));
    let s = Session::shared();
    let var_up = FunctionDescriptor::of(None, &[c::INT, c::INT]).variadic(1);
    assert!(matches!(
        Linker::native().upcall(|_| Value::I32(0), &var_up, &s),
        Err(Error::InvalidSignature { .. })
    ));
}

#[test]
fn errno_is_captured_right_after_the_call() {
    let lib = testlib();
    let sym = lib.lookup("set_errno_to").unwrap();
    let d = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let f = unsafe {
        Linker::native().downcall(&sym, &d, DowncallOptions::default().capture_errno(true))
    }
    .unwrap();
    assert_eq!(
        f.call_errno(&[Value::I32(34).into()]).unwrap(),
        (Some(Value::I32(-1)), 34)
    );
    f.call(&[Value::I32(2)]).unwrap();
    assert_eq!(memscope::linker::last_errno(), 2);
    // Per thread.
    let other = std::thread::spawn(memscope::linker::last_errno)
        .join()
        .unwrap();
    assert_eq!(other, 0);
    let plain = link(&lib, "set_errno_to", Some(c::INT), &[c::INT]);
    assert!(matches!(
        plain.call_errno(&[Value::I32(1).into()]),
        Err(Error::InvalidArgument { .. })
    ));
}

// ---------------------------------------------------------------- globals, code, bind!

#[test]
fn globals_are_shared_between_c_and_rust() {
    let lib = testlib();
    let s = Session::global();
    // SAFETY: `int32_t counter`, `double ratio`, `char label[8]` in the test library.
    let mut counter = unsafe { lib.global("counter", 4, &s) }.unwrap();
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let ratio = unsafe { lib.global("ratio", 8, &s) }.unwrap();
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let label = unsafe { lib.global("label", 8, &s) }.unwrap();
    let bump = link(&lib, "bump_counter", Some(c::INT), &[]);
    counter.set::<i32>(0, 100).unwrap();
    assert_eq!(bump.call(&[]).unwrap(), Some(Value::I32(101)));
    assert_eq!(counter.get::<i32>(0).unwrap(), 101);
    assert_eq!(ratio.get::<f64>(0).unwrap(), 0.25);
    assert_eq!(label.get::<u8>(0).unwrap(), b'a');
    assert!(matches!(
        // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
        unsafe { lib.global("nope_global", 4, &s) },
        Err(Error::SymbolNotFound { .. })
    ));
}

#[test]
fn const_globals_are_read_only_and_refuse_writes() {
    let lib = testlib();
    let s = Session::global();
    // SAFETY: `const int32_t const_answer` in the test library.
    let mut ro = unsafe { lib.global("const_answer", 4, &s) }.unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.get::<i32>(0).unwrap(), 42);
    assert_eq!(ro.set::<i32>(0, 1).unwrap_err(), Error::ReadOnly);
    // A relocated const pointer lives in RELRO: read-only after relocation.
    // SAFETY: `const char *const const_ptr` in the test library.
    let mut relro = unsafe { lib.global("const_ptr", 8, &s) }.unwrap();
    assert!(relro.is_read_only());
    assert!(!relro.get::<memscope::Address>(0).unwrap().is_null());
    assert_eq!(relro.set::<u64>(0, 0).unwrap_err(), Error::ReadOnly);
    // .data and .bss stay writable.
    // SAFETY: `int32_t mutable_answer` / `zeroed_answer` in the test library.
    let mut rw = unsafe { lib.global("mutable_answer", 4, &s) }.unwrap();
    assert!(!rw.is_read_only());
    rw.set::<i32>(0, 43).unwrap();
    assert_eq!(rw.get::<i32>(0).unwrap(), 43);
    // SAFETY: as above.
    let mut bss = unsafe { lib.global("zeroed_answer", 4, &s) }.unwrap();
    assert!(!bss.is_read_only());
    bss.set::<i32>(0, 5).unwrap();
    // A size that runs past a writable object's segment is not writable.
    // SAFETY: nothing is read or written through it.
    let huge = unsafe { lib.global("mutable_answer", 1 << 40, &s) }.unwrap();
    assert!(huge.is_read_only());
    // libc's `const struct in6_addr in6addr_any` is in .rodata.
    let libc = Library::libc().unwrap();
    // SAFETY: `in6addr_any` is a 16-byte const object of libc.
    let mut any = unsafe { libc.global("in6addr_any", 16, libc.session()) }.unwrap();
    assert!(any.is_read_only());
    assert_eq!(any.get::<u64>(0).unwrap(), 0);
    assert_eq!(any.set::<u8>(0, 1).unwrap_err(), Error::ReadOnly);
}

#[test]
fn empty_library_path_is_an_error() {
    let s = Session::shared();
    // SAFETY: rejected before loading.
    let r = unsafe { Library::open("", &s) };
    assert!(matches!(r, Err(Error::LibraryLoad { .. })), "{r:?}");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn executable_segments_run_machine_code_until_closed() {
    let s = Session::shared();
    // mov eax, 42; ret
    let code = ExecutableSegment::from_code(&[0xb8, 42, 0, 0, 0, 0xc3], &s).unwrap();
    let sym = code.symbol().unwrap();
    // SAFETY: `int f(void)`.
    let f = unsafe { sym.as_fn::<extern "C" fn() -> i32>() }.unwrap();
    assert_eq!((f.get())(), 42);
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let dc = unsafe {
        Linker::native().downcall(
            &sym,
            &FunctionDescriptor::of(Some(c::INT), &[]),
            DowncallOptions::default(),
        )
    }
    .unwrap();
    assert_eq!(dc.call(&[]).unwrap(), Some(Value::I32(42)));
    s.close().unwrap();
    assert_eq!(code.symbol().unwrap_err(), Error::Closed);
    // `sym` (and the downcall) still hold the mapping.
    assert_eq!(dc.call(&[]).unwrap(), Some(Value::I32(42)));
    assert!(matches!(
        ExecutableSegment::from_code(&[], &Session::shared()),
        Err(Error::InvalidArgument { .. })
    ));
}

memscope::c_struct! {
    /// `Complex` of testlib.c.
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Complex { re: f64, im: f64 }
}

memscope::bind! {
    /// Part of testlib.c.
    struct TestLib {
        fn add(a: i32, b: i32) -> i32;
        fn cmul(a: Complex, b: Complex) -> Complex;
        fn id_u64(x: u64) -> u64;
        fn id_i8(x: i8) -> i8;
        fn bump_counter() -> i32;
        fn out_pair(a: Address, b: Address);
    }
}

#[test]
fn bind_declares_safe_rust_functions() {
    // SAFETY: the declarations match testlib.c.
    let t = unsafe { TestLib::load(&testlib()) }.unwrap();
    assert_eq!(t.add(40, 2).unwrap(), 42);
    let r = t
        .cmul(Complex { re: 0.0, im: 1.0 }, Complex { re: 0.0, im: 1.0 })
        .unwrap();
    assert_eq!(r, Complex { re: -1.0, im: 0.0 });
    assert_eq!(t.id_u64(u64::MAX).unwrap(), u64::MAX);
    assert_eq!(t.id_i8(i8::MIN).unwrap(), i8::MIN);
    assert!(t.bump_counter().unwrap() > 0);
    let (mut a, mut b) = (0i32, 0f64);
    t.out_pair(Address::from_ptr(&raw mut a), Address::from_ptr(&raw mut b))
        .unwrap();
    assert_eq!((a, b), (42, 2.5));
    assert!(matches!(
        // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
        unsafe { TestLib::load(&Library::libc().unwrap()) },
        Err(Error::SymbolNotFound { .. })
    ));
}

#[test]
fn abort_policy_is_selectable() {
    // Only checks that it links; aborting would end the test process.
    let s = Session::shared();
    let stub = Linker::native()
        .upcall_typed_with(|x: i32| x, &s, PanicPolicy::Abort)
        .unwrap();
    // SAFETY: test code: the signature/pointer matches testlib.c or a live buffer.
    let f = unsafe { stub.as_fn::<extern "C" fn(i32) -> i32>() }.unwrap();
    assert_eq!(f(3), 3);
    s.close().unwrap();
}

/// A test allocator: boxed chunks owned by the allocator, in its session.
struct Boxes(Session, std::sync::Mutex<Vec<Box<[u128]>>>);

impl memscope::alloc::SegmentAllocator for Boxes {
    fn allocate_uninit(&self, size: usize, _align: usize) -> memscope::Result<Segment<'_>> {
        let mut b = vec![0u128; size.div_ceil(16)].into_boxed_slice();
        let p = Address::from_ptr(b.as_mut_ptr());
        self.1.lock().unwrap().push(b);
        // SAFETY: the box is owned by the allocator and outlives the segment
        // (which borrows the allocator); 16-aligned.
        unsafe { Segment::from_raw(p, size, &self.0) }
    }
}

#[test]
fn struct_returns_go_into_a_caller_given_allocator() {
    let big = MemoryLayout::c_struct([MemoryLayout::sequence(17, c::UINT).unwrap()]).unwrap();
    let twice = link(
        &testlib(),
        "big_twice",
        Some(big.clone()),
        std::slice::from_ref(&big),
    );
    let arena = Boxes(Session::shared(), Default::default());
    let arg = Value::Struct(vec![Value::Array((0..17).map(Value::U32).collect())]);
    let seg = twice.call_in(&[arg.into()], &arena).unwrap().unwrap();
    assert_eq!(seg.len(), 68);
    for i in 0..17 {
        assert_eq!(seg.get::<u32>(4 * i).unwrap(), 2 * i as u32);
    }
    let free = link(&testlib(), "c_free", None, &[c::POINTER]);
    assert!(
        free.call_in(&[Value::Address(Address::NULL).into()], &arena)
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_prefix_allocator_holds_a_calls_string_argument_and_its_struct_result() {
    use memscope::alloc::{Arena, PrefixAllocator, SegmentAllocator};
    let big = MemoryLayout::c_struct([MemoryLayout::sequence(17, c::UINT).unwrap()]).unwrap();
    let twice = link(
        &testlib(),
        "big_twice",
        Some(big.clone()),
        std::slice::from_ref(&big),
    );
    let arena = Arena::confined();
    let mut scratch = PrefixAllocator::new(arena.allocate(256, 16).unwrap());
    let arg = Value::Struct(vec![Value::Array((0..17).map(Value::U32).collect())]);
    let mut first = None;
    for round in 0..3 {
        {
            // A C string and the result live together in one round.
            let name = scratch.allocate_cstring("unused").unwrap();
            let seg = twice
                .call_in(&[arg.clone().into()], &scratch)
                .unwrap()
                .unwrap();
            assert_eq!(seg.get::<u32>(4 * 16).unwrap(), 32);
            assert_eq!(name.get_string(0).unwrap(), "unused");
            let at = seg.address();
            assert_eq!(
                *first.get_or_insert(at),
                at,
                "round {round} did not reuse the bytes"
            );
        }
        scratch.reset();
    }
}

fn mapped(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .contains(path)
}

#[cfg(target_os = "linux")]
#[test]
fn closing_the_session_unloads_the_library_once_no_symbol_needs_it() {
    // A private copy, so no other test's handle keeps it mapped.
    let copy = format!("{}.unload-test.so", testlib_path());
    std::fs::copy(testlib_path(), &copy).unwrap();
    let s = Session::shared();
    // SAFETY: our own test library.
    let lib = unsafe { Library::open(&copy, &s) }.unwrap();
    let sym = lib.lookup("add").unwrap();
    assert!(mapped(&copy));
    s.close().unwrap();
    assert!(mapped(&copy), "a live symbol keeps the library loaded");
    drop(sym);
    assert!(
        !mapped(&copy),
        "unloaded once the session closed and the last symbol went"
    );
    drop(lib);
    std::fs::remove_file(&copy).unwrap();
}

#[test]
fn linker_handles_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<Library>();
    both::<Symbol>();
    both::<memscope::linker::Downcall>();
    both::<memscope::linker::UpcallStub>();
    both::<ExecutableSegment>();
    both::<FunctionDescriptor>();
    // A downcall is usable from several threads at once.
    let add = std::sync::Arc::new(link(&testlib(), "add", Some(c::INT), &[c::INT, c::INT]));
    let hs: Vec<_> = (0..2)
        .map(|t| {
            let add = add.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let r = add.call(&[Value::I32(i), Value::I32(t)]).unwrap();
                    assert_eq!(r, Some(Value::I32(i + t)));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

fn big320() -> MemoryLayout {
    MemoryLayout::c_struct([MemoryLayout::sequence(40, c::ULONG).unwrap()]).unwrap()
}

fn big320_bytes(scale: u64) -> Vec<u8> {
    (0..40u64).flat_map(|i| (i * scale).to_ne_bytes()).collect()
}

#[test]
fn calls_too_large_for_the_native_stack_marshal_on_the_thread_stack() {
    use memscope::alloc::{SegmentAllocator, stack};
    let f = link(
        &testlib(),
        "big320_scale",
        Some(big320()),
        &[big320(), c::ULONG],
    );
    let arg = big320_bytes(1);
    let want = big320_bytes(3);
    // Through Values.
    let vals = Value::Struct(vec![Value::Array((0..40).map(Value::U64).collect())]);
    let r = f.call(&[vals, Value::U64(3)]).unwrap();
    assert_eq!(
        r,
        Some(Value::Struct(vec![Value::Array(
            (0..40).map(|i| Value::U64(3 * i)).collect()
        )]))
    );
    // Inside an open frame: the call's temporaries come and go above it,
    // and a segment the frame allocated before the call is untouched.
    stack::frame(|outer| {
        let mut mine = outer.allocate(16, 8).unwrap();
        mine.set::<u64>(8, 77).unwrap();
        let used = outer.used();
        let mut out = outer.allocate(320, 8).unwrap();
        f.call_into(&[Arg::Bytes(&arg), Value::U64(3).into()], &mut out)
            .unwrap();
        let mut got = vec![0u8; 320];
        out.copy_to_slice(0, &mut got).unwrap();
        assert_eq!(got, want);
        assert_eq!(outer.used(), used + 320);
        assert_eq!(mine.get::<u64>(8).unwrap(), 77);
        // The frame is a fine allocator for `call_in` too (the segment is
        // allocated before the call opens its own frame).
        let seg = f
            .call_in(&[Arg::Contents(&out), Value::U64(2).into()], outer)
            .unwrap()
            .unwrap();
        assert_eq!(seg.get::<u64>(8 * 39).unwrap(), 39 * 6);
    });
    // The default: the struct return materialised on the thread's stack.
    let last = f
        .call_with_frame(&[Arg::Bytes(&arg), Value::U64(5).into()], |fr, r| {
            assert!(fr.used() >= 320);
            r.unwrap().get::<u64>(8 * 39).unwrap()
        })
        .unwrap();
    assert_eq!(last, 39 * 5);
}

#[test]
fn struct_arguments_and_returns_as_raw_bytes() {
    let f = link(&testlib(), "cmul", Some(complex()), &[complex(), complex()]);
    let bytes = |re: f64, im: f64| [re.to_ne_bytes(), im.to_ne_bytes()].concat();
    let (a, b) = (bytes(1.0, 2.0), bytes(3.0, -1.0));
    let mut h = memscope::segment::HeapSegment::new(16, 8).unwrap();
    let mut out = h.as_segment_mut();
    f.call_into(&[Arg::Bytes(&a), Arg::Bytes(&b)], &mut out)
        .unwrap();
    assert_eq!(
        (out.get::<f64>(0).unwrap(), out.get::<f64>(8).unwrap()),
        (5.0, 5.0)
    );
    // A returned struct goes straight back in as an argument.
    let mut h2 = memscope::segment::HeapSegment::new(24, 8).unwrap();
    let mut out2 = h2.as_segment_mut();
    f.call_into(&[Arg::Contents(&out), Arg::Bytes(&b)], &mut out2)
        .unwrap();
    assert_eq!(
        (out2.get::<f64>(0).unwrap(), out2.get::<f64>(8).unwrap()),
        (20.0, 10.0)
    );
    assert_eq!(
        out2.get::<f64>(16).unwrap(),
        0.0,
        "only the struct's bytes are written"
    );
    // Mixed with Values, and read back as a Value.
    assert_eq!(
        f.call_with(&[
            Arg::Bytes(&a),
            Value::Struct(vec![Value::F64(3.0), Value::F64(-1.0)]).into()
        ])
        .unwrap(),
        Some(Value::Struct(vec![Value::F64(5.0), Value::F64(5.0)]))
    );
    // Wrong sizes are errors, not reads past the bytes.
    assert!(matches!(
        f.call_into(&[Arg::Bytes(&a[..8]), Arg::Bytes(&b)], &mut out),
        Err(Error::InvalidArgument { .. })
    ));
    let h3 = memscope::segment::HeapSegment::new(8, 8).unwrap();
    let small = h3.as_segment();
    assert!(matches!(
        f.call_with(&[Arg::Contents(&small), Arg::Bytes(&b)]),
        Err(Error::InvalidArgument { .. })
    ));
    let mut h4 = memscope::segment::HeapSegment::new(8, 8).unwrap();
    let mut short = h4.as_segment_mut();
    assert!(matches!(
        f.call_into(&[Arg::Bytes(&a), Arg::Bytes(&b)], &mut short),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        f.call_into(&[Arg::Bytes(&a)], &mut out),
        Err(Error::InvalidArgument { .. })
    ));
    // void: nothing to write into; call_with_frame gives None.
    let free = link(&testlib(), "c_free", None, &[c::POINTER]);
    assert!(matches!(
        free.call_into(&[Value::Address(Address::NULL).into()], &mut out),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(
        free.call_with_frame(&[Value::Address(Address::NULL).into()], |_, r| r.is_none())
            .unwrap()
    );
}

#[test]
fn a_struct_return_into_a_closed_segment_is_an_error() {
    let f = link(&testlib(), "cmul", Some(complex()), &[complex(), complex()]);
    let one = [1.0f64.to_ne_bytes(), 0.0f64.to_ne_bytes()].concat();
    let s = Session::shared();
    let mut buf = [0u128; 1];
    // SAFETY: `buf` outlives the segment; 16 bytes, 16-aligned.
    let mut out =
        unsafe { Segment::from_raw(Address::from_ptr(buf.as_mut_ptr()), 16, &s) }.unwrap();
    s.close().unwrap();
    assert_eq!(
        f.call_into(&[Arg::Bytes(&one), Arg::Bytes(&one)], &mut out),
        Err(Error::Closed)
    );
    assert_eq!(buf[0], 0);
}

#[test]
fn large_calls_work_from_thread_local_destructors_after_the_thread_stack_is_gone() {
    use std::cell::RefCell;
    use std::sync::mpsc;
    struct OnExit(mpsc::Sender<Option<Value>>);
    impl Drop for OnExit {
        fn drop(&mut self) {
            let f = link(
                &testlib(),
                "big320_scale",
                Some(big320()),
                &[big320(), c::ULONG],
            );
            let r = f
                .call_with(&[Arg::Bytes(&big320_bytes(1)), Value::U64(2).into()])
                .unwrap();
            self.0.send(r).unwrap();
        }
    }
    thread_local! {
        static ON_EXIT: RefCell<Option<OnExit>> = const { RefCell::new(None) };
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Registered first, so destroyed after the thread's stack allocator
        // (set up by the large call below): the destructor's call cannot
        // use it and must still work.
        ON_EXIT.with(|o| *o.borrow_mut() = Some(OnExit(tx)));
        let f = link(
            &testlib(),
            "big320_scale",
            Some(big320()),
            &[big320(), c::ULONG],
        );
        f.call_with(&[Arg::Bytes(&big320_bytes(1)), Value::U64(1).into()])
            .unwrap();
    })
    .join()
    .unwrap();
    let want = Value::Struct(vec![Value::Array(
        (0..40).map(|i| Value::U64(2 * i)).collect(),
    )]);
    assert_eq!(rx.recv().unwrap(), Some(want));
}

// ----- upcalls versus their session's close (issue 12, UB items 3, 4, 8) ----

fn apply_int(lib: &Library) -> memscope::linker::Downcall {
    link(
        lib,
        "apply_int",
        Some(c::INT),
        &[c::POINTER, c::INT, c::INT],
    )
}

fn upcall_closing_its_own_session(s: Session) {
    let lib = testlib();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (s2, seen2) = (s.clone(), seen.clone());
    let data = Box::new(40i32); // captured heap state the close would free
    let stub = Linker::native()
        .upcall_typed(
            move |a: i32, b: i32| -> i32 {
                *seen2.lock().unwrap() = Some(s2.close());
                *data + a + b
            },
            &s,
        )
        .unwrap();
    let r = apply_int(&lib)
        .call(&[Value::Address(stub.address()), Value::I32(1), Value::I32(1)])
        .unwrap();
    assert_eq!(r, Some(Value::I32(42)));
    assert_eq!(*seen.lock().unwrap(), Some(Err(Error::InUse)));
    assert_eq!(stub.take_panic(), None);
    s.close().unwrap();
}

#[test]
fn an_upcall_that_closes_its_own_confined_session_gets_an_error_not_a_free() {
    upcall_closing_its_own_session(Session::confined());
}

#[test]
fn an_upcall_that_closes_its_own_shared_session_gets_an_error_not_a_hang() {
    upcall_closing_its_own_session(Session::shared());
}

/// The upcall runs on `caller` (the owner, for a confined session) while
/// another thread drops the session's last handles (its own and the
/// stub's): the drop must not free the closure under the upcall; the
/// session closes when the upcall is over (the upcall holds a handle).
fn last_handle_drop_while_an_upcall_runs(kind: SessionKind) {
    use std::sync::mpsc;
    use std::time::Duration;
    let (handles_tx, handles_rx) = mpsc::channel();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let closed2 = closed.clone();
    let caller = std::thread::spawn(move || {
        let lib = testlib();
        let s = if kind == SessionKind::Confined {
            Session::confined()
        } else {
            Session::shared()
        };
        let c = closed2.clone();
        s.add_close_action(move || c.store(true, std::sync::atomic::Ordering::SeqCst))
            .unwrap();
        let entered = std::sync::Mutex::new(entered_tx);
        let dropped = std::sync::Mutex::new(dropped_rx);
        let data = Box::new(40i32);
        let stub = Linker::native()
            .upcall_typed(
                move |a: i32, b: i32| -> i32 {
                    entered.lock().unwrap().send(()).unwrap();
                    // The other thread drops the last handles now: nothing
                    // may be freed while we are in here.
                    let r = dropped
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(10));
                    assert!(r.is_ok(), "the last-handle drop did not return");
                    assert!(
                        !closed2.load(std::sync::atomic::Ordering::SeqCst),
                        "closed under a running upcall"
                    );
                    *data + a + b
                },
                &s,
            )
            .unwrap();
        let code = stub.address();
        handles_tx.send((s, stub)).unwrap();
        apply_int(&lib)
            .call(&[Value::Address(code), Value::I32(1), Value::I32(1)])
            .unwrap()
    });
    let dropper = std::thread::spawn(move || {
        let handles = handles_rx.recv().unwrap();
        entered_rx.recv().unwrap();
        drop(handles); // the last handles: the session closes after the upcall
        let _ = dropped_tx.send(());
    });
    dropper.join().unwrap();
    assert_eq!(caller.join().unwrap(), Some(Value::I32(42)));
    assert!(closed.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn dropping_the_last_handle_while_an_upcall_runs_closes_after_it() {
    last_handle_drop_while_an_upcall_runs(SessionKind::Shared);
}

#[test]
fn dropping_the_last_confined_handle_elsewhere_while_its_upcall_runs_closes_after_it() {
    last_handle_drop_while_an_upcall_runs(SessionKind::Confined);
}

#[test]
fn dropping_the_last_handle_inside_its_own_upcall_closes_after_it_returns() {
    for kind in [
        SessionKind::Shared,
        SessionKind::Confined,
        SessionKind::Auto,
    ] {
        let lib = testlib();
        let s = match kind {
            SessionKind::Confined => Session::confined(),
            SessionKind::Shared => Session::shared(),
            _ => Session::auto(),
        };
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c = closed.clone();
        s.add_close_action(move || c.store(true, std::sync::atomic::Ordering::SeqCst))
            .unwrap();
        // The closure owns the session's last handle (after the ones below
        // drop) and drops it while it runs.
        let slot: std::sync::Arc<std::sync::Mutex<Option<Session>>> = Default::default();
        let (slot2, closed2) = (slot.clone(), closed.clone());
        let data = Box::new(40i32);
        let stub = Linker::native()
            .upcall_typed(
                move |a: i32, b: i32| -> i32 {
                    drop(slot2.lock().unwrap().take());
                    // Deferred: nothing is freed while the upcall runs.
                    assert!(!closed2.load(std::sync::atomic::Ordering::SeqCst));
                    *data + a + b
                },
                &s,
            )
            .unwrap();
        let code = stub.address();
        *slot.lock().unwrap() = Some(s.clone());
        drop(stub);
        drop(s);
        assert!(!closed.load(std::sync::atomic::Ordering::SeqCst));
        let r = apply_int(&lib)
            .call(&[Value::Address(code), Value::I32(1), Value::I32(1)])
            .unwrap();
        assert_eq!(r, Some(Value::I32(42)), "{kind:?}");
        assert!(closed.load(std::sync::atomic::Ordering::SeqCst), "{kind:?}");
    }
}

#[test]
fn a_stub_argument_keeps_its_session_open_for_the_call() {
    use std::sync::mpsc;
    use std::time::Duration;
    let lib = testlib();
    let twice = link(
        &lib,
        "apply_int_twice",
        Some(c::INT),
        &[c::POINTER, c::INT, c::INT],
    );
    let s = Session::shared();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (res_tx, res_rx) = mpsc::channel();
    let go = std::sync::Mutex::new(Some(go_tx));
    let res = std::sync::Mutex::new(res_rx);
    let data = Box::new(20i32);
    let stub = Linker::native()
        .upcall_typed(
            move |a: i32, b: i32| -> i32 {
                // First call: have another thread try to close the session
                // between this call and the next one C makes.
                if let Some(go) = go.lock().unwrap().take() {
                    go.send(()).unwrap();
                    let r = res.lock().unwrap().recv_timeout(Duration::from_secs(5));
                    assert_eq!(r, Ok(Err(Error::Busy { acquired: 1 })));
                }
                *data + a + b
            },
            &s,
        )
        .unwrap();
    let s2 = s.clone();
    let closer = std::thread::spawn(move || {
        go_rx.recv().unwrap();
        res_tx.send(s2.close()).unwrap();
        // Waits for the call (which holds the stub's session) to return.
        s2.close_blocking()
    });
    let r = twice
        .call_with(&[
            Arg::Stub(&stub),
            Arg::Value(Value::I32(1)),
            Arg::Value(Value::I32(1)),
        ])
        .unwrap();
    assert_eq!(r, Some(Value::I32(44)));
    closer.join().unwrap().unwrap();
    assert!(!s.is_alive());
    // A closed stub's session cannot be acquired: the call is refused.
    assert_eq!(
        twice.call_with(&[
            Arg::Stub(&stub),
            Arg::Value(Value::I32(1)),
            Arg::Value(Value::I32(1))
        ]),
        Err(Error::Closed)
    );
}

/// A panic payload whose own drop panics.
struct Bomb;
impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the payload's drop panics");
    }
}

#[test]
fn an_upcall_panic_payload_that_panics_on_drop_is_contained() {
    let lib = testlib();
    let apply = apply_int(&lib);
    let s = Session::shared();
    let data = Box::new(1i32);
    // A capturing closure (libffi stub) and a stateless one (direct stub).
    let capturing = Linker::native()
        .upcall_typed(
            move |a: i32, _b: i32| -> i32 {
                if a < 0 {
                    std::panic::panic_any(Bomb);
                }
                *data
            },
            &s,
        )
        .unwrap();
    let stateless = Linker::native()
        .upcall_typed(
            |a: i32, _b: i32| -> i32 {
                if a < 0 {
                    std::panic::panic_any(Bomb);
                }
                1
            },
            &s,
        )
        .unwrap();
    for stub in [&capturing, &stateless] {
        // The panic reaches the caller of the downcall as its error (a
        // stub argument is asked after the call) ...
        let r = apply.call_with(&[
            Arg::Stub(stub),
            Arg::Value(Value::I32(-1)),
            Arg::Value(Value::I32(0)),
        ]);
        assert_eq!(
            r.unwrap_err(),
            Error::UpcallPanicked {
                message: "non-string panic payload".into()
            }
        );
        // ... once.
        assert_eq!(stub.take_panic(), None);
        let r = apply
            .call_with(&[
                Arg::Stub(stub),
                Arg::Value(Value::I32(1)),
                Arg::Value(Value::I32(0)),
            ])
            .unwrap();
        assert_eq!(r, Some(Value::I32(1)));
    }
    s.close().unwrap();
}

// ------------------------------------------------- issue 12: c_union! by value, typed

mod typed_unions {
    use super::*;
    use memscope::marshal::Marshal;
    use memscope::{c_struct, c_union};

    c_union! {
        /// `union { float f; }`: SSE.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub union UFloat { pub f: f32 }
    }
    c_union! {
        /// `union { float f; double d; }`: SSE.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub union UFD { pub f: f32, pub d: f64 }
    }
    c_union! {
        /// `union { float f[2]; }`: SSE, alignment 4.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub union UF2 { pub f: [f32; 2] }
    }
    c_union! {
        /// `union { float f[3]; }`: SSE + SSE (12 bytes).
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub union UF3 { pub f: [f32; 3] }
    }
    c_union! {
        /// `union { double d[2]; float f[4]; }`: SSE + SSE.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub union UDD { pub d: [f64; 2], pub f: [f32; 4] }
    }
    c_union! {
        /// `union { int32_t i; uint32_t u; }`: INTEGER.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub union UInt { pub i: i32, pub u: u32 }
    }
    c_union! {
        /// `union { int32_t i; float f; }`: INTEGER.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub union UMix { pub i: i32, pub f: f32 }
    }
    c_union! {
        /// `union { int64_t i; double d; }`: INTEGER.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub union UMix8 { pub i: i64, pub d: f64 }
    }
    c_struct! {
        /// `struct { double d; int32_t i; }`.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct DI { pub d: f64, pub i: i32 }
    }
    c_union! {
        /// `union { DI s; double e[2]; }`: SSE + INTEGER.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub union UTwo { pub s: DI, pub e: [f64; 2] }
    }
    c_union! {
        /// `union { double d[3]; int64_t i; }`: MEMORY.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub union UBig { pub d: [f64; 3], pub i: i64 }
    }

    fn sym(name: &str) -> Symbol {
        testlib().lookup(name).unwrap()
    }

    #[test]
    fn float_only_unions_pass_by_value_in_sse_registers() {
        let s = sym("uf_neg");
        // SAFETY: `UFloat uf_neg(UFloat)`.
        let f = unsafe { s.as_fn::<extern "C" fn(UFloat) -> UFloat>() }.unwrap();
        let r = f(UFloat::new(UFloat::f, &1.25).unwrap());
        assert_eq!(r.get(UFloat::f).unwrap(), -1.25);

        let s = sym("ufd_add");
        // SAFETY: `UFD ufd_add(UFD, double)`.
        let f = unsafe { s.as_fn::<extern "C" fn(UFD, f64) -> UFD>() }.unwrap();
        let r = f(UFD::new(UFD::d, &2.5).unwrap(), 0.25);
        assert_eq!(r.get(UFD::d).unwrap(), 2.75);

        let s = sym("uf2_swap");
        // SAFETY: `UF2 uf2_swap(UF2)`.
        let f = unsafe { s.as_fn::<extern "C" fn(UF2) -> UF2>() }.unwrap();
        let r = f(UF2::new(UF2::f, &[1.5, -2.0]).unwrap());
        assert_eq!(r.get(UF2::f).unwrap(), [-2.0, 1.5]);

        let s = sym("uf3_sum");
        // SAFETY: `UF3 uf3_sum(UF3)`.
        let f = unsafe { s.as_fn::<extern "C" fn(UF3) -> UF3>() }.unwrap();
        let r = f(UF3::new(UF3::f, &[1.5, 2.0, 0.0]).unwrap());
        assert_eq!(r.get(UF3::f).unwrap(), [1.5, 2.0, 3.5]);

        let s = sym("udd_swap");
        // SAFETY: `UDD udd_swap(UDD, double)`.
        let f = unsafe { s.as_fn::<extern "C" fn(UDD, f64) -> UDD>() }.unwrap();
        let r = f(UDD::new(UDD::d, &[1.0, 2.0]).unwrap(), 3.0);
        assert_eq!(r.get(UDD::d).unwrap(), [6.0, 1.0]);
    }

    #[test]
    fn integer_and_mixed_unions_pass_by_value_in_integer_registers() {
        let s = sym("ui_inc");
        // SAFETY: `UInt ui_inc(UInt)`.
        let f = unsafe { s.as_fn::<extern "C" fn(UInt) -> UInt>() }.unwrap();
        assert_eq!(
            f(UInt::new(UInt::i, &41).unwrap()).get(UInt::i).unwrap(),
            42
        );

        let s = sym("umix_neg");
        // SAFETY: `UMix umix_neg(UMix)`.
        let f = unsafe { s.as_fn::<extern "C" fn(UMix) -> UMix>() }.unwrap();
        let r = f(UMix::new(UMix::f, &0.5).unwrap());
        assert_eq!(r.get(UMix::f).unwrap(), -0.5);

        let s = sym("umix8_add");
        // SAFETY: `UMix8 umix8_add(UMix8, double)`.
        let f = unsafe { s.as_fn::<extern "C" fn(UMix8, f64) -> UMix8>() }.unwrap();
        let r = f(UMix8::new(UMix8::d, &2.5).unwrap(), 1.0);
        assert_eq!(r.get(UMix8::d).unwrap(), 3.5);

        let s = sym("utwo_bump");
        // SAFETY: `UTwo utwo_bump(UTwo, int32_t)`.
        let f = unsafe { s.as_fn::<extern "C" fn(UTwo, i32) -> UTwo>() }.unwrap();
        let r = f(UTwo::new(UTwo::s, &DI { d: 1.5, i: 7 }).unwrap(), 5);
        assert_eq!(r.get(UTwo::s).unwrap(), DI { d: 3.0, i: 12 });
    }

    #[test]
    fn unions_over_sixteen_bytes_pass_in_memory() {
        let s = sym("ubig_rev");
        // SAFETY: `UBig ubig_rev(UBig)`.
        let f = unsafe { s.as_fn::<extern "C" fn(UBig) -> UBig>() }.unwrap();
        let r = f(UBig::new(UBig::d, &[1.0, 2.0, 3.0]).unwrap());
        assert_eq!(r.get(UBig::d).unwrap(), [3.0, 3.0, 1.0]);
    }

    #[test]
    fn typed_unions_agree_with_the_dynamic_path() {
        let lib = testlib();
        for (name, layout, arg) in [
            (
                "uf_neg",
                UFloat::layout(),
                UFloat::new(UFloat::f, &4.0).unwrap().as_bytes().to_vec(),
            ),
            (
                "uf3_sum",
                UF3::layout(),
                UF3::new(UF3::f, &[1.0, 2.0, 9.0])
                    .unwrap()
                    .as_bytes()
                    .to_vec(),
            ),
            (
                "ui_inc",
                UInt::layout(),
                UInt::new(UInt::i, &1).unwrap().as_bytes().to_vec(),
            ),
        ] {
            let f = link(&lib, name, Some(layout.clone()), &[layout]);
            let out = f.call(&[Value::Bytes(arg)]).unwrap().unwrap();
            let out = out.into_bytes().expect("a union returns bytes");
            let typed: Vec<u8> = match name {
                "uf_neg" => UFloat::new(UFloat::f, &-4.0).unwrap().as_bytes().to_vec(),
                "uf3_sum" => UF3::new(UF3::f, &[1.0, 2.0, 3.0])
                    .unwrap()
                    .as_bytes()
                    .to_vec(),
                _ => UInt::new(UInt::i, &2).unwrap().as_bytes().to_vec(),
            };
            assert_eq!(out, typed, "{name}");
        }
        // the layouts still equal C's
        assert_eq!((UF3::SIZE, UF3::ALIGN), (12, 4));
        assert_eq!((UTwo::SIZE, UTwo::ALIGN), (16, 8));
        assert_eq!((UBig::SIZE, UBig::ALIGN), (24, 8));
        assert_eq!((UFloat::SIZE, UFloat::ALIGN), (4, 4));
    }
}

// ------------------------------------------------- bind! with unions and enums by value

mod bind_by_value {
    use super::typed_unions::{UBig, UFD, UMix, UTwo};
    use super::*;

    memscope::c_enum! {
        /// Signs, as C ints.
        pub enum Sign { Neg = -1, Zero = 0, Pos = 1 }
    }

    memscope::bind! {
        /// testlib.c's unions through bind!'s typed calls, and libc's abs
        /// through a C enum.
        struct Unions {
            fn ufd_add(u: UFD, x: f64) -> UFD;
            fn umix_neg(u: UMix) -> UMix;
            fn utwo_bump(u: UTwo, k: i32) -> UTwo;
            fn ubig_rev(u: UBig) -> UBig;
            fn add(a: i32, b: i32) -> i32;
            fn sign_of_sum(a: i32, b: i32) -> Sign = "add";
            fn negate(s: Sign, zero: i32) -> i32 = "add";
        }
    }

    #[test]
    fn bind_passes_unions_of_every_class_by_value() {
        // SAFETY: the declarations match testlib.c (a C enum is an int).
        let u = unsafe { Unions::load(&testlib()) }.unwrap();
        let r = u.ufd_add(UFD::new(UFD::d, &2.5).unwrap(), 1.0).unwrap();
        assert_eq!(r.get(UFD::d).unwrap(), 3.5);
        let r = u.umix_neg(UMix::new(UMix::f, &1.5).unwrap()).unwrap();
        assert_eq!(r.get(UMix::f).unwrap(), -1.5);
        let di = super::typed_unions::DI { d: 1.5, i: 4 };
        let r = u.utwo_bump(UTwo::new(UTwo::s, &di).unwrap(), 3).unwrap();
        assert_eq!(
            r.get(UTwo::s).unwrap(),
            super::typed_unions::DI { d: 3.0, i: 7 }
        );
        let r = u
            .ubig_rev(UBig::new(UBig::d, &[1.0, 2.0, 3.0]).unwrap())
            .unwrap();
        assert_eq!(r.get(UBig::d).unwrap(), [3.0, 3.0, 1.0]);
    }

    #[test]
    fn bind_checks_a_c_enum_result() {
        // SAFETY: as above.
        let u = unsafe { Unions::load(&testlib()) }.unwrap();
        assert_eq!(u.add(2, 3).unwrap(), 5);
        assert_eq!(u.sign_of_sum(-3, 2).unwrap(), Sign::Neg);
        assert_eq!(u.negate(Sign::Pos, 0).unwrap(), 1);
        // 7 is no Sign: an error, never an invalid enum value.
        assert!(matches!(
            u.sign_of_sum(3, 4),
            Err(Error::InvalidArgument { .. })
        ));
    }
}

// ------------------------------------------------- issue 16: reinterpret, typed globals

mod reinterpret_and_globals {
    use super::*;
    use memscope::marshal::{StructView, read_seq};

    memscope::c_struct! {
        /// `IntDouble` of testlib.c.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct IntDouble { pub x: i32, pub y: f64 }
    }
    memscope::c_struct! {
        /// `Complex` of testlib.c.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct Complex { pub re: f64, pub im: f64 }
    }

    fn ret_ptr(name: &str) -> Address {
        let f = link(&testlib(), name, Some(c::POINTER), &[]);
        match f.call(&[]).unwrap() {
            Some(Value::Address(a)) => a,
            r => panic!("{name} returned {r:?}"),
        }
    }

    #[test]
    fn a_returned_c_string_is_read_in_one_call() {
        let p = ret_ptr("c_message");
        // SAFETY: `c_message` returns a static NUL-terminated string.
        assert_eq!(unsafe { p.read_string() }.unwrap(), "from C");
        // SAFETY: as above.
        assert_eq!(unsafe { p.read_c_string() }.unwrap().as_c_str(), c"from C");
        let s = Session::shared();
        // SAFETY: as above; the string is static, so it outlives `s`.
        let seg = unsafe { p.reinterpret_c_str(&s) }.unwrap();
        assert_eq!(seg.len(), 6);
        assert!(seg.is_read_only());
        assert_eq!(seg.to_vec().unwrap(), b"from C");
        assert!(seg.get::<u8>(6).is_err()); // the NUL is not part of it
        s.close().unwrap();
        assert_eq!(seg.get::<u8>(0).unwrap_err(), Error::Closed);
        // Not UTF-8: an error for String, fine as bytes.
        let bad = ret_ptr("c_bad_utf8");
        // SAFETY: a static C string.
        assert!(matches!(
            // SAFETY: as above (a static object of the test library, or refused before any access).
            unsafe { bad.read_string() },
            Err(Error::InvalidString { .. })
        ));
        // SAFETY: as above.
        assert_eq!(
            // SAFETY: as above (a static object of the test library, or refused before any access).
            unsafe { bad.read_c_string() }.unwrap().as_bytes(),
            b"\xff\xfe"
        );
        // NULL is an error, never a dereference.
        // SAFETY: NULL is refused before any read.
        unsafe {
            assert_eq!(Address::NULL.read_string().unwrap_err(), Error::NullAddress);
            assert_eq!(
                Address::NULL.read_c_string().unwrap_err(),
                Error::NullAddress
            );
            assert_eq!(
                Address::NULL
                    .reinterpret_c_str(&Session::global())
                    .unwrap_err(),
                Error::NullAddress
            );
        }
    }

    #[test]
    fn a_returned_struct_pointer_is_a_checked_segment_or_a_copy() {
        let p = ret_ptr("point_ptr");
        // SAFETY: `point_ptr` returns a pointer to a static IntDouble.
        assert_eq!(
            // SAFETY: as above (a static object of the test library, or refused before any access).
            unsafe { p.read::<IntDouble>() }.unwrap(),
            IntDouble { x: 7, y: 0.5 }
        );
        let s = Session::confined();
        // SAFETY: as above; static, so it outlives `s`; only this test uses it.
        let mut seg = unsafe { p.reinterpret_as::<IntDouble>(&s) }.unwrap();
        assert_eq!(seg.len(), 16);
        assert_eq!(read_seq::<IntDouble>(&seg, 0, 1).unwrap()[0].x, 7);
        seg.set::<i32>(0, 8).unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { p.read::<IntDouble>() }.unwrap().x, 8);
        seg.set::<i32>(0, 7).unwrap();
        assert!(seg.get::<u8>(16).is_err());
        // The same memory with a size the caller gives.
        // SAFETY: as above.
        let raw = unsafe { p.reinterpret(16, &s) }.unwrap();
        assert_eq!(raw.get::<f64>(8).unwrap(), 0.5);
        // SAFETY: as above (global: the static lives as long as the program).
        let g = unsafe { p.reinterpret_global(4) }.unwrap();
        assert_eq!(g.get::<i32>(0).unwrap(), 7);
        assert_eq!(g.session().kind(), SessionKind::Global);
        // Misaligned and NULL addresses are refused.
        let odd = p.checked_add(1).unwrap();
        // SAFETY: refused before any read.
        unsafe {
            assert!(matches!(
                odd.read::<IntDouble>(),
                Err(Error::Misaligned { align: 8, .. })
            ));
            assert!(matches!(
                odd.reinterpret_as::<IntDouble>(&s),
                Err(Error::Misaligned { .. })
            ));
            assert_eq!(Address::NULL.read::<i32>().unwrap_err(), Error::NullAddress);
            assert_eq!(
                Address::NULL.reinterpret(4, &s).unwrap_err(),
                Error::NullAddress
            );
            assert!(Address::NULL.reinterpret(0, &s).is_ok());
        }
        s.close().unwrap();
        assert_eq!(seg.get::<i32>(0).unwrap_err(), Error::Closed);
    }

    #[test]
    fn typed_globals_take_their_size_from_a_type_or_a_layout() {
        let lib = testlib();
        // SAFETY: `Complex g_complex` in the test library.
        let mut g = unsafe { lib.global_of::<Complex>("g_complex") }.unwrap();
        assert_eq!(g.len(), 16);
        assert!(!g.is_read_only());
        assert_eq!(
            read_seq::<Complex>(&g, 0, 1).unwrap()[0],
            Complex { re: 3.0, im: 4.0 }
        );
        g.set::<f64>(8, 5.0).unwrap();
        // SAFETY: as above; C reads what Rust wrote.
        let g2 = unsafe { lib.global_of::<Complex>("g_complex") }.unwrap();
        assert_eq!(g2.get::<f64>(8).unwrap(), 5.0);
        g.set::<f64>(8, 4.0).unwrap();
        // A const object stays read-only.
        // SAFETY: `const Complex g_const_complex`.
        let mut k = unsafe { lib.global_of::<Complex>("g_const_complex") }.unwrap();
        assert!(k.is_read_only());
        assert_eq!(k.set::<f64>(0, 0.0).unwrap_err(), Error::ReadOnly);
        let l =
            MemoryLayout::c_struct([c::DOUBLE.with_name("re"), c::DOUBLE.with_name("im")]).unwrap();
        // SAFETY: as above, by layout.
        let kl = unsafe { lib.global_layout("g_const_complex", &l) }.unwrap();
        assert!(kl.is_read_only());
        assert_eq!(
            StructView::new(&l, &kl, 0)
                .unwrap()
                .get_as::<f64>("im")
                .unwrap(),
            -2.5
        );
        // A layout whose alignment the symbol does not have is refused
        // (`label` is a char[8]: alignment 1 is all C promises).
        let over = MemoryLayout::c_struct([c::CHAR])
            .unwrap()
            .with_align(4096)
            .unwrap();
        // SAFETY: refused before any access.
        assert!(matches!(
            // SAFETY: as above (a static object of the test library, or refused before any access).
            unsafe { lib.global_layout("label", &over) },
            Err(Error::Misaligned { .. })
        ));
        // SAFETY: as above.
        assert!(matches!(
            // SAFETY: as above (a static object of the test library, or refused before any access).
            unsafe { lib.global_of::<i32>("no_such_global") },
            Err(Error::SymbolNotFound { .. })
        ));
        // Tied to the library's session.
        let s = Session::shared();
        // SAFETY: our own test library.
        let lib2 = unsafe { Library::open(testlib_path(), &s) }.unwrap();
        // SAFETY: `int32_t counter`.
        let c = unsafe { lib2.global_of::<i32>("counter") }.unwrap();
        assert_eq!(c.session(), &s);
        s.close().unwrap();
        // SAFETY: refused: closed.
        assert_eq!(
            // SAFETY: as above (a static object of the test library, or refused before any access).
            unsafe { lib2.global_of::<i32>("counter") }.unwrap_err(),
            Error::Closed
        );
    }
}

// ------------------------------------------------- issue 16: typed upcalls with aggregates

#[allow(improper_ctypes_definitions)] // c_union! types are their C unions (CRepr)
mod typed_aggregate_upcalls {
    use super::typed_unions::{UFD, UMix8};
    use super::*;
    use memscope::c_struct;

    c_struct! {
        /// `Complex` of testlib.c.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct Cx { pub re: f64, pub im: f64 }
    }
    c_struct! {
        /// `IntDouble` of testlib.c (INTEGER + SSE).
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct IntDouble { pub x: i32, pub y: f64 }
    }
    c_struct! {
        /// `Big17` of testlib.c (68 bytes: MEMORY class, in and out).
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct Big17 { pub v: [u32; 17] }
    }

    type ApplyCx2 = extern "C" fn(extern "C" fn(Cx, Cx) -> Cx, Cx, Cx) -> Cx;
    type ApplyId =
        extern "C" fn(extern "C" fn(IntDouble, i32) -> IntDouble, IntDouble, i32) -> IntDouble;
    type ApplyBig = extern "C" fn(extern "C" fn(Big17, u32) -> Big17, u32) -> Big17;
    type ApplyUMix8 = extern "C" fn(extern "C" fn(UMix8) -> UMix8, i64) -> UMix8;
    type ApplyUfd = extern "C" fn(extern "C" fn(UFD, f64) -> UFD, f64) -> UFD;
    type SumVia = extern "C" fn(extern "C" fn(Cx, Cx) -> Cx, i32) -> f64;

    fn cfn<F: Copy>(lib: &Library, name: &str) -> F {
        let sym = lib.lookup(name).unwrap();
        // SAFETY: each call site names the C prototype of testlib.c; the
        // library is opened in the global session (never unloaded).
        *unsafe { sym.as_fn::<F>() }.unwrap()
    }

    fn cmul(a: Cx, b: Cx) -> Cx {
        Cx {
            re: a.re * b.re - a.im * b.im,
            im: a.re * b.im + a.im * b.re,
        }
    }

    /// Every by-value class through C, for one session kind, capturing
    /// (direct slot trampolines) and stateless.
    fn struct_upcalls_through_c(s: &Session) {
        let lib = testlib();
        let l = Linker::native();
        let k = std::hint::black_box(1.0f64); // captured: a capturing closure
        let cx = l
            .upcall_typed(
                move |a: Cx, b: Cx| {
                    let r = cmul(a, b);
                    Cx {
                        re: r.re * k,
                        im: r.im * k,
                    }
                },
                s,
            )
            .unwrap();
        let cx0 = l.upcall_typed(cmul, s).unwrap(); // stateless
        let apply: ApplyCx2 = cfn(&lib, "apply_complex2");
        let (a, b) = (Cx { re: 1.0, im: 2.0 }, Cx { re: 3.0, im: -1.0 });
        for stub in [&cx, &cx0] {
            // SAFETY: the stub has this signature; `s` is open.
            let f = unsafe { stub.as_fn::<extern "C" fn(Cx, Cx) -> Cx>() }.unwrap();
            assert_eq!(apply(f, a, b), Cx { re: 5.0, im: 5.0 });
            let sum: SumVia = cfn(&lib, "sum_complex_via");
            // re of (i + 1j) * (2 - ij) = 2i + i = 3i; sum over 0..10 = 135
            assert_eq!(sum(f, 10), 135.0);
        }
        let scale = std::hint::black_box(10);
        let id = l
            .upcall_typed(
                move |p: IntDouble, k: i32| IntDouble {
                    x: p.x * k * scale,
                    y: p.y * f64::from(k),
                },
                s,
            )
            .unwrap();
        let apply: ApplyId = cfn(&lib, "apply_id");
        // SAFETY: as above.
        let f = unsafe { id.as_fn::<extern "C" fn(IntDouble, i32) -> IntDouble>() }.unwrap();
        assert_eq!(
            apply(f, IntDouble { x: -3, y: 1.5 }, 4),
            IntDouble { x: -120, y: 6.0 }
        );
        let big = l
            .upcall_typed(
                move |mut b: Big17, k: u32| {
                    for v in &mut b.v {
                        *v = *v * k + scale as u32;
                    }
                    b
                },
                s,
            )
            .unwrap();
        let apply: ApplyBig = cfn(&lib, "apply_big17");
        // SAFETY: as above.
        let f = unsafe { big.as_fn::<extern "C" fn(Big17, u32) -> Big17>() }.unwrap();
        let want: [u32; 17] = std::array::from_fn(|i| i as u32 * 3 * 7 + 10);
        assert_eq!(apply(f, 7).v, want);
        // Unions: INTEGER (union { int64_t; double }) and SSE (union { float; double }).
        let um = l
            .upcall_typed(
                move |u: UMix8| {
                    UMix8::new(UMix8::i, &(u.get(UMix8::i).unwrap() * scale as i64)).unwrap()
                },
                s,
            )
            .unwrap();
        let apply: ApplyUMix8 = cfn(&lib, "apply_umix8");
        // SAFETY: as above.
        let f = unsafe { um.as_fn::<extern "C" fn(UMix8) -> UMix8>() }.unwrap();
        assert_eq!(apply(f, -(1 << 40)).get(UMix8::i).unwrap(), -(10i64 << 40));
        let uf = l
            .upcall_typed(
                move |u: UFD, d: f64| UFD::new(UFD::d, &(u.get(UFD::d).unwrap() + d * k)).unwrap(),
                s,
            )
            .unwrap();
        let apply: ApplyUfd = cfn(&lib, "apply_ufd");
        // SAFETY: as above.
        let f = unsafe { uf.as_fn::<extern "C" fn(UFD, f64) -> UFD>() }.unwrap();
        assert_eq!(apply(f, 1.25).get(UFD::d).unwrap(), 2.5);
        for stub in [&cx, &cx0, &id, &big, &um, &uf] {
            assert_eq!(stub.take_panic(), None);
        }
    }

    #[test]
    fn c_calls_typed_upcalls_with_structs_and_unions_by_value() {
        struct_upcalls_through_c(&Session::shared());
        struct_upcalls_through_c(&Session::confined());
        struct_upcalls_through_c(&Session::global());
        // The same through libffi closures (the fallback when every direct
        // slot is taken): the layout's libffi types move the aggregates.
        memscope::linker::__typed_upcalls_via_libffi(true);
        struct_upcalls_through_c(&Session::shared());
        struct_upcalls_through_c(&Session::confined());
        memscope::linker::__typed_upcalls_via_libffi(false);
        // Held: the same calls with the session held by this thread.
        let s = Session::shared();
        let lib = testlib();
        let k = std::hint::black_box(2.0);
        let stub = Linker::native()
            .upcall_typed(
                move |a: Cx, b: Cx| Cx {
                    re: a.re * b.re * k,
                    im: 0.0,
                },
                &s,
            )
            .unwrap();
        let apply: ApplyCx2 = cfn(&lib, "apply_complex2");
        // SAFETY: as above.
        let f = unsafe { stub.as_fn::<extern "C" fn(Cx, Cx) -> Cx>() }.unwrap();
        let hold = stub.hold().unwrap();
        assert_eq!(
            apply(f, Cx { re: 2.0, im: 0.0 }, Cx { re: 3.0, im: 0.0 }).re,
            12.0
        );
        drop(hold);
        s.close().unwrap();
    }

    #[test]
    fn a_panicking_struct_upcall_returns_a_zeroed_struct() {
        let s = Session::shared();
        let lib = testlib();
        let k = std::hint::black_box(1.0);
        let stub = Linker::native()
            .upcall_typed(
                move |a: Cx, _: Cx| -> Cx {
                    if a.re < 0.0 {
                        panic!("negative re")
                    }
                    Cx {
                        re: a.re * k,
                        im: 1.0,
                    }
                },
                &s,
            )
            .unwrap();
        let apply: ApplyCx2 = cfn(&lib, "apply_complex2");
        // SAFETY: as above.
        let f = unsafe { stub.as_fn::<extern "C" fn(Cx, Cx) -> Cx>() }.unwrap();
        let z = Cx { re: 0.0, im: 0.0 };
        assert_eq!(apply(f, Cx { re: -1.0, im: 9.0 }, z), z);
        assert_eq!(
            stub.take_panic(),
            Some(Error::UpcallPanicked {
                message: "negative re".into()
            })
        );
        assert_eq!(
            apply(f, Cx { re: 2.0, im: 9.0 }, z),
            Cx { re: 2.0, im: 1.0 }
        );
        // The MEMORY-class return (a hidden result pointer) zeroed too.
        let big = Linker::native()
            .upcall_typed(
                move |_: Big17, k: u32| -> Big17 {
                    if k == 0 {
                        panic!("zero")
                    }
                    Big17 { v: [k; 17] }
                },
                &s,
            )
            .unwrap();
        let apply: ApplyBig = cfn(&lib, "apply_big17");
        // SAFETY: as above.
        let f = unsafe { big.as_fn::<extern "C" fn(Big17, u32) -> Big17>() }.unwrap();
        assert_eq!(apply(f, 0).v, [0; 17]);
        assert!(matches!(
            big.take_panic(),
            Some(Error::UpcallPanicked { .. })
        ));
        assert_eq!(apply(f, 5).v, [5; 17]);
    }

    #[test]
    fn a_struct_upcall_from_a_confined_session_refuses_other_threads() {
        let s = Session::confined();
        let lib = testlib();
        let k = std::hint::black_box(1.0);
        let stub = Linker::native()
            .upcall_typed(
                move |a: Cx, b: Cx| Cx {
                    re: a.re + b.re * k,
                    im: 7.0,
                },
                &s,
            )
            .unwrap();
        // SAFETY: as above.
        let f = unsafe { stub.as_fn::<extern "C" fn(Cx, Cx) -> Cx>() }.unwrap();
        let apply: ApplyCx2 = cfn(&lib, "apply_complex2");
        let one = Cx { re: 1.0, im: 0.0 };
        assert_eq!(apply(f, one, one).re, 2.0);
        let r = std::thread::spawn(move || apply(f, one, one))
            .join()
            .unwrap();
        assert_eq!(r, Cx { re: 0.0, im: 0.0 });
        assert!(matches!(stub.take_panic(), Some(Error::WrongThread { .. })));
    }

    #[test]
    fn more_capturing_stubs_than_direct_slots_fall_back_to_libffi() {
        let s = Session::shared();
        let lib = testlib();
        let apply: extern "C" fn(extern "C" fn(i32, i32) -> i32, i32, i32) -> i32 =
            cfn(&lib, "apply_int");
        // More than the 64 direct slots at once: the rest are libffi closures.
        let stubs: Vec<_> = (0..150)
            .map(|i| {
                Linker::native()
                    .upcall_typed(move |a: i32, b: i32| a * b + i, &s)
                    .unwrap()
            })
            .collect();
        for (i, stub) in stubs.iter().enumerate() {
            // SAFETY: the stub has this signature; `s` is open.
            let f = unsafe { stub.as_fn::<extern "C" fn(i32, i32) -> i32>() }.unwrap();
            assert_eq!(apply(f, 6, 7), 42 + i as i32, "stub {i}");
        }
        s.close().unwrap();
        // Closing gave the slots back: new stubs work (and use them).
        let s2 = Session::shared();
        for i in 0..100 {
            let stub = Linker::native()
                .upcall_typed(move |a: i32, b: i32| a - b - i, &s2)
                .unwrap();
            // SAFETY: as above.
            let f = unsafe { stub.as_fn::<extern "C" fn(i32, i32) -> i32>() }.unwrap();
            assert_eq!(apply(f, 10, 3), 7 - i);
        }
        s2.close().unwrap();
    }

    #[test]
    fn a_typed_upcall_of_a_closed_session_is_not_made() {
        let s = Session::shared();
        s.close().unwrap();
        let k = std::hint::black_box(1.0);
        assert_eq!(
            Linker::native()
                .upcall_typed(
                    move |a: Cx| Cx {
                        re: a.re * k,
                        im: 0.0
                    },
                    &s
                )
                .unwrap_err(),
            Error::Closed
        );
    }
}

// ------------------------------------------------- issue 16: holding a stub's session

mod stub_holds {
    use super::*;

    fn apply_int_fn() -> extern "C" fn(extern "C" fn(i32, i32) -> i32, i32, i32) -> i32 {
        let sym = testlib().lookup("apply_int").unwrap();
        // SAFETY: `int32_t apply_int(int32_t (*)(int32_t, int32_t), int32_t, int32_t)`.
        *unsafe { sym.as_fn() }.unwrap()
    }

    #[test]
    fn a_held_session_cannot_close_and_its_upcalls_still_run() {
        for s in [Session::shared(), Session::confined()] {
            let s2 = s.clone();
            let closes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let seen = closes.clone();
            let k = std::hint::black_box(1);
            let stub = Linker::native()
                .upcall_typed(
                    move |a: i32, b: i32| {
                        // A close from inside a held upcall: InUse, never a free or a hang.
                        seen.lock().unwrap().push((s2.close(), s2.close_blocking()));
                        a * b * k
                    },
                    &s,
                )
                .unwrap();
            // SAFETY: the stub has this signature; `s` is open (held below).
            let f = unsafe { stub.as_fn::<extern "C" fn(i32, i32) -> i32>() }.unwrap();
            let apply = apply_int_fn();
            {
                let hold = stub.hold().unwrap();
                assert_eq!(hold.session(), &s);
                assert_eq!(apply(f, 6, 7), 42);
                // Nested holds of the same session.
                let inner = stub.hold().unwrap();
                assert_eq!(apply(f, 2, 3), 6);
                drop(inner);
                assert_eq!(apply(f, 1, 3), 3);
                assert_eq!(s.close().unwrap_err(), Error::InUse);
                if s.kind() == SessionKind::Shared {
                    // From another thread: Busy (acquired), not a wait.
                    let s3 = s.clone();
                    let r = std::thread::spawn(move || s3.close()).join().unwrap();
                    assert!(matches!(r, Err(Error::Busy { .. })), "{r:?}");
                }
            }
            for (c, cb) in closes.lock().unwrap().iter() {
                assert_eq!(c, &Err(Error::InUse));
                assert_eq!(cb, &Err(Error::InUse));
            }
            // Unheld: the upcall enters by itself, and a close inside is InUse too.
            assert_eq!(apply(f, 2, 2), 4);
            assert_eq!(closes.lock().unwrap().last().unwrap().0, Err(Error::InUse));
            assert_eq!(stub.take_panic(), None);
            s.close().unwrap();
            assert_eq!(stub.hold().unwrap_err(), Error::Closed);
        }
    }

    #[test]
    fn holds_of_two_sessions_on_one_thread_both_work() {
        let (a, b) = (Session::shared(), Session::confined());
        let k = std::hint::black_box(1);
        let sa = Linker::native()
            .upcall_typed(move |x: i32, y: i32| x + y * k, &a)
            .unwrap();
        let sb = Linker::native()
            .upcall_typed(move |x: i32, y: i32| x - y * k, &b)
            .unwrap();
        // SAFETY: the stubs have this signature; sessions open.
        let (fa, fb) = unsafe {
            (
                sa.as_fn::<extern "C" fn(i32, i32) -> i32>().unwrap(),
                sb.as_fn::<extern "C" fn(i32, i32) -> i32>().unwrap(),
            )
        };
        let apply = apply_int_fn();
        let ha = sa.hold().unwrap();
        let hb = sb.hold().unwrap(); // taken unmarked: b's upcalls enter as usual
        assert_eq!(apply(fa, 5, 3), 8);
        assert_eq!(apply(fb, 5, 3), 2);
        drop(ha); // out of order
        assert_eq!(apply(fa, 5, 3), 8);
        assert_eq!(apply(fb, 5, 3), 2);
        assert_eq!(b.close().unwrap_err(), Error::InUse);
        drop(hb);
        a.close().unwrap();
        b.close().unwrap();
    }

    #[test]
    fn a_confined_hold_from_another_thread_is_refused() {
        let s = Session::confined();
        let stub = Linker::native().upcall_typed(|x: i32| x, &s).unwrap();
        let stub = std::sync::Arc::new(stub);
        let st = stub.clone();
        let r = std::thread::spawn(move || st.hold().map(drop))
            .join()
            .unwrap();
        assert!(matches!(r, Err(Error::WrongThread { .. })), "{r:?}");
    }

    #[test]
    fn a_forgotten_hold_leaks_the_session_open_never_a_stale_mark() {
        let s = Session::shared();
        let k = std::hint::black_box(1);
        let stub = Linker::native()
            .upcall_typed(move |x: i32, y: i32| x * y * k, &s)
            .unwrap();
        std::mem::forget(stub.hold().unwrap());
        // SAFETY: as above; the forgotten hold keeps `s` open for good.
        let f = unsafe { stub.as_fn::<extern "C" fn(i32, i32) -> i32>() }.unwrap();
        drop(stub);
        assert_eq!(apply_int_fn()(f, 4, 5), 20);
        assert_eq!(s.close().unwrap_err(), Error::InUse);
        drop(s); // the hold's handle keeps the core (and the stub) alive
        assert_eq!(apply_int_fn()(f, 4, 6), 24);
    }

    #[test]
    fn a_downcall_holds_each_stub_argument_for_the_call() {
        let lib = testlib();
        let s = Session::shared();
        let s2 = s.clone();
        let k = std::hint::black_box(1);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen2 = seen.clone();
        let stub = Linker::native()
            .upcall_typed(
                move |a: i32, b: i32| {
                    *seen2.lock().unwrap() = Some(s2.close());
                    (a + b) * k
                },
                &s,
            )
            .unwrap();
        let d = link(
            &lib,
            "apply_int_twice",
            Some(c::INT),
            &[c::POINTER, c::INT, c::INT],
        );
        let r = d
            .call_with(&[
                Arg::Stub(&stub),
                Value::I32(20).into(),
                Value::I32(1).into(),
            ])
            .unwrap();
        assert_eq!(r, Some(Value::I32(42)));
        assert_eq!(*seen.lock().unwrap(), Some(Err(Error::InUse)));
        s.close().unwrap();
        assert_eq!(
            d.call_with(&[Arg::Stub(&stub), Value::I32(1).into(), Value::I32(1).into()])
                .unwrap_err(),
            Error::Closed
        );
    }
}

// ------------------------------------- issue 16: one argument type, typed results

mod typed_results {
    use super::*;
    use memscope::c_struct;

    c_struct! {
        /// testlib's `Complex`.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct Complex { pub re: f64, pub im: f64 }
    }

    #[test]
    fn call_as_returns_rust_scalars_structs_and_values() {
        let lib = testlib();
        let add = link(&lib, "add", Some(c::INT), &[c::INT, c::INT]);
        assert_eq!(add.call_as::<i32>(&[2.into(), 40.into()]).unwrap(), 42);
        assert_eq!(
            add.call_as::<Value>(&[2.into(), 3.into()]).unwrap(),
            Value::I32(5)
        );
        assert_eq!(
            add.call_as::<Option<Value>>(&[2.into(), 3.into()]).unwrap(),
            Some(Value::I32(5))
        );
        add.call_as::<()>(&[2.into(), 3.into()]).unwrap();
        let f = link(&lib, "id_f64", Some(c::DOUBLE), &[c::DOUBLE]);
        assert_eq!(f.call_as::<f64>(&[0.125.into()]).unwrap(), 0.125);
        let u = link(&lib, "id_u32", Some(c::UINT), &[c::UINT]);
        assert_eq!(u.call_as::<u32>(&[u32::MAX.into()]).unwrap(), u32::MAX);
        let p = link(&lib, "id_ptr", Some(c::POINTER), &[c::POINTER]);
        let a = Address::new(0x1000);
        assert_eq!(p.call_as::<Address>(&[a.into()]).unwrap(), a);
        let z = link(&lib, "c_strlen", Some(c::SIZE_T), &[c::POINTER]);
        assert_eq!(z.call_as::<usize>(&[c"four".into()]).unwrap(), 4);
        let b = link(&lib, "not_bool", Some(c::BOOL), &[c::BOOL]);
        assert!(b.call_as::<bool>(&[false.into()]).unwrap());
        // A struct by value, as its c_struct! type: in as raw bytes, out
        // decoded from the return buffer.
        let cl = MemoryLayout::c_struct([c::DOUBLE, c::DOUBLE]).unwrap();
        let swap = link(&lib, "cswap", Some(cl.clone()), &[cl]);
        let bytes = [1.5f64.to_ne_bytes(), (-2.0f64).to_ne_bytes()].concat();
        assert_eq!(
            swap.call_as::<Complex>(&[bytes.as_slice().into()]).unwrap(),
            Complex { re: -2.0, im: 1.5 }
        );
        let v = link(&lib, "c_free", None, &[c::POINTER]);
        v.call_as::<()>(&[Address::NULL.into()]).unwrap();
        assert_eq!(
            v.call_as::<Option<Value>>(&[Address::NULL.into()]).unwrap(),
            None
        );
    }

    #[test]
    fn call_as_refuses_a_result_type_that_does_not_fit_naming_c_types() {
        let lib = testlib();
        let add = link(&lib, "add", Some(c::INT), &[c::INT, c::INT]);
        let e = add.call_as::<u32>(&[1.into(), 2.into()]).unwrap_err();
        assert_eq!(
            e,
            Error::InvalidArgument {
                reason: "add returns int32_t, not u32 (uint32_t)".into()
            }
        );
        // After a refusal the right type still works (and is cached).
        assert_eq!(add.call_as::<i32>(&[1.into(), 2.into()]).unwrap(), 3);
        assert_eq!(add.call_as::<i32>(&[1.into(), 2.into()]).unwrap(), 3);
        assert!(add.call_as::<f64>(&[1.into(), 2.into()]).is_err());
        let cl = MemoryLayout::c_struct([c::DOUBLE, c::DOUBLE]).unwrap();
        let swap = link(&lib, "cswap", Some(cl.clone()), &[cl]);
        let bytes = [0u8; 16];
        let e = swap.call_as::<f64>(&[bytes.as_slice().into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument: cswap returns struct { double _0; double _1; }, not f64 (double)"
        );
        let v = link(&lib, "c_free", None, &[c::POINTER]);
        let e = v.call_as::<Value>(&[Address::NULL.into()]).unwrap_err();
        assert!(e.to_string().contains("c_free returns void"), "{e}");
    }

    #[test]
    fn argument_errors_name_the_c_type_and_the_1_based_position() {
        let lib = testlib();
        let add = link(&lib, "add", Some(c::INT), &[c::INT, c::INT]);
        let msg = |e: Error| e.to_string();
        assert_eq!(
            msg(add.call(&[Value::I32(1), Value::F64(2.5)]).unwrap_err()),
            "invalid argument: add: argument 2 is int32_t, given double 2.5"
        );
        assert_eq!(
            msg(add.call_with(&[1u32.into(), 2.into()]).unwrap_err()),
            "invalid argument: add: argument 1 is int32_t, given uint32_t 1"
        );
        assert_eq!(
            msg(add.call_as::<i32>(&[1.into(), c"x".into()]).unwrap_err()),
            "invalid argument: add: argument 2 is int32_t, given a C string (a pointer)"
        );
        assert_eq!(
            msg(add.call_as::<i32>(&[1.into()]).unwrap_err()),
            "invalid argument: add takes 2 argument(s), 1 given"
        );
        let cl = MemoryLayout::c_struct([c::DOUBLE, c::DOUBLE]).unwrap();
        let swap = link(&lib, "cswap", Some(cl.clone()), &[cl]);
        assert_eq!(
            msg(swap
                .call_as::<()>(&[[0u8; 8].as_slice().into()])
                .unwrap_err()),
            "invalid argument: cswap: argument 1 is struct { double _0; double _1; }, given 8 bytes"
        );
        let e = msg(swap.call(&[Value::I32(1)]).unwrap_err());
        assert!(
            e.starts_with(
                "invalid argument: cswap: argument 1 (struct { double _0; double _1; }): "
            ),
            "{e}"
        );
        assert!(!e.contains("MemoryLayout"), "{e}");
        // Link-time errors count from 1 too.
        let d = FunctionDescriptor::of(Some(c::INT), &[c::POINTER, c::FLOAT]).variadic(1);
        let sym = Library::libc().unwrap().lookup("printf").unwrap();
        // SAFETY: refused at link time.
        let e = unsafe { Linker::native().downcall(&sym, &d, DowncallOptions::default()) }
            .unwrap_err()
            .to_string();
        assert!(e.contains("argument 2"), "{e}");
    }

    #[test]
    fn a_capturing_downcall_clears_errno_before_the_call() {
        let lib = testlib();
        let o = DowncallOptions::default().capture_errno(true);
        let set = lib.lookup("set_errno_to").unwrap();
        let add = lib.lookup("add").unwrap();
        // SAFETY: testlib's prototypes.
        let (set, add) = unsafe {
            (
                Linker::native()
                    .downcall(&set, &FunctionDescriptor::of(Some(c::INT), &[c::INT]), o)
                    .unwrap(),
                Linker::native()
                    .downcall(
                        &add,
                        &FunctionDescriptor::of(Some(c::INT), &[c::INT, c::INT]),
                        o,
                    )
                    .unwrap(),
            )
        };
        let (_, e) = set.call_errno(&[5.into()]).unwrap();
        assert_eq!(e, 5);
        // add does not touch errno: what is captured is 0, not the 5 left
        // behind by the previous call.
        let (r, e) = add.call_errno(&[1.into(), 2.into()]).unwrap();
        assert_eq!((r, e), (Some(Value::I32(3)), 0));
        assert_eq!(memscope::linker::last_errno(), 0);
        // libc's strtol idiom, without binding __errno_location.
        let strtol = Library::libc().unwrap().lookup("strtol").unwrap();
        let d = FunctionDescriptor::of(Some(c::LONG), &[c::POINTER, c::POINTER, c::INT]);
        // SAFETY: `long strtol(const char *, char **, int)`.
        let strtol = unsafe { Linker::native().downcall(&strtol, &d, o) }.unwrap();
        let big = c"99999999999999999999";
        let (r, e) = strtol
            .call_errno(&[big.into(), Address::NULL.into(), 10.into()])
            .unwrap();
        assert_eq!((r, e), (Some(Value::I64(i64::MAX)), 34));
        let (r, e) = strtol
            .call_errno(&[c"12".into(), Address::NULL.into(), 10.into()])
            .unwrap();
        assert_eq!((r, e), (Some(Value::I64(12)), 0));
    }
}

// ------------------------------------------- direct calls (issue 16 row 11)

mod direct_downcalls {
    use super::*;

    fn d(name: &str, ret: Option<ValueKind>, args: &[ValueKind]) -> memscope::linker::Downcall {
        let args: Vec<_> = args.iter().map(|&k| v(k)).collect();
        link(&testlib(), name, ret.map(v), &args)
    }

    const LE: bool = cfg!(target_endian = "little");

    #[test]
    fn every_basic_class_is_called_directly_and_correctly() {
        use ValueKind::*;
        let f = d("fc_u32", Some(U32), &[U32, U32]);
        assert_eq!(f.is_direct(), LE);
        assert_eq!(
            f.call_as::<u32>(&[u32::MAX.into(), 5u32.into()]).unwrap(),
            u32::MAX.wrapping_mul(3).wrapping_add(5)
        );
        let f = d("fc_i64", Some(I64), &[I64, I64, I64]);
        assert_eq!(f.is_direct(), LE);
        assert_eq!(
            f.call(&[Value::I64(-1), Value::I64(2), Value::I64(-3)])
                .unwrap(),
            Some(Value::I64(-83))
        );
        let f = d("fc_u64", Some(U64), &[U64]);
        assert_eq!(f.is_direct(), LE);
        assert_eq!(
            f.call_as::<u64>(&[u64::MAX.into()]).unwrap(),
            0x0F0F_0F0F_0F0F_0F0F
        );
        let f = d("fc_f32", Some(F32), &[F32, F32]);
        assert_eq!(f.is_direct(), LE);
        assert_eq!(
            f.call_as::<f32>(&[1.5f32.into(), (-2.0f32).into()])
                .unwrap(),
            -3.5
        );
        let f = d("fc_mix3", Some(F64), &[I32, U64, F64]);
        assert_eq!(f.is_direct(), LE);
        assert_eq!(
            f.call_with(&[(-7).into(), 3u64.into(), 0.5.into()])
                .unwrap(),
            Some(Value::F64(-5.5))
        );
        let f = d("fc_i_f_mix", Some(F64), &[F32, I32, F64]);
        assert_eq!(f.is_direct(), LE);
        assert_eq!(
            f.call_as::<f64>(&[0.25f32.into(), (-8).into(), 10.0.into()])
                .unwrap(),
            8.0
        );
        // Pointers in and out (a C string's address, offset by C).
        let f = d("fc_ptr", Some(Address), &[Address, I64]);
        assert_eq!(f.is_direct(), LE);
        let s = c"direct";
        let p = f
            .call_as::<memscope::Address>(&[Arg::CStr(s), 2i64.into()])
            .unwrap();
        assert_eq!(p, memscope::Address::from_ptr(s.as_ptr().wrapping_add(2)));
        // void result, no arguments.
        let store = d("fc_store", None, &[I32]);
        let load = d("fc_load", Some(I32), &[]);
        assert!(store.is_direct() == LE && load.is_direct() == LE);
        assert_eq!(store.call(&[Value::I32(i32::MIN)]).unwrap(), None);
        assert_eq!(load.call_as::<i32>(&[]).unwrap(), i32::MIN);
    }

    #[test]
    fn signatures_past_the_table_fall_back_to_libffi_and_work() {
        use ValueKind::*;
        // Four arguments.
        let f = d("fc_four", Some(I32), &[I32, I32, I32, I32]);
        assert!(!f.is_direct());
        assert_eq!(
            f.call_as::<i32>(&[10.into(), 3.into(), 4.into(), (-5).into()])
                .unwrap(),
            -13
        );
        // A 16-bit class.
        let f = d("fc_short", Some(I16), &[I16, I16]);
        assert!(!f.is_direct());
        assert_eq!(
            f.call(&[Value::I16(-30000), Value::I16(10000)]).unwrap(),
            Some(Value::I16(25536))
        );
        // A struct argument.
        let f = link(&testlib(), "cswap", Some(complex()), &[complex()]);
        assert!(!f.is_direct());
        let r = f
            .call(&[Value::Struct(vec![Value::F64(1.0), Value::F64(2.0)])])
            .unwrap();
        assert_eq!(
            r,
            Some(Value::Struct(vec![Value::F64(2.0), Value::F64(1.0)]))
        );
        // Variadic.
        let sym = Library::libc().unwrap().lookup("snprintf").unwrap();
        let desc =
            FunctionDescriptor::of(Some(c::INT), &[c::POINTER, c::SIZE_T, c::POINTER, c::INT])
                .variadic(3);
        // SAFETY: `int snprintf(char *, size_t, const char *, ...)`.
        let f =
            unsafe { Linker::native().downcall(&sym, &desc, DowncallOptions::default()) }.unwrap();
        assert!(!f.is_direct());
    }

    #[test]
    fn direct_calls_keep_every_check() {
        use ValueKind::*;
        let f = d("fc_mix3", Some(F64), &[I32, U64, F64]);
        let e = f
            .call_as::<f64>(&[1.into(), 2i64.into(), 0.5.into()])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument: fc_mix3: argument 2 is uint64_t, given int64_t 2"
        );
        assert!(f.call(&[Value::I32(1)]).is_err());
        assert!(
            f.call_as::<i32>(&[1.into(), 2u64.into(), 0.5.into()])
                .is_err()
        );
        // errno is cleared before a capturing direct call.
        let sym = Library::libc().unwrap().lookup("strtol").unwrap();
        let desc = FunctionDescriptor::of(Some(c::LONG), &[c::POINTER, c::POINTER, c::INT]);
        let o = DowncallOptions::default().capture_errno(true);
        // SAFETY: `long strtol(const char *, char **, int)`.
        let strtol = unsafe { Linker::native().downcall(&sym, &desc, o) }.unwrap();
        assert_eq!(strtol.is_direct(), LE);
        let (_, e) = strtol
            .call_errno(&[
                c"99999999999999999999999".into(),
                memscope::Address::NULL.into(),
                10.into(),
            ])
            .unwrap();
        assert_eq!(e, 34); // ERANGE
        let (r, e) = strtol
            .call_errno(&[c"12".into(), memscope::Address::NULL.into(), 10.into()])
            .unwrap();
        assert_eq!((r, e), (Some(Value::I64(12)), 0));
        // Closed after the library's session closed.
        let s = Session::shared();
        // SAFETY: our own test library has no initialisers.
        let lib = unsafe { Library::open(testlib_path(), &s) }.unwrap();
        let f = link(
            &lib,
            "fc_u32",
            Some(c::UINT32_T),
            &[c::UINT32_T, c::UINT32_T],
        );
        assert_eq!(f.call_as::<u32>(&[1u32.into(), 1u32.into()]).unwrap(), 4);
        s.close().unwrap();
        assert!(matches!(
            f.call_as::<u32>(&[1u32.into(), 1u32.into()]),
            Err(Error::Closed)
        ));
    }
}
