//! Function signatures: [`FunctionDescriptor`], checked when linking.

use std::fmt;

use super::ty::{FfiTy, Scalar, Shape};
use crate::layout::{LayoutKind, MemoryLayout, ValueKind};
use crate::{Error, Result};

/// The C signature of a function: return layout (or `void`), argument
/// layouts, and for variadic functions the index of the first variadic
/// argument (Java `FunctionDescriptor`, Janet `ffi/signature`).
///
/// Nothing is checked until it is linked ([`Linker::downcall`],
/// [`Linker::upcall`]): then unsupported layouts, arguments C would promote
/// in variadic position, packed structs, zero-sized aggregates and arrays
/// passed by value give [`Error::InvalidSignature`]. Structs and unions may
/// be passed in variadic positions (C does not promote them; the callee
/// reads them with `va_arg(ap, struct T)`).
///
/// Unions are passed by value although libffi has no union type: the
/// linker passes a struct of the same size and alignment made of chunks of
/// the union's alignment (at most 8 bytes), each chunk floating point only
/// if every scalar of every member overlapping it is floating point — the
/// x86-64 System V (and AArch64) classification of the union. So
/// `union { long; double }` travels in an integer register and
/// `union { float; double }` in an SSE register, as C compilers do.
///
/// [`Linker::downcall`]: super::Linker::downcall
/// [`Linker::upcall`]: super::Linker::upcall
///
/// # Examples
///
/// ```
/// use memscope::layout::c;
/// use memscope::linker::FunctionDescriptor;
/// // int snprintf(char *, size_t, const char *, ...) called with one double
/// let d = FunctionDescriptor::of(Some(c::INT), &[c::POINTER, c::SIZE_T, c::POINTER, c::DOUBLE])
///     .variadic(3);
/// assert_eq!(d.args().len(), 4);
/// assert_eq!(d.first_variadic(), Some(3));
/// ```
#[derive(Clone, PartialEq)]
pub struct FunctionDescriptor {
    ret: Option<MemoryLayout>,
    args: Vec<MemoryLayout>,
    first_variadic: Option<usize>,
}

impl fmt::Debug for FunctionDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionDescriptor")
            .field("ret", &self.ret)
            .field("args", &self.args)
            .field("first_variadic", &self.first_variadic)
            .finish()
    }
}

impl FunctionDescriptor {
    /// A signature returning `ret` (`None`: `void`) and taking `args`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// let d = memscope::linker::FunctionDescriptor::of(None, &[c::INT]);
    /// assert!(d.ret().is_none());
    /// ```
    pub fn of(ret: Option<MemoryLayout>, args: &[MemoryLayout]) -> FunctionDescriptor {
        FunctionDescriptor {
            ret,
            args: args.to_vec(),
            first_variadic: None,
        }
    }

    /// Marks arguments from `first_variadic_index` on as variadic (`...`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// let d = memscope::linker::FunctionDescriptor::of(Some(c::DOUBLE), &[c::INT, c::DOUBLE, c::DOUBLE])
    ///     .variadic(1);
    /// assert_eq!(d.first_variadic(), Some(1));
    /// ```
    #[doc(alias = "firstVariadicArg")]
    pub fn variadic(mut self, first_variadic_index: usize) -> FunctionDescriptor {
        self.first_variadic = Some(first_variadic_index);
        self
    }

    /// The return layout.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// let d = memscope::linker::FunctionDescriptor::of(Some(c::INT), &[]);
    /// assert_eq!(d.ret(), Some(&c::INT));
    /// ```
    pub fn ret(&self) -> Option<&MemoryLayout> {
        self.ret.as_ref()
    }

    /// The argument layouts.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// let d = memscope::linker::FunctionDescriptor::of(None, &[c::INT, c::LONG]);
    /// assert_eq!(d.args(), &[c::INT, c::LONG]);
    /// ```
    pub fn args(&self) -> &[MemoryLayout] {
        &self.args
    }

    /// The index of the first variadic argument, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use memscope::layout::c;
    /// assert_eq!(memscope::linker::FunctionDescriptor::of(None, &[]).first_variadic(), None);
    /// ```
    pub fn first_variadic(&self) -> Option<usize> {
        self.first_variadic
    }

