//! Cross-checks memscope's C layouts against the platform C compiler: a C
//! program generated from the shape table below prints `sizeof`,
//! `_Alignof` and `offsetof` for every shape; memscope must agree on every
//! number. Needs only `cc` on the PATH (compiled into `target/tmp`).
#![cfg(not(miri))]

use memscope::layout::{MemoryLayout, c};
use memscope::marshal::{Marshal, Value};
use memscope::segment::Address;
use memscope::{c_struct, c_union};
use std::process::Command;

type R = memscope::Result<MemoryLayout>;

c_struct! {
    /// Mirrors `struct rs_tagged`.
    #[derive(Debug, PartialEq)]
    pub struct Tagged { tag: u8, at: Pt, w: f64, flags: u16 }
}
c_struct! {
    /// Mirrors `struct rs_pt`.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct Pt { x: i32, y: i32 }
}
c_struct! {
    /// Mirrors `struct rs_arr`.
    pub struct Arr { c: i8, v: [i16; 3], p: memscope::segment::Address, z: bool }
}
c_union! {
    /// Mirrors `union rs_num`.
    pub union Num { c: [u8; 5], i: i32, d: f64 }
}

/// One shape: a C type (declared with `typedef … T;`), the member paths to
/// `offsetof`, and memscope's layout of it.
struct Shape {
    name: &'static str,
    c_decl: &'static str,
    paths: &'static [&'static str],
    layout: fn() -> R,
}

