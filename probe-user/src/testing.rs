//! Test helpers: a small BTF encoder, so that the readiness check can be
//! tested against kernels with and without each piece it looks for, and
//! the way to files of the repository.

use std::path::PathBuf;

/// `rel` in the repository. Read at run time: cargo reuses a test binary
/// built in another checkout with the same sources (the toolchain root's
/// target directory is shared, freshness is by content), and a path baked
/// in with `env!` would point into that checkout.
pub fn repo_path(rel: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
    PathBuf::from(dir).join("..").join(rel)
}

/// A run committed to results/, typed.
pub fn committed_run(name: &str) -> probe_result::RunReport {
    probe_result::Document::read_run(&repo_path("results").join(name)).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A bench committed to results/, typed.
pub fn committed_bench(name: &str) -> probe_result::BenchReport {
    match probe_result::Document::read(&repo_path("results").join(name)).unwrap_or_else(|e| panic!("{e:#}")) {
        probe_result::Document::Bench(b) => *b,
        _ => panic!("{name} is not a bench"),
    }
}

const KIND_INT: u32 = 1;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;

enum Ty {
    Int { name: String, size: u32 },
    Composite { kind: u32, name: String, members: Vec<(String, u32)> },
}

#[derive(Default)]
pub struct BtfBuilder {
    types: Vec<Ty>,
    funcs: Vec<String>,
}

impl BtfBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, t: Ty) -> u32 {
        self.types.push(t);
        self.types.len() as u32
    }

    fn size_of(&self, id: u32) -> u32 {
        match &self.types[id as usize - 1] {
            Ty::Int { size, .. } => *size,
            Ty::Composite { kind, members, .. } => {
                let sizes = members.iter().map(|(_, t)| self.size_of(*t));
                if *kind == KIND_UNION { sizes.max().unwrap_or(0) } else { self.layout(members).1 }
            }
        }
    }

    /// Natural alignment (member size, at most 8): enough for the structs
    /// the tests describe.
    fn layout(&self, members: &[(String, u32)]) -> (Vec<u32>, u32) {
        let mut off: u32 = 0;
        let mut offsets = Vec::new();
        for (_, t) in members {
            let size = self.size_of(*t);
            let align = size.clamp(1, 8);
            off = off.div_ceil(align) * align;
            offsets.push(off);
            off += size;
        }
        (offsets, off.div_ceil(8) * 8)
    }

    pub fn int(&mut self, name: &str, size: u32) -> u32 {
        self.push(Ty::Int { name: name.into(), size })
    }

    pub fn struct_(&mut self, name: &str, members: &[(&str, u32)]) -> u32 {
        let members = members.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        self.push(Ty::Composite { kind: KIND_STRUCT, name: name.into(), members })
    }

    pub fn union_anon(&mut self, members: &[(&str, u32)]) -> u32 {
        let members = members.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        self.push(Ty::Composite { kind: KIND_UNION, name: String::new(), members })
    }

    pub fn func(&mut self, name: &str) {
        self.funcs.push(name.into());
    }

    pub fn remove_func(&mut self, name: &str) {
        self.funcs.retain(|f| f != name);
    }

    pub fn build(&self) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut str_off = |s: &str| -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            off
        };
        let mut types: Vec<u32> = Vec::new();
        for t in &self.types {
            match t {
                Ty::Int { name, size } => {
                    types.extend([str_off(name), KIND_INT << 24, *size, size * 8]);
                }
                Ty::Composite { kind, name, members } => {
                    let (offsets, size) = self.layout(members);
                    let size = if *kind == KIND_UNION {
                        members.iter().map(|(_, t)| self.size_of(*t)).max().unwrap_or(0)
                    } else {
                        size
                    };
                    types.extend([str_off(name), kind << 24 | members.len() as u32, size]);
                    for ((m, t), off) in members.iter().zip(offsets) {
                        let off = if *kind == KIND_UNION { 0 } else { off };
                        types.extend([str_off(m), *t, off * 8]);
                    }
                }
            }
        }
        // One `void f(void)` prototype shared by every function.
        let proto = self.types.len() as u32 + 1;
        types.extend([0, KIND_FUNC_PROTO << 24, 0]);
        for f in &self.funcs {
            types.extend([str_off(f), KIND_FUNC << 24 | 1, proto]);
        }
        let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut out = Vec::new();
        out.extend(0xeb9fu16.to_le_bytes());
        out.extend([1u8, 0u8]);
        out.extend(24u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((type_bytes.len() as u32).to_le_bytes());
        out.extend((type_bytes.len() as u32).to_le_bytes());
        out.extend((strings.len() as u32).to_le_bytes());
        out.extend(type_bytes);
        out.extend(strings);
        out
    }
}
