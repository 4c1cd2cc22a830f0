//! Relinks the BPF object when the kfunc declarations change: they reach
//! bpf-linker as a pre-link argument (`cargo xtask build-ebpf`), a file
//! cargo does not track by itself.

fn main() {
    println!("cargo::rerun-if-env-changed=NOLOCK_PROBE_KFUNCS_BC");
    if let Ok(bc) = std::env::var("NOLOCK_PROBE_KFUNCS_BC") {
        println!("cargo::rerun-if-changed={bc}");
    }
}
