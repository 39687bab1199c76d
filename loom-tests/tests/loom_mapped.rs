//! Loom models of the lifetimes of memory memscope does not allocate
//! (issue 13): mapped files (`Segment::map_file`), shared libraries
//! (`Library::open`, `lookup`, calls through `Symbol`s and `global`
//! segments) and executable code (`ExecutableSegment`).
//!
//! That memory belongs to memmap2 and libloading, which loom cannot see, so
//! under loom memscope shadows it (`src/shadow.rs`): the mapping's bytes,
//! the code range and a stand-in range per loaded library are loom cells
//! from the map/load to the unmap/unload, which writes them all and leaves
//! a tombstone. Every segment access reads or writes the cells of the bytes
//! it touches and every call through a symbol reads its code's cells just
//! before it calls, so a touch of unmapped/unloaded memory is a "use after
//! unmap/unload" panic or a loom causality violation, and a second unmap is
//! "freed twice". The calls are real: libc's `abs` (the direct fastcall
//! path) and `memccpy` (four arguments: libffi), `bind!`, `as_fn`, and
//! machine code from `ExecutableSegment`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use loom_tests::model;
use memscope::layout::c;
use memscope::linker::{
    DowncallOptions, ExecutableSegment, FunctionDescriptor, Library, Linker, Symbol,
};
use memscope::loom_shadow::{is_live, live_ranges};
use memscope::marshal::Value;
use memscope::segment::MapMode;
use memscope::session::broken::{Twin, with_twin};
use memscope::{Address, Error, Segment, Session, bind};

const LIBC: &str = "libc.so.6";

/// A 16-byte file for the mapping models (made once per test, outside the
/// model: loom replays the model many times).
fn data_file(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("memscope-loom-{tag}-{}", std::process::id()));
    std::fs::write(&p, [5u8; 16]).expect("temp file");
    p
}

/// `Ok(v)` is live memory, `Err(Closed)` the close came first; nothing else.
fn ok_or_closed<T>(r: Result<T, Error>, what: &str) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Error::Closed) => None,
        Err(e) => panic!("{what}: unexpected {e}"),
    }
}

/// Signals that main's close has returned (Release) / waits for it.
fn closed_flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}
fn wait_closed(f: &AtomicBool) {
    while !f.load(Ordering::Acquire) {
        thread::yield_now();
    }
}

// ----- map_file vs close ---------------------------------------------------------

/// One thread maps a file into a shared session and, if that worked, writes,
/// reads, loads and flushes the segment, while main closes the session.
/// `map_file` either returns `Ok` with the range mapped until the close (its
/// accesses then see live bytes or `Closed`, never unmapped ones), or
/// `Closed` with nothing left mapped; the range is unmapped exactly once (a
/// second unmap panics "freed twice"), and after the close no range is left.
fn map_file_vs_close(path: std::path::PathBuf) {
    model(move || {
        let before = live_ranges();
        let s = Session::shared();
        let s2 = s.clone();
        let path = path.clone();
        let t = thread::spawn(move || {
            // SAFETY: nothing else touches the model's temporary file.
            let r = unsafe { Segment::map_file(&path, 0, 16, MapMode::ReadWrite, &s2) };
            let mut seg = ok_or_closed(r, "map_file")?;
            let addr = seg.address().get();
            ok_or_closed(seg.set(3, 9u8), "set");
            if let Some(v) = ok_or_closed(seg.get::<u8>(0), "get") {
                assert_eq!(v, 5);
            }
            ok_or_closed(seg.load(), "load");
            ok_or_closed(seg.flush(), "flush");
            Some(addr)
        });
        s.close()
            .expect("no guards: the close drains the plain accesses");
        let mapped = t.join().unwrap();
        if let Some(addr) = mapped {
            assert!(
                !is_live(addr),
                "the session closed but the file is still mapped"
            );
        }
        assert_eq!(live_ranges(), before, "a mapping outlived its session");
    });
}

#[test]
fn loom_map_file_vs_close() {
    map_file_vs_close(data_file("map"));
}

#[test]
#[should_panic(expected = "freed twice")]
fn twin_map_file_unmapping_a_refused_mapping_is_caught() {
    let p = data_file("map-twice");
    with_twin(Twin::MapUnmapOnClosed, || map_file_vs_close(p));
}

#[test]
#[should_panic]
fn twin_mapped_segment_skipping_liveness_is_caught() {
    let p = data_file("map-skip");
    with_twin(Twin::SegmentSkipsLiveness, || map_file_vs_close(p));
}

// ----- Library::open / lookup vs close ----------------------------------------------

