//! Shared libraries (libloading) tied to a session, and the symbols in them.
//!
//! This is one of the few files with `unsafe` code: `dlopen` runs the
//! library's initialisers, and `dlsym` hands back raw addresses.

use std::ffi::c_void;
use std::fmt;

use crate::segment::Address;
// `Counted`/`CountedWeak` are std's `Arc`/`Weak` outside loom; under loom
// they also count in a loom atomic, so the models see every holder's uses
// (a call through a symbol) happen-before the unload (loom's `Arc` has no
// `Weak`).
use crate::sync::{AtomicBool, Counted, CountedWeak, Ordering};
use crate::{Error, Result, Session};

/// The loaded library behind a [`Library`]; symbols hold it by `Arc`, so it
/// is unloaded only when the session has closed *and* the last symbol taken
/// from it is gone.
pub(crate) struct Loaded {
    lib: libloading::Library,
    name: String,
    /// Set by the session's close action: calls through symbols of a
    /// closed library's session fail with `Closed` (the mapping itself
    /// stays while a symbol holds this).
    closed: AtomicBool,
    /// Loom: the stand-in for the library's code and data (a fake range of
    /// `crate::shadow`, freed when this drops: the `dlclose`), and the
    /// global segments registered in the shadow at their real addresses.
    #[cfg(loom)]
    shadow: usize,
    #[cfg(loom)]
    globals: std::sync::Mutex<Vec<(usize, usize)>>,
}

#[cfg(loom)]
impl Drop for Loaded {
    /// The unload (`dlclose` runs when `lib` drops, just after): a write of
    /// the stand-in and of every global registered, then tombstones.
    fn drop(&mut self) {
        crate::shadow::free(self.shadow, 1);
        let globals = std::mem::take(&mut *self.globals.lock().unwrap_or_else(|e| e.into_inner()));
        for (addr, len) in globals {
            crate::shadow::free(addr, len);
        }
    }
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded").field("name", &self.name).finish()
    }
}

/// A shared library loaded for the lifetime of a session (Janet `ffi/native`,
/// Java `SymbolLookup.libraryLookup`).
///
/// The session's close unloads it (through a close action) unless a
/// [`Symbol`] taken from it — or a [`Downcall`](super::Downcall) made from
/// such a symbol — is still alive: those keep the library mapped until they
/// are dropped. After the close, [`lookup`](Library::lookup) fails with
/// [`Error::Closed`].
///
/// # Examples
///
/// ```
/// use memscope::linker::{Library, SymbolLookup};
/// let libc = Library::libc()?;
/// let strlen = libc.lookup("strlen")?;
/// assert!(!strlen.address().is_null());
/// assert!(matches!(libc.lookup("no_such_symbol_xyz"),
///                  Err(memscope::Error::SymbolNotFound { .. })));
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Clone)]
pub struct Library {
    /// Weak: the strong reference lives in the session's close action (and
    /// in symbols), so closing the session really unloads the library.
    loaded: CountedWeak<Loaded>,
    session: Session,
    name: String,
    /// Loom: the library's stand-in range (`Loaded::shadow`).
    #[cfg(loom)]
    shadow: usize,
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library")
            .field("name", &self.name)
            .field("session", &self.session)
            .finish()
    }
}

/// A linker broken twin (`session::broken::Twin`) by name; `false` outside loom.
#[inline(always)]
fn twin_on(name: &str) -> bool {
    crate::session::state::twin_on(name)
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.as_bytes().contains(&0) {
        return Err(Error::InvalidString {
            reason: format!("{what} {name:?} contains a NUL byte"),
        });
    }
    Ok(())
}

