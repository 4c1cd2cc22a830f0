//! What the tool runs on: the accelerator of the VM it is in, and whether
//! the CPU has a PMU (which decides the perf trigger's context).

use probe_result::run::Machine;

use crate::bpf::{self, PerfSource};

/// The kernel command line parameter `cargo xtask vm` names its
/// accelerator with (a dotted name the kernel leaves alone).
const ACCEL_PARAM: &str = "nolock_probe.accel=";

/// The accelerator from the command line, else from the CPU's hypervisor
/// flag: `none` without one, `unknown` with one that said nothing.
fn accelerator(cmdline: &str, cpuinfo: &str) -> String {
    if let Some(a) = cmdline.split_whitespace().find_map(|w| w.strip_prefix(ACCEL_PARAM)) {
        if matches!(a, "kvm" | "tcg") {
            return a.to_string();
        }
    }
    let hypervisor = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    if hypervisor { "unknown" } else { "none" }.into()
}

pub fn detect() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    Machine {
        accelerator: accelerator(&read("/proc/cmdline"), &read("/proc/cpuinfo")),
        pmu: bpf::perf_source() == PerfSource::HardwareCycles,
    }
}

/// For the summary: `QEMU TCG, no PMU (perf trigger in hardirq)`.
pub fn describe(m: &Machine) -> String {
    let on = match m.accelerator.as_str() {
        "kvm" => "QEMU with KVM",
        "tcg" => "QEMU TCG (emulated)",
        "none" => "no hypervisor",
        _ => "an unknown hypervisor",
    };
    let pmu = if m.pmu { "a PMU (perf trigger in NMI)" } else { "no PMU (perf trigger in hardirq)" };
    format!("{on}, {pmu}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accelerator_comes_from_the_command_line_else_the_cpu() {
        let hv = "flags\t\t: fpu vme hypervisor lahf_lm\n";
        assert_eq!(accelerator("console=ttyS0 nolock_probe.accel=kvm quiet", hv), "kvm");
        assert_eq!(accelerator("nolock_probe.accel=tcg", ""), "tcg");
        assert_eq!(accelerator("nolock_probe.accel=bogus", hv), "unknown");
        assert_eq!(accelerator("quiet", "flags\t\t: fpu vme\n"), "none");
    }
}
