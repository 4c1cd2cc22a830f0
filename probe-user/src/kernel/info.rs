//! Facts about the running kernel that go into the report.

use std::{collections::BTreeMap, fs, io::Read};

use probe_result::kernel::KernelInfo;

/// Config options that change what kfree_rcu_nolock() does or how the
/// numbers read.
const RELEVANT: [&str; 18] = [
    "CONFIG_PREEMPT",
    "CONFIG_PREEMPT_RT",
    "CONFIG_PREEMPT_RCU",
    "CONFIG_HZ",
    "CONFIG_NR_CPUS",
    "CONFIG_NUMA",
    "CONFIG_KVFREE_RCU_BATCHED",
    "CONFIG_SLUB_STATS",
    "CONFIG_SLUB_DEBUG_ON",
    "CONFIG_DEBUG_VM",
    "CONFIG_PROVE_LOCKING",
    "CONFIG_KASAN",
    "CONFIG_MEMCG",
    "CONFIG_RCU_LAZY",
    "CONFIG_RCU_NOCB_CPU",
    "CONFIG_SLAB_NOLOCK_KFUNCS",
    "CONFIG_RANDOM_KMALLOC_CACHES",
    "CONFIG_NO_HZ_FULL",
];

/// The running kernel's release and relevant config options.
pub fn read() -> KernelInfo {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let (config_source, text) = read_config(&release).unzip();
    let config = text.map(|t| relevant_options(&t)).unwrap_or_default();
    KernelInfo { release, config_source, config }
}

fn read_config(release: &str) -> Option<(String, String)> {
    if let Ok(gz) = fs::read("/proc/config.gz") {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).is_ok() {
            return Some(("/proc/config.gz".into(), text));
        }
    }
    let boot = format!("/boot/config-{release}");
    fs::read_to_string(&boot).ok().map(|t| (boot, t))
}

pub fn relevant_options(config: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> =
        RELEVANT.iter().map(|o| (o.to_string(), "n".to_string())).collect();
    for line in config.lines() {
        if let Some((key, value)) = line.split_once('=') {
            if let Some(slot) = out.get_mut(key) {
                *slot = value.trim_matches('"').to_string();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_picked_and_unset_ones_are_n() {
        let cfg = "CONFIG_PREEMPT=y\n# CONFIG_PREEMPT_RT is not set\nCONFIG_HZ=250\nCONFIG_OTHER=y\n";
        let opts = relevant_options(cfg);
        assert_eq!(opts["CONFIG_PREEMPT"], "y");
        assert_eq!(opts["CONFIG_PREEMPT_RT"], "n");
        assert_eq!(opts["CONFIG_HZ"], "250");
        assert!(!opts.contains_key("CONFIG_OTHER"));
        assert_eq!(opts.len(), RELEVANT.len());
    }
}
