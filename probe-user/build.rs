//! Embeds the BPF object that `cargo xtask build-ebpf` built. Without it
//! (a plain `cargo test` of the host-side logic) an empty object is
//! embedded and `nolock-probe run` says how to build a complete binary.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out.join("nolock-probe.bpf.o");
    println!("cargo::rerun-if-env-changed=NOLOCK_PROBE_BPF_OBJECT");
    match env::var_os("NOLOCK_PROBE_BPF_OBJECT") {
        Some(path) => {
            println!("cargo::rerun-if-changed={}", PathBuf::from(&path).display());
            fs::copy(&path, &dest).unwrap_or_else(|e| {
                panic!("cannot copy the BPF object {}: {e}", PathBuf::from(&path).display())
            });
        }
        None => fs::write(&dest, b"").expect("write an empty BPF object"),
    }
}
