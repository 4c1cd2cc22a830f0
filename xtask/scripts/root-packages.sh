#!/bin/sh
# Runs inside the toolchain root (a Debian sid minbase chroot) as root.
# Installs what every nolock-probe build needs: Rust >= 1.98 with matching
# rust-src and LLVM 22 (from experimental), clang for the kfunc declarations,
# the kernel's build dependencies, pahole, QEMU and busybox for the VM.
# $1 is the Debian mirror, read from the host's apt configuration.
set -eu
mirror="$1"
export DEBIAN_FRONTEND=noninteractive
cat > /etc/apt/sources.list <<SRC
deb $mirror sid main
deb $mirror experimental main
deb $mirror trixie-backports main
SRC
# experimental's Release file has been seen expired.
echo 'Acquire::Check-Valid-Until "false";' > /etc/apt/apt.conf.d/90nolock-probe
echo 'APT::Install-Recommends "false";' >> /etc/apt/apt.conf.d/90nolock-probe
apt-get update -q
apt-get install -y -q -t experimental rustc cargo rust-src
apt-get install -y -q llvm-22-dev clang-22 lld-22 build-essential zlib1g-dev \
    libzstd-dev pkg-config ca-certificates git flex bison bc libelf-dev \
    libssl-dev dwarves cpio xz-utils python3 perl kmod busybox-static \
    qemu-system-x86 rsync python3-ply python3-git
update-ca-certificates
