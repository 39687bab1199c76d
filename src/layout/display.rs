//! C-like printing of layouts: `struct point { int32_t x; int32_t y; }`.

use super::{ByteOrder, LayoutKind, MemoryLayout};
use core::fmt::{self, Write};

impl MemoryLayout {
    /// The alignment the layout would have with every scalar at its natural
    /// alignment (what a C compiler would pick without attributes).
    fn natural_align(&self) -> usize {
        match &self.kind {
            LayoutKind::Value(v) => v.align(),
            LayoutKind::Padding => 1,
            LayoutKind::Struct(m) | LayoutKind::Union(m) => {
                m.iter().map(|m| m.natural_align()).max().unwrap_or(1)
            }
            LayoutKind::Sequence { element, .. } => element.natural_align(),
        }
    }

    /// `tagged`: whether a struct or union prints its name as the tag.
    fn fmt_decl(
        &self,
        f: &mut dyn Write,
        declarator: &str,
        in_packed: bool,
        tagged: bool,
    ) -> fmt::Result {
        let natural = self.natural_align();
        let packed_here = self.align < natural && !in_packed;
        if self.align > natural
            || (self.align < natural && !in_packed && self.value_kind().is_some())
        {
            write!(f, "_Alignas({}) ", self.align)?;
        }
        match &self.kind {
            LayoutKind::Value(v) => {
                let ty = v.c_name();
                f.write_str(ty)?;
                if !declarator.is_empty() {
                    if !ty.ends_with('*') {
                        f.write_char(' ')?;
                    }
                    f.write_str(declarator)?;
                }
                if !self.order.is_native() {
                    match self.order.resolve() {
                        ByteOrder::Big => f.write_str(" /* big-endian */")?,
                        _ => f.write_str(" /* little-endian */")?,
                    }
                }
                Ok(())
            }
            LayoutKind::Padding => {
                write!(f, "uint8_t {declarator}[{}]", self.size)?;
                f.write_str(" /* padding */")
            }
            LayoutKind::Sequence { count, element } => {
                element.fmt_decl(f, &format!("{declarator}[{count}]"), in_packed, true)
            }
            LayoutKind::Struct(members) | LayoutKind::Union(members) => {
                let keyword = if matches!(self.kind, LayoutKind::Struct(_)) {
                    "struct"
                } else {
                    "union"
                };
                f.write_str(keyword)?;
                if packed_here {
                    f.write_str(" __attribute__((packed))")?;
                }
                if let (true, Some(n)) = (tagged, &self.name) {
                    write!(f, " {n}")?;
                }
                f.write_str(" {")?;
                let mut pads = 0;
                for (i, m) in members.iter().enumerate() {
                    f.write_char(' ')?;
                    let decl = match (&m.name, m.is_padding()) {
                        (Some(n), _) => n.clone(),
                        (None, true) => {
                            pads += 1;
                            format!("_pad{}", pads - 1)
                        }
                        (None, false) => format!("_{i}"),
                    };
                    m.fmt_member(f, &decl, in_packed || packed_here)?;
                    f.write_char(';')?;
                }
                f.write_str(" }")?;
                if !declarator.is_empty() {
                    write!(f, " {declarator}")?;
                }
                Ok(())
            }
        }
    }

    /// A member declaration: nested groups print their tag but not their
    /// name twice (`struct inner { … } b`).
    fn fmt_member(&self, f: &mut dyn Write, declarator: &str, in_packed: bool) -> fmt::Result {
        match &self.kind {
            LayoutKind::Struct(_) | LayoutKind::Union(_)
                if self.name.as_deref() == Some(declarator) =>
            {
                // The member's name is its declarator; print the group
                // untagged (without cloning it: that made printing
                // quadratic in the depth).
                self.fmt_decl(f, declarator, in_packed, false)
            }
            _ => self.fmt_decl(f, declarator, in_packed, true),
        }
    }
}

/// Prints the layout as a C declaration. A named scalar or array prints with
/// its name as declarator; a struct or union prints its name as the tag.
/// Padding members print as `uint8_t _padN[n] /* padding */`, packed
/// structs with `__attribute__((packed))`, over-aligned members with
/// `_Alignas(n)`, non-native scalars with a byte-order comment.
///
/// # Examples
///
/// ```
/// use memscope::layout::{c, MemoryLayout};
/// let s = MemoryLayout::c_struct([c::INT8_T.with_name("c"), c::INT.with_name("i")])?.with_name("s");
/// assert_eq!(
///     s.to_string(),
///     "struct s { int8_t c; uint8_t _pad0[3] /* padding */; int32_t i; }"
/// );
/// assert_eq!(MemoryLayout::sequence(4, c::INT)?.with_name("v").to_string(), "int32_t v[4]");
/// # Ok::<(), memscope::Error>(())
/// ```
impl fmt::Display for MemoryLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        match &self.kind {
            LayoutKind::Struct(_) | LayoutKind::Union(_) => {
                self.fmt_decl(&mut s, "", false, true)?
            }
            _ => self.fmt_decl(&mut s, self.name.as_deref().unwrap_or(""), false, true)?,
        }
        f.write_str(&s)
    }
}
