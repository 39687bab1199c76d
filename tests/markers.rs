//! Marker-trait guarantees of the session and segment types, checked at
//! compile time (a wrong marker makes this file fail to build) and exercised
//! at run time where the positive side can be used.

use memscope::session::Access;
use memscope::{AcquireGuard, Error, Segment, Session, SessionKind};

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_clone<T: Clone>() {}

/// `<T as NotSend<_>>::CHECK` resolves only when exactly one impl applies:
/// for a `Send` type both do and inference is ambiguous (a compile error),
/// so naming it proves `T: !Send` (the trick of `static_assertions`).
trait NotSend<A> {
    const CHECK: () = ();
}
impl<T: ?Sized> NotSend<()> for T {}
impl<T: ?Sized + Send> NotSend<u8> for T {}

/// The same for `Sync`.
trait NotSync<A> {
    const CHECK: () = ();
}
impl<T: ?Sized> NotSync<()> for T {}
impl<T: ?Sized + Sync> NotSync<u8> for T {}

// Compile-time: guards and access tokens stay on the thread that took them.
const _: () = <AcquireGuard<'static> as NotSend<_>>::CHECK;
const _: () = <Access<'static> as NotSend<_>>::CHECK;
const _: () = <AcquireGuard<'static> as NotSync<_>>::CHECK;

#[test]
fn session_handles_are_send_sync_clone() {
    assert_send::<Session>();
    assert_sync::<Session>();
    assert_clone::<Session>();
    // And usable that way: a clone moved to another thread closes the session.
    let s = Session::shared();
    let s2 = s.clone();
    std::thread::spawn(move || s2.close())
        .join()
        .unwrap()
        .unwrap();
    assert!(!s.is_alive());
}

#[test]
fn sessions_can_be_shared_by_reference_across_threads() {
    let s = Session::shared();
    std::thread::scope(|sc| {
        for _ in 0..2 {
            sc.spawn(|| drop(s.acquire().unwrap()));
        }
    });
    s.close().unwrap();
}

#[test]
fn segments_are_send_and_sync() {
    assert_send::<Segment<'static>>();
    assert_sync::<Segment<'static>>();
    let s = Session::shared();
    let mut bytes = [5u8; 8];
    // SAFETY: `bytes` outlives the segment and is only used through it.
    let seg = unsafe {
        Segment::from_raw(
            memscope::Address::from_ptr(bytes.as_mut_ptr()),
            bytes.len(),
            &s,
        )
    }
    .unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| assert_eq!(seg.get::<u8>(3), Ok(5)));
    });
}

#[test]
fn errors_and_kinds_are_plain_values() {
    assert_send::<Error>();
    assert_sync::<Error>();
    assert_clone::<Error>();
    fn assert_copy<T: Copy>() {}
    assert_copy::<SessionKind>();
}