impl Library {
    /// Loads the shared library at `path` (or found by the dynamic loader
    /// under that name, e.g. `"libm.so.6"`) and ties it to `session`: the
    /// session's close unloads it once no symbol from it is alive.
    ///
    /// # Safety
    ///
    /// Loading a library runs its initialisation routines (`.init_array`,
    /// C++ static constructors), which is the same as calling an unknown
    /// foreign function: the caller must trust the library. Unloading it
    /// later runs its finalisers likewise. (This mirrors
    /// `libloading::Library::new`; that is why this function is `unsafe`
    /// while [`Library::libc`] and [`Library::this_process`], which load
    /// nothing new, are safe.)
    ///
    /// # Errors
    ///
    /// [`Error::InvalidString`] if `path` contains a NUL byte;
    /// [`Error::LibraryLoad`] if `path` is empty (`dlopen` would hand out
    /// the running program: use [`Library::this_process`] for that) or the
    /// loader fails (message from `dlerror`); [`Error::Closed`] if `session`
    /// is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Error, Session, linker::Library};
    /// let s = Session::shared();
    /// // SAFETY: libm's initialisers are trusted.
    /// let libm = unsafe { Library::open("libm.so.6", &s) }?;
    /// assert!(libm.lookup("cos").is_ok());
    /// let bad = unsafe { Library::open("/no/such/lib.so", &s) };
    /// assert!(matches!(bad, Err(Error::LibraryLoad { .. })));
    /// assert!(matches!(unsafe { Library::open("", &s) }, Err(Error::LibraryLoad { .. })));
    /// s.close()?;
    /// assert_eq!(libm.lookup("cos").unwrap_err(), Error::Closed);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[doc(alias = "libraryLookup")]
    #[doc(alias = "CDLL")]
    pub unsafe fn open(path: &str, session: &Session) -> Result<Library> {
        check_name("library name", path)?;
        if path.is_empty() {
            // dlopen("") is dlopen(NULL): the running program, not a library.
            return Err(Error::LibraryLoad {
                name: String::new(),
                reason: "empty path (use Library::this_process for the running program)".into(),
            });
        }
        // Fail early (and load nothing) if the session is already closed.
        drop(session.enter()?);
        // SAFETY: the caller trusts the library's initialisers (# Safety).
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| Error::LibraryLoad {
            name: path.to_owned(),
            reason: e.to_string(),
        })?;
        Library::adopt(lib, path, session)
    }

    fn adopt(lib: libloading::Library, name: &str, session: &Session) -> Result<Library> {
        #[cfg(loom)]
        let shadow = crate::shadow::fake_range(1);
        #[cfg(loom)]
        crate::shadow::register(shadow, 1);
        let loaded = Counted::new(Loaded {
            lib,
            name: name.to_owned(),
            closed: AtomicBool::new(false),
            #[cfg(loom)]
            shadow,
            #[cfg(loom)]
            globals: std::sync::Mutex::new(Vec::new()),
        });
        let weak = Counted::downgrade(&loaded);
        // The close action owns the strong reference: closing drops it
        // (after marking it closed for the symbols that still hold it).
        session.add_close_action(move || {
            #[cfg(loom)]
            if crate::session::state::twin_on("CloseUnloadsUnderSymbols") {
                // A close that unloads the library itself (`dlclose` at
                // close), whatever symbols still hold it.
                crate::shadow::free(loaded.shadow, 1);
            }
            if !twin_on("LibraryCloseNoMark") {
                loaded.closed.store(true, Ordering::Release);
            }
            drop(loaded)
        })?;
        Ok(Library {
            loaded: weak,
            session: session.clone(),
            name: name.to_owned(),
            #[cfg(loom)]
            shadow,
        })
    }

    /// The symbols of the running program and every library it has loaded
    /// globally (`dlopen(NULL)`), tied to the global session.
    ///
    /// # Examples
    ///
    /// ```
    /// let me = memscope::linker::Library::this_process();
    /// assert!(me.lookup("malloc").is_ok());
    /// ```
    #[cfg(unix)]
    #[doc(alias = "loaderLookup")]
    pub fn this_process() -> Library {
        // Opened once: every call would otherwise add a close action to the
        // global session (which never runs them). (Under loom the static
        // would hold one model's loom objects: models open libc with
        // `Library::open` on their own sessions instead.)
        static THIS: std::sync::OnceLock<Library> = std::sync::OnceLock::new();
        THIS.get_or_init(|| {
            let lib: libloading::Library = libloading::os::unix::Library::this().into();
            Library::adopt(lib, "<this process>", &Session::global())
                .expect("the global session never closes")
        })
        .clone()
    }

    /// The C library (`libc.so.6` on Linux), tied to the global session.
    ///
    /// # Errors
    ///
    /// [`Error::LibraryLoad`] if the platform's C library cannot be found.
    ///
    /// # Examples
    ///
    /// ```
    /// let libc = memscope::linker::Library::libc()?;
    /// assert_eq!(libc.name(), "libc.so.6");
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[cfg(unix)]
    #[doc(alias = "defaultLookup")]
    pub fn libc() -> Result<Library> {
        static LIBC: std::sync::OnceLock<Result<Library>> = std::sync::OnceLock::new();
        LIBC.get_or_init(|| {
            let name = if cfg!(target_os = "macos") {
                "/usr/lib/libSystem.B.dylib"
            } else {
                "libc.so.6"
            };
            // SAFETY: the C library is already loaded into every Rust
            // program on these platforms; opening it again runs no
            // initialiser.
            unsafe { Library::open(name, &Session::global()) }
        })
        .clone()
    }

    /// The name or path the library was opened with.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memscope::linker::Library::this_process().name(), "<this process>");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The session the library is tied to.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = memscope::linker::Library::libc()?;
    /// assert_eq!(l.session().kind(), memscope::SessionKind::Global);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Loom: the library's stand-in range in `crate::shadow` (live from the
    /// load to the unload), for the models' asserts.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_shadow(&self) -> usize {
        self.shadow
    }

    fn loaded(&self) -> Result<(Counted<Loaded>, crate::session::Access<'_>)> {
        let access = self.session.enter()?;
        // Inside the access the close action cannot have run yet (close
        // drains plain accesses before running actions), so the upgrade only
        // fails if the session was closed before `enter` — which `enter`
        // reports — or the library was dropped with a global session.
        let loaded = self.loaded.upgrade().ok_or(Error::Closed)?;
        Ok((loaded, access))
    }

    /// Finds `name` in this library (also available through [`SymbolLookup`]).
    ///
    /// # Errors
    ///
    /// [`Error::SymbolNotFound`], [`Error::InvalidString`] for a name with a
    /// NUL byte, [`Error::Closed`] if the library's session has closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let libc = memscope::linker::Library::libc()?;
    /// assert_eq!(libc.lookup("printf")?.name(), "printf");
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn lookup(&self, name: &str) -> Result<Symbol> {
        check_name("symbol name", name)?;
        let (loaded, _access) = self.loaded()?;
        // SAFETY: we only take the symbol's address (as an untyped pointer);
        // nothing is called or dereferenced here.
        let sym = unsafe { loaded.lib.get::<*mut c_void>(name.as_bytes()) };
        match sym {
            Ok(s) => Ok(Symbol {
                addr: Address::from_ptr(*s as *const u8),
                name: name.to_owned(),
                _keep: None,
                lib: if twin_on("SymbolNoLibraryHold") {
                    None
                } else {
                    Some(loaded.clone())
                },
                #[cfg(loom)]
                shadow: loaded.shadow,
            }),
            Err(_) => Err(Error::SymbolNotFound {
                name: name.to_owned(),
            }),
        }
    }

    /// A data symbol (a C global variable) of `size` bytes as a segment of
    /// `session` (coffi `static-variable`): reads and writes go to the
    /// library's own storage. The segment keeps nothing alive by itself: tie
    /// it to this library's session (or one that closes before it).
    ///
    /// The segment is writable only if the whole object lies in a writable
    /// `PT_LOAD` segment of the ELF object that holds it and outside its
    /// `PT_GNU_RELRO` range (made read-only after relocation); otherwise —
    /// a `const` object in `.rodata`, a relocated `const` pointer, or an
    /// address in no loaded object — it is [read-only](crate::Segment::is_read_only)
    /// and `set` returns [`Error::ReadOnly`] instead of faulting. (On
    /// platforms without `dl_iterate_phdr` every global is read-only.)
    ///
    /// # Safety
    ///
    /// The symbol must name an object of at least `size` bytes that stays
    /// mapped while `session` is alive (use the library's own session), and
    /// that C code does not write concurrently with this segment's accesses.
    ///
    /// # Errors
    ///
    /// As [`lookup`](Self::lookup).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::linker::Library;
    /// let libc = Library::libc()?;
    /// // SAFETY: `environ` is a pointer-sized global of libc, which stays loaded.
    /// let env = unsafe { libc.global("environ", 8, libc.session()) }?;
    /// assert!(!env.get::<memscope::Address>(0)?.is_null());
    /// assert!(!env.is_read_only());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub unsafe fn global<'s>(
        &self,
        name: &str,
        size: usize,
        session: &'s Session,
    ) -> Result<crate::Segment<'s>> {
        let sym = self.lookup(name)?;
        // Loom: the object's bytes, shadowed until the library unloads.
        #[cfg(loom)]
        if let Some(l) = &sym.lib
            && size > 0
            && !crate::shadow::is_live(sym.address().get())
        {
            crate::shadow::register(sym.address().get(), size);
            l.globals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((sym.address().get(), size));
        }
        // SAFETY: the caller vouches for size and lifetime (# Safety); writes
        // are only allowed where the mapping is writable (below).
        let mut seg = unsafe { crate::Segment::from_raw(sym.address(), size, session) }?;
        if !is_writable(sym.address().get(), size) {
            seg.read_only = true;
        }
        Ok(seg)
    }
}

