//! The BPF object and what it loads and attaches. Every link is an owned
//! value: dropping `Probes` (normal end, error, Ctrl-C, panic) detaches
//! everything. What to load and attach comes from the catalogues in
//! probe-common (`Trigger` and `programs`).

mod attach;
mod load;
pub mod maps;
mod stats;

use std::any::Any;

use anyhow::{Context, Result, anyhow, bail};
use aya::{Btf, Ebpf, EbpfLoader, programs::ProgramError};
use probe_common::RunConfig;

pub use self::{
    attach::{Attachment, PerfSource, perf_source},
    maps::{Fifo, unpreempted},
};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nolock-probe.bpf.o"));

/// Fields drop in order: triggers detach first, then the observers, then
/// the programs and maps go.
pub struct Probes {
    trigger_links: Vec<Box<dyn Any>>,
    observer_links: Vec<Box<dyn Any>>,
    ebpf: Ebpf,
    /// Picks the observers' hooks (`programs::observers_for()`).
    preempt_rt: bool,
    /// Keeps the kernel's run-time statistics of BPF programs on (None if
    /// the kernel refused).
    _stats: Option<std::os::fd::OwnedFd>,
    /// How long loading took: the object (relocation, maps) and each
    /// program (the verifier), in ns.
    pub load: LoadTimes,
}

/// Where the time to load went.
#[derive(Debug, Clone, Default)]
pub struct LoadTimes {
    /// Reading the kernel's BTF, relocating the object against it and
    /// creating the maps.
    pub object_ns: u64,
    /// Each program's BPF_PROG_LOAD, by name: mostly the verifier.
    pub programs: std::collections::BTreeMap<String, u64>,
}

impl LoadTimes {
    /// `object 1.2s; slowest: a 3.1s, b 2.0s, c 1.1s`.
    pub fn summary(&self) -> String {
        let mut by_time: Vec<(&String, &u64)> = self.programs.iter().collect();
        by_time.sort_by(|a, b| b.1.cmp(a.1));
        let slowest: Vec<String> =
            by_time.iter().take(3).map(|(n, ns)| format!("{n} {:.1}s", **ns as f64 / 1e9)).collect();
        format!("object {:.1}s; slowest: {}", self.object_ns as f64 / 1e9, slowest.join(", "))
    }
}

impl Probes {
    fn new(ebpf: Ebpf, preempt_rt: bool, load: LoadTimes) -> Self {
        let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
        Self { trigger_links: Vec::new(), observer_links: Vec::new(), ebpf, preempt_rt, _stats, load }
    }

    /// How many programs are loaded into the kernel.
    pub fn loaded(&self) -> usize {
        self.ebpf.programs().filter(|(_, p)| p.fd().is_ok()).count()
    }
}

/// The BPF object with the run configuration set, and the kernel's BTF.
fn open(cfg: &RunConfig) -> Result<(Ebpf, Btf)> {
    if OBJECT.is_empty() {
        bail!("this nolock-probe was built without its BPF programs: build it with `cargo xtask build`");
    }
    let btf = Btf::from_sys_fs().context("cannot read the kernel's BTF")?;
    let ebpf = EbpfLoader::new()
        .override_global("RUN_CONFIG", cfg, true)
        .load(OBJECT)
        .context("cannot load the BPF object (kfuncs of kernel-patches/ not resolved?)")?;
    Ok((ebpf, btf))
}

/// Explains a program the kernel refused, then shows the end of the
/// verifier's log.
fn refused(name: &str, err: ProgramError) -> anyhow::Error {
    match err {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow!(
                "the kernel's verifier refused BPF program `{name}` ({io_error}), so this kernel and \
                 this nolock-probe do not match: rebuild both from one checkout with `cargo xtask vm` \
                 or `cargo xtask kernel`; the verifier's last lines were:\n{}",
                tail.join("\n")
            )
        }
        other => anyhow!(other).context(format!("cannot load BPF program `{name}`")),
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let p = ebpf.program_mut(name).ok_or_else(|| anyhow!("the BPF object has no program `{name}`"))?;
    p.try_into().with_context(|| format!("BPF program `{name}` has an unexpected type"))
}

#[cfg(test)]
mod tests {
    use probe_common::{Trigger, programs};

    /// The catalogues and the BPF object agree: every program they name is
    /// in the object, and every program of the object is named. The object
    /// is the one `cargo xtask build-ebpf` built (xtask's unit-test step
    /// passes its path), since plain test builds embed an empty one.
    #[test]
    fn the_catalogues_name_every_program_of_the_object() {
        let path = std::env::var_os("NOLOCK_PROBE_BPF_OBJECT_FILE").expect(
            "NOLOCK_PROBE_BPF_OBJECT_FILE is not set: run the unit tests with `cargo xtask test`, which \
             builds the BPF object and names it",
        );
        let bytes = std::fs::read(&path).expect("the BPF object named by NOLOCK_PROBE_BPF_OBJECT_FILE");
        let object = aya_obj::Object::parse(&bytes).expect("a BPF object");
        let in_object: std::collections::BTreeSet<&str> =
            object.programs.keys().map(String::as_str).collect();
        let catalogued: std::collections::BTreeSet<&str> = Trigger::ALL
            .iter()
            .map(|t| t.program())
            .chain(programs::OBSERVERS.iter().map(|o| o.program))
            .chain(programs::HELPERS.iter().map(|h| h.program))
            .collect();
        let missing: Vec<&&str> = catalogued.difference(&in_object).collect();
        let unnamed: Vec<&&str> = in_object.difference(&catalogued).collect();
        assert!(missing.is_empty(), "catalogued but not in the BPF object: {missing:?}");
        assert!(unnamed.is_empty(), "in the BPF object but in no catalogue: {unnamed:?}");
    }
}
