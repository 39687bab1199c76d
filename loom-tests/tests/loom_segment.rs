//! Loom models of segment access vs close (DESIGN.md semantics 5, 6, 8).
//!
//! Segment memory is raw memory loom cannot see, so each model pairs a real
//! segment (over a small leaked buffer) with a loom `UnsafeCell` that the
//! session's close action frees (`with_mut`). The cell is read *inside* the
//! segment's own liveness window: under the guard for guarded access, and
//! through `memscope::segment::loom_hook` (run by the segment between its
//! `enter` and exit) for unguarded access. The broken twin
//! `SegmentSkipsLiveness` makes unguarded access skip `enter`; loom must
//! catch it.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{Memory, free_on_close, model};
use memscope::segment::{Address, loom_hook};
use memscope::session::broken::{Twin, with_twin};
use memscope::{Error, Segment, Session};

/// A shared session whose close action frees the loom memory, and the
/// address of an 8-byte buffer for the segment itself.
fn setup() -> (Session, Arc<Memory>, Address) {
    let s = Session::shared();
    let m = Memory::new();
    free_on_close(&s, &m);
    let buf: &'static mut [u64; 1] = Box::leak(Box::new([7u64]));
    (s, m, Address::from_ptr(buf.as_mut_ptr()))
}

/// A segment read under an acquire guard on each of two threads vs close:
/// close is Busy (nothing freed) or the acquire fails with Closed.
fn guarded_read_vs_close() {
    model(|| {
        let (s, m, addr) = setup();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s2, m2) = (s.clone(), m.clone());
                thread::spawn(move || {
                    // SAFETY: the leaked buffer is never freed, and only read.
                    let seg = unsafe { Segment::from_raw(addr, 8, &s2) }.unwrap();
                    if let Ok(g) = s2.acquire() {
                        let v = seg.guarded(&g).unwrap();
                        assert_eq!(v.get::<u64>(0).unwrap(), 7);
                        m2.read();
                        drop(g);
                    }
                })
            })
            .collect();
        match s.close() {
            Ok(()) | Err(Error::Busy { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
        for t in ts {
            t.join().unwrap();
        }
    });
}

/// Two unguarded accesses (a `get` and a bulk `to_vec`, each inside its
/// own enter window, which runs the hook that reads the loom memory) on two
/// threads vs close: each completes on live memory or fails with Closed,
/// and close never fails because of them. (The session's first enters:
/// each may set the gate's USED with its read-modify-write.)
fn unguarded_read_vs_close() {
    model(|| {
        let (s, m, addr) = setup();
        let m2 = m.clone();
        loom_hook::set(move || m2.read());
        let ts: Vec<_> = (0..2)
            .map(|i| {
                let s2 = s.clone();
                thread::spawn(move || {
                    // SAFETY: the leaked buffer is never freed, and only read.
                    let seg = unsafe { Segment::from_raw(addr, 8, &s2) }.unwrap();
                    let r = if i == 0 {
                        seg.get::<u64>(0).map(|v| assert_eq!(v, 7))
                    } else {
                        seg.to_vec().map(|v| assert_eq!(v, 7u64.to_ne_bytes()))
                    };
                    match r {
                        Ok(()) | Err(Error::Closed) => {}
                        Err(e) => panic!("unexpected {e}"),
                    }
                })
            })
            .collect();
        let r = s.close();
        for t in ts {
            t.join().unwrap();
        }
        loom_hook::clear();
        r.unwrap();
    });
}