impl Library {
    /// A data symbol typed by a Rust type: [`global`](Self::global) with the
    /// size of `T`'s C layout, tied to this library's session (closing it
    /// ends the segment; the library stays mapped while the segment's
    /// session is open). Read and write it with the marshal views
    /// ([`read_seq`](crate::marshal::read_seq),
    /// [`StructView`](crate::marshal::StructView)). A `const` object is
    /// [read-only](crate::Segment::is_read_only), as for `global`.
    ///
    /// # Safety
    ///
    /// The symbol must name a C object whose type is `T`'s C layout (at
    /// least `T::SIZE` bytes, and any bit pattern of it read back as a `T`
    /// is one C could have stored), and C code must not write it
    /// concurrently with this segment's accesses.
    ///
    /// # Errors
    ///
    /// As [`lookup`](Self::lookup); [`Error::Misaligned`] if the symbol's
    /// address is not aligned for `T` (so it cannot be a `T`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::linker::Library;
    /// let libc = Library::libc()?;
    /// // SAFETY: `char **environ` is a pointer-sized global of libc.
    /// let env = unsafe { libc.global_of::<memscope::Address>("environ") }?;
    /// assert_eq!(env.len(), 8);
    /// let first = memscope::marshal::read_seq::<memscope::Address>(&env, 0, 1)?;
    /// assert!(!first[0].is_null());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub unsafe fn global_of<T: crate::marshal::Marshal>(
        &self,
        name: &str,
    ) -> Result<crate::Segment<'_>> {
        // SAFETY: forwarded (# Safety): the object is a `T`, whose layout
        // is `T::layout()`.
        unsafe { self.global_layout(name, &T::layout()) }
    }

    /// A data symbol typed by a C layout: [`global`](Self::global) with the
    /// layout's size, its address checked against the layout's alignment,
    /// tied to this library's session. A `const` object is
    /// [read-only](crate::Segment::is_read_only), as for `global`.
    ///
    /// # Safety
    ///
    /// The symbol must name a C object of type `layout` (at least
    /// `layout.size()` bytes), and C code must not write it concurrently
    /// with this segment's accesses.
    ///
    /// # Errors
    ///
    /// As [`lookup`](Self::lookup); [`Error::Misaligned`] if the address is
    /// not aligned to `layout.align()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::{MemoryLayout, c};
    /// use memscope::linker::Library;
    /// use memscope::marshal::StructView;
    /// let libc = Library::libc()?;
    /// // `const struct in6_addr in6addr_loopback` is `::1`: 16 bytes in .rodata.
    /// let in6 = MemoryLayout::c_struct([MemoryLayout::sequence(16, c::UCHAR)?.with_name("s6_addr")])?;
    /// // SAFETY: `in6addr_loopback` is a `struct in6_addr` of libc.
    /// let lo = unsafe { libc.global_layout("in6addr_loopback", &in6) }?;
    /// assert!(lo.is_read_only());
    /// assert_eq!(StructView::new(&in6, &lo, 0)?.get_as::<u8>("s6_addr[15]")?, 1);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub unsafe fn global_layout(
        &self,
        name: &str,
        layout: &crate::layout::MemoryLayout,
    ) -> Result<crate::Segment<'_>> {
        let sym = self.lookup(name)?;
        let (addr, align) = (sym.address().get(), layout.align().max(1));
        if !addr.is_multiple_of(align) {
            return Err(Error::Misaligned { addr, align });
        }
        // SAFETY: forwarded (# Safety): the object has the layout's size and
        // the library's session is the one that keeps it mapped.
        unsafe { self.global(name, layout.size(), &self.session) }
    }
}

