//! libffi plumbing: call interfaces, raw calls, and views of call buffers.
//!
//! One of the few files with `unsafe` code. Everything here takes buffers
//! that safe code (`downcall.rs`, `upcall.rs`) has already sized and filled
//! from a checked [`FunctionDescriptor`](super::FunctionDescriptor).

use std::ffi::c_void;
use std::mem::MaybeUninit;

use libffi::low::{self, CodePtr};
use libffi::middle::{Cif, Type};

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

/// Views `len` bytes at `p` (an argument or return buffer handed over by
/// libffi to an upcall) as a mutable byte slice.
///
/// # Safety
///
/// `p` must be valid for reads and writes of `len` bytes for `'a`, and not
/// accessed through anything else meanwhile.
#[inline(always)]
pub(crate) unsafe fn bytes_mut<'a>(p: *mut c_void, len: usize) -> &'a mut [u8] {
    // SAFETY: the caller's promise (# Safety).
    unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) }
}

#[cfg(target_os = "linux")]
unsafe extern "C" {
    fn __errno_location() -> *mut std::ffi::c_int;
}

/// The calling thread's `errno`.
#[cfg(target_os = "linux")]
#[inline]
pub(crate) fn errno() -> i32 {
    // SAFETY: glibc/musl return a valid pointer to this thread's errno.
    unsafe { *__errno_location() }
}

/// The calling thread's `errno` (not available on this platform: 0).
#[cfg(not(target_os = "linux"))]
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Arguments up to this many bytes (and this many arguments) are marshaled
/// in buffers on the native stack; larger calls use heap buffers.
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
    offsets: Vec<usize>,
    arg_bytes: usize,
    /// Bytes of the return buffer (≥ 8: libffi widens small integers).
    ret_bytes: usize,
}

impl CallPlan {
    /// # Safety
    ///
    /// `fun` must be the address of a function whose C signature is exactly
    /// the one `cif` was built from (the argument sizes are `sizes`, the
    /// return size `ret_size`), and it must stay callable while the plan
    /// exists.
    pub(crate) unsafe fn new(
        cif: PreparedCif,
        fun: usize,
        sizes: &[usize],
        ret_size: usize,
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
        Ok(CallPlan {
            cif,
            fun,
            offsets,
            arg_bytes: off,
            ret_bytes: ret_size.max(8).next_multiple_of(16),
        })
    }

    /// The offset of each argument in the buffer `fill` receives.
    #[inline(always)]
    pub(crate) fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Calls the function: `fill` writes every argument into the argument
    /// buffer (at [`offsets`](Self::offsets)), then `read` reads the return
    /// buffer. The `i32` given to `read` is `errno` right after the call
    /// when `capture_errno` is set (else 0).
    #[inline]
    pub(crate) fn invoke<R>(
        &self,
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
        read: impl FnOnce(&mut [u8], i32) -> Result<R>,
        capture_errno: bool,
    ) -> Result<R> {
        if self.arg_bytes <= INLINE_ARG_BYTES
            && self.offsets.len() <= INLINE_ARGS
            && self.ret_bytes <= INLINE_RET_BYTES
        {
            // Only the used prefixes are initialised (zeroed): a call with
            // two ints touches 32 + 16 bytes, not the whole buffers.
            let mut args = [MaybeUninit::<u128>::uninit(); INLINE_ARG_BYTES / 16];
            let mut ret = [MaybeUninit::<u128>::uninit(); INLINE_RET_BYTES / 16];
            let mut ptrs = [MaybeUninit::<*mut c_void>::uninit(); INLINE_ARGS];
            let args = zeroed_prefix(&mut args, self.arg_bytes);
            let ret = zeroed_prefix(&mut ret, self.ret_bytes);
            let ptrs = null_prefix(&mut ptrs, self.offsets.len());
            self.run(args, ret, ptrs, fill, read, capture_errno)
        } else {
            let mut args = vec![0u128; self.arg_bytes.div_ceil(16)];
            let mut ret = vec![0u128; self.ret_bytes.div_ceil(16)];
            let mut ptrs = vec![std::ptr::null_mut::<c_void>(); self.offsets.len()];
            let args = as_bytes(&mut args);
            let ret = as_bytes(&mut ret);
            self.run(args, ret, &mut ptrs, fill, read, capture_errno)
        }
    }

    #[inline(always)]
    fn run<R>(
        &self,
        args: &mut [u8],
        ret: &mut [u8],
        ptrs: &mut [*mut c_void],
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
        read: impl FnOnce(&mut [u8], i32) -> Result<R>,
        capture_errno: bool,
    ) -> Result<R> {
        fill(args)?;
        let base = args.as_mut_ptr();
        for (p, &off) in ptrs.iter_mut().zip(&self.offsets) {
            *p = base.wrapping_add(off).cast();
        }
        let n = self.offsets.len();
        // SAFETY: `CallPlan::new`'s contract: `fun` has the cif's signature.
        // Every argument pointer points into `args` at a 16-aligned slot of
        // at least the argument's size, initialised (zeroed, then filled);
        // `ret` is 16-aligned and `ret_bytes` ≥ max(return size, 8) long.
        unsafe {
            self.cif
                .call(self.fun, &mut ptrs[..n], ret.as_mut_ptr().cast())
        };
        let e = if capture_errno { errno() } else { 0 };
        read(ret, e)
    }
}

/// Zeroes the first `len` bytes (rounded up to 16) of `buf` and returns
/// them as initialised bytes.
#[inline(always)]
fn zeroed_prefix(buf: &mut [MaybeUninit<u128>], len: usize) -> &mut [u8] {
    let n = len.div_ceil(16);
    let init = &mut buf[..n];
    for x in init.iter_mut() {
        x.write(0);
    }
    // SAFETY: the first `n` u128s were just initialised; `len <= 16 * n`;
    // u128 has no padding, any byte is a valid u8, and the slice borrows
    // `buf` exclusively.
    unsafe { std::slice::from_raw_parts_mut(init.as_mut_ptr().cast::<u8>(), len) }
}

/// Sets the first `n` pointers of `buf` to NULL and returns them.
#[inline(always)]
fn null_prefix(buf: &mut [MaybeUninit<*mut c_void>], n: usize) -> &mut [*mut c_void] {
    let init = &mut buf[..n];
    for x in init.iter_mut() {
        x.write(std::ptr::null_mut());
    }
    // SAFETY: the first `n` elements were just initialised.
    unsafe { std::slice::from_raw_parts_mut(init.as_mut_ptr().cast::<*mut c_void>(), n) }
}

fn as_bytes(v: &mut [u128]) -> &mut [u8] {
    let len = size_of_val(v);
    // SAFETY: u128 has no padding and any byte pattern is a valid u8; the
    // slice covers exactly the vector's storage, exclusively borrowed.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}
