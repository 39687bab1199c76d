//! Direct downcalls without libffi: for signatures whose arguments and
//! result are all plain scalars of the basic C classes (`int32_t`,
//! `uint32_t`, `int64_t`, `uint64_t`, pointers, `float`, `double`; `void`
//! results) and at most [`MAX_ARGS`] arguments, the call goes through a
//! monomorphised `extern "C" fn` pointer of exactly that C signature,
//! picked once at link time from a table ([`select`]); everything else
//! goes through `ffi_call`.
//!
//! The function-pointer type matches the C declaration exactly (the caller
//! of `Linker::downcall` promised the descriptor is the function's
//! signature, and every C type of the table has one Rust type of the same
//! ABI), so the call is a well-defined call of that function, the
//! reasoning `bind!` uses. One of the few files with `unsafe` code.
//!
//! Arguments arrive as the argument buffer the libffi path fills (one
//! zeroed 16-byte slot per argument, the scalar's bytes at the slot's
//! start); the result goes back as its bits zero-extended into a word,
//! which the caller stores into the return buffer. Both conversions assume
//! a little-endian target; elsewhere [`select`] picks nothing.

use std::ffi::c_void;

use super::ty::Scalar;

/// The most arguments a direct call takes.
pub(crate) const MAX_ARGS: usize = 3;

/// A direct call: `fun` (the C function's address) called with the
/// arguments in `args` (slot `i` at byte `16 * i`), the result's bits
/// returned zero-extended.
///
/// # Safety
///
/// `fun` must be a C function of exactly the signature the thunk was
/// selected for, and `args` must hold one initialised slot per argument.
pub(crate) type Thunk = unsafe fn(fun: usize, args: &[u8]) -> u64;

/// A C scalar passed in one register: its Rust type and how it is read
/// from an argument slot.
trait ArgWord: Copy {
    fn from_slot(args: &[u8], i: usize) -> Self;
}

/// A C result of one register (or none): its bits zero-extended.
trait RetWord {
    fn to_word(self) -> u64;
}

/// The slot's first 8 bytes as a little-endian word.
#[inline(always)]
fn word(args: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&args[16 * i..16 * i + 8]);
    u64::from_le_bytes(b)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)] // the slot holds exactly this type's bits
mod words {
    use super::*;

    impl ArgWord for i32 {
        #[inline(always)]
        fn from_slot(a: &[u8], i: usize) -> i32 {
            word(a, i) as u32 as i32
        }
    }
    impl ArgWord for u32 {
        #[inline(always)]
        fn from_slot(a: &[u8], i: usize) -> u32 {
            word(a, i) as u32
        }
    }
    impl ArgWord for i64 {
        #[inline(always)]
        fn from_slot(a: &[u8], i: usize) -> i64 {
            word(a, i) as i64
        }
    }
    impl ArgWord for u64 {
        #[inline(always)]
        fn from_slot(a: &[u8], i: usize) -> u64 {
            word(a, i)
        }
    }
    impl ArgWord for *mut c_void {
        #[inline(always)]
        fn from_slot(a: &[u8], i: usize) -> *mut c_void {
            // An address C is given: its provenance was exposed where it
            // was made (`Address` is an integer).
            std::ptr::with_exposed_provenance_mut(word(a, i) as usize)
        }
    }
    impl ArgWord for f32 {
        #[inline(always)]
        fn from_slot(a: &[u8], i: usize) -> f32 {
            f32::from_bits(word(a, i) as u32)
        }
    }
    impl ArgWord for f64 {
        #[inline(always)]
        fn from_slot(a: &[u8], i: usize) -> f64 {
            f64::from_bits(word(a, i))
        }
    }

    impl RetWord for () {
        #[inline(always)]
        fn to_word(self) -> u64 {
            0
        }
    }
    impl RetWord for i32 {
        #[inline(always)]
        fn to_word(self) -> u64 {
            u64::from(self as u32)
        }
    }
    impl RetWord for u32 {
        #[inline(always)]
        fn to_word(self) -> u64 {
            u64::from(self)
        }
    }
    impl RetWord for i64 {
        #[inline(always)]
        fn to_word(self) -> u64 {
            self as u64
        }
    }
    impl RetWord for u64 {
        #[inline(always)]
        fn to_word(self) -> u64 {
            self
        }
    }
    impl RetWord for *mut c_void {
        #[inline(always)]
        fn to_word(self) -> u64 {
            self.expose_provenance() as u64
        }
    }
    impl RetWord for f32 {
        #[inline(always)]
        fn to_word(self) -> u64 {
            u64::from(self.to_bits())
        }
    }
    impl RetWord for f64 {
        #[inline(always)]
        fn to_word(self) -> u64 {
            self.to_bits()
        }
    }
}

/// # Safety
///
/// See [`Thunk`].
unsafe fn call0<R: RetWord>(fun: usize, _: &[u8]) -> u64 {
    // SAFETY: `fun` is a C function `R f(void)` ([`Thunk`]'s contract);
    // a code address is never null.
    let f: extern "C" fn() -> R = unsafe { std::mem::transmute::<usize, _>(fun) };
    f().to_word()
}

