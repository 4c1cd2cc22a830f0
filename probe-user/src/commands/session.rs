//! What `run` and `bench` share around their measurement: the checks that
//! can fail before anything is loaded, Ctrl-C, the kernel log, and writing
//! the result.

use std::{io::Write, path::Path};

use anyhow::{Context, Result, anyhow, bail};
use probe_result::{Document, kernel::KernelInfo};

use crate::{
    kernel::{
        btf::KernelBtf,
        info,
        kmsg::KernelLog,
        readiness::{self, Ready},
    },
    stress::stop::{self, Stop},
};

/// A measurement about to start on the running kernel.
pub struct Session {
    /// The current-thread runtime the waits run on.
    pub runtime: tokio::runtime::Runtime,
    /// Registered before anything is loaded, so a Ctrl-C while the programs
    /// load is kept for the first wait.
    pub stop: Stop,
    pub btf: KernelBtf,
    /// Where the kernel keeps what the observers read.
    pub ready: Ready,
    pub online: Vec<u32>,
    /// Picks the observers' hooks, and which triggers scenarios leave out.
    pub preempt_rt: bool,
}

impl Session {
    /// Refuses, in one sentence each, an --output in a directory that does
    /// not exist, a user who is not root and a kernel without the series,
    /// before anything is loaded.
    pub fn start(output: Option<&Path>) -> Result<Session> {
        check_output_dir(output)?;
        let runtime = stop::runtime()?;
        let stop = {
            let _entered = runtime.enter();
            Stop::new()?
        };
        readiness::require_root()?;
        let btf = readiness::running_kernel_btf()?;
        let ready = readiness::check(&btf)?;
        let online = aya::util::online_cpus().map_err(|(path, e)| anyhow!("cannot read {path}: {e}"))?;
        Ok(Session { runtime, stop, btf, ready, online, preempt_rt: readiness::preempt_rt() })
    }
}

/// The kernel and its log from now on: what a result says about the
/// machine.
pub struct Observed {
    pub kernel: KernelInfo,
    pub log: KernelLog,
}

impl Observed {
    pub fn now() -> Observed {
        Observed { kernel: info::read(), log: KernelLog::open_at_end() }
    }
}

fn check_output_dir(output: Option<&Path>) -> Result<()> {
    if let Some(dir) = output.and_then(Path::parent).filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!("--output is in {}, a directory that does not exist", dir.display());
        }
    }
    Ok(())
}

/// Writes the result to `output`, or to stdout.
pub fn write(doc: &Document, output: Option<&Path>) -> Result<()> {
    let text = doc.to_json_pretty()?;
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("nolock-probe: wrote {}", path.display());
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}