fn s(m: impl IntoIterator<Item = MemoryLayout>) -> R {
    MemoryLayout::c_struct(m)
}
fn seq(n: usize, e: MemoryLayout) -> MemoryLayout {
    MemoryLayout::sequence(n, e).unwrap()
}
fn u(m: impl IntoIterator<Item = MemoryLayout>) -> R {
    MemoryLayout::union_of(m)
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "point",
        c_decl: "struct { int x; int y; }",
        paths: &["x", "y"],
        layout: || s([c::INT.with_name("x"), c::INT.with_name("y")]),
    },
    Shape {
        name: "char_double",
        c_decl: "struct { char c; double d; }",
        paths: &["c", "d"],
        layout: || s([c::CHAR.with_name("c"), c::DOUBLE.with_name("d")]),
    },
    Shape {
        name: "double_char_trailing",
        c_decl: "struct { double d; char c; }",
        paths: &["d", "c"],
        layout: || s([c::DOUBLE.with_name("d"), c::CHAR.with_name("c")]),
    },
    Shape {
        name: "char_pointer",
        c_decl: "struct { char c; void *p; }",
        paths: &["c", "p"],
        layout: || s([c::CHAR.with_name("c"), c::POINTER.with_name("p")]),
    },
    Shape {
        name: "char_short_char_int",
        c_decl: "struct { char a; short b; char c; int d; }",
        paths: &["a", "b", "c", "d"],
        layout: || {
            s([
                c::CHAR.with_name("a"),
                c::SHORT.with_name("b"),
                c::CHAR.with_name("c"),
                c::INT.with_name("d"),
            ])
        },
    },
    Shape {
        name: "char_longlong_char",
        c_decl: "struct { char c; long long ll; char c2; }",
        paths: &["c", "ll", "c2"],
        layout: || {
            s([
                c::CHAR.with_name("c"),
                c::LONG_LONG.with_name("ll"),
                c::CHAR.with_name("c2"),
            ])
        },
    },
    Shape {
        name: "short_char",
        c_decl: "struct { short s; char c; }",
        paths: &["s", "c"],
        layout: || s([c::SHORT.with_name("s"), c::CHAR.with_name("c")]),
    },
    Shape {
        name: "chars3_int",
        c_decl: "struct { char c[3]; int i; }",
        paths: &["c", "c[2]", "i"],
        layout: || s([seq(3, c::CHAR).with_name("c"), c::INT.with_name("i")]),
    },
    Shape {
        name: "ints5_char",
        c_decl: "struct { int a[5]; char c; }",
        paths: &["a[4]", "c"],
        layout: || s([seq(5, c::INT).with_name("a"), c::CHAR.with_name("c")]),
    },
    Shape {
        name: "nested",
        c_decl: "struct { char t; struct { char a; double b; } in; char u; }",
        paths: &["t", "in", "in.a", "in.b", "u"],
        layout: || {
            let inner = s([c::CHAR.with_name("a"), c::DOUBLE.with_name("b")])?;
            s([
                c::CHAR.with_name("t"),
                inner.with_name("in"),
                c::CHAR.with_name("u"),
            ])
        },
    },
    Shape {
        name: "array_of_structs",
        c_decl: "struct { short h; struct { char t; int c; } b[4]; }",
        paths: &["h", "b", "b[3]", "b[3].c", "b[1].t"],
        layout: || {
            let inner = s([c::CHAR.with_name("t"), c::INT.with_name("c")])?;
            s([c::SHORT.with_name("h"), seq(4, inner).with_name("b")])
        },
    },
    Shape {
        name: "union_chars5_int",
        c_decl: "union { char c[5]; int i; }",
        paths: &["c", "i"],
        layout: || u([seq(5, c::CHAR).with_name("c"), c::INT.with_name("i")]),
    },
    Shape {
        name: "union_char_double_short",
        c_decl: "union { char c; double d; short s; }",
        paths: &["c", "d", "s"],
        layout: || {
            u([
                c::CHAR.with_name("c"),
                c::DOUBLE.with_name("d"),
                c::SHORT.with_name("s"),
            ])
        },
    },
    Shape {
        name: "union_of_structs",
        c_decl: "union { struct { int a; int b; } p; struct { char c; double d; } q; }",
        paths: &["p", "p.b", "q.c", "q.d"],
        layout: || {
            let p = s([c::INT.with_name("a"), c::INT.with_name("b")])?;
            let q = s([c::CHAR.with_name("c"), c::DOUBLE.with_name("d")])?;
            u([p.with_name("p"), q.with_name("q")])
        },
    },
    Shape {
        name: "struct_with_union",
        c_decl: "struct { char tag; union { int i; double d; } v; char after; }",
        paths: &["tag", "v", "v.i", "v.d", "after"],
        layout: || {
            let v = u([c::INT.with_name("i"), c::DOUBLE.with_name("d")])?;
            s([
                c::CHAR.with_name("tag"),
                v.with_name("v"),
                c::CHAR.with_name("after"),
            ])
        },
    },
    Shape {
        name: "packed_char_int",
        c_decl: "struct __attribute__((packed)) { char c; int i; }",
        paths: &["c", "i"],
        layout: || MemoryLayout::packed([c::CHAR.with_name("c"), c::INT.with_name("i")]),
    },
    Shape {
        name: "packed_char_double_short",
        c_decl: "struct __attribute__((packed)) { char c; double d; short s; }",
        paths: &["c", "d", "s"],
        layout: || {
            MemoryLayout::packed([
                c::CHAR.with_name("c"),
                c::DOUBLE.with_name("d"),
                c::SHORT.with_name("s"),
            ])
        },
    },
    Shape {
        name: "packed_with_nested_unpacked",
        c_decl: "struct __attribute__((packed)) { char c; struct { char a; int b; } s; short t; }",
        paths: &["c", "s", "s.b", "t"],
        layout: || {
            let inner = s([c::CHAR.with_name("a"), c::INT.with_name("b")])?;
            MemoryLayout::packed([
                c::CHAR.with_name("c"),
                inner.with_name("s"),
                c::SHORT.with_name("t"),
            ])
        },
    },
    Shape {
        name: "packed_array",
        c_decl: "struct __attribute__((packed)) { char c; int a[3]; char d; }",
        paths: &["c", "a", "a[2]", "d"],
        layout: || {
            MemoryLayout::packed([
                c::CHAR.with_name("c"),
                seq(3, c::INT).with_name("a"),
                c::CHAR.with_name("d"),
            ])
        },
    },
    Shape {
        name: "packed_union",
        c_decl: "union __attribute__((packed)) { char c; int i; double d; }",
        paths: &["c", "i", "d"],
        layout: || {
            u([
                c::CHAR.with_name("c").unaligned(),
                c::INT.with_name("i").unaligned(),
                c::DOUBLE.with_name("d").unaligned(),
            ])
        },
    },
    Shape {
        name: "stdint_extremes",
        c_decl: "struct { int8_t a; int16_t b; int32_t c; int64_t d; uint8_t e; uint64_t f; uint16_t g; }",
        paths: &["a", "b", "c", "d", "e", "f", "g"],
        layout: || {
            s([
                c::INT8_T.with_name("a"),
                c::INT16_T.with_name("b"),
                c::INT32_T.with_name("c"),
                c::INT64_T.with_name("d"),
                c::UINT8_T.with_name("e"),
                c::UINT64_T.with_name("f"),
                c::UINT16_T.with_name("g"),
            ])
        },
    },
    Shape {
        name: "float_double_float",
        c_decl: "struct { float f; double d; float g; }",
        paths: &["f", "d", "g"],
        layout: || {
            s([
                c::FLOAT.with_name("f"),
                c::DOUBLE.with_name("d"),
                c::FLOAT.with_name("g"),
            ])
        },
    },
    Shape {
        name: "bool_i64_bool",
        c_decl: "struct { bool b; int64_t x; bool c; }",
        paths: &["b", "x", "c"],
        layout: || {
            s([
                c::BOOL.with_name("b"),
                c::INT64_T.with_name("x"),
                c::BOOL.with_name("c"),
            ])
        },
    },
    Shape {
        name: "size_t_char",
        c_decl: "struct { size_t n; char c; }",
        paths: &["n", "c"],
        layout: || s([c::SIZE_T.with_name("n"), c::CHAR.with_name("c")]),
    },
    Shape {
        name: "long_char_long",
        c_decl: "struct { long l; char c; unsigned long m; }",
        paths: &["l", "c", "m"],
        layout: || {
            s([
                c::LONG.with_name("l"),
                c::CHAR.with_name("c"),
                c::ULONG.with_name("m"),
            ])
        },
    },
    Shape {
        name: "alignas16_member",
        c_decl: "struct { char c; _Alignas(16) int x; }",
        paths: &["c", "x"],
        layout: || {
            s([
                c::CHAR.with_name("c"),
                c::INT.with_align(16)?.with_name("x"),
            ])
        },
    },
    Shape {
        name: "two_chars",
        c_decl: "struct { char c; char d; }",
        paths: &["c", "d"],
        layout: || s([c::CHAR.with_name("c"), c::CHAR.with_name("d")]),
    },
    Shape {
        name: "i64_i32_trailing",
        c_decl: "struct { int64_t x; int32_t y; }",
        paths: &["x", "y"],
        layout: || s([c::INT64_T.with_name("x"), c::INT32_T.with_name("y")]),
    },
    Shape {
        name: "deep_nesting",
        c_decl: "struct { char a; struct { short b; struct { char c; long long d; } e[2]; } f[3]; }",
        paths: &[
            "a",
            "f",
            "f[2]",
            "f[2].b",
            "f[2].e[1]",
            "f[2].e[1].d",
            "f[1].e[0].c",
        ],
        layout: || {
            let e = s([c::CHAR.with_name("c"), c::LONG_LONG.with_name("d")])?;
            let f = s([c::SHORT.with_name("b"), seq(2, e).with_name("e")])?;
            s([c::CHAR.with_name("a"), seq(3, f).with_name("f")])
        },
    },
    Shape {
        name: "matrix_2x3",
        c_decl: "struct { char c; int m[2][3]; }",
        paths: &["c", "m", "m[1]", "m[1][2]"],
        layout: || {
            s([
                c::CHAR.with_name("c"),
                seq(2, seq(3, c::INT)).with_name("m"),
            ])
        },
    },
    Shape {
        name: "char_floats_char",
        c_decl: "struct { char c; float f[3]; char d; }",
        paths: &["c", "f[1]", "d"],
        layout: || {
            s([
                c::CHAR.with_name("c"),
                seq(3, c::FLOAT).with_name("f"),
                c::CHAR.with_name("d"),
            ])
        },
    },
    Shape {
        name: "union_of_arrays",
        c_decl: "union { short s[3]; char c[7]; }",
        paths: &["s", "c"],
        layout: || {
            u([
                seq(3, c::SHORT).with_name("s"),
                seq(7, c::CHAR).with_name("c"),
            ])
        },
    },
    Shape {
        name: "ptr_char_ptr",
        c_decl: "struct { void *p; char c; void *q; }",
        paths: &["p", "c", "q"],
        layout: || {
            s([
                c::POINTER.with_name("p"),
                c::CHAR.with_name("c"),
                c::POINTER.with_name("q"),
            ])
        },
    },
    Shape {
        name: "three_chars_u16",
        c_decl: "struct { char a, b, c; uint16_t d; }",
        paths: &["a", "b", "c", "d"],
        layout: || {
            s([
                c::CHAR.with_name("a"),
                c::CHAR.with_name("b"),
                c::CHAR.with_name("c"),
                c::UINT16_T.with_name("d"),
            ])
        },
    },
    Shape {
        name: "unsigned_variety",
        c_decl: "struct { unsigned char a; unsigned short b; unsigned int c; unsigned long long d; signed char e; }",
        paths: &["a", "b", "c", "d", "e"],
        layout: || {
            s([
                c::UCHAR.with_name("a"),
                c::USHORT.with_name("b"),
                c::UINT.with_name("c"),
                c::ULONG_LONG.with_name("d"),
                c::SCHAR.with_name("e"),
            ])
        },
    },
    Shape {
        name: "struct_of_union_array",
        c_decl: "struct { char k; union { char c; long long l; } v[2]; short z; }",
        paths: &["k", "v", "v[1]", "v[1].l", "z"],
        layout: || {
            let v = u([c::CHAR.with_name("c"), c::LONG_LONG.with_name("l")])?;
            s([
                c::CHAR.with_name("k"),
                seq(2, v).with_name("v"),
                c::SHORT.with_name("z"),
            ])
        },
    },
    Shape {
        name: "explicit_struct_of",
        c_decl: "struct { char c; char pad[3]; int i; }",
        paths: &["c", "i"],
        layout: || {
            MemoryLayout::struct_of([
                c::CHAR.with_name("c"),
                MemoryLayout::padding(3)?,
                c::INT.with_name("i"),
            ])
        },
    },
    // c_struct!/c_union! types: the macros' layouts against the C compiler.
    Shape {
        name: "macro_tagged",
        c_decl: "struct { uint8_t tag; struct { int32_t x; int32_t y; } at; double w; uint16_t flags; }",
        paths: &["tag", "at", "at.y", "w", "flags"],
        layout: || Ok(Tagged::layout()),
    },
    Shape {
        name: "macro_arr",
        c_decl: "struct { int8_t c; int16_t v[3]; void *p; bool z; }",
        paths: &["c", "v", "v[2]", "p", "z"],
        layout: || Ok(Arr::layout()),
    },
    Shape {
        name: "macro_union",
        c_decl: "union { uint8_t c[5]; int32_t i; double d; }",
        paths: &["c", "i", "d"],
        layout: || Ok(Num::layout()),
    },
];

