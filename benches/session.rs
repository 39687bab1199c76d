//! Session benches (PERFORMANCE.md rows 4–7), each beside its peers in one run:
//!
//! - row 4/5: open + close of a confined / shared session;
//! - row 6: acquire + release on 1 thread vs a raw `fetch_add`+`fetch_sub`
//!   pair, `Arc` clone+drop, parking_lot `RwLock` read, crossbeam-utils
//!   `ShardedLock` read and `crossbeam::epoch::pin`;
//! - row 6 also: `shared_segment_get` vs `global_segment_get`, what every
//!   unguarded access pays for its enter/exit (issue 15's fast path);
//! - row 7: the same with 2 threads hammering one object at once (persistent
//!   threads, thread start excluded; the figure is wall time ÷ all pairs).
#![allow(missing_docs)] // criterion_group! generates undocumented items
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_utils::sync::ShardedLock;
use memscope::segment::Address;
use memscope::{Segment, Session};

fn open_close(c: &mut Criterion) {
    let mut g = c.benchmark_group("session/open_close");
    g.bench_function("confined", |b| {
        b.iter(|| {
            let s = Session::confined();
            s.close().unwrap();
            black_box(s)
        })
    });
    g.bench_function("shared", |b| {
        b.iter(|| {
            let s = Session::shared();
            s.close().unwrap();
            black_box(s)
        })
    });
    // Row 5's trade (issue 15): a shared session that was entered pays the
    // heavy barrier at close (membarrier, unless MEMSCOPE_NO_MEMBARRIER is
    // set); one never entered does not.
    g.bench_function("shared_entered_once", |b| {
        b.iter(|| {
            let s = Session::shared();
            drop(s.enter().unwrap());
            s.close().unwrap();
            black_box(s)
        })
    });
    g.bench_function("confined_dropped_unclosed", |b| {
        b.iter(|| black_box(Session::confined()))
    });
    // The floor: what a heap allocation alone costs here.
    g.bench_function("peer/box_new_drop", |b| {
        b.iter(|| black_box(Box::new(black_box([0u64; 4]))))
    });
    g.finish();
}

fn one_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("session/acquire_release/1t");
    let shared = Session::shared();
    g.bench_function("shared", |b| {
        b.iter(|| drop(black_box(shared.acquire().unwrap())))
    });
    let confined = Session::confined();
    g.bench_function("confined", |b| {
        b.iter(|| drop(black_box(confined.acquire().unwrap())))
    });
    let shared2 = Session::shared();
    g.bench_function("shared_enter_exit", |b| {
        b.iter(|| drop(black_box(shared2.enter().unwrap())))
    });
    // What every unguarded access pays (row 6, issue 15): one checked
    // `get` on a shared session against the same `get` on the global
    // session (no enter at all); the difference is the enter/exit pair.
    let mut word = [7u64];
    let addr = Address::from_ptr(word.as_mut_ptr());
    let global = Session::global();
    // SAFETY: `word` outlives both segments and is only read through them.
    let on_shared = unsafe { Segment::from_raw(addr, 8, &shared2) }.unwrap();
    // SAFETY: as above.
    let on_global = unsafe { Segment::from_raw(addr, 8, &global) }.unwrap();
    g.bench_function("shared_segment_get", |b| {
        b.iter(|| black_box(black_box(&on_shared).get::<u64>(0).unwrap()))
    });
    g.bench_function("global_segment_get", |b| {
        b.iter(|| black_box(black_box(&on_global).get::<u64>(0).unwrap()))
    });
    let raw = AtomicUsize::new(0);
    g.bench_function("peer/raw_fetch_add_sub", |b| {
        b.iter(|| {
            black_box(raw.fetch_add(1, Ordering::Acquire));
            black_box(raw.fetch_sub(1, Ordering::Release));
        })
    });
    let arc = Arc::new(0u64);
    g.bench_function("peer/arc_clone_drop", |b| {
        b.iter(|| drop(black_box(arc.clone())))
    });
    let rw = parking_lot::RwLock::new(0u64);
    g.bench_function("peer/parking_lot_read", |b| {
        b.iter(|| drop(black_box(rw.read())))
    });
    let sl = ShardedLock::new(0u64);
    g.bench_function("peer/sharded_lock_read", |b| {
        b.iter(|| drop(black_box(sl.read().unwrap())))
    });
    g.bench_function("peer/epoch_pin", |b| {
        b.iter(|| drop(black_box(crossbeam::epoch::pin())))
    });
    g.finish();
}

