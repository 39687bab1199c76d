//! libffi plumbing: call interfaces, raw calls, and views of call buffers.
//!
//! One of the few files with `unsafe` code. Everything here takes buffers
//! that safe code (`downcall.rs`, `upcall.rs`) has already sized and filled
//! from a checked [`FunctionDescriptor`](super::FunctionDescriptor).

use std::ffi::c_void;
use std::mem::MaybeUninit;

use libffi::low::{self, CodePtr};
use libffi::middle::{Cif, Type};

use super::fastcall::Thunk;
use super::ty::{FfiTy, Scalar};
use crate::{Error, Result};

fn ffi_type(t: &FfiTy) -> Type {
    match t {
        FfiTy::Scalar(s) => match s {
            Scalar::Bool | Scalar::U8 => Type::u8(),
            Scalar::I8 => Type::i8(),
            Scalar::I16 => Type::i16(),
            Scalar::U16 => Type::u16(),
            Scalar::I32 => Type::i32(),
            Scalar::U32 => Type::u32(),
            Scalar::I64 => Type::i64(),
            Scalar::U64 => Type::u64(),
            Scalar::F32 => Type::f32(),
            Scalar::F64 => Type::f64(),
            Scalar::Address => Type::pointer(),
        },
        FfiTy::Struct(fields) => Type::structure(fields.iter().map(ffi_type)),
    }
}

/// A prepared libffi call interface (`ffi_cif`), immutable once built.
#[derive(Debug)]
pub(crate) struct PreparedCif {
    cif: Cif,
}

// SAFETY: after `ffi_prep_cif` the cif and the type graph it points to are
// only read (by `ffi_call` and closures); libffi keeps no per-call state in
// it, so sharing and sending it between threads is sound.
unsafe impl Send for PreparedCif {}
// SAFETY: see `Send`: concurrent `ffi_call`s only read the cif.
unsafe impl Sync for PreparedCif {}

impl PreparedCif {
    /// `fixed` is `Some(n)` for a variadic function with `n` fixed arguments.
    pub(crate) fn new(args: &[FfiTy], ret: Option<&FfiTy>, fixed: Option<usize>) -> Result<Self> {
        let ret = ret.map_or_else(Type::void, ffi_type);
        let args = args.iter().map(ffi_type);
        let cif = match fixed {
            None => Cif::try_new(args, ret),
            Some(n) => Cif::try_new_variadic(args, n, ret),
        }
        .map_err(|e| Error::InvalidSignature {
            reason: format!("libffi rejected the signature: {e:?}"),
        })?;
        Ok(PreparedCif { cif })
    }

    pub(crate) fn raw(&self) -> *mut low::ffi_cif {
        self.cif.as_raw_ptr()
    }

    /// Calls `fun` with argument pointers `args` and return buffer `ret`.
    ///
    /// # Safety
    ///
    /// `fun` must be a function with exactly the signature this cif was
    /// built from; `args` must hold one pointer per argument, each to
    /// initialised memory of that argument's size and alignment; `ret` must
    /// be writable for `max(return size, 8)` bytes and 16-aligned.
    #[inline]
    pub(crate) unsafe fn call(&self, fun: usize, args: &mut [*mut c_void], ret: *mut c_void) {
        // SAFETY: the caller upholds every requirement of ffi_call (# Safety).
        unsafe {
            libffi::raw::ffi_call(
                self.cif.as_raw_ptr(),
                Some(*CodePtr(fun as *mut c_void).as_safe_fun()),
                ret,
                args.as_mut_ptr(),
            )
        }
    }
}

/// Zeroes `len` bytes at `p` (an upcall's return buffer, handed over by
/// libffi uninitialised) and views them as a mutable byte slice.
///
/// # Safety
///
/// `p` must be valid for writes of `len` bytes for `'a`, and not accessed
/// through anything else meanwhile.
#[inline(always)]
pub(crate) unsafe fn zeroed_bytes_mut<'a>(p: *mut c_void, len: usize) -> &'a mut [u8] {
    let p = p.cast::<u8>();
    // SAFETY: the caller's promise (# Safety); the common 8-byte case is
    // one store instead of a memset call. After the zeroing every byte is
    // initialised, so the slice is valid.
    unsafe {
        if len == 8 {
            p.cast::<u64>().write_unaligned(0);
        } else {
            std::ptr::write_bytes(p, 0, len);
        }
        std::slice::from_raw_parts_mut(p, len)
    }
}