/// Whether `addr .. addr + size` lies in memory the dynamic loader mapped
/// writable and leaves writable: inside one `PT_LOAD` segment with `PF_W` of
/// a loaded object, and not overlapping that object's `PT_GNU_RELRO` range
/// (which `ld.so` makes read-only after relocation; taken page-rounded
/// downwards at its start, as `mprotect` applies it). Anything not found is
/// not writable.
#[cfg(target_os = "linux")]
fn is_writable(addr: usize, size: usize) -> bool {
    use std::ffi::c_int;

    struct Query {
        start: usize,
        end: usize,
        page: usize,
        found: Option<bool>,
    }

    /// `dl_iterate_phdr` callback: returns non-zero (stop) at the object
    /// whose `PT_LOAD` segments contain `start`.
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `&mut Query` passed to `dl_iterate_phdr`
        // below, alive and unaliased for the whole iteration; `info` points
        // to a valid `dl_phdr_info` for the duration of this call (the
        // function's contract).
        let (q, info) = unsafe { (&mut *data.cast::<Query>(), &*info) };
        if info.dlpi_phdr.is_null() || info.dlpi_phnum == 0 {
            return 0;
        }
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of this
        // object, valid during the callback.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        let base = info.dlpi_addr as usize;
        let range = |vaddr: usize, memsz: usize| {
            let s = base.wrapping_add(vaddr);
            (s, s.saturating_add(memsz))
        };
        let mut inside = false;
        let mut writable = false;
        for ph in phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD) {
            let (s, e) = range(ph.p_vaddr as usize, ph.p_memsz as usize);
            if q.start >= s && q.start < e {
                inside = true;
                writable |= ph.p_flags & libc::PF_W != 0 && q.end <= e;
            }
        }
        if !inside {
            return 0;
        }
        for ph in phdrs.iter().filter(|p| p.p_type == libc::PT_GNU_RELRO) {
            let (s, e) = range(ph.p_vaddr as usize, ph.p_memsz as usize);
            let s = s & !(q.page - 1);
            if q.start < e && q.end > s {
                writable = false;
            }
        }
        q.found = Some(writable);
        1
    }

    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 && (page as usize).is_power_of_two() {
        page as usize
    } else {
        4096
    };
    let mut q = Query {
        start: addr,
        end: addr.saturating_add(size.max(1)),
        page,
        found: None,
    };
    // SAFETY: `visit` matches the callback type and only uses `data` as the
    // `Query` we pass, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut q).cast::<c_void>()) };
    q.found.unwrap_or(false)
}

