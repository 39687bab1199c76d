//! The main job: a multithreaded request-processing service on memscope.
//!
//! A pool of worker threads is fed requests through a crossbeam channel, in
//! batches. For every request a worker:
//!
//! 1. takes scratch memory from its **per-thread stack allocator** (a frame
//!    released when the request is done),
//! 2. fills it with the request's integers and sorts them with **libc
//!    `qsort`, called through the linker**, with a **Rust comparator upcall**,
//! 3. inside a **`with_acquired` guard** on the batch's session, copies the
//!    sorted result into the batch's **shared arena** and replies.
//!
//! The coordinator closes each batch's session once its replies are in. A
//! close that finds a worker still inside its guard fails with `Busy`; the
//! coordinator counts that and waits with `close_blocking`. Closing frees the
//! whole batch at once.
//!
//! `--baseline` runs the same service on `Vec`/`Box` with a direct
//! `extern "C"` qsort call; by default both run and the ratio is printed.
//!
//! ```sh
//! cargo run --release --example service -- --threads 2 --requests 200000
//! ```

use crossbeam::channel;
use memscope::alloc::{Arena, SegmentAllocator, stack};
use memscope::layout::c;
use memscope::linker::{Arg, Downcall, DowncallOptions, FunctionDescriptor, Library, Linker};
use memscope::marshal::Value;
use memscope::segment::Address;
use memscope::{Error, Session};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- heap accounting