/// The calling thread's `errno`.
#[cfg(target_os = "linux")]
#[inline]
pub(crate) fn errno() -> i32 {
    // SAFETY: glibc/musl return a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// The calling thread's `errno` (not available on this platform: 0).
#[cfg(not(target_os = "linux"))]
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Sets the calling thread's `errno` (C's `errno = 0;` before a call whose
/// errno is captured: C functions only ever set it on failure).
#[cfg(target_os = "linux")]
#[inline]
pub(crate) fn set_errno(v: i32) {
    // SAFETY: glibc/musl return a valid pointer to this thread's errno,
    // which only this thread accesses.
    unsafe { *libc::__errno_location() = v }
}

/// Sets the calling thread's `errno` (not available on this platform: no-op).
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_errno(_v: i32) {}

/// Calls whose arguments fit this many bytes (and this many arguments, and
/// whose return value fits `SMALL_RET_BYTES`) marshal in small buffers on
/// the native stack; the rest in the calling thread's stack allocator
/// ([`crate::alloc::stack`]).
const SMALL_ARG_BYTES: usize = 64;
const SMALL_ARGS: usize = 4;
const SMALL_RET_BYTES: usize = 32;
/// The larger native-stack tier (up to 256 bytes of arguments).
const INLINE_ARG_BYTES: usize = 256;
const INLINE_ARGS: usize = 32;
const INLINE_RET_BYTES: usize = 128;

/// Everything needed to call one C function through libffi: the cif, the
/// code address, and where each argument lives in the argument buffer.
#[derive(Debug)]
pub(crate) struct CallPlan {
    cif: PreparedCif,
    fun: usize,
    /// Offset of each argument in the argument buffer (16-aligned slots).
    offsets: Box<[usize]>,
    arg_bytes: usize,
    /// Bytes of the return buffer (≥ 8: libffi widens small integers).
    ret_bytes: usize,
    /// The return value's size (0 for `void`).
    ret_size: usize,
    /// Where the temporaries live, fixed by the sizes above.
    tier: Tier,
    /// The direct (libffi-free) call for this signature, if it has one
    /// (`fastcall::select`).
    direct: Option<Thunk>,
}

/// Where a call's temporaries live (see `CallPlan::tier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// 64 bytes of arguments, 4 arguments, 32 bytes of return on the native stack.
    Small,
    /// 256 bytes of arguments, 32 arguments, 128 bytes of return on the native stack.
    Inline,
    /// The thread's stack allocator (`alloc::stack::frame`).
    Frame,
}

impl CallPlan {
    /// # Safety
    ///
    /// `fun` must be the address of a function whose C signature is exactly
    /// the one `cif` was built from (the argument sizes are `sizes`, the
    /// return size `ret_size`), and it must stay callable while the plan
    /// exists. `direct`, if given, must be the thunk `fastcall::select`
    /// picked for that same signature (not variadic).
    pub(crate) unsafe fn new(
        cif: PreparedCif,
        fun: usize,
        sizes: &[usize],
        ret_size: usize,
        direct: Option<Thunk>,
    ) -> Result<CallPlan> {
        let mut offsets = Vec::with_capacity(sizes.len());
        let mut off = 0usize;
        for &s in sizes {
            offsets.push(off);
            off = off
                .checked_add(s.max(1))
                .and_then(|o| o.checked_next_multiple_of(16))
                .ok_or_else(|| Error::InvalidSignature {
                    reason: "arguments too large".into(),
                })?;
        }
        let ret_bytes = ret_size.max(8).next_multiple_of(16);
        let n = offsets.len();
        let tier = if off <= SMALL_ARG_BYTES && n <= SMALL_ARGS && ret_bytes <= SMALL_RET_BYTES {
            Tier::Small
        } else if off <= INLINE_ARG_BYTES && n <= INLINE_ARGS && ret_bytes <= INLINE_RET_BYTES {
            Tier::Inline
        } else {
            Tier::Frame
        };
        Ok(CallPlan {
            cif,
            fun,
            offsets: offsets.into_boxed_slice(),
            arg_bytes: off,
            ret_bytes,
            ret_size,
            tier,
            // A direct call reads its arguments from 16-byte slots.
            direct: direct.filter(|_| sizes.iter().all(|&s| s <= 8) && ret_size <= 8),
        })
    }

