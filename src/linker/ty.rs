//! C types as the linker sees them: scalars and aggregates with their byte
//! offsets, checked against the C layout rules and turned into libffi types.
//!
//! Safe code; `cif.rs` turns the result into libffi's `middle::Type`.

use crate::{Error, Result};

/// A C scalar the linker can pass: the layout module's [`ValueKind`], under
/// the name the linker's code uses.
pub(crate) use crate::layout::ValueKind as Scalar;

/// What the linker needs to know about a scalar beyond `size`/`is_float`.
impl Scalar {
    /// Types C's default argument promotions change in a variadic position.
    pub(crate) fn promoted_in_varargs(self) -> bool {
        matches!(
            self,
            Scalar::Bool | Scalar::I8 | Scalar::U8 | Scalar::I16 | Scalar::U16 | Scalar::F32
        )
    }
}

/// A C type with its layout, as derived from a `MemoryLayout`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    Scalar(Scalar),
    /// Members with their byte offsets (padding members are omitted).
    Struct {
        size: usize,
        align: usize,
        members: Vec<(usize, Shape)>,
    },
    Union {
        size: usize,
        align: usize,
        members: Vec<Shape>,
    },
    Array {
        count: usize,
        elem: Box<Shape>,
    },
}

/// A type in libffi's vocabulary: a scalar or a struct of such.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FfiTy {
    Scalar(Scalar),
    Struct(Vec<FfiTy>),
}

fn bad(reason: String) -> Error {
    Error::InvalidSignature { reason }
}

impl Shape {
    pub(crate) fn size(&self) -> usize {
        match self {
            Shape::Scalar(s) => s.size(),
            Shape::Struct { size, .. } | Shape::Union { size, .. } => *size,
            Shape::Array { count, elem } => count.saturating_mul(elem.size()),
        }
    }

    pub(crate) fn align(&self) -> usize {
        match self {
            Shape::Scalar(s) => s.size(),
            Shape::Struct { align, .. } | Shape::Union { align, .. } => *align,
            Shape::Array { elem, .. } => elem.align(),
        }
    }

    /// Every scalar inside, with its offset (unions contribute all members).
    fn leaves(&self, base: usize, out: &mut Vec<(usize, Scalar)>) {
        match self {
            Shape::Scalar(s) => out.push((base, *s)),
            Shape::Struct { members, .. } => {
                for (off, m) in members {
                    m.leaves(base + off, out);
                }
            }
            Shape::Union { members, .. } => {
                for m in members {
                    m.leaves(base, out);
                }
            }
            Shape::Array { count, elem } => {
                let sz = elem.size();
                for i in 0..*count {
                    elem.leaves(base + i * sz, out);
                }
            }
        }
    }

    /// The libffi type for passing this by value, or `InvalidSignature`.
    pub(crate) fn to_ffi(&self, what: &str) -> Result<FfiTy> {
        match self {
            Shape::Scalar(s) => Ok(FfiTy::Scalar(*s)),
            Shape::Array { .. } => Err(bad(format!(
                "{what}: C cannot pass an array by value (pass its address)"
            ))),
            Shape::Struct { .. } | Shape::Union { .. } => {
                if self.size() == 0 {
                    return Err(bad(format!("{what}: zero-sized aggregate")));
                }
                Ok(FfiTy::Struct(self.ffi_fields(what)?))
            }
        }
    }

    /// The fields libffi should see for an aggregate, checked against the
    /// natural (C) layout that libffi will recompute.
    fn ffi_fields(&self, what: &str) -> Result<Vec<FfiTy>> {
        match self {
            Shape::Scalar(s) => Ok(vec![FfiTy::Scalar(*s)]),
            Shape::Array { count, elem } => {
                let one = elem.ffi_fields(what)?;
                let mut v = Vec::new();
                for _ in 0..*count {
                    v.extend(one.iter().cloned());
                }
                Ok(v)
            }
            Shape::Struct {
                size,
                align,
                members,
            } => {
                let mut fields = Vec::new();
                let mut cur = 0usize;
                let mut max_align = 1usize;
                for (off, m) in members {
                    let a = m.align();
                    cur = cur.next_multiple_of(a);
                    if cur != *off {
                        return Err(bad(format!(
                            "{what}: member at offset {off} is not where C puts it ({cur}); \
                             packed or over-aligned structs cannot be passed by value"
                        )));
                    }
                    max_align = max_align.max(a);
                    cur += m.size();
                    match m {
                        Shape::Struct { .. } | Shape::Union { .. } => {
                            if m.size() == 0 {
                                return Err(bad(format!("{what}: zero-sized member")));
                            }
                            fields.push(FfiTy::Struct(m.ffi_fields(what)?));
                        }
                        _ => fields.extend(m.ffi_fields(what)?),
                    }
                }
                let natural = cur.next_multiple_of(max_align);
                if natural != *size || max_align != *align {
                    return Err(bad(format!(
                        "{what}: size {size}/align {align} differs from C's {natural}/{max_align}"
                    )));
                }
                Ok(fields)
            }
            Shape::Union { size, align, .. } => {
                // libffi has no unions: pass a struct of chunks that has the
                // same size, alignment and (x86-64 SysV / AArch64) register
                // class per chunk: a chunk is floating point only if every
                // scalar of every member overlapping it is floating point.
                let chunk = (*align).clamp(1, 8);
                if size % chunk != 0 {
                    return Err(bad(format!(
                        "{what}: union size {size} not a multiple of {chunk}"
                    )));
                }
                let mut leaves = Vec::new();
                self.leaves(0, &mut leaves);
                let mut fields = Vec::new();
                for c in 0..size / chunk {
                    let (lo, hi) = (c * chunk, (c + 1) * chunk);
                    let over: Vec<_> = leaves
                        .iter()
                        .filter(|(o, s)| *o < hi && o + s.size() > lo)
                        .collect();
                    let float = !over.is_empty() && over.iter().all(|(_, s)| s.is_float());
                    let s = match (chunk, float) {
                        (8, true) => Scalar::F64,
                        (4, true) => Scalar::F32,
                        (8, false) => Scalar::U64,
                        (4, false) => Scalar::U32,
                        (2, _) => Scalar::U16,
                        _ => Scalar::U8,
                    };
                    fields.push(FfiTy::Scalar(s));
                }
                Ok(fields)
            }
        }
    }
}
