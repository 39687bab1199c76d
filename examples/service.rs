//! The main job: the same request-processing service on memscope, on the
//! system allocator, on mimalloc and on bumpalo-herd — and which is faster.
//!
//! Every request parses a generated JSON order document (a few hundred
//! bytes) into a tree that owns its nodes, strings and maps (as
//! `serde_json::Value` does), aggregates it (line totals, revenue per SKU,
//! distinct tags, a hash of the whole tree, a display string), sorts the
//! line totals with **libc `qsort`** (one C call per request) and keeps a
//! result record until its batch is done. The parse and compute code is one
//! generic function over where memory comes from
//! (`A: allocator_api2::alloc::Allocator + Copy`); the sides differ only in
//! that choice:
//!
//! * **memscope**: per-request memory from the worker's **stack frame**
//!   (`stack::frame`, released when the request ends, so the same few
//!   kilobytes are reused hot in cache; a document over 8 KiB uses the
//!   worker's confined `Arena` instead, reset after each request); results
//!   in the **batch's shared arena** through the worker's `arena.local()`
//!   handle, written under a **`with_acquired` guard** (one per worker per
//!   batch); the coordinator **closes each batch's session**, which frees
//!   the batch at once. `qsort` is looked up through
//!   the linker (`Library::libc()`, `Symbol::as_fn`: a typed function
//!   pointer, a direct call).
//! * **system**: `allocator_api2` collections on `Global` (what `std` does),
//!   the system allocator (glibc malloc) as the global allocator; results
//!   freed one by one when their batch is done; `qsort` as a direct
//!   `extern "C"` call.
//! * **mimalloc**: the same code as *system*, mimalloc as the global
//!   allocator.
//! * **bumpalo-herd**: per-request memory from a per-worker `bumpalo::Bump`
//!   reset after every request; results in a per-batch `Herd` (a member per
//!   worker), reset when the batch is done; direct `qsort`.
//!
//! A global allocator is per process, so each side runs in a child process
//! of this binary (`--side NAME`), with the allocator chosen by an
//! environment variable read once before `main`. Every side must produce
//! the same checksum; the program exits with status 1 if they differ.
//!
//! ```sh
//! cargo run --release --example service
//! cargo run --release --example service -- --threads 1,2 --requests 400000 --csv service.csv
//! cargo run --release --example service -- --help
//! ```

use allocator_api2::alloc::{Allocator, Global};
use allocator_api2::vec::Vec as AVec;
use bumpalo::Bump;
use bumpalo_herd::Herd;
use crossbeam::channel::{self, Receiver, Sender};
use memscope::alloc::{Arena, LocalArena, stack};
use memscope::allocator_api2;
use memscope::linker::Library;
use memscope::{Error, Session};
use std::borrow::Borrow;
use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::hash::{BuildHasher, Hash, Hasher};
use std::io::{IsTerminal, Write as _};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ============================================================ global allocator

/// The process's global allocator: the system allocator or mimalloc, chosen
/// once (on the first allocation, before `main`) from the environment
/// variable [`heap::ENV`], and never changed afterwards — so every block
/// is freed by the allocator that gave it. It also counts live bytes per
/// thread (a plain load and store on the thread's own cache line: no
/// atomic read-modify-write, the same small cost on every side) so the
/// report can show what is still held after the run.
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::ffi::CStr;
    use std::sync::atomic::{AtomicI64, AtomicU8, AtomicUsize, Ordering::Relaxed};

    /// The variable a child reads: `mimalloc`, or anything else for the
    /// system allocator.
    pub const ENV: &str = "MEMSCOPE_SERVICE_ALLOCATOR";
    const ENV_C: &CStr = c"MEMSCOPE_SERVICE_ALLOCATOR";
    const UNKNOWN: u8 = 0;
    pub const SYSTEM: u8 = 1;
    pub const MIMALLOC: u8 = 2;
    static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Which allocator this process uses.
    #[inline(always)]
    pub fn mode() -> u8 {
        match MODE.load(Relaxed) {
            UNKNOWN => decide(),
            m => m,
        }
    }

    #[cold]
    #[inline(never)]
    fn decide() -> u8 {
        // SAFETY: `ENV_C` is NUL-terminated; getenv does not allocate, and
        // nothing in this program calls setenv (the children get their
        // variable from `Command::env`, set before exec).
        let p = unsafe { libc::getenv(ENV_C.as_ptr()) };
        let m = if p.is_null() {
            SYSTEM
        } else {
            // SAFETY: getenv returned a non-null pointer to a NUL-terminated
            // string of the environment, which lives for the process.
            match unsafe { CStr::from_ptr(p) }.to_bytes() {
                b"mimalloc" => MIMALLOC,
                _ => SYSTEM,
            }
        };
        // The first allocation happens on the main thread before `main`, so
        // there is no race; if there were, both would read the same value.
        MODE.store(m, Relaxed);
        m
    }

    #[repr(align(128))]
    struct Slot(AtomicI64);
    const SLOTS: usize = 256;
    static LIVE: [Slot; SLOTS] = [const { Slot(AtomicI64::new(0)) }; SLOTS];
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        // No destructor, const-initialised: usable inside the allocator.
        static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
    }

    #[inline(always)]
    fn count(n: i64) {
        let mut i = MINE.with(|m| m.get());
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Relaxed).min(SLOTS - 1);
            MINE.with(|m| m.set(i));
        }
        let s = &LIVE[i].0;
        if i < SLOTS - 1 {
            // Only this thread writes its slot: a load and a store suffice.
            s.store(s.load(Relaxed) + n, Relaxed);
        } else {
            // The last slot is shared by every thread past the 255th.
            s.fetch_add(n, Relaxed);
        }
    }

    /// Bytes allocated and not yet freed, over all threads.
    pub fn live() -> i64 {
        LIVE.iter().map(|s| s.0.load(Relaxed)).sum()
    }

    pub struct Switch;

    // SAFETY: every call forwards to the allocator `mode()` names, which
    // never changes after the first call, so each block is reallocated and
    // freed by the allocator that allocated it; counting has no effect on
    // the blocks.
    unsafe impl GlobalAlloc for Switch {
        #[inline]
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            count(l.size() as i64);
            if mode() == MIMALLOC {
                // SAFETY: the caller's contract, forwarded.
                unsafe { mimalloc::MiMalloc.alloc(l) }
            } else {
                // SAFETY: the caller's contract, forwarded.
                unsafe { System.alloc(l) }
            }
        }
        #[inline]
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            count(l.size() as i64);
            if mode() == MIMALLOC {
                // SAFETY: the caller's contract, forwarded.
                unsafe { mimalloc::MiMalloc.alloc_zeroed(l) }
            } else {
                // SAFETY: the caller's contract, forwarded.
                unsafe { System.alloc_zeroed(l) }
            }
        }
        #[inline]
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            count(-(l.size() as i64));
            if mode() == MIMALLOC {
                // SAFETY: `p` came from `MiMalloc` (the mode never changes).
                unsafe { mimalloc::MiMalloc.dealloc(p, l) }
            } else {
                // SAFETY: `p` came from `System` (the mode never changes).
                unsafe { System.dealloc(p, l) }
            }
        }
        #[inline]
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            count(new as i64 - l.size() as i64);
            if mode() == MIMALLOC {
                // SAFETY: `p` came from `MiMalloc`; the caller's contract.
                unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
            } else {
                // SAFETY: `p` came from `System`; the caller's contract.
                unsafe { System.realloc(p, l, new) }
            }
        }
    }
}