    /// Whether calls go through a direct thunk (`fastcall`), not libffi.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The offset of each argument in the buffer `fill` receives.
    #[inline(always)]
    pub(crate) fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Calls the function: `fill` writes every argument into the argument
    /// buffer (at [`offsets`](Self::offsets)), then `read` reads the return
    /// value's bytes (exactly its size; empty for `void`). The `i32` given to
    /// `read` is `errno` right after the call when `capture_errno` is set
    /// (else 0).
    ///
    /// `fill` and `read` run inside a stack frame when the plan's tier is
    /// [`Tier::Frame`]: they must not allocate from an outer frame.
    #[inline(always)]
    pub(crate) fn invoke<R>(
        &self,
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
        read: impl FnOnce(&mut [u8], i32) -> Result<R>,
        capture_errno: bool,
    ) -> Result<R> {
        match self.tier {
            Tier::Small => {
                // Constant-size zeroing compiles to a few vector stores; the
                // return buffer and pointer array need no initialisation.
                let mut args = [0u128; SMALL_ARG_BYTES / 16];
                let mut ret = [MaybeUninit::<u128>::uninit(); SMALL_RET_BYTES / 16];
                let mut ptrs = [MaybeUninit::<*mut c_void>::uninit(); SMALL_ARGS];
                let args = &mut as_bytes(&mut args)[..self.arg_bytes];
                self.run(args, &mut ret, &mut ptrs, fill, read, capture_errno)
            }
            Tier::Inline => self.invoke_inline(fill, read, capture_errno),
            Tier::Frame => self.invoke_in_frame(fill, read, capture_errno),
        }
    }

    /// The middle tier, out of line so that the small tier's stack frame
    /// stays small.
    #[inline(never)]
    fn invoke_inline<R>(
        &self,
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
        read: impl FnOnce(&mut [u8], i32) -> Result<R>,
        capture_errno: bool,
    ) -> Result<R> {
        let mut args = [0u128; INLINE_ARG_BYTES / 16];
        let mut ret = [MaybeUninit::<u128>::uninit(); INLINE_RET_BYTES / 16];
        let mut ptrs = [MaybeUninit::<*mut c_void>::uninit(); INLINE_ARGS];
        let args = &mut as_bytes(&mut args)[..self.arg_bytes];
        self.run(args, &mut ret, &mut ptrs, fill, read, capture_errno)
    }

    /// The large-call path: argument, return and pointer buffers bumped from
    /// the thread's stack allocator, released when the call returns.
    #[inline(never)]
    fn invoke_in_frame<R>(
        &self,
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
        read: impl FnOnce(&mut [u8], i32) -> Result<R>,
        capture_errno: bool,
    ) -> Result<R> {
        crate::alloc::stack::frame(|f| {
            let n = self.offsets.len();
            let bumped = (|| {
                let ptr_bytes =
                    n.checked_mul(size_of::<*mut c_void>())
                        .ok_or(Error::OutOfMemory {
                            size: usize::MAX,
                            align: align_of::<*mut c_void>(),
                        })?;
                Ok::<_, Error>((
                    f.bump(self.arg_bytes, 16)?,
                    f.bump(self.ret_bytes, 16)?,
                    f.bump(ptr_bytes, align_of::<*mut c_void>())?,
                ))
            })();
            let (a, r, p) = match bumped {
                Ok(b) => b,
                // The thread's stack is gone (a downcall from a thread-local
                // destructor at thread exit): heap buffers instead.
                Err(Error::Closed) => return self.invoke_on_heap(fill, read, capture_errno),
                Err(e) => return Err(e),
            };
            // SAFETY: `Frame::bump` returned three disjoint ranges of this
            // thread's stack chunk (or heap blocks of this frame), exposed
            // when the chunk was made, 16- (pointer-) aligned, of exactly the
            // requested sizes, owned by this frame until the closure returns
            // (the slices do not escape it). Zero-sized requests give an
            // aligned dangling address, valid for empty slices. The argument
            // bytes are zeroed before use; the other two are `MaybeUninit`.
            let (args, ret, ptrs) = unsafe {
                let a = std::ptr::with_exposed_provenance_mut::<u8>(a);
                a.write_bytes(0, self.arg_bytes);
                (
                    std::slice::from_raw_parts_mut(a, self.arg_bytes),
                    std::slice::from_raw_parts_mut(
                        std::ptr::with_exposed_provenance_mut::<MaybeUninit<u128>>(r),
                        self.ret_bytes / 16,
                    ),
                    std::slice::from_raw_parts_mut(
                        std::ptr::with_exposed_provenance_mut::<MaybeUninit<*mut c_void>>(p),
                        n,
                    ),
                )
            };
            self.run(args, ret, ptrs, fill, read, capture_errno)
        })
    }