/// Two persistent threads that run `op` `iters` times each on command.
struct Pair {
    start: Arc<Barrier>,
    end: Arc<Barrier>,
    iters: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Pair {
    fn new(op: impl Fn() + Send + Sync + 'static) -> Pair {
        let op = Arc::new(op);
        let start = Arc::new(Barrier::new(3));
        let end = Arc::new(Barrier::new(3));
        let iters = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..2)
            .map(|_| {
                let (op, start, end, iters, stop) = (
                    op.clone(),
                    start.clone(),
                    end.clone(),
                    iters.clone(),
                    stop.clone(),
                );
                thread::spawn(move || {
                    loop {
                        start.wait();
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        for _ in 0..iters.load(Ordering::Acquire) {
                            op();
                        }
                        end.wait();
                    }
                })
            })
            .collect();
        Pair {
            start,
            end,
            iters,
            stop,
            threads,
        }
    }

    /// Wall time of both threads running `iters` ops each, ÷ 2 (per pair).
    fn run(&self, iters: u64) -> Duration {
        self.iters.store(iters, Ordering::Release);
        self.start.wait();
        let t0 = Instant::now();
        self.end.wait();
        t0.elapsed() / 2
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.start.wait();
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("session/acquire_release/2t");
    let mut bench = |name: &str, op: Box<dyn Fn() + Send + Sync>| {
        let pair = Pair::new(op);
        g.bench_function(name, |b| b.iter_custom(|n| pair.run(n)));
    };
    let s = Session::shared();
    bench(
        "shared",
        Box::new(move || drop(black_box(s.acquire().unwrap()))),
    );
    let s = Session::shared();
    bench(
        "shared_enter_exit",
        Box::new(move || drop(black_box(s.enter().unwrap()))),
    );
    // Both threads read one word of one shared session's segment (each
    // `get` enters and exits: the fast path's slots are per thread).
    let s = Session::shared();
    let word: &'static mut [u64; 1] = Box::leak(Box::new([7u64]));
    let addr = Address::from_ptr(word.as_mut_ptr());
    bench(
        "shared_segment_get",
        Box::new(move || {
            // SAFETY: the leaked word lives for the process; only read.
            let seg = unsafe { Segment::from_raw(addr, 8, &s) }.unwrap();
            black_box(black_box(&seg).get::<u64>(0).unwrap());
        }),
    );
    let raw = Arc::new(AtomicUsize::new(0));
    bench(
        "peer/raw_fetch_add_sub",
        Box::new(move || {
            black_box(raw.fetch_add(1, Ordering::Acquire));
            black_box(raw.fetch_sub(1, Ordering::Release));
        }),
    );
    let arc = Arc::new(0u64);
    bench(
        "peer/arc_clone_drop",
        Box::new(move || drop(black_box(arc.clone()))),
    );
    let rw = Arc::new(parking_lot::RwLock::new(0u64));
    bench(
        "peer/parking_lot_read",
        Box::new(move || drop(black_box(rw.read()))),
    );
    let sl = Arc::new(ShardedLock::new(0u64));
    bench(
        "peer/sharded_lock_read",
        Box::new(move || drop(black_box(sl.read().unwrap()))),
    );
    bench(
        "peer/epoch_pin",
        Box::new(|| drop(black_box(crossbeam::epoch::pin()))),
    );
    g.finish();
}

criterion_group!(benches, open_close, one_thread, two_threads);
criterion_main!(benches);