/// Counts every byte the process takes from and gives back to the heap, so
/// the report can show that closed sessions return their memory.
struct Counting;
static HEAP_ALLOCATED: AtomicU64 = AtomicU64::new(0);
static HEAP_FREED: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only adds counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HEAP_ALLOCATED.fetch_add(l.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        HEAP_ALLOCATED.fetch_add(l.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HEAP_FREED.fetch_add(l.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        HEAP_ALLOCATED.fetch_add(new as u64, Ordering::Relaxed);
        HEAP_FREED.fetch_add(l.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap_live() -> i64 {
    HEAP_ALLOCATED.load(Ordering::Relaxed) as i64 - HEAP_FREED.load(Ordering::Relaxed) as i64
}

// ---------------------------------------------------------------- configuration

#[derive(Clone, Copy, Debug)]
struct Config {
    threads: usize,
    requests: u64,
    seconds: Option<f64>,
    batch: u64,
    baseline_only: bool,
    min_len: usize,
    max_len: usize,
}

fn parse_args() -> Result<Config, String> {
    let mut c = Config {
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        requests: 200_000,
        seconds: None,
        batch: 1_000,
        baseline_only: false,
        min_len: 16,
        max_len: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--threads" => {
                c.threads = val("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "--requests" => {
                c.requests = val("--requests")?
                    .parse()
                    .map_err(|e| format!("--requests: {e}"))?
            }
            "--seconds" => {
                c.seconds = Some(
                    val("--seconds")?
                        .parse()
                        .map_err(|e| format!("--seconds: {e}"))?,
                )
            }
            "--batch" => {
                c.batch = val("--batch")?
                    .parse()
                    .map_err(|e| format!("--batch: {e}"))?
            }
            "--baseline" => c.baseline_only = true,
            "-h" | "--help" => {
                println!(
                    "usage: service [--threads N] [--requests N] [--seconds S] [--batch N] [--baseline]\n\
                     Runs the memscope service, then the same on Box/Vec, and prints both.\n\
                     --baseline runs only the Box/Vec version."
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if c.threads == 0 || c.batch == 0 {
        return Err("--threads and --batch must be at least 1".into());
    }
    Ok(c)
}

// ---------------------------------------------------------------- the work

/// A deterministic request: `len` pseudo-random i32s from `seed`.
#[derive(Clone, Copy)]
struct Request {
    id: u64,
    seed: u64,
    len: usize,
    sent: Instant,
}

fn value_at(seed: u64, i: usize) -> i32 {
    let mut x = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x as i32) % 1_000_000
}

/// Checksum of a sorted result: position-weighted, so a wrong order shows.
fn checksum(sorted: impl Iterator<Item = i32>) -> u64 {
    sorted.enumerate().fold(0u64, |h, (i, v)| {
        h.wrapping_mul(31)
            .wrapping_add((v as i64 as u64) ^ i as u64)
    })
}

fn expected(r: &Request) -> u64 {
    let mut v: Vec<i32> = (0..r.len).map(|i| value_at(r.seed, i)).collect();
    v.sort_unstable();
    checksum(v.into_iter())
}

struct Reply {
    id: u64,
    sum: u64,
    /// From the batch being enqueued to this reply (includes queueing).
    latency: Duration,
    /// From the worker picking the request up to its reply.
    service: Duration,
}

#[derive(Default)]
struct Stats {
    served: u64,
    wrong: u64,
    latencies_ns: Vec<u64>,
    service_ns: Vec<u64>,
    elapsed: Duration,
    sessions_opened: u64,
    sessions_closed: u64,
    busy_closes: u64,
    arena_bytes: u64,
    arena_reserved: u64,
}

fn request_stream(cfg: &Config) -> impl Iterator<Item = (u64, u64, usize)> + use<> {
    let (min, span) = (cfg.min_len, cfg.max_len - cfg.min_len + 1);
    (0..cfg.requests).map(move |id| {
        let seed = id.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5151;
        (id, seed, min + (seed as usize % span))
    })
}

// ---------------------------------------------------------------- memscope version

/// What each worker links once: libc `qsort` and a Rust comparator upcall.
struct CSort {
    qsort: Downcall,
    comparator: Address,
}

fn link_sort(stubs: &Session) -> memscope::Result<CSort> {
    let libc = Library::libc()?;
    let sym = libc.lookup("qsort")?;
    let desc = FunctionDescriptor::of(None, &[c::POINTER, c::SIZE_T, c::SIZE_T, c::POINTER]);
    // SAFETY: this is qsort's C prototype:
    // void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)).
    let qsort = unsafe { Linker::native().downcall(&sym, &desc, DowncallOptions::default()) }?;
    let cmp = Linker::native().upcall_typed(
        |a: Address, b: Address| -> i32 {
            // SAFETY: qsort passes two pointers to i32 elements of the array
            // it sorts, which is a live, 4-aligned stack-frame segment.
            let (x, y) = unsafe { (*a.as_ptr::<i32>(), *b.as_ptr::<i32>()) };
            x.cmp(&y) as i32
        },
        stubs,
    )?;
    let comparator = cmp.address();
    // The stub lives until `stubs` closes (at the end of the run).
    std::mem::forget(cmp);
    Ok(CSort { qsort, comparator })
}

enum Job {
    Batch(Arc<Arena>, Vec<Request>),
    Stop,
}

fn serve_one(
    sort: &CSort,
    arena: &Arena,
    r: &Request,
    reply: impl FnOnce(u64),
) -> memscope::Result<()> {
    stack::frame(|f| {
        // 1. Per-request scratch from this thread's stack allocator.
        let mut scratch = f.allocate_array::<i32>(r.len)?;
        for i in 0..r.len {
            scratch.set_at_index(i, value_at(r.seed, i))?;
        }
        // 2. One C call per request: libc qsort with a Rust comparator upcall.
        sort.qsort.call_with(&[
            Arg::Segment(&scratch),
            Value::U64(r.len as u64).into(),
            Value::U64(4).into(),
            Value::Address(sort.comparator).into(),
        ])?;
        // 3. The result goes to the batch's shared arena, inside a guard
        //    (the coordinator cannot free the batch while we write it).
        //    The reply is sent before the guard is released, so the
        //    coordinator's close can find it still held.
        Session::with_acquired(&[arena.session()], || -> memscope::Result<()> {
            let mut out = arena.allocate_array::<i32>(r.len)?;
            out.copy_from(&scratch)?;
            let sorted = out
                .elements::<i32>()?
                .collect::<memscope::Result<Vec<i32>>>()?;
            let sum = checksum(sorted.into_iter());
            reply(sum);
            // After replying, append an audit record to the batch, still
            // under the guard: the coordinator may already be closing.
            let mut audit = arena.allocate(16, 8)?;
            audit.set::<u64>(0, r.id)?;
            audit.set::<u64>(8, sum)?;
            Ok(())
        })?
    })
}

fn run_memscope(cfg: &Config) -> memscope::Result<Stats> {
    let stubs = Session::shared(); // lives for the whole run: the upcall stub
    let (job_tx, job_rx) = channel::bounded::<Job>(cfg.threads * 2);
    let (rep_tx, rep_rx) = channel::unbounded::<Reply>();
    let failures = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..cfg.threads {
        let (job_rx, rep_tx, stubs, failures) = (
            job_rx.clone(),
            rep_tx.clone(),
            stubs.clone(),
            failures.clone(),
        );
        workers.push(std::thread::spawn(move || -> memscope::Result<()> {
            let sort = link_sort(&stubs)?;
            while let Ok(Job::Batch(arena, reqs)) = job_rx.recv() {
                for r in &reqs {
                    let picked = Instant::now();
                    let mut replied = false;
                    let res = serve_one(&sort, &arena, r, |sum| {
                        replied = true;
                        let _ = rep_tx.send(Reply {
                            id: r.id,
                            sum,
                            latency: r.sent.elapsed(),
                            service: picked.elapsed(),
                        });
                    });
                    if let Err(e) = res {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("request {} failed: {e}", r.id);
                        if !replied {
                            let _ = rep_tx.send(Reply {
                                id: r.id,
                                sum: u64::MAX,
                                latency: r.sent.elapsed(),
                                service: picked.elapsed(),
                            });
                        }
                    }
                }
            }
            Ok(())
        }));
    }
    let stats = coordinate(cfg, "memscope", |batch, st| {
        // One shared session + arena per batch.
        let arena = Arc::new(Arena::shared());
        st.sessions_opened += 1;
        let n = batch.len();
        // Split the batch across workers.
        let per = n.div_ceil(cfg.threads);
        for part in batch.chunks(per) {
            job_tx
                .send(Job::Batch(arena.clone(), part.to_vec()))
                .expect("workers alive");
        }
        let replies: Vec<Reply> = (0..n).map(|_| rep_rx.recv().expect("reply")).collect();
        // What the batch asked of its arena: each result plus a 16-byte audit record.
        st.arena_bytes += batch.iter().map(|r| (r.len * 4 + 16) as u64).sum::<u64>();
        st.arena_reserved += arena.reserved_bytes() as u64;
        // Close the batch: workers may still be inside their guard.
        let closed = arena.close();
        match closed {
            Ok(()) => {}
            Err(Error::Busy { .. }) => {
                st.busy_closes += 1;
                arena.session().close_blocking()?;
            }
            Err(e) => return Err(e),
        }
        st.sessions_closed += 1;
        Ok(replies)
    })?;
    for _ in 0..cfg.threads {
        let _ = job_tx.send(Job::Stop);
    }
    for w in workers {
        w.join().expect("worker panicked")?;
    }
    stubs.close()?;
    Ok(stats)
}

// ---------------------------------------------------------------- baseline

unsafe extern "C" {
    fn qsort(
        base: *mut core::ffi::c_void,
        n: usize,
        size: usize,
        cmp: extern "C" fn(*const core::ffi::c_void, *const core::ffi::c_void) -> i32,
    );
}

extern "C" fn cmp_i32(a: *const core::ffi::c_void, b: *const core::ffi::c_void) -> i32 {
    // SAFETY: qsort passes pointers to two i32 elements of the Vec it sorts.
    let (x, y) = unsafe { (*(a as *const i32), *(b as *const i32)) };
    x.cmp(&y) as i32
}

/// A baseline reply: the reply, the result and the audit record, on the heap.
type BaselineReply = (Reply, Box<[i32]>, Box<[u64; 2]>);

fn run_baseline(cfg: &Config) -> memscope::Result<Stats> {
    let (job_tx, job_rx) = channel::bounded::<Option<Vec<Request>>>(cfg.threads * 2);
    let (rep_tx, rep_rx) = channel::unbounded::<BaselineReply>();
    let mut workers = Vec::new();
    for _ in 0..cfg.threads {
        let (job_rx, rep_tx) = (job_rx.clone(), rep_tx.clone());
        workers.push(std::thread::spawn(move || {
            while let Ok(Some(reqs)) = job_rx.recv() {
                for r in &reqs {
                    let picked = Instant::now();
                    let mut scratch: Vec<i32> = (0..r.len).map(|i| value_at(r.seed, i)).collect();
                    // SAFETY: `scratch` holds r.len i32s; cmp_i32 matches qsort's comparator type.
                    unsafe { qsort(scratch.as_mut_ptr().cast(), r.len, 4, cmp_i32) };
                    let out: Box<[i32]> = scratch.as_slice().into();
                    let sum = checksum(out.iter().copied());
                    let _ = rep_tx.send((
                        Reply {
                            id: r.id,
                            sum,
                            latency: r.sent.elapsed(),
                            service: picked.elapsed(),
                        },
                        out,
                        // The same audit record the memscope version keeps.
                        Box::new([r.id, sum]),
                    ));
                }
            }
        }));
    }
    let stats = coordinate(cfg, "baseline", |batch, st| {
        let n = batch.len();
        let per = n.div_ceil(cfg.threads);
        for part in batch.chunks(per) {
            job_tx.send(Some(part.to_vec())).expect("workers alive");
        }
        // Results live until the batch is done, then are dropped one by one.
        let replies: Vec<BaselineReply> = (0..n).map(|_| rep_rx.recv().expect("reply")).collect();
        st.arena_bytes += replies
            .iter()
            .map(|(_, b, _)| (b.len() * 4 + 16) as u64)
            .sum::<u64>();
        Ok(replies.into_iter().map(|(r, _, _)| r).collect())
    })?;
    for _ in 0..cfg.threads {
        let _ = job_tx.send(None);
    }
    for w in workers {
        w.join().expect("worker panicked");
    }
    Ok(stats)
}

// ---------------------------------------------------------------- coordinator

/// Feeds batches to `batch_fn`, checks replies, shows progress.
fn coordinate(
    cfg: &Config,
    name: &str,
    mut batch_fn: impl FnMut(&[Request], &mut Stats) -> memscope::Result<Vec<Reply>>,
) -> memscope::Result<Stats> {
    let mut st = Stats::default();
    let start = Instant::now();
    let deadline = cfg.seconds.map(|s| start + Duration::from_secs_f64(s));
    let mut last_progress = start;
    let mut stream = request_stream(cfg).peekable();
    let mut batch = Vec::with_capacity(cfg.batch as usize);
    while stream.peek().is_some() {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        batch.clear();
        let now = Instant::now();
        for (id, seed, len) in stream.by_ref().take(cfg.batch as usize) {
            batch.push(Request {
                id,
                seed,
                len,
                sent: now,
            });
        }
        let replies = batch_fn(&batch, &mut st)?;
        for rep in replies {
            st.served += 1;
            st.latencies_ns.push(rep.latency.as_nanos() as u64);
            st.service_ns.push(rep.service.as_nanos() as u64);
            // Verify a sample against a Rust sort (every 97th request).
            if rep.id % 97 == 0 {
                let r = batch.iter().find(|r| r.id == rep.id).expect("known id");
                if expected(r) != rep.sum {
                    st.wrong += 1;
                }
            } else if rep.sum == u64::MAX {
                st.wrong += 1;
            }
        }
        if last_progress.elapsed() >= Duration::from_millis(500) {
            last_progress = Instant::now();
            eprint!(
                "\r[{name}] {}/{} requests, {:.1} s   ",
                st.served,
                cfg.requests,
                start.elapsed().as_secs_f64()
            );
        }
    }
    st.elapsed = start.elapsed();
    eprintln!(
        "\r[{name}] {} requests in {:.2} s            ",
        st.served,
        st.elapsed.as_secs_f64()
    );
    Ok(st)
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1e3
}

fn report(name: &str, st: &mut Stats) -> f64 {
    st.latencies_ns.sort_unstable();
    st.service_ns.sort_unstable();
    let rps = st.served as f64 / st.elapsed.as_secs_f64();
    println!("{name}:");
    println!(
        "  requests served      {} ({} wrong results)",
        st.served, st.wrong
    );
    println!("  throughput           {rps:.0} requests/s");
    println!(
        "  latency (enqueue → reply)  p50 {:.1} µs   p99 {:.1} µs",
        pct(&st.latencies_ns, 0.50),
        pct(&st.latencies_ns, 0.99)
    );
    println!(
        "  service time (worker pick-up → reply)  p50 {:.1} µs   p99 {:.1} µs",
        pct(&st.service_ns, 0.50),
        pct(&st.service_ns, 0.99)
    );
    println!("  bytes for results + audit records   {}", st.arena_bytes);
    rps
}

fn main() {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("service: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "memscope service: {} worker threads, {} requests of {}..={} ints, batches of {}{}",
        cfg.threads,
        cfg.requests,
        cfg.min_len,
        cfg.max_len,
        cfg.batch,
        cfg.seconds
            .map_or(String::new(), |s| format!(", at most {s} s"))
    );
    let heap_before = heap_live();
    let mut ours = None;
    if !cfg.baseline_only {
        match run_memscope(&cfg) {
            Ok(mut st) => {
                let rps = report(
                    "memscope (stack frames + shared arena per batch + linker qsort/upcall)",
                    &mut st,
                );
                println!(
                    "  batch arenas reserved {} bytes of chunks in all, every one released at close",
                    st.arena_reserved
                );
                println!(
                    "  sessions opened/closed {}/{}",
                    st.sessions_opened, st.sessions_closed
                );
                println!(
                    "  close attempts that found guards held: {} (then close_blocking)",
                    st.busy_closes
                );
                let pooled = memscope::alloc::pool_stats();
                println!(
                    "  chunk pool after the run: {} chunks, {} bytes kept for the next arena",
                    pooled.chunks, pooled.bytes
                );
                memscope::alloc::trim_pool();
                let samples = ((st.latencies_ns.capacity() + st.service_ns.capacity()) * 8) as i64;
                let live = heap_live() - heap_before - samples;
                println!(
                    "  heap held after every session closed and the pool was trimmed: {live} bytes\n    \
                     (measured by a counting global allocator; the report's own {samples} bytes of \
                     latency samples not counted)"
                );
                ours = Some((rps, st.wrong));
            }
            Err(e) => {
                eprintln!("service failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut base = match run_baseline(&cfg) {
        Ok(st) => st,
        Err(e) => {
            eprintln!("baseline failed: {e}");
            std::process::exit(1);
        }
    };
    let base_rps = report(
        "baseline (Vec scratch + Box results + direct extern \"C\" qsort)",
        &mut base,
    );
    if let Some((rps, wrong)) = ours {
        println!(
            "memscope / baseline throughput: {:.2}x  (the memscope run also pays for a libffi downcall and \
             one Rust upcall per comparison, which the baseline makes as direct C calls)",
            rps / base_rps
        );
        if wrong > 0 || base.wrong > 0 {
            eprintln!("wrong results seen");
            std::process::exit(1);
        }
    }
}