/// The scalar C types against `memscope::layout::c`.
const SCALARS: &[(&str, MemoryLayout)] = &[
    ("char", c::CHAR),
    ("signed char", c::SCHAR),
    ("unsigned char", c::UCHAR),
    ("short", c::SHORT),
    ("unsigned short", c::USHORT),
    ("int", c::INT),
    ("unsigned int", c::UINT),
    ("long", c::LONG),
    ("unsigned long", c::ULONG),
    ("long long", c::LONG_LONG),
    ("unsigned long long", c::ULONG_LONG),
    ("size_t", c::SIZE_T),
    ("ptrdiff_t", c::SSIZE_T),
    ("intptr_t", c::INTPTR_T),
    ("uintptr_t", c::UINTPTR_T),
    ("void *", c::POINTER),
    ("float", c::FLOAT),
    ("double", c::DOUBLE),
    ("bool", c::BOOL),
    ("int8_t", c::INT8_T),
    ("uint16_t", c::UINT16_T),
    ("int32_t", c::INT32_T),
    ("uint64_t", c::UINT64_T),
];

/// Values: C assigns members of a zeroed `v` of a shape's type and prints
/// its bytes; memscope's `Value::decode` of those bytes must give `expected`.
struct ValueCase {
    shape: &'static str,
    init: &'static str,
    expected: fn() -> Value,
}

