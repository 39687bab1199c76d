//! `bind!`: declare C functions in Rust syntax, get Rust methods
//! (Janet `defbind`, coffi `defcfn`).

/// Declares a struct whose methods call C functions looked up by name,
/// marshaling arguments and results through [`Marshal`](crate::marshal::Marshal).
///
/// `Name::load(&lookup)` links every function (an `unsafe fn`: the
/// declarations are the caller's promise that they match the C functions);
/// each method then checks nothing at run time but the marshaling, and
/// returns `memscope::Result<R>`. A function without `-> R` returns `()`.
///
/// # Examples
///
/// ```
/// use memscope::linker::Library;
/// memscope::bind! {
///     /// A few functions of the C library.
///     pub struct Libc {
///         fn abs(x: i32) -> i32;
///         fn labs(x: i64) -> i64;
///         fn atoi(s: memscope::Address) -> i32;
///     }
/// }
/// // SAFETY: the declarations match libc's prototypes.
/// let libc = unsafe { Libc::load(&Library::libc()?) }?;
/// assert_eq!(libc.abs(-4)?, 4);
/// assert_eq!(libc.labs(i64::MIN + 1)?, i64::MAX);
/// let s = c"1234";
/// assert_eq!(libc.atoi(memscope::Address::from_ptr(s.as_ptr()))?, 1234);
/// # Ok::<(), memscope::Error>(())
/// ```
#[macro_export]
macro_rules! bind {
    (
        $(#[$m:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fm:meta])*
                fn $f:ident ( $($a:ident : $t:ty),* $(,)? ) $(-> $r:ty)? ;
            )*
        }
    ) => {
        $(#[$m])*
        #[derive(Debug)]
        $vis struct $name {
            $( $f: $crate::linker::Downcall, )*
        }

        impl $name {
            /// Looks up and links every declared function.
            ///
            /// # Safety
            ///
            /// Every declaration must match the C function's prototype
            /// (see [`Linker::downcall`]($crate::linker::Linker::downcall)).
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
                        let sym = lookup.lookup(stringify!($f))?;
                        let d = $crate::linker::FunctionDescriptor::of(
                            $crate::__bind_ret!($($r)?),
                            &[$(<$t as $crate::marshal::Marshal>::layout()),*],
                        );
                        // SAFETY: forwarded to the caller of `load`.
                        unsafe {
                            $crate::linker::Linker::native().downcall(
                                &sym,
                                &d,
                                ::core::default::Default::default(),
                            )
                        }?
                    }, )*
                })
            }

            $(
                $(#[$fm])*
                #[allow(dead_code, clippy::unused_unit)]
                $vis fn $f(&self, $($a: $t),*) -> $crate::Result<$crate::__bind_ret_ty!($($r)?)> {
                    self.$f.call_raw(
                        |buf, offsets| {
                            let mut offsets = offsets.iter();
                            $(
                                let o = *offsets.next().ok_or_else(|| $crate::Error::InvalidArgument {
                                    reason: "argument count".into(),
                                })?;
                                let n = <$t as $crate::marshal::Marshal>::SIZE;
                                $crate::marshal::Marshal::encode(&$a, &mut buf[o..o + n])?;
                            )*
                            let _ = offsets;
                            Ok(())
                        },
                        |ret| $crate::__bind_read!(ret $(, $r)?),
                    )
                }
            )*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bind_ret {
    () => {
        ::core::option::Option::None
    };
    ($r:ty) => {
        ::core::option::Option::Some(<$r as $crate::marshal::Marshal>::layout())
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

#[doc(hidden)]
#[macro_export]
macro_rules! __bind_read {
    ($ret:ident) => {{
        let _ = $ret;
        Ok(())
    }};
    ($ret:ident, $r:ty) => {
        <$r as $crate::marshal::Marshal>::decode(&$ret[..<$r as $crate::marshal::Marshal>::SIZE])
    };
}