/// One thread opens libc on a shared session and looks up `abs`, while main
/// closes the session. `open` is `Ok` (loaded until the close and the last
/// symbol are gone) or `Closed` (nothing left loaded); `lookup` is `Ok` or
/// `Closed`; after the close `lookup` is `Closed` even while a symbol is
/// held, and the held symbol keeps the library loaded until it drops.
fn open_and_lookup_vs_close() {
    model(|| {
        let before = live_ranges();
        let s = Session::shared();
        let s2 = s.clone();
        let done = closed_flag();
        let done2 = done.clone();
        let t = thread::spawn(move || {
            // SAFETY: libc's initialisers are trusted (and already ran).
            let r = unsafe { Library::open(LIBC, &s2) };
            let Some(lib) = ok_or_closed(r, "open") else {
                return;
            };
            let token = lib.loom_shadow();
            let sym = ok_or_closed(lib.lookup("abs"), "lookup");
            wait_closed(&done2);
            assert_eq!(
                lib.lookup("abs").unwrap_err(),
                Error::Closed,
                "lookup after close"
            );
            match sym {
                Some(sym) => {
                    assert!(
                        is_live(token),
                        "a held symbol's library was unloaded at close"
                    );
                    assert!(sym.is_closed());
                    drop(sym);
                    assert!(!is_live(token), "the last symbol's drop did not unload");
                }
                None => assert!(!is_live(token), "the close did not unload"),
            }
        });
        s.close().unwrap();
        done.store(true, Ordering::Release);
        t.join().unwrap();
        assert_eq!(live_ranges(), before, "a library outlived its session");
    });
}

#[test]
fn loom_open_and_lookup_vs_close() {
    open_and_lookup_vs_close();
}

#[test]
#[should_panic(expected = "a held symbol's library was unloaded")]
fn twin_symbol_not_holding_its_library_is_caught_by_lookup() {
    with_twin(Twin::SymbolNoLibraryHold, open_and_lookup_vs_close);
}

#[test]
#[should_panic]
fn twin_close_unloading_under_symbols_is_caught_by_lookup() {
    with_twin(Twin::CloseUnloadsUnderSymbols, open_and_lookup_vs_close);
}

// ----- calls through symbols vs close ---------------------------------------------

bind! {
    /// libc's `abs` through `bind!` (`Bound::code`).
    struct Abs {
        fn abs(x: i32) -> i32;
    }
}

