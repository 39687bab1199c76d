//! `bind!` (issue 16): typed function-pointer calls, the argument kinds and
//! what each one guarantees for the duration of the call.

use memscope::prelude::*;
use std::ffi::CStr;

bind! {
    /// Parts of libc, with every argument kind.
    struct Libc {
        fn abs(x: i32) -> i32;
        fn absolute(x: i32) -> i32 = "abs";
        fn strlen(s: &str) -> usize;
        fn strlen_c(s: &CStr) -> usize = "strlen";
        fn strlen_seg(s: &Segment<'_>) -> usize = "strlen";
        fn memset(dst: &mut Segment<'_>, byte: i32, n: usize) -> Address;
        fn qsort(base: &mut Segment<'_>, n: usize, size: usize, cmp: &UpcallStub);
        fn getpid() -> i32;
    }
}

fn libc() -> Libc {
    // SAFETY: the declarations match glibc's prototypes.
    unsafe { Libc::load(&Library::libc().unwrap()) }.unwrap()
}

#[test]
fn bind_calls_c_with_scalars_and_renamed_symbols() {
    let l = libc();
    assert_eq!(l.abs(-7).unwrap(), 7);
    assert_eq!(l.absolute(i32::MIN + 1).unwrap(), i32::MAX);
    assert_eq!(l.getpid().unwrap() as u32, std::process::id());
}

#[test]
fn bind_passes_strings_and_refuses_interior_nul() {
    let l = libc();
    assert_eq!(l.strlen("hello").unwrap(), 5);
    assert_eq!(l.strlen("").unwrap(), 0);
    assert_eq!(l.strlen_c(c"four").unwrap(), 4);
    assert!(matches!(l.strlen("a\0b"), Err(Error::InvalidString { .. })));
}

#[test]
fn bind_segment_arguments_are_checked_and_acquired() {
    let l = libc();
    let arena = Arena::shared();
    let text = arena.allocate_cstring("abc").unwrap();
    assert_eq!(l.strlen_seg(&text).unwrap(), 3);
    let mut buf = arena.allocate(16, 1).unwrap();
    l.memset(&mut buf, 0x11, 16).unwrap();
    assert_eq!(buf.get::<u8>(15).unwrap(), 0x11);
    // A read-only view may not be handed to C as writable memory.
    let mut ro = buf.as_read_only();
    assert_eq!(l.memset(&mut ro, 0, 16).unwrap_err(), Error::ReadOnly);
    // A segment of a closed session never reaches C.
    let closing = Arena::shared();
    let dead = closing.allocate_cstring("gone").unwrap();
    closing.close().unwrap();
    assert_eq!(l.strlen_seg(&dead).unwrap_err(), Error::Closed);
}

#[test]
fn bind_stub_arguments_are_callable_for_the_call() {
    let l = libc();
    let s = Session::shared();
    let cmp = Linker::native()
        .upcall_typed(
            |a: Address, b: Address| {
                // SAFETY: qsort passes pointers to two i32 elements of the array.
                let (x, y) = unsafe { (*a.as_ptr::<i32>(), *b.as_ptr::<i32>()) };
                x.cmp(&y) as i32
            },
            &s,
        )
        .unwrap();
    let arena = Arena::confined();
    let mut arr = arena.allocate_copy(&[5i32, -1, 3, 9, 0]).unwrap();
    l.qsort(&mut arr, 5, 4, &cmp).unwrap();
    let mut out = [0i32; 5];
    arr.copy_to_slice(0, &mut out).unwrap();
    assert_eq!(out, [-1, 0, 3, 5, 9]);
    // The stub's session closed: the call is refused before C runs.
    s.close().unwrap();
    assert_eq!(l.qsort(&mut arr, 5, 4, &cmp).unwrap_err(), Error::Closed);
}

#[test]
fn bind_load_reports_a_missing_symbol() {
    bind! {
        struct Missing {
            fn memscope_no_such_function(x: i32) -> i32;
        }
    }
    // SAFETY: never called: loading fails.
    let r = unsafe { Missing::load(&Library::libc().unwrap()) };
    assert!(matches!(r, Err(Error::SymbolNotFound { .. })));
}

#[test]
fn bind_holds_a_segment_arguments_session_open_during_the_call() {
    let l = libc();
    let arena = Arena::shared();
    let data_session = arena.session().clone();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let stub_session = Session::shared();
    let cmp = Linker::native()
        .upcall_typed(
            move |a: Address, b: Address| {
                // Inside C: the array's session is acquired by the call.
                seen2.lock().unwrap().push(data_session.close());
                // SAFETY: qsort passes pointers to two i32 elements of the array.
                let (x, y) = unsafe { (*a.as_ptr::<i32>(), *b.as_ptr::<i32>()) };
                x.cmp(&y) as i32
            },
            &stub_session,
        )
        .unwrap();
    let mut arr = arena.allocate_copy(&[2i32, 1]).unwrap();
    l.qsort(&mut arr, 2, 4, &cmp).unwrap();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|r| matches!(r, Err(Error::Busy { .. }))),
        "{seen:?}"
    );
    assert_eq!(arr.get_at_index::<i32>(0).unwrap(), 1);
    arena.close().unwrap(); // released after the call
}

/// Builds `tests/c/testlib.c` once per test binary, into target/tmp.
fn testlib_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).unwrap();
        let out = dir.join(format!("libmemscope_bind_{}.so", std::process::id()));
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c/testlib.c");
        let st = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-shared", "-fPIC", "-O2", "-pthread", "-o"])
            .arg(&out)
            .arg(src)
            .status()
            .expect("a C compiler (cc) is needed for the bind tests");
        assert!(st.success(), "compiling {src} failed");
        out.to_str().unwrap().to_owned()
    })
}