#[global_allocator]
static GLOBAL: heap::Switch = heap::Switch;

// ============================================================ the sides

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Memscope,
    System,
    Mimalloc,
    Herd,
}

const ALL_SIDES: [Side; 4] = [Side::Memscope, Side::System, Side::Mimalloc, Side::Herd];

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Memscope => "memscope",
            Side::System => "system",
            Side::Mimalloc => "mimalloc",
            Side::Herd => "bumpalo-herd",
        }
    }
    fn parse(s: &str) -> Option<Side> {
        ALL_SIDES.into_iter().find(|x| x.name() == s)
    }
    fn allocator(self) -> &'static str {
        if self == Side::Mimalloc {
            "mimalloc"
        } else {
            "system"
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Side::Memscope => {
                "stack frame per request; results in a per-batch shared arena (local handle, \
                 with_acquired guard), session closed per batch; qsort via the linker (as_fn)"
            }
            Side::System => {
                "allocator_api2 collections on Global, glibc malloc; results freed per batch; \
                 direct qsort"
            }
            Side::Mimalloc => "the same as system, mimalloc as the global allocator",
            Side::Herd => {
                "bumpalo Bump per worker, reset per request; results in a per-batch Herd; \
                 direct qsort"
            }
        }
    }
}

// ============================================================ flags

const USAGE: &str = "\
usage: service [--threads LIST] [--requests N] [--doc-size BYTES] [--batch N]
               [--sides LIST] [--csv FILE] [--help]

Runs the same request-processing service on each side, each in its own child
process, and prints throughput, service time, peak RSS, bytes still held, the
ratio of memscope to every other side, and a checksum per side (all must match).

  --threads LIST    worker thread counts, comma-separated (default: 1,2 and the
                    powers of two up to the core count, and the core count)
  --requests N      requests per run (default 200000)
  --doc-size BYTES  approximate size of each request's document (default 512;
                    64..=1000000)
  --batch N         requests per batch: one session/arena/herd each (default 256)
  --sides LIST      any of memscope,system,mimalloc,bumpalo-herd (default: all)
  --csv FILE        also write one CSV row per run to FILE
  --help            this text

Exit status: 0 when every side agrees, 1 when checksums differ or a run fails,
2 on a bad flag.";

#[derive(Clone, Debug)]
struct Flags {
    threads: Vec<usize>,
    requests: u64,
    doc_size: usize,
    batch: u64,
    sides: Vec<Side>,
    csv: Option<String>,
    /// Child mode: run only this side, with `threads[0]` workers.
    child: Option<Side>,
}

fn default_threads() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut v = vec![1, 2];
    let mut t = 4;
    while t < cores {
        v.push(t);
        t *= 2;
    }
    if cores > 2 {
        v.push(cores);
    }
    v
}

fn parse_flags(args: impl IntoIterator<Item = String>) -> Result<Option<Flags>, String> {
    let mut f = Flags {
        threads: default_threads(),
        requests: 200_000,
        doc_size: 512,
        batch: 256,
        sides: ALL_SIDES.to_vec(),
        csv: None,
        child: None,
    };
    fn num<T>(flag: &str, v: &str, min: T, max: T) -> Result<T, String>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        match v.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(format!(
                "{flag}: expected a number from {min} to {max}, got {v:?}"
            )),
        }
    }
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((a, b)) if arg.starts_with("--") => (a.to_string(), Some(b.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let known = [
            "--threads",
            "--requests",
            "--doc-size",
            "--batch",
            "--sides",
            "--csv",
            "--side",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown flag {flag:?} (try --help)"));
        }
        let v = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => return Err(format!("{flag}: needs a value (try --help)")),
        };
        match flag.as_str() {
            "--threads" => {
                let mut list = Vec::new();
                for part in v.split(',') {
                    list.push(num("--threads", part.trim(), 1usize, 1024)?);
                }
                f.threads = list;
            }
            "--requests" => f.requests = num("--requests", &v, 1u64, 1 << 40)?,
            "--doc-size" => f.doc_size = num("--doc-size", &v, 64usize, 1_000_000)?,
            "--batch" => f.batch = num("--batch", &v, 1u64, 1 << 24)?,
            "--sides" => {
                let mut list = Vec::new();
                for part in v.split(',') {
                    let s = Side::parse(part.trim()).ok_or_else(|| {
                        format!(
                            "--sides: unknown side {part:?} (memscope, system, mimalloc, bumpalo-herd)"
                        )
                    })?;
                    if !list.contains(&s) {
                        list.push(s);
                    }
                }
                f.sides = list;
            }
            "--csv" => f.csv = Some(v),
            "--side" => {
                f.child = Some(Side::parse(&v).ok_or_else(|| {
                    format!("--side: unknown side {v:?} (memscope, system, mimalloc, bumpalo-herd)")
                })?)
            }
            _ => unreachable!("checked against `known`"),
        }
    }
    Ok(Some(f))
}

// ============================================================ documents

/// A small deterministic generator (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: [&str; 16] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa",
];

/// One order document of about `size` bytes, as a client would send it.
fn generate(seed: u64, size: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    let mut r = Rng(seed);
    let w = |r: &mut Rng| WORDS[r.below(WORDS.len() as u64) as usize];
    let start = out.len();
    let _ = write!(
        out,
        "{{\"id\":{},\"user\":{{\"name\":\"{} {}\",\"email\":\"{}.{}@example.com\",\"tags\":[",
        seed >> 16,
        w(&mut r),
        w(&mut r),
        w(&mut r),
        r.below(10_000)
    );
    for i in 0..2 + r.below(4) {
        if i > 0 {
            out.push(b',');
        }
        // Now and then a string with escapes (then it is unescaped, not sliced).
        if r.below(8) == 0 {
            let _ = write!(out, "\"{}\\n\\\"{}\\\"\"", w(&mut r), w(&mut r));
        } else {
            let _ = write!(out, "\"{}\"", w(&mut r));
        }
    }
    let _ = write!(out, "],\"score\":{}}},\"items\":[", r.below(1000));
    let tail = 120;
    let mut first = true;
    while first || out.len() - start + tail < size {
        if !first {
            out.push(b',');
        }
        first = false;
        let _ = write!(
            out,
            "{{\"sku\":\"SKU-{:04}\",\"qty\":{},\"price\":{},\"note\":\"{} {}\"}}",
            r.below(40),
            1 + r.below(9),
            99 + r.below(10_000),
            w(&mut r),
            w(&mut r)
        );
    }
    let _ = write!(
        out,
        "],\"meta\":{{\"region\":\"{}\",\"channel\":\"{}\",\"priority\":{},\"gift\":{}}},\
         \"active\":{},\"coupon\":null}}",
        w(&mut r),
        w(&mut r),
        r.below(5),
        r.below(2) == 0,
        r.below(3) != 0
    );
}