/// Main opens libc and links `abs` three ways (a `Downcall`: the direct
/// fastcall path; `bind!`; `Symbol::as_fn`) and `memccpy` (four
/// arguments: libffi), hands them to a thread and closes the session. The
/// thread calls each, the `abs` downcall through its three entries
/// (`call_as` with `Arg`s, `call` with `Value`s, `call_raw`): `Ok` or
/// `Closed`, never unloaded code. Once the close has returned it calls
/// again: the downcalls and the binding give
/// `Closed`, `as_fn` still runs (its symbol keeps the library loaded), and
/// the library unloads exactly once, when the last of them drops.
fn symbol_calls_vs_close() {
    model(|| {
        let before = live_ranges();
        let s = Session::shared();
        // SAFETY: libc's initialisers are trusted (and already ran).
        let lib = unsafe { Library::open(LIBC, &s) }.unwrap();
        let token = lib.loom_shadow();
        let abs = lib.lookup("abs").unwrap();
        let d = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
        // SAFETY: `int abs(int)`.
        let direct =
            unsafe { Linker::native().downcall(&abs, &d, DowncallOptions::default()) }.unwrap();
        assert!(direct.is_direct());
        let memccpy = lib.lookup("memccpy").unwrap();
        let d4 = FunctionDescriptor::of(
            Some(c::POINTER),
            &[c::POINTER, c::POINTER, c::INT, c::SIZE_T],
        );
        // SAFETY: `void *memccpy(void *, const void *, int, size_t)`.
        let ffi = unsafe { Linker::native().downcall(&memccpy, &d4, DowncallOptions::default()) }
            .unwrap();
        assert!(!ffi.is_direct());
        drop(memccpy);
        // SAFETY: `abs` is `int abs(int)`.
        let bound = unsafe { Abs::load(&lib) }.unwrap();
        drop(lib);
        let done = closed_flag();
        let done2 = done.clone();
        let t = thread::spawn(move || {
            let buf = [0u8; 4];
            let p = Address::from_ptr(buf.as_ptr());
            // memccpy(p, p, 0, 0) copies nothing and returns NULL.
            let call_ffi =
                || ffi.call_as::<Address>(&[p.into(), p.into(), 0i32.into(), 0u64.into()]);
            // The three downcall entries: `Arg`s, `Value`s, raw buffers.
            let call_value = || direct.call(&[Value::I32(-7)]);
            let call_raw = || {
                direct.call_raw(
                    |buf, off| {
                        buf[off[0]..off[0] + 4].copy_from_slice(&(-8i32).to_ne_bytes());
                        Ok(())
                    },
                    |ret| Ok(i32::from_ne_bytes([ret[0], ret[1], ret[2], ret[3]])),
                )
            };
            if let Some(v) = ok_or_closed(direct.call_as::<i32>(&[(-3).into()]), "direct") {
                assert_eq!(v, 3);
            }
            if let Some(v) = ok_or_closed(call_value(), "value call") {
                assert_eq!(v, Some(Value::I32(7)));
            }
            if let Some(v) = ok_or_closed(call_raw(), "raw call") {
                assert_eq!(v, 8);
            }
            if let Some(v) = ok_or_closed(call_ffi(), "libffi") {
                assert!(v.is_null());
            }
            if let Some(v) = ok_or_closed(bound.abs(-4), "bind") {
                assert_eq!(v, 4);
            }
            wait_closed(&done2);
            assert_eq!(
                direct.call_as::<i32>(&[(-3).into()]),
                Err(Error::Closed),
                "direct call after close"
            );
            assert_eq!(call_ffi(), Err(Error::Closed), "libffi call after close");
            assert_eq!(call_value(), Err(Error::Closed), "value call after close");
            assert_eq!(call_raw(), Err(Error::Closed), "raw call after close");
            assert_eq!(bound.abs(-4), Err(Error::Closed), "bind call after close");
            // SAFETY: `int abs(int)`; the symbol keeps libc loaded.
            let f = unsafe { abs.as_fn::<extern "C" fn(i32) -> i32>() }.unwrap();
            assert_eq!((f.get())(-5), 5);
            assert!(is_live(token), "unloaded while symbols are held");
            drop((direct, ffi, bound, abs));
        });
        s.close().unwrap();
        done.store(true, Ordering::Release);
        t.join().unwrap();
        assert!(!is_live(token), "never unloaded");
        assert_eq!(live_ranges(), before);
    });
}

#[test]
fn loom_symbol_calls_vs_close() {
    symbol_calls_vs_close();
}

#[test]
#[should_panic(expected = "call after close")]
fn twin_library_close_not_marking_is_caught() {
    with_twin(Twin::LibraryCloseNoMark, symbol_calls_vs_close);
}

#[test]
#[should_panic]
fn twin_symbol_not_holding_its_library_is_caught_by_calls() {
    with_twin(Twin::SymbolNoLibraryHold, symbol_calls_vs_close);
}

#[test]
#[should_panic]
fn twin_close_unloading_under_symbols_is_caught_by_calls() {
    with_twin(Twin::CloseUnloadsUnderSymbols, symbol_calls_vs_close);
}

/// The last symbol's drop races the close: a thread calls through its
/// symbol (`as_fn`) and drops it while main closes the session and drops
/// its own; the library unloads exactly once, after both (loom checks the
/// thread's call happens-before the unload, whichever side is last).
fn last_symbol_drop_vs_close() {
    model(|| {
        let before = live_ranges();
        let s = Session::shared();
        // SAFETY: libc's initialisers are trusted (and already ran).
        let lib = unsafe { Library::open(LIBC, &s) }.unwrap();
        let token = lib.loom_shadow();
        let sym = lib.lookup("abs").unwrap();
        let mine: Symbol = sym.clone();
        let d = FunctionDescriptor::of(Some(c::INT), &[c::INT]);
        let t = thread::spawn(move || {
            // SAFETY: `int abs(int)`; the symbol keeps libc loaded.
            let f = unsafe { sym.as_fn::<extern "C" fn(i32) -> i32>() }.unwrap();
            assert_eq!((f.get())(-2), 2);
            // SAFETY: as above.
            let call =
                unsafe { Linker::native().downcall(&sym, &d, DowncallOptions::default()) }.unwrap();
            drop(sym);
            // The downcall's own symbol is the last holder on this side.
            if let Some(v) = ok_or_closed(call.call_as::<i32>(&[(-6).into()]), "downcall") {
                assert_eq!(v, 6);
            }
        });
        // SAFETY: as above.
        let f = unsafe { mine.as_fn::<extern "C" fn(i32) -> i32>() }.unwrap();
        assert_eq!((f.get())(-1), 1);
        s.close().unwrap();
        assert_eq!((f.get())(-1), 1);
        drop(mine);
        drop(lib);
        t.join().unwrap();
        assert!(!is_live(token), "never unloaded");
        assert_eq!(live_ranges(), before);
    });
}

