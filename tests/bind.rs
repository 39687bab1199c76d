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