/// Without `dl_iterate_phdr` nothing is known to be writable.
#[cfg(not(target_os = "linux"))]
fn is_writable(_addr: usize, _size: usize) -> bool {
    false
}

/// Something symbols can be looked up in: a [`Library`], or a chain of them
/// built with [`or`](SymbolLookup::or) (Java `SymbolLookup.or`).
///
/// # Examples
///
/// ```
/// use memscope::linker::{Library, SymbolLookup};
/// let both = Library::libc()?.or(Library::this_process());
/// assert!(both.lookup("qsort").is_ok());
/// # Ok::<(), memscope::Error>(())
/// ```
pub trait SymbolLookup {
    /// Finds `name`.
    ///
    /// # Errors
    ///
    /// [`Error::SymbolNotFound`], [`Error::InvalidString`] for a name with a
    /// NUL byte, [`Error::Closed`] if the library's session has closed.
    fn lookup(&self, name: &str) -> Result<Symbol>;

    /// Looks in `self` first, then in `other`.
    fn or<L: SymbolLookup>(self, other: L) -> Chain<Self, L>
    where
        Self: Sized,
    {
        Chain {
            first: self,
            second: other,
        }
    }
}

impl SymbolLookup for Library {
    fn lookup(&self, name: &str) -> Result<Symbol> {
        Library::lookup(self, name)
    }
}