/// A C `char` value as memscope reads it (signedness per platform).
fn ch(x: i8) -> Value {
    match c::CHAR.value_kind() {
        Some(memscope::ValueKind::U8) => Value::U8(x as u8),
        _ => Value::I8(x),
    }
}

const VALUES: &[ValueCase] = &[
    ValueCase {
        shape: "char_double",
        init: "v.c = 100; v.d = 2.5;",
        expected: || Value::Struct(vec![ch(100), Value::F64(2.5)]),
    },
    ValueCase {
        shape: "nested",
        init: "v.t = 1; v.in.a = 2; v.in.b = -0.5; v.u = 3;",
        expected: || {
            Value::Struct(vec![
                ch(1),
                Value::Struct(vec![ch(2), Value::F64(-0.5)]),
                ch(3),
            ])
        },
    },
    ValueCase {
        shape: "array_of_structs",
        init: "v.h = -7; for (int k = 0; k < 4; k++) { v.b[k].t = (char)k; v.b[k].c = k * 1000 - 1; }",
        expected: || {
            Value::Struct(vec![
                Value::I16(-7),
                Value::Array(
                    (0..4)
                        .map(|k| Value::Struct(vec![ch(k as i8), Value::I32(k * 1000 - 1)]))
                        .collect(),
                ),
            ])
        },
    },
    ValueCase {
        shape: "packed_with_nested_unpacked",
        init: "v.c = 9; v.s.a = 8; v.s.b = -123456; v.t = 777;",
        expected: || {
            Value::Struct(vec![
                ch(9),
                Value::Struct(vec![ch(8), Value::I32(-123456)]),
                Value::I16(777),
            ])
        },
    },
    ValueCase {
        shape: "struct_with_union",
        init: "v.tag = 1; v.v.d = 3.25; v.after = 2;",
        expected: || {
            Value::Struct(vec![
                ch(1),
                Value::Bytes(3.25f64.to_ne_bytes().to_vec()),
                ch(2),
            ])
        },
    },
    ValueCase {
        shape: "stdint_extremes",
        init: "v.a = INT8_MIN; v.b = INT16_MAX; v.c = INT32_MIN; v.d = INT64_MAX; v.e = UINT8_MAX; v.f = UINT64_MAX; v.g = 0x1234;",
        expected: || {
            Value::Struct(vec![
                Value::I8(i8::MIN),
                Value::I16(i16::MAX),
                Value::I32(i32::MIN),
                Value::I64(i64::MAX),
                Value::U8(u8::MAX),
                Value::U64(u64::MAX),
                Value::U16(0x1234),
            ])
        },
    },
    ValueCase {
        shape: "bool_i64_bool",
        init: "v.b = true; v.x = -1; v.c = false;",
        expected: || Value::Struct(vec![Value::Bool(true), Value::I64(-1), Value::Bool(false)]),
    },
    ValueCase {
        shape: "deep_nesting",
        init: "v.a = 5; v.f[2].b = -2; v.f[2].e[1].c = 6; v.f[2].e[1].d = -9000000000LL;",
        expected: || {
            let e0 = Value::Struct(vec![ch(0), Value::I64(0)]);
            let f0 = Value::Struct(vec![
                Value::I16(0),
                Value::Array(vec![e0.clone(), e0.clone()]),
            ]);
            let f2 = Value::Struct(vec![
                Value::I16(-2),
                Value::Array(vec![
                    e0.clone(),
                    Value::Struct(vec![ch(6), Value::I64(-9_000_000_000)]),
                ]),
            ]);
            Value::Struct(vec![ch(5), Value::Array(vec![f0.clone(), f0, f2])])
        },
    },
    ValueCase {
        shape: "macro_tagged",
        init: "v.tag = 200; v.at.x = -1; v.at.y = 2; v.w = 0.125; v.flags = 0xbeef;",
        expected: || {
            Value::Struct(vec![
                Value::U8(200),
                Value::Struct(vec![Value::I32(-1), Value::I32(2)]),
                Value::F64(0.125),
                Value::U16(0xbeef),
            ])
        },
    },
    ValueCase {
        shape: "ptr_char_ptr",
        init: "v.p = (void *)0x1000; v.c = 7; v.q = (void *)0;",
        expected: || {
            Value::Struct(vec![
                Value::Address(Address::new(0x1000)),
                ch(7),
                Value::Address(Address::NULL),
            ])
        },
    },
];