c_struct! {
    /// Two members with padding between them.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Pair { a: i32, b: f64 }
}

type BinOp = extern "C" fn(i32, i32) -> i32;

bind! {
    /// testlib.c, for the forms beyond plain values.
    struct Test {
        fn set_errno_to(e: i32) -> (i32, Errno);
        fn set_errno_void(e: i32) -> Errno = "set_errno_to";
        fn add(a: i32, b: i32) -> (i32, Errno);
        fn vsum(n: i32, ...) -> f64;
        fn vsum_long(n: i32, ...) -> i64;
        fn apply_int(f: &Callback<BinOp>, a: i32, b: i32) -> i32;
        fn apply_int_stub(f: &UpcallStub, a: i32, b: i32) -> i32 = "apply_int";
        fn apply_int_twice(f: &Callback<BinOp>, a: i32, b: i32) -> i32;
        fn greet(name: &str) -> CStrPtr;
        fn c_free(p: CStrPtr);
        fn id_pair(p: &Segment<'_>) -> CPtr<Pair> = "id_ptr";
        fn id_cptr(p: CPtr<Pair>) -> CPtr<Pair> = "id_ptr";
        fn id_cstr(p: &CStr) -> &CStr = "id_ptr";
        fn id_cstr_opt(p: Address) -> Option<&CStr> = "id_ptr";
    }
}

use memscope::linker::{CPtr, CStrPtr, Callback, Errno};

fn test_in(session: &Session) -> Test {
    // SAFETY: our own test library has no initialisers.
    let lib = unsafe { Library::open(testlib_path(), session) }.unwrap();
    // SAFETY: the declarations match testlib.c (`id_ptr` returns its
    // argument, so the `&CStr` results are the caller's own strings).
    unsafe { Test::load(&lib) }.unwrap()
}

#[test]
fn bind_errno_is_cleared_before_and_captured_after_the_call() {
    let t = test_in(&Session::global());
    assert_eq!(t.set_errno_to(34).unwrap(), (-1, Errno(34)));
    assert_eq!(t.set_errno_void(7).unwrap(), Errno(7));
    // errno is left at 7 by the last call: a function that does not touch
    // it reports 0, because the binding cleared it first.
    assert_eq!(t.add(2, 3).unwrap(), (5, Errno(0)));
    assert!(!Errno(0).is_set() && Errno(34).is_set());
    assert!(Errno(2).to_string().starts_with("errno 2: "));
    // libc's own idiom: strtol reports overflow through errno only.
    bind! {
        struct Strtol { fn strtol(s: &str, end: Address, base: i32) -> (i64, Errno); }
    }
    // SAFETY: libc's strtol.
    let l = unsafe { Strtol::load(&Library::libc().unwrap()) }.unwrap();
    assert_eq!(
        l.strtol("-99999999999999999999", Address::NULL, 10)
            .unwrap(),
        (i64::MIN, Errno(34))
    );
    assert_eq!(l.strtol("123", Address::NULL, 10).unwrap(), (123, Errno(0)));
}

#[test]
fn bind_variadic_calls_promote_as_c_does() {
    let t = test_in(&Session::global());
    // double vsum(int n, ...): floats are promoted to double.
    assert_eq!(t.vsum(0, ()).unwrap(), 0.0);
    assert_eq!(t.vsum(1, (2.5f64,)).unwrap(), 2.5);
    assert_eq!(t.vsum(3, (1.0f64, 0.5f32, 0.25f64)).unwrap(), 1.75);
    let eight = (
        1.0f64, 2.0f64, 3.0f64, 4.0f64, 5.0f64, 6.0f64, 7.0f64, 8.5f32,
    );
    assert_eq!(t.vsum(8, eight).unwrap(), 36.5);
    assert_eq!(
        t.vsum_long(4, (1i64, -2i64, 1i64 << 40, 7i64)).unwrap(),
        (1i64 << 40) + 6
    );
    // libc: two fixed arguments and output pointers; three fixed arguments
    // with every promoted kind; four fixed (the first variadic int declared
    // as a fixed one: the same on this ABI).
    bind! {
        struct Fmt {
            fn sscanf(s: &str, format: &CStr, ...) -> i32;
            fn snprintf(buf: &mut Segment<'_>, n: usize, format: &CStr, ...) -> i32;
            fn snprintf4(buf: &mut Segment<'_>, n: usize, format: &CStr, x: i32, ...) -> i32
                = "snprintf";
        }
    }
    // SAFETY: libc's prototypes.
    let f = unsafe { Fmt::load(&Library::libc().unwrap()) }.unwrap();
    let arena = Arena::confined();
    let mut i = arena.allocate_value(0i32).unwrap();
    let mut d = arena.allocate_value(0f64).unwrap();
    assert_eq!(f.sscanf("12 3.5", c"%d %lf", (&mut i, &mut d)).unwrap(), 2);
    assert_eq!(
        (i.get::<i32>(0).unwrap(), d.get::<f64>(0).unwrap()),
        (12, 3.5)
    );
    let mut buf = arena.allocate(64, 1).unwrap();
    let n = f
        .snprintf(
            &mut buf,
            64,
            c"%d|%u|%hd|%c|%d|%.1f|%s|%s",
            (-1i8, 7u32, -3i16, b'z', true, 0.5f32, "str", c"cstr"),
        )
        .unwrap();
    assert_eq!(buf.get_string(0).unwrap(), "-1|7|-3|z|1|0.5|str|cstr");
    assert_eq!(n, 24);
    let n = f
        .snprintf4(&mut buf, 64, c"%d %lu %lld", 5, (u64::MAX, i64::MIN))
        .unwrap();
    assert_eq!(
        buf.get_string(0).unwrap(),
        format!("5 {} {}", u64::MAX, i64::MIN)
    );
    assert_eq!(n as usize, buf.get_string(0).unwrap().len());
    // A string with an interior NUL in the variadic part never reaches C.
    assert!(matches!(
        f.snprintf(&mut buf, 64, c"%s", ("a\0b",)),
        Err(Error::InvalidString { .. })
    ));
    // A closed segment in the variadic part neither.
    let other = Arena::shared();
    let mut gone = other.allocate_value(0i32).unwrap();
    other.close().unwrap();
    assert_eq!(
        f.sscanf("1", c"%d", (&mut gone,)).unwrap_err(),
        Error::Closed
    );
}

#[test]
fn bind_typed_callbacks_check_their_signature_and_report_panics() {
    let t = test_in(&Session::global());
    let s = Session::shared();
    let mul = Callback::<BinOp>::new(|a: i32, b: i32| a * b, &s).unwrap();
    assert_eq!(t.apply_int(&mul, 6, 7).unwrap(), 42);
    let base = 100;
    let capturing = Callback::<BinOp>::new(move |a: i32, b: i32| base + a - b, &s).unwrap();
    assert_eq!(t.apply_int_twice(&capturing, 5, 2).unwrap(), 206);
    assert!(!capturing.stub().address().is_null());
    // A panic in the callback: C got 0 and finished, the call reports it.
    let boom = Callback::<BinOp>::new(
        |a: i32, _: i32| -> i32 {
            if a < 0 {
                panic!("negative {a}")
            }
            a
        },
        &s,
    )
    .unwrap();
    assert_eq!(
        t.apply_int(&boom, -1, 0).unwrap_err(),
        Error::UpcallPanicked {
            message: "negative -1".into()
        }
    );
    // Reported once: the next call is clean.
    assert_eq!(t.apply_int(&boom, 3, 0).unwrap(), 3);
    // The same through an untyped stub argument, stateless and capturing.
    let stub = Linker::native()
        .upcall_typed(|_: i32, _: i32| -> i32 { panic!("untyped") }, &s)
        .unwrap();
    assert_eq!(
        t.apply_int_stub(&stub, 1, 2).unwrap_err(),
        Error::UpcallPanicked {
            message: "untyped".into()
        }
    );
    let k = 3;
    let stub = Linker::native()
        .upcall_typed(
            move |a: i32, _: i32| -> i32 {
                assert!(a < k, "too big");
                a
            },
            &s,
        )
        .unwrap();
    assert_eq!(t.apply_int_stub(&stub, 1, 0).unwrap(), 1);
    assert!(matches!(
        t.apply_int_stub(&stub, 5, 0),
        Err(Error::UpcallPanicked { .. })
    ));
    // A callback of a closed session is refused before C runs.
    s.close().unwrap();
    assert_eq!(t.apply_int(&mul, 1, 2).unwrap_err(), Error::Closed);
}

#[test]
fn bind_string_and_pointer_results() {
    let t = test_in(&Session::global());
    // A C-allocated string: the address, read unsafely, freed by C.
    let g = t.greet("bind").unwrap();
    assert!(!g.is_null());
    assert_eq!(
        // SAFETY: greet returns a malloc'd NUL-terminated string, freed below.
        unsafe { g.to_string_lossy() }.as_deref(),
        Some("hello, bind")
    );
    // SAFETY: as above.
    assert_eq!(unsafe { g.read() }.unwrap().to_bytes().len(), 11);
    t.c_free(g).unwrap();
    // `&CStr` / `Option<&CStr>` results (id_ptr hands the pointer back).
    assert_eq!(t.id_cstr(c"same").unwrap(), c"same");
    assert_eq!(
        t.id_cstr_opt(Address::from_ptr(c"x".as_ptr())).unwrap(),
        Some(c"x")
    );
    assert_eq!(t.id_cstr_opt(Address::NULL).unwrap(), None);
    bind! {
        struct Null { fn id_ptr(p: Address) -> &CStr; }
    }
    // SAFETY: our own test library has no initialisers.
    let lib = unsafe { Library::open(testlib_path(), &Session::global()) }.unwrap();
    // SAFETY: testlib's id_ptr; the only string is NULL, which is refused.
    let n = unsafe { Null::load(&lib) }.unwrap();
    assert_eq!(n.id_ptr(Address::NULL).unwrap_err(), Error::NullAddress);
    // A pointer to a layout: typed, read unsafely or as a segment.
    let arena = Arena::confined();
    let pair = arena.allocate_from(&Pair { a: -4, b: 0.75 }).unwrap();
    let p = t.id_pair(&pair).unwrap();
    assert_eq!(p.address(), pair.address());
    // SAFETY: the pair is alive in the arena.
    assert_eq!(unsafe { p.read() }, Some(Pair { a: -4, b: 0.75 }));
    let s = Session::confined();
    // SAFETY: as above (the arena outlives `s`'s use here).
    let seg = unsafe { p.as_segment(&s) }.unwrap();
    assert_eq!(seg.len(), 16);
    assert_eq!(seg.get::<f64>(8).unwrap(), 0.75);
    assert_eq!(t.id_cptr(p).unwrap(), p);
    let null = t.id_cptr(CPtr::new(Address::NULL)).unwrap();
    // SAFETY: NULL is never read.
    assert_eq!(unsafe { null.read() }, None);
    assert_eq!(
        // SAFETY: NULL is refused before any access.
        unsafe { null.as_segment(&s) }.unwrap_err(),
        Error::NullAddress
    );
    let odd = CPtr::<Pair>::new(Address::new(pair.address().get() + 1));
    assert!(matches!(
        // SAFETY: refused before any access.
        unsafe { odd.as_segment(&s) },
        Err(Error::Misaligned { .. })
    ));
}

#[test]
fn bind_calls_fail_with_closed_once_the_library_session_closes() {
    let s = Session::shared();
    let t = test_in(&s);
    let cb_session = Session::shared();
    let add = Callback::<BinOp>::new(|a: i32, b: i32| a + b, &cb_session).unwrap();
    assert_eq!(t.add(1, 2).unwrap(), (3, Errno(0)));
    assert_eq!(t.apply_int(&add, 1, 2).unwrap(), 3);
    s.close().unwrap();
    assert_eq!(t.add(1, 2).unwrap_err(), Error::Closed);
    assert_eq!(t.vsum(1, (1.0f64,)).unwrap_err(), Error::Closed);
    assert_eq!(t.apply_int(&add, 1, 2).unwrap_err(), Error::Closed);
    // The binding still holds the library mapped: dropping it unloads.
    drop(t);
}

#[test]
fn bind_a_call_in_progress_keeps_the_library_mapped_across_a_close() {
    // The library's session closes from inside a callback, while C is
    // running: the call returns normally (the code stays mapped), and
    // the next call is refused.
    let s = Session::shared();
    let t = test_in(&s);
    let s2 = s.clone();
    let cbs = Session::shared();
    let closing = Callback::<BinOp>::new(
        move |a: i32, b: i32| {
            let _ = s2.close(); // the second time: already closed
            a + b
        },
        &cbs,
    )
    .unwrap();
    assert_eq!(t.apply_int_twice(&closing, 2, 3).unwrap(), 10);
    assert!(!s.is_alive());
    assert_eq!(
        t.apply_int_twice(&closing, 2, 3).unwrap_err(),
        Error::Closed
    );
}

/// Counts this thread's allocations (the tests run on many threads).
struct Counting;

std::thread_local! {
    static ALLOCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const-init
// thread-local without a destructor (it never allocates).
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: forwarded.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(|c| c.get());
    f();
    ALLOCS.with(|c| c.get()) - before
}

c_struct! {
    /// testlib's `Complex`.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Complex { re: f64, im: f64 }
}

#[test]
fn struct_by_value_calls_allocate_nothing() {
    bind! {
        struct Swap { fn cswap(c: Complex) -> Complex; }
    }
    // SAFETY: our own test library has no initialisers.
    let lib = unsafe { Library::open(testlib_path(), &Session::global()) }.unwrap();
    // SAFETY: `Complex cswap(Complex)`.
    let b = unsafe { Swap::load(&lib) }.unwrap();
    let cl = MemoryLayout::c_struct([c::DOUBLE, c::DOUBLE]).unwrap();
    let sym = lib.lookup("cswap").unwrap();
    // SAFETY: `Complex cswap(Complex)`.
    let d = unsafe {
        Linker::native().downcall(
            &sym,
            &FunctionDescriptor::of(Some(cl.clone()), &[cl]),
            DowncallOptions::default(),
        )
    }
    .unwrap();
    let bytes = [1.0f64.to_ne_bytes(), 2.0f64.to_ne_bytes()].concat();
    // Warm up (the first call_as checks the result type's layout).
    assert_eq!(
        d.call_as::<Complex>(&[bytes.as_slice().into()]).unwrap(),
        Complex { re: 2.0, im: 1.0 }
    );
    let mut h = memscope::segment::HeapSegment::new(16, 8).unwrap();
    let mut out = h.as_segment_mut();
    let n = allocations_in(|| {
        for _ in 0..100 {
            let r = b.cswap(Complex { re: 1.0, im: 2.0 }).unwrap();
            assert_eq!(r, Complex { re: 2.0, im: 1.0 });
            let r = d.call_as::<Complex>(&[bytes.as_slice().into()]).unwrap();
            assert_eq!(r.re, 2.0);
            d.call_into(&[memscope::linker::Arg::Bytes(&bytes)], &mut out)
                .unwrap();
        }
    });
    assert_eq!(n, 0, "struct-by-value calls allocated");
    assert_eq!(out.get::<f64>(8).unwrap(), 1.0);
    // The counter works: a Value::Struct result allocates its members.
    let n = allocations_in(|| {
        d.call_with(&[bytes.as_slice().into()]).unwrap();
    });
    assert!(n > 0);
}
