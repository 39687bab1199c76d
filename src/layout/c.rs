//! The platform's C types as layouts, with this target's sizes and
//! alignments (`long` is 8 bytes on LP64 Linux/macOS, 4 on Windows;
//! `char` signedness follows `core::ffi::c_char`).
//!
//! # Examples
//!
//! ```
//! use memscope::layout::c;
//! assert_eq!(c::INT.size(), core::mem::size_of::<core::ffi::c_int>());
//! assert_eq!(c::LONG.size(), core::mem::size_of::<core::ffi::c_long>());
//! assert_eq!(c::POINTER.size(), core::mem::size_of::<*const u8>());
//! ```

use super::{MemoryLayout, ValueKind};
use core::mem::size_of;

/// The integer kind of a given size and signedness (1, 2, 4 or 8 bytes;
/// used in constant contexts only, where another size is a compile error).
pub(crate) const fn int_kind(size: usize, signed: bool) -> ValueKind {
    match (size, signed) {
        (1, true) => ValueKind::I8,
        (1, false) => ValueKind::U8,
        (2, true) => ValueKind::I16,
        (2, false) => ValueKind::U16,
        (4, true) => ValueKind::I32,
        (4, false) => ValueKind::U32,
        (8, true) => ValueKind::I64,
        (8, false) => ValueKind::U64,
        _ => panic!("unsupported C integer size"),
    }
}

const fn int<T>(signed: bool) -> MemoryLayout {
    MemoryLayout::value(int_kind(size_of::<T>(), signed))
}

/// `char` (signed or unsigned as the platform's `c_char`).
pub const CHAR: MemoryLayout = int::<core::ffi::c_char>(core::ffi::c_char::MIN != 0);
/// `signed char`.
pub const SCHAR: MemoryLayout = int::<core::ffi::c_schar>(true);
/// `unsigned char`.
pub const UCHAR: MemoryLayout = int::<core::ffi::c_uchar>(false);
/// `short`.
pub const SHORT: MemoryLayout = int::<core::ffi::c_short>(true);
/// `unsigned short`.
pub const USHORT: MemoryLayout = int::<core::ffi::c_ushort>(false);
/// `int`.
pub const INT: MemoryLayout = int::<core::ffi::c_int>(true);
/// `unsigned int`.
pub const UINT: MemoryLayout = int::<core::ffi::c_uint>(false);
/// `long`.
pub const LONG: MemoryLayout = int::<core::ffi::c_long>(true);
/// `unsigned long`.
pub const ULONG: MemoryLayout = int::<core::ffi::c_ulong>(false);
/// `long long`.
pub const LONG_LONG: MemoryLayout = int::<core::ffi::c_longlong>(true);
/// `unsigned long long`.
pub const ULONG_LONG: MemoryLayout = int::<core::ffi::c_ulonglong>(false);
/// `size_t`.
pub const SIZE_T: MemoryLayout = int::<usize>(false);
/// `ssize_t` / `ptrdiff_t`.
pub const SSIZE_T: MemoryLayout = int::<isize>(true);
/// `intptr_t`.
pub const INTPTR_T: MemoryLayout = int::<isize>(true);
/// `uintptr_t`.
pub const UINTPTR_T: MemoryLayout = int::<usize>(false);
/// `int8_t`.
pub const INT8_T: MemoryLayout = MemoryLayout::value(ValueKind::I8);
/// `uint8_t`.
pub const UINT8_T: MemoryLayout = MemoryLayout::value(ValueKind::U8);
/// `int16_t`.
pub const INT16_T: MemoryLayout = MemoryLayout::value(ValueKind::I16);
/// `uint16_t`.
pub const UINT16_T: MemoryLayout = MemoryLayout::value(ValueKind::U16);
/// `int32_t`.
pub const INT32_T: MemoryLayout = MemoryLayout::value(ValueKind::I32);
/// `uint32_t`.
pub const UINT32_T: MemoryLayout = MemoryLayout::value(ValueKind::U32);
/// `int64_t`.
pub const INT64_T: MemoryLayout = MemoryLayout::value(ValueKind::I64);
/// `uint64_t`.
pub const UINT64_T: MemoryLayout = MemoryLayout::value(ValueKind::U64);
/// `void *` (any data pointer).
pub const POINTER: MemoryLayout = MemoryLayout::value(ValueKind::Address);
/// `float`.
pub const FLOAT: MemoryLayout = MemoryLayout::value(ValueKind::F32);
/// `double`.
pub const DOUBLE: MemoryLayout = MemoryLayout::value(ValueKind::F64);
/// `bool` / `_Bool`.
pub const BOOL: MemoryLayout = MemoryLayout::value(ValueKind::Bool);