/// Two lookups chained with [`SymbolLookup::or`].
///
/// # Examples
///
/// ```
/// use memscope::linker::{Library, SymbolLookup};
/// let c = Library::this_process().or(Library::libc()?);
/// assert!(matches!(c.lookup("nope_nope"), Err(memscope::Error::SymbolNotFound { .. })));
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Debug)]
pub struct Chain<A, B> {
    first: A,
    second: B,
}

impl<A: SymbolLookup, B: SymbolLookup> SymbolLookup for Chain<A, B> {
    fn lookup(&self, name: &str) -> Result<Symbol> {
        match self.first.lookup(name) {
            Err(Error::SymbolNotFound { .. }) => self.second.lookup(name),
            r => r,
        }
    }
}

/// The address of a function or variable, keeping its library loaded while
/// it lives (DESIGN.md semantics 13).
///
/// # Examples
///
/// ```
/// use memscope::linker::{Library, SymbolLookup};
/// let sym = Library::libc()?.lookup("abs")?;
/// assert_eq!(sym.name(), "abs");
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Clone)]
pub struct Symbol {
    addr: Address,
    name: String,
    /// What keeps the code/data alive: the loaded library, an upcall stub's
    /// closure, an executable mapping (`None` for raw addresses and
    /// library symbols).
    _keep: Option<Keep>,
    /// The library a looked-up symbol came from (keeps it mapped; its
    /// `closed` flag says whether the library's session has closed).
    lib: Option<Counted<Loaded>>,
    /// Loom: the shadow address a call through this symbol reads before it
    /// runs (its library's stand-in, or the code's own address).
    #[cfg(loom)]
    shadow: usize,
}

/// A reference that keeps a symbol's memory mapped (an executable
/// mapping; a symbol of a library holds its `Loaded` instead).
pub(crate) type Keep = Counted<super::code::CodeMap>;

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Symbol")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl Symbol {
    /// A symbol for a bare code or data address (a function pointer C
    /// returned, an [`UpcallStub`](super::UpcallStub)'s code, JIT code).
    ///
    /// # Safety
    ///
    /// Whatever `addr` points to must stay valid while this symbol (and any
    /// downcall made from it) is used: nothing keeps it alive.
    ///
    /// # Errors
    ///
    /// [`Error::NullAddress`] for NULL.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Address, linker::Symbol};
    /// extern "C" fn f() {}
    /// // SAFETY: `f` is part of this program and never unloaded.
    /// let s = unsafe { Symbol::from_address(Address::from_ptr(f as *const u8)) }?;
    /// assert_eq!(s.address(), Address::from_ptr(f as *const u8));
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub unsafe fn from_address(addr: Address) -> Result<Symbol> {
        if addr.is_null() {
            return Err(Error::NullAddress);
        }
        Ok(Symbol {
            addr,
            name: format!("{addr}"),
            _keep: None,
            lib: None,
            #[cfg(loom)]
            shadow: addr.0,
        })
    }

    /// The symbol's address.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::linker::{Library, SymbolLookup};
    /// assert!(!Library::libc()?.lookup("free")?.address().is_null());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn address(&self) -> Address {
        self.addr
    }

    /// The name it was looked up by (or the address, for
    /// [`from_address`](Self::from_address)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::linker::{Library, SymbolLookup};
    /// assert_eq!(Library::libc()?.lookup("free")?.name(), "free");
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reinterprets the symbol as a function pointer of type `F` (an
    /// `extern "C" fn(..) -> ..` type), for calls with no marshaling at all
    /// (PERFORMANCE.md row 10). The returned value borrows the symbol, so
    /// the library stays loaded while it is used.
    ///
    /// # Safety
    ///
    /// `F` must be a function-pointer type whose signature and calling
    /// convention match the C function exactly, and the copy of the pointer
    /// obtained from it must not be used after the [`TypedFn`] is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSignature`] if `F` is not pointer-sized.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::linker::{Library, SymbolLookup};
    /// let abs = Library::libc()?.lookup("abs")?;
    /// // SAFETY: `int abs(int)`.
    /// let f = unsafe { abs.as_fn::<extern "C" fn(i32) -> i32>() }?;
    /// assert_eq!((f.get())(-5), 5);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    pub unsafe fn as_fn<F: Copy>(&self) -> Result<TypedFn<'_, F>> {
        if size_of::<F>() != size_of::<usize>() || align_of::<F>() != align_of::<usize>() {
            return Err(Error::InvalidSignature {
                reason: format!(
                    "{} is not a function pointer type",
                    std::any::type_name::<F>()
                ),
            });
        }
        // SAFETY: F is pointer-sized (checked above) and, by the caller's
        // promise, a function pointer type matching the symbol.
        let f = unsafe { std::mem::transmute_copy::<usize, F>(&self.addr.0) };
        Ok(TypedFn {
            f,
            _symbol: std::marker::PhantomData,
            #[cfg(loom)]
            sym: self,
        })
    }

    /// A symbol for `addr` that keeps `keep` alive.
    pub(crate) fn kept(addr: Address, name: String, keep: Keep) -> Symbol {
        Symbol {
            addr,
            name,
            _keep: if twin_on("CodeSymbolNoKeep") {
                None
            } else {
                Some(keep)
            },
            lib: None,
            #[cfg(loom)]
            shadow: addr.0,
        }
    }

    /// Loom: a read of what a call through this symbol runs (its library's
    /// stand-in range, or the code at its address): every call path reads
    /// it just before it calls, so a call into unloaded or unmapped code is
    /// a "use after unmap/unload" or a race with the unload in the model.
    #[cfg(loom)]
    pub(crate) fn shadow_read(&self) {
        crate::shadow::read(self.shadow, 1);
    }

    /// Loom: the library's stand-in address (`Library::loom_shadow`).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_shadow(&self) -> usize {
        self.shadow
    }

    /// Whether the session of the library this symbol was looked up in has
    /// closed (always `false` for other symbols). One load: the library
    /// stays mapped while the symbol lives whatever this says, so calls
    /// check it only to fail as Java's do after a close.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::{Session, linker::Library};
    /// let s = Session::shared();
    /// // SAFETY: libm's initialisers are trusted.
    /// let cos = unsafe { Library::open("libm.so.6", &s) }?.lookup("cos")?;
    /// assert!(!cos.is_closed());
    /// s.close()?;
    /// assert!(cos.is_closed());
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn is_closed(&self) -> bool {
        self.lib
            .as_ref()
            .is_some_and(|l| l.closed.load(Ordering::Acquire))
    }
}

