//! `cargo xtask build-ebpf` and `cargo xtask build`: the BPF object and the
//! static loader that embeds it, both built inside the toolchain root.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{root::Root, step::step};

pub const BPF_TARGET: &str = "bpfel-unknown-none";
pub const HOST_TARGET: &str = "x86_64-unknown-linux-gnu";

pub struct Artifacts {
    pub bpf_object: PathBuf,
    pub loader: PathBuf,
}

/// The BPF object: the kfunc declarations (C, to bitcode) linked in front
/// of the Rust programs, with BTF.
pub fn build_ebpf(root: &Root, cache: &Path) -> Result<PathBuf> {
    let target = cache.join("target");
    let bc = target.join("kfuncs/kfuncs.bc");
    step("build-ebpf: BPF programs", || {
        // The bitcode is replaced only when it changes: probe-ebpf's build
        // script relinks the object when it does (cargo cannot see a
        // pre-link argument's file).
        root.run(
            &format!(
                "mkdir -p '{dir}' && clang-22 -target bpf -g -O2 -Wall -Werror -DHELD_SLOTS={slots} -emit-llvm \
                 -c probe-ebpf/src/kfuncs.c -o '{bc}.new' && \
                 {{ cmp -s '{bc}.new' '{bc}' && rm '{bc}.new' || mv '{bc}.new' '{bc}'; }} && \
                 cargo build -q -p probe-ebpf --release --target {BPF_TARGET} -Z build-std=core",
                dir = bc.parent().unwrap_or(&target).display(),
                bc = bc.display(),
                slots = probe_common::HELD_SLOTS,
            ),
            &[
                // Without --btf bpf-linker drops the debug info the BTF comes from.
                ("RUSTFLAGS", format!("-C debuginfo=2 -C link-arg=--btf -Z pre-link-arg={}", bc.display())),
                ("NOLOCK_PROBE_KFUNCS_BC", bc.display().to_string()),
            ],
        )
    })?;
    Ok(target.join(BPF_TARGET).join("release/nolock-probe"))
}

/// The BPF object and a static `nolock-probe` that runs on the host and in
/// a bare initramfs.
pub fn build_all(root: &Root, cache: &Path) -> Result<Artifacts> {
    let bpf_object = build_ebpf(root, cache)?;
    // The loader embeds a copy that changes only when the object's bytes
    // do: bpf-linker rewrites the object on every build, and its new mtime
    // alone would make cargo rebuild the loader.
    let embedded = cache.join("target/nolock-probe.bpf.o");
    let bytes = std::fs::read(&bpf_object)?;
    if std::fs::read(&embedded).ok().as_deref() != Some(bytes.as_slice()) {
        std::fs::write(&embedded, &bytes)?;
    }
    step("build: nolock-probe (static)", || {
        root.run(
            &format!("cargo build -q -p probe-user --release --target {HOST_TARGET}"),
            &[
                ("NOLOCK_PROBE_BPF_OBJECT", embedded.display().to_string()),
                // The static link warns that std's getaddrinfo and
                // getpwuid_r need glibc's NSS libraries at run time; the
                // loader calls neither, so the note is only noise.
                ("RUSTFLAGS", "-C target-feature=+crt-static -A linker-messages".into()),
            ],
        )
    })?;
    Ok(Artifacts { loader: cache.join("target").join(HOST_TARGET).join("release/nolock-probe"), bpf_object })
}