/// The documents requests carry: `POOL` distinct ones, request `i` gets
/// document `i % POOL` (read-only, shared by every worker; generated before
/// the clock starts, identical on every side).
struct Docs {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
}
const POOL: u64 = 512;

impl Docs {
    fn new(size: usize) -> Docs {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for i in 0..POOL {
            let s = bytes.len();
            generate(
                i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5eed,
                size,
                &mut bytes,
            );
            spans.push((s, bytes.len()));
        }
        Docs { bytes, spans }
    }
    fn get(&self, request: u64) -> &[u8] {
        let (s, e) = self.spans[(request % POOL) as usize];
        &self.bytes[s..e]
    }
    fn mean_len(&self) -> usize {
        self.bytes.len() / self.spans.len()
    }
}

// ============================================================ the tree

/// A fixed-seed FxHash (rustc's): the same hashes, map layouts and
/// iteration order on every side.
#[derive(Clone, Copy, Default)]
struct Fx;
struct FxHasher(u64);
const FX_K: u64 = 0xf135_7aea_2e62_a9c5;
impl BuildHasher for Fx {
    type Hasher = FxHasher;
    #[inline]
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}
impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            self.0 = (self.0 ^ w).wrapping_mul(FX_K).rotate_left(26);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0 ^ u64::from_le_bytes(b))
                .wrapping_mul(FX_K)
                .rotate_left(26);
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(FX_K).rotate_left(26);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type Map<K, V, A> = hashbrown::HashMap<K, V, Fx, A>;

/// An owned string of the tree (bytes as sent; unescaped).
struct Str<A: Allocator>(AVec<u8, A>);

impl<A: Allocator> Str<A> {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}
impl<A: Allocator> Hash for Str<A> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.bytes().hash(h) // as `[u8]` hashes: `Borrow<[u8]>` lookups work
    }
}
impl<A: Allocator> PartialEq for Str<A> {
    fn eq(&self, o: &Self) -> bool {
        self.bytes() == o.bytes()
    }
}
impl<A: Allocator> Eq for Str<A> {}
impl<A: Allocator> Borrow<[u8]> for Str<A> {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

/// A parsed JSON value: owns its strings, arrays and maps, all allocated
/// from `A`.
enum Node<A: Allocator + Copy> {
    Null,
    Bool(bool),
    Int(i64),
    Str(Str<A>),
    Arr(AVec<Node<A>, A>),
    Obj(Map<Str<A>, Node<A>, A>),
}

impl<A: Allocator + Copy> Node<A> {
    fn get(&self, key: &str) -> Option<&Node<A>> {
        match self {
            Node::Obj(m) => m.get(key.as_bytes()),
            _ => None,
        }
    }
    fn int(&self) -> Option<i64> {
        match self {
            Node::Int(i) => Some(*i),
            _ => None,
        }
    }
    fn str(&self) -> Option<&[u8]> {
        match self {
            Node::Str(s) => Some(s.bytes()),
            _ => None,
        }
    }
    fn arr(&self) -> Option<&[Node<A>]> {
        match self {
            Node::Arr(v) => Some(v),
            _ => None,
        }
    }
}

/// Why a request failed (never expected: the generator writes valid documents).
#[derive(Debug)]
enum Fail {
    Parse(usize),
    Shape(&'static str),
    Memscope(Error),
}
impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Parse(at) => write!(f, "malformed document at byte {at}"),
            Fail::Shape(what) => write!(f, "unexpected document shape: {what}"),
            Fail::Memscope(e) => write!(f, "memscope: {e}"),
        }
    }
}
impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Memscope(e)
    }
}

/// The first `"` or `\\` in `b`, eight bytes at a time.
#[inline]
fn find_quote_or_backslash(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has = |w: u64, c: u8| {
        let x = w ^ (LO * c as u64);
        x.wrapping_sub(LO) & !x & HI
    };
    let mut i = 0;
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let m = has(w, b'"') | has(w, b'\\');
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|p| i + p)
}

struct Parser<'d, A: Allocator + Copy> {
    doc: &'d [u8],
    pos: usize,
    alloc: A,
    nodes: u32,
}

impl<'d, A: Allocator + Copy> Parser<'d, A> {
    fn parse(doc: &'d [u8], alloc: A) -> Result<(Node<A>, u32), Fail> {
        let mut p = Parser {
            doc,
            pos: 0,
            alloc,
            nodes: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.pos != doc.len() {
            return Err(Fail::Parse(p.pos));
        }
        Ok((v, p.nodes))
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.doc.get(self.pos) {
            self.pos += 1;
        }
    }

    #[inline]
    fn eat(&mut self, b: u8) -> Result<(), Fail> {
        self.ws();
        if self.doc.get(self.pos) == Some(&b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Fail::Parse(self.pos))
        }
    }

    fn lit(&mut self, word: &[u8], v: Node<A>) -> Result<Node<A>, Fail> {
        if self.doc[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(Fail::Parse(self.pos))
        }
    }

