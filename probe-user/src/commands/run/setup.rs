//! What every run of one invocation shares: the triggers this kernel can
//! run, and the configuration the BPF programs read (RUN_CONFIG).

use anyhow::{Result, bail};
use probe_common::{MAX_SHEAVES_LOCK_FNS, MAX_SIZES, NolockObj, RunConfig, SHEAVES_LOCK_FNS, Trigger};
use probe_result::{Plan, run::Unsupported};

use crate::{
    bpf::{self, PerfSource},
    commands::session::Session,
    kernel::{kallsyms::Kallsyms, readiness, slub_stats},
    stress::nmi,
};

pub struct Setup {
    pub plan: Plan,
    pub cfg: RunConfig,
    pub triggers: Vec<Trigger>,
    pub unsupported: Vec<Unsupported>,
    pub cpus: Vec<u32>,
    /// The perf trigger uses hardware cycles (NMI); the nmi trigger needs
    /// no sysrq-l source.
    pub pmu: bool,
    /// The caches the planned payload sizes come from, for the SLUB_STATS
    /// cross-check: every size's, as a run mixes them at random.
    pub caches: Vec<String>,
    /// The functions whose `slab_attach_kprobe_locked()` calls count as
    /// sheaves-lock sites.
    pub sheaves_lock_fns: Vec<String>,
}

impl Setup {
    pub fn new(plan: Plan, from_scenario: bool, session: &Session) -> Result<Setup> {
        let cpus = super::plan::cpus_in(&plan.cpus, &session.online)?;
        let pmu = bpf::perf_source() == PerfSource::HardwareCycles;
        let (triggers, unsupported) = supported(&plan, from_scenario, session, pmu || nmi::available())?;
        let (kernel_cfg, sheaves_lock_fns) = kernel_config(session)?;
        let mut sizes = [0; MAX_SIZES];
        sizes[..plan.payload_sizes_bytes.len()].copy_from_slice(&plan.payload_sizes_bytes);
        let cfg = RunConfig {
            sizes,
            n_sizes: plan.payload_sizes_bytes.len() as u32,
            alloc_flags: plan.alloc_flags(),
            every_nth: plan.every_nth,
            nolock_share_pct: plan.nolock_share_pct,
            burst: plan.burst,
            full_observe: u32::from(plan.observers().full),
            cpu_mask: plan.cpu_mask(),
            min_interval_ns: plan.min_interval_ns(),
            follow: u32::from(plan.follow),
            ..kernel_cfg
        };
        let mut caches: Vec<String> = Vec::new();
        for &payload in &plan.payload_sizes_bytes {
            for cache in slub_stats::caches_for(size_of::<NolockObj>() as u32 + payload, plan.gfp_account) {
                if !caches.contains(&cache) {
                    caches.push(cache);
                }
            }
        }
        Ok(Setup { plan, cfg, triggers, unsupported, cpus, pmu, caches, sheaves_lock_fns })
    }
}

/// The defaults, with what the observers must know of the running kernel:
/// the sheaf callbacks' addresses, the layouts of a sheaf and a kvfree_rcu
/// block, the kernel's text and its sheaves-lock sites, and the loader's
/// thread group. Shared by `run` and `bench`: an observer loaded without
/// it reads sheaves at offset 0. Also returns the sheaves-lock functions'
/// names.
pub fn kernel_config(session: &Session) -> Result<(RunConfig, Vec<String>)> {
    let symbols = Kallsyms::read()?;
    let sheaves_lock = SheavesLockSites::find(&symbols);
    let ready = &session.ready;
    let cfg = RunConfig {
        rcu_free_sheaf: symbols.address("rcu_free_sheaf")?,
        rcu_free_sheaf_nobarn: symbols.address("rcu_free_sheaf_nobarn")?,
        sheaf_rcu_head_off: ready.sheaf.rcu_head,
        sheaf_size_off: ready.sheaf.size,
        sheaf_objects_off: ready.sheaf.objects,
        sheaf_cache_off: ready.sheaf.cache,
        bulk_nr_records_off: ready.bulk.nr_records,
        bulk_records_off: ready.bulk.records,
        loader_tgid: std::process::id(),
        n_sheaves_lock_fns: sheaves_lock.names.len() as u32,
        sheaves_lock_fns: sheaves_lock.text,
        kernel_text: [symbols.address("_stext")?, symbols.address("_etext")?],
        ..RunConfig::DEFAULT
    };
    Ok((cfg, sheaves_lock.names))
}

/// Splits the plan's triggers into those the kernel can run and those it
/// cannot. Triggers named on the command line must all run; a scenario's
/// run where the kernel supports them, and the report lists the others.
/// A trigger with a known kernel problem here (`trigger_hazard`) is left
/// out of scenarios with its reason, and runs when it is named.
fn supported(
    plan: &Plan,
    from_scenario: bool,
    session: &Session,
    nmi_source: bool,
) -> Result<(Vec<Trigger>, Vec<Unsupported>)> {
    let mut triggers = Vec::new();
    let mut unsupported = Vec::new();
    for &t in &plan.triggers {
        match (
            readiness::trigger_support(&session.btf, t, nmi_source),
            readiness::trigger_hazard(t, session.preempt_rt),
        ) {
            (Ok(()), None) => triggers.push(t),
            (Ok(()), Some(hazard)) if from_scenario => {
                unsupported.push(Unsupported { trigger: t, reason: format!("left out: {hazard}") })
            }
            (Ok(()), Some(hazard)) => {
                eprintln!("nolock-probe: trigger {} runs although {hazard}", t.name());
                triggers.push(t);
            }
            (Err(reason), _) if from_scenario => unsupported.push(Unsupported { trigger: t, reason }),
            (Err(reason), _) => bail!("trigger {} cannot run here: {reason}", t.name()),
        }
    }
    if triggers.is_empty() {
        bail!(
            "none of scenario {}'s triggers can run on this kernel: `nolock-probe list` says why",
            plan.scenario
        );
    }
    Ok((triggers, unsupported))
}

/// The functions that call `slab_attach_kprobe_locked()` with a sheaves
/// lock held, as the running kernel has them: their text for the
/// locked_kprobe trigger, their names for the report.
struct SheavesLockSites {
    text: [[u64; 2]; MAX_SHEAVES_LOCK_FNS],
    names: Vec<String>,
}

impl SheavesLockSites {
    fn find(symbols: &Kallsyms) -> Self {
        let mut sites = SheavesLockSites { text: [[0; 2]; MAX_SHEAVES_LOCK_FNS], names: Vec::new() };
        for (slot, f) in sites.text.iter_mut().zip(symbols.functions(&SHEAVES_LOCK_FNS)) {
            *slot = [f.start, f.end];
            sites.names.push(f.name);
        }
        sites
    }
}