    /// Large calls when the thread's stack allocator is unavailable.
    #[cold]
    #[inline(never)]
    fn invoke_on_heap<R>(
        &self,
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
        read: impl FnOnce(&mut [u8], i32) -> Result<R>,
        capture_errno: bool,
    ) -> Result<R> {
        let mut args = vec![0u128; self.arg_bytes.div_ceil(16)];
        let mut ret = vec![MaybeUninit::<u128>::uninit(); self.ret_bytes.div_ceil(16)];
        let mut ptrs = vec![MaybeUninit::<*mut c_void>::uninit(); self.offsets.len()];
        let args = &mut as_bytes(&mut args)[..self.arg_bytes];
        self.run(args, &mut ret, &mut ptrs, fill, read, capture_errno)
    }

    #[inline(always)]
    fn run<R>(
        &self,
        args: &mut [u8],
        ret: &mut [MaybeUninit<u128>],
        ptrs: &mut [MaybeUninit<*mut c_void>],
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
        read: impl FnOnce(&mut [u8], i32) -> Result<R>,
        capture_errno: bool,
    ) -> Result<R> {
        fill(args)?;
        if let Some(thunk) = self.direct {
            return self.run_direct(thunk, args, ret, read, capture_errno);
        }
        let base = args.as_mut_ptr();
        let n = self.offsets.len();
        assert!(ptrs.len() >= n && size_of_val(ret) >= self.ret_bytes);
        for (p, &off) in ptrs.iter_mut().zip(&self.offsets) {
            p.write(base.wrapping_add(off).cast());
        }
        if capture_errno {
            // C's `errno = 0; f(..)` idiom: what is read after the call was
            // set by the call (C functions never clear it themselves).
            set_errno(0);
        }
        // SAFETY: `CallPlan::new`'s contract: `fun` has the cif's signature.
        // The first `n` pointers were just written (asserted room), each to
        // a 16-aligned slot of `args` of at least the argument's size,
        // initialised (zeroed, then filled); `ret` is 16-aligned and at
        // least `ret_bytes` ≥ max(return size, 8) long (asserted).
        unsafe {
            self.cif.call(
                self.fun,
                std::slice::from_raw_parts_mut(ptrs.as_mut_ptr().cast::<*mut c_void>(), n),
                ret.as_mut_ptr().cast(),
            )
        };
        let e = if capture_errno { errno() } else { 0 };
        // SAFETY: `ffi_call` has written the whole return value (at least
        // `ret_size` bytes: small integers are written widened to 8) into
        // `ret`, which is `ret_bytes ≥ ret_size` long.
        let ret =
            unsafe { std::slice::from_raw_parts_mut(ret.as_mut_ptr().cast::<u8>(), self.ret_size) };
        read(ret, e)
    }
}

impl CallPlan {
    /// `run` through the direct call (`fastcall`): no `ffi_call`, no
    /// argument pointer array.
    #[inline(always)]
    fn run_direct<R>(
        &self,
        thunk: Thunk,
        args: &[u8],
        ret: &mut [MaybeUninit<u128>],
        read: impl FnOnce(&mut [u8], i32) -> Result<R>,
        capture_errno: bool,
    ) -> Result<R> {
        if capture_errno {
            set_errno(0);
        }
        // SAFETY: `CallPlan::new`'s contract: `fun` has the signature the
        // thunk was selected for; `args` holds one zeroed-then-filled
        // 16-byte slot per argument (`offsets` are 16 apart from 0).
        let w = unsafe { thunk(self.fun, args) };
        let e = if capture_errno { errno() } else { 0 };
        let Some(slot) = ret.first_mut() else {
            unreachable!("a return buffer has at least one slot (ret_bytes >= 16)")
        };
        *slot = MaybeUninit::new(u128::from(w));
        // SAFETY: the slot was just initialised (16 bytes, little-endian:
        // the result's bits first) and `ret_size <= 8` (`new`).
        let ret = unsafe {
            std::slice::from_raw_parts_mut(slot.as_mut_ptr().cast::<u8>(), self.ret_size)
        };
        read(ret, e)
    }
}

fn as_bytes(v: &mut [u128]) -> &mut [u8] {
    let len = size_of_val(v);
    // SAFETY: u128 has no padding and any byte pattern is a valid u8; the
    // slice covers exactly the vector's storage, exclusively borrowed.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}
