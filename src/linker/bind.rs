//! `bind!`: declare C functions in Rust syntax, get Rust methods
//! (Janet `defbind`, coffi `defcfn`).

/// Declares a struct whose methods call C functions looked up by name,
/// through typed function pointers (no libffi on the call path).
///
/// `Name::load(&lookup)` links every function (an `unsafe fn`: the
/// declarations are the caller's promise that they match the C functions).
/// Linking checks each declared signature as [`Linker::downcall`] does
/// (C layouts, unsupported types), so a mismatch between the declaration's
/// layouts and what C can be called with is an error at load, not a crash.
/// Each method then does only what safety needs per call and returns
/// `memscope::Result<R>`; a function without `-> R` returns `()`.
///
/// Parameters are [`BindArg`](crate::linker::BindArg) kinds: [`CRepr`](crate::linker::CRepr)
/// values (C scalars, `bool`, [`Address`](crate::Address), `c_struct!` and
/// `c_union!` types) passed as they are; `&Segment`/`&mut Segment` as a
/// pointer with the segment's session acquired for the call; `&CStr`/`&str`
/// as `const char *`; `&UpcallStub` as a function pointer kept alive for
/// the call. Results are [`BindRet`](crate::linker::BindRet) kinds.
///
/// `fn rust_name(..) -> R = "c_symbol";` binds a C symbol under another
/// Rust name (C names such as `zlibVersion`, `type` or `load`).
///
/// What else C needs:
///
/// - **errno**: declare the result `(R, Errno)` (or [`Errno`] for `void`):
///   `errno` is set to 0 right before the call and read right after it.
/// - **variadic functions**: end the parameters with `...`; the method then
///   takes the variadic part as a tuple of up to 8 [`VarArg`]s, promoted as
///   C does (`f32` to `double`, small integers to `int`); 1 to 4 fixed
///   parameters.
/// - **typed callbacks**: a `&Callback<extern "C" fn(A, ..) -> R>` parameter
///   takes only a [`Callback`] of that signature; its session is acquired
///   for the call, and a panic in it makes the call return
///   `Error::UpcallPanicked` (so does one in a `&UpcallStub` argument).
/// - **C strings and pointers as results**: `&CStr` (a string the library
///   keeps alive, tied to the binding; NULL is `Error::NullAddress`),
///   `Option<&CStr>` (NULL is `None`), [`CStrPtr`] (owner unknown: reading
///   is `unsafe`), [`CPtr<T>`] (a `T *`).
/// - **closed libraries**: once the session of the library a binding was
///   loaded from has closed, every method returns `Error::Closed` (the
///   binding keeps the library mapped, so a call already running finishes).
///
/// [`Errno`]: crate::linker::Errno
/// [`VarArg`]: crate::linker::VarArg
/// [`Callback`]: crate::linker::Callback
/// [`CStrPtr`]: crate::linker::CStrPtr
/// [`CPtr<T>`]: crate::linker::CPtr
///
/// [`Linker::downcall`]: crate::linker::Linker::downcall
///
/// # Examples
///
/// ```
/// use memscope::prelude::*;
/// memscope::bind! {
///     /// A few functions of the C library.
///     pub struct Libc {
///         fn abs(x: i32) -> i32;
///         fn labs(x: i64) -> i64;
///         fn strlen(s: &str) -> usize;
///         fn memset(dst: &mut Segment<'_>, byte: i32, n: usize) -> Address;
///         fn atoi_c(s: &core::ffi::CStr) -> i32 = "atoi";
///     }
/// }
/// // SAFETY: the declarations match libc's prototypes.
/// let libc = unsafe { Libc::load(&Library::libc()?) }?;
/// assert_eq!(libc.abs(-4)?, 4);
/// assert_eq!(libc.labs(i64::MIN + 1)?, i64::MAX);
/// assert_eq!(libc.strlen("four")?, 4);
/// assert_eq!(libc.atoi_c(c"1234")?, 1234);
/// let arena = Arena::confined();
/// let mut seg = arena.allocate(8, 1)?;
/// libc.memset(&mut seg, 0x2a, 8)?; // the arena's session is acquired for the call
/// assert_eq!(seg.get::<u8>(7)?, 0x2a);
/// assert_eq!(libc.strlen("a\0b").unwrap_err(), Error::InvalidString {
///     reason: "interior NUL byte at index 1".into()
/// });
/// # Ok::<(), memscope::Error>(())
/// ```
///
/// errno, a variadic function, a typed callback and a string result:
///
/// ```
/// use core::ffi::CStr;
/// use memscope::linker::{Callback, Errno};
/// use memscope::prelude::*;
/// type Cmp = extern "C" fn(Address, Address) -> i32;
/// memscope::bind! {
///     struct Libc {
///         fn strtoul(s: &str, end: Address, base: i32) -> (u64, Errno);
///         fn snprintf(buf: &mut Segment<'_>, n: usize, format: &CStr, ...) -> i32;
///         fn qsort(base: &mut Segment<'_>, n: usize, size: usize, cmp: &Callback<Cmp>);
///         fn version() -> &CStr = "gnu_get_libc_version";
///     }
/// }
/// // SAFETY: glibc's prototypes; its version string is static.
/// let libc = unsafe { Libc::load(&Library::libc()?) }?;
/// assert_eq!(libc.strtoul("ff", Address::NULL, 16)?, (255, Errno(0)));
/// assert_eq!(libc.strtoul("99999999999999999999", Address::NULL, 10)?.1, Errno(34));
/// let arena = Arena::confined();
/// let mut buf = arena.allocate(32, 1)?;
/// libc.snprintf(&mut buf, 32, c"%d-%.1f", (7, 2.5f32))?;
/// assert_eq!(buf.get_string(0)?, "7-2.5");
/// let s = Session::shared();
/// let desc = Callback::<Cmp>::new(|a: Address, b: Address| {
///     // SAFETY: qsort passes pointers to two u8 elements of the array.
///     let (x, y) = unsafe { (*a.as_ptr::<u8>(), *b.as_ptr::<u8>()) };
///     y.cmp(&x) as i32
/// }, &s)?;
/// let mut v = arena.allocate_copy(b"bca")?;
/// libc.qsort(&mut v, 3, 1, &desc)?;
/// assert_eq!(v.to_vec()?, b"cba");
/// assert!(libc.version()?.to_bytes().starts_with(b"2."));
/// # Ok::<(), memscope::Error>(())
/// ```
#[doc(alias = "defcfn")]
#[doc(alias = "defbind")]
#[macro_export]
macro_rules! bind {
    (
        $(#[$m:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fm:meta])*
                fn $f:ident ( $($p:tt)* ) $(-> $r:ty)? $(= $cname:literal)? ;
            )*
        }
    ) => {
        $(#[$m])*
        #[derive(Debug)]
        $vis struct $name {
            $( $f: $crate::linker::Bound, )*
        }

        impl $name {
            /// Looks up and links every declared function.
            ///
            /// # Safety
            ///
            /// Every declaration must match the C function's prototype
            /// (see [`Linker::downcall`]($crate::linker::Linker::downcall)),
            /// and a string result declared `&CStr` must be kept valid by
            /// the library while it is loaded.
            ///
            /// # Errors
            ///
            /// A missing symbol or an unsupported signature.
            #[allow(dead_code)]
            $vis unsafe fn load(
                lookup: &impl $crate::linker::SymbolLookup,
            ) -> $crate::Result<Self> {
                Ok(Self {
                    $( $f: {
                        let sym = lookup.lookup($crate::__bind_name!($f $(, $cname)?))?;
                        // SAFETY: forwarded to the caller of `load`.
                        unsafe { $crate::__bind_link!(sym, ($($r)?), $($p)*) }?
                    }, )*
                })
            }

            $(
                $crate::__bind_fn! { [$(#[$fm])*] $vis $f ($($r)?) $($p)* }
            )*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bind_link {
    ($sym:ident, ($($r:ty)?), $($a:ident : $t:ty),* $(,)?) => {
        $crate::linker::Bound::link(
            $sym,
            <$crate::__bind_ret_ty!($($r)?) as $crate::linker::BindRet>::layout(),
            &[$(<$t as $crate::linker::BindArg>::layout()),*],
            false,
        )
    };
    ($sym:ident, ($($r:ty)?), $($a:ident : $t:ty,)* ...) => {
        $crate::linker::Bound::link(
            $sym,
            <$crate::__bind_ret_ty!($($r)?) as $crate::linker::BindRet>::layout(),
            &[$(<$t as $crate::linker::BindArg>::layout()),*],
            true,
        )
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bind_fn {
    ([$(#[$fm:meta])*] $vis:vis $f:ident ($($r:ty)?) $($a:ident : $t:ty),* $(,)?) => {
        $(#[$fm])*
        #[allow(dead_code, clippy::unused_unit, clippy::too_many_arguments)]
        #[inline]
        $vis fn $f(&self, $($a: $t),*) -> $crate::Result<$crate::__bind_ret_ty!($($r)?)> {
            let code = self.$f.code()?;
            $( let $a = $crate::linker::BindArg::prepare(&$a)?; )*
            // SAFETY: `load`'s caller promised that this declaration
            // matches the C function, `Bound::link` checked that its
            // layouts are callable as declared, every parameter's `C` type
            // is the C representation of its layout, and the symbol keeps
            // the code loaded while `self` lives.
            // (The result type is inferred from `from_c` below: written
            // out, a `&CStr` result would be a lifetime no input binds.)
            let f: unsafe extern "C" fn($(<$t as $crate::linker::BindArg>::C),*) -> _ =
                unsafe { ::core::mem::transmute::<*const (), _>(code) };
            let errno = <$crate::__bind_ret_ty!($($r)?) as $crate::linker::BindRet>::ERRNO;
            if errno {
                $crate::linker::Bound::clear_errno();
            }
            // SAFETY: as above; the holds (guards, C strings) live until
            // after the call returns.
            let r = unsafe { f($($a.0),*) };
            let e = if errno { $crate::linker::Bound::errno() } else { 0 };
            $( <$t as $crate::linker::BindArg>::after($a.1)?; )*
            // SAFETY: `r` is what the function declared with this result
            // returned.
            unsafe { <$crate::__bind_ret_ty!($($r)?) as $crate::linker::BindRet>::from_c(r, e) }
        }
    };
    ([$(#[$fm:meta])*] $vis:vis $f:ident ($($r:ty)?) $($a:ident : $t:ty,)* ...) => {
        $(#[$fm])*
        ///
        /// Variadic: the last parameter is a tuple of the arguments for
        /// C's `...` (see [`VarArgs`]($crate::linker::VarArgs)).
        #[allow(dead_code, clippy::unused_unit, clippy::too_many_arguments)]
        #[inline]
        $vis fn $f<V: $crate::linker::VarArgs>(&self, $($a: $t,)* varargs: V)
            -> $crate::Result<$crate::__bind_ret_ty!($($r)?)>
        {
            let code = self.$f.code()?;
            $( let $a = $crate::linker::BindArg::prepare(&$a)?; )*
            let va = $crate::linker::VarArgs::prepare(&varargs)?;
            let errno = <$crate::__bind_ret_ty!($($r)?) as $crate::linker::BindRet>::ERRNO;
            if errno {
                $crate::linker::Bound::clear_errno();
            }
            // SAFETY: `load`'s caller promised that the fixed part of this
            // declaration matches the C function and that it is variadic;
            // the variadic values are promoted C types (`VaPrimitive`), as
            // C's `...` receives them (that the format or count fits is
            // the C function's contract, part of the caller's promise for
            // this call's values); the holds live until after the call.
            let r: <$crate::__bind_ret_ty!($($r)?) as $crate::linker::BindRet>::C = unsafe {
                $crate::__bind_va_call!(va.0, code; $($a.0),*)
            };
            let e = if errno { $crate::linker::Bound::errno() } else { 0 };
            $( <$t as $crate::linker::BindArg>::after($a.1)?; )*
            drop(va.1);
            // SAFETY: `r` is what the function declared with this result
            // returned.
            unsafe { <$crate::__bind_ret_ty!($($r)?) as $crate::linker::BindRet>::from_c(r, e) }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bind_va_call {
    ($va:expr, $code:ident; $a:expr) => {
        $crate::linker::VaTuple::call1($va, $code, $a)
    };
    ($va:expr, $code:ident; $a:expr, $b:expr) => {
        $crate::linker::VaTuple::call2($va, $code, $a, $b)
    };
    ($va:expr, $code:ident; $a:expr, $b:expr, $c:expr) => {
        $crate::linker::VaTuple::call3($va, $code, $a, $b, $c)
    };
    ($va:expr, $code:ident; $a:expr, $b:expr, $c:expr, $d:expr) => {
        $crate::linker::VaTuple::call4($va, $code, $a, $b, $c, $d)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bind_name {
    ($f:ident) => {
        stringify!($f)
    };
    ($f:ident, $c:literal) => {
        $c
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bind_ret_ty {
    () => {
        ()
    };
    ($r:ty) => {
        $r
    };
}