/// A C function pointer of Rust type `F`, borrowed from a [`Symbol`] so that
/// its library stays loaded (see [`Symbol::as_fn`]). Calling it costs exactly
/// a direct `extern "C"` call.
///
/// # Examples
///
/// ```
/// use memscope::linker::{Library, SymbolLookup};
/// let labs = Library::libc()?.lookup("labs")?;
/// // SAFETY: `long labs(long)`.
/// let f = unsafe { labs.as_fn::<extern "C" fn(i64) -> i64>() }?;
/// assert_eq!((f.get())(i64::MIN + 1), i64::MAX);
/// # Ok::<(), memscope::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TypedFn<'sym, F> {
    f: F,
    _symbol: std::marker::PhantomData<&'sym Symbol>,
    /// Loom: the symbol, whose code `get` reads in the shadow.
    #[cfg(loom)]
    sym: &'sym Symbol,
}

impl<F: Copy> TypedFn<'_, F> {
    /// The function pointer (use it only while `self` is alive).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memscope::linker::{Library, SymbolLookup};
    /// # let abs = Library::libc()?.lookup("abs")?;
    /// let f = unsafe { abs.as_fn::<extern "C" fn(i32) -> i32>() }?;
    /// assert_eq!((f.get())(i32::MIN + 1), i32::MAX);
    /// # Ok::<(), memscope::Error>(())
    /// ```
    #[inline(always)]
    pub fn get(&self) -> F {
        #[cfg(loom)]
        self.sym.shadow_read();
        self.f
    }
}

impl<F> std::ops::Deref for TypedFn<'_, F> {
    type Target = F;
    #[inline(always)]
    fn deref(&self) -> &F {
        #[cfg(loom)]
        self.sym.shadow_read();
        &self.f
    }
}