    fn value(&mut self, depth: u32) -> Result<Node<A>, Fail> {
        if depth > 64 {
            return Err(Fail::Parse(self.pos));
        }
        self.ws();
        self.nodes += 1;
        match self.doc.get(self.pos) {
            Some(b'{') => {
                self.pos += 1;
                let mut m = Map::with_hasher_in(Fx, self.alloc);
                self.ws();
                if self.doc.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return Ok(Node::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    let v = self.value(depth + 1)?;
                    m.insert(k, v);
                    self.ws();
                    match self.doc.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Node::Obj(m));
                        }
                        _ => return Err(Fail::Parse(self.pos)),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut v = AVec::new_in(self.alloc);
                self.ws();
                if self.doc.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return Ok(Node::Arr(v));
                }
                loop {
                    v.push(self.value(depth + 1)?);
                    self.ws();
                    match self.doc.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Node::Arr(v));
                        }
                        _ => return Err(Fail::Parse(self.pos)),
                    }
                }
            }
            Some(b'"') => Ok(Node::Str(self.string()?)),
            Some(b't') => self.lit(b"true", Node::Bool(true)),
            Some(b'f') => self.lit(b"false", Node::Bool(false)),
            Some(b'n') => self.lit(b"null", Node::Null),
            Some(b'-' | b'0'..=b'9') => self.int(),
            _ => Err(Fail::Parse(self.pos)),
        }
    }

    fn int(&mut self) -> Result<Node<A>, Fail> {
        let neg = self.doc[self.pos] == b'-';
        if neg {
            self.pos += 1;
        }
        let start = self.pos;
        let mut n: i64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.doc.get(self.pos) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add((d - b'0') as i64))
                .ok_or(Fail::Parse(self.pos))?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(Fail::Parse(self.pos));
        }
        Ok(Node::Int(if neg { -n } else { n }))
    }

    /// A string, copied (and unescaped) into memory from `A`.
    fn string(&mut self) -> Result<Str<A>, Fail> {
        if self.doc.get(self.pos) != Some(&b'"') {
            return Err(Fail::Parse(self.pos));
        }
        self.pos += 1;
        let start = self.pos;
        let rest = &self.doc[start..];
        let end = find_quote_or_backslash(rest).ok_or(Fail::Parse(self.pos))?;
        if rest[end] == b'"' {
            // The common case: no escapes, one exact-size copy.
            let mut s = AVec::with_capacity_in(end, self.alloc);
            s.extend_from_slice(&rest[..end]);
            self.pos = start + end + 1;
            return Ok(Str(s));
        }
        let mut s = AVec::new_in(self.alloc);
        s.extend_from_slice(&rest[..end]);
        self.pos = start + end;
        loop {
            match self.doc.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Str(s));
                }
                Some(b'\\') => {
                    let c = *self.doc.get(self.pos + 1).ok_or(Fail::Parse(self.pos))?;
                    self.pos += 2;
                    match c {
                        b'n' => s.push(b'\n'),
                        b't' => s.push(b'\t'),
                        b'r' => s.push(b'\r'),
                        b'b' => s.push(8),
                        b'f' => s.push(12),
                        b'"' | b'\\' | b'/' => s.push(c),
                        b'u' => {
                            let hex = self
                                .doc
                                .get(self.pos..self.pos + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or(Fail::Parse(self.pos))?;
                            self.pos += 4;
                            let ch = char::from_u32(hex).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            s.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(Fail::Parse(self.pos)),
                    }
                }
                Some(&b) => {
                    s.push(b);
                    self.pos += 1;
                }
                None => return Err(Fail::Parse(self.pos)),
            }
        }
    }
}

// ============================================================ compute

/// What a request computes, borrowing the tree (and scratch from `A`).
struct Summary<'t, A: Allocator + Copy> {
    id: u64,
    total: i64,
    median_line: i64,
    top_line: i64,
    lines: u32,
    distinct_skus: u32,
    distinct_tags: u32,
    nodes: u32,
    tree_hash: u64,
    best_sku: &'t [u8],
    display: AVec<u8, A>,
}

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x100_0000_01b3).rotate_left(29)
}

fn bytes_hash(b: &[u8]) -> u64 {
    let mut h = Fx.build_hasher();
    h.write(b);
    h.finish()
}

/// A hash of the whole tree: arrays in order, objects independent of order.
fn tree_hash<A: Allocator + Copy>(n: &Node<A>) -> u64 {
    match n {
        Node::Null => 1,
        Node::Bool(b) => 2 + *b as u64,
        Node::Int(i) => mix(4, *i as u64),
        Node::Str(s) => mix(5, bytes_hash(s.bytes())),
        Node::Arr(v) => v.iter().fold(6, |h, x| mix(h, tree_hash(x))),
        Node::Obj(m) => m.iter().fold(7u64, |h, (k, v)| {
            h.wrapping_add(mix(bytes_hash(k.bytes()), tree_hash(v)))
        }),
    }
}

/// The request's work: the same code on every side; `a` is where its
/// scratch memory comes from, `sort` the one C call (libc qsort).
fn compute<'t, A: Allocator + Copy>(
    root: &'t Node<A>,
    nodes: u32,
    a: A,
    sort: &impl Fn(&mut [i64]),
) -> Result<Summary<'t, A>, Fail> {
    let id = root
        .get("id")
        .and_then(Node::int)
        .ok_or(Fail::Shape("id"))? as u64;
    let user = root.get("user").ok_or(Fail::Shape("user"))?;
    let items = root
        .get("items")
        .and_then(Node::arr)
        .ok_or(Fail::Shape("items"))?;
    let mut lines: AVec<i64, A> = AVec::new_in(a);
    let mut by_sku: Map<&[u8], (i64, i64), A> = Map::with_hasher_in(Fx, a);
    let mut total = 0i64;
    for it in items {
        let sku = it
            .get("sku")
            .and_then(Node::str)
            .ok_or(Fail::Shape("sku"))?;
        let qty = it
            .get("qty")
            .and_then(Node::int)
            .ok_or(Fail::Shape("qty"))?;
        let price = it
            .get("price")
            .and_then(Node::int)
            .ok_or(Fail::Shape("price"))?;
        let line = qty * price;
        total += line;
        lines.push(line);
        let e = by_sku.entry(sku).or_insert((0, 0));
        e.0 += qty;
        e.1 += line;
    }
    sort(&mut lines);
    let best_sku = by_sku
        .iter()
        .max_by(|x, y| (x.1.1, x.0).cmp(&(y.1.1, y.0)))
        .map_or(&b""[..], |(k, _)| *k);
    let mut tags: hashbrown::HashSet<&[u8], Fx, A> = hashbrown::HashSet::with_hasher_in(Fx, a);
    for t in user.get("tags").and_then(Node::arr).unwrap_or(&[]) {
        if let Some(s) = t.str() {
            tags.insert(s);
        }
    }
    let mut display = AVec::new_in(a);
    display.extend_from_slice(user.get("name").and_then(Node::str).unwrap_or(b"?"));
    display.extend_from_slice(b" <");
    display.extend_from_slice(user.get("email").and_then(Node::str).unwrap_or(b"?"));
    display.extend_from_slice(b">, ");
    for k in ["region", "channel"] {
        if let Some(v) = root.get("meta").and_then(|m| m.get(k)).and_then(Node::str) {
            display.extend_from_slice(v);
            display.push(b'/');
        }
    }
    Ok(Summary {
        id,
        total,
        median_line: lines.get(lines.len() / 2).copied().unwrap_or(0),
        top_line: lines.last().copied().unwrap_or(0),
        lines: lines.len() as u32,
        distinct_skus: by_sku.len() as u32,
        distinct_tags: tags.len() as u32,
        nodes,
        tree_hash: tree_hash(root),
        best_sku,
        display,
    })
}