/// # Safety
///
/// See [`Thunk`].
unsafe fn call1<R: RetWord, A: ArgWord>(fun: usize, a: &[u8]) -> u64 {
    // SAFETY: `fun` is a C function `R f(A)` ([`Thunk`]'s contract).
    let f: extern "C" fn(A) -> R = unsafe { std::mem::transmute::<usize, _>(fun) };
    f(A::from_slot(a, 0)).to_word()
}

/// # Safety
///
/// See [`Thunk`].
unsafe fn call2<R: RetWord, A: ArgWord, B: ArgWord>(fun: usize, a: &[u8]) -> u64 {
    // SAFETY: `fun` is a C function `R f(A, B)` ([`Thunk`]'s contract).
    let f: extern "C" fn(A, B) -> R = unsafe { std::mem::transmute::<usize, _>(fun) };
    f(A::from_slot(a, 0), B::from_slot(a, 1)).to_word()
}

/// # Safety
///
/// See [`Thunk`].
unsafe fn call3<R: RetWord, A: ArgWord, B: ArgWord, C: ArgWord>(fun: usize, a: &[u8]) -> u64 {
    // SAFETY: `fun` is a C function `R f(A, B, C)` ([`Thunk`]'s contract).
    let f: extern "C" fn(A, B, C) -> R = unsafe { std::mem::transmute::<usize, _>(fun) };
    f(A::from_slot(a, 0), B::from_slot(a, 1), C::from_slot(a, 2)).to_word()
}

/// The argument classes, in table order.
const CLASSES: usize = 7;

fn class(s: Scalar) -> Option<usize> {
    Some(match s {
        Scalar::I32 => 0,
        Scalar::U32 => 1,
        Scalar::I64 => 2,
        Scalar::U64 => 3,
        Scalar::Address => 4,
        Scalar::F32 => 5,
        Scalar::F64 => 6,
        _ => return None,
    })
}

/// `[$f::<pre.., T> for T in the classes]`, as thunks.
macro_rules! each {
    ($f:ident $(, $p:ty)*) => {
        [
            $f::<$($p,)* i32> as Thunk,
            $f::<$($p,)* u32>,
            $f::<$($p,)* i64>,
            $f::<$($p,)* u64>,
            $f::<$($p,)* *mut c_void>,
            $f::<$($p,)* f32>,
            $f::<$($p,)* f64>,
        ]
    };
}

/// `[$f::<pre.., T>() for T in the classes]`: the next table level.
macro_rules! each_level {
    ($f:ident $(, $p:ty)*) => {
        [
            $f::<$($p,)* i32>(),
            $f::<$($p,)* u32>(),
            $f::<$($p,)* i64>(),
            $f::<$($p,)* u64>(),
            $f::<$($p,)* *mut c_void>(),
            $f::<$($p,)* f32>(),
            $f::<$($p,)* f64>(),
        ]
    };
}

const fn table2_row<R: RetWord, A: ArgWord>() -> [Thunk; CLASSES] {
    each!(call2, R, A)
}
const fn table2<R: RetWord>() -> [[Thunk; CLASSES]; CLASSES] {
    each_level!(table2_row, R)
}
const fn table3_row<R: RetWord, A: ArgWord, B: ArgWord>() -> [Thunk; CLASSES] {
    each!(call3, R, A, B)
}
const fn table3_plane<R: RetWord, A: ArgWord>() -> [[Thunk; CLASSES]; CLASSES] {
    each_level!(table3_row, R, A)
}
const fn table3<R: RetWord>() -> [[[Thunk; CLASSES]; CLASSES]; CLASSES] {
    each_level!(table3_plane, R)
}

/// The thunk for result type `R` and argument classes `c`.
fn pick<R: RetWord + 'static>(c: &[usize]) -> Option<Thunk> {
    match *c {
        [] => Some(call0::<R> as Thunk),
        [a] => Some(const { each!(call1, R) }[a]),
        [a, b] => Some(const { table2::<R>() }[a][b]),
        [a, b, c] => Some(const { table3::<R>() }[a][b][c]),
        _ => None,
    }
}

/// The direct call for a non-variadic C function with these argument
/// scalars (`None` for an aggregate) and result (`None` for `void`,
/// `Some(None)` for an aggregate), or `None` where libffi must make the
/// call (an aggregate, a `bool`/8-/16-bit scalar, more than [`MAX_ARGS`]
/// arguments, a big-endian target).
pub(crate) fn select(args: &[Option<Scalar>], ret: Option<Option<Scalar>>) -> Option<Thunk> {
    if cfg!(target_endian = "big") || args.len() > MAX_ARGS {
        return None;
    }
    let mut c = [0usize; MAX_ARGS];
    for (k, a) in c.iter_mut().zip(args) {
        *k = class((*a)?)?;
    }
    let c = &c[..args.len()];
    match ret {
        None => pick::<()>(c),
        Some(r) => match class(r?)? {
            0 => pick::<i32>(c),
            1 => pick::<u32>(c),
            2 => pick::<i64>(c),
            3 => pick::<u64>(c),
            4 => pick::<*mut c_void>(c),
            5 => pick::<f32>(c),
            _ => pick::<f64>(c),
        },
    }
}
