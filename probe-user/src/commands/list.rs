//! `nolock-probe list`: the scenarios, and which triggers the running
//! kernel supports and why not.

use std::path::Path;

use anyhow::Result;
use probe_common::Trigger;

use super::run::scenario;
use crate::{
    bpf::{self, PerfSource},
    kernel::{btf::VMLINUX_BTF, readiness},
    stress::nmi,
};

pub fn list() -> Result<()> {
    let mut out = String::new();
    out += "scenarios (--scenario NAME):\n";
    for (name, text) in scenario::SCENARIOS {
        let s = scenario::parse(name, text)?;
        out += &format!("  {name:<12} {}\n", s.description);
        let triggers = if s.triggers == [scenario::EVERY_TRIGGER] {
            "every trigger".into()
        } else {
            s.triggers.join(", ")
        };
        out += &format!("  {:<12} triggers: {triggers}\n", "");
    }
    let btf = Path::new(VMLINUX_BTF).exists().then(readiness::running_kernel_btf).transpose()?;
    let nmi_source = bpf::perf_source() == PerfSource::HardwareCycles || nmi::available();
    let preempt_rt = readiness::preempt_rt();
    out += "\ntriggers (--trigger NAME) on this kernel:\n";
    for t in Trigger::ALL {
        let status = match &btf {
            None => format!("unknown: no {VMLINUX_BTF}"),
            Some(b) => {
                match (readiness::trigger_support(b, t, nmi_source), readiness::trigger_hazard(t, preempt_rt))
                {
                    (Ok(()), None) => "supported".into(),
                    (Ok(()), Some(hazard)) => format!("supported, but scenarios leave it out: {hazard}"),
                    (Err(why), _) => format!("unsupported: {why}"),
                }
            }
        };
        out += &format!(
            "  {:<28} {:<8} {}\n  {:<28} {status}\n",
            t.name(),
            t.intended().name(),
            t.description(),
            ""
        );
    }
    if let Some(b) = &btf {
        if let Err(e) = readiness::check(b) {
            out += &format!("\nthe kernel cannot run nolock-probe at all: {e}\n");
        }
    }
    super::print(&out)
}
