//! Checks the running kernel before anything is loaded, and turns each
//! missing piece into one sentence that names the fix.

use std::path::Path;

use anyhow::{Result, bail};
use probe_common::{Attach, NOLOCK_OBJ_FIELDS, Trigger};

use super::btf::{KernelBtf, VMLINUX_BTF};

/// The fix for a kernel without the series, named by every refusal.
const APPLY_PATCHES: &str = "apply kernel-patches/ to your kernel and enable the options of \
     kernel-patches/config/debug.config, or run the tool in the VM with `cargo xtask vm`";

use probe_common::KFUNCS;

/// Functions the observers attach to, with what provides them; the
/// triggers' own hooks are checked one by one (`trigger_support`).
pub const HOOKS: [(&str, &str); 10] = [
    ("deferred_percpu_work_fn", "Linux 7.3's mm/slub.c"),
    ("__kfree_rcu_sheaf", "Linux 7.3's mm/slub.c"),
    ("defer_kfree_rcu", "Linux 7.3's mm/slub.c"),
    ("rcu_free_sheaf", "Linux 7.3's mm/slub.c"),
    ("rcu_free_sheaf_nobarn", "Linux 7.3's mm/slub.c"),
    ("kvfree_call_rcu", "Linux 7.3's mm/slab_common.c"),
    ("kvfree_rcu_bulk", "CONFIG_KVFREE_RCU_BATCHED"),
    ("kvfree_rcu_list", "CONFIG_KVFREE_RCU_BATCHED"),
    ("call_rcu", "tree RCU"),
    ("__x64_sys_getpgid", "an x86-64 kernel"),
];

/// What the programs need to know about `struct slab_sheaf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheafLayout {
    pub rcu_head: u32,
    pub size: u32,
    pub objects: u32,
    pub cache: u32,
}

/// What the programs need to know about `struct kvfree_rcu_bulk_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLayout {
    pub nr_records: u32,
    pub records: u32,
}

/// Everything the loader learned from the kernel's BTF.
#[derive(Debug)]
pub struct Ready {
    pub sheaf: SheafLayout,
    pub bulk: BulkLayout,
}

pub fn require_root() -> Result<()> {
    // SAFETY: geteuid() has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("nolock-probe must run as root because it loads BPF programs: run it with sudo");
    }
    Ok(())
}

/// The running kernel's BTF, parsed once for every check that needs it.
pub fn running_kernel_btf() -> Result<KernelBtf> {
    let path = Path::new(VMLINUX_BTF);
    if !path.exists() {
        bail!(
            "the running kernel has no BTF ({VMLINUX_BTF} is missing): build it with \
             CONFIG_DEBUG_INFO_BTF=y, {APPLY_PATCHES}"
        );
    }
    KernelBtf::from_file(path)
}

/// Checks a kernel described by `btf`: the kfuncs, the object layout they
/// share with probe-common, the hooks and the allocator's internals.
pub fn check(btf: &KernelBtf) -> Result<Ready> {
    let missing: Vec<&str> = KFUNCS.iter().copied().filter(|f| !btf.has_func(f)).collect();
    if !missing.is_empty() {
        bail!("the running kernel lacks the nolock-probe kfuncs ({}): {APPLY_PATCHES}", missing.join(", "));
    }
    for (field, offset) in NOLOCK_OBJ_FIELDS {
        let theirs = btf.member_offset("bpf_nolock_obj", field);
        if theirs != Some(offset as u32) {
            bail!(
                "the kernel's struct bpf_nolock_obj differs from this nolock-probe's (field {field} \
                 at {theirs:?}, expected {offset}): rebuild the kernel from this checkout's \
                 kernel-patches/ or use the nolock-probe built with them"
            );
        }
    }
    if let Some((hook, provider)) = HOOKS.iter().find(|(hook, _)| !btf.has_func(hook)) {
        bail!(
            "the running kernel has no {hook}() to attach to (it comes with {provider}): \
             {APPLY_PATCHES}"
        );
    }
    if !btf.has_func("register_kprobe") {
        bail!("the running kernel has no kprobes: enable CONFIG_KPROBES, or {APPLY_PATCHES}");
    }
    let member = |strukt, name| {
        btf.member_offset(strukt, name).ok_or_else(|| {
            anyhow::anyhow!(
                "the running kernel's struct {strukt} has no {name} field, so it is not the \
                 7.3 allocator nolock-probe knows: {APPLY_PATCHES}"
            )
        })
    };
    // `#define rcu_head callback_head` renames the field in BTF.
    let sheaf = SheafLayout {
        rcu_head: member("slab_sheaf", "callback_head")?,
        size: member("slab_sheaf", "size")?,
        objects: member("slab_sheaf", "objects")?,
        cache: member("slab_sheaf", "cache")?,
    };
    let bulk = BulkLayout {
        nr_records: member("kvfree_rcu_bulk_data", "nr_records")?,
        records: member("kvfree_rcu_bulk_data", "records")?,
    };
    Ok(Ready { sheaf, bulk })
}