/// The chunked element iterator (one enter per chunk of 1,024 values; here
/// two chunks, so the close can come between them) and a plain `get` on
/// another thread vs close: every chunk is read inside its window or fails
/// with Closed, and once one fails none after it succeeds.
fn elements_vs_close() {
    model(|| {
        let s = Session::shared();
        let m = Memory::new();
        free_on_close(&s, &m);
        let buf: &'static mut [u32] = Box::leak(vec![7u32; 1025].into_boxed_slice());
        let addr = Address::from_ptr(buf.as_mut_ptr());
        let m2 = m.clone();
        loom_hook::set(move || m2.read());
        let ts: Vec<_> = (0..2)
            .map(|i| {
                let s2 = s.clone();
                thread::spawn(move || {
                    // SAFETY: the leaked buffer is never freed, and only read.
                    let seg = unsafe { Segment::from_raw(addr, 4 * 1025, &s2) }.unwrap();
                    if i == 1 {
                        match seg.get::<u32>(4096) {
                            Ok(v) => assert_eq!(v, 7),
                            Err(Error::Closed) => {}
                            Err(e) => panic!("unexpected {e}"),
                        }
                        return;
                    }
                    let mut closed = false;
                    let mut n = 0;
                    for r in seg.elements::<u32>().unwrap() {
                        match r {
                            Ok(v) => {
                                assert!(!closed, "a value after Closed");
                                assert_eq!(v, 7);
                                n += 1;
                            }
                            Err(Error::Closed) => closed = true,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                    assert!(n == 1025 || closed, "{n} values and no Closed");
                })
            })
            .collect();
        let r = s.close();
        for t in ts {
            t.join().unwrap();
        }
        loom_hook::clear();
        r.unwrap();
    });
}

/// A cursor (which holds an acquire for its life) and an atomic view (which
/// borrows a guard) vs close: close is Busy while either lives, or they
/// cannot be made.
fn cursor_and_atomics_vs_close() {
    model(|| {
        let (s, m, addr) = setup();
        let s2 = s.clone();
        let m2 = m.clone();
        let t = thread::spawn(move || {
            use std::io::Read;
            // SAFETY: the leaked buffer is never freed nor used elsewhere.
            let mut seg = unsafe { Segment::from_raw(addr, 8, &s2) }.unwrap();
            if let Ok(mut c) = seg.cursor() {
                let mut b = [0u8; 8];
                c.read_exact(&mut b).unwrap();
                m2.read();
            }
            if let Ok(g) = s2.acquire() {
                let v = seg.atomics(&g).unwrap();
                v.atomic_u64(0)
                    .unwrap()
                    .fetch_add(0, std::sync::atomic::Ordering::Relaxed);
                m2.read();
            }
        });
        match s.close() {
            Ok(()) | Err(Error::Busy { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
        t.join().unwrap();
    });
}

#[test]
fn loom_cursor_and_atomics_vs_close() {
    cursor_and_atomics_vs_close();
}

#[test]
fn loom_guarded_read_vs_close() {
    guarded_read_vs_close();
}

#[test]
fn loom_unguarded_read_vs_close() {
    unguarded_read_vs_close();
}

#[test]
fn loom_elements_vs_close() {
    elements_vs_close();
}

#[test]
#[should_panic]
fn twin_segment_skips_liveness_is_caught() {
    with_twin(Twin::SegmentSkipsLiveness, unguarded_read_vs_close);
}

#[test]
#[should_panic]
fn twin_segment_skips_liveness_is_caught_by_elements() {
    with_twin(Twin::SegmentSkipsLiveness, elements_vs_close);
}

#[test]
#[should_panic]
fn twin_check_then_increment_is_caught_by_cursor_and_atomics() {
    with_twin(Twin::CheckThenIncrement, cursor_and_atomics_vs_close);
}

#[test]
#[should_panic]
fn twin_relaxed_release_is_caught_by_guarded_read() {
    with_twin(Twin::RelaxedRelease, guarded_read_vs_close);
}

/// An unguarded `get` on the fast path (the session's gate already has
/// USED, so the read's enter is a slot store, the light fence and a gate
/// load: no read-modify-write) on two threads vs close (issue 15).
fn fast_unguarded_read_vs_close() {
    model(|| {
        let (s, m, addr) = setup();
        drop(s.enter().unwrap());
        let m2 = m.clone();
        loom_hook::set(move || m2.read());
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s2 = s.clone();
                thread::spawn(move || {
                    // SAFETY: the leaked buffer is never freed, and only read.
                    let seg = unsafe { Segment::from_raw(addr, 8, &s2) }.unwrap();
                    match seg.get::<u64>(0) {
                        Ok(v) => assert_eq!(v, 7),
                        Err(Error::Closed) => {}
                        Err(e) => panic!("unexpected {e}"),
                    }
                })
            })
            .collect();
        let r = s.close();
        for t in ts {
            t.join().unwrap();
        }
        loom_hook::clear();
        r.unwrap();
    });
}

#[test]
fn loom_fast_unguarded_read_vs_close() {
    fast_unguarded_read_vs_close();
}

#[test]
#[should_panic]
fn twin_enter_no_fence_is_caught_by_an_unguarded_read() {
    with_twin(Twin::EnterNoFence, fast_unguarded_read_vs_close);
}

/// `read_range` (one check, then the caller's closure on a plain slice,
/// inside a user window) vs close: the closure's read completes before the
/// free, or `read_range` fails with Closed; close is `Ok` (issue 15). Two
/// threads, each with its own window.
fn read_range_vs_close() {
    model(|| {
        let (s, m, addr) = setup();
        drop(s.enter().unwrap());
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (s2, m2) = (s.clone(), m.clone());
                thread::spawn(move || {
                    // SAFETY: the leaked buffer is never freed, and only read.
                    let seg = unsafe { Segment::from_raw(addr, 8, &s2) }.unwrap();
                    match seg.read_range::<u64, _>(0, 1, |xs| {
                        m2.read();
                        xs[0]
                    }) {
                        Ok(v) => assert_eq!(v, 7),
                        Err(Error::Closed) => {}
                        Err(e) => panic!("unexpected {e}"),
                    }
                })
            })
            .collect();
        let r = s.close();
        for t in ts {
            t.join().unwrap();
        }
        r.unwrap();
    });
}

#[test]
fn loom_read_range_vs_close() {
    read_range_vs_close();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn twin_enter_no_fence_is_caught_by_read_range() {
    with_twin(Twin::EnterNoFence, read_range_vs_close);
}
