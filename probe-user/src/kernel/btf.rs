//! Questions about the running kernel that its BTF answers: which functions
//! exist, and where fields of internal structs lie.

use std::path::Path;

use anyhow::{Context, Result};
use btf_rs::{Btf, Type};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    pub fn from_file(path: &Path) -> Result<Self> {
        let btf =
            Btf::from_file(path).with_context(|| format!("cannot parse BTF from {}", path.display()))?;
        Ok(Self { btf })
    }

    #[cfg(test)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(Self { btf: Btf::from_bytes(bytes).context("cannot parse BTF")? })
    }

    /// True if a function of this name is described (kfuncs and every
    /// function fentry or kprobe can attach to by BTF).
    pub fn has_func(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .is_ok_and(|types| types.iter().any(|t| matches!(t, Type::Func(_))))
    }

    /// True if a type (struct, typedef...) of this name is described.
    pub fn has_type(&self, name: &str) -> bool {
        self.btf.resolve_types_by_name(name).is_ok()
    }

    /// Byte offset of `member` in `struct name`, looking through anonymous
    /// unions and structs, or None if either is unknown.
    pub fn member_offset(&self, name: &str, member: &str) -> Option<u32> {
        let types = self.btf.resolve_types_by_name(name).ok()?;
        types.iter().find_map(|t| match t {
            Type::Struct(s) => self.find_member(s, member, 0),
            _ => None,
        })
    }

    fn find_member(&self, s: &btf_rs::Struct, member: &str, base_bits: u32) -> Option<u32> {
        for m in &s.members {
            let bits = base_bits + m.bit_offset();
            let name = self.btf.resolve_name(m).unwrap_or_default();
            if name == member {
                return Some(bits / 8);
            }
            if name.is_empty() {
                if let Ok(Type::Struct(inner) | Type::Union(inner)) = self.btf.resolve_chained_type(m) {
                    if let Some(off) = self.find_member(&inner, member, bits) {
                        return Some(off);
                    }
                }
            }
        }
        None
    }
}