/// The result a request keeps until its batch is done, in memory from `K`.
struct Record<K: Allocator> {
    request: u64,
    id: u64,
    total: i64,
    median_line: i64,
    top_line: i64,
    counts: [u32; 4],
    tree_hash: u64,
    best_sku: AVec<u8, K>,
    display: AVec<u8, K>,
}

fn copy_in<K: Allocator + Copy>(b: &[u8], k: K) -> AVec<u8, K> {
    let mut v = AVec::with_capacity_in(b.len(), k);
    v.extend_from_slice(b);
    v
}

impl<K: Allocator + Copy> Record<K> {
    fn keep<A: Allocator + Copy>(request: u64, s: &Summary<'_, A>, k: K) -> Record<K> {
        Record {
            request,
            id: s.id,
            total: s.total,
            median_line: s.median_line,
            top_line: s.top_line,
            counts: [s.lines, s.distinct_skus, s.distinct_tags, s.nodes],
            tree_hash: s.tree_hash,
            best_sku: copy_in(s.best_sku, k),
            display: copy_in(&s.display, k),
        }
    }
    /// A checksum of what was kept (read back from the kept memory).
    fn checksum(&self) -> u64 {
        let mut h = mix(self.request, self.id);
        for v in [self.total, self.median_line, self.top_line] {
            h = mix(h, v as u64);
        }
        for c in self.counts {
            h = mix(h, c as u64);
        }
        h = mix(h, self.tree_hash);
        h = mix(h, bytes_hash(&self.best_sku));
        mix(h, bytes_hash(&self.display))
    }
}

/// One request, on any side: parse with scratch from `a`, compute, and hand
/// the summary to `keep` (which stores the result record and returns its
/// checksum).
///
/// `BULK`: `a` frees everything at once when the request ends (an arena or
/// stack frame), so the tree and scratch are not walked to free them block
/// by block — what an arena saves besides the allocations themselves. The
/// tree holds nothing but memory from `a`, so skipping its destructors
/// leaks nothing.
#[inline]
fn serve<A: Allocator + Copy, const BULK: bool>(
    doc: &[u8],
    a: A,
    sort: &impl Fn(&mut [i64]),
    keep: impl FnOnce(&Summary<'_, A>) -> Result<u64, Fail>,
) -> Result<u64, Fail> {
    let (tree, nodes) = Parser::parse(doc, a)?;
    let s = compute(&tree, nodes, a, sort)?;
    let r = keep(&s);
    if BULK {
        std::mem::forget(s);
        std::mem::forget(tree);
    }
    r
}

// ============================================================ the C call

type Cmp = unsafe extern "C" fn(*const c_void, *const c_void) -> c_int;
type Qsort = unsafe extern "C" fn(*mut c_void, usize, usize, Option<Cmp>);

unsafe extern "C" {
    /// The baseline's direct call.
    fn qsort(base: *mut c_void, n: usize, size: usize, cmp: Option<Cmp>);
}

/// The comparator (stateless, the same on every side).
unsafe extern "C" fn cmp_i64(a: *const c_void, b: *const c_void) -> c_int {
    // SAFETY: qsort passes pointers to two i64 elements of the slice it
    // sorts (8-aligned: the slice is a `[i64]`).
    let (x, y) = unsafe { (*a.cast::<i64>(), *b.cast::<i64>()) };
    x.cmp(&y) as c_int
}

/// Sorts with the direct `extern "C"` qsort.
fn sort_direct(s: &mut [i64]) {
    // SAFETY: `s` is a live, exclusively borrowed slice of `s.len()` i64s
    // (8 bytes each); cmp_i64 reads exactly two such elements.
    unsafe { qsort(s.as_mut_ptr().cast(), s.len(), 8, Some(cmp_i64)) }
}

// ============================================================ the service

/// Work for a worker: requests `first .. first + count` of batch `batch`.
struct Part<C> {
    batch: u64,
    ctx: C,
    first: u64,
    count: u64,
}

/// A finished part. Workers drop their batch context *before* sending it.
struct Done<O> {
    batch: u64,
    count: u64,
    sum: u64,
    failed: u64,
    out: O,
}

/// How a part hands each request to the worker loop (which times it):
/// `each(request, serve_it)`.
type Each<'a> = dyn FnMut(u64, &mut dyn FnMut() -> Result<u64, Fail>) + 'a;

/// Per-batch resources: what the coordinator opens and closes.
trait Batches {
    type Ctx: Clone + Send + 'static;
    type Out: Send + 'static;
    fn open(&mut self) -> Result<Self::Ctx, Fail>;
    fn close(&mut self, ctx: Self::Ctx, outs: Vec<Self::Out>) -> Result<(), Fail>;
}

struct Outcome {
    served: u64,
    failed: u64,
    sum: u64,
    elapsed: Duration,
    samples: Vec<u32>,
    batches: u64,
}

/// A worker's loop: takes parts, serves each request with `serve_one`
/// (timing it), reports the part.
fn worker_loop<C, O>(
    rx: Receiver<Part<C>>,
    tx: Sender<Done<O>>,
    mut run_part: impl FnMut(Part<C>, &mut Each<'_>) -> O,
    reserve: usize,
) -> Vec<u32> {
    let mut samples = Vec::with_capacity(reserve);
    let mut reported = false;
    while let Ok(part) = rx.recv() {
        let (batch, count) = (part.batch, part.count);
        let mut sum = 0u64;
        let mut failed = 0u64;
        let out = run_part(part, &mut |request, one| {
            let t0 = Instant::now();
            let r = one();
            samples.push(t0.elapsed().as_nanos().min(u32::MAX as u128) as u32);
            match r {
                Ok(c) => sum = sum.wrapping_add(c),
                Err(e) => {
                    failed += 1;
                    if !reported {
                        reported = true;
                        eprintln!("request {request} failed: {e}");
                    }
                }
            }
        });
        if tx
            .send(Done {
                batch,
                count,
                sum,
                failed,
                out,
            })
            .is_err()
        {
            break;
        }
    }
    samples
}

/// The coordinator: cuts the requests into batches (two in flight), each
/// into parts for the workers; closes a batch when all its parts are done.
fn coordinate<B: Batches>(
    b: &mut B,
    flags: &Flags,
    threads: usize,
    label: &str,
    spawn: impl Fn(Receiver<Part<B::Ctx>>, Sender<Done<B::Out>>) -> std::thread::JoinHandle<Vec<u32>>,
) -> Result<Outcome, Fail> {
    let (part_tx, part_rx) = channel::unbounded::<Part<B::Ctx>>();
    let (done_tx, done_rx) = channel::unbounded::<Done<B::Out>>();
    let workers: Vec<_> = (0..threads)
        .map(|_| spawn(part_rx.clone(), done_tx.clone()))
        .collect();
    drop((part_rx, done_tx));
    // One part per worker per batch: each worker takes one arena handle /
    // herd member / results vector per batch.
    let part_len = flags.batch.div_ceil(threads as u64).max(1);
    let progress = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut last = start;
    struct Open<C, O> {
        batch: u64,
        ctx: C,
        parts_left: u64,
        outs: Vec<O>,
    }
    let mut open: VecDeque<Open<B::Ctx, B::Out>> = VecDeque::new();
    let (mut next, mut batches) = (0u64, 0u64);
    let (mut served, mut failed, mut sum) = (0u64, 0u64, 0u64);
    let mut result = Ok(());
    while served + failed < flags.requests {
        // Keep two batches in flight so workers never wait for a close.
        while open.len() < 2 && next < flags.requests {
            let ctx = b.open()?;
            let end = (next + flags.batch).min(flags.requests);
            let mut parts = 0;
            let mut first = next;
            while first < end {
                let count = part_len.min(end - first);
                let part = Part {
                    batch: batches,
                    ctx: ctx.clone(),
                    first,
                    count,
                };
                part_tx
                    .send(part)
                    .map_err(|_| Fail::Shape("workers gone"))?;
                first += count;
                parts += 1;
            }
            open.push_back(Open {
                batch: batches,
                ctx,
                parts_left: parts,
                outs: Vec::new(),
            });
            batches += 1;
            next = end;
        }
        let d = done_rx.recv().map_err(|_| Fail::Shape("workers gone"))?;
        served += d.count - d.failed;
        failed += d.failed;
        sum = sum.wrapping_add(d.sum);
        if let Some(i) = open.iter().position(|o| o.batch == d.batch) {
            open[i].outs.push(d.out);
            open[i].parts_left -= 1;
            if open[i].parts_left == 0
                && let Some(o) = open.remove(i)
                && let Err(e) = b.close(o.ctx, o.outs)
            {
                result = Err(e);
                break;
            }
        }
        if progress && last.elapsed() >= Duration::from_millis(250) {
            last = Instant::now();
            eprint!(
                "\r  {label}: {served}/{} requests, {:.1} s   ",
                flags.requests,
                start.elapsed().as_secs_f64()
            );
        }
    }
    let elapsed = start.elapsed();
    if progress {
        eprint!("\r{:70}\r", "");
    }
    drop(part_tx);
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.join().map_err(|_| Fail::Shape("a worker panicked"))?);
    }
    result?;
    Ok(Outcome {
        served,
        failed,
        sum,
        elapsed,
        samples,
        batches,
    })
}