    /// Checks the signature and derives what the linker needs.
    pub(crate) fn check(&self) -> Result<Checked> {
        if let Some(v) = self.first_variadic
            && v > self.args.len()
        {
            return Err(Error::InvalidSignature {
                reason: format!(
                    "first variadic index {v} is past the {} argument(s)",
                    self.args.len()
                ),
            });
        }
        let mut args = Vec::with_capacity(self.args.len());
        for (i, l) in self.args.iter().enumerate() {
            let what = format!("argument {i}");
            let shape = shape_of(l, &what)?;
            let ffi = shape.to_ffi(&what)?;
            if self.first_variadic.is_some_and(|v| i >= v) {
                match &shape {
                    Shape::Scalar(s) if s.promoted_in_varargs() => {
                        return Err(Error::InvalidSignature {
                            reason: format!(
                                "{what}: {s:?} in a variadic position is promoted by C \
                                 (pass int or double)"
                            ),
                        });
                    }
                    // Structs and unions travel in a variadic position as
                    // they would in a fixed one (C applies no promotion to
                    // them; x86-64 System V and AArch64 classify them the
                    // same way, and libffi's `ffi_prep_cif_var` accepts
                    // them). Arrays never reach here: `to_ffi` refused them.
                    Shape::Scalar(_) | Shape::Struct { .. } | Shape::Union { .. } => {}
                    Shape::Array { .. } => {
                        return Err(Error::InvalidSignature {
                            reason: format!("{what}: C cannot pass an array as a vararg"),
                        });
                    }
                }
            }
            args.push(ArgSpec {
                layout: l.clone(),
                scalar: match shape {
                    Shape::Scalar(s) => Some(s),
                    _ => None,
                },
                size: shape.size(),
                ffi,
                shape,
            });
        }
        let ret = match &self.ret {
            None => None,
            Some(l) => {
                let shape = shape_of(l, "return value")?;
                let ffi = shape.to_ffi("return value")?;
                Some(ArgSpec {
                    layout: l.clone(),
                    scalar: match shape {
                        Shape::Scalar(s) => Some(s),
                        _ => None,
                    },
                    size: shape.size(),
                    ffi,
                    shape,
                })
            }
        };
        Ok(Checked {
            args,
            ret,
            fixed: self.first_variadic,
        })
    }
}

/// One argument (or the return value) after checking.
#[derive(Debug, Clone)]
pub(crate) struct ArgSpec {
    pub(crate) layout: MemoryLayout,
    /// `Some` for scalars (the fast path), `None` for aggregates.
    pub(crate) scalar: Option<Scalar>,
    pub(crate) size: usize,
    pub(crate) ffi: FfiTy,
    /// The checked shape, walked by the allocation-free (en|de)coders.
    pub(crate) shape: Shape,
}

/// A checked signature.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) args: Vec<ArgSpec>,
    pub(crate) ret: Option<ArgSpec>,
    pub(crate) fixed: Option<usize>,
}

impl Checked {
    pub(crate) fn arg_ffi(&self) -> Vec<FfiTy> {
        self.args.iter().map(|a| a.ffi.clone()).collect()
    }
    pub(crate) fn sizes(&self) -> Vec<usize> {
        self.args.iter().map(|a| a.size).collect()
    }
}

/// The linker's scalar for a layout's value kind (they are one type).
pub(crate) fn scalar_of(k: ValueKind) -> Scalar {
    k
}

/// The linker's view of a layout.
pub(crate) fn shape_of(l: &MemoryLayout, what: &str) -> Result<Shape> {
    Ok(match l.kind() {
        LayoutKind::Value(k) => {
            let s = scalar_of(*k);
            if !l.order().is_native() {
                return Err(Error::InvalidSignature {
                    reason: format!("{what}: C passes values in native byte order only"),
                });
            }
            if l.size() != s.size() || l.align() != s.size() {
                return Err(Error::InvalidSignature {
                    reason: format!("{what}: {k:?} with size {} / align {}", l.size(), l.align()),
                });
            }
            Shape::Scalar(s)
        }
        LayoutKind::Struct(members) => {
            let mut off = 0usize;
            let mut out = Vec::with_capacity(members.len());
            for m in members {
                if !matches!(m.kind(), LayoutKind::Padding) {
                    out.push((off, shape_of(m, what)?));
                }
                off = off
                    .checked_add(m.size())
                    .ok_or_else(|| Error::InvalidSignature {
                        reason: format!("{what}: struct size overflows"),
                    })?;
            }
            Shape::Struct {
                size: l.size(),
                align: l.align(),
                members: out,
            }
        }
        LayoutKind::Union(members) => Shape::Union {
            size: l.size(),
            align: l.align(),
            members: members
                .iter()
                .filter(|m| !matches!(m.kind(), LayoutKind::Padding))
                .map(|m| shape_of(m, what))
                .collect::<Result<_>>()?,
        },
        LayoutKind::Sequence { count, element } => {
            if element.size() == 0 && *count > 1 {
                // C has no zero-sized types; a huge count of them would
                // only make the C type checks loop.
                return Err(Error::InvalidSignature {
                    reason: format!("{what}: an array of {count} zero-sized elements"),
                });
            }
            Shape::Array {
                count: *count,
                elem: Box::new(shape_of(element, what)?),
            }
        }
        LayoutKind::Padding => {
            return Err(Error::InvalidSignature {
                reason: format!("{what}: a padding layout is not a C type"),
            });
        }
    })
}