/// Whether the kernel described by `btf` can run `trigger`, or why not, in
/// one sentence. `nmi_source` says whether NMIs can be raised at will.
pub fn trigger_support(btf: &KernelBtf, trigger: Trigger, nmi_source: bool) -> Result<(), String> {
    match trigger.attach() {
        Attach::Kprobe(f) => {
            if !btf.has_func("register_kprobe") {
                return Err("the kernel has no kprobes (CONFIG_KPROBES)".into());
            }
            if !btf.has_func(f) {
                return Err(format!("the kernel has no {f}() (it comes with {})", trigger.needs()));
            }
        }
        Attach::Fentry(f) => {
            if !btf.has_func(f) {
                return Err(format!(
                    "the kernel has no {f}() in its BTF (it comes with {}; inlined, renamed or configured out)",
                    trigger.needs()
                ));
            }
        }
        Attach::TpBtf(tp) => {
            if !btf.has_type(&format!("btf_trace_{tp}")) {
                return Err(format!("the kernel has no {tp} tracepoint (it comes with {})", trigger.needs()));
            }
        }
        Attach::PerfEvent => {}
    }
    if trigger == Trigger::Nmi && !nmi_source {
        return Err(
            "nothing raises NMIs: no PMU, no NMI IPI source (patch 0004, debugfs slab_nolock/nmi_ipi_rate), \
             and no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ) for NMI backtraces"
                .into(),
        );
    }
    Ok(())
}

/// Whether the running kernel is PREEMPT_RT: its version string (uname -v)
/// says so, as it has since PREEMPT_RT was merged.
pub fn preempt_rt() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/version").is_ok_and(|v| version_is_preempt_rt(&v))
}

fn version_is_preempt_rt(version: &str) -> bool {
    version.split_whitespace().any(|w| w == "PREEMPT_RT")
}