// ------------------------------------------------------------ memscope

/// memscope: a shared arena (own session) per batch; closing it frees the batch.
struct MemscopeBatches {
    busy_closes: u64,
    /// The most chunk bytes one batch reserved.
    batch_reserved: usize,
    /// How often the pool was trimmed (see `close`).
    trims: u64,
}

impl Batches for MemscopeBatches {
    type Ctx = Arc<Arena>;
    type Out = ();
    fn open(&mut self) -> Result<Arc<Arena>, Fail> {
        Ok(Arc::new(Arena::shared()))
    }
    fn close(&mut self, arena: Arc<Arena>, _: Vec<()>) -> Result<(), Fail> {
        self.batch_reserved = self.batch_reserved.max(arena.reserved_bytes());
        match arena.close() {
            Ok(()) => {}
            Err(Error::Busy { .. }) => {
                // A worker still inside its guard: wait for it (parked).
                self.busy_closes += 1;
                arena.session().close_blocking()?;
            }
            Err(e) => return Err(e.into()),
        }
        // The closed batch's chunks go to the chunk pool when the last
        // handle drops (here, or on a worker). The pool hands chunks of
        // `n ..= 4n` bytes to later arenas, and keeps up to 64 MiB of the
        // sizes nobody asks for: keep at most what four batches use.
        drop(arena);
        if memscope::alloc::pool_stats().bytes > 4 * self.batch_reserved {
            memscope::alloc::trim_pool();
            self.trims += 1;
        }
        Ok(())
    }
}

fn memscope_part(
    part: Part<Arc<Arena>>,
    docs: &Docs,
    sort: &impl Fn(&mut [i64]),
    scratch: &mut Option<Arena>,
    each: &mut Each<'_>,
) {
    let arena = part.ctx;
    let requests = part.first..part.first + part.count;
    // The worker enters the batch: while the guard is held the coordinator
    // cannot close the batch's session (a close would fail with `Busy`).
    let entered = Session::with_acquired(&[arena.session()], || {
        // This worker's handle on the batch arena: bumps without atomics.
        let local: LocalArena<'_> = arena.local();
        let keep = &local;
        let mut results = AVec::with_capacity_in(part.count as usize, keep);
        for request in requests.clone() {
            each(request, &mut || {
                let doc = docs.get(request);
                if doc.len() > stack::STACK_SIZE / 8 {
                    // A big document's tree (several times the document)
                    // would not fit the thread's stack: use the worker's
                    // confined arena instead, reset after each request (it
                    // keeps its largest chunk, so the memory stays warm).
                    let sa = scratch.get_or_insert_with(Arena::confined);
                    let r = serve::<_, true>(doc, &*sa, sort, |s| {
                        // The result goes to the batch arena.
                        let rec = Record::keep(request, s, keep);
                        let c = rec.checksum();
                        results.push(rec);
                        Ok(c)
                    });
                    sa.reset();
                    return r;
                }
                // Per-request memory: this thread's stack frame, released
                // (all at once) when the closure returns.
                stack::frame(|f| {
                    serve::<_, true>(doc, f, sort, |s| {
                        // The result goes to the batch arena.
                        let rec = Record::keep(request, s, keep);
                        let c = rec.checksum();
                        results.push(rec);
                        Ok(c)
                    })
                })
            });
        }
        // `results` and `local` end here; their memory stays the batch's
        // until the coordinator closes its session.
    });
    if let Err(e) = entered {
        for request in requests {
            each(request, &mut || Err(Fail::Memscope(e.clone())));
        }
    }
    drop(arena);
}

fn run_memscope(
    flags: &Flags,
    threads: usize,
    docs: &Arc<Docs>,
) -> Result<(Outcome, u64, u64), Fail> {
    let mut b = MemscopeBatches {
        busy_closes: 0,
        batch_reserved: 0,
        trims: 0,
    };
    let reserve = flags.requests as usize / threads + 1024;
    let out = coordinate(&mut b, flags, threads, "memscope", |rx, tx| {
        let docs = docs.clone();
        std::thread::spawn(move || {
            // The one C call, linked once per worker: libc qsort as a typed
            // function pointer (a direct call, no libffi).
            let libc = Library::libc().expect("libc");
            let sym = libc.lookup("qsort").expect("qsort");
            // SAFETY: `Qsort` is qsort's C prototype:
            // void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)).
            let typed = unsafe { sym.as_fn::<Qsort>() }.expect("pointer-sized");
            let f = typed.get();
            let mut scratch = None;
            let sort = move |s: &mut [i64]| {
                // SAFETY: `f` is qsort (see above), valid while `sym` lives
                // (this thread's whole loop); `s` is a live, exclusively
                // borrowed slice of i64s and cmp_i64 compares two of them.
                unsafe { f(s.as_mut_ptr().cast(), s.len(), 8, Some(cmp_i64)) }
            };
            worker_loop(
                rx,
                tx,
                |part, each| memscope_part(part, &docs, &sort, &mut scratch, each),
                reserve,
            )
        })
    })?;
    Ok((out, b.busy_closes, b.trims))
}

