//! Loom only: a shadow of memory that loom cannot see (chunks from the
//! global allocator, file mappings, executable mappings, loaded libraries).
//!
//! Owns one std thread-local map from a range's base address to its shadow:
//! one loom cell per 8-byte granule while the range is live, a *tombstone*
//! once it is freed. Every loom thread of a model runs on the caller's OS
//! thread, so a std thread-local reaches all of them. A read (`with`) or
//! write (`with_mut`) of a live range is a tracked loom cell access, so a
//! model sees an access that is not ordered with the free (or with another
//! thread's write) as a data race; an access to a tombstone panics "use
//! after unmap/unload", and so does a second free. Addresses in no range
//! are not shadowed (memory the model owns, say): accesses there cost
//! nothing.
//!
//! The cells are `ManuallyDrop`: an entry left behind by a panicking model
//! holds loom objects that must never be dropped outside a model; a later
//! registration over the same addresses replaces it.
//!
//! Leaf module like `twins.rs`: it imports nothing from the crate. Its
//! users: `alloc/chunk.rs` (chunk bytes; heap memory the allocator may hand
//! to anything later, so a freed chunk leaves no tombstone: `release`),
//! `segment/raw.rs` (every byte a segment access reads or writes),
//! `segment/mapped.rs`, `linker/code.rs` and `linker/library.rs` (the
//! stand-ins for memmap2 and libloading, freed with a tombstone).
#![cfg(loom)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::mem::ManuallyDrop;
use std::rc::Rc;

const GRANULE: usize = 8;
type Cells = ManuallyDrop<Rc<[loom::cell::UnsafeCell<()>]>>;

enum Entry {
    Live(Cells),
    /// Freed: its length (in bytes).
    Tombstone(usize),
}

impl Entry {
    fn len(&self) -> usize {
        match self {
            Entry::Live(c) => c.len() * GRANULE,
            Entry::Tombstone(n) => *n,
        }
    }
}

std::thread_local! {
    static MAP: RefCell<BTreeMap<usize, Entry>> = const { RefCell::new(BTreeMap::new()) };
}

/// A failing model unwinds through drops outside its execution, where
/// loom objects must not be touched.
fn off() -> bool {
    std::thread::panicking()
}

/// Shadows `base .. base + len` with fresh cells (no access yet), replacing
/// whatever overlapped it (a freed chunk's or mapping's old entry).
pub(crate) fn register(base: usize, len: usize) {
    let len = len.max(1);
    let cells: Rc<[loom::cell::UnsafeCell<()>]> = (0..len.div_ceil(GRANULE))
        .map(|_| loom::cell::UnsafeCell::new(()))
        .collect();
    MAP.with(|m| {
        let mut m = m.borrow_mut();
        let end = base.saturating_add(len);
        let stale: Vec<usize> = m
            .range(..end)
            .rev()
            // Entries never overlap, so going down from `end` the first
            // one that ends by `base` ends the overlapping run.
            .take_while(|(b, e)| b.saturating_add(e.len()) > base)
            .map(|(b, _)| *b)
            .collect();
        for b in stale {
            // Leaked, not dropped: a stale entry's cells may belong to a
            // finished execution.
            let _ = m.remove(&b);
        }
        m.insert(base, Entry::Live(ManuallyDrop::new(cells)));
    });
}

type Shared = Rc<[loom::cell::UnsafeCell<()>]>;

/// The entry holding `addr`: its base and cells, or `Err(())` for a
/// tombstone; `None` if no range holds `addr`.
fn find(addr: usize) -> Option<(usize, Result<Shared, ()>)> {
    MAP.with(|m| {
        let m = m.borrow();
        let (base, e) = m.range(..=addr).next_back()?;
        if addr >= base.saturating_add(e.len()) {
            return None;
        }
        Some((
            *base,
            match e {
                Entry::Live(c) => Ok(Rc::clone(c)),
                Entry::Tombstone(_) => Err(()),
            },
        ))
    })
}

fn access(addr: usize, len: usize, write: bool) {
    if len == 0 || off() {
        return;
    }
    let Some((base, cells)) = find(addr) else {
        return;
    };
    let Ok(cells) = cells else {
        panic!(
            "use after unmap/unload: {} of 0x{addr:x} + {len} in a freed range at 0x{base:x}",
            if write { "write" } else { "read" }
        );
    };
    let first = (addr - base) / GRANULE;
    let last = ((addr - base + len - 1) / GRANULE).min(cells.len() - 1);
    for c in &cells[first..=last] {
        if write {
            c.with_mut(|_| ());
        } else {
            c.with(|_| ());
        }
    }
}

/// A read of `addr .. addr + len` (loom reports it if it is not ordered
/// after the range's writes by other threads, or before its free).
pub(crate) fn read(addr: usize, len: usize) {
    access(addr, len, false);
}

/// A write of `addr .. addr + len`.
pub(crate) fn write(addr: usize, len: usize) {
    access(addr, len, true);
}

/// Unmapped/unloaded: a write of all of `base .. base + len`, then a
/// tombstone, so a later access (or a second free) panics.
pub(crate) fn free(base: usize, len: usize) {
    if off() {
        return;
    }
    match find(base) {
        Some((b, Err(()))) if b == base => {
            panic!("freed twice: the range at 0x{base:x} was already unmapped/unloaded")
        }
        Some((b, Ok(_))) if b == base => {}
        _ => panic!("free of 0x{base:x}, which is not a registered range"),
    }
    write(base, len.max(1));
    let old = MAP.with(|m| m.borrow_mut().insert(base, Entry::Tombstone(len.max(1))));
    if let Some(Entry::Live(c)) = old {
        drop(ManuallyDrop::into_inner(c));
    }
}

/// Heap memory given back to the allocator (which may hand it to anything
/// next): a write of all of it, then the entry goes (no tombstone).
pub(crate) fn release(base: usize, len: usize) {
    write(base, len);
    let c = MAP.with(|m| m.borrow_mut().remove(&base));
    if let Some(Entry::Live(c)) = c
        && !off()
    {
        drop(ManuallyDrop::into_inner(c));
    }
}

/// Whether a live range starts at `base` (for leak asserts: a tombstone or
/// nothing is `false`).
pub(crate) fn is_live(base: usize) -> bool {
    matches!(find(base), Some((b, Ok(_))) if b == base)
}

/// A fresh base address for a stand-in range that is no real memory (a
/// loaded library): inside the kernel half of the address space, so no
/// user-space allocation or segment can ever name it, and never reused.
pub(crate) fn fake_range(len: usize) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    static NEXT: AtomicUsize = AtomicUsize::new(0xffff_a000_0000_0000);
    NEXT.fetch_add(len.max(1).next_multiple_of(GRANULE) + GRANULE, Relaxed)
}

/// How many live ranges there are (a leak assert compares two counts).
pub(crate) fn live_ranges() -> usize {
    MAP.with(|m| {
        m.borrow()
            .values()
            .filter(|e| matches!(e, Entry::Live(_)))
            .count()
    })
}

/// A value that owns a shadowed range (a memmap2 mapping): registered when
/// made, freed when it drops, just before the value itself drops (the
/// unmap). A mapping that is leaked leaves its range live.
pub(crate) struct Shadowed<T> {
    _inner: T,
    base: usize,
    len: usize,
}

impl<T> Shadowed<T> {
    pub(crate) fn new(inner: T, base: usize, len: usize) -> Self {
        register(base, len);
        Shadowed {
            _inner: inner,
            base,
            len,
        }
    }
}

impl<T> Drop for Shadowed<T> {
    fn drop(&mut self) {
        free(self.base, self.len);
    }
}