fn shape_index(name: &str) -> usize {
    SHAPES
        .iter()
        .position(|s| s.name == name)
        .unwrap_or_else(|| panic!("no shape {name}"))
}

fn c_program() -> String {
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <stdbool.h>\n#include <string.h>\n\n",
    );
    for (i, sh) in SHAPES.iter().enumerate() {
        src += &format!("typedef {} T{i};\n", sh.c_decl);
    }
    src += "\nint main(void) {\n";
    for (i, sh) in SHAPES.iter().enumerate() {
        src += &format!(
            "    printf(\"{} %zu %zu\", sizeof(T{i}), _Alignof(T{i}));\n",
            sh.name
        );
        for p in sh.paths {
            src += &format!("    printf(\" %zu\", offsetof(T{i}, {p}));\n");
        }
        src += "    printf(\"\\n\");\n";
    }
    for (i, (ty, _)) in SCALARS.iter().enumerate() {
        src += &format!(
            "    printf(\"scalar{i} %zu %zu %d\\n\", sizeof({ty}), _Alignof({ty}), ({ty})-1 < ({ty})0);\n"
        );
    }
    for case in VALUES {
        let i = shape_index(case.shape);
        src += &format!(
            "    {{ T{i} v; memset(&v, 0, sizeof v); {}\n      printf(\"value {}\"); \
             for (size_t k = 0; k < sizeof v; k++) printf(\" %02x\", ((unsigned char *)&v)[k]); \
             printf(\"\\n\"); }}\n",
            case.init, case.shape
        );
    }
    src += "    return 0;\n}\n";
    src
}