// ------------------------------------------------------------ system / mimalloc

/// system and mimalloc: results are heap records, freed when the batch is done.
struct HeapBatches;

impl Batches for HeapBatches {
    type Ctx = ();
    type Out = AVec<Record<Global>, Global>;
    fn open(&mut self) -> Result<(), Fail> {
        Ok(())
    }
    fn close(&mut self, _: (), outs: Vec<Self::Out>) -> Result<(), Fail> {
        drop(outs); // every record freed, one by one
        Ok(())
    }
}

fn run_heap(flags: &Flags, threads: usize, docs: &Arc<Docs>, label: &str) -> Result<Outcome, Fail> {
    let reserve = flags.requests as usize / threads + 1024;
    coordinate(&mut HeapBatches, flags, threads, label, |rx, tx| {
        let docs = docs.clone();
        std::thread::spawn(move || {
            worker_loop(
                rx,
                tx,
                |part: Part<()>, each| {
                    let mut results = AVec::with_capacity_in(part.count as usize, Global);
                    for request in part.first..part.first + part.count {
                        each(request, &mut || {
                            serve::<_, false>(docs.get(request), Global, &sort_direct, |s| {
                                let rec = Record::keep(request, s, Global);
                                let c = rec.checksum();
                                results.push(rec);
                                Ok(c)
                            })
                        });
                    }
                    results
                },
                reserve,
            )
        })
    })
}

// ------------------------------------------------------------ bumpalo-herd

/// bumpalo-herd: a `Herd` per batch (reset and reused when the batch is done).
struct HerdBatches {
    free: Vec<Herd>,
}

impl Batches for HerdBatches {
    type Ctx = Arc<Herd>;
    type Out = ();
    fn open(&mut self) -> Result<Arc<Herd>, Fail> {
        Ok(Arc::new(self.free.pop().unwrap_or_default()))
    }
    fn close(&mut self, herd: Arc<Herd>, _: Vec<()>) -> Result<(), Fail> {
        // Every worker dropped its clone (and member) before reporting.
        let mut herd = Arc::try_unwrap(herd).map_err(|_| Fail::Shape("herd still shared"))?;
        herd.reset();
        self.free.push(herd);
        Ok(())
    }
}

fn run_herd(flags: &Flags, threads: usize, docs: &Arc<Docs>) -> Result<Outcome, Fail> {
    let reserve = flags.requests as usize / threads + 1024;
    coordinate(
        &mut HerdBatches { free: Vec::new() },
        flags,
        threads,
        "bumpalo-herd",
        |rx, tx| {
            let docs = docs.clone();
            std::thread::spawn(move || {
                let mut scratch = Bump::new();
                worker_loop(
                    rx,
                    tx,
                    |part: Part<Arc<Herd>>, each| {
                        let herd = part.ctx;
                        {
                            let member = herd.get();
                            let keep: &Bump = member.as_bump();
                            let mut results = AVec::with_capacity_in(part.count as usize, keep);
                            for request in part.first..part.first + part.count {
                                each(request, &mut || {
                                    let r = serve::<_, true>(
                                        docs.get(request),
                                        &scratch,
                                        &sort_direct,
                                        |s| {
                                            let rec = Record::keep(request, s, keep);
                                            let c = rec.checksum();
                                            results.push(rec);
                                            Ok(c)
                                        },
                                    );
                                    scratch.reset();
                                    r
                                });
                            }
                        }
                        drop(herd);
                    },
                    reserve,
                )
            })
        },
    )
}

// ============================================================ child: one run

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn pct(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as u64
}

fn child(flags: &Flags, side: Side) -> ExitCode {
    let threads = flags.threads[0];
    let want = if side == Side::Mimalloc {
        heap::MIMALLOC
    } else {
        heap::SYSTEM
    };
    if heap::mode() != want {
        eprintln!(
            "service: --side {} needs {}={} in the environment (run without --side)",
            side.name(),
            heap::ENV,
            side.allocator()
        );
        return ExitCode::from(2);
    }
    let docs = Arc::new(Docs::new(flags.doc_size));
    let live_before = heap::live();
    let run = match side {
        Side::Memscope => run_memscope(flags, threads, &docs),
        Side::System | Side::Mimalloc => {
            run_heap(flags, threads, &docs, side.name()).map(|o| (o, 0, 0))
        }
        Side::Herd => run_herd(flags, threads, &docs).map(|o| (o, 0, 0)),
    };
    let (mut out, busy, trims) = match run {
        Ok(r) => r,
        Err(e) => {
            eprintln!("service: {} failed: {e}", side.name());
            return ExitCode::from(1);
        }
    };
    out.samples.sort_unstable();
    let (p50, p99) = (pct(&out.samples, 0.50), pct(&out.samples, 0.99));
    drop(std::mem::take(&mut out.samples));
    let peak = proc_status_kib("VmHWM:");
    // Everything is closed and joined: what is still allocated?
    let held = heap::live() - live_before;
    memscope::alloc::trim_pool();
    let trimmed = heap::live() - live_before;
    println!(
        "RESULT side={} threads={threads} requests={} failed={} batches={} secs={:.6} \
         p50_ns={p50} p99_ns={p99} peak_rss_kib={peak} held={held} held_trimmed={trimmed} \
         busy_closes={busy} pool_trims={trims} checksum={:016x} doc_bytes={}",
        side.name(),
        out.served,
        out.failed,
        out.batches,
        out.elapsed.as_secs_f64(),
        out.sum,
        docs.mean_len(),
    );
    if out.failed > 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

// ============================================================ parent: every run

#[derive(Clone, Debug)]
struct RunResult {
    side: Side,
    threads: usize,
    requests: u64,
    secs: f64,
    p50_ns: u64,
    p99_ns: u64,
    peak_rss_kib: u64,
    held: i64,
    held_trimmed: i64,
    checksum: String,
    doc_bytes: u64,
}

impl RunResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

fn run_child(flags: &Flags, side: Side, threads: usize) -> Result<RunResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .args([
            "--side",
            side.name(),
            "--threads",
            &threads.to_string(),
            "--requests",
            &flags.requests.to_string(),
            "--doc-size",
            &flags.doc_size.to_string(),
            "--batch",
            &flags.batch.to_string(),
        ])
        .env(heap::ENV, side.allocator())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("starting the {} run: {e}", side.name()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .ok_or_else(|| format!("the {} run printed no result ({})", side.name(), out.status))?;
    let get = |k: &str| -> Result<&str, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .ok_or_else(|| format!("result line lacks {k}: {line}"))
    };
    let n = |k: &str| -> Result<f64, String> {
        get(k)?.parse::<f64>().map_err(|e| format!("{k}: {e}"))
    };
    if !out.status.success() {
        return Err(format!(
            "the {} run failed ({}): {line}",
            side.name(),
            out.status
        ));
    }
    Ok(RunResult {
        side,
        threads,
        requests: n("requests")? as u64,
        secs: n("secs")?,
        p50_ns: n("p50_ns")? as u64,
        p99_ns: n("p99_ns")? as u64,
        peak_rss_kib: n("peak_rss_kib")? as u64,
        held: n("held")? as i64,
        held_trimmed: n("held_trimmed")? as i64,
        checksum: get("checksum")?.to_string(),
        doc_bytes: n("doc_bytes")? as u64,
    })
}

fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e3)
}

fn parent(flags: &Flags) -> ExitCode {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let docs = Docs::new(flags.doc_size);
    println!(
        "memscope service: {} requests per run, order documents of ~{} bytes ({} distinct), \
         batches of {}, {} cores",
        flags.requests,
        docs.mean_len(),
        POOL,
        flags.batch,
        cores
    );
    drop(docs);
    for s in &flags.sides {
        println!("  {:<13} {}", s.name(), s.describe());
    }
    println!();
    println!(
        "{:<13} {:>7} {:>12} {:>9} {:>9} {:>10} {:>12} {:>12}  checksum",
        "side", "threads", "requests/s", "p50 µs", "p99 µs", "peak RSS", "held after", "after trim"
    );
    let mut results: Vec<RunResult> = Vec::new();
    let mut failed = false;
    let total = flags.threads.len() * flags.sides.len();
    for (i, &t) in flags.threads.iter().enumerate() {
        for (j, &s) in flags.sides.iter().enumerate() {
            let k = i * flags.sides.len() + j + 1;
            if std::io::stderr().is_terminal() {
                eprint!("\r  [{k}/{total}] {} on {t} threads ...", s.name());
                let _ = std::io::stderr().flush();
            }
            match run_child(flags, s, t) {
                Ok(r) => {
                    if std::io::stderr().is_terminal() {
                        eprint!("\r{:70}\r", "");
                    }
                    println!(
                        "{:<13} {:>7} {:>12.0} {:>9} {:>9} {:>7} MiB {:>12} {:>12}  {}",
                        s.name(),
                        t,
                        r.rps(),
                        us(r.p50_ns),
                        us(r.p99_ns),
                        format!("{:.1}", r.peak_rss_kib as f64 / 1024.0),
                        r.held,
                        if s == Side::Memscope {
                            r.held_trimmed.to_string()
                        } else {
                            "-".into()
                        },
                        r.checksum
                    );
                    results.push(r);
                }
                Err(e) => {
                    eprintln!("service: {e}");
                    failed = true;
                }
            }
        }
    }
    // The ratios memscope / other, per thread count.
    println!();
    println!(
        "memscope / other side (throughput: higher is better; p99 and peak RSS: lower is better)"
    );
    let mut targets: Vec<String> = Vec::new();
    for &t in &flags.threads {
        let Some(m) = results
            .iter()
            .find(|r| r.side == Side::Memscope && r.threads == t)
        else {
            continue;
        };
        for o in results
            .iter()
            .filter(|r| r.side != Side::Memscope && r.threads == t)
        {
            println!(
                "  {t} threads vs {:<13} throughput {:.2}x   p99 {:.2}x   peak RSS {:.2}x",
                o.side.name(),
                m.rps() / o.rps(),
                m.p99_ns as f64 / o.p99_ns.max(1) as f64,
                m.peak_rss_kib as f64 / o.peak_rss_kib.max(1) as f64
            );
            if t == 2 && (o.side == Side::System || o.side == Side::Mimalloc) {
                let need = if o.side == Side::System { 1.5 } else { 1.2 };
                let tp = m.rps() / o.rps();
                let mark = |ok: bool| if ok { "met" } else { "NOT met" };
                targets.push(format!(
                    "throughput >= {need}x {}: {tp:.2}x {}",
                    o.side.name(),
                    mark(tp >= need)
                ));
                targets.push(format!(
                    "p99 no worse than {}: {:.2} µs vs {:.2} µs {}",
                    o.side.name(),
                    m.p99_ns as f64 / 1e3,
                    o.p99_ns as f64 / 1e3,
                    mark(m.p99_ns <= o.p99_ns)
                ));
                if o.side == Side::System {
                    let r = m.peak_rss_kib as f64 / o.peak_rss_kib.max(1) as f64;
                    targets.push(format!(
                        "peak RSS <= 1.2x system: {r:.2}x {}",
                        mark(r <= 1.2)
                    ));
                }
            }
        }
    }
    if !targets.is_empty() {
        println!("targets (issue 17, 2 threads):");
        for t in targets {
            println!("  {t}");
        }
    }
    let sums: Vec<&str> = results.iter().map(|r| r.checksum.as_str()).collect();
    let agree = sums.windows(2).all(|w| w[0] == w[1]);
    if agree && !sums.is_empty() {
        println!("checksums: every run agrees ({})", sums[0]);
    } else if !sums.is_empty() {
        println!("checksums: RUNS DISAGREE");
        failed = true;
    }
    if let Some(path) = &flags.csv {
        let mut csv = String::from(
            "side,threads,requests,doc_bytes,seconds,requests_per_s,p50_us,p99_us,\
             peak_rss_kib,held_bytes,held_after_trim_bytes,checksum\n",
        );
        for r in &results {
            csv.push_str(&format!(
                "{},{},{},{},{:.6},{:.0},{:.3},{:.3},{},{},{},{}\n",
                r.side.name(),
                r.threads,
                r.requests,
                r.doc_bytes,
                r.secs,
                r.rps(),
                r.p50_ns as f64 / 1e3,
                r.p99_ns as f64 / 1e3,
                r.peak_rss_kib,
                r.held,
                r.held_trimmed,
                r.checksum
            ));
        }
        if let Err(e) = std::fs::write(path, csv) {
            eprintln!("service: --csv {path}: {e}");
            failed = true;
        } else {
            println!("wrote {path}");
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let flags = match parse_flags(std::env::args().skip(1)) {
        Ok(Some(f)) => f,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("service: {e}");
            return ExitCode::from(2);
        }
    };
    match flags.child {
        Some(side) => child(&flags, side),
        None => parent(&flags),
    }
}