#[test]
fn loom_last_symbol_drop_vs_close() {
    last_symbol_drop_vs_close();
}

#[test]
#[should_panic]
fn twin_close_unloading_under_symbols_is_caught_by_the_last_drop() {
    with_twin(Twin::CloseUnloadsUnderSymbols, last_symbol_drop_vs_close);
}

// ----- global segments vs close -----------------------------------------------------

/// A thread takes libc's `environ` as a segment of the library's session
/// (`global_of`) and reads it while main closes the session: the lookup and
/// the read are `Ok` or `Closed`, never a read of unloaded data; the global's
/// range is unloaded with the library.
fn global_read_vs_close() {
    model(|| {
        let before = live_ranges();
        let s = Session::shared();
        // SAFETY: libc's initialisers are trusted (and already ran).
        let lib = unsafe { Library::open(LIBC, &s) }.unwrap();
        let token = lib.loom_shadow();
        let t = thread::spawn(move || {
            // SAFETY: `char **environ` is a pointer-sized global of libc.
            let r = unsafe { lib.global_of::<Address>("environ") };
            if let Some(seg) = ok_or_closed(r, "global_of") {
                let addr = seg.address().get();
                if let Some(v) = ok_or_closed(seg.get::<Address>(0), "global read") {
                    assert!(!v.is_null());
                }
                return Some(addr);
            }
            None
        });
        s.close().unwrap();
        if let Some(addr) = t.join().unwrap() {
            assert!(!is_live(addr), "a global outlived its library");
        }
        assert!(!is_live(token));
        assert_eq!(live_ranges(), before);
    });
}

#[test]
fn loom_global_read_vs_close() {
    global_read_vs_close();
}

#[test]
#[should_panic]
fn twin_global_read_skipping_liveness_is_caught() {
    with_twin(Twin::SegmentSkipsLiveness, global_read_vs_close);
}

// ----- executable code vs close ---------------------------------------------------

/// `mov eax, 42; ret`
const CODE: [u8; 6] = [0xb8, 42, 0, 0, 0, 0xc3];

/// A thread maps code into a shared session (`from_code`), takes a symbol
/// and calls it, while main closes the session: `from_code` and `symbol`
/// are `Ok` or `Closed` (nothing left mapped); after the close `symbol` is
/// `Closed`, a held symbol still runs its code (it keeps the mapping) and
/// the mapping goes exactly once, with the last symbol.
fn code_vs_close() {
    model(|| {
        let before = live_ranges();
        let s = Session::shared();
        let s2 = s.clone();
        let done = closed_flag();
        let done2 = done.clone();
        let t = thread::spawn(move || {
            let Some(code) = ok_or_closed(ExecutableSegment::from_code(&CODE, &s2), "from_code")
            else {
                return;
            };
            let addr = code.address().get();
            let sym = ok_or_closed(code.symbol(), "symbol");
            if let Some(sym) = &sym {
                // SAFETY: the bytes are a complete `int f(void)` for x86-64.
                let f = unsafe { sym.as_fn::<extern "C" fn() -> i32>() }.unwrap();
                assert_eq!((f.get())(), 42);
            }
            wait_closed(&done2);
            assert_eq!(
                code.symbol().unwrap_err(),
                Error::Closed,
                "symbol after close"
            );
            match sym {
                Some(sym) => {
                    assert!(is_live(addr), "a held code symbol's mapping went at close");
                    // SAFETY: as above.
                    let f = unsafe { sym.as_fn::<extern "C" fn() -> i32>() }.unwrap();
                    assert_eq!((f.get())(), 42);
                    drop(sym);
                    assert!(!is_live(addr), "the last symbol's drop did not unmap");
                }
                None => assert!(!is_live(addr), "the close did not unmap"),
            }
        });
        s.close().unwrap();
        done.store(true, Ordering::Release);
        t.join().unwrap();
        assert_eq!(live_ranges(), before, "code outlived its session");
    });
}

#[test]
#[cfg(target_arch = "x86_64")]
fn loom_code_vs_close() {
    code_vs_close();
}

#[test]
#[cfg(target_arch = "x86_64")]
#[should_panic]
fn twin_code_symbol_not_keeping_its_mapping_is_caught() {
    with_twin(Twin::CodeSymbolNoKeep, code_vs_close);
}
