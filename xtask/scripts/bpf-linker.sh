#!/bin/sh
# Runs inside the toolchain root. Builds a static bpf-linker against the
# root's LLVM 22 (rustc's LLVM is 22 too: bpf-linker's must not be older).
set -eu
version="$1"
export LLVM_PREFIX=/usr/lib/llvm-22
export RUSTFLAGS="-C target-feature=+crt-static"
cargo install --quiet --locked --root /opt/bpf-linker "bpf-linker@$version" \
    --no-default-features --features llvm-22,llvm-link-static \
    --target x86_64-unknown-linux-gnu