/// The C program's stdout lines, compiled and run once per test process
/// (the tests run in parallel and share the output directory).
fn run_c() -> Vec<String> {
    static LINES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    LINES.get_or_init(compile_and_run).clone()
}

/// Compiles and runs the C program; its stdout lines.
fn compile_and_run() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("layout_c");
    std::fs::create_dir_all(&dir).unwrap();
    let c_file = dir.join("layouts.c");
    let exe = dir.join("layouts");
    std::fs::write(&c_file, c_program()).unwrap();
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&c_file)
        .output()
        .expect("this test needs a C compiler: `cc` on the PATH (or $CC)");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_shape_matches_the_c_compiler() {
    assert!(SHAPES.len() >= 25, "{} shapes", SHAPES.len());
    let lines = run_c();
    let mut checked = 0;
    for (sh, line) in SHAPES.iter().zip(&lines) {
        let mut it = line.split_whitespace();
        assert_eq!(it.next(), Some(sh.name));
        let nums: Vec<usize> = it.map(|n| n.parse().unwrap()).collect();
        let l = (sh.layout)().unwrap_or_else(|e| panic!("{}: {e}", sh.name));
        let mut mine = vec![l.size(), l.align()];
        for p in sh.paths {
            mine.push(
                l.byte_offset(p)
                    .unwrap_or_else(|e| panic!("{}: {p}: {e}", sh.name)),
            );
        }
        assert_eq!(
            mine, nums,
            "{} (`{}`): memscope [size, align, offsets {:?}] vs cc; memscope layout: {l}",
            sh.name, sh.c_decl, sh.paths
        );
        checked += 1;
    }
    assert_eq!(checked, SHAPES.len());
}

#[test]
fn scalar_types_match_the_c_compiler() {
    let lines = run_c();
    let scalar_lines = &lines[SHAPES.len()..SHAPES.len() + SCALARS.len()];
    assert_eq!(scalar_lines.len(), SCALARS.len());
    for (i, ((ty, l), line)) in SCALARS.iter().zip(scalar_lines).enumerate() {
        let nums: Vec<usize> = line
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect();
        let signed = l.value_kind().is_some_and(|k| {
            use memscope::ValueKind::*;
            matches!(k, I8 | I16 | I32 | I64 | F32 | F64)
        });
        assert_eq!(
            [l.size(), l.align(), usize::from(signed)],
            [nums[0], nums[1], nums[2]],
            "scalar{i} `{ty}`"
        );
    }
}

#[test]
fn values_written_by_c_decode_to_the_same_values() {
    let lines = run_c();
    let value_lines = &lines[SHAPES.len() + SCALARS.len()..];
    assert_eq!(value_lines.len(), VALUES.len());
    for (case, line) in VALUES.iter().zip(value_lines) {
        let mut it = line.split_whitespace();
        assert_eq!(it.next(), Some("value"));
        assert_eq!(it.next(), Some(case.shape));
        let bytes: Vec<u8> = it.map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
        let layout = (SHAPES[shape_index(case.shape)].layout)().unwrap();
        let got = Value::decode(&layout, &bytes).unwrap_or_else(|e| panic!("{}: {e}", case.shape));
        assert_eq!(got, (case.expected)(), "{}: bytes {bytes:02x?}", case.shape);
        // and memscope encodes the value back to C's bytes (padding zero here)
        let mut back = vec![0u8; bytes.len()];
        got.encode(&layout, &mut back).unwrap();
        assert_eq!(back, bytes, "{}: re-encoded", case.shape);
    }
    // the c_struct! type decodes C's bytes too
    let line = value_lines
        .iter()
        .find(|l| l.starts_with("value macro_tagged "))
        .unwrap();
    let bytes: Vec<u8> = line
        .split_whitespace()
        .skip(2)
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    assert_eq!(
        Tagged::decode(&bytes).unwrap(),
        Tagged {
            tag: 200,
            at: Pt { x: -1, y: 2 },
            w: 0.125,
            flags: 0xbeef
        }
    );
}