/// A kernel problem `trigger` is known to run into on this kind of kernel,
/// in one sentence. Scenarios leave such a trigger out with this reason;
/// named with --trigger it runs, so the problem can be reproduced.
pub fn trigger_hazard(trigger: Trigger, preempt_rt: bool) -> Option<&'static str> {
    match trigger {
        // Found by this tool: rtlock_slowlock_locked() fires the tracepoint
        // with the rt_mutex's wait_lock held; can_spin_trylock() lets
        // kmalloc_nolock() go on, and rt_spin_trylock() takes a wait_lock.
        Trigger::LockContention if preempt_rt => Some(
            "on PREEMPT_RT contention_begin fires inside rtlock_slowlock_locked() with an rt_mutex \
             wait_lock held, and kmalloc_nolock()'s spin_trylock() takes another wait_lock, which \
             lockdep reports as recursive locking (results/rt-lock-contention-finding.md); name it \
             with --trigger to reproduce that",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::BtfBuilder;

    /// A BTF that has everything a patched 7.3 kernel has.
    fn patched() -> BtfBuilder {
        let mut b = BtfBuilder::new();
        let u64t = b.int("u64", 8);
        let u32t = b.int("u32", 4);
        let u16t = b.int("u16", 2);
        let gp = b.struct_("rcu_gp_seq", &[("norm", u64t), ("exp", u64t)]);
        let fields: Vec<(&str, u32)> = NOLOCK_OBJ_FIELDS
            .iter()
            .map(|(name, _)| {
                let t = match *name {
                    "gp_seq" => gp,
                    "tag" | "payload_size" => u32t,
                    n if n.ends_with("cpu") || n.ends_with("ctx") => u16t,
                    _ => u64t,
                };
                (*name, t)
            })
            .collect();
        b.struct_("bpf_nolock_obj", &fields);
        // As in the kernel's BTF: `#define rcu_head callback_head`.
        let rcu = b.struct_("callback_head", &[("next", u64t), ("func", u64t)]);
        let anon = b.union_anon(&[("callback_head", rcu)]);
        b.struct_(
            "slab_sheaf",
            &[("", anon), ("cache", u64t), ("size", u32t), ("node", u32t), ("objects", u64t)],
        );
        let list = b.struct_("list_head", &[("next", u64t), ("prev", u64t)]);
        b.struct_(
            "kvfree_rcu_bulk_data",
            &[("list", list), ("gp_snap", gp), ("nr_records", u64t), ("records", u64t)],
        );
        for f in KFUNCS.iter().chain(HOOKS.iter().map(|(h, _)| h)).chain(["register_kprobe"].iter()) {
            b.func(f);
        }
        b
    }

    #[test]
    fn a_patched_kernel_is_ready_and_the_sheaf_layout_is_read() {
        let ready = check(&KernelBtf::from_bytes(&patched().build()).unwrap()).unwrap();
        assert_eq!(ready.sheaf, SheafLayout { rcu_head: 0, size: 24, objects: 32, cache: 16 });
        assert_eq!(ready.bulk, BulkLayout { nr_records: 32, records: 40 });
    }

    #[test]
    fn a_kernel_without_the_kfuncs_is_refused_with_the_fix() {
        let mut b = patched();
        b.remove_func("bpf_kmalloc_nolock");
        let err = check(&KernelBtf::from_bytes(&b.build()).unwrap()).unwrap_err().to_string();
        assert!(err.contains("lacks the nolock-probe kfuncs (bpf_kmalloc_nolock)"), "{err}");
        assert!(err.contains("apply kernel-patches/"), "{err}");
        assert!(err.contains("cargo xtask vm"), "{err}");
    }

    #[test]
    fn triggers_the_kernel_cannot_run_are_named_with_the_reason() {
        let mut b = patched();
        b.remove_func("slab_attach_kprobe_locked");
        let btf = KernelBtf::from_bytes(&b.build()).unwrap();
        let why = trigger_support(&btf, Trigger::LockedKprobe, true).unwrap_err();
        assert!(why.contains("CONFIG_DEBUG_VM or CONFIG_PROVE_LOCKING"), "{why}");
        assert!(trigger_support(&btf, Trigger::PerfEvent, false).is_ok());
        // No btf_trace_sys_enter type in this BTF.
        assert!(
            trigger_support(&btf, Trigger::Syscall, true).unwrap_err().contains("no sys_enter tracepoint")
        );
        assert!(trigger_support(&btf, Trigger::Nmi, false).is_err());
        let why = trigger_support(&btf, Trigger::LockContention, true).unwrap_err();
        assert!(why.contains("no contention_begin tracepoint (it comes with CONFIG_TRACING)"), "{why}");
        let why = trigger_support(&btf, Trigger::FentrySlabFree, true).unwrap_err();
        assert!(why.contains("__slab_free()"), "{why}");
        // The core check does not need the locked-slab hook.
        check(&btf).unwrap();
    }

    #[test]
    fn preempt_rt_is_read_from_the_version_string() {
        assert!(version_is_preempt_rt("#2 SMP PREEMPT_RT Tue Dec  1 07:40:00 UTC 2026\n"));
        assert!(!version_is_preempt_rt("#2 SMP PREEMPT_DYNAMIC Tue Dec  1 07:40:00 UTC 2026\n"));
    }

    #[test]
    fn only_known_problems_are_hazards() {
        assert!(trigger_hazard(Trigger::LockContention, true).is_some_and(|h| h.contains("--trigger")));
        assert!(trigger_hazard(Trigger::LockContention, false).is_none());
        assert!(
            Trigger::ALL
                .iter()
                .filter(|&&t| t != Trigger::LockContention)
                .all(|&t| trigger_hazard(t, true).is_none())
        );
    }

    #[test]
    fn a_different_object_layout_is_refused() {
        let mut b = BtfBuilder::new();
        let u64t = b.int("u64", 8);
        // The first two fields swapped places: same names, other offsets.
        b.struct_("bpf_nolock_obj", &[("alloc_ns", u64t), ("magic", u64t)]);
        for f in KFUNCS {
            b.func(f);
        }
        let err = check(&KernelBtf::from_bytes(&b.build()).unwrap()).unwrap_err().to_string();
        assert!(err.contains("struct bpf_nolock_obj differs"), "{err}");
    }

    /// The host this is developed on runs an unpatched kernel: the real
    /// vmlinux BTF of a kernel without the series must be refused.
    #[test]
    fn the_unpatched_host_kernel_is_refused() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            eprintln!("skipped: {VMLINUX_BTF} is missing on this machine");
            return;
        }
        let btf = KernelBtf::from_file(path).unwrap();
        if btf.has_func("bpf_kmalloc_nolock") {
            eprintln!("skipped: this machine's kernel has the series");
            return;
        }
        let err = check(&btf).unwrap_err().to_string();
        assert!(err.contains("lacks the nolock-probe kfuncs"), "{err}");
    }
}
